"""The KIS market-data session (services/brokers_md/kis_session.py) against the fake KIS's real
WebSocket server: H0STCNT0/H0STASP0 registered and normalised, multi-record frames, PINGPONG
answered with a pong frame, the 41-registration cap kept on our side, re-registration after a
dropped connection, malformed frames counted and survived, one session per app key."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

from protocol.enums import Side
from protocol.messages import Book, Trade
from services.brokers_md import kis
from services.brokers_md.kis_session import KisMarketData
from services.execution.adapters.kis import wire
from tests.brokers.kis_notices import book_record, trade_record
from tests.brokers.kis_server import APP_KEY, APP_SECRET, MD_APP_KEY, MD_APP_SECRET, FakeKis
from tests.kit import eventually

DAY = "20261125"


@pytest.fixture
def fake() -> Iterator[FakeKis]:
    with FakeKis(mode="paper") as server:
        yield server


def approval(
    fake: FakeKis, app_key: str = MD_APP_KEY, secret: str = MD_APP_SECRET
) -> Callable[[], str]:
    def get() -> str:
        with requests.Session() as s:
            r = s.post(
                fake.rest_url + wire.APPROVAL_PATH,
                json={"grant_type": "client_credentials", "appkey": app_key, "secretkey": secret},
                timeout=5,
            )
        r.raise_for_status()
        return str(r.json()["approval_key"])

    return get


@pytest.fixture
def session(fake: FakeKis) -> Iterator[KisMarketData]:
    md = KisMarketData(
        fake.ws_url + "/tryitout", approval(fake), stream=5, backoff_min_s=0.05,
        backoff_max_s=0.2, day=lambda: DAY,
    )  # fmt: skip
    md.start()
    yield md
    md.stop()


def collect(md: KisMarketData, n: int, seen: list[Trade | Book]) -> bool:
    seen.extend(md.poll())
    return len(seen) >= n


def test_trades_and_books_arrive_normalised(fake: FakeKis, session: KisMarketData) -> None:
    assert session.subscribe(["005930", "000660"]) == []
    want = {(t, s) for t in (kis.TRADE_TR, kis.BOOK_TR) for s in ("005930", "000660")}
    eventually(lambda: fake.md_registered() == want, message="4 registrations")
    sent = fake.push_md(kis.TRADE_TR, [
        trade_record("005930", 73_100, 5, "090001", 5, "1", DAY),
        trade_record("000660", 181_000, 2, "090001", 2, "5", DAY),
        trade_record("005930", 73_000, 3, "090002", 8, "5", DAY),
    ])  # fmt: skip
    assert sent == 1
    fake.push_md(kis.BOOK_TR, [book_record("005930", [(73_000, 10)], [(73_100, 4)], "090003")])
    seen: list[Trade | Book] = []
    eventually(lambda: collect(session, 4, seen), message="3 trades and a book")
    trades = [e for e in seen if isinstance(e, Trade)]
    assert [(t.symbol, t.price, t.qty, t.aggressor, t.cum_volume) for t in trades] == [
        ("005930", 73_100, 5, Side.BUY, 5), ("000660", 181_000, 2, Side.SELL, 2),
        ("005930", 73_000, 3, Side.SELL, 8),
    ]  # fmt: skip
    [b] = [e for e in seen if isinstance(e, Book)]
    assert (b.symbol, b.bids, b.asks) == ("005930", [(73_000, 10)], [(73_100, 4)])
    assert [e.seq for e in seen] == [1, 2, 3, 4] and {e.stream for e in seen} == {5}


def test_pingpong_is_answered_with_a_pong_frame(fake: FakeKis, session: KisMarketData) -> None:
    session.subscribe(["005930"], books=False)
    eventually(lambda: fake.md_registered(), message="registered")
    fake.pingpong()
    eventually(lambda: fake.stats.pong_frames, message="a pong frame")
    assert b"PINGPONG" in fake.stats.pong_frames[0]
    assert session.pongs == 1 and session.connects == 1
    assert session.summary.startswith("KIS market data up: 1 registrations")


def test_reconnect_registers_everything_again(fake: FakeKis, session: KisMarketData) -> None:
    session.subscribe(["005930", "035720"])
    eventually(lambda: len(fake.md_registered()) == 4, message="registered")
    fake.drop_ws()
    eventually(lambda: session.connects == 2, message="reconnected")
    eventually(lambda: len(fake.md_registered()) == 4, message="registered again")
    assert fake.stats.md_subscribes == 8
    fake.push_md(kis.TRADE_TR, [trade_record("035720", 41_050, 10, day=DAY)])
    seen: list[Trade | Book] = []
    eventually(lambda: collect(session, 1, seen), message="data after the reconnect")
    assert isinstance(seen[0], Trade) and seen[0].symbol == "035720"


def test_registrations_beyond_41_are_refused_before_sending(
    fake: FakeKis, session: KisMarketData
) -> None:
    symbols = [f"{i:06d}" for i in range(1, 26)]
    left = session.subscribe(symbols)  # 2 registrations each: 20 fit in 41
    assert left == symbols[20:]
    assert session.subscribe(["999999"], books=False) == []  # the 41st
    assert session.subscribe(["999998"], books=False) == ["999998"]
    eventually(lambda: len(fake.md_registered()) == 41, message="41 registered")
    assert fake.stats.md_refused == 0  # nothing beyond the cap reached KIS


def test_malformed_frames_are_counted_and_the_session_survives(
    fake: FakeKis, session: KisMarketData
) -> None:
    session.subscribe(["005930"])
    eventually(lambda: len(fake.md_registered()) == 2, message="registered")
    good = trade_record("005930", 73_100, 1, day=DAY)
    bad = list(good)
    bad[2] = "73100.5"
    fake.send_raw("0|H0STCNT0|002|" + "^".join(good + bad))  # one bad record: frame dropped
    fake.send_raw("0|H0STCNT0|001|" + "^".join(good[:40]))  # short
    fake.send_raw("{not json")
    fake.push_md(kis.TRADE_TR, [good])
    seen: list[Trade | Book] = []
    eventually(lambda: collect(session, 1, seen), message="the good frame")
    assert session.bad_frames == 3 and session.connects == 1
    assert len(seen) == 1 and seen[0].seq == 1


def test_one_session_per_app_key(fake: FakeKis, session: KisMarketData) -> None:
    """The observer's session on its own (market-data) app key lives next to execution's
    notice session on the trading key; a second session on the same key is refused."""
    import websocket

    notice = websocket.create_connection(fake.ws_url + "/tryitout", timeout=5)
    try:
        key = approval(fake, APP_KEY, APP_SECRET)()
        notice.send(kis.subscribe_message(key, "H0STCNI9", "qtstester"))
        assert "SUBSCRIBE SUCCESS" in notice.recv()
        session.subscribe(["005930"])
        eventually(lambda: len(fake.md_registered()) == 2, message="both keys have a session")
        second = KisMarketData(
            fake.ws_url + "/tryitout", approval(fake), stream=6, backoff_min_s=0.05,
            backoff_max_s=0.1, day=lambda: DAY,
        )  # fmt: skip
        second.subscribe(["000660"])
        second.start()
        try:
            eventually(lambda: fake.stats.ws_refused >= 2, message="OPSP8996, retried")
            assert ("H0STCNT0", "000660") not in fake.md_registered()
        finally:
            second.stop()
    finally:
        notice.close()


def test_unsubscribe_frees_the_slot(fake: FakeKis, session: KisMarketData) -> None:
    symbols = [f"{i:06d}" for i in range(1, 21)]
    assert session.subscribe(symbols) == []  # 40 of 41
    assert session.subscribe(["999999"]) == ["999999"]  # needs 2
    eventually(lambda: len(fake.md_registered()) == 40, message="40 registered")
    session.unsubscribe(symbols[0])
    eventually(lambda: len(fake.md_registered()) == 38, message="unregistered at KIS")
    assert session.subscribe(["999999"]) == []
    eventually(lambda: ("H0STASP0", "999999") in fake.md_registered(), message="the new one")
    assert fake.stats.md_refused == 0
