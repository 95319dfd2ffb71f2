"""risk.* settings: per-strategy and per-symbol overrides load, and bad ones name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.settings import ConfigError, load_settings


def load(tmp_path: Path, yaml_text: str, **env: str) -> object:
    (tmp_path / "default.yaml").write_text(yaml_text, encoding="utf-8")
    return load_settings(env=env, config_dir=tmp_path)


def test_overrides_load_from_yaml(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        "risk:\n"
        "  price_collar_bp: 500\n"
        "  strategies:\n"
        "    scalp: {max_order_qty: 100, max_daily_loss: 300000, duplicate_window_ms: 0}\n"
        "  symbols:\n"
        "    '005930': {max_position_qty: 2000, price_collar_bp: 300}\n",
    )
    risk = s.risk  # type: ignore[attr-defined]
    assert risk.price_collar_bp == 500
    assert risk.strategies["scalp"].max_order_qty == 100
    assert risk.strategies["scalp"].duplicate_window_ms == 0
    assert risk.symbols["005930"].max_position_qty == 2000
    assert risk.symbols["005930"].max_order_qty is None


def test_override_from_environment(tmp_path: Path) -> None:
    s = load(tmp_path, "", QTS_RISK__STRATEGIES="{pulse: {max_open_orders: 3}}")
    assert s.risk.strategies["pulse"].max_open_orders == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "yaml_text,key",
    [
        ("risk: {strategies: {scalp: {max_oder_qty: 1}}}", "risk.strategies.scalp.max_oder_qty"),
        ("risk: {symbols: {'005930': {max_order_qty: 0}}}", "risk.symbols.005930.max_order_qty"),
        # a symbol cannot set an account-wide or strategy-only limit
        ("risk: {symbols: {'005930': {max_daily_loss: 5}}}", "risk.symbols.005930.max_daily_loss"),
        ("risk: {price_collar_bp: -5}", "risk.price_collar_bp"),
        ("risk: {submit_rate_per_s: 0}", "risk.submit_rate_per_s"),
        ("risk: {require_phase: maybe}", "risk.require_phase"),
    ],
)
def test_bad_override_names_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, yaml_text)
    assert key in str(err.value)
