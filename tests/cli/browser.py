"""The dashboard served from a thread of this process, and headless Chromium to look at it.

Shared by the browser tests of local runs (``tests/cli``) and of a cluster
(``e2e/test_dashboard.py``): selenium drives Debian's ``chromium`` through its
``chromedriver``; screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from kubesweep.cli.dashboard.feeds import Feed
from kubesweep.cli.dashboard.server import make_app
from tests.cli.conftest import ROOT

ARTIFACTS = ROOT / "artifacts"
WAIT = 30.0


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class Dashboard:
    """The dashboard of ``source`` served from a thread of this process on a free loopback port."""

    def __init__(self, source: Path | Feed, prefix: str = "/sweeps") -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(source, prefix, interval=0.1), shutdown_timeout=0.5)
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(30):
            raise RuntimeError("the dashboard did not start within 30 s")
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}{prefix.rstrip('/')}/"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        """Stop serving and end the thread."""
        future = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        future.result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium driven by selenium; skips, saying why, when it is not installed."""
    browser = _binary("chromium", "chromium-browser", "google-chrome")
    driver_path = _binary("chromedriver")
    if browser is None or driver_path is None:
        pytest.skip(
            "chromium or chromedriver not found (apt-get install -y chromium chromium-driver); "
            "the dashboard is untested in a browser"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="kubesweep-chromium-")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,2400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, condition: Any, what: str) -> Any:
    """What ``condition`` returns once truthy; fails naming ``what`` after :data:`WAIT` s."""
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition, message=what)


def shot(driver: Any, name: str) -> None:
    """A screenshot into ``artifacts/NAME``."""
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / name))


def progress(driver: Any) -> str:
    """The progress text of an experiment page's header ("3 / 8")."""
    text = driver.execute_script(
        'const n = document.querySelector("#header .progress-text"); return n && n.textContent'
    )
    return str(text)


def drawn(driver: Any) -> bool:
    """Whether the page has drawn what it shows."""
    return bool(driver.execute_script("return document.body.dataset.drawn"))


#: Every URL the page loaded or links to: links, scripts, styles, fetches, event streams.
PAGE_URLS = """
const urls = [...document.querySelectorAll("a[href]")].map((a) => a.href);
urls.push(...[...document.querySelectorAll("script[src]")].map((s) => s.src));
urls.push(...[...document.querySelectorAll("link[href]")].map((l) => l.href));
urls.push(...performance.getEntriesByType("resource").map((e) => e.name));
return urls;
"""


def urls_outside(driver: Any, base: str) -> list[str]:
    """The URLs of the page (see :data:`PAGE_URLS`) that are not under ``base``."""
    return [str(u) for u in driver.execute_script(PAGE_URLS) if not str(u).startswith(base)]
