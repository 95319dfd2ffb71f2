"""swing: daily bars and a moving-average crossover, positions held across days.

Bars are built from trades by the KST (Asia/Seoul) exchange date. When the fast SMA of daily
closes (default 5) crosses above the slow one (default 20) it buys `notional` KRW worth at the
best ask; when it crosses below, it sells what it holds at the best bid. Bars and the last
signal are persisted to <state_dir>/strategy_swing.json (atomic write), so a restart or the next
day continues with the history.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo

from protocol.messages import MarketData, Trade
from services.strategy.api import Context, Strategy

KST = ZoneInfo("Asia/Seoul")


def kst_date(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, KST).date().isoformat()


def sma(values: list[int], n: int) -> float | None:
    return sum(values[-n:]) / n if len(values) >= n else None


class Swing(Strategy):
    name = "swing"

    def __init__(self) -> None:
        self.bars: dict[str, dict[str, list[int]]] = {}  # symbol -> date -> [o, h, l, c, v]
        self.signal: dict[str, int] = {}  # symbol -> last crossover sign (+1 / -1)
        # symbol -> exchange time of the last trade in the bars: a restarted strategy's
        # warm-up replays trades the saved bars already hold, which must not count twice
        self.last_ns: dict[str, int] = {}
        self.path: Path | None = None
        self.dirty = False

    def on_start(self, ctx: Context) -> None:
        self.path = ctx.state_dir / "strategy_swing.json"
        try:
            data = json.loads(self.path.read_text())
            self.bars, self.signal = data["bars"], data["signal"]
            self.last_ns = data.get("last_ns", {})  # absent in files from before it existed
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{self.path} is unreadable ({exc}); move it aside to start over"
            ) from exc

    def on_market(self, event: MarketData, ctx: Context) -> None:
        if not isinstance(event, Trade):
            return
        if event.exch_ns <= self.last_ns.get(event.symbol, -1):
            return  # already in the bars (a replay after a restart)
        self.last_ns[event.symbol] = event.exch_ns
        day = kst_date(event.exch_ns)
        bars = self.bars.setdefault(event.symbol, {})
        new_day = day not in bars
        bar = bars.setdefault(day, [event.price, event.price, event.price, event.price, 0])
        bar[1] = max(bar[1], event.price)
        bar[2] = min(bar[2], event.price)
        bar[3] = event.price
        bar[4] += event.qty
        self.dirty = True
        if new_day:
            self.evaluate(event.symbol, ctx)

    def evaluate(self, symbol: str, ctx: Context) -> None:
        """On the first trade of a day: signals from completed days' closes only."""
        days = sorted(self.bars[symbol])[:-1]
        closes = [self.bars[symbol][d][3] for d in days]
        fast_n, slow_n = int(ctx.params.get("fast", 5)), int(ctx.params.get("slow", 20))
        fast, slow = sma(closes, fast_n), sma(closes, slow_n)
        if fast is None or slow is None:
            return
        sign = 1 if fast > slow else -1
        previous = self.signal.get(symbol)
        self.signal[symbol] = sign
        if previous is None or previous == sign or ctx.open_orders(symbol):
            return
        book = ctx.book(symbol)
        if sign > 0 and ctx.position(symbol) == 0:
            price = book.asks[0][0] if book and book.asks else ctx.last_price(symbol)
            qty = int(ctx.params.get("notional", 10_000_000)) // price if price else 0
            if qty:
                ctx.buy(symbol, qty, price)
        elif sign < 0 and ctx.position(symbol) > 0:
            price = book.bids[0][0] if book and book.bids else ctx.last_price(symbol)
            ctx.sell(symbol, ctx.position(symbol), price, reduce_only=True)

    def on_timer(self, now_ns: int, ctx: Context) -> None:
        if self.dirty and self.path is not None:
            self.save(self.path)
            self.dirty = False

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        state = {"bars": self.bars, "signal": self.signal, "last_ns": self.last_ns}
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)
