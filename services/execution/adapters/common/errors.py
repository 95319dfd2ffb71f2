"""Broker answers as typed errors.

Every broker maps its own error envelope to these classes (KIS: kis/wire.py). What matters to
the caller is whether the request may have had an effect at the broker:
  - NotDelivered: provably never reached the broker (connect refused or timed out) -> safe.
  - OutcomeUnknown: sent, no answer (read timeout, connection dropped) -> never re-send;
    reconcile with the queries.
  - BrokerError subclasses: the broker answered and refused; the `retryable` ones (rate limit,
    expired token) were refused at the gateway, so the request did nothing and may be retried.
"""

from __future__ import annotations


class BrokerError(Exception):
    """The broker answered with an error: its code and its own message."""

    retryable = False

    def __init__(self, code: str, message: str, http_status: int = 200) -> None:
        self.code = code
        self.message = message.strip()
        self.http_status = http_status
        super().__init__(f"{code}: {self.message}" if code else self.message)


class RateLimited(BrokerError):
    """Too many requests per second (KIS EGW00201 / EGW00215): refused, did nothing."""

    retryable = True


class TokenExpired(BrokerError):
    """The access token expired or is unknown (KIS EGW00123 / EGW00121): re-issue, retry once."""

    retryable = True


class TokenThrottled(BrokerError):
    """Token issued too often (KIS EGW00133): wait for the issuance window."""

    retryable = True


class AuthError(BrokerError):
    """Bad keys, no permission, wrong host for the keys: an operator must act."""


class Rejected(BrokerError):
    """A business refusal (insufficient cash, market closed, bad price ...)."""


class BadResponse(BrokerError):
    """The answer could not be understood (not JSON, fields missing)."""


class TransportError(Exception):
    """No broker answer at all."""


class NotDelivered(TransportError):
    """The request provably did not reach the broker (no connection could be made)."""


class OutcomeUnknown(TransportError):
    """The request may have reached the broker but no answer came: never re-send it."""
