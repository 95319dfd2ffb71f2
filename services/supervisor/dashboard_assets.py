"""The dashboard's page, script and style (served by services/supervisor/dashboard.py).

Kept as strings so that an installed package (pip install ., the Docker image) has them. The
script reads /api/state every two seconds and writes every value with textContent, never as
HTML: order reasons come from brokers. The Content-Security-Policy allows only these files.
"""

from __future__ import annotations

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>QTS</title>
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>QTS</h1>
  <div id="state" class="state unknown">…</div>
  <div id="state-detail"></div>
  <div id="updated"></div>
</header>
<main>
  <section>
    <h2>Services</h2>
    <table id="services"><thead><tr>
      <th>service</th><th>alive</th><th>status</th><th>heartbeat age ms</th><th>epoch ack</th>
      <th>pid</th><th>detail</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>PnL (KRW)</h2>
    <table id="pnl"><tbody></tbody></table>
    <p id="pnl-error" class="error"></p>
  </section>
  <section>
    <h2>Positions</h2>
    <table id="positions"><thead><tr>
      <th>strategy</th><th>symbol</th><th>qty</th><th>avg price</th><th>last</th>
      <th>unrealized</th><th>realized</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Open orders</h2>
    <table id="open-orders"><thead><tr>
      <th>order</th><th>strategy</th><th>symbol</th><th>side</th><th>qty</th><th>price</th>
      <th>filled</th><th>status</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Recent rejects</h2>
    <table id="rejects"><thead><tr>
      <th>order</th><th>strategy</th><th>symbol</th><th>side</th><th>qty</th><th>status</th>
      <th>code</th><th>reason</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Latency (µs)</h2>
    <table id="latency"><thead><tr>
      <th>stage</th><th>count</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Guardrails</h2>
    <table id="guardrails"><thead><tr>
      <th>guardrail</th><th>enabled</th><th>action</th><th>fired</th><th>last</th>
    </tr></thead><tbody></tbody></table>
  </section>
  <section id="halt">
    <h2>Halt</h2>
    <p id="halt-note"></p>
    <label>reason <input id="halt-reason" type="text" maxlength="200"></label>
    <label>token <input id="halt-token" type="password" autocomplete="off"></label>
    <button id="halt-button" type="button">HALT trading</button>
    <p id="halt-result"></p>
  </section>
</main>
</body>
</html>
"""

APP_JS = """"use strict";
function cell(row, value) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "" : String(value);
  row.appendChild(td);
  return td;
}
function fill(id, rows, columns) {
  const body = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const c of columns) cell(tr, typeof c === "function" ? c(r) : r[c]);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}
function num(v) { return typeof v === "number" ? v.toLocaleString("en-US") : v; }
function render(data) {
  const s = data.status;
  const state = document.getElementById("state");
  if (s) {
    state.textContent = s.state;
    state.className = "state " + s.state.toLowerCase();
    document.getElementById("state-detail").textContent =
      "epoch " + s.epoch + " by " + s.by + ": " + s.reason;
    const services = Object.entries(s.services).map(([name, v]) => ({name, ...v}));
    fill("services", services, ["name", (r) => r.alive ? "yes" : "NO", "status", "age_ms",
      "epoch_ack", "pid", "detail"]);
    const g = Object.entries(s.guardrails || {}).map(([name, v]) => ({name, ...v}));
    fill("guardrails", g, ["name", "enabled", "action", "fired", "last"]);
  }
  const age = (data.now_ns - data.view_ns) / 1e9;
  document.getElementById("updated").textContent =
    "updated " + new Date(data.now_ns / 1e6).toISOString() + (age > 5 ? " (supervisor view "
    + age.toFixed(1) + " s old)" : "");
  const b = data.book || {};
  const pnl = b.pnl || {};
  fill("pnl", ["realized", "unrealized", "fees", "taxes", "net", "equity", "cash"]
    .filter((k) => k in pnl).map((k) => ({k, v: num(pnl[k])})), ["k", "v"]);
  const errors = Object.entries(b.sources || {}).filter(([, v]) => !v.ok)
    .map(([k, v]) => k + ": " + v.error);
  document.getElementById("pnl-error").textContent = errors.join("; ");
  fill("positions", (b.positions || []).filter((p) => p.qty !== 0),
    [(r) => r.strategy || "(account)", "symbol", "qty", "avg_price", "last_price",
     "unrealized", "realized"]);
  fill("open-orders", b.open_orders || [], ["client_order_id", "strategy", "symbol", "side",
    "qty", "price", "filled_qty", "status"]);
  fill("rejects", b.rejects || [], ["client_order_id", "strategy", "symbol", "side", "qty",
    "status", "code", "reason"]);
  const lat = Object.entries(b.latency_us || {}).map(([stage, v]) => ({stage, ...v}));
  fill("latency", lat, ["stage", "count", "p50", "p99", "p999", "max"]);
  document.getElementById("halt-note").textContent = data.halt_enabled ? ""
    : "halt button disabled: " + data.halt_token_env + " is not set for the supervisor";
  document.getElementById("halt-button").disabled = !data.halt_enabled;
}
async function refresh() {
  try {
    const r = await fetch("/api/state", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    document.getElementById("updated").textContent = "supervisor unreachable: " + e;
  }
}
async function halt() {
  const out = document.getElementById("halt-result");
  out.textContent = "halting…";
  try {
    const r = await fetch("/api/halt", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({
        token: document.getElementById("halt-token").value,
        reason: document.getElementById("halt-reason").value,
      }),
    });
    const d = await r.json();
    if (d.ok) {
      out.textContent = "HALTED (epoch " + d.data.epoch + ")";
    } else if (d.data && d.data.state) {
      // the state changed, but not every service acknowledged it in time
      out.textContent = d.data.state + " (epoch " + d.data.epoch + "), but " + d.reason;
    } else {
      out.textContent = "refused: " + d.reason;
    }
  } catch (e) {
    out.textContent = "failed: " + e;
  }
  document.getElementById("halt-token").value = "";
  refresh();
}
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("halt-button").addEventListener("click", halt);
  refresh();
  setInterval(refresh, 2000);
});
"""

APP_CSS = """body { font-family: system-ui, sans-serif; margin: 1rem; color: #222; }
header { display: flex; gap: 1.5rem; align-items: baseline; flex-wrap: wrap; }
h1 { margin: 0; }
h2 { font-size: 1.05rem; margin: 1.2rem 0 0.3rem; }
.state { font-weight: bold; padding: 0.2rem 0.8rem; border-radius: 4px; color: #fff; }
.state.active { background: #1a7f37; }
.state.reducing { background: #bf8700; }
.state.halted { background: #cf222e; }
.state.unknown { background: #777; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.15rem 0.5rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.error { color: #cf222e; }
#halt label { margin-right: 1rem; }
#halt-button { background: #cf222e; color: #fff; border: 0; padding: 0.4rem 1rem; }
#halt-button:disabled { background: #aaa; }
"""

ASSETS: dict[str, tuple[str, str]] = {
    "/": (INDEX_HTML, "text/html; charset=utf-8"),
    "/index.html": (INDEX_HTML, "text/html; charset=utf-8"),
    "/app.js": (APP_JS, "text/javascript; charset=utf-8"),
    "/app.css": (APP_CSS, "text/css; charset=utf-8"),
}
