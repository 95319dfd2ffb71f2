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
    raise BrokerNotAvailable(
        f"broker {kind!r} is not implemented yet (issues 8 and 9); use broker.type 'paper'"
    )
