"""scalp and swing on constructed market data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from protocol.enums import MarketPhase, Side, TradingState
from protocol.messages import (
    Book,
    CancelIntent,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    PhaseChanged,
    Trade,
)
from services.strategy.engine import StrategyEngine
from services.strategy.plugins.scalp import Scalp
from services.strategy.plugins.swing import KST, Swing, kst_date

SYM = "005930"


def trade(seq: int, price: int, exch_ns: int = 0) -> Trade:
    return Trade(stream=1, seq=seq, symbol=SYM, exch_ns=exch_ns, price=price, qty=1)


def book(seq: int, bid_qty: int, ask_qty: int) -> Book:
    return Book(stream=1, seq=seq, symbol=SYM, exch_ns=0,
                bids=[(70_000, bid_qty), (69_900, bid_qty), (69_800, bid_qty)],
                asks=[(70_100, ask_qty), (70_200, ask_qty), (70_300, ask_qty)])  # fmt: skip


def active(engine: StrategyEngine) -> StrategyEngine:
    engine.trading_state = TradingState.ACTIVE
    return engine


def submitted(
    seq: int, coid: str, side: Side, qty: int, price: int, ts: int = 0, intent_id: str = ""
) -> OrderSubmitted:
    return OrderSubmitted(seq=seq, client_order_id=coid, intent_id=intent_id or f"i{seq}",
                          strategy="scalp", symbol=SYM, side=side, qty=qty, price=price,
                          ts_ns=ts)  # fmt: skip


def filled(seq: int, coid: str, side: Side, qty: int, price: int) -> OrderFilled:
    return OrderFilled(seq=seq, fill_id=f"f{seq}", client_order_id=coid, broker_order_no="1",
                       strategy="scalp", symbol=SYM, side=side, qty=qty, price=price,
                       leaves_qty=0, exch_ns=0, ts_ns=0)  # fmt: skip


def canceled(seq: int, coid: str) -> OrderCanceled:
    return OrderCanceled(
        seq=seq, client_order_id=coid, broker_order_no="1", strategy="scalp", symbol=SYM,
        side=Side.SELL, canceled_qty=10, reason="", ts_ns=0,
    )  # fmt: skip


def scalp_with_momentum(tmp_path: Path) -> StrategyEngine:
    e = active(StrategyEngine([Scalp()], {"scalp": {"notional": 700_000}}, tmp_path))
    for seq, price in enumerate((69_000, 69_500, 70_000), start=1):
        e.on_market(trade(seq, price), 0, 0)
    return e


def test_scalp_bid_heavy_book_and_rising_prices_then_buys_at_best_bid(tmp_path: Path) -> None:
    e = scalp_with_momentum(tmp_path)
    out = e.on_market(book(10, bid_qty=900, ask_qty=100), 0, 0)
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    assert (out[0].side, out[0].price, out[0].qty) == (Side.BUY, 70_000, 10)


def test_scalp_balanced_book_then_no_entry(tmp_path: Path) -> None:
    e = scalp_with_momentum(tmp_path)
    assert e.on_market(book(10, bid_qty=500, ask_qty=500), 0, 0) == []


def test_scalp_falling_prices_then_no_entry(tmp_path: Path) -> None:
    e = active(StrategyEngine([Scalp()], {}, tmp_path))
    for seq, price in enumerate((71_000, 70_500, 70_000), start=1):
        e.on_market(trade(seq, price), 0, 0)
    assert e.on_market(book(10, bid_qty=900, ask_qty=100), 0, 0) == []


def test_scalp_fill_then_take_profit_then_stop_cancels_and_sells(tmp_path: Path) -> None:
    e = scalp_with_momentum(tmp_path)
    entry = e.on_market(book(10, bid_qty=900, ask_qty=100), 0, 0)[0]
    e.on_exec(submitted(1, "B1", Side.BUY, 10, 70_000, intent_id=entry.intent_id), 0, 0)
    take = e.on_exec(filled(2, "B1", Side.BUY, 10, 70_000), 0, 0)
    assert len(take) == 1 and isinstance(take[0], OrderIntent)
    assert (take[0].side, take[0].price, take[0].reduce_only) == (Side.SELL, 70_200, True)
    e.on_exec(submitted(3, "S1", Side.SELL, 10, 70_200, intent_id=take[0].intent_id), 0, 0)
    assert e.on_market(trade(19, 69_800), 0, 0) == []  # 2 ticks down: hold
    out = e.on_market(trade(20, 69_700), 0, 0)  # 3 ticks below the entry
    assert len(out) == 1 and isinstance(out[0], CancelIntent)
    assert out[0].client_order_id == "S1"
    e.on_exec(canceled(4, "S1"), 0, 0)
    out = e.on_market(trade(21, 69_700), 0, 0)
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    assert (out[0].side, out[0].qty, out[0].reduce_only) == (Side.SELL, 10, True)


def test_scalp_entry_not_filled_in_time_then_cancelled(tmp_path: Path) -> None:
    e = scalp_with_momentum(tmp_path)
    e.on_exec(submitted(1, "B1", Side.BUY, 10, 70_000, ts=0), 0, 0)
    assert e.on_timer(3_000_000_000, 0) == []
    out = e.on_timer(3_000_000_001, 0)
    assert len(out) == 1 and isinstance(out[0], CancelIntent)


def test_scalp_closing_auction_then_flattens_reduce_only(tmp_path: Path) -> None:
    e = scalp_with_momentum(tmp_path)
    take = e.on_exec(filled(1, "B1", Side.BUY, 10, 70_000), 0, 0)[0]
    e.on_exec(submitted(2, "S1", Side.SELL, 10, 70_200, intent_id=take.intent_id), 0, 0)
    out = e.on_market(PhaseChanged(stream=1, seq=30, symbol="", exch_ns=0,
                                   phase=MarketPhase.CLOSING_AUCTION), 0, 0)  # fmt: skip
    assert len(out) == 1 and isinstance(out[0], CancelIntent)  # the take-profit first
    e.on_exec(canceled(3, "S1"), 0, 0)
    out = e.on_timer(1, 0)
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    assert (out[0].side, out[0].qty, out[0].reduce_only) == (Side.SELL, 10, True)
    assert e.on_market(book(31, bid_qty=900, ask_qty=100), 0, 0) == []  # no entries closing


def test_scalp_exits_at_the_market_are_not_cancelled_again_while_closing(tmp_path: Path) -> None:
    e = scalp_with_momentum(tmp_path)
    e.on_market(book(10, bid_qty=900, ask_qty=100), 0, 0)
    take = e.on_exec(filled(1, "B1", Side.BUY, 10, 70_000), 0, 0)[0]
    # at the best bid
    e.on_exec(submitted(2, "S1", Side.SELL, 10, 70_000, intent_id=take.intent_id), 0, 0)
    e.on_market(PhaseChanged(stream=1, seq=30, symbol="", exch_ns=0,
                             phase=MarketPhase.CLOSING_AUCTION), 0, 0)  # fmt: skip
    assert e.on_timer(1, 0) == [] and e.on_timer(2, 0) == []


MIN = 60_000_000_000
CLOSES = 1_000_000 * MIN  # an arbitrary session end, exchange clock


def test_scalp_flattens_the_configured_minutes_before_the_closing_auction(
    tmp_path: Path,
) -> None:
    e = active(StrategyEngine([Scalp()], {"scalp": {"notional": 700_000}}, tmp_path, 5.0))
    e.on_market(PhaseChanged(stream=1, seq=1, symbol="", exch_ns=0, closes_ns=CLOSES,
                             phase=MarketPhase.CONTINUOUS), 0, 0)  # fmt: skip
    for seq, price in enumerate((69_000, 69_500, 70_000), start=2):
        e.on_market(trade(seq, price, exch_ns=CLOSES - 16 * MIN), 0, 0)
    take = e.on_exec(filled(1, "B1", Side.BUY, 10, 70_000), 0, 0)[0]  # the take-profit
    e.on_exec(submitted(2, "S1", Side.SELL, 10, 70_200, intent_id=take.intent_id), 0, 0)
    # 15 min + 1 ns before the close: the closing auction starts in 5 min + 1 ns: not yet
    assert e.on_market(trade(10, 70_000, exch_ns=CLOSES - 15 * MIN - 1), 0, 0) == []
    out = e.on_market(trade(11, 70_000, exch_ns=CLOSES - 15 * MIN), 0, 0)
    assert len(out) == 1 and isinstance(out[0], CancelIntent)  # the take-profit above the bid
    e.on_exec(canceled(3, "S1"), 0, 0)
    out = e.on_timer(1, 0)
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    assert (out[0].side, out[0].qty, out[0].reduce_only) == (Side.SELL, 10, True)
    e.on_exec(submitted(4, "X", Side.SELL, 10, 70_000, intent_id=out[0].intent_id), 0, 0)
    e.on_exec(filled(5, "X", Side.SELL, 10, 70_000), 0, 0)
    # the observer repeats CONTINUOUS for this session: no new entries all the same
    e.on_market(PhaseChanged(stream=1, seq=20, symbol="", exch_ns=0, closes_ns=CLOSES,
                             phase=MarketPhase.CONTINUOUS), 0, 0)  # fmt: skip
    assert e.on_market(book(21, bid_qty=900, ask_qty=100), 0, 0) == []
    # the next session trades again
    e.on_market(PhaseChanged(stream=1, seq=22, symbol="", exch_ns=0, closes_ns=CLOSES + 1440 * MIN,
                             phase=MarketPhase.CONTINUOUS), 0, 0)  # fmt: skip
    for seq, price in enumerate((70_500, 71_000, 71_500), start=23):
        e.on_market(trade(seq, price, exch_ns=CLOSES + 1000 * MIN), 0, 0)
    out = e.on_market(book(30, bid_qty=900, ask_qty=100), 0, 0)
    assert len(out) == 1 and out[0].side is Side.BUY  # type: ignore[union-attr]


def kst_ns(day: int, hour: int) -> int:
    return int(dt.datetime(2026, 1, day, hour, tzinfo=KST).timestamp()) * 1_000_000_000


def test_kst_date_uses_seoul_not_utc() -> None:
    # 2026-01-05 23:30 UTC is 08:30 on the 6th in Seoul
    ns = int(dt.datetime(2026, 1, 5, 23, 30, tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    assert kst_date(ns) == "2026-01-06"


def test_swing_bars_by_kst_day_then_crossover_buys(tmp_path: Path) -> None:
    s = Swing()
    e = active(StrategyEngine([s], {"swing": {"fast": 2, "slow": 3}}, tmp_path))
    e.start()
    out = []
    for seq, (day, price) in enumerate([(5, 10_000), (6, 9_000), (7, 8_000), (8, 12_000),
                                        (9, 12_500)], start=1):  # fmt: skip
        out += e.on_market(trade(seq * 2, price + 100, kst_ns(day, 9)), 0, 0)
        out += e.on_market(trade(seq * 2 + 1, price, kst_ns(day, 15)), 0, 0)
    assert s.bars[SYM]["2026-01-08"] == [12_100, 12_100, 12_000, 12_000, 2]
    # closes 10000, 9000, 8000 -> fast 8500 < slow 9000; then 12000 -> fast 10000 > 9667
    assert len(out) == 1 and isinstance(out[0], OrderIntent)
    assert out[0].side is Side.BUY and out[0].qty == 10_000_000 // 12_600


def test_swing_persistence_round_trip(tmp_path: Path) -> None:
    s = Swing()
    e = active(StrategyEngine([s], {}, tmp_path))
    e.start()
    e.on_market(trade(1, 10_000, kst_ns(5, 9)), 0, 0)
    e.on_timer(0, 0)
    restored = Swing()
    StrategyEngine([restored], {}, tmp_path).start()
    assert restored.bars == s.bars and (tmp_path / "strategy_swing.json").exists()


def test_swing_restarted_does_not_count_replayed_trades_twice(tmp_path: Path) -> None:
    s = Swing()
    e = active(StrategyEngine([s], {}, tmp_path))
    e.start()
    e.on_market(trade(1, 10_000, kst_ns(5, 9)), 0, 0)
    e.on_market(trade(2, 10_100, kst_ns(5, 10)), 0, 0)
    e.on_timer(0, 0)
    restored = Swing()
    e2 = active(StrategyEngine([restored], {}, tmp_path))
    e2.start()
    for seq, price, hour in ((1, 10_000, 9), (2, 10_100, 10), (3, 10_200, 11)):  # warm-up + 1
        e2.on_market(trade(seq, price, kst_ns(5, hour)), 0, 0)
    day = next(iter(restored.bars[SYM]))
    assert restored.bars[SYM][day] == [10_000, 10_200, 10_000, 10_200, 3]  # volume 3, not 5
