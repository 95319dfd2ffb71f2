"""`qts-ctl logs SERVICE [-f]`: a service's log file as supervisord writes and rotates it.

The file is the program's stdout_logfile in the supervisord config (supervisord.log for
"supervisord"). Following survives supervisord's rotation: when the file is replaced (another
inode) or shrinks, the rest of the old file is read, then the new one from its start.
"""

from __future__ import annotations

import configparser
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


class LogsError(Exception):
    pass


def log_path(conf: Path, service: str) -> Path:
    parser = configparser.RawConfigParser()
    if not parser.read(conf):
        raise LogsError(f"no supervisord config at {conf}")
    if service == "supervisord":
        section, key = "supervisord", "logfile"
    else:
        section, key = f"program:{service}", "stdout_logfile"
    try:
        value = parser.get(section, key)
    except (configparser.NoSectionError, configparser.NoOptionError):
        raise LogsError(f"{conf}: no [{section}] {key}") from None
    return Path(value.replace("%(here)s", str(conf.parent)))


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines (reads backwards in blocks: a large log costs no more)."""
    with path.open("rb") as f:
        return _tail_of(f, f.seek(0, os.SEEK_END), lines)


def _tail_of(f: BinaryIO, end: int, lines: int) -> list[str]:
    """The last `lines` complete lines before offset `end` of an open file."""
    if lines <= 0:
        return []
    data = b""
    while end > 0 and data.count(b"\n") <= lines:
        step = min(65_536, end)
        end -= step
        f.seek(end)
        data = f.read(step) + data
    return [ln.decode(errors="replace") for ln in data.splitlines()[-lines:]]


def follow(
    path: Path,
    lines: int,
    interval: float = 0.2,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[str]:
    """The last `lines` lines, then every new line as it is written, until stop() is true."""
    f: BinaryIO | None = None
    ino = -1
    pending = b""
    try:
        if path.exists():
            # one open file for the tail and what follows: a line written in between is
            # neither lost nor shown twice
            f = path.open("rb")
            end = f.seek(0, os.SEEK_END)
            ino = os.fstat(f.fileno()).st_ino
            earlier = _tail_of(f, end, lines)
            f.seek(end)
            yield from earlier
        while not stop():
            if f is not None:
                chunk = f.read()
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    for ln in complete:
                        yield ln.decode(errors="replace")
                    continue
            try:
                st = path.stat()
            except FileNotFoundError:
                time.sleep(interval)  # between supervisord's rename and its new file
                continue
            if f is None or st.st_ino != ino or st.st_size < f.tell():
                # rotated or truncated: the old file was read to its end above
                if f is not None:
                    f.close()
                if pending:
                    yield pending.decode(errors="replace")
                    pending = b""
                f = path.open("rb")
                ino = os.fstat(f.fileno()).st_ino
                continue
            time.sleep(interval)
    finally:
        if f is not None:
            f.close()
