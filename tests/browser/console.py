"""The browser tests' harness: real daemons (tests/integration/harness.py:
droverd, agents, drover-web serving the console from BUILD/web) and
Debian's chromium, headless, driven by chromedriver through
python3-selenium. ConsoleTestCase gives each test self.c (a Cluster with
drover-web started), self.token (an admin API token), self.browser (a
Browser) and self.downloads (chromium's download directory).

Tests wait for what a user would see (wait_css, wait_text), never for a
fixed time; a failed test saves a screenshot and the page's console log
next to the daemons' logs (kept with DROVER_TEST_KEEP=1)."""
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import SCALE, wait_until  # noqa: E402,F401

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException, StaleElementReferenceException, WebDriverException)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = os.environ.get("DROVER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DROVER_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 30 * SCALE


def make_token(c, name="console", role="admin"):
    """`drover token create NAME --role ROLE`: the token it printed."""
    r = c.cli("token", "create", name, "--role", role)
    for word in (r.out or "").split():
        if word.startswith("drva1."):
            return word
    raise AssertionError("no token in: %r" % (r.out,))


class Browser:
    """One headless chromium (a fresh profile each) on the console at base."""

    def __init__(self, base, downloads, width=1400, height=900):
        self.base = base
        o = webdriver.ChromeOptions()
        o.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=%d,%d" % (width, height), "--disable-extensions",
                  "--no-first-run", "--disable-background-networking"):
            o.add_argument(a)
        o.add_experimental_option("prefs", {
            "download.default_directory": downloads,
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False})
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
        self.d.set_page_load_timeout(60 * SCALE)
        self.d.set_script_timeout(60 * SCALE)
        # Downloads from a headless chromium go where it is told.
        try:
            self.d.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": downloads})
        except WebDriverException:
            pass

    def quit(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass

    # ---- navigation

    def open(self, hash_path=""):
        """Load the console at #hash_path ("/runs/ID")."""
        self.d.get(self.base + "/" + ("#" + hash_path if hash_path else ""))

    def go(self, hash_path):
        """Change the route inside the loaded page (no reload)."""
        self.d.execute_script("location.hash = arguments[0]", "#" + hash_path)

    def login(self, token):
        """Log in and wait for the page the login goes to: a route set
        before that would be undone by its redirect."""
        self.open("/login")
        self.wait_css("#token").send_keys(token)
        self.css("#login-submit").click()
        self.wait_css("#logout")
        self.wait(lambda: self.js("return location.hash") not in ("", "#/login"),
                  what="the page after the login")

    # ---- finding and waiting

    def css(self, sel):
        return self.d.find_element(By.CSS_SELECTOR, sel)

    def all(self, sel):
        return self.d.find_elements(By.CSS_SELECTOR, sel)

    def wait(self, pred, timeout=None, what=None):
        """Wait until pred() is truthy (exceptions of a page still changing
        count as not yet); return its value."""
        box = {}

        def ok():
            try:
                box["v"] = pred()
            except (NoSuchElementException, StaleElementReferenceException):
                return False
            return box["v"]
        wait_until(ok, timeout=timeout or WAIT, interval=0.1, what=what)
        return box["v"]

    def wait_css(self, sel, timeout=None):
        """The first element matching sel once it is displayed."""
        def shown():
            for e in self.all(sel):
                if e.is_displayed():
                    return e
            return None
        return self.wait(shown, timeout, what="element %s" % sel)

    def wait_gone(self, sel, timeout=None):
        self.wait(lambda: not any(e.is_displayed() for e in self.all(sel)), timeout,
                  what="%s to go away" % sel)

    def wait_text(self, sel, text, timeout=None):
        """Wait until an element matching sel holds text (a substring)."""
        return self.wait(lambda: next((e for e in self.all(sel) if text in e.text), None),
                         timeout, what="%r in %s" % (text, sel))

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def console_log(self):
        try:
            return self.d.get_log("browser")
        except WebDriverException:
            return []

    def severe_errors(self):
        """The page's console errors: CSP violations, uncaught exceptions
        (a request the API refused, which chromium logs as "Failed to load
        resource", is the page's to show, not an error of the page)."""
        return [e for e in self.console_log() if e.get("level") == "SEVERE"
                and "Failed to load resource" not in e.get("message", "")]

    def screenshot(self, path):
        self.d.save_screenshot(path)


class ConsoleTestCase(harness.DroverTestCase):
    """A cluster with drover-web, an admin token and a browser per test."""

    agents = ("a1",)
    droverd_extra = ()  # more droverd flags (--pools JSON, ...)

    def setUp(self):
        super().setUp()
        for exe in (CHROMIUM, CHROMEDRIVER):
            if not os.access(exe, os.X_OK):
                self.fail("%s is missing (apt-get install chromium chromium-driver "
                          "python3-selenium; make test installs them)" % exe)
        if not os.path.isfile(os.path.join(harness.BIN_DIR, "web", "index.html")):
            self.fail("the console is not built in %s/web (cmake --build: drover-web-assets)"
                      % harness.BIN_DIR)
        self.c.start_droverd(extra=self.droverd_extra)
        for name in self.agents:
            self.c.start_agent(name)
        for name in self.agents:
            self.c.wait_agent_connected(name)
        self.c.start_web()
        self.token = make_token(self.c)
        self.downloads = self.c.path("downloads")
        os.makedirs(self.downloads, exist_ok=True)
        self.browser = Browser(self.c.web_url, self.downloads)
        self.addCleanup(self._browser_done)

    def _browser_done(self):
        failed = any(err for _, err in (getattr(self._outcome, "errors", None) or []) if err) \
            if hasattr(self._outcome, "errors") else not self._outcome.success
        if failed:
            try:
                self.browser.screenshot(self.c.path("failed-%s.png" % self._testMethodName))
                with open(self.c.path("browser-console.log"), "w") as f:
                    json.dump(self.browser.console_log(), f, indent=1)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self.browser.quit()

    def wait_download(self, name, timeout=None):
        """The path of a finished download called name."""
        path = os.path.join(self.downloads, name)
        wait_until(lambda: os.path.exists(path) and
                   not os.path.exists(path + ".crdownload"), timeout=timeout or WAIT,
                   what="download %s" % name)
        return path


main = harness.main
