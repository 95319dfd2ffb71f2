"""Every wire type survives encode -> its socket's decoder -> equality, and a decoder refuses
what its socket may not carry."""

from __future__ import annotations

import msgspec
import pytest

from protocol import codec
from protocol import messages as m
from protocol import venue as v
from protocol.enums import MarketPhase, OrderType, Side, TimeInForce, TradingState

T = m.Trace(observed=1, evaluated=2, decided=3, sent=4, acked=5)

SAMPLES: list[tuple[str, msgspec.Struct]] = [
    (
        "md",
        m.Instrument(
            stream=1,
            seq=1,
            symbol="005930",
            base_price=71_000,
            upper_limit=92_300,
            lower_limit=49_700,
            name="Samsung",
        ),
    ),
    (
        "md",
        m.Trade(
            stream=1,
            seq=2,
            symbol="005930",
            exch_ns=10,
            price=71_000,
            qty=5,
            aggressor=Side.BUY,
            cum_volume=5,
            trace=T,
        ),
    ),
    (
        "md",
        m.Book(
            stream=1,
            seq=3,
            symbol="005930",
            exch_ns=11,
            bids=[(70_900, 10)],
            asks=[(71_000, 7)],
            trace=T,
        ),
    ),
    ("md", m.PhaseChanged(stream=1, seq=4, symbol="", exch_ns=12, phase=MarketPhase.CLOSED)),
    ("md", m.EndOfStream(stream=1, seq=5, events=4)),
    (
        "intents",
        m.OrderIntent(
            intent_id="pulse:1:2:0",
            strategy="pulse",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=71_000,
            created_ns=99,
            trace=T,
        ),
    ),
    (
        "intents",
        m.CancelIntent(intent_id="i2", strategy="pulse", client_order_id="Qabc", created_ns=99),
    ),
    (
        "orders",
        m.SubmitOrder(
            client_order_id="Qabc",
            intent_id="i1",
            strategy="pulse",
            symbol="005930",
            side=Side.SELL,
            qty=1,
            price=71_000,
            order_type=OrderType.LIMIT,
            tif=TimeInForce.IOC,
            intent_ns=5,
            trace=T,
        ),
    ),
    ("orders", m.CancelOrder(client_order_id="Qabc", strategy="pulse", reason="stale")),
    (
        "orders",
        m.IntentDenied(
            intent_id="i1",
            strategy="pulse",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=71_050,
            code="TICK_SIZE",
            reason="71050 not on tick",
            ts_ns=1,
        ),
    ),
    (
        "exec",
        m.OrderSubmitted(
            seq=1,
            client_order_id="Q1",
            intent_id="i1",
            strategy="s",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=1,
            ts_ns=1,
        ),
    ),
    (
        "exec",
        m.OrderAccepted(
            seq=2,
            client_order_id="Q1",
            broker_order_no="0000000001",
            strategy="s",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=1,
            ts_ns=1,
            trace=T,
        ),
    ),
    (
        "exec",
        m.OrderRejected(
            seq=3,
            client_order_id="Q1",
            strategy="s",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=1,
            code="BROKER_REJECT",
            reason="x",
            ts_ns=1,
        ),
    ),
    (
        "exec",
        m.OrderFilled(
            seq=4,
            fill_id="1-1",
            client_order_id="Q1",
            broker_order_no="1",
            strategy="s",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=1,
            leaves_qty=0,
            exch_ns=1,
            ts_ns=1,
            trace=T,
        ),
    ),
    (
        "exec",
        m.OrderCanceled(
            seq=5,
            client_order_id="Q1",
            broker_order_no="1",
            strategy="s",
            symbol="005930",
            side=Side.BUY,
            canceled_qty=1,
            reason="halt",
            ts_ns=1,
            expired=True,
        ),
    ),
    (
        "exec",
        m.IntentDenied(
            intent_id="i1",
            strategy="s",
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=1,
            code="HALTED",
            reason="halted",
            ts_ns=1,
            seq=6,
        ),
    ),
    (
        "portfolio",
        m.PortfolioSnapshot(
            seq=1,
            ts_ns=1,
            exec_seq=4,
            cash=100,
            equity=200,
            realized=1,
            unrealized=2,
            fees=3,
            taxes=4,
            positions=[
                m.Position(
                    strategy="",
                    symbol="005930",
                    qty=1,
                    cost=71_000,
                    last_price=71_100,
                    realized=0,
                    unrealized=100,
                    fees=10,
                    taxes=0,
                )
            ],
        ),
    ),
    (
        "control",
        m.TradingStateUpdate(
            state=TradingState.HALTED, epoch=3, reason="test", by="ops", changed_ns=1, ts_ns=2
        ),
    ),
    (
        "heartbeat",
        m.Heartbeat(
            service="risk",
            pid=1,
            protocol=m.PROTOCOL_VERSION,
            seq=1,
            started_ns=1,
            ts_ns=2,
            epoch_ack=3,
            status="ready",
            counters={"bad_frames.md": 2},
        ),
    ),
    ("ctl_request", m.CtlRequest(request_id="r1", command="halt", args={"reason": "x"})),
    ("ctl_reply", m.CtlReply(request_id="r1", ok=True, code="OK", data={"a": [1, 2]})),
    (
        "venue_request",
        v.VenueNewOrder(req_id=1, symbol="005930", side=Side.BUY, qty=1, price=71_000),
    ),
    ("venue_request", v.VenueCancel(req_id=2, order_no="0000000001")),
    ("venue_request", v.VenueQuery(req_id=3, what="open_orders")),
    ("venue_reply", v.VenueAck(req_id=1, ok=True, order_no="0000000001", ts_ns=1)),
    (
        "venue_reply",
        v.VenueQueryReply(
            req_id=3,
            orders=[
                v.VenueOrder(
                    order_no="1",
                    symbol="005930",
                    side=Side.BUY,
                    qty=1,
                    price=1,
                    order_type=OrderType.LIMIT,
                    tif=TimeInForce.DAY,
                    filled_qty=0,
                    status="open",
                    ts_ns=1,
                )
            ],
            fills=[
                v.VenueFill(
                    order_no="1", fill_no=1, symbol="005930", side=Side.BUY, qty=1, price=1, ts_ns=1
                )
            ],
            cash=5,
            holdings={"005930": 1},
        ),
    ),
    (
        "venue_notice",
        v.VenueFillNotice(
            seq=1,
            order_no="1",
            fill_no=1,
            symbol="005930",
            side=Side.BUY,
            qty=1,
            price=1,
            leaves_qty=0,
            ts_ns=1,
        ),
    ),
    (
        "venue_notice",
        v.VenueOrderNotice(seq=2, order_no="1", status="expired", leaves_qty=1, ts_ns=1),
    ),
]


def _covered() -> set[type]:
    return {type(sample) for _, sample in SAMPLES}


def test_every_wire_type_has_a_sample() -> None:
    wire_types = {
        obj
        for module in (m, v)
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, m.Base)
        and obj is not m.Base
        and obj.__struct_config__.tag is not None
        and obj not in (m.Position, v.VenueOrder, v.VenueFill)  # nested rows, not frames
    }
    assert wire_types - _covered() == set()


@pytest.mark.parametrize(("stream", "msg"), SAMPLES, ids=lambda x: x.__class__.__name__)
def test_roundtrip_through_the_sockets_decoder(stream: str, msg: msgspec.Struct) -> None:
    decoded = codec.decoder(stream).decode(codec.encode(msg))
    assert decoded == msg
    assert type(decoded) is type(msg)


def test_tags_are_unique() -> None:
    classes = {
        obj
        for module in (m, v)
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, m.Base) and obj is not m.Base
    }  # a set: aliases such as Control = TradingStateUpdate name one class
    tags = [cls.__struct_config__.tag for cls in classes]
    assert len(tags) == len(set(tags))


def test_decoder_refuses_a_type_its_socket_does_not_carry() -> None:
    hb = m.Heartbeat(
        service="x", pid=1, protocol=1, seq=1, started_ns=1, ts_ns=1, epoch_ack=0, status="ready"
    )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.t"):
        codec.decoder("md").decode(codec.encode(hb))


def test_decoder_refuses_a_float_price_and_names_the_field() -> None:
    frame = msgspec.msgpack.encode(
        {
            "t": "trade",
            "stream": 1,
            "seq": 1,
            "symbol": "005930",
            "exch_ns": 1,
            "price": 71000.5,
            "qty": 1,
        }
    )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.price"):
        codec.decoder("md").decode(frame)


def test_decoder_refuses_garbage_bytes() -> None:
    with pytest.raises(codec.DecodeError):
        codec.decoder("orders").decode(b"\xc1\x00garbage")


def test_old_reader_ignores_a_field_added_at_the_end() -> None:
    # schema evolution: a newer publisher may append fields; this reader must still decode
    frame = msgspec.msgpack.encode(
        {"t": "eos", "stream": 1, "seq": 9, "events": 8, "future_field": "x"}
    )
    assert codec.decoder("md").decode(frame) == m.EndOfStream(stream=1, seq=9, events=8)
