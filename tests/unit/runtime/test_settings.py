from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.settings import ConfigError, load_settings


def _config_dir(tmp_path: Path, default: str = "", **files: str) -> Path:
    (tmp_path / "local").mkdir()
    (tmp_path / "default.yaml").write_text(default)
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def test_repo_default_config_is_paper_and_synthetic() -> None:
    s = load_settings(env={})
    assert s.broker.type == "paper"
    assert s.observer.source == "synthetic"


def test_qts_env_overlay_applies(tmp_path: Path) -> None:
    d = _config_dir(tmp_path, "risk: {max_order_qty: 5}", production="risk: {max_order_qty: 7}")
    assert load_settings(env={"QTS_ENV": "production"}, config_dir=d).risk.max_order_qty == 7


def test_local_overlay_then_qts_config_then_env(tmp_path: Path) -> None:
    d = _config_dir(tmp_path, "risk: {max_order_qty: 5, max_order_notional: 100}")
    (d / "local" / "a.yaml").write_text("risk: {max_order_qty: 6}")
    extra = tmp_path / "extra.yaml"
    extra.write_text("risk: {max_order_notional: 200}")
    env = {"QTS_CONFIG": str(extra), "QTS_RISK__MAX_INTENT_AGE_MS": "750"}
    risk = load_settings(env=env, config_dir=d).risk
    assert (risk.max_order_qty, risk.max_order_notional, risk.max_intent_age_ms) == (6, 200, 750)


def test_seed_environment_names_override(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    env = {"BROKER_TYPE": "kis", "STRATEGY_SCOPE": "swing", "LOG_LEVEL": "DEBUG"}
    s = load_settings(env=env, config_dir=d)
    assert (s.broker.type, s.strategy.scope, s.runtime.log_level) == ("kis", "swing", "DEBUG")


def test_observer_endpoint_replay_selects_replay_source(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    s = load_settings(env={"OBSERVER_ENDPOINT": "replay:/data/day.qtsrec"}, config_dir=d)
    assert s.observer.source == "replay"
    assert str(s.observer.replay_path) == "/data/day.qtsrec"


def test_env_list_value_is_parsed_as_yaml(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    s = load_settings(env={"QTS_STRATEGY__PULSE_SYMBOLS": "[005930, '000660']"}, config_dir=d)
    # 005930 is not valid YAML int syntax for an octal; it stays a string or int per YAML 1.1
    assert [str(x) for x in s.strategy.pulse_symbols][1] == "000660"


def test_bad_value_names_the_key_path_and_expectation(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings(env={"QTS_OBSERVER__RATE_HZ": "-5"}, config_dir=d)
    assert "observer.rate_hz" in str(err.value)
    assert "greater than 0" in str(err.value)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    d = _config_dir(tmp_path, "risk: {max_ordr_qty: 5}")
    with pytest.raises(ConfigError, match=r"risk\.max_ordr_qty"):
        load_settings(env={}, config_dir=d)


def test_bad_broker_type_lists_the_choices(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    with pytest.raises(ConfigError, match=r"broker\.type.*'paper', 'kis' or 'kiwoom'"):
        load_settings(env={"BROKER_TYPE": "etrade"}, config_dir=d)


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    d = _config_dir(tmp_path, "risk: [unclosed")
    with pytest.raises(ConfigError, match=r"default\.yaml"):
        load_settings(env={}, config_dir=d)


def test_missing_qts_config_file_is_a_clear_error(tmp_path: Path) -> None:
    d = _config_dir(tmp_path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(env={"QTS_CONFIG": str(tmp_path / "nope.yaml")}, config_dir=d)


def test_replay_source_without_path_is_refused(tmp_path: Path) -> None:
    d = _config_dir(tmp_path, "observer: {source: replay}")
    with pytest.raises(ConfigError, match="replay_path"):
        load_settings(env={}, config_dir=d)
