"""Korean time: brokers speak KST wall-clock strings; QTS speaks UTC epoch nanoseconds."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")


def now_kst() -> dt.datetime:
    return dt.datetime.now(KST)


def today_kst() -> str:
    """YYYYMMDD in KST."""
    return now_kst().strftime("%Y%m%d")


def kst_ns(day: str, hhmmss: str) -> int:
    """Epoch ns of a KST date (YYYYMMDD) and time (HHMMSS, extra digits ignored)."""
    if len(day) != 8 or not day.isdigit():
        raise ValueError(f"bad KST date {day!r}: expected YYYYMMDD")
    t = hhmmss.strip()[:6]
    if len(t) != 6 or not t.isdigit():
        raise ValueError(f"bad KST time {hhmmss!r}: expected HHMMSS")
    stamp = dt.datetime(
        int(day[:4]), int(day[4:6]), int(day[6:]), int(t[:2]), int(t[2:4]), int(t[4:]), tzinfo=KST
    )
    return int(stamp.timestamp()) * 1_000_000_000


def parse_kst(text: str) -> dt.datetime:
    """'YYYY-MM-DD HH:MM:SS' (KIS token expiry) as an aware KST datetime."""
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=KST)
    except ValueError:
        raise ValueError(f"bad KST timestamp {text!r}: expected YYYY-MM-DD HH:MM:SS") from None
