"""The risk decision alone: RiskEngine.decide() over realistic intents, in this process.

20 symbols, 3 strategies, default limits (a paper account), the market in CONTINUOUS trading.
Between decisions the engine sees what it would see live: last trades on a random walk, and
execution's events for the orders it approved (most fill at once, some fill in parts, the rest
are cancelled a little later), so open orders, positions and cash stay realistic. Only the
decide() call is timed (time.perf_counter_ns around it). Intents come 2 ms apart on the engine's
clocks (500 a second, under the paper throttle), mostly buys and sells near the last trade; a
few carry a mistake (off-tick, far from the last trade, too large) so denials are in the mix.

    python -m tests.bench.risk [--decisions N]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from typing import Any

from protocol.enums import MarketPhase, Side, TradingState
from protocol.messages import (
    Instrument,
    IntentDenied,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    PhaseChanged,
    SubmitOrder,
    Trace,
    Trade,
)
from services.risk.engine import RiskEngine
from services.runtime import krx
from services.runtime.settings import AccountSettings, BrokerSettings, RiskSettings

NOW = 1_780_030_000_000_000_000  # a weekday, 13:46 in Korea
STRATEGIES = ("scalp", "swing", "pulse")


def _percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1_000


def run_risk_bench(decisions: int = 200_000, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    # default limits, except the daily ones: 200k orders are more than a day's 50,000, and
    # their round trips pay more in tax than the 1.5M daily loss; past either nearly
    # everything would be refused cheaply and the figure would flatter us
    engine = RiskEngine(
        RiskSettings(
            max_daily_loss=None, max_orders_per_day=10**6, max_orders_per_day_per_symbol=10**6
        ),
        AccountSettings(initial_cash=2_000_000_000),
        BrokerSettings(),
    )
    symbols = [f"{100_000 + 37 * k:06d}" for k in range(20)]
    last: dict[str, int] = {}
    for k, sym in enumerate(symbols):
        base = krx.round_to_tick(rng.choice([4_800, 15_230, 71_000, 182_000, 356_000]) + 10 * k)
        lower, upper = krx.price_limits(base)
        engine.on_instrument(
            Instrument(stream=1, seq=k, symbol=sym, base_price=base, upper_limit=upper,
                       lower_limit=lower)
        )  # fmt: skip
        last[sym] = base
    engine.on_phase(PhaseChanged(stream=1, seq=0, symbol="", exch_ns=NOW,
                                 phase=MarketPhase.CONTINUOUS))  # fmt: skip
    seq = 0
    md_seq = 0

    def exec_seq() -> int:
        nonlocal seq
        seq += 1
        return seq

    # the account starts with about 3.5M KRW of each symbol, so sells pass too
    for strategy in STRATEGIES:
        for sym in symbols:
            qty = 3_500_000 // len(STRATEGIES) // last[sym]
            engine.on_exec(OrderFilled(
                seq=exec_seq(), fill_id=f"h{seq}", client_order_id=f"H{seq}",
                broker_order_no="0", strategy=strategy, symbol=sym, side=Side.BUY, qty=qty,
                price=last[sym], leaves_qty=0, exch_ns=NOW - 86_400 * 10**9,
                ts_ns=NOW - 86_400 * 10**9))  # fmt: skip

    resting: list[tuple[int, SubmitOrder]] = []  # (cancel after decision n, order)
    timings: list[int] = []
    outcomes: Counter[str] = Counter()
    active = TradingState.ACTIVE
    perf = time.perf_counter_ns
    for n in range(decisions):
        now = NOW + n * 2_000_000
        mono = 10**12 + n * 2_000_000
        sym = symbols[rng.randrange(len(symbols))]
        if rng.random() < 0.8:  # market data between intents
            step = rng.choice((-1, 0, 0, 1)) * krx.tick_size(last[sym])
            inst = engine.instruments[sym]
            last[sym] = min(max(last[sym] + step, inst.lower_limit), inst.upper_limit)
            md_seq += 1
            engine.on_trade(Trade(stream=1, seq=md_seq, symbol=sym, exch_ns=now,
                                  price=last[sym], qty=10))  # fmt: skip
        strategy = STRATEGIES[n % 3]
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        # buys at or below the last trade, sells above it: resting near the touch
        if side is Side.BUY:
            price = krx.ticks_away(last[sym], -rng.randint(0, 3))
        else:
            price = krx.ticks_away(last[sym], rng.randint(1, 4))
        qty = rng.randint(1, 10)
        mistake = rng.random()
        if mistake < 0.01:
            price += 1  # off tick
        elif mistake < 0.02:
            price = krx.ticks_away(last[sym], 200 if side is Side.BUY else -200)  # fat finger
        elif mistake < 0.03:
            qty = 20_000  # above max_order_qty
        intent = OrderIntent(
            intent_id=f"{strategy}:1:{n}:0", strategy=strategy, symbol=sym, side=side, qty=qty,
            price=price, created_ns=now - 300_000, trace=Trace(observed=mono - 300_000),
        )  # fmt: skip
        t0 = perf()
        decision = engine.decide(intent, active, True, now, mono)
        timings.append(perf() - t0)
        if isinstance(decision, IntentDenied):
            outcomes[decision.code] += 1
            continue
        assert isinstance(decision, SubmitOrder)
        outcomes["APPROVED"] += 1
        coid = decision.client_order_id
        r = rng.random()
        if r < 0.6:  # fills at once
            engine.on_exec(OrderFilled(
                seq=exec_seq(), fill_id=f"f{seq}", client_order_id=coid, broker_order_no="1",
                strategy=strategy, symbol=sym, side=side, qty=qty, price=price, leaves_qty=0,
                exch_ns=now, ts_ns=now))  # fmt: skip
        elif r < 0.7 and qty > 1:  # fills in part, the rest rests
            engine.on_exec(OrderFilled(
                seq=exec_seq(), fill_id=f"f{seq}", client_order_id=coid, broker_order_no="1",
                strategy=strategy, symbol=sym, side=side, qty=qty // 2, price=price,
                leaves_qty=qty - qty // 2, exch_ns=now, ts_ns=now))  # fmt: skip
            resting.append((n + rng.randint(5, 200), decision))
        else:
            resting.append((n + rng.randint(5, 200), decision))
        if resting and len(resting) % 16 == 0:
            due = [o for when, o in resting if when <= n]
            resting = [(when, o) for when, o in resting if when > n]
            for o in due:
                engine.on_exec(OrderCanceled(
                    seq=exec_seq(), client_order_id=o.client_order_id, broker_order_no="1",
                    strategy=o.strategy, symbol=o.symbol, side=o.side, canceled_qty=0,
                    reason="bench", ts_ns=now))  # fmt: skip
    timings.sort()
    return {
        "decisions": decisions,
        "p50_us": _percentile(timings, 0.50),
        "p99_us": _percentile(timings, 0.99),
        "p999_us": _percentile(timings, 0.999),
        "max_us": timings[-1] / 1_000,
        "mean_us": sum(timings) / len(timings) / 1_000,
        "open_orders_end": len(engine.open),
        "outcomes": dict(outcomes.most_common()),
    }


def print_risk(r: dict[str, Any]) -> None:
    print(
        f"\nrisk decide(), in process, {r['decisions']:,} decisions: p50 {r['p50_us']:.1f} us, "
        f"p99 {r['p99_us']:.1f} us, p99.9 {r['p999_us']:.1f} us, max {r['max_us']:.0f} us "
        f"(target p99 < 20 us)"
    )
    mix = ", ".join(f"{k} {v:,}" for k, v in r["outcomes"].items())
    print(f"  outcomes: {mix}; {r['open_orders_end']} orders open at the end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=200_000)
    args = parser.parse_args()
    print_risk(run_risk_bench(args.decisions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
