"""Broker adapters, chosen by settings.broker.type."""

from __future__ import annotations

from services.execution.adapters.base import BrokerAdapter
from services.runtime.settings import Settings


class BrokerNotAvailable(Exception):
    pass


def make_adapter(settings: Settings) -> BrokerAdapter:
    kind = settings.broker.type
    if kind == "paper":
        from services.execution.adapters.paper import PaperAdapter

        return PaperAdapter(settings)
    if kind == "kis":
        from services.execution.adapters.kis.adapter import KisAdapter
        from services.runtime.secrets import MissingSecret

        try:
            return KisAdapter(settings)
        except (MissingSecret, ValueError) as exc:
            raise BrokerNotAvailable(f"broker 'kis' is not configured: {exc}") from None
    if kind == "kiwoom":
        from services.execution.adapters.kiwoom.adapter import KiwoomAdapter
        from services.runtime.secrets import MissingSecret

        try:
            return KiwoomAdapter(settings)
        except (MissingSecret, ValueError) as exc:
            raise BrokerNotAvailable(f"broker 'kiwoom' is not configured: {exc}") from None
    raise BrokerNotAvailable(f"unknown broker {kind!r}: broker.type is paper, kis or kiwoom")
