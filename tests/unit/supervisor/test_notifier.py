"""The notifier queues, retries, drops and closes without ever blocking or raising into the
caller, and keeps the webhook's token out of the log (a fake post(): no socket)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from services.runtime.log import logger, redact, setup
from services.runtime.settings import ConfigError, NotifierSettings, load_settings
from services.supervisor.notifier import Notifier, describe
from tests.kit import eventually

URL = "https://hooks.example.com/services/T0/B0/s3cr3tT0ken?key=qu3ryT0ken"


class FakeNotifier(Notifier):
    """post() answers from `answers` (None = delivered, text = failure), after `gate` opens."""

    def __init__(self, answers: list[str | None] | None = None, **cfg: Any) -> None:
        self.answers = list(answers or [])
        self.bodies: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        settings = {"webhook_url": URL, "backoff_s": 0.001, **cfg}
        super().__init__(NotifierSettings(**settings), {"system": "qts"})

    def post(self, body: bytes) -> str | None:
        self.gate.wait()
        self.bodies.append(json.loads(body))
        return self.answers.pop(0) if self.answers else None


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    setup("supervisor", "DEBUG")  # as a service does: with the masking patcher
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


def test_no_url_then_off_and_notify_is_a_no_op() -> None:
    n = Notifier(NotifierSettings())
    n.notify("state_change", state="HALTED")
    assert not n.enabled and n.counters()["notifier.queued"] == 0
    n.close()


def test_notify_then_one_json_post_with_the_fields() -> None:
    n = FakeNotifier()
    n.notify("state_change", state="HALTED", previous="ACTIVE", epoch=7, by="ops", reason="x")
    eventually(lambda: n.sent == 1, timeout=5)
    n.close()
    (body,) = n.bodies
    assert body["kind"] == "state_change" and body["system"] == "qts"
    assert (body["state"], body["previous"], body["epoch"], body["by"]) == (
        "HALTED",
        "ACTIVE",
        7,
        "ops",
    )
    assert body["sent_ns"] > 0


def test_failures_then_retried_until_delivered() -> None:
    n = FakeNotifier(["HTTP 500 Internal Server Error", "TimeoutError: timed out"], retries=3)
    n.notify("guardrail", name="daily_loss")
    eventually(lambda: n.sent == 1, timeout=5)
    n.close()
    assert len(n.bodies) == 3 and n.failed == 0


def test_failing_beyond_retries_then_counted_failed_and_logged(log_lines: list[str]) -> None:
    n = FakeNotifier(["HTTP 500 Internal Server Error"] * 3, retries=2)
    n.notify("guardrail", name="daily_loss")
    eventually(lambda: n.failed == 1, timeout=5)
    n.close()
    assert len(n.bodies) == 3 and n.sent == 0
    assert any("not delivered after 3 attempts: HTTP 500" in line for line in log_lines)


def test_queue_full_then_dropped_counted_and_notify_does_not_block() -> None:
    n = FakeNotifier(queue_size=2, close_timeout_s=0.05)
    n.gate.clear()  # the web server hangs on the first alert
    n.notify("state_change", epoch=0)
    eventually(lambda: n.counters()["notifier.queued"] == 0, timeout=5)  # taken, in flight
    for i in range(1, 5):
        n.notify("state_change", epoch=i)
    # one in flight, two queued, two dropped; the caller was never held up
    assert n.dropped == 2 and n.counters()["notifier.queued"] == 2
    n.close()  # the thread is stuck: close gives up after close_timeout_s
    assert n.dropped == 4
    n.gate.set()


def test_close_then_what_is_queued_is_delivered_first() -> None:
    n = FakeNotifier()
    n.gate.clear()
    for i in range(3):
        n.notify("state_change", epoch=i)
    n.gate.set()
    n.close()
    assert [b["epoch"] for b in n.bodies] == [0, 1, 2] and n.sent == 3
    assert n.thread is not None and not n.thread.is_alive()
    n.notify("state_change", epoch=9)  # after close: ignored, not an error
    n.close()
    assert n.sent == 3


def test_closing_then_no_more_back_off() -> None:
    n = FakeNotifier(["boom"] * 10, retries=10, backoff_s=60.0, close_timeout_s=5.0)
    n.notify("state_change")
    eventually(lambda: len(n.bodies) == 1, timeout=5)
    n.close()  # cuts the 60 s back-off short: one last try, then it gives up
    assert n.failed == 1 and len(n.bodies) == 2


def test_post_raising_then_counted_and_the_thread_carries_on() -> None:
    class Broken(FakeNotifier):
        def post(self, body: bytes) -> str | None:
            if not self.bodies:
                self.bodies.append({})
                raise RuntimeError("bug")
            return super().post(body)

    n = Broken()
    n.notify("a")
    n.notify("b")
    eventually(lambda: n.sent == 1 and n.failed == 1, timeout=5)
    n.close()


def test_url_then_masked_in_every_log_line(log_lines: list[str]) -> None:
    n = FakeNotifier(["HTTP 500"], retries=0)
    n.notify("state_change")
    eventually(lambda: n.failed == 1, timeout=5)
    n.close()
    logger.info("posting to {}", URL)
    text = "\n".join(log_lines)
    assert "s3cr3tT0ken" not in text and "qu3ryT0ken" not in text
    assert "https://hooks.example.com/..." in text  # where alerts go, without the secret parts
    masked = redact(f"x {URL} y")
    assert "s3cr3tT0ken" not in masked and "qu3ryT0ken" not in masked and "***" in masked
    assert describe("http://127.0.0.1:8080/a/b?c=d") == "http://127.0.0.1:8080/..."


def test_url_without_http_scheme_then_config_error_without_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"QTS_NOTIFIER__WEBHOOK_URL": "hooks.example.com/t0ken"})
    assert "webhook_url must start with http:// or https://" in str(err.value)
    assert "t0ken" not in str(err.value)


def test_bad_retry_settings_then_config_error() -> None:
    with pytest.raises(ConfigError, match=r"notifier\.retries"):
        load_settings({"QTS_NOTIFIER__RETRIES": "-1"})
