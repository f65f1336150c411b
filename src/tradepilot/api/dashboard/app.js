// tradepilot dashboard: reads the REST API with the key kept in this tab only, and
// refreshes when the event stream says something happened.
"use strict";
const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("tradepilot-key") || "";
let lastSeq = 0;
let refreshTimer = null;
let socket = null;

function esc(v) {
  return String(v ?? "-").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function iso(ns) { return ns ? new Date(ns / 1e6).toISOString().replace("T", " ").slice(0, 19) : "-"; }
function num(v, d = 2) {
  const x = Number(v);
  return Number.isFinite(x) ? x.toLocaleString(undefined, { minimumFractionDigits: d, maximumFractionDigits: d }) : "-";
}
function pct(v, d = 2) { return v === null || v === undefined ? "-" : num(v * 100, d) + " %"; }

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + key }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) { showLogin("That key is not valid."); throw new Error("unauthorized"); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail || body.title || res.statusText);
  return body;
}

function rows(tableId, items, cells) {
  const body = $(tableId).querySelector("tbody");
  body.innerHTML = items.length
    ? items.map((it) => "<tr>" + cells(it).join("") + "</tr>").join("")
    : '<tr><td colspan="9" class="muted">none</td></tr>';
}
const td = (v, cls = "") => `<td class="${cls}">${esc(v)}</td>`;

async function refresh() {
  const [status, positions, orders, fills, equity, execution, risk] = await Promise.all([
    api("/api/v1/status"),
    api("/api/v1/positions"),
    api("/api/v1/orders?status=OPEN&limit=200"),
    api("/api/v1/fills?limit=1000"),
    api("/api/v1/equity?max_points=1500"),
    api("/api/v1/execution?group=algorithm"),
    api("/api/v1/risk?denials=20"),
  ]);
  const session = status.session || {};
  $("session").textContent = `${session.mode || "?"} · ${status.source.split(/[\\/]/).pop()}` + (status.running ? " · running" : " · stopped");
  $("session").title = status.source;
  const state = (status.trading_state && status.trading_state.state) || "ACTIVE";
  $("state").textContent = state;
  $("state").className = "badge " + state;
  $("risk-state").textContent = state;
  $("risk-reason").textContent = (status.trading_state && status.trading_state.reason) || "";
  for (const b of document.querySelectorAll(".buttons button")) b.disabled = status.read_only;

  const pts = equity.points;
  const last = pts.length ? pts[pts.length - 1] : null;
  $("t-equity").textContent = last ? num(last.equity) : "-";
  $("t-return").textContent = last && equity.start_cash ? pct(last.equity / equity.start_cash - 1, 3) : "-";
  $("t-drawdown").textContent = last ? (equity.drawdown_is_fraction ? pct(Math.min(...pts.map((p) => p.drawdown)), 2) : num(Math.min(...pts.map((p) => p.drawdown)))) : "-";
  $("t-pnl").textContent = num(status.realized_pnl);
  $("t-fills").textContent = status.fills.toLocaleString();
  $("t-open").textContent = status.open_orders.toLocaleString();
  drawEquity(pts, equity.drawdown_is_fraction);

  rows("positions", positions, (p) => [td(p.instrument_id), td(p.side, p.side === "LONG" ? "buy" : "sell"), td(p.quantity, "n"), td(p.avg_px, "n"), td(p.last_px, "n"), td(p.realized_pnl, "n")]);
  rows("orders", orders.items, (o) => [td(o.client_order_id), td(o.instrument_id), td(o.side, o.side.toLowerCase()), td(o.order_type), td(o.quantity, "n"), td(o.price, "n"), td(o.status)]);
  const recent = fills.items.slice(-50).reverse();
  rows("fills", recent, (f) => [td(iso(f.ts)), td(f.client_order_id), td(f.side, f.side.toLowerCase()), td(f.quantity, "n"), td(f.price, "n"), td(f.fee, "n")]);
  rows("execution", execution, (e) => [td(e.key), td(e.parents, "n"), td(num((e.fill_rate || 0) * 100, 1), "n"), td(num(e.slippage_bps), "n"), td(num(e.slippage_vwap_bps), "n"), td(num(e.shortfall_bps), "n"), td(num((e.participation || 0) * 100, 2), "n")]);
  rows("denials", risk.recent_denials.slice().reverse(), (d) => [td(iso(d.ts)), td(d.client_order_id), td(d.code), td(d.reason)]);
  document.body.dataset.lastSeq = String(status.last_seq);
  if (!socket) connect(status.last_seq);
}

function drawEquity(pts, fraction) {
  if (typeof Plotly === "undefined") return;
  const x = pts.map((p) => new Date(p.ts / 1e6));
  const dd = pts.map((p) => (fraction ? p.drawdown * 100 : p.drawdown));
  const data = [
    { x, y: pts.map((p) => p.equity), name: "equity", type: "scatter", mode: "lines", line: { color: "#4c9aff", width: 1.6 } },
    { x, y: dd, name: fraction ? "drawdown %" : "drawdown", type: "scatter", mode: "lines", fill: "tozeroy", yaxis: "y2", line: { color: "#e5534b", width: 1 } },
  ];
  const layout = {
    margin: { l: 60, r: 50, t: 10, b: 30 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { color: "#8b96a5" }, showlegend: false,
    xaxis: { gridcolor: "#26313d", anchor: "y2" }, yaxis: { gridcolor: "#26313d", domain: [0.32, 1], title: { text: "equity" } },
    yaxis2: { gridcolor: "#26313d", domain: [0, 0.26], ticksuffix: fraction ? " %" : "", title: { text: "drawdown" } },
  };
  Plotly.react("equity-chart", data, layout, { displayModeBar: false, responsive: true });
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh().catch(() => {}); }, 300);
}

function connect(afterSeq) {
  lastSeq = Math.max(lastSeq, afterSeq || 0);
  const proto = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${proto}://${location.host}/ws/events?after_seq=${lastSeq}&key=${encodeURIComponent(key)}`);
  socket.onopen = () => { $("live").textContent = "live"; $("live").className = "badge on"; };
  socket.onmessage = (msg) => { const ev = JSON.parse(msg.data); lastSeq = Math.max(lastSeq, ev.seq); scheduleRefresh(); };
  socket.onclose = () => {
    $("live").textContent = "offline"; $("live").className = "badge off"; socket = null;
    setTimeout(() => connect(lastSeq), 2000);  // resume after the last event seen: nothing missed
  };
}

async function act(action) {
  if (action === "flatten" && !confirm("Emergency stop: cancel every order and close every position?")) return;
  $("action-result").textContent = action + "…";
  try {
    const out = await api("/api/v1/operator/" + action, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason: "dashboard" }) });
    $("action-result").textContent = `${action}: ${out.status} ${out.result || ""}`;
  } catch (e) {
    $("action-result").textContent = `${action}: ${e.message}`;
  }
  scheduleRefresh();
}

function showLogin(message) {
  $("app").hidden = true; $("login").hidden = false; $("login-error").textContent = message || "";
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  key = $("key").value.trim();
  sessionStorage.setItem("tradepilot-key", key);
  start();
});
for (const b of document.querySelectorAll(".buttons button")) b.addEventListener("click", () => act(b.dataset.action));

function start() {
  if (!key) { showLogin(); return; }
  $("login").hidden = true; $("app").hidden = false;
  refresh().catch((e) => { if (e.message !== "unauthorized") $("action-result").textContent = e.message; });
}
start();
