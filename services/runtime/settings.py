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

import datetime as dt
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
    # CURVE keys for tcp:// endpoints (services/runtime/curve.py): public/ and private/;
    # unset = <var_dir>/keys; relative paths are relative to the repo root
    curve_dir: Path | None = None

    @property
    def var_path(self) -> Path:
        return self.var_dir if self.var_dir.is_absolute() else REPO_ROOT / self.var_dir

    @property
    def curve_path(self) -> Path:
        if self.curve_dir is None:
            return self.var_path / "keys"
        return self.curve_dir if self.curve_dir.is_absolute() else REPO_ROOT / self.curve_dir

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
    source: Literal["synthetic", "replay", "external"] = "synthetic"
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
    # a replay starts only once trading is ACTIVE (every service up and told), not at start-up
    replay_wait_active: bool = False
    # a replay publishes its next market event only once the strategy has taken the last one
    # and execution and the venue have answered every intent and order it caused (docs/venue.md)
    replay_lockstep: bool = False
    max_events: int | None = Field(None, gt=0)  # stop after this many events (then EndOfStream)
    instrument_every_s: float = Field(1.0, gt=0)  # late joiners learn reference data fast
    # md_since (Clone pattern): the last N published md messages are kept, encoded, for
    # subscribers that missed some (a gap, a restart) and for strategy warm-up (~320 B each
    # with the synthetic 10-level books: 100,000 is about 32 MB)
    history_events: int = Field(100_000, ge=1, le=10_000_000)
    # the `marks` stream (risk, portfolio): each symbol's latest trade this often; reference
    # data, phases and the end of the stream are sent on it at once
    marks_interval_ms: int = Field(50, gt=0, le=10_000)
    # external Observer (endpoint unix://<path> or ipc://<path>; docs/observer_integration.md)
    subscribe: list[str] = []  # symbols asked of the Observer; empty = all it has
    stale_after_ms: int = Field(3000, gt=0)  # a symbol silent this long in session is stale
    reconnect_min_ms: int = Field(100, gt=0)  # reconnect back-off: doubles up to the max
    reconnect_max_ms: int = Field(5000, gt=0)
    feed_heartbeat_ms: int = Field(1000, gt=0)  # QTS -> Observer keepalive
    feed_silence_ms: int = Field(3000, gt=0)  # no frame (not even a heartbeat): reconnect
    snapshot_timeout_ms: int = Field(2000, gt=0)  # an unanswered snapshot request is repeated
    bad_frame_flood: int = Field(100, ge=1)  # this many bad frames ...
    bad_frame_window_s: float = Field(10.0, gt=0)  # ... within this window: reported


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
    # on start: replay the last N md messages from the observer's history to the plugins
    # (orders they ask for meanwhile are suppressed and counted) so indicators are warm; 0 = off
    warmup_events: int = Field(20_000, ge=0, le=10_000_000)
    warmup_timeout_s: float = Field(5.0, gt=0)  # the most warm-up may take before going live


class RiskOverride(Section):
    """Keys a strategy (`risk.strategies.<name>`) or a symbol (`risk.symbols.<code>`) may set;
    an unset key (None) falls back to the global `risk.*` value. See docs/risk.md."""

    max_order_qty: int | None = Field(None, gt=0)
    max_order_notional: int | None = Field(None, gt=0)
    price_collar_bp: int | None = Field(None, gt=0)
    max_position_qty: int | None = Field(None, gt=0)
    max_position_notional: int | None = Field(None, gt=0)
    max_open_orders: int | None = Field(None, gt=0)
    max_orders_per_day: int | None = Field(None, gt=0)
    max_cancels_per_day: int | None = Field(None, gt=0)


class StrategyRisk(RiskOverride):
    """Per strategy: the per-order keys override the global ones; the count, position,
    exposure and loss keys limit this strategy's own orders, positions and PnL."""

    max_intent_age_ms: int | None = Field(None, gt=0)
    duplicate_window_ms: int | None = Field(None, ge=0)
    max_gross_exposure: int | None = Field(None, gt=0)
    max_net_exposure: int | None = Field(None, gt=0)
    max_daily_loss: int | None = Field(None, gt=0)


class RiskSettings(Section):
    """Pre-trade checks (services/risk/engine.py, docs/risk.md). Amounts KRW, None = no limit."""

    max_order_qty: int = Field(10_000, gt=0)
    max_order_notional: int = Field(50_000_000, gt=0)  # KRW
    max_intent_age_ms: int = Field(2_000, gt=0)
    # deny every order until a PhaseChanged for the market has been seen
    require_phase: bool = True
    price_collar_bp: int | None = Field(1_000, gt=0)  # from the last trade; 1,000 bp = 10%
    # account position in one symbol after the order, counting open orders on the same side
    max_position_qty: int | None = Field(None, gt=0)
    max_position_notional: int | None = Field(20_000_000, gt=0)
    # account: positions at the last trade + open orders at their price
    max_gross_exposure: int | None = Field(100_000_000, gt=0)
    max_net_exposure: int | None = Field(100_000_000, gt=0)
    max_open_orders: int | None = Field(500, gt=0)
    max_open_orders_per_symbol: int | None = Field(100, gt=0)
    max_orders_per_day: int | None = Field(50_000, gt=0)  # approvals per KST day
    max_orders_per_day_per_symbol: int | None = Field(20_000, gt=0)
    max_cancels_per_day: int | None = Field(50_000, gt=0)
    max_cancels_per_day_per_symbol: int | None = Field(20_000, gt=0)
    # token bucket for the whole account; None = the broker's documented limit (docs/risk.md)
    submit_rate_per_s: float | None = Field(None, gt=0)
    submit_burst: int | None = Field(None, gt=0)
    duplicate_window_ms: int = Field(100, ge=0)  # 0 = off
    self_cross: bool = True
    # realised + unrealised - fees of the KST day below -max_daily_loss: only shrinking orders
    # (the supervisor's guardrail halts at guardrails.max_daily_loss)
    max_daily_loss: int | None = Field(1_500_000, gt=0)
    strategies: dict[str, StrategyRisk] = {}
    symbols: dict[str, RiskOverride] = {}


class KisSettings(Section):
    """KIS (한국투자증권) Open API (docs/brokers/kis.md; facts in shared/brokers/kis.md).
    Hosts are overridable so tests point them at 127.0.0.1. Secrets are not here: the names
    of the environment variables that hold them are."""

    live_rest_url: str = "https://openapi.koreainvestment.com:9443"
    paper_rest_url: str = "https://openapivts.koreainvestment.com:29443"
    live_ws_url: str = "ws://ops.koreainvestment.com:21000"
    paper_ws_url: str = "ws://ops.koreainvestment.com:31000"
    ws_path: str = "/tryitout"  # OTA and python-kis; the bare host also works (kis.md 1)
    app_key_env: str = "KIS_APP_KEY"
    app_secret_env: str = "KIS_APP_SECRET"
    account_env: str = "KIS_ACCOUNT"  # "12345678-01": CANO-ACNT_PRDT_CD
    hts_id_env: str = "KIS_HTS_ID"  # tr_key of the execution-notice subscription
    custtype: Literal["P", "B"] = "P"
    exchange: Literal["KRX", "NXT", "SOR", ""] = "KRX"  # EXCG_ID_DVSN_CD ("" = not sent)
    # per app key, shared by every process using it (portal notice 2026-04-20: 18/s, paper 1/s)
    live_rate_per_s: int = Field(18, gt=0)
    paper_rate_per_s: int = Field(1, gt=0)
    rate_limit_backoff_ms: int = Field(1_000, gt=0)  # everyone pauses this long on EGW00201
    token_min_interval_s: float = Field(60.0, ge=0)  # EGW00133: one issuance a minute
    token_renew_before_s: float = Field(3_600.0, ge=0)  # re-issue when less than this is left
    connect_timeout_ms: int = Field(1_000, gt=0)
    order_timeout_ms: int = Field(5_000, gt=0)  # an order POST unanswered this long: unknown
    # a reconcile query (all pages) may take this long even if broker.request_timeout_ms is
    # shorter: paper allows 1 request/s and 15 rows a page (queries run on their own thread)
    query_timeout_ms: int = Field(15_000, gt=0)
    query_page_delay_ms: int = Field(0, ge=0)  # extra pause between pages (OTA sleeps 100)
    max_pages: int = Field(50, gt=0)  # a paged query stops with an error past this many pages
    cancel_confirm_ms: int = Field(5_000, gt=0)  # no close notice this long after a cancel: resync
    ws_backoff_min_ms: int = Field(500, gt=0)
    ws_backoff_max_ms: int = Field(30_000, gt=0)
    ws_idle_timeout_s: float = Field(300.0, gt=0)  # nothing received this long: reconnect
    state_dir: Path | None = None  # token cache, rate window, fill ledger; None = var/broker/kis


class KiwoomSettings(Section):
    """Kiwoom (키움증권) REST API + WebSocket (docs/brokers/kiwoom.md; facts in
    shared/brokers/kiwoom.md). Hosts are overridable so tests point them at 127.0.0.1.
    Secrets are not here: the names of the environment variables that hold them are. Live
    and mock (모의투자) use different key pairs."""

    live_rest_url: str = "https://api.kiwoom.com"
    mock_rest_url: str = "https://mockapi.kiwoom.com"
    live_ws_url: str = "wss://api.kiwoom.com:10000"
    mock_ws_url: str = "wss://mockapi.kiwoom.com:10000"
    ws_path: str = "/api/dostk/websocket"
    app_key_env: str = "KIWOOM_APP_KEY"
    app_secret_env: str = "KIWOOM_APP_SECRET"
    account_env: str = "KIWOOM_ACCOUNT"  # optional: 10 digits, checked against 00 notices
    exchange: Literal["KRX", "NXT", "SOR"] = "KRX"  # dmst_stex_tp; mock: KRX only (1)
    # no official numbers (6.1): a policy text says 5/s live, 1/s mock, per app key
    live_rate_per_s: int = Field(5, gt=0)
    mock_rate_per_s: int = Field(1, gt=0)
    # queries also per api-id: one measurement says about 1/s with a burst of 2 (6.1)
    query_burst: int = Field(2, gt=0)
    query_window_s: float = Field(2.0, gt=0)
    rate_limit_backoff_ms: int = Field(1_000, gt=0)  # 1700/429: everyone on the key pauses
    rate_limit_retries: int = Field(3, ge=0)
    token_min_interval_s: float = Field(60.0, ge=0)  # issuance limit unknown: be sparing
    token_renew_before_s: float = Field(600.0, ge=0)  # the official SDK renews 600 s early
    revoke_on_close: bool = True  # au10002 when execution stops
    connect_timeout_ms: int = Field(1_000, gt=0)
    order_timeout_ms: int = Field(5_000, gt=0)  # an order POST unanswered this long: unknown
    query_page_delay_ms: int = Field(200, ge=0)  # between pages (official examples: 0.2 s)
    max_pages: int = Field(50, gt=0)
    cancel_confirm_ms: int = Field(5_000, gt=0)  # no close notice this long after a cancel
    order_seen_grace_ms: int = Field(5_000, ge=0)  # see KiwoomAdapter.orders_today
    ws_login_timeout_ms: int = Field(5_000, gt=0)
    ws_backoff_min_ms: int = Field(500, gt=0)
    ws_backoff_max_ms: int = Field(30_000, gt=0)
    ws_idle_timeout_s: float = Field(300.0, gt=0)  # nothing (not even PING) this long: reconnect
    state_dir: Path | None = None  # token, rate window, ledger; None = var/broker/kiwoom


class BrokerSettings(Section):
    type: Literal["paper", "kis", "kiwoom"] = "paper"  # BROKER_TYPE
    mode: Literal["paper", "live"] = "paper"  # a broker's own demo (모의) or live hosts
    request_timeout_ms: int = Field(2_000, gt=0)
    kis: KisSettings = KisSettings()
    kiwoom: KiwoomSettings = KiwoomSettings()


class ExecutionSettings(Section):
    journal_synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"
    max_intent_age_ms: int = Field(2_000, gt=0)
    reconcile_retry_ms: int = Field(1_000, gt=0)
    # while running: compare open orders and fills with the broker this often (0 = never)
    reconcile_interval_s: float = Field(30.0, ge=0)


class BrokerFees(Section):
    """One broker's online commission per side, basis points (krx.md 5.2; docs/portfolio.md)."""

    stock_bp: float = Field(1.5, ge=0, le=100)
    etf_bp: float = Field(1.5, ge=0, le=100)  # ETF / ETN
    unit: int = Field(1, ge=1, le=1_000)  # each fill's commission is truncated to this many won


class AccountSettings(Section):
    initial_cash: int = Field(100_000_000, ge=0)  # the paper account's opening deposit, KRW
    commission_rate_bp: float = Field(1.5, ge=0, le=100)  # paper venue, per side (0.015%)
    # real brokers by broker.type; confirm per account, promotions change them (krx.md 5.2)
    fees: dict[Literal["kis", "kiwoom"], BrokerFees] = {
        "kis": BrokerFees(stock_bp=1.40527, etf_bp=1.46527),  # BanKIS / non-face-to-face
        "kiwoom": BrokerFees(stock_bp=1.5, etf_bp=1.5),
    }

    def broker_fees(self, broker: str) -> BrokerFees:
        """The schedule the account pays at `broker`; the paper venue charges
        commission_rate_bp on everything, so the books match its cash to the won."""
        if broker in ("kis", "kiwoom") and broker in self.fees:
            return self.fees[broker]  # type: ignore[index]
        return BrokerFees(stock_bp=self.commission_rate_bp, etf_bp=self.commission_rate_bp)


class VenueSettings(Section):
    # modelled latencies (docs/venue.md): a new order / a cancel reaches the matching engine
    # order_latency_ms / cancel_latency_ms after the request arrives (the book may move, a
    # cancelled order may still fill meanwhile); answers and notices leave ack_latency_ms /
    # fill_latency_ms after the engine acted
    order_latency_ms: float = Field(0.0, ge=0)
    cancel_latency_ms: float = Field(0.0, ge=0)
    ack_latency_ms: float = Field(0.0, ge=0)
    fill_latency_ms: float = Field(0.0, ge=0)
    queue_model: bool = True  # a resting order waits behind the displayed size at its price
    synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL"  # venue.db; FULL survives power loss


class PortfolioSettings(Section):
    publish_interval_ms: int = Field(1000, gt=0)


class PerformanceSettings(Section):
    report_dir: Path = Path("reports")  # under var_dir unless absolute
    # the end-of-day report is written by itself this long after the KRX close (0 = only on
    # `qts-ctl report`); docs/portfolio.md
    report_after_close_s: float = Field(600.0, ge=0)


class SessionSettings(Section):
    """The exchange session (services/runtime/calendar.py, docs/operations.md "Session edges").

    clock "exchange": the KRX calendar (exchange-calendars XKRX plus krx.md's corrections)
    drives the market phase the observer publishes: no order outside the session. A replay
    follows its recording's exchange time. clock "always_open": the market is CONTINUOUS all
    day, every day: only for the synthetic source on the paper venue (a demo at any hour)."""

    clock: Literal["exchange", "always_open"] = "exchange"
    # scalp strategies close their positions this many minutes before the closing auction
    flatten_before_close_min: float = Field(5.0, ge=0, le=390)
    # ad-hoc closures the calendar cannot know yet (announced weeks ahead), YYYY-MM-DD
    extra_closures: list[dt.date] = []


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
    # qts-ctl halt --flatten: HALTED once execution reports flat, or after this long anyway
    flatten_timeout_s: float = Field(120.0, gt=0)


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
    # 8. execution reports its broker unanswering (broker_down_ms) longer than this -> action
    broker_disconnect_enabled: bool = True
    broker_disconnect_grace_ms: int = Field(10_000, gt=0)
    broker_disconnect_action: Literal["HALTED", "REDUCING"] = "HALTED"
    # 9. more than this many differences found by execution's periodic reconciliation with
    # the broker (counted since the last firing, over the KST day) -> REDUCING
    reconcile_differences_enabled: bool = True
    max_reconcile_differences: int = Field(3, ge=0)
    # the day state (peak equity, reject window, reconcile count) is saved at most this often
    # to var/state/guardrails.json, so a restarted supervisor keeps the day's peak
    day_state_save_interval_ms: int = Field(1_000, gt=0)


class NotifierSettings(Section):
    """Alerts (services/supervisor/notifier.py): every trading-state change and guardrail
    firing POSTed as JSON. The URL may carry a token: it is masked in every log line."""

    webhook_url: str = ""  # empty = no alerts (the log still has every one)
    timeout_s: float = Field(2.0, gt=0, le=60)
    retries: int = Field(3, ge=0, le=10)  # after the first try
    backoff_s: float = Field(0.5, gt=0, le=60)  # doubled after each failed try
    queue_size: int = Field(1_000, gt=0)  # alerts waiting beyond this are dropped and counted
    close_timeout_s: float = Field(2.0, ge=0, le=30)  # shutdown waits this long to deliver

    @model_validator(mode="after")
    def _check_url(self) -> NotifierSettings:
        url = self.webhook_url
        if url and not (url.startswith("http://") or url.startswith("https://")):
            # the value itself may hold a token: never echo it back
            raise ValueError("webhook_url must start with http:// or https://")
        return self


class MetricsSettings(Section):
    """The supervisor's HTTP endpoint (services/supervisor/dashboard.py): Prometheus /metrics
    and the read-only dashboard at /, on its own thread. Loopback by default: put a reverse
    proxy with TLS in front before binding another address (docs/metrics.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9470, ge=0, le=65535)  # 0: any free port (tests; logged at start)
    # the supervisor loop hands the HTTP thread a fresh view this often
    publish_interval_ms: int = Field(500, gt=0)
    # the dashboard asks portfolio, execution and performance for their figures this often
    fetch_interval_ms: int = Field(2_000, gt=0)
    fetch_timeout_ms: int = Field(1_000, gt=0)
    recent_rejects: int = Field(20, gt=0, le=500)
    # the halt button needs the value of this environment variable (no variable: no button)
    halt_token_env: str = Field("QTS_DASHBOARD_TOKEN", min_length=1)
    bind_retry_s: float = Field(10.0, gt=0)  # port taken: try again this often


class BackupSettings(Section):
    """Online backups of the SQLite stores and state files (services/runtime/backup.py,
    docs/operations.md "Backup and restore"). `qts-ctl backup` works whatever these say."""

    enabled: bool = True  # the scheduled and end-of-day backups
    dir: Path = Path("backup")  # under var_dir unless absolute
    interval_s: float = Field(1800.0, ge=0)  # slots aligned to KST midnight; 0 = none
    at_close: bool = True  # one more after the KRX close (by the calendar) on session days
    after_close_s: float = Field(600.0, ge=0)
    keep_count: int = Field(48, ge=1)  # the newest backups kept...
    keep_days: int = Field(30, ge=1)  # ...plus each day's last one for this many KST days
    pages: int = Field(256, ge=1)  # SQLite pages copied per step (4 KiB each)
    step_sleep_ms: float = Field(2.0, ge=0)  # between steps, so the writer commits in between
    max_restarts: int = Field(3, ge=0)  # then the rest in one step (WAL: the writer goes on)
    wait_s: float = Field(30.0, ge=0)  # the venue's scheduled copy waits for execution's


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
    notifier: NotifierSettings = NotifierSettings()
    session: SessionSettings = SessionSettings()
    metrics: MetricsSettings = MetricsSettings()
    backup: BackupSettings = BackupSettings()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.observer.source == "replay" and self.observer.replay_path is None:
            raise ValueError("observer.replay_path is required when observer.source is 'replay'")
        if self.broker.type != "paper" and self.session.clock != "exchange":
            raise ValueError(
                f"session.clock must be 'exchange' with broker.type {self.broker.type!r}: "
                "a real broker trades only in the exchange's session"
            )
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
    elif endpoint.startswith(("unix://", "ipc://")):
        observer["source"] = "external"  # the endpoint names the source (config says synthetic)
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
