"""Replaying (warm-up, gap recovery): market data reaches the plugins, every order or cancel they
ask for meanwhile is counted and never emitted, and a session end seen in it is decided live."""

from __future__ import annotations

from pathlib import Path

from protocol.enums import MarketPhase, Side, TradingState
from protocol.messages import OrderIntent, OrderSubmitted, PhaseChanged, Trade
from services.strategy.api import Context, Strategy
from services.strategy.engine import StrategyEngine
from services.strategy.plugins.pulse import Pulse

MIN = 60_000_000_000
CLOSES = 1_000_000 * MIN


def trade(seq: int, exch_ns: int = 0) -> Trade:
    return Trade(stream=1, seq=seq, symbol="005930", exch_ns=exch_ns, price=70_000, qty=1)


def active(e: StrategyEngine) -> StrategyEngine:
    e.trading_state = TradingState.ACTIVE
    return e


def test_warming_when_plugin_asks_then_suppressed_counted_and_state_kept(tmp_path: Path) -> None:
    e = active(StrategyEngine([Pulse(2, qty=3)], {}, tmp_path))
    e.replaying = True

    out = [i for seq in range(1, 11) for i in e.on_market(trade(seq), 0, 0)]

    assert out == [] and e.replay_suppressed == 5 and e.suppressed == 0
    assert e.last_prices == {"005930": 70_000} and not e.contexts["pulse"].pending
    e.replaying = False
    live = e.on_market(trade(11), 0, 0) + e.on_market(trade(12), 0, 0)
    assert len(live) == 1 and isinstance(live[0], OrderIntent)  # the plugin's count went on


class Canceller(Strategy):
    name = "canceller"

    def on_market(self, event: object, ctx: Context) -> None:
        for order in ctx.open_orders():
            ctx.cancel(order.client_order_id)


def test_warming_when_plugin_cancels_then_suppressed(tmp_path: Path) -> None:
    e = active(StrategyEngine([Canceller()], {}, tmp_path))
    e.warm(OrderSubmitted(seq=1, client_order_id="C1", intent_id="i", strategy="canceller",
                          symbol="005930", side=Side.BUY, qty=1, price=70_000,
                          ts_ns=0))  # fmt: skip
    e.replaying = True

    assert e.on_market(trade(1), 0, 0) == [] and e.replay_suppressed == 1
    assert not e.contexts["canceller"].cancelling  # a live cancel is still possible
    e.replaying = False
    assert len(e.on_market(trade(2), 0, 0)) == 1


class Flattener(Strategy):
    name = "flattener"
    flatten_before_close = True

    def __init__(self) -> None:
        self.ends: list[int] = []

    def on_session_end(self, closes_ns: int, ctx: Context) -> None:
        self.ends.append(closes_ns)


def test_warming_when_replay_passes_the_session_end_then_it_is_decided_live(
    tmp_path: Path,
) -> None:
    s = Flattener()
    e = active(StrategyEngine([s], {}, tmp_path, 5.0))
    e.replaying = True
    e.on_market(PhaseChanged(stream=1, seq=1, symbol="", exch_ns=0, closes_ns=CLOSES,
                             phase=MarketPhase.CONTINUOUS), 0, 0)  # fmt: skip
    e.on_market(trade(2, exch_ns=CLOSES - MIN), 0, 0)
    assert s.ends == []

    e.replaying = False
    e.on_market(trade(3, exch_ns=CLOSES - MIN), 0, 0)

    assert s.ends == [CLOSES]
