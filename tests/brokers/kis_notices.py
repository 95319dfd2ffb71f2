"""The execution-notice (H0STCNI0/H0STCNI9) field layouts in circulation, for the fake KIS
server and the parser's unit tests (docs/brokers/kis.md, "Uncertain")."""

from __future__ import annotations

LAYOUTS: dict[str, list[str]] = {
    # kis.md 5.7: OTA ccnl_notice.py (one version) and OTA legacy
    "26a": [
        "CUST_ID", "ACNT_NO", "ODER_NO", "OODER_NO", "SELN_BYOV_CLS", "RCTF_CLS", "ODER_KIND",
        "ODER_COND", "STCK_SHRN_ISCD", "CNTG_QTY", "CNTG_UNPR", "STCK_CNTG_HOUR", "RFUS_YN",
        "CNTG_YN", "ACPT_YN", "BRNC_NO", "ODER_QTY", "ACNT_NAME", "ORD_COND_PRC", "ORD_EXG_GB",
        "POPUP_YN", "FILLER", "CRDT_CLS", "CRDT_LOAN_DATE", "CNTG_ISNM40", "ODER_PRC",
    ],
    # OTA ccnl_notice.py (another version) and the kis_auth copies: no original order number
    "26b": [
        "CUST_ID", "ACNT_NO", "ODER_NO", "ODER_QTY", "SELN_BYOV_CLS", "RCTF_CLS", "ODER_KIND",
        "ODER_COND", "STCK_SHRN_ISCD", "CNTG_QTY", "CNTG_UNPR", "STCK_CNTG_HOUR", "RFUS_YN",
        "CNTG_YN", "ACPT_YN", "BRNC_NO", "ACNT_NO2", "ACNT_NAME", "ORD_COND_PRC", "ORD_EXG_GB",
        "POPUP_YN", "FILLER", "CRDT_CLS", "CRDT_LOAN_DATE", "CNTG_ISNM40", "ODER_PRC",
    ],
    # python-kis before 2025
    "23": [
        "CUST_ID", "ACNT_NO", "ODER_NO", "OODER_NO", "SELN_BYOV_CLS", "RCTF_CLS", "ODER_KIND",
        "ODER_COND", "STCK_SHRN_ISCD", "CNTG_QTY", "CNTG_UNPR", "STCK_CNTG_HOUR", "RFUS_YN",
        "CNTG_YN", "ACPT_YN", "BRNC_NO", "ODER_QTY", "ACNT_NAME", "CNTG_ISNM", "CRDT_CLS",
        "CRDT_LOAN_DATE", "CNTG_ISNM40", "ODER_PRC",
    ],
}  # fmt: skip


def notice_fields(values: dict[str, str], layout: str) -> list[str]:
    """The notice's fields in `layout` order; values holds every name of every layout."""
    return [values[name] for name in LAYOUTS[layout]]


# ------------------------------------------------------------------ market data (5.5, 5.6)
def trade_record(
    symbol: str,
    price: int,
    qty: int,
    hhmmss: str = "093001",
    cum_volume: int = 0,
    ccld_dvsn: str = "1",
    day: str = "20261125",
) -> list[str]:
    """One H0STCNT0 record (46 fields), the other fields filled as KIS sends them."""
    f = ["0"] * 46
    f[0], f[1], f[2], f[3], f[4], f[5] = symbol, hhmmss, str(price), "2", "100", "0.14"
    f[10], f[11] = str(price + 100), str(price)
    f[12], f[13], f[14] = str(qty), str(cum_volume or qty), str((cum_volume or qty) * price)
    f[21], f[33], f[34], f[35], f[43] = ccld_dvsn, day, "20", "N", "0"
    return f


def book_record(
    symbol: str,
    bids: list[tuple[int, int]],
    asks: list[tuple[int, int]],
    hhmmss: str = "093001",
) -> list[str]:
    """One H0STASP0 record (59 fields); levels beyond those given are empty (price 0)."""
    f = ["0"] * 59
    f[0], f[1], f[2] = symbol, hhmmss, "0"
    for i, (price, qty) in enumerate(asks):
        f[3 + i], f[23 + i] = str(price), str(qty)
    for i, (price, qty) in enumerate(bids):
        f[13 + i], f[33 + i] = str(price), str(qty)
    f[43] = str(sum(q for _, q in asks))
    f[44] = str(sum(q for _, q in bids))
    return f


def md_frame(tr: str, records: list[list[str]]) -> str:
    """`0|tr|count|fields`: records joined by ^ into one payload."""
    return f"0|{tr}|{len(records):03d}|" + "^".join("^".join(r) for r in records)
