"""The report's files: valid PNGs with content, a page whose images exist, the figures as JSON."""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from protocol.enums import Side
from protocol.messages import OrderAccepted, Trace
from services.performance.engine import PerformanceEngine
from services.performance.report import CHARTS, main, write_report
from tests.unit.performance.test_stats import at, fill, snap

DAY = dt.date(2026, 11, 25)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.srcs += [v for k, v in attrs if k in ("src", "href") and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def a_day() -> PerformanceEngine:
    engine = PerformanceEngine(capital=1_000_000)
    for i in range(1, 41):
        ts = at(25, 9, i)
        engine.on_exec(fill(i, ts, "pulse" if i % 2 else "scalp", 1, 70_000 + 100 * (i % 7)))
        engine.on_exec(
            OrderAccepted(
                seq=100 + i, client_order_id=f"C{i}", broker_order_no="B", strategy="pulse",
                symbol="X", side=Side.BUY, qty=1, price=1, ts_ns=ts,
                trace=Trace(observed=1, evaluated=1 + 40_000, decided=1 + 90_000 + i * 1_000,
                            sent=1 + 200_000 + i * 5_000, acked=1 + 900_000 + i * 20_000),
            )
        )  # fmt: skip
        net = (i % 9) * 1_000 - 4_000
        engine.on_snapshot(snap(i, ts, 1_000_000 + net, [("pulse", 1, net, 0), ("", 1, net, 0)]))
    return engine


def test_report_writes_valid_pngs_a_page_and_the_figures(tmp_path: Path) -> None:
    data = a_day().report_data(DAY)

    paths = write_report(data, tmp_path / "2026-11-25")

    names = sorted(p.name for p in paths)
    assert names == sorted(["index.html", "report.json", *CHARTS])
    for name in CHARTS:
        with Image.open(tmp_path / "2026-11-25" / name) as img:
            img.verify()  # a truncated or corrupt PNG raises
        with Image.open(tmp_path / "2026-11-25" / name) as img:
            assert img.format == "PNG" and img.width == 900 and img.height >= 300
            # content, not a blank canvas: many distinct colours
            colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
            assert colours is not None and len(colours) > 20
    refs = _Refs()
    refs.feed((tmp_path / "2026-11-25" / "index.html").read_text(encoding="utf-8"))
    assert sorted(refs.srcs) == sorted([*CHARTS, "report.json"])
    assert all((tmp_path / "2026-11-25" / s).is_file() for s in refs.srcs)
    text = " ".join(refs.text)
    assert "pulse" in text and "scalp" in text and "tick_to_ack" in text
    assert json.loads((tmp_path / "2026-11-25" / "report.json").read_text()) == data


def test_a_day_without_snapshots_or_traces_still_renders(tmp_path: Path) -> None:
    engine = PerformanceEngine()
    engine.on_exec(fill(1, at(25, 10, 0)))

    paths = write_report(engine.report_data(DAY), tmp_path)

    for p in paths:
        assert p.stat().st_size > 0
    assert "no traced orders" not in (tmp_path / "index.html").read_text()  # text is in the PNG


def test_rerender_from_saved_json(tmp_path: Path, capsys: object) -> None:
    write_report(a_day().report_data(DAY), tmp_path)
    (tmp_path / "equity.png").unlink()

    assert main([str(tmp_path / "report.json")]) == 0
    assert (tmp_path / "equity.png").stat().st_size > 1_000
    assert main([str(tmp_path / "missing.json")]) == 1
    assert main([]) == 2
