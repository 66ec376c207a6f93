"""
Headless Chromium for the UI's end-to-end tests, driven by Selenium through
the system's chromedriver (Debian: ``apt-get install chromium
chromium-driver``; Selenium comes with ``pip install '.[test]'``).

    browser = Browser.start()            # raises SkipTest without chromium
    browser.open(server.httpURL + "/ui/")
    browser.waitReady()
    browser.screenshot("overview")       # into screenshotDirectory()

Screenshots go to the directory named by C{LOGSVC_UI_SCREENSHOTS}, else to
C{ui-screenshots} under the test run's working directory (C{_trial_temp}).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.trial.unittest import SkipTest

T = TypeVar("T")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

#: The zone the browser runs in: not UTC, so the zone switch shows a change.
BROWSER_ZONE = "Europe/Berlin"
#: Seconds a wait may take before the test fails.
WAIT = 15.0


def screenshotDirectory() -> str:
    """
    @return: where screenshots go (created when missing).
    """
    path = os.environ.get("LOGSVC_UI_SCREENSHOTS") or os.path.abspath("ui-screenshots")
    os.makedirs(path, exist_ok=True)
    return path


class Browser:
    """
    One headless Chromium window (1400x900) in L{BROWSER_ZONE}.

    @ivar driver: the Selenium WebDriver.
    """

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    @classmethod
    def start(cls) -> Browser:
        """
        @raise SkipTest: naming the install command, when Chromium, its
            driver or Selenium is missing.
        """
        if CHROMIUM is None or CHROMEDRIVER is None:
            raise SkipTest("chromium is not installed (apt-get install chromium chromium-driver)")
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError:
            raise SkipTest("selenium is not installed (pip install '.[test]')")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-domain-reliability",
            "--disable-client-side-phishing-detection",
            "--disable-default-apps",
            "--no-pings",
            # No name resolves but loopback's: the tests stay on 127.0.0.1,
            # and a page that fetched from elsewhere would fail to.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
            "--window-size=1400,900",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": BROWSER_ZONE})
        return cls(driver)

    def quit(self) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        """
        Load C{url} as a followed link would (a fresh page, no state kept
        but the browser's storage).
        """
        self.driver.get(url)

    def colorScheme(self, scheme: str) -> None:
        """
        Emulate the system's C{"light"} or C{"dark"} setting.
        """
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def waitUntil(self, condition: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        """
        Poll C{condition} until it returns something true.

        @return: that value.
        @raise AssertionError: naming C{what} after C{timeout} seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; page log: {self.consoleErrors()}")
            time.sleep(0.05)

    def generation(self) -> int:
        """
        @return: how many searches the page has started.
        """
        return int(self.js("return Number(document.body.dataset.generation || 0)"))

    def waitReady(self, after: int = 0) -> None:
        """
        Wait until a search later than generation C{after} has drawn all of
        its view (records, histogram, facets).
        """
        self.waitUntil(
            lambda: self.js(
                "return Number(document.body.dataset.generation || 0) > arguments[0]"
                " && document.body.dataset.state === 'ready'",
                after,
            ),
            "the page to finish its search",
        )

    def find(self, css: str) -> Any:
        return self.driver.find_element("css selector", css)

    def findAll(self, css: str) -> list[Any]:
        return list(self.driver.find_elements("css selector", css))

    def text(self, css: str) -> str:
        return str(self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null", css))

    def params(self) -> dict[str, list[str]]:
        """
        @return: the query parameters of the page's current URL.
        """
        from urllib.parse import parse_qs, urlsplit

        return parse_qs(urlsplit(self.driver.current_url).query, keep_blank_values=True)

    def screenshot(self, name: str) -> str:
        """
        Save the window as C{name}.png in L{screenshotDirectory}.

        @return: the file's path.
        """
        path = os.path.join(screenshotDirectory(), name + ".png")
        self.driver.save_screenshot(path)
        return path

    def consoleErrors(self) -> list[str]:
        """
        @return: the page's console errors since the last call; answers
            with an error status are left out (the tests check those where
            they expect them).
        """
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") != "network"
        ]
