"""Tables for people: aligned columns, KRW with thousands separators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def krw(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        [
            krw(c)
            if isinstance(c, int) and not isinstance(c, bool)
            else ("" if c is None else str(c))
            for c in row
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if n and _numeric(c) else c.ljust(w)
                for c, w in zip(row, widths, strict=True)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace("-", "").replace(".", "").isdigit()


# ------------------------------------------------------------------------ portfolio, performance
def render_positions(data: dict[str, Any]) -> str:
    """`qts-ctl positions`: account rows first, then each strategy's, then the deposit."""
    held = [p for p in data["positions"] if p["qty"] or p["realized"]]
    held.sort(key=lambda p: (p["strategy"] != "", p["strategy"], p["symbol"]))
    rows = [
        (
            p["strategy"] or "account",
            p["symbol"],
            p["qty"],
            p.get("sellable", p["qty"]),
            p.get("avg_price", p["cost"] // p["qty"] if p["qty"] else 0),
            p["last_price"],
            p["unrealized"],
            p["realized"],
            p["fees"] + p["taxes"],
        )
        for p in held
    ]
    text = table(
        (
            "strategy",
            "symbol",
            "qty",
            "sellable",
            "avg price",
            "last",
            "unrealised",
            "realised",
            "fees+tax",
        ),
        rows,
    )
    text += f"\ncash {krw(data['cash'])} KRW, equity {krw(data['equity'])} KRW"
    bal = data.get("balance")
    if bal:
        text += (
            f"\ndeposit D+0 {krw(bal['d0'])}, D+1 {krw(bal['d1'])}, D+2 {krw(bal['d2'])}; "
            f"buying power {krw(bal['buying_power'])} (open buys hold {krw(bal['reserved'])}); "
            f"withdrawable {krw(bal['withdrawable'])} KRW"
        )
    return text


def _ratio(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def render_pnl(data: dict[str, Any]) -> str:
    """`qts-ctl pnl`: the portfolio's PnL by strategy and symbol; the performance figures and
    latency when the performance service answers."""
    p = data["portfolio"]

    def pnl_row(name: str, s: dict[str, Any]) -> tuple[Any, ...]:
        gross = s.get("gross", s["realized"] + s["unrealized"])
        return (name, s["realized"], s["unrealized"], gross, s["fees"], s["taxes"], s["net"])

    rows = [pnl_row(n, s) for n, s in sorted(p.get("by_strategy", {}).items())]
    rows.append(pnl_row("total", p))
    head = ("strategy", "realised", "unrealised", "gross", "fees", "taxes", "net")
    text = table(head, rows)
    text += f"\ncash {krw(p['cash'])} KRW, equity {krw(p['equity'])} KRW"
    by_symbol = p.get("by_symbol") or {}
    if by_symbol:
        text += "\n\n" + table(
            ("symbol", "realised", "unrealised", "costs", "net"),
            [
                (sym, r["realized"], r["unrealized"], r["costs"], r["net"])
                for sym, r in sorted(by_symbol.items())
            ],
        )
    perf = data.get("performance")
    if perf:
        stats = [(n, s) for n, s in sorted(perf.get("by_strategy", {}).items())]
        stats.append(("total", perf))
        text += "\n\n" + table(
            (
                "strategy",
                "orders",
                "fills",
                "rejects",
                "cancels",
                "turnover",
                "trips",
                "hit rate",
                "avg win",
                "avg loss",
                "profit factor",
            ),
            [
                (
                    n,
                    s["orders"],
                    s["fills"],
                    s["rejects"],
                    s["cancels"],
                    s["turnover"],
                    s["round_trips"],
                    _ratio(s["hit_rate"]),
                    s["avg_win"],
                    s["avg_loss"],
                    _ratio(s.get("profit_factor")),
                )
                for n, s in stats
            ],
        )
        dd = perf.get("pnl", {}).get("max_drawdown")
        if dd is not None:
            text += f"\nmax drawdown {krw(dd)} KRW"
        lat = [
            (k, v["count"], v["p50"], v["p99"], v["p999"], v["max"])
            for k, v in perf.get("latency_us", {}).items()
        ]
        if lat:
            text += "\n\n" + table(("latency (µs)", "count", "p50", "p99", "p99.9", "max"), lat)
    return text


def render_report(data: dict[str, Any]) -> str:
    index = next((f for f in data["files"] if f.endswith("index.html")), data["dir"])
    return f"report of {data['date']}: {index}\n" + "\n".join(
        f"  {f}" for f in data["files"] if f != index
    )
