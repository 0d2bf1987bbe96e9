"""The MLflow UI in a real browser (Debian's chromium, driven through chromium-driver) on a store the CLI
filled: the links the CLI printed open the training view, and a person finds there the run's description,
params, per-step state chart, plots and model, and the sweep's parent with its children and summary table.

Every step waits for visible text or elements (bounded, no sleeps) and leaves a screenshot in
`<tmp_path>/screens` (the test prints the folder; run pytest with -s to see it).
"""

import contextlib
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_cli
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait
from services import mlflow_server

pytestmark = pytest.mark.slow
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


def _fill_store(launch: Path) -> tuple:
    """The single run (with its model) and the 2-job sweep, started side by side on one store."""
    commands = [("model=stacked", "tracking.log_model=true"), ("-m", "seed=0,1")]
    with ThreadPoolExecutor(2) as pool:
        single, sweep = pool.map(lambda args: run_cli(*args, cwd=launch), commands)
    for proc in (single, sweep):
        assert proc.returncode == 0, proc.stderr[-3000:]
    return single, sweep


def test_the_printed_links_show_runs_as_a_person_expects(tmp_path):
    launch = tmp_path / "launch"
    launch.mkdir()
    single, sweep = _fill_store(launch)
    children = re.findall(r"^\[\d/2\] seed=\d .* run ([0-9a-f]{32})$", sweep.stdout, re.MULTILINE)
    assert len(children) == 2, sweep.stdout
    screens = tmp_path / "screens"
    print(f"\nscreenshots: {screens}")

    with mlflow_server(f"sqlite:///{launch / 'mlflow.db'}", tmp_path / "ui", ui=True) as url, \
            chromium() as driver:
        ui = UI(driver, screens)

        ui.open_run_page(printed_link(single.stdout, url))
        # The description is the run's summary (mlflow.note.content), rendered from markdown.
        ui.see("Description", "stacked: lstm [4, 5] on input tutorial_batch (2, 3, 6) → output (2, 3, 5)",
               "Reference check: max |engine − NumPy float64|")
        ui.see("Metrics (", "layer_0.h_norm", "reference_max_abs_err", "timing/forward_s")
        ui.shot("run-overview")
        ui.search("Search parameters", "model.units")
        ui.element("//div[@role='row'][.//span[text()='model.units']]//div[@title='[4, 5]']")
        ui.shot("run-params")
        logged = ui.element("//h4[text()='Logged models (1)']")  # tracking.log_model=true
        driver.execute_script("arguments[0].scrollIntoView()", logged)
        ui.element("//a[text()='model']")
        ui.see("Model name", "Ready")
        ui.shot("run-logged-model")

        ui.tab("Model metrics")
        # Charts grouped by the name's prefix: timing/* apart from the states' metrics and the check.
        ui.wait.until(lambda _: {"Model metrics", "timing"} <= set(ui.chart_sections()), "no chart sections")
        ui.search("Search metric charts", "layer_0.h_norm")
        ui.element("//h4[@title='layer_0.h_norm']")
        ui.see("Step")  # a per-step chart (layer_0.h_norm with step=t), not a single bar
        ui.shot("run-h-norm-chart")

        ui.tab("Artifacts")
        ui.artifact("plots")
        ui.artifact("h_norm_over_time.png")
        ui.see("plots/h_norm_over_time.png")
        ui.previewed_image()
        ui.see("config.yaml", "states.npz", "weights.npz", "shapes.json", "summary.txt")
        ui.shot("run-plot-preview")

        ui.open_run_page(printed_link(sweep.stdout, url))
        ui.see("sweep seed=0,1", "Child runs", "basic seed=0", "basic seed=1")
        links = driver.find_elements(By.XPATH, "//*[@data-testid='key-value-Child runs']//a")
        assert sorted(a.get_attribute("href").rsplit("/", 1)[-1] for a in links) == sorted(children)
        ui.shot("sweep-parent")
        ui.tab("Artifacts")
        ui.artifact("sweep_summary.json")
        ui.see("View as table", "overrides", "seed=0", "seed=1", "FINISHED")
        ui.shot("sweep-summary-table")
