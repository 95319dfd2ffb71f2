"""Secrets from the environment or .env, masked; KIS settings resolved; make_adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.execution.adapters import BrokerNotAvailable, make_adapter
from services.execution.adapters.kis.rest import KisConfig
from services.runtime.log import redact
from services.runtime.secrets import MissingSecret, read_dotenv, secret
from services.runtime.settings import Settings

ENV = {
    "KIS_APP_KEY": "PSappkey0123456789abcdefghijklmnopqr",
    "KIS_APP_SECRET": "secret-value-" + "x" * 60,
    "KIS_ACCOUNT": "50012345-01",
    "KIS_HTS_ID": "someone",
}


def kis_settings(tmp_path: Path, mode: str = "paper", **kis: object) -> Settings:
    return Settings.model_validate(
        {
            "runtime": {"var_dir": str(tmp_path)},
            "session": {"clock": "exchange"},
            "broker": {"type": "kis", "mode": mode, "kis": kis},
        }
    )


def test_secret_from_env_wins_and_is_masked(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KIS_APP_KEY=from-dotenv-value\n")
    value = secret("KIS_APP_KEY", env={"KIS_APP_KEY": "from-env-value"}, dotenv=tmp_path / ".env")
    assert value == "from-env-value"
    assert redact("key is from-env-value") == "key is ***"


def test_secret_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\n\nexport KIS_APP_SECRET='quoted secret value'\nKIS_ACCOUNT=50012345-01\n"
    )
    assert secret("KIS_APP_SECRET", env={}, dotenv=tmp_path / ".env") == "quoted secret value"
    assert read_dotenv(tmp_path / "missing.env") == {}


def test_missing_secret_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(MissingSecret, match="KIS_APP_KEY"):
        secret("KIS_APP_KEY", env={}, dotenv=tmp_path / "none")
    assert secret("KIS_HTS_ID", env={}, dotenv=tmp_path / "none", required=False) == ""


def test_bad_dotenv_line_does_not_echo_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("this line holds s3cr3t-value\n")
    with pytest.raises(ValueError, match=r"\.env:1: expected NAME=value") as info:
        read_dotenv(tmp_path / ".env")
    assert "s3cr3t" not in str(info.value)


def test_config_paper_and_live(tmp_path: Path) -> None:
    paper = KisConfig.from_settings(kis_settings(tmp_path), ENV)
    assert paper.rest_url == "https://openapivts.koreainvestment.com:29443"
    assert paper.ws_url == "ws://ops.koreainvestment.com:31000/tryitout"
    assert (paper.cano, paper.prdt, paper.rate_per_s, paper.exchange) == (
        "50012345",
        "01",
        1,
        "KRX",
    )
    assert paper.state_dir == tmp_path / "broker" / "kis"
    live = KisConfig.from_settings(
        kis_settings(tmp_path, "live", live_rest_url="http://127.0.0.1:1/", exchange="SOR"), ENV
    )
    assert (live.rest_url, live.rate_per_s, live.exchange) == ("http://127.0.0.1:1", 18, "SOR")
    assert paper.key_id != live.key_id and ENV["KIS_APP_KEY"] not in paper.key_id


def test_bad_account_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="8 digits"):
        KisConfig.from_settings(kis_settings(tmp_path), dict(ENV, KIS_ACCOUNT="123"))


def test_make_adapter_without_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("services.runtime.secrets.REPO_ROOT", tmp_path)  # no .env there
    with pytest.raises(BrokerNotAvailable, match="KIS_ACCOUNT is not set"):
        make_adapter(kis_settings(tmp_path))


def test_settings_reject_bad_kis_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="live_rate_per_s"):
        kis_settings(tmp_path, live_rate_per_s=0)
    with pytest.raises(ValueError, match="exchange"):
        kis_settings(tmp_path, exchange="NYSE")


def test_config_repr_holds_no_secret(tmp_path: Path) -> None:
    text = repr(KisConfig.from_settings(kis_settings(tmp_path), ENV))
    for name in ("KIS_APP_KEY", "KIS_APP_SECRET", "KIS_HTS_ID"):
        assert ENV[name] not in text
    assert "50012345" not in text
