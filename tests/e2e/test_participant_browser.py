"""A workshop participant's first minute, in a real browser: headless Chromium (Debian's
`chromium`, driven through `chromedriver` by Selenium) against the single hub's rendered config
run by a real JupyterHub on loopback. The login page tells them what to do (the stack's
`auth.loginAnnouncement`); they log in with the workshop's shared password; JupyterLab opens with
no news prompt (the hub's overrides.json); the launcher offers the default kernel; a notebook on
that kernel (the course's, userEnvironment) imports the course's package and prints its version, which the test
reads from the page. A screenshot of the logged-in JupyterLab is kept in the test's tmp_path.

Needs root, adduser, configurable-http-proxy, chromium and chromedriver (`make system-deps`)
and selenium (requirements-dev.txt).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from renderers.hub_config import JUPYTERLAB_NOTIFICATION_PLUGIN
from tests.conftest import require, require_tool
from tests.e2e.conftest import STACK, random_username
from tests.e2e.course_env import build_course_env, course_env_spec

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

    from tests.e2e.conftest import Hub

pytestmark = pytest.mark.e2e

# The course's package (userEnvironment): a participant's first cell imports it from the course
# kernel the launcher offers first. The hub's own environment does not have it.
COURSE_PACKAGE, COURSE_VERSION = "tabulate", "0.9.0"
COURSE_KERNEL = "Python 3 (course)"

ANNOUNCEMENT = "Pick any name; the password is on the board."
PASSWORD = "e2e-board-password"
HUB_STACK = {
    **{k: v for k, v in STACK.items() if k != "oauthClientSecret"},
    "auth": {
        "type": "shared-password",
        "allowAll": True,
        "loginAnnouncement": ANNOUNCEMENT,
    },
    "workshopPassword": PASSWORD,
    "userEnvironment": {"packages": [f"{COURSE_PACKAGE}=={COURSE_VERSION}"]},
}

# What a headless Chromium needs on a build machine running as root, with no network beyond
# loopback: no sandbox (root), no GPU, no QUIC, none of the browser's own calls home, a profile
# of its own, and no proxy for the loopback hub.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--window-size=1280,860",
)
# A first start of the server (an account, a process) and of JupyterLab's assets in it.
LAB_TIMEOUT_S = 120
NEWS_PROMPT = "official Jupyter news"


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium with an empty profile, driven through Debian's chromedriver."""
    binary = require_tool("chromium", "the participant's browser")
    driver_binary = require_tool("chromedriver", "drives the participant's browser")
    require(
        importlib.util.find_spec("selenium") is not None, "selenium is not installed (requirements-dev.txt)"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # The page's console, shown when the test fails.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_binary, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, what: str, probe: Any, timeout: float = 30) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(probe)
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout:g}s waiting for {what} at {driver.current_url}"
        ) from None


def element(driver: WebDriver, css: str, timeout: float = 30) -> WebElement:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    return wait_for(
        driver, css, expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout
    )


@pytest.fixture(scope="module")
def course_env(hub: Hub) -> None:
    """The course's environment, built by the hub-user-env step before the participants come."""
    build_course_env(hub, course_env_spec(hub, HUB_STACK))


def test_a_participant_logs_in_and_runs_a_first_cell_in_jupyterlab(
    hub: Hub, course_env: None, chromium: WebDriver, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = chromium
    name = random_username()
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        timings[step] = time.monotonic() - started

    try:
        # The login page says what to do, above the form.
        driver.get(f"{hub.public_url}/hub/login")
        assert element(driver, ".announcement").text == ANNOUNCEMENT
        lap("login page")

        element(driver, "#username_input").send_keys(name)
        element(driver, "#password_input").send_keys(PASSWORD)
        element(driver, "#login_submit").click()

        # The hub starts the server and sends the browser on to JupyterLab's launcher.
        cards = By.CSS_SELECTOR, ".jp-Launcher .jp-LauncherCard[data-category='Notebook']"
        first_card = wait_for(
            driver,
            "JupyterLab's launcher with a notebook kernel",
            lambda d: (d.find_elements(*cards) or [None])[0],
            timeout=LAB_TIMEOUT_S,
        )
        assert driver.current_url.startswith(f"{hub.public_url}/user/{name}/lab"), driver.current_url
        lap("JupyterLab launcher")

        # The kernel the launcher offers first is the server's default kernel.
        specs = hub.expect(hub.user_api(name, "GET", "/kernelspecs"), 200).json()
        default = specs["kernelspecs"][specs["default"]]["spec"]["display_name"]
        assert default == COURSE_KERNEL, specs["default"]
        assert first_card.get_attribute("title") == default, [
            c.get_attribute("title") for c in driver.find_elements(*cards)
        ]

        # A notebook on that kernel; the participant's first cell imports a package.
        first_card.click()
        editor = element(driver, ".jp-NotebookPanel .jp-Cell .cm-content")
        # The notebook has its kernel once the status bar names it, idle: a cell run before
        # then is dropped by JupyterLab ("no kernel"), not queued.
        idle = f"{default} | Idle"
        wait_for(
            driver,
            f"the status bar to say {idle!r}",
            lambda d: idle in d.find_element(By.ID, "jp-main-statusbar").text,
            timeout=60,
        )
        lap("notebook and kernel")
        code = f"import {COURSE_PACKAGE}; print('{COURSE_PACKAGE}', {COURSE_PACKAGE}.__version__)"
        editor.click()
        editor.send_keys(code)
        assert editor.text == code, f"the cell holds {editor.text!r}"
        editor.send_keys(Keys.SHIFT, Keys.ENTER)
        output = wait_for(
            driver,
            "the cell's output",
            lambda d: next(
                (
                    o
                    for o in d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-OutputArea-output")
                    if o.text
                ),
                None,
            ),
            timeout=60,
        )
        expected = f"{COURSE_PACKAGE} {COURSE_VERSION}"
        assert output.text.strip() == expected
        lap("first cell ran")

        # No news prompt: JupyterLab asks about news as soon as it has restored its layout,
        # long before a kernel has run a cell, and that toast stays until answered.
        toasts = [t.text for t in driver.find_elements(By.CSS_SELECTOR, ".Toastify__toast")]
        assert not [t for t in toasts if NEWS_PROMPT in t], toasts
        assert NEWS_PROMPT not in driver.find_element(By.TAG_NAME, "body").text
        # ... because JupyterLab's settings for this participant say never (the overrides the
        # hub wrote), not because the toast had not come yet.
        setting = hub.expect(
            hub.http.get(
                f"{hub.public_url}/user/{name}/lab/api/settings/{JUPYTERLAB_NOTIFICATION_PLUGIN}", timeout=30
            ),
            200,
        ).json()
        # jupyterlab_server applies overrides.json to the schema's defaults, which the page
        # takes for every key the user has not set.
        defaults = {key: value.get("default") for key, value in setting["schema"]["properties"].items()}
        assert (defaults["fetchNews"], defaults["checkForUpdates"]) == ("false", False)
        assert "fetchNews" not in setting["settings"], "the participant chose, not the hub"

        screenshot = tmp_path / "jupyterlab.png"
        assert driver.save_screenshot(str(screenshot)), "Chromium made no screenshot"
        lap("total")
        print(
            f"\n[participant] {name}: "
            + ", ".join(f"{step} at {seconds:.1f} s" for step, seconds in timings.items())
            + f"; screenshot {screenshot}"
        )
    except AssertionError as exc:
        # What the participant saw, and the page's console, beside the hub's log.
        shot = tmp_path / "failure.png"
        driver.save_screenshot(str(shot))
        console = "\n".join(entry["message"] for entry in driver.get_log("browser"))
        raise AssertionError(
            f"{exc}\n(the page: {shot})\n--- the page's console ---\n{console}\n{hub.diagnose()}"
        ) from None
    finally:
        if hub.server(name) is not None:
            hub.stop_server(name)
