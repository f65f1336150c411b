"""The service against a real uvicorn server over a real journal, with a real HTTP client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api_helpers import Keys, auth, backtest_journal, make_keys, serving
from tradepilot.api.app import ServiceSettings
from tradepilot.persistence.queries import JournalQueries

READ_ENDPOINTS = [
    "/api/v1/status",
    "/api/v1/summary",
    "/api/v1/orders",
    "/api/v1/orders?status=FILLED&limit=5",
    "/api/v1/orders?status=open",
    "/api/v1/fills",
    "/api/v1/parent-orders",
    "/api/v1/positions",
    "/api/v1/positions?include_flat=true",
    "/api/v1/balances",
    "/api/v1/equity",
    "/api/v1/performance",
    "/api/v1/performance?sampling=1d",
    "/api/v1/execution",
    "/api/v1/execution?group=all",
    "/api/v1/risk",
    "/api/v1/signals",
    "/api/v1/events?limit=10",
    "/metrics",
]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return backtest_journal(tmp_path_factory.mktemp("api") / "bt.db")


@pytest.fixture(scope="module")
def keys() -> Keys:
    return make_keys()


@pytest.fixture(scope="module")
def service(journal: Path, keys: Keys) -> Iterator[str]:
    with serving(journal, keys, settings=ServiceSettings(rate_per_key=0)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=30) as c:
        yield c


@pytest.mark.parametrize("path", READ_ENDPOINTS)
def test_every_read_endpoint_answers_a_read_key(
    client: httpx.Client, keys: Keys, path: str
) -> None:
    for key in (keys.read, keys.trade, keys.admin):
        res = client.get(path, headers=auth(key))
        assert res.status_code == 200, res.text


@pytest.mark.parametrize("path", READ_ENDPOINTS)
def test_no_key_or_a_wrong_key_is_401_with_a_problem_document(
    client: httpx.Client, keys: Keys, path: str
) -> None:
    for headers in ({}, auth("tp_nothere_x"), auth(keys.read + "x"), {"Authorization": "Basic a"}):
        res = client.get(path, headers=headers)
        assert res.status_code == 401
        assert res.headers["content-type"].startswith("application/problem+json")
        body = res.json()
        assert body["status"] == 401 and body["title"] == "Unauthorized"
        assert keys.read not in res.text


def test_orders_and_fills_match_the_journal(
    client: httpx.Client, keys: Keys, journal: Path
) -> None:
    with JournalQueries.open(journal) as q:
        orders, fills = q.orders(), q.fills()
        positions, balances = q.positions(include_flat=False), q.balances()
    assert len(orders) > 10 and len(fills) > 10
    got = client.get("/api/v1/orders?limit=1000", headers=auth(keys.read)).json()
    assert got["total"] == len(orders) and got["items"] == orders
    got_fills = client.get("/api/v1/fills?limit=1000", headers=auth(keys.read)).json()
    assert got_fills["items"] == fills
    assert client.get("/api/v1/positions", headers=auth(keys.read)).json() == positions
    assert client.get("/api/v1/balances", headers=auth(keys.read)).json() == balances
    one = orders[3]
    res = client.get(f"/api/v1/orders/{one['client_order_id']}", headers=auth(keys.read))
    assert res.json() == one
    # money is decimal strings, exact
    for fill in got_fills["items"]:
        assert Decimal(fill["notional"]) == Decimal(fill["price"]) * Decimal(fill["quantity"])


def test_pages_join_into_the_whole_list(client: httpx.Client, keys: Keys) -> None:
    whole = client.get("/api/v1/orders?limit=1000", headers=auth(keys.read)).json()["items"]
    joined: list[dict[str, object]] = []
    offset: int | None = 0
    while offset is not None:
        page = client.get(f"/api/v1/orders?limit=7&offset={offset}", headers=auth(keys.read))
        body = page.json()
        joined += body["items"]
        offset = body["next_offset"]
    assert joined == whole


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders?limit=0",
        "/api/v1/orders?limit=100000",
        "/api/v1/orders?offset=-1",
        "/api/v1/orders?status=NOPE",
        "/api/v1/orders?since=abc",
        "/api/v1/orders?since=1e999",
        "/api/v1/performance?sampling=7s",
        "/api/v1/execution?group=venue",
        "/api/v1/events?after_seq=-5",
    ],
)
def test_bad_parameters_are_422_problems(client: httpx.Client, keys: Keys, path: str) -> None:
    res = client.get(path, headers=auth(keys.read))
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith("application/problem+json")
    assert res.json()["detail"]


def test_unknown_order_is_404(client: httpx.Client, keys: Keys) -> None:
    res = client.get("/api/v1/orders/..%2F..%2Fetc", headers=auth(keys.read))
    assert res.status_code == 404
    assert res.json()["title"] == "Not found"


@pytest.mark.parametrize("action", ["halt", "reduce-only", "resume", "reset-breaker", "flatten"])
def test_operator_actions_need_the_admin_scope(
    client: httpx.Client, keys: Keys, action: str
) -> None:
    path = f"/api/v1/operator/{action}"
    assert client.post(path).status_code == 401
    for key in (keys.read, keys.trade):
        res = client.post(path, headers=auth(key))
        assert res.status_code == 403
        assert "admin" in res.json()["detail"]
    # a finished journal is served read-only: the admin key is let in, the action refused
    res = client.post(path, headers=auth(keys.admin), json={"reason": "test"})
    assert res.status_code == 409
    assert "read-only" in res.json()["detail"]


def test_equity_and_performance_state_their_sampling(client: httpx.Client, keys: Keys) -> None:
    eq = client.get("/api/v1/equity", headers=auth(keys.read)).json()
    assert eq["start_cash"] == 100000.0 and len(eq["points"]) > 100
    assert all(p["drawdown"] <= 0 for p in eq["points"])
    perf = client.get("/api/v1/performance", headers=auth(keys.read)).json()
    assert perf["sampling_ns"] == 3_600_000_000_000 and perf["periods_per_year"] == 8760
    assert perf["end_equity"] == pytest.approx(eq["points"][-1]["equity"])


def test_metrics_count_what_the_journal_holds(
    client: httpx.Client, keys: Keys, journal: Path
) -> None:
    with JournalQueries.open(journal) as q:
        summary = q.summary()
    text = client.get("/metrics", headers=auth(keys.read)).text
    assert f"tradepilot_fills_total {float(summary['fills'])}" in text
    for status, n in summary["orders_by_status"].items():
        assert f'tradepilot_orders{{status="{status}"}} {float(n)}' in text
    assert 'tradepilot_trading_state{state="ACTIVE"}' in text
    assert "tradepilot_order_ack_latency_seconds_bucket" in text
    assert "tradepilot_equity " in text


def test_openapi_document_lists_the_endpoints(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/api/v1/orders", "/api/v1/orders/{client_order_id}", "/api/v1/operator/{action}"):
        assert path in doc["paths"]


def test_dashboard_is_served_without_any_external_asset(client: httpx.Client) -> None:
    html = client.get("/").text
    assert "http://" not in html and "https://" not in html
    for asset in ("app.js", "style.css", "plotly.min.js"):
        res = client.get(f"/dashboard/{asset}")
        assert res.status_code == 200 and len(res.content) > 100
    assert client.get("/dashboard/../../etc/passwd").status_code == 404
    assert client.get("/dashboard/secret.py").status_code == 404


def test_rate_limit_per_key_answers_429_with_retry_after(journal: Path, keys: Keys) -> None:
    settings = ServiceSettings(rate_per_key=1.0, burst_per_key=5)
    with serving(journal, keys, settings=settings) as (url, _), httpx.Client(base_url=url) as c:
        codes = [c.get("/api/v1/status", headers=auth(keys.read)).status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and 429 in codes[5:]
        limited = c.get("/api/v1/status", headers=auth(keys.read))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # another key has its own budget
        assert c.get("/api/v1/status", headers=auth(keys.admin)).status_code == 200


def _ws_url(http_url: str, query: str) -> str:
    return http_url.replace("http://", "ws://") + "/ws/events?" + query


def test_event_stream_resumes_from_a_sequence_number_without_gaps(
    service: str, keys: Keys, journal: Path
) -> None:
    with JournalQueries.open(journal) as q:
        total = q.summary()["last_seq"]
    seen: list[int] = []
    with connect(_ws_url(service, f"after_seq=0&key={keys.read}")) as ws:
        while len(seen) < 40:
            seen.append(json.loads(ws.recv(timeout=10))["seq"])
    # reconnect after the last one seen: the stream continues exactly there
    with connect(_ws_url(service, f"after_seq={seen[-1]}&key={keys.read}")) as ws:
        while seen[-1] < total:
            seen.append(json.loads(ws.recv(timeout=10))["seq"])
    assert seen == list(range(1, total + 1))


def test_event_stream_filters_by_kind(service: str, keys: Keys) -> None:
    with connect(_ws_url(service, f"kinds=OrderFilled&key={keys.read}")) as ws:
        kinds = {json.loads(ws.recv(timeout=10))["type"] for _ in range(10)}
    assert kinds == {"OrderFilled"}


@pytest.mark.parametrize("query", ["", "key=tp_bad_key", "after_seq=-1&key=READ"])
def test_event_stream_refuses_bad_keys_and_parameters(service: str, keys: Keys, query: str) -> None:
    with (
        connect(_ws_url(service, query.replace("READ", keys.read))) as ws,
        pytest.raises(ConnectionClosed) as info,
    ):
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code in (4401, 4422)
