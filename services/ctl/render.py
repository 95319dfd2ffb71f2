"""Tables for people: aligned columns, KRW with thousands separators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def krw(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        [
            krw(c)
            if isinstance(c, int) and not isinstance(c, bool)
            else ("" if c is None else str(c))
            for c in row
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if n and _numeric(c) else c.ljust(w)
                for c, w in zip(row, widths, strict=True)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace("-", "").replace(".", "").isdigit()
