"""Logging: loguru to stderr (supervisord owns the files), with secrets masked.

Every service calls setup() once. Secret values are registered with mask() (the secrets module
does so for every secret it hands out) and replaced by "***" in every message, whatever logs it.
"""

from __future__ import annotations

import sys
from typing import Any

from loguru import logger

_secrets: set[str] = set()


def mask(value: str) -> None:
    """Never print this value: replace it by *** in every later log line."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _patch(record: Any) -> None:
    if _secrets:
        record["message"] = redact(record["message"])
        if record["extra"]:
            record["extra"] = {k: redact(str(v)) for k, v in record["extra"].items()}


def setup(service: str, level: str = "INFO", json: bool = False) -> None:
    logger.remove()
    fmt = (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | " + service + " | {name}:{line} | {message}"
    )
    logger.configure(patcher=_patch, extra={"service": service})
    logger.add(sys.stderr, level=level, format=fmt, serialize=json, backtrace=False, diagnose=False)


__all__ = ["logger", "mask", "redact", "setup"]
