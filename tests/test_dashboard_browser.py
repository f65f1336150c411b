"""The dashboard in a real headless browser (Debian's chromium), beside a running paper session.

The session runs in its own process and writes its journal; the service reads that
journal. The test logs in with a key, checks that equity and positions are shown, and
that the page updates by itself when new fills are journaled (over the WebSocket).
Screenshots (laptop and phone widths) are saved under ``build/test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from api_helpers import make_keys, serving
from tradepilot.persistence.queries import JournalQueries

ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver packages")
    return browser, driver


@pytest.fixture()
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = _chromium()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture()
def paper_session(tmp_path: Path) -> Iterator[Path]:
    """A paper session trading often (EMA 2/5 crossover) at 2,000x, in its own process."""
    journal = tmp_path / "live.db"
    cmd = [
        sys.executable,
        "-m",
        "tradepilot.cli",
        "paper",
        "--session",
        "dash",
        "--journal",
        str(journal),
        "--log",
        str(tmp_path / "dash.jsonl"),
        "-s",
        "ema_cross",
        "-p",
        "fast=2",
        "-p",
        "slow=5",
        "-p",
        "quantity=0.5",
        "--speed",
        "2000",
        "--duration",
        "24h",
        "--cycle",
        "3600s",
        "--quiet",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not _has_fills(journal):
            if proc.poll() is not None:
                pytest.fail(f"the paper session ended early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                pytest.fail("the paper session wrote no fill within 60 s")
            time.sleep(0.2)
        yield journal
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _has_fills(journal: Path) -> bool:
    if not journal.exists():
        return False
    try:
        with JournalQueries.open(journal) as q:
            return q.summary()["fills"] > 0
    except Exception:  # the journal is being created
        return False


def _text(chrome: webdriver.Chrome, element_id: str) -> str:
    return chrome.find_element(By.ID, element_id).text


def test_dashboard_shows_the_running_session_and_updates_on_fills(
    browser: webdriver.Chrome, paper_session: Path
) -> None:
    keys = make_keys()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serving(paper_session, keys) as (url, _view):
        browser.get(url + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "login").is_displayed())
        browser.find_element(By.ID, "key").send_keys(keys.admin)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(lambda b: _text(b, "t-equity") not in ("", "-"))
        assert not browser.find_element(By.ID, "login").is_displayed()
        assert "paper" in _text(browser, "session")
        assert _text(browser, "state") == "ACTIVE"
        wait.until(lambda b: b.find_element(By.ID, "live").text == "live")
        # equity chart drawn by the packaged plotly
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#equity-chart .main-svg"))
        first_fills = int(_text(browser, "t-fills").replace(",", ""))
        assert first_fills > 0
        # the session keeps trading: the page updates without a reload
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: int(_text(b, "t-fills").replace(",", "")) > first_fills)
        rows = browser.find_elements(By.CSS_SELECTOR, "#fills tbody tr")
        assert (rows and "BUY" in browser.page_source) or "SELL" in browser.page_source
        browser.save_screenshot(str(ARTIFACTS / "dashboard-laptop.png"))
        browser.set_window_size(390, 844)
        time.sleep(0.5)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
        browser.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))
