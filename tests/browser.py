"""Chromium for the browser tests (Debian's chromium, driven through chromium-driver): the page a CLI's
printed link names, a headless browser that ends with its block, and `UI`, what a person does in the
MLflow UI (open, read, click), each step waiting for what it needs and screenshotted.
"""

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 60  # one page, panel or image, on a busy 2-core machine
PRINTED_UI = "http://127.0.0.1:5000/"  # where the CLI's link says `mlflow ui` listens
TRAINING_NAV = ("Runs", "Models")  # the training view's sidebar; the GenAI view's has these instead:
GENAI_NAV = ("Overview", "Observability")


def printed_link(stdout: str, ui_url: str) -> str:
    """The page the CLI printed ("then open http://127.0.0.1:5000/#/..."), on the server at `ui_url`."""
    page = re.search(re.escape(PRINTED_UI) + r"(\S+)", stdout).group(1)
    return f"{ui_url}/{page}"


@contextlib.contextmanager
def chromium(window: str = "1400,1000") -> Iterator:
    """A headless chromium under chromium-driver; both processes end when the block does."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={window}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


class UI:
    """What a person does in the MLflow UI: open a page, read it, click a tab; each step screenshotted."""

    def __init__(self, driver, screens: Path | None = None) -> None:
        self.driver, self.screens, self.step = driver, screens, 0
        # A React re-render may replace an element between finding and reading it: look again.
        self.wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def shot(self, name: str) -> Path | None:
        if self.screens is None:
            return None
        self.step += 1
        self.screens.mkdir(parents=True, exist_ok=True)
        path = self.screens / f"{self.step:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text  # rendered, visible text only

    def see(self, *texts: str) -> None:
        """Waits until the page shows every one of `texts`."""
        self.wait.until(lambda _: all(t in self.text() for t in texts),
                        f"the page never showed all of {texts}")

    def element(self, xpath: str):
        """Waits for a visible element."""
        return self.wait.until(seen.visibility_of_element_located((By.XPATH, xpath)),
                               f"never visible: {xpath}")

    def click(self, xpath: str) -> None:
        self.wait.until(seen.element_to_be_clickable((By.XPATH, xpath)), f"never clickable: {xpath}").click()

    def open_run_page(self, link: str) -> None:
        """Opens a printed link; waits for the run page in the training view, and hides the assistant."""
        self.driver.get(link)
        self.element("//button[@role='tab' and text()='Model metrics']")
        nav = self.element("//nav").text.splitlines()
        assert all(item in nav for item in TRAINING_NAV), nav
        assert not any(item in nav for item in GENAI_NAV), f"the GenAI view opened: {nav}"
        assert "workflowType=machine_learning" in self.driver.current_url
        for close in self.driver.find_elements(By.XPATH, "//button[@aria-label='Close']"):
            if close.is_displayed():  # the "MLflow Assistant" side panel, which takes a third of the page
                close.click()

    def tab(self, name: str) -> None:
        self.click(f"//button[@role='tab' and text()='{name}']")

    def search(self, placeholder: str, text: str) -> None:
        self.element(f"//input[@placeholder='{placeholder}']").send_keys(text)

    def chart_sections(self) -> list[str]:
        """The names of the Model metrics tab's chart sections, as shown."""
        headers = self.driver.find_elements(
            By.XPATH, "//*[@data-testid='experiment-view-compare-runs-section-header']")
        return [h.text.splitlines()[0] for h in headers if h.is_displayed() and h.text]

    def artifact(self, name: str) -> None:
        """Clicks a file or folder in the Artifacts tab's tree."""
        self.click(f"//*[@data-testid='artifact-tree-node' and @artifact-name='{name}']")

    def previewed_image(self):
        """The image the artifact preview shows, once the browser has decoded it."""
        def decoded(driver):
            images = [i for i in driver.find_elements(By.XPATH, "//img[starts-with(@src, 'blob:')]")
                      if i.is_displayed() and int(i.get_attribute("naturalWidth") or 0) > 0]
            return images[0] if images else False

        return self.wait.until(decoded, "no decoded image in the artifact preview")
