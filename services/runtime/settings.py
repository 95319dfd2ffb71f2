"""One settings object for every service, validated by pydantic.

Sources, later ones winning:
  1. config/default.yaml
  2. config/<QTS_ENV>.yaml (e.g. production.yaml), if QTS_ENV names one
  3. config/local/*.yaml (untracked, sorted by name)
  4. the file named by QTS_CONFIG
  5. the seed's environment names: OBSERVER_ENDPOINT, BROKER_TYPE, LOG_LEVEL, STRATEGY_SCOPE
  6. QTS_<SECTION>__<KEY>[__<KEY>...]=value for any key (value parsed as YAML: 5, true, [a, b])
A bad value stops start-up with the key's path and what was expected (ConfigError).
Secrets (broker app keys, account numbers) are not settings: they come from the environment or
.env only (services/runtime/secrets.py) and never appear here or in a log line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "config"


class ConfigError(Exception):
    """The configuration is unusable; the message names the key path and what was expected."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimeSettings(Section):
    env: str = "development"
    var_dir: Path = Path("var")  # relative paths are relative to the repo root
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False
    heartbeat_interval_ms: int = Field(100, gt=0)
    failsafe_ms: int = Field(1000, gt=0)  # no new order after this long without a control message
    poll_ms: int = Field(100, gt=0)  # longest a loop sleeps before checking timers and signals
    endpoints: dict[str, str] = {}  # name -> tcp://host:port overrides for multi-host runs
    sndhwm: int = Field(100_000, gt=0)
    rcvhwm: int = Field(100_000, gt=0)

    @property
    def var_path(self) -> Path:
        return self.var_dir if self.var_dir.is_absolute() else REPO_ROOT / self.var_dir

    @property
    def run_dir(self) -> Path:
        return self.var_path / "run"

    @property
    def state_dir(self) -> Path:
        return self.var_path / "state"


class SymbolSpec(Section):
    symbol: str = Field(min_length=1, max_length=12)
    base_price: int = Field(gt=0)
    name: str = ""
    market: Literal["KOSPI", "KOSDAQ", "KONEX"] = "KOSPI"
    kind: Literal["STOCK", "ETF", "ETN"] = "STOCK"


class ObserverSettings(Section):
    # "stub" is the seed's name for the synthetic source; a path ending .qtsrec.* is a replay file
    source: Literal["synthetic", "replay"] = "synthetic"
    endpoint: str = "stub"  # OBSERVER_ENDPOINT: stub | replay:<path> | unix://... | ipc://...
    symbols: list[SymbolSpec] = [
        SymbolSpec(symbol="005930", base_price=71_000, name="Samsung Electronics"),
        SymbolSpec(symbol="000660", base_price=182_000, name="SK hynix"),
        SymbolSpec(symbol="035420", base_price=198_500, name="NAVER"),
        SymbolSpec(symbol="247540", base_price=15_230, name="Ecopro BM", market="KOSDAQ"),
    ]
    rate_hz: float = Field(200.0, gt=0, le=1_000_000)  # market events per second, all symbols
    book_every: int = Field(2, ge=1)  # one book snapshot per N trades per symbol
    seed: int = 7
    replay_path: Path | None = None
    replay_speed: float = Field(0.0, ge=0)  # 0 = as fast as possible, 1 = real time, N = N x
    max_events: int | None = Field(None, gt=0)  # stop after this many events (then EndOfStream)
    instrument_every_s: float = Field(1.0, gt=0)  # late joiners learn reference data fast


class StrategySettings(Section):
    scope: Literal["scalp", "swing", "pulse"] = "scalp"  # STRATEGY_SCOPE
    pulse_every: int = Field(20, ge=1)  # pulse: one order per N trades per symbol
    pulse_qty: int = Field(1, ge=1)
    pulse_symbols: list[str] = []  # empty = every symbol
    # pulse: 0 = marketable (buy at the ask); N > 0 = rest N ticks behind the best bid/ask,
    # so orders stay open (for the halt benchmark and cancel tests)
    pulse_passive_ticks: int = Field(0, ge=0, le=50)
    params: dict[str, dict[str, Any]] = {}  # per-strategy parameters, by strategy name
    timer_ms: int = Field(1000, gt=0)


class RiskSettings(Section):
    max_order_qty: int = Field(10_000, gt=0)
    max_order_notional: int = Field(50_000_000, gt=0)  # KRW
    max_intent_age_ms: int = Field(2_000, gt=0)


class BrokerSettings(Section):
    type: Literal["paper", "kis", "kiwoom"] = "paper"  # BROKER_TYPE
    mode: Literal["paper", "live"] = "paper"  # a broker's own demo (모의) or live hosts
    request_timeout_ms: int = Field(2_000, gt=0)


class ExecutionSettings(Section):
    journal_synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"
    max_intent_age_ms: int = Field(2_000, gt=0)
    reconcile_retry_ms: int = Field(1_000, gt=0)
    # while running: compare open orders and fills with the broker this often (0 = never)
    reconcile_interval_s: float = Field(30.0, ge=0)


class AccountSettings(Section):
    initial_cash: int = Field(100_000_000, ge=0)  # the paper account's opening deposit, KRW
    commission_rate_bp: float = Field(1.5, ge=0, le=100)  # per side, basis points (0.015%)


class VenueSettings(Section):
    ack_latency_ms: float = Field(0.0, ge=0)
    fill_latency_ms: float = Field(0.0, ge=0)
    queue_model: bool = True  # a resting order waits behind the displayed size at its price
    synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"  # venue.db; FULL survives power loss


class PortfolioSettings(Section):
    publish_interval_ms: int = Field(1000, gt=0)


class PerformanceSettings(Section):
    report_dir: Path = Path("reports")  # under var_dir unless absolute


class SupervisorSettings(Section):
    control_interval_ms: int = Field(100, gt=0)
    heartbeat_timeout_ms: int = Field(1_000, gt=0)
    halt_ack_timeout_ms: int = Field(1_000, gt=0)
    critical: list[str] = ["risk", "execution"]
    initial_state: Literal["ACTIVE", "REDUCING", "HALTED"] = "ACTIVE"  # first start only
    # services that must acknowledge every state change (the venue is a broker: it does not)
    acknowledgers: list[str] = [
        "observer",
        "strategy",
        "risk",
        "execution",
        "portfolio",
        "performance",
    ]


class GuardrailSettings(Section):
    """Limits the supervisor enforces on its own (services/supervisor/guardrails.py). Each
    guardrail has its own `*_enabled` flag; amounts are KRW, durations milliseconds."""

    evaluate_interval_ms: int = Field(100, gt=0)
    # 1. net PnL (realized + unrealized - fees - taxes) below -max_daily_loss -> HALTED
    daily_loss_enabled: bool = True
    max_daily_loss: int = Field(2_000_000, gt=0)
    # 2. equity this far below the day's (KST) peak -> HALTED
    drawdown_enabled: bool = True
    max_drawdown: int = Field(3_000_000, gt=0)
    # 3. gross notional of the account, or one position's notional, above a limit -> REDUCING
    exposure_enabled: bool = True
    max_gross_exposure: int = Field(80_000_000, gt=0)
    max_position_notional: int = Field(20_000_000, gt=0)
    # 4. a critical service (supervisor.critical) silent this long after it was seen -> HALTED;
    # longer than a supervisorctl restart takes, so a planned restart does not halt trading
    heartbeat_loss_enabled: bool = True
    heartbeat_loss_ms: int = Field(3_000, gt=0)
    # 5. this many OrderRejected within the window -> HALTED
    reject_storm_enabled: bool = True
    reject_storm_count: int = Field(20, gt=0)
    reject_storm_window_s: float = Field(10.0, gt=0)
    # not counted: BROKER_UNAVAILABLE orders provably never left (a broker restart or outage),
    # so a planned restart of the broker connection does not halt trading
    reject_storm_ignore_codes: list[str] = ["BROKER_UNAVAILABLE", "NOT_AT_BROKER"]
    # 6. while ACTIVE, a symbol without market data for this long (observer heartbeats) -> HALTED
    stale_md_enabled: bool = True
    stale_md_ms: int = Field(5_000, gt=0)
    # 7. a heartbeat stamped this far from the supervisor's wall clock -> warn (or HALTED)
    clock_skew_enabled: bool = True
    max_clock_skew_ms: int = Field(500, gt=0)
    clock_skew_action: Literal["warn", "HALTED"] = "warn"


class Settings(Section):
    runtime: RuntimeSettings = RuntimeSettings()
    observer: ObserverSettings = ObserverSettings()
    strategy: StrategySettings = StrategySettings()
    risk: RiskSettings = RiskSettings()
    broker: BrokerSettings = BrokerSettings()
    execution: ExecutionSettings = ExecutionSettings()
    account: AccountSettings = AccountSettings()
    venue: VenueSettings = VenueSettings()
    portfolio: PortfolioSettings = PortfolioSettings()
    performance: PerformanceSettings = PerformanceSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    guardrails: GuardrailSettings = GuardrailSettings()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.observer.source == "replay" and self.observer.replay_path is None:
            raise ValueError("observer.replay_path is required when observer.source is 'replay'")
        return self


# The seed's environment variable names and the key each one sets.
SEED_ENV = {
    "QTS_ENV": ("runtime", "env"),
    "LOG_LEVEL": ("runtime", "log_level"),
    "BROKER_TYPE": ("broker", "type"),
    "STRATEGY_SCOPE": ("strategy", "scope"),
    "OBSERVER_ENDPOINT": ("observer", "endpoint"),
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _env_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def _apply_observer_endpoint(tree: dict[str, Any]) -> None:
    observer = tree.get("observer") or {}
    endpoint = str(observer.get("endpoint", "stub"))
    if endpoint.startswith("replay:"):
        observer.setdefault("source", "replay")
        observer.setdefault("replay_path", endpoint.removeprefix("replay:"))
    tree["observer"] = observer


def load_settings(env: dict[str, str] | None = None, config_dir: Path | None = None) -> Settings:
    """Read, merge and validate the configuration. Raises ConfigError on any problem."""
    env = dict(os.environ if env is None else env)
    config_dir = config_dir or CONFIG_DIR
    tree = _read_yaml(config_dir / "default.yaml") if (config_dir / "default.yaml").exists() else {}
    qts_env = env.get("QTS_ENV")
    if qts_env and (config_dir / f"{qts_env}.yaml").exists():
        tree = _merge(tree, _read_yaml(config_dir / f"{qts_env}.yaml"))
    local = config_dir / "local"
    if local.is_dir():
        for path in sorted(local.glob("*.yaml")):
            tree = _merge(tree, _read_yaml(path))
    if env.get("QTS_CONFIG"):
        tree = _merge(tree, _read_yaml(Path(env["QTS_CONFIG"])))
    for name, key in SEED_ENV.items():
        if env.get(name):
            _set_path(tree, list(key), env[name])
    for name, raw in sorted(env.items()):
        if name.startswith("QTS_") and "__" in name:
            keys = [k.lower() for k in name.removeprefix("QTS_").split("__")]
            if any(not k for k in keys):
                raise ConfigError(f"environment variable {name}: empty key in its path")
            _set_path(tree, keys, _env_value(raw))
    _apply_observer_endpoint(tree)
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = err.get("input")
        got_text = f" (got {got!r})" if not isinstance(got, dict | list) else ""
        lines.append(f"  {path}: {err['msg']}{got_text}")
    return "\n".join(lines)
