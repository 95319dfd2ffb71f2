from __future__ import annotations

from services.runtime import ids, log


def test_client_order_id_is_deterministic_and_distinct() -> None:
    a = ids.client_order_id(ids.intent_id("pulse", 17, 42, 0))
    assert a == ids.client_order_id("pulse:17:42:0")
    assert a != ids.client_order_id("pulse:17:42:1")
    assert a.startswith("Q") and len(a) == 19


def test_fill_id_names_order_and_fill() -> None:
    assert ids.fill_id("0000000017", 3) == "0000000017-3"


def test_masked_secret_never_reaches_the_text() -> None:
    log.mask("PSabcdef123456SECRET")
    assert log.redact("key=PSabcdef123456SECRET ok") == "key=*** ok"


def test_masked_secret_is_replaced_in_emitted_log_lines(capsys) -> None:  # type: ignore[no-untyped-def]
    log.setup("test", "INFO")
    log.mask("account-12345678")
    log.logger.info("sending order for account-12345678 now")
    err = capsys.readouterr().err
    assert "account-12345678" not in err
    assert "sending order for *** now" in err
