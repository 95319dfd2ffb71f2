"""Strategy engine and pulse: routing, halting suppression, deterministic ids, alternation."""

from __future__ import annotations

from pathlib import Path

from protocol.enums import Side, TradingState
from protocol.messages import Book, OrderFilled, OrderIntent, OrderSubmitted, Trace, Trade
from services.strategy.api import Context, Strategy
from services.strategy.engine import StrategyEngine
from services.strategy.plugins.pulse import Pulse


def trade(seq: int, price: int = 70_000, symbol: str = "005930") -> Trade:
    return Trade(
        stream=1,
        seq=seq,
        symbol=symbol,
        exch_ns=0,
        price=price,
        qty=1,
        trace=Trace(observed=seq * 10),
    )


def fill(seq: int, qty: int, side: Side, strategy: str = "pulse") -> OrderFilled:
    return OrderFilled(
        seq=seq,
        fill_id=f"f{seq}",
        client_order_id=f"C{seq}",
        broker_order_no="1",
        strategy=strategy,
        symbol="005930",
        side=side,
        qty=qty,
        price=70_000,
        leaves_qty=0,
        exch_ns=0,
        ts_ns=0,
    )


def pulse_engine(tmp_path: Path, every: int = 2) -> StrategyEngine:
    e = StrategyEngine([Pulse(every, qty=3)], {}, tmp_path)
    e.trading_state = TradingState.ACTIVE
    return e


def test_pulse_every_n_trades_then_deterministic_intent_with_trace(tmp_path: Path) -> None:
    e = pulse_engine(tmp_path)
    assert e.on_market(trade(1), 100, 7) == []
    out = e.on_market(trade(2), 100, 7)
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    i = out[0]
    assert (i.intent_id, i.side, i.qty, i.price) == ("pulse:1:2:0", Side.BUY, 3, 70_000)
    assert (i.created_ns, i.trace.observed, i.trace.evaluated) == (100, 20, 7)


def test_pulse_buys_at_best_ask_and_sells_held_shares_at_best_bid(tmp_path: Path) -> None:
    e = pulse_engine(tmp_path, every=1)
    e.on_market(
        Book(stream=1, seq=1, symbol="005930", exch_ns=0, bids=[(69_900, 5)], asks=[(70_100, 5)]),
        0,
        0,
    )
    buy = e.on_market(trade(2), 0, 0)[0]
    assert isinstance(buy, OrderIntent) and (buy.side, buy.price) == (Side.BUY, 70_100)
    e.on_exec(fill(1, 3, Side.BUY), 0, 0)
    sell = e.on_market(trade(3), 0, 0)[0]
    assert isinstance(sell, OrderIntent) and (sell.side, sell.price) == (Side.SELL, 69_900)


def test_pulse_sell_due_without_holdings_then_buys(tmp_path: Path) -> None:
    e = pulse_engine(tmp_path, every=1)
    e.on_market(trade(1), 0, 0)
    second = e.on_market(trade(2), 0, 0)[0]
    assert isinstance(second, OrderIntent) and second.side is Side.BUY


def test_pulse_same_input_then_same_output(tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        e = pulse_engine(tmp_path)
        runs.append([i.intent_id for s in range(1, 9) for i in e.on_market(trade(s), 0, 0)])
    assert runs[0] == runs[1] == ["pulse:1:2:0", "pulse:1:4:0", "pulse:1:6:0", "pulse:1:8:0"]


def test_halted_then_no_order_intent_leaves(tmp_path: Path) -> None:
    e = pulse_engine(tmp_path, every=1)
    e.trading_state = TradingState.HALTED
    assert e.on_market(trade(1), 0, 0) == [] and e.suppressed == 1


def test_reducing_then_only_shrinking_intents(tmp_path: Path) -> None:
    e = pulse_engine(tmp_path, every=1)
    e.trading_state = TradingState.REDUCING
    assert e.on_market(trade(1), 0, 0) == []  # a buy on a flat position
    e.on_exec(fill(1, 3, Side.BUY), 0, 0)
    pulse = e.strategies[0]
    assert isinstance(pulse, Pulse)
    pulse.next_side["005930"] = Side.SELL
    out = e.on_market(trade(2), 0, 0)
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    assert out[0].side is Side.SELL and out[0].reduce_only


class Recorder(Strategy):
    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[object] = []

    def on_order_event(self, event: object, ctx: Context) -> None:  # type: ignore[override]
        self.events.append(event)


def test_exec_event_routed_to_its_strategy_only_and_idempotent(tmp_path: Path) -> None:
    a, b = Recorder("a"), Recorder("b")
    e = StrategyEngine([a, b], {}, tmp_path)
    e.on_exec(fill(1, 5, Side.BUY, strategy="b"), 0, 0)
    e.on_exec(fill(1, 5, Side.BUY, strategy="b"), 0, 0)
    assert a.events == [] and len(b.events) == 1
    assert e.contexts["b"].position("005930") == 5 and e.contexts["a"].position("005930") == 0


def test_submitted_then_open_order_visible_and_cancel_sent_once(tmp_path: Path) -> None:
    r = Recorder("r")
    e = StrategyEngine([r], {}, tmp_path)
    e.on_exec(
        OrderSubmitted(
            seq=1,
            client_order_id="C1",
            intent_id="r:1:1:0",
            strategy="r",
            symbol="005930",
            side=Side.BUY,
            qty=2,
            price=70_000,
            ts_ns=0,
        ),
        0,
        0,
    )
    ctx = e.contexts["r"]
    assert [o.client_order_id for o in ctx.open_orders("005930")] == ["C1"]
    e.trading_state = TradingState.HALTED
    ctx.cancel("C1")
    ctx.cancel("C1")
    assert len(e._flush()) == 1  # cancels pass even HALTED, once per order
