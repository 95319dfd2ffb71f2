"""The dashboard in a real headless browser (Debian's chromium and chromedriver, installed by
.ci/install-browser) against a real system: the page shows the trading state, every service,
the book and latency; the halt button refuses a wrong token and halts the system with the
right one. Skips, saying why, only where chromium or its driver is not installed."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_metrics_process import free_port
from tests.kit import System, eventually

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (dev extra)")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

TOKEN = "halt-T0KEN-0a1b2c3d"
SERVICES = ("supervisor", "observer", "strategy", "risk", "execution", "portfolio", "venue")


def find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = find("chromium", "chromium-browser")
    driver_path = find("chromedriver")
    if not chromium or not driver_path:
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed and could not be "
            "(.ci/install-browser needs root or sudo and apt-get)"
        )
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1280,1800")
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def column(driver: Any, table: str, index: int = 0) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[index].text for r in rows]


def test_dashboard_shows_the_system_and_halts_it(
    make_system: Any, browser: Any, tmp_path: Path
) -> None:
    port = free_port()
    system: System = make_system(QTS_METRICS__PORT=str(port), QTS_DASHBOARD_TOKEN=TOKEN)
    system.start()
    browser.get(f"http://127.0.0.1:{port}/")

    eventually(lambda: text(browser, "#state") == "ACTIVE", timeout=20, message="ACTIVE shown")
    eventually(
        lambda: set(SERVICES) <= set(column(browser, "services")),
        timeout=20,
        message="every service listed",
    )
    alive = dict(zip(column(browser, "services"), column(browser, "services", 1), strict=True))
    assert all(alive[s] == "yes" for s in SERVICES), alive
    # the paper system trades: positions or orders, PnL and latency appear
    eventually(lambda: column(browser, "latency"), timeout=60, message="latency rows")
    eventually(lambda: "net" in column(browser, "pnl"), timeout=20, message="PnL shown")
    assert "tick_to_ack" in column(browser, "latency")
    assert browser.find_element(By.ID, "halt-button").is_enabled()

    # a wrong token: refused, still ACTIVE
    browser.find_element(By.ID, "halt-reason").send_keys("browser test")
    browser.find_element(By.ID, "halt-token").send_keys("not the token")
    browser.find_element(By.ID, "halt-button").click()
    eventually(
        lambda: text(browser, "#halt-result") == "refused: wrong token",
        timeout=20,
        message="wrong token refused",
    )
    assert system.ctl_json("status")["state"] == "ACTIVE"

    browser.find_element(By.ID, "halt-token").send_keys(TOKEN)
    browser.find_element(By.ID, "halt-button").click()
    eventually(
        lambda: text(browser, "#halt-result").startswith("HALTED (epoch"),
        timeout=20,
        message="halt answered",
    )
    status = system.ctl_json("status")
    assert status["state"] == "HALTED"
    assert status["by"] == "dashboard"
    assert status["reason"] == "dashboard: browser test"
    eventually(lambda: text(browser, "#state") == "HALTED", timeout=10, message="HALTED shown")
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    # the token field is cleared after use and the token never reached a log
    assert browser.find_element(By.ID, "halt-token").get_attribute("value") == ""
    for log in (system.var / "log").glob("*.log"):
        assert TOKEN not in log.read_text(errors="replace"), log.name
