"""Secrets (broker app keys, secrets, account numbers): from the environment or .env only.

Every value handed out is registered with log.mask() first, so it is printed as *** in every
later log line whoever logs it. Settings hold only the names of the variables, never values.
A missing secret raises MissingSecret naming the variable (never a value).
"""

from __future__ import annotations

import os
from pathlib import Path

from services.runtime.log import mask

REPO_ROOT = Path(__file__).resolve().parents[2]


class MissingSecret(Exception):
    """A required secret is set neither in the environment nor in .env."""


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; optional quotes and `export`."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            # the line may hold a secret: name the line, never echo it
            raise ValueError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name] = value
    return out


def secret(
    name: str,
    *,
    env: dict[str, str] | None = None,
    dotenv: Path | None = None,
    required: bool = True,
) -> str:
    """The value of secret `name`: the environment wins over .env (repo root by default).
    Returns "" for a missing optional secret."""
    source = os.environ if env is None else env
    value = source.get(name, "")
    if not value:
        value = read_dotenv(dotenv or REPO_ROOT / ".env").get(name, "")
    if not value:
        if required:
            raise MissingSecret(f"secret {name} is not set (environment or .env)")
        return ""
    mask(value)
    return value
