"""Every socket address, named in one place and built from the configured run directory.

On one host every endpoint is `ipc://<run_dir>/<name>.sock`. Across hosts an endpoint can be set
explicitly to `tcp://host:port` in config (runtime.endpoints.<name>), where CURVE applies.
Who binds: the publisher of a stream, the puller of a push stream, the ROUTER of a ctl socket.
"""

from __future__ import annotations

from pathlib import Path

# name -> (binder, description)
ENDPOINTS: dict[str, tuple[str, str]] = {
    "md": ("observer", "PUB market data"),
    # what risk and portfolio need, without waking them on every tick: reference data and
    # phases at once, each symbol's latest trade every observer.marks_interval_ms
    "marks": ("observer", "PUB conflated marks, reference data and phases"),
    "intents": ("risk", "PULL order intents from strategy"),
    "orders": ("execution", "PULL orders/denials from risk"),
    "exec": ("execution", "PUB execution events"),
    "portfolio": ("portfolio", "PUB portfolio snapshots"),
    "control": ("supervisor", "PUB trading state"),
    "heartbeat": ("supervisor", "PULL heartbeats"),
    "venue": ("venue", "ROUTER paper venue requests"),
    "venue_notice": ("venue", "PUB paper venue notices"),
}

SERVICES = (
    "supervisor",
    "observer",
    "strategy",
    "risk",
    "execution",
    "portfolio",
    "performance",
    "venue",
)


def ctl_name(service: str) -> str:
    """Every service binds a ROUTER for qts-ctl requests under this name."""
    return f"ctl.{service}"


def endpoint(run_dir: str | Path, name: str, overrides: dict[str, str] | None = None) -> str:
    """The address of one named socket: the override if configured, else an ipc path."""
    if overrides and name in overrides:
        return overrides[name]
    if name not in ENDPOINTS and not name.startswith("ctl."):
        raise KeyError(f"unknown endpoint {name!r}")
    return f"ipc://{Path(run_dir).resolve()}/{name}.sock"
