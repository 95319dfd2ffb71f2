"""qts-ctl: run and operate QTS. Every command takes --json; an error or a timeout exits
non-zero with `error: <CODE>: <reason>` on stderr."""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections import Counter
from typing import Any, NoReturn

import click

from protocol.codes import CtlCode
from protocol.enums import TradingState
from services.ctl.render import krw, render_pnl, render_positions, render_report, table
from services.ctl.supervisord import Supervisord, SupervisordError, conf_path
from services.runtime import client, curve
from services.runtime.settings import ConfigError, Settings, load_settings
from services.runtime.statefile import PersistedState, StateStore

WATCHED = ("observer", "strategy", "risk", "execution", "portfolio", "performance", "venue")


class Ctx:
    def __init__(self, conf: str | None) -> None:
        self.conf_arg = conf
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
                curve.configure(self._settings, "ctl")  # tcp:// endpoints: qts-ctl's CURVE keys
            except ConfigError as exc:
                fail(CtlCode.BAD_REQUEST, str(exc))
        return self._settings

    def supervisord(self) -> Supervisord:
        try:
            return Supervisord(conf_path(self.conf_arg))
        except SupervisordError as exc:
            fail(CtlCode.UNAVAILABLE, str(exc))

    def call(
        self, service: str, command: str, args: dict[str, Any] | None = None, timeout: float = 3.0
    ) -> Any:
        rt = self.settings.runtime
        address = client.ctl_address(rt.run_dir, service, rt.endpoints)
        try:
            rep = client.request(address, command, args, timeout)
        except client.CtlTimeout as exc:
            fail(CtlCode.TIMEOUT, f"{service}: {exc}")
        if not rep.ok:
            fail(rep.code, f"{service}: {rep.reason}", rep.data)
        return rep.data


def fail(code: str, reason: str, data: Any = None) -> NoReturn:
    if data is not None and _JSON:
        click.echo(json.dumps(data, indent=2, default=str))
    click.echo(f"error: {code}: {reason}", err=True)
    sys.exit(1)


_JSON = False


def emit(data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if _JSON else text)


def json_option(fn: Any) -> Any:
    def set_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        global _JSON
        _JSON = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=set_json,
        help="machine-readable output",
    )(fn)


@click.group()
@click.option(
    "--conf",
    default=None,
    help="supervisord config (default: $QTS_SUPERVISORD_CONF "
    "or supervisord.conf in the repository)",
)
@click.pass_context
def cli(ctx: click.Context, conf: str | None) -> None:
    """Operate QTS: start, watch, halt, resume."""
    ctx.obj = Ctx(conf)


# ---------------------------------------------------------------------------------- lifecycle
@cli.command()
@click.option("--env", "env_name", default=None, help="QTS_ENV (e.g. production)")
@click.option("--broker", type=click.Choice(["paper", "kis", "kiwoom"]), default=None)
@click.option("--scope", type=click.Choice(["scalp", "swing", "pulse"]), default=None)
@click.option(
    "--local-only", is_flag=True, help="paper venue and synthetic data, whatever the config says"
)
@click.option(
    "--max-iterations",
    type=click.IntRange(min=1),
    default=None,
    help="stop after N market events: drain, print a summary, shut down",
)
@click.option("--timeout", type=float, default=20.0, help="seconds to wait for every service")
@json_option
@click.pass_obj
def up(
    obj: Ctx,
    env_name: str | None,
    broker: str | None,
    scope: str | None,
    local_only: bool,
    max_iterations: int | None,
    timeout: float,
) -> None:
    """Start supervisord and every service; wait until all are alive."""
    env = dict(os.environ)
    if env_name:
        env["QTS_ENV"] = env_name
    if broker:
        env["BROKER_TYPE"] = broker
    if scope:
        env["STRATEGY_SCOPE"] = scope
    if local_only:
        env["BROKER_TYPE"] = "paper"
        env["OBSERVER_ENDPOINT"] = "stub"
        env["QTS_OBSERVER__SOURCE"] = "synthetic"
    if max_iterations:
        env["QTS_OBSERVER__MAX_EVENTS"] = str(max_iterations)
    try:
        obj._settings = load_settings(env)  # validate before starting anything
    except ConfigError as exc:
        fail(CtlCode.BAD_REQUEST, str(exc))
    sup = obj.supervisord()
    t0 = time.monotonic()
    try:
        sup.start(env)
    except SupervisordError as exc:
        fail(CtlCode.UNAVAILABLE, str(exc))
    status = wait_alive(obj, timeout)
    elapsed = time.monotonic() - t0
    if max_iterations is None:
        emit(status, render_status(status) + f"\nall services up in {elapsed:.1f}s")
        return
    summary = run_to_end(obj, max_iterations, timeout)
    sup.stop()
    emit(summary, render_summary(summary))


def wait_alive(obj: Ctx, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        rt = obj.settings.runtime
        try:
            status = client.call(
                client.ctl_address(rt.run_dir, "supervisor", rt.endpoints), "status", timeout=1.0
            )
        except (client.CtlTimeout, client.CtlFailed):
            time.sleep(0.1)
            continue
        services = status["services"]
        if all(
            services.get(n, {}).get("alive") and services[n].get("status") in ("ready", "done")
            for n in WATCHED
        ):
            return status
        time.sleep(0.1)
    down = [n for n in WATCHED if not status.get("services", {}).get(n, {}).get("alive")]
    fail(
        CtlCode.TIMEOUT,
        f"not alive after {timeout:g}s: {', '.join(down) or 'not ready'}",
        status or None,
    )


def run_to_end(obj: Ctx, events: int, timeout: float) -> dict[str, Any]:
    """--max-iterations: wait for the observer to finish, then for the books to go quiet."""
    deadline = time.monotonic() + max(timeout, 30) + events / 100
    while obj.call("observer", "ping")["status"] != "done":
        if time.monotonic() > deadline:
            fail(CtlCode.TIMEOUT, "observer did not finish its events in time")
        time.sleep(0.1)
    last, quiet_since, end = -1, time.monotonic(), time.monotonic() + 15
    while time.monotonic() < end:
        seq = obj.call("execution", "events_since", {"seq": 1 << 62})["last_seq"]
        if seq != last:
            last, quiet_since = seq, time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            break
        time.sleep(0.1)
    stats = obj.call("observer", "stats")
    orders = obj.call("execution", "orders", {"limit": 1_000_000})["orders"]
    fills = obj.call("execution", "fills")["fills"]
    return {
        "market_events": stats["events"],
        "orders": dict(Counter(o["status"] for o in orders)),
        "fills": len(fills),
        "positions": obj.call("portfolio", "positions"),
        "pnl": obj.call("portfolio", "pnl"),
    }


def render_summary(s: dict[str, Any]) -> str:
    pnl = s["pnl"]
    lines = [
        f"market events: {s['market_events']}",
        "orders: " + (", ".join(f"{k} {v}" for k, v in sorted(s["orders"].items())) or "none"),
        f"fills: {s['fills']}",
        render_positions(s["positions"]),
        f"pnl: realised {krw(pnl['realized'])}, unrealised {krw(pnl['unrealized'])}, "
        f"fees {krw(pnl['fees'])}, taxes {krw(pnl['taxes'])}, net {krw(pnl['net'])} KRW",
    ]
    return "\n".join(lines)


@cli.command()
@json_option
@click.pass_obj
def down(obj: Ctx) -> None:
    """Stop every service and supervisord."""
    sup = obj.supervisord()
    try:
        stopped = sup.stop()
    except SupervisordError as exc:
        fail(CtlCode.TIMEOUT, str(exc))
    emit({"stopped": stopped}, "stopped" if stopped else "supervisord was not running")


@cli.command()
@click.argument("service", type=click.Choice([*WATCHED, "supervisor"]))
@click.option("--timeout", type=float, default=20.0)
@json_option
@click.pass_obj
def restart(obj: Ctx, service: str, timeout: float) -> None:
    """Restart one service through supervisord; wait until it is back and ready."""
    sup = obj.supervisord()
    t0 = time.monotonic()
    before = None
    if service != "supervisor":
        before = obj.call("supervisor", "status")["services"].get(service, {}).get("pid")
    try:
        sup.restart(service)
    except SupervisordError as exc:
        fail(CtlCode.UNAVAILABLE, str(exc))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ping = obj.call(service, "ping", timeout=1.0)
            if ping["pid"] != before and ping["status"] in ("ready", "done"):
                took = time.monotonic() - t0
                emit(
                    {"service": service, "pid": ping["pid"], "seconds": round(took, 3)},
                    f"{service} back (pid {ping['pid']}) and ready in {took:.2f}s",
                )
                return
        except SystemExit:
            pass
        time.sleep(0.1)
    fail(CtlCode.TIMEOUT, f"{service} not ready {timeout:g}s after restart")


# ---------------------------------------------------------------------------------- state
@cli.command()
@json_option
@click.pass_obj
def status(obj: Ctx) -> None:
    """Services, heartbeats and the trading state."""
    data = obj.call("supervisor", "status")
    try:  # supervisord's own view is a bonus: status works without it
        procs = Supervisord(conf_path(obj.conf_arg)).processes()
    except SupervisordError:
        procs = {}
    for name, proc in procs.items():
        data["services"].setdefault(name, {"alive": False})["process"] = proc.get("statename")
    emit(data, render_status(data))


def render_status(data: dict[str, Any]) -> str:
    rows = [
        (
            n,
            "yes" if s.get("alive") else "NO",
            s.get("process", ""),
            s.get("status", ""),
            str(s.get("pid") or ""),
            s.get("age_ms"),
            str(s.get("epoch_ack", "")),
            s.get("detail", ""),
        )
        for n, s in sorted(data["services"].items())
    ]
    head = (
        f"trading state: {data['state']} (epoch {data['epoch']}, by {data['by']}: {data['reason']})"
    )
    text = (
        head
        + "\n"
        + table(
            ("service", "alive", "process", "status", "pid", "hb age ms", "epoch", "detail"), rows
        )
    )
    fired = [
        (name, g.get("count", 0), g.get("last", ""))
        for name, g in sorted(data.get("guardrails", {}).items())
        if g.get("fired") or g.get("count")
    ]
    if fired:
        text += "\n\nguardrails fired:\n" + table(("guardrail", "times", "last"), fired)
    return text


def transition(obj: Ctx, command: str, reason: str, by: str | None) -> None:
    args = {"reason": reason, "by": by or os.environ.get("USER") or getpass.getuser()}
    rt = obj.settings.runtime
    address = client.ctl_address(rt.run_dir, "supervisor", rt.endpoints)
    try:
        if command == "halt":
            client.request(address, "ping", timeout=0.5)  # a dead supervisor must not cost 5 s
        rep = client.request(address, command, args, timeout=5.0)
    except client.CtlTimeout as exc:
        if command == "halt":
            emergency_halt(obj, args["reason"], args["by"], str(exc))
            return
        fail(CtlCode.TIMEOUT, f"supervisor: {exc}")
    if rep.data is not None:
        emit(rep.data, render_acks(rep.data))
    if not rep.ok:
        click.echo(f"error: {rep.code}: {rep.reason}", err=True)
        sys.exit(1)


def emergency_halt(obj: Ctx, reason: str, by: str, why: str) -> None:
    """Halt without the supervisor: persist HALTED at a newer epoch in the state file (the
    supervisor comes back in it), then tell the services directly, execution first."""
    rt = obj.settings.runtime
    click.echo(
        f"warning: supervisor unreachable ({why}); halting through the state file and "
        "the services directly",
        err=True,
    )
    store = StateStore(rt.state_dir / "trading_state.json")
    current, _ = store.load()
    epoch = current.epoch + 1
    store.save(
        PersistedState(
            state=TradingState.HALTED,
            epoch=epoch,
            by=by,
            reason=f"{reason} (emergency halt: supervisor unreachable)",
            changed_ns=time.time_ns(),
        )
    )
    results: dict[str, Any] = {}
    for service in ("execution", "risk", "strategy", "observer", "portfolio", "performance"):
        address = client.ctl_address(rt.run_dir, service, rt.endpoints)
        try:
            results[service] = client.call(
                address, "emergency_halt", {"epoch": epoch, "reason": reason, "by": by}, timeout=2.0
            )
        except (client.CtlTimeout, client.CtlFailed) as exc:
            results[service] = {"error": str(exc)}
    data = {"state": "HALTED", "epoch": epoch, "emergency": True, "services": results}
    rows = [
        (n, r.get("state", "NO ANSWER"), r.get("halt_cancels_sent", ""), r.get("error", ""))
        for n, r in results.items()
    ]
    emit(
        data,
        f"emergency HALT written (epoch {epoch})\n"
        + table(("service", "state", "cancels sent", "error"), rows),
    )
    if "error" in results["execution"]:
        fail(
            CtlCode.NOT_ACKNOWLEDGED,
            "execution did not acknowledge the emergency halt; "
            "the state file says HALTED and every service's fail-safe blocks new orders",
        )


def render_acks(data: dict[str, Any]) -> str:
    rows = [
        (n, "yes" if a["acked"] else "NO", a["ms"], "up" if a["alive"] else "DOWN")
        for n, a in sorted(data["acks"].items())
    ]
    ex = data.get("execution", {})
    return (
        f"trading state {data['state']} (epoch {data['epoch']})\n"
        + table(("service", "acknowledged", "ms", "alive"), rows)
        + f"\nexecution: {ex.get('halt_cancels_sent', 0)} cancels sent, "
        f"{ex.get('halt_cancels_confirmed', 0)} confirmed, "
        f"{ex.get('open_orders', 0)} open orders"
    )


@cli.command()
@click.option("--reason", required=True, help="why: goes to the log and the state file")
@click.option("--by", default=None)
@click.option("--flatten", is_flag=True, help="first close every position (reduce-only), then halt")
@json_option
@click.pass_obj
def halt(obj: Ctx, reason: str, by: str | None, flatten: bool) -> None:
    """Stop trading now: cancel every open order, refuse new ones. With --flatten, first close
    every position with reduce-only orders (REDUCING), then HALTED."""
    if flatten:
        flatten_then_halt(obj, reason, by)
    else:
        transition(obj, "halt", reason, by)


def flatten_then_halt(obj: Ctx, reason: str, by: str | None) -> None:
    """The supervisor drives the flatten (it survives this command being interrupted): this
    starts it, then follows the supervisor's status until it reports HALTED."""
    args = {"reason": reason, "by": by or os.environ.get("USER") or getpass.getuser()}
    rt = obj.settings.runtime
    try:
        client.request(
            client.ctl_address(rt.run_dir, "supervisor", rt.endpoints), "ping", None, 0.5
        )
    except client.CtlTimeout:
        fail(
            CtlCode.UNAVAILABLE,
            "flatten needs the supervisor, which does not answer; nothing was changed. "
            "`qts-ctl halt --reason ...` (without --flatten) halts without it",
        )
    data = obj.call("supervisor", "flatten", args, timeout=5.0)
    epoch = data["epoch"]
    if not _JSON:
        click.echo(render_acks(data))
        click.echo("flattening: cancelling open orders, closing positions at the daily limits")
    deadline = time.monotonic() + obj.settings.supervisor.flatten_timeout_s + 10.0
    last: tuple[Any, ...] = ()
    while True:
        status = obj.call("supervisor", "status", timeout=3.0)
        c = status["services"].get("execution", {}).get("counters", {})
        left = (c.get("flatten_positions"), c.get("flatten_shares"), c.get("open_orders"))
        if left != last and not _JSON:
            click.echo(f"  left: {left[0]} positions, {left[1]} shares, {left[2]} open orders")
            last = left
        if status["epoch"] > epoch or status["state"] != "REDUCING":
            break
        if time.monotonic() >= deadline:
            fail(CtlCode.TIMEOUT, f"still REDUCING (epoch {status['epoch']}) after the timeout")
        time.sleep(0.25)
    result = {k: status[k] for k in ("state", "epoch", "reason", "by")}
    emit(result, f"trading state {status['state']} (epoch {status['epoch']}): {status['reason']}")
    if status["state"] != "HALTED" or not status["reason"].startswith("flatten complete"):
        fail(CtlCode.NOT_ACKNOWLEDGED, f"flatten did not complete: {status['reason']}")


@cli.command()
@click.option("--reason", required=True)
@click.option("--by", default=None)
@json_option
@click.pass_obj
def reduce(obj: Ctx, reason: str, by: str | None) -> None:
    """Only orders that shrink a position."""
    transition(obj, "reduce", reason, by)


@cli.command()
@click.option("--reason", default="resumed by operator")
@click.option("--by", default=None)
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@json_option
@click.pass_obj
def resume(obj: Ctx, reason: str, by: str | None, yes: bool) -> None:
    """Back to ACTIVE (asks for confirmation)."""
    if not yes:
        if not sys.stdin.isatty():
            fail(
                CtlCode.BAD_REQUEST, "resume needs confirmation: run it in a terminal or pass --yes"
            )
        click.confirm("Resume trading (state ACTIVE)?", abort=True)
    transition(obj, "resume", reason, by)


# ---------------------------------------------------------------------------------- books
@cli.command()
@click.option("--open", "open_only", is_flag=True, help="only working orders")
@click.option("--limit", type=click.IntRange(min=1), default=50)
@json_option
@click.pass_obj
def orders(obj: Ctx, open_only: bool, limit: int) -> None:
    """The order journal, newest first, with reject and denial reasons."""
    data = obj.call("execution", "orders", {"open_only": open_only, "limit": limit})
    rows = [
        (
            o["client_order_id"],
            o["strategy"],
            o["symbol"],
            o["side"],
            o["qty"],
            o["price"],
            o["status"],
            o["filled_qty"],
            o["broker_order_no"] or "",
            f"{o['code']} {o['reason']}".strip(),
        )
        for o in data["orders"]
    ]
    emit(
        data["orders"],
        table(
            (
                "order",
                "strategy",
                "symbol",
                "side",
                "qty",
                "price",
                "status",
                "filled",
                "broker no",
                "reason",
            ),
            rows,
        ),
    )


@cli.command()
@json_option
@click.pass_obj
def positions(obj: Ctx) -> None:
    """Positions by account and strategy: average price, sellable; deposit, buying power."""
    data = obj.call("portfolio", "positions")
    emit(data, render_positions(data))


@cli.command()
@json_option
@click.pass_obj
def pnl(obj: Ctx) -> None:
    """Realised and unrealised PnL, fees and tax, per strategy and symbol; performance
    figures and latency if the performance service answers."""
    data: dict[str, Any] = {"portfolio": obj.call("portfolio", "pnl")}
    rt = obj.settings.runtime
    try:
        data["performance"] = client.call(
            client.ctl_address(rt.run_dir, "performance", rt.endpoints), "summary", timeout=2.0
        )
    except (client.CtlTimeout, client.CtlFailed):
        data["performance"] = None
    emit(data, render_pnl(data))


@cli.command()
@click.option("--date", "date", default=None, help="KST trading day YYYY-MM-DD (default today)")
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for the files")
@json_option
@click.pass_obj
def report(obj: Ctx, date: str | None, timeout: float) -> None:
    """Write the end-of-day report (HTML, PNG charts, JSON) under the report directory."""
    args = {"date": date} if date else {}
    data = obj.call("performance", "report", args, timeout=timeout)
    emit(data, render_report(data))


# ---------------------------------------------------------------------------------- backups
@cli.command()
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait per service")
@json_option
@click.pass_obj
def backup(obj: Ctx, timeout: float) -> None:
    """Back up the journal, the venue's book and the state files now, online, into
    var/backup/<KST date>/<HHMMSS>; print where (docs/operations.md "Backup and restore")."""
    import datetime as dt

    from services.runtime import backup as bk

    root = bk.backup_root(obj.settings)
    dest = bk.slot_dir(root, dt.datetime.now(bk.KST))
    n = 1
    while dest.with_name(dest.name if n == 1 else f"{dest.name}-{n}").exists():
        n += 1
    dest = dest.with_name(dest.name if n == 1 else f"{dest.name}-{n}")
    # execution's journal first: the venue's copy, taken after, may know orders the journal
    # does not (reconciliation adopts them after a restore), never the other way round
    owners = ["execution"] + (["venue"] if obj.settings.broker.type == "paper" else [])
    data: dict[str, Any] = {"dir": str(dest), "services": {}}
    for name in owners:
        data["services"][name] = obj.call(name, "backup", {"dir": str(dest)}, timeout=timeout)
    lines = [f"backup in {dest}"]
    for name, m in data["services"].items():
        facts = " ".join(f"{k}={v}" for k, v in m["facts"].items())
        lines.append(f"  {name}: {len(m['files'])} files, {m['duration_ms']} ms {facts}".rstrip())
        lines += [f"    {f['path']}  {f['size']:,} B  {f['sha256'][:16]}" for f in m["files"]]
    emit(data, "\n".join(lines))


@cli.command()
@click.argument("backup_dir", type=click.Path(file_okay=False, path_type=str))
@json_option
@click.pass_obj
def restore(obj: Ctx, backup_dir: str) -> None:
    """Put a backup back into var/ (every service stopped: `qts-ctl down` first). The files it
    replaces are moved to var/backup/replaced/<time>/."""
    from pathlib import Path

    from services.runtime import backup as bk

    root = bk.backup_root(obj.settings)
    src = Path(backup_dir)
    if not src.is_dir() and (root / backup_dir).is_dir():
        src = root / backup_dir  # e.g. `qts-ctl restore 2026-11-25/154000`
    running = sorted(
        p["name"]
        for p in obj.supervisord().processes().values()
        if p.get("group") == "qts" and p.get("statename") not in ("STOPPED", "EXITED", "FATAL")
    )
    rt = obj.settings.runtime
    for name in WATCHED:  # also a service started by hand, outside supervisord
        try:
            client.request(client.ctl_address(rt.run_dir, name, rt.endpoints), "ping", None, 0.3)
            running.append(name)
        except client.CtlTimeout:
            pass
    if running:
        fail(
            CtlCode.BAD_REQUEST,
            f"services are running ({', '.join(sorted(set(running)))}): `qts-ctl down` first",
        )
    try:
        # the journal is the record of what was sent: never restore the venue's book without it
        data = bk.restore(src.resolve(), rt.var_path, root / bk.REPLACED_DIR, ("execution",))
    except (bk.BackupError, OSError) as exc:
        fail(CtlCode.BAD_REQUEST, f"nothing restored: {exc}")
    lines = [f"restored from {data['from']}:", *(f"  {p}" for p in data["restored"])]
    if data["replaced_to"]:
        lines.append(f"the files it replaced are in {data['replaced_to']}")
    emit(data, "\n".join(lines))


# ---------------------------------------------------------------------------------- keys
@cli.group()
def keys() -> None:
    """CURVE keys for tcp:// endpoints across hosts (docs/deployment.md "Across hosts")."""


@keys.command("generate")
@click.option("--dir", "directory", default=None, help="key directory (default runtime.curve_dir)")
@click.option("--force", is_flag=True, help="replace existing keys (every host needs the new ones)")
@json_option
def keys_generate(directory: str | None, force: bool) -> None:
    """Write a keypair for every service and for qts-ctl: public/*.key (copy to every host) and
    private/*.key_secret (mode 0600; copy each only to the host that runs that party)."""
    from pathlib import Path

    if directory is None:
        try:
            target = load_settings().runtime.curve_path  # not Ctx.settings: it needs the keys
        except ConfigError as exc:
            fail(CtlCode.BAD_REQUEST, str(exc))
    else:
        target = Path(directory)
    try:
        parties = curve.generate(target, overwrite=force)
    except curve.CurveError as exc:
        fail(CtlCode.BAD_REQUEST, str(exc))
    data = {
        "dir": str(target),
        "public": [str(curve.public_dir(target) / f"{p}.key") for p in parties],
        "private": [str(curve.private_dir(target) / f"{p}.key_secret") for p in parties],
    }
    emit(data, f"CURVE keys for {', '.join(parties)} in {target} (public/, private/)")


# ---------------------------------------------------------------------------------- logs
@cli.command()
@click.argument("service", type=click.Choice([*WATCHED, "supervisor", "supervisord"]))
@click.option("-f", "--follow", "follow_", is_flag=True, help="keep printing new lines")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True)
@click.pass_obj
def logs(obj: Ctx, service: str, follow_: bool, lines: int) -> None:
    """A service's log (the file supervisord writes and rotates); -f follows it."""
    from services.ctl import logs as logfiles

    try:
        path = logfiles.log_path(conf_path(obj.conf_arg), service)
    except logfiles.LogsError as exc:
        fail(CtlCode.UNAVAILABLE, str(exc))
    if not follow_:
        if not path.exists():
            fail(CtlCode.UNAVAILABLE, f"no log yet at {path}")
        for line in logfiles.tail(path, lines):
            click.echo(line)
        return
    try:
        for line in logfiles.follow(path, lines):
            click.echo(line)
    except KeyboardInterrupt:
        pass


def main() -> None:
    cli(prog_name="qts-ctl")
