"""Run the app in a background thread and drive it with headless Chromium (tests and benchmarks).

Nothing here downloads anything: Selenium is pointed at Debian's ``/usr/bin/chromedriver`` and
``/usr/bin/chromium`` explicitly, so Selenium Manager never runs.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from granseg.app.config import AppConfig

CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_binary() -> str | None:
    """The Chromium executable, or None when none is installed."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_missing_reason() -> str | None:
    """Why browser tests cannot run here (None when they can)."""
    if chromium_binary() is None:
        return "chromium is not installed (apt-get install chromium chromium-driver; .ci/run does this)"
    if not Path(CHROMEDRIVER).is_file():
        return f"{CHROMEDRIVER} is missing (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -c constraints.txt '.[dev]')"
    return None


class ServerThread:
    """``granseg serve`` on 127.0.0.1 and a free port, in a daemon thread; ``url`` once started."""

    def __init__(self, config: AppConfig, **uvicorn_options: Any) -> None:
        import uvicorn

        from granseg.app import create_app

        self.app = create_app(config)
        # proto=IPPROTO_TCP: asyncio turns TCP_NODELAY on for accepted sockets only when the listener says TCP;
        # with proto 0 every keep-alive response waits ~40 ms for the client's delayed ACK (uvicorn #3149).
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"log_level": "warning", "limit_concurrency": 256, **uvicorn_options}
        self.server = uvicorn.Server(uvicorn.Config(self.app, **options))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def chrome_driver(download_dir: Path | None = None, width: int = 1280, height: int = 800):
    """A headless Chromium WebDriver using the system chromedriver (no Selenium Manager, no download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary() or "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
    ):
        options.add_argument(flag)
    if download_dir is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
        )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    if download_dir is not None:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)}
        )
    return driver


def click_image(driver, x: float, y: float, right: bool = False) -> None:
    """A real mouse click on the canvas at image pixel ``(x, y)`` (converted to the canvas' CSS size)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "canvas")
    rect = driver.execute_script(
        "const c = arguments[0], r = c.getBoundingClientRect();"
        "return [r.width / c.width, r.height / c.height, r.width, r.height];",
        canvas,
    )
    dx = round(x * rect[0] - rect[2] / 2)
    dy = round(y * rect[1] - rect[3] / 2)
    chain = ActionChains(driver).move_to_element_with_offset(canvas, dx, dy)
    (chain.context_click() if right else chain.click()).perform()


def wait_for(driver, script: str, timeout: float = 180.0, *args: Any) -> Any:
    """Poll ``script`` (JS returning a value) until it is truthy; returns it or raises TimeoutError after
    ``timeout`` s (180 by default: on a fresh install the server compiles the hierarchy's numba click path at
    start, ~28 s of CPU, which a loaded 2-core CI machine stretches past a minute of wall time before the first
    mask; a passing wait returns as soon as its condition holds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for: {script}")
        time.sleep(0.01)
