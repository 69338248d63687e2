"""A real headless Chromium (Debian's chromium + chromium-driver) and a small ASGI server on
loopback, for the status page's browser tests."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The flags keep the browser off the network and out of any profile but its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """The few things a page test does with Chromium: open, wait for the script, read, shoot."""

    def __init__(self, driver: Any):
        self.driver = driver

    def open(self, url: str, timeout_s: float = 20.0) -> str:
        """Load ``url`` and wait until the page's script has drawn; returns ``body[data-loaded]``."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(url)
        value: str = WebDriverWait(self.driver, timeout_s).until(
            lambda d: d.find_element("css selector", "body").get_attribute("data-loaded")
        )
        return value

    def wait_for(self, css: str, text: str, timeout_s: float = 20.0) -> None:
        """Wait until the element ``css`` shows ``text`` (the page refreshes itself)."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout_s).until(lambda d: text in self.text(css))

    def text(self, css: str) -> str:
        found = self.all(css)
        return str(found[0].text) if found else ""

    def all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements("css selector", css))

    def script(self, code: str) -> Any:
        return self.driver.execute_script(code)

    def shot(self, name: str) -> None:
        """Save a full-page PNG when ``FEDCORE_WEB_SCREENSHOTS`` names a folder (for the docs)."""
        folder = os.environ.get("FEDCORE_WEB_SCREENSHOTS")
        if not folder:
            return
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Chromium through selenium; fails (never skips) when Chromium is missing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = _find("chromium", "chromium-browser")
    driver_path = _find("chromedriver")
    if binary is None or driver_path is None:
        pytest.fail(
            "the status page is tested in Chromium: apt-get install chromium chromium-driver (.ci/run does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


class AsgiServer:
    """uvicorn serving ``app`` on 127.0.0.1 at a free port, in a thread, until ``stop``."""

    def __init__(self, app: Any):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> AsgiServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fixture server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Any], AsgiServer]]:
    """``serve(app)``: a started loopback server for ``app``, stopped after the test."""
    servers: list[AsgiServer] = []

    def start(app: Any) -> AsgiServer:
        servers.append(AsgiServer(app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
