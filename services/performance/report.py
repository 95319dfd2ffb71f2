"""The end-of-day report: an HTML page, PNG charts (matplotlib) and the figures as JSON.

Input is PerformanceEngine.report_data(): plain data, so the files can be written off the
service's loop (a thread) and re-rendered from a saved report.json:
    python -m services.performance.report var/reports/2026-11-25/report.json
matplotlib is used through its object API (Figure + Agg canvas), never pyplot: no global state,
no display, safe outside the main thread.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")
CHARTS = ("equity.png", "pnl.png", "latency.png", "fills.png")
DPI = 100


def _times(ns: Sequence[int]) -> list[dt.datetime]:
    # naive KST wall times: matplotlib's date axis then shows Seoul time whatever the host's zone
    return [dt.datetime.fromtimestamp(t / 1e9, KST).replace(tzinfo=None) for t in ns]


def _figure(rows: int = 1, height: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, height * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, axes


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)  # a minute-long test session and a day both read well
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("KST")


def _won(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def chart_equity(data: dict[str, Any], path: Path) -> None:
    fig, (top, bottom) = _figure(2)
    curve = data["curve"]
    if curve:
        t = _times([p[0] for p in curve])
        equity = [p[1] for p in curve]
        peak, dd = None, []
        for e in equity:
            peak = e if peak is None or e > peak else peak
            dd.append(e - peak)
        top.plot(t, equity, color="tab:blue", drawstyle="steps-post")
        top.set_title(f"Equity {data['date']} (KRW)")
        _won(top)
        _time_axis(top)
        bottom.fill_between(t, dd, 0, color="tab:red", alpha=0.4, step="post")
        bottom.set_title("Drawdown from the running peak (KRW)")
        _won(bottom)
        _time_axis(bottom)
    else:
        _empty(top, "portfolio snapshots")
        _empty(bottom, "drawdown")
    fig.savefig(path)


def _bars(ax: Any, values: dict[str, int], title: str) -> None:
    if not values:
        _empty(ax, title.lower())
        return
    names = list(values)
    nets = [values[n] for n in names]
    ax.barh(names, nets, color=["tab:green" if v >= 0 else "tab:red" for v in nets])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_title(title)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def chart_pnl(data: dict[str, Any], path: Path) -> None:
    fig, (top, bottom) = _figure(2)
    _bars(top, {s: r["net"] for s, r in data["by_symbol"].items()}, "Net PnL by symbol (KRW)")
    _bars(
        bottom,
        {s: r["pnl"]["net"] for s, r in data["by_strategy"].items()},
        "Net PnL by strategy (KRW)",
    )
    fig.savefig(path)


def chart_latency(data: dict[str, Any], path: Path) -> None:
    fig, (ax,) = _figure(1, 4.0)
    bins = data["latency_bins_us"]
    if bins:
        for stage, rows in bins.items():
            values = [r[0] for r in rows]
            total = sum(r[1] for r in rows)
            cum, acc = [], 0
            for r in rows:
                acc += r[1]
                cum.append(acc / total)
            marker = "o" if len(rows) < 3 else None  # one value: a point, not an empty step
            ax.plot(values, cum, drawstyle="steps-post", marker=marker, label=stage)
        ax.set_xscale("log")
        ax.set_xlabel("latency (µs, log scale)")
        ax.set_ylabel("fraction of orders at or below")
        ax.set_title("Latency by stage (cumulative distribution)")
        ax.legend(loc="lower right", fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    else:
        _empty(ax, "traced orders")
    fig.savefig(path)


def chart_fills(data: dict[str, Any], path: Path) -> None:
    fig, (ax,) = _figure(1, 3.6)
    fills = sorted(data["fills"])
    if fills:
        by_strategy: dict[str, list[int]] = {}
        for f in fills:
            by_strategy.setdefault(f[1] or "(none)", []).append(f[0])
        for name, ts in sorted(by_strategy.items()):
            ax.plot(_times(ts), range(1, len(ts) + 1), drawstyle="steps-post", label=name)
        ax.set_title("Fills over the day (cumulative count)")
        ax.legend(loc="upper left", fontsize="small")
        _time_axis(ax)
    else:
        _empty(ax, "fills")
    fig.savefig(path)


# ---------------------------------------------------------------------------------------- html
def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if isinstance(c, int | float) else ""}">{_cell(c)}</td>'
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _strategy_row(name: str, s: dict[str, Any]) -> list[Any]:
    p = s["pnl"]
    return [
        name,
        p["gross"],
        p["costs"],
        p["net"],
        s["orders"],
        s["fills"],
        s["rejects"],
        s["cancels"],
        s["turnover"],
        s["round_trips"],
        s["hit_rate"],
        s["avg_win"],
        s["avg_loss"],
        s["profit_factor"],
        s["max_drawdown"],
        s["sharpe"]["annualized"],
    ]


STRATEGY_HEADERS = (
    "strategy", "gross", "costs", "net", "orders", "fills", "rejects", "cancels", "turnover",
    "round trips", "hit rate", "avg win", "avg loss", "profit factor", "max drawdown",
    "Sharpe (1-min, annualized)",
)  # fmt: skip

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""


def render_html(data: dict[str, Any]) -> str:
    t = data["total"]
    p = t["pnl"]
    summary = _table(
        ("realised", "unrealised", "gross", "fees", "taxes", "net", "cash", "equity"),
        [[p["realized"], p["unrealized"], p["gross"], p["fees"], p["taxes"], p["net"],
          p["cash"], p["equity"]]],
    )  # fmt: skip
    strategies = _table(
        STRATEGY_HEADERS,
        [_strategy_row(n, s) for n, s in data["by_strategy"].items()] + [_strategy_row("total", t)],
    )
    symbols = _table(
        ("symbol", "qty", "realised", "unrealised", "costs", "net"),
        [[s, r["qty"], r["realized"], r["unrealized"], r["costs"], r["net"]]
         for s, r in sorted(data["by_symbol"].items())],
    )  # fmt: skip
    latency = _table(
        ("stage", "count", "p50 µs", "p99 µs", "p99.9 µs", "max µs"),
        [[k, v["count"], v["p50"], v["p99"], v["p999"], v["max"]]
         for k, v in data["latency_us"].items()],
    )  # fmt: skip
    title = f"QTS end of day {html.escape(data['date'])}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{STYLE}</style></head><body>
<h1>{title}</h1>
<p>PnL is the portfolio's at the day's last snapshot (exec seq {p.get("exec_seq", 0):,}),
KRW, costs = commission + transaction tax + rural special tax. Figures:
<a href="report.json">report.json</a>.</p>
<h2>Account</h2>{summary}
<img src="equity.png" alt="equity curve and drawdown">
<h2>By strategy</h2>{strategies}
<h2>By symbol</h2>{symbols}
<img src="pnl.png" alt="net PnL by symbol and by strategy">
<h2>Latency</h2>{latency}
<img src="latency.png" alt="latency distributions by stage">
<h2>Fills</h2>
<img src="fills.png" alt="fills over the day">
</body></html>
"""


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_report(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write report.json, the PNG charts and index.html (last, so a page that exists has its
    charts). Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json"]
    _atomic_write(paths[0], json.dumps(data, indent=1, sort_keys=True))
    for name, draw in zip(
        CHARTS, (chart_equity, chart_pnl, chart_latency, chart_fills), strict=True
    ):
        draw(data, out_dir / name)
        paths.append(out_dir / name)
    paths.append(out_dir / "index.html")
    _atomic_write(paths[-1], render_html(data))
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m services.performance.report <report.json>", file=sys.stderr)
        return 2
    src = Path(argv[0])
    try:
        data = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {src}: {exc}", file=sys.stderr)
        return 1
    for p in write_report(data, src.parent):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
