"""Snapshots a restarted subscriber asks for instead of waiting for the next broadcast
(the ZeroMQ guide's Clone pattern): reference data from the observer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from protocol.messages import Instrument
from services.runtime import client
from services.runtime.log import logger

if TYPE_CHECKING:
    from services.runtime.service import Service


def fetch_instruments(service: Service, timeout: float = 0.5) -> list[Instrument]:
    """The observer's current Instruments; [] (and a log line) if it does not answer."""
    rt = service.settings.runtime
    address = client.ctl_address(rt.run_dir, "observer", rt.endpoints)
    try:
        data = client.call(address, "instruments", timeout=timeout, ctx=service.ctx)
        return [msgspec.convert(i, Instrument) for i in data["instruments"]]
    except (client.CtlTimeout, client.CtlFailed, msgspec.ValidationError) as exc:
        logger.info("no instrument snapshot from the observer ({}); waiting for the feed", exc)
        return []
