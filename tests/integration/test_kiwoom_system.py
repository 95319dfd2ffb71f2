"""The whole system trading through the real Kiwoom adapter against the fake Kiwoom
(issue 9's "done when"): `qts-ctl up --broker kiwoom` with the mock hosts pointed at the fake,
the market replayed from the checked-in sample session (a real broker trades only in the
exchange's session, and a replay's session follows its recording, so this runs at any hour).
Orders are placed and filled in two parts by 00 notices, some left partly filled; the halt
cancels those through kt10003; positions then equal the fake's balance and the fake saw every
order exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.brokers.kiwoom_server import FakeKiwoom, env_for
from tests.kit import REPO, System, eventually

SAMPLE = REPO / "tests" / "data" / "sample_session.qtsrec.gz"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeKiwoom]:
    server = FakeKiwoom(auto_fill=True, keep_open_every=3, cash=10_000_000_000).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(fake: FakeKiwoom, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    sys_ = System(
        tmp_path_factory.mktemp("qts-kiwoom"),
        **env_for(fake),
        STRATEGY_SCOPE="pulse",
        QTS_STRATEGY__PULSE_EVERY="20",
        QTS_STRATEGY__PULSE_QTY="4",
        QTS_BROKER__MODE="paper",
        QTS_SESSION__CLOCK="exchange",
        QTS_OBSERVER__SOURCE="replay",
        QTS_OBSERVER__REPLAY_PATH=str(SAMPLE),
        QTS_OBSERVER__REPLAY_SPEED="100",
        QTS_BROKER__KIWOOM__MOCK_REST_URL=fake.rest_url,
        QTS_BROKER__KIWOOM__MOCK_WS_URL=fake.ws_url,
        QTS_BROKER__KIWOOM__MOCK_RATE_PER_S="50",
        QTS_BROKER__KIWOOM__QUERY_BURST="50",
        QTS_BROKER__KIWOOM__QUERY_PAGE_DELAY_MS="0",
    )
    sys_.start("--broker", "kiwoom")
    yield sys_
    sys_.stop()


def exec_orders(system: System) -> list[dict[str, Any]]:
    data = system.call("execution", "orders", {"limit": 100_000})
    return data["orders"] if isinstance(data, dict) else data


OPEN = ("PENDING", "SENT", "ACCEPTED", "PARTIALLY_FILLED")


@pytest.mark.slow
def test_orders_fill_and_cancel_through_kiwoom_and_positions_match(
    system: System, fake: FakeKiwoom
) -> None:
    eventually(
        lambda: (
            sum(1 for o in exec_orders(system) if o["status"] == "FILLED") >= 3
            and any(o["status"] == "PARTIALLY_FILLED" for o in exec_orders(system))
        ),
        timeout=90,
        message="3 orders filled and one partly filled through Kiwoom",
    )
    # the halt cancels what is open at Kiwoom (kt10003); the 00 notices close them
    system.ctl_json("halt", "--reason", "kiwoom system test")
    eventually(
        lambda: not [o for o in exec_orders(system) if o["status"] in OPEN],
        timeout=30,
        message="nothing open after the halt",
    )
    rows = exec_orders(system)
    canceled = [o for o in rows if o["status"] == "CANCELED"]
    assert canceled and all(0 < o["filled_qty"] < o["qty"] for o in canceled)
    assert fake.api_calls("kt10003") == len(canceled)
    assert all(fake.orders[o["broker_order_no"]].unfilled == 0 for o in canceled)
    # every order reached Kiwoom once; every fill Kiwoom made was booked once
    placed = fake.api_calls("kt10000") + fake.api_calls("kt10001")
    assert placed == len([o for o in rows if o["broker_order_no"]]) == len(fake.orders)
    fills = system.call("execution", "fills")
    fills = fills["fills"] if isinstance(fills, dict) else fills
    assert len(fills) == sum(o.fills for o in fake.orders.values())
    net: Counter[str] = Counter()
    for f in fills:
        net[f["symbol"]] += f["qty"] if f["side"] == "BUY" else -f["qty"]
    broker = {s: q for s, q in fake.holdings.items() if q}
    assert {s: q for s, q in net.items() if q} == broker

    def portfolio_matches() -> bool:
        positions = system.call("portfolio", "positions")
        account = {p["symbol"]: p["qty"] for p in positions["positions"] if p["strategy"] == ""}
        return {s: q for s, q in account.items() if q} == broker

    eventually(portfolio_matches, timeout=10, message="portfolio positions = Kiwoom balance")
    assert system.ctl_json("status")["services"]["execution"]["alive"]
