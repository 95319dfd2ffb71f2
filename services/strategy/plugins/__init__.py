"""Strategy plugins, chosen by settings.strategy.scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.strategy.api import Strategy
from services.strategy.plugins.pulse import Pulse
from services.strategy.plugins.scalp import Scalp
from services.strategy.plugins.swing import Swing

FACTORY: dict[str, Callable[[Any], Strategy]] = {
    "pulse": lambda s: Pulse(
        s.strategy.pulse_every,
        s.strategy.pulse_qty,
        s.strategy.pulse_symbols,
        s.strategy.pulse_passive_ticks,
    ),
    "scalp": lambda s: Scalp(),
    "swing": lambda s: Swing(),
}
