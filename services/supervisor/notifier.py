"""Alerts: trading-state changes and guardrail firings POSTed as JSON to a webhook.

The supervisor's loop must never wait on a web server: notify() only puts the alert on a
bounded queue, and one background thread POSTs it with a timeout and a few retries with
back-off. A full queue, or an alert that still fails after its retries, is dropped, counted and
logged; nothing here raises into the caller. The URL often carries a token (Slack, Teams,
PagerDuty hooks), so it is masked in every log line and only its scheme://host:port is shown.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from services.runtime.log import logger, mask
from services.runtime.settings import NotifierSettings

_STOP = object()  # the queue's last item: the thread ends after it


def describe(url: str) -> str:
    """What a log line may say about the webhook: scheme://host:port, never path or query."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/..."


def mask_url(url: str) -> None:
    """Mask the URL and each part of it that may be a secret, in every later log line."""
    parts = urllib.parse.urlsplit(url)
    for secret in (url, parts.path, parts.query, parts.password or "", parts.username or ""):
        if secret not in ("", "/"):
            mask(secret)


class Notifier:
    """Call notify() from the loop; close() once at shutdown. Counters are read by the loop
    (ints, written by one thread each: no lock needed for a report)."""

    def __init__(self, cfg: NotifierSettings, source: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.url = cfg.webhook_url
        self.source = dict(source or {})  # added to every alert: which system sent it
        self.sent = 0
        self.failed = 0  # given up after the retries
        self.dropped = 0  # the queue was full, or it was closed before they went out
        self.closed = False
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=cfg.queue_size)
        self.stopping = threading.Event()  # cuts back-off waits short at shutdown
        self.thread: threading.Thread | None = None
        if self.url:
            mask_url(self.url)
            self.thread = threading.Thread(target=self.run, name="notifier", daemon=True)
            self.thread.start()
            logger.info("notifier on: alerts POSTed to {}", describe(self.url))

    @property
    def enabled(self) -> bool:
        return self.thread is not None

    def counters(self) -> dict[str, int]:
        return {
            "notifier.sent": self.sent,
            "notifier.failed": self.failed,
            "notifier.dropped": self.dropped,
            "notifier.queued": self.queue.qsize(),
        }

    # ------------------------------------------------------------------ the loop's side
    def notify(self, kind: str, **fields: Any) -> None:
        """Queue one alert; never blocks, never raises."""
        if not self.enabled or self.closed:
            return
        alert = {"kind": kind, **self.source, **fields, "sent_ns": time.time_ns()}
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            logger.error(
                "notifier queue full ({} alerts): {} alert dropped ({} dropped so far)",
                self.cfg.queue_size,
                kind,
                self.dropped,
            )

    def close(self) -> None:
        """Deliver what is queued within close_timeout_s (one try each, no back-off), then
        stop; what is left is counted as dropped. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.thread is None:
            return
        self.stopping.set()
        deadline = time.monotonic() + self.cfg.close_timeout_s
        try:
            self.queue.put(_STOP, timeout=self.cfg.close_timeout_s)
        except queue.Full:
            pass  # the thread is stuck on a request; it is a daemon and dies with us
        self.thread.join(max(0.0, deadline - time.monotonic()))
        if self.thread.is_alive():  # still on a request: what waits behind it is lost
            left = sum(1 for item in list(self.queue.queue) if item is not _STOP)
            self.dropped += left
            logger.error("notifier closed with {} alerts undelivered", left)
        logger.info(
            "notifier closed: {} sent, {} failed, {} dropped", self.sent, self.failed, self.dropped
        )

    # ------------------------------------------------------------------ the thread's side
    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            try:
                self.deliver(item)
            except Exception as exc:  # a bug here must not kill alerting for the whole day
                self.failed += 1
                logger.exception("notifier: unexpected error: {}", exc)

    def deliver(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, separators=(",", ":")).encode()
        delay = self.cfg.backoff_s
        attempts = 1 + self.cfg.retries
        for attempt in range(1, attempts + 1):
            error = self.post(body)
            if error is None:
                self.sent += 1
                return
            last = attempt == attempts or self.stopping.is_set()
            if last:
                self.failed += 1
                logger.error(
                    "notifier: {} alert not delivered after {} attempt{}: {}",
                    alert["kind"],
                    attempt,
                    "s" if attempt > 1 else "",
                    error,
                )
                return
            logger.warning(
                "notifier: {} alert attempt {} failed ({}), retrying in {:g} s",
                alert["kind"],
                attempt,
                error,
                delay,
            )
            if self.stopping.wait(delay):
                continue  # shutting down: one last try without waiting
            delay *= 2

    def post(self, body: bytes) -> str | None:
        """One POST; None when the server answered 2xx, else what went wrong."""
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "qts-supervisor"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as rep:
                rep.read()
                return None
        except urllib.error.HTTPError as exc:
            exc.close()
            return f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            return f"{type(exc.reason).__name__}: {exc.reason}"
        except (TimeoutError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
