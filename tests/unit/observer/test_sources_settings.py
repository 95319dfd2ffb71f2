"""Selecting an external Observer by OBSERVER_ENDPOINT, and building its source from settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zmq

from services.observer.sources.external import external_source
from services.observer.sources.transport import UnixTransport, ZmqTransport
from services.runtime.settings import ConfigError, load_settings


def config(tmp_path: Path) -> Path:
    # the repository's default.yaml names the synthetic source explicitly: so does this one
    (tmp_path / "default.yaml").write_text("observer:\n  source: synthetic\n  endpoint: stub\n")
    return tmp_path


@pytest.mark.parametrize(
    ("endpoint", "transport"),
    [("unix:///run/obs.sock", UnixTransport), ("ipc:///run/obs", ZmqTransport)],
)
def test_external_endpoint_then_external_source_over_its_transport(
    tmp_path: Path, endpoint: str, transport: type
) -> None:
    s = load_settings(env={"OBSERVER_ENDPOINT": endpoint}, config_dir=config(tmp_path))
    assert s.observer.source == "external"
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        source = external_source(s, ctx)
        assert isinstance(source.transport, transport)
        assert source.transport.path == endpoint.split("://", 1)[1]
        source.close()
    finally:
        ctx.term()


def test_feed_settings_reach_the_feed(tmp_path: Path) -> None:
    env = {
        "OBSERVER_ENDPOINT": "unix:///run/obs.sock",
        "QTS_OBSERVER__STALE_AFTER_MS": "1500",
        "QTS_OBSERVER__SUBSCRIBE": "['005930']",
        "QTS_OBSERVER__BAD_FRAME_FLOOD": "7",
    }
    s = load_settings(env=env, config_dir=config(tmp_path))
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        cfg = external_source(s, ctx).feed.cfg
    finally:
        ctx.term()
    assert (cfg.stale_after_s, cfg.symbols, cfg.flood_frames) == (1.5, ("005930",), 7)


def test_stub_endpoint_then_synthetic_source(tmp_path: Path) -> None:
    s = load_settings(env={"OBSERVER_ENDPOINT": "stub"}, config_dir=config(tmp_path))
    assert s.observer.source == "synthetic"


def test_non_positive_stale_after_then_config_error_names_the_key(tmp_path: Path) -> None:
    env = {"OBSERVER_ENDPOINT": "unix:///x.sock", "QTS_OBSERVER__STALE_AFTER_MS": "0"}
    with pytest.raises(ConfigError, match=r"observer\.stale_after_ms"):
        load_settings(env=env, config_dir=config(tmp_path))
