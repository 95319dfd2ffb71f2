"""KIS real-time market data as data: H0STCNT0 trades and H0STASP0 books (shared/brokers/kis.md
5.3-5.6) turned into protocol Trade and Book, the subscribe messages, PINGPONG, and the
registration table that keeps a session within KIS's 41 registrations (5.9). Pure: no sockets,
time passed in.

A data frame is `<encrypted>|<tr_id>|<count>|<fields>`: `count` records of a fixed width (46
for H0STCNT0, 59 for H0STASP0) all joined by `^`. Market data is never encrypted (only the
execution notice is), so an encrypted market-data frame is an error, as is a wrong width, a
count that does not match, or a price/quantity that is not a whole number.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from protocol.enums import Side
from protocol.messages import Book, Trade

KST = ZoneInfo("Asia/Seoul")
TRADE_TR = "H0STCNT0"  # 실시간체결가 KRX
BOOK_TR = "H0STASP0"  # 실시간호가 KRX
WIDTH = {TRADE_TR: 46, BOOK_TR: 59}
MAX_REGISTRATIONS = 41  # per session, the execution notice included (5.9)
LEVELS = 10

# H0STCNT0 (5.5)
T_SYMBOL, T_TIME, T_PRICE, T_QTY, T_CUM_VOL, T_CCLD_DVSN, T_DATE = 0, 1, 2, 12, 13, 21, 33
# CCLD_DVSN: "1" buy-initiated, "5" sell-initiated per the community (unverified, 5.5); any
# other value (e.g. "3" for the opening call) leaves the aggressor unknown
AGGRESSOR = {"1": Side.BUY, "5": Side.SELL}
# H0STASP0 (5.6)
B_SYMBOL, B_TIME, B_ASK, B_BID, B_ASK_QTY, B_BID_QTY = 0, 1, 3, 13, 23, 33


class MdFrameError(ValueError):
    """A market-data frame that cannot be read; the message says why."""


@dataclass(frozen=True)
class Control:
    """A JSON frame: a subscribe/unsubscribe answer or PINGPONG."""

    tr_id: str
    tr_key: str
    rt_cd: str
    msg_cd: str
    msg1: str

    @property
    def is_pingpong(self) -> bool:
        return self.tr_id == "PINGPONG"

    @property
    def ok(self) -> bool:
        return self.rt_cd == "0"


def is_data(text: str) -> bool:
    return text[:1] in ("0", "1")


def parse_control(text: str) -> Control:
    try:
        msg = json.loads(text)
    except ValueError:
        raise MdFrameError(f"neither a data frame nor JSON: {text[:60]!r}") from None
    if not isinstance(msg, dict):
        raise MdFrameError("JSON control message is not an object")
    header = msg.get("header") or {}
    body = msg.get("body") or {}
    if not isinstance(header, dict) or not isinstance(body, dict):
        raise MdFrameError("JSON control message with a header or body that is not an object")
    return Control(
        tr_id=str(header.get("tr_id", "")),
        tr_key=str(header.get("tr_key", "")),
        rt_cd=str(body.get("rt_cd", "")),
        msg_cd=str(body.get("msg_cd", "")),
        msg1=str(body.get("msg1", "")),
    )


def split_frame(text: str) -> tuple[str, list[list[str]]]:
    """A market-data frame -> (tr_id, its records, each WIDTH[tr_id] fields)."""
    parts = text.split("|", 3)
    if len(parts) != 4:
        raise MdFrameError(f"data frame with {len(parts)} parts: {text[:60]!r}")
    flag, tr, count_s, payload = parts
    if flag != "0":
        raise MdFrameError(f"{tr} frame marked encrypted ({flag!r}): market data is plain")
    width = WIDTH.get(tr)
    if width is None:
        raise MdFrameError(f"not a market-data tr_id: {tr!r}")
    if not count_s.isdigit() or int(count_s) == 0:
        raise MdFrameError(f"{tr} record count {count_s!r} is not a positive number")
    count = int(count_s)
    fields = payload.split("^")
    if len(fields) != count * width:
        raise MdFrameError(
            f"{tr}: {len(fields)} fields, {count} records of {width} expected ({text[:60]!r})"
        )
    return tr, [fields[i * width : (i + 1) * width] for i in range(count)]


def _int(fields: list[str], i: int, what: str) -> int:
    value = fields[i].strip()
    if not value.isdigit():
        raise MdFrameError(f"{what} (field {i}) is not a whole number: {fields[i]!r}")
    return int(value)


def exch_ns(day: str, hhmmss: str) -> int:
    """Epoch ns of a KST date (YYYYMMDD) and time (HHMMSS)."""
    if len(day) != 8 or not day.isdigit():
        raise MdFrameError(f"bad KST date {day!r}: expected YYYYMMDD")
    t = hhmmss.strip()[:6]
    if len(t) != 6 or not t.isdigit():
        raise MdFrameError(f"bad KST time {hhmmss!r}: expected HHMMSS")
    try:
        stamp = dt.datetime(
            int(day[:4]), int(day[4:6]), int(day[6:]), int(t[:2]), int(t[2:4]), int(t[4:]),
            tzinfo=KST,
        )  # fmt: skip
    except ValueError as exc:
        raise MdFrameError(f"bad KST date/time {day} {hhmmss}: {exc}") from None
    return int(stamp.timestamp()) * 1_000_000_000


def trade(fields: list[str], *, stream: int, seq: int, day: str) -> Trade:
    """One H0STCNT0 record -> Trade. The date is the record's BSOP_DATE, else `day`."""
    if len(fields) != WIDTH[TRADE_TR]:
        raise MdFrameError(f"{TRADE_TR} record of {len(fields)} fields, 46 expected")
    qty = _int(fields, T_QTY, "CNTG_VOL")
    price = _int(fields, T_PRICE, "STCK_PRPR")
    if price <= 0 or qty <= 0:
        raise MdFrameError(f"{TRADE_TR} {fields[T_SYMBOL]}: price {price}, qty {qty}")
    return Trade(
        stream=stream,
        seq=seq,
        symbol=fields[T_SYMBOL],
        exch_ns=exch_ns(fields[T_DATE].strip() or day, fields[T_TIME]),
        price=price,
        qty=qty,
        aggressor=AGGRESSOR.get(fields[T_CCLD_DVSN].strip()),
        cum_volume=_int(fields, T_CUM_VOL, "ACML_VOL"),
    )


def _side(fields: list[str], px: int, qty: int, what: str) -> list[tuple[int, int]]:
    levels = []
    for i in range(LEVELS):
        price = _int(fields, px + i, f"{what}P{i + 1}")
        size = _int(fields, qty + i, f"{what}P_RSQN{i + 1}")
        if price == 0:
            break  # an empty level: the ones behind it are empty too
        levels.append((price, size))
    return levels


def book(fields: list[str], *, stream: int, seq: int, day: str) -> Book:
    """One H0STASP0 record -> Book (best first; empty levels, price 0, dropped)."""
    if len(fields) != WIDTH[BOOK_TR]:
        raise MdFrameError(f"{BOOK_TR} record of {len(fields)} fields, 59 expected")
    return Book(
        stream=stream,
        seq=seq,
        symbol=fields[B_SYMBOL],
        exch_ns=exch_ns(day, fields[B_TIME]),
        bids=_side(fields, B_BID, B_BID_QTY, "BID"),
        asks=_side(fields, B_ASK, B_ASK_QTY, "ASK"),
    )


def events(text: str, *, stream: int, first_seq: int, day: str) -> list[Trade | Book]:
    """A whole data frame -> its events, numbered first_seq, first_seq + 1, ... A bad record
    spoils the frame (MdFrameError): nothing of it is returned."""
    tr, recs = split_frame(text)
    make = trade if tr == TRADE_TR else book
    return [make(f, stream=stream, seq=first_seq + i, day=day) for i, f in enumerate(recs)]


def subscribe_message(approval_key: str, tr: str, tr_key: str, subscribe: bool = True) -> str:
    return json.dumps(
        {
            "header": {
                "approval_key": approval_key,
                "custtype": "P",
                "tr_type": "1" if subscribe else "2",
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": tr, "tr_key": tr_key}},
        }
    )


class Registrations:
    """What a session has registered, within `cap` (41, or fewer when other TRs such as the
    execution notice share the session: pass `reserved`). A registration beyond the cap is
    refused (add returns False), never sent: KIS would answer OPSP0008 and may leak the slot."""

    def __init__(self, cap: int = MAX_REGISTRATIONS, reserved: int = 0) -> None:
        if not 0 < cap <= MAX_REGISTRATIONS or not 0 <= reserved < cap:
            raise ValueError(f"registrations: need 0 < cap <= 41 and 0 <= reserved < cap, "
                             f"got cap {cap}, reserved {reserved}")  # fmt: skip
        self.cap = cap - reserved
        self.keys: dict[tuple[str, str], None] = {}  # insertion order: re-subscribed alike
        self.refused = 0

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.keys

    def add(self, tr: str, tr_key: str) -> bool:
        if tr not in WIDTH:
            raise ValueError(f"not a market-data tr_id: {tr!r}")
        if len(tr_key) != 6 or not tr_key.isalnum():
            raise ValueError(f"bad stock code {tr_key!r}: expected 6 characters")
        if (tr, tr_key) in self.keys:
            return True
        if len(self.keys) >= self.cap:
            self.refused += 1
            return False
        self.keys[(tr, tr_key)] = None
        return True

    def remove(self, tr: str, tr_key: str) -> bool:
        if (tr, tr_key) not in self.keys:
            return False
        del self.keys[(tr, tr_key)]
        return True

    def all(self) -> list[tuple[str, str]]:
        return list(self.keys)

    def plan(self, symbols: Iterable[str], trades: bool = True, books: bool = True) -> list[str]:
        """Register each symbol's trades and books, in order, a symbol whole or not at all;
        returns the symbols that did not fit."""
        trs = [tr for tr, on in ((TRADE_TR, trades), (BOOK_TR, books)) if on]
        left = []
        for s in symbols:
            new = [(tr, s) for tr in trs if (tr, s) not in self.keys]
            if len(self.keys) + len(new) > self.cap:
                self.refused += len(new)
                left.append(s)
                continue
            for tr, key in new:
                self.add(tr, key)
        return left
