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
