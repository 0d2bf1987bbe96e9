"""The MLflow UI in a real browser (Debian's chromium, driven through chromium-driver) on a store the CLI
filled: the links the CLI printed open the training view, and a person finds there the run's description,
params, per-step state chart, plots and model, and the sweep's parent with its children and summary table.

Every step waits for visible text or elements (bounded, no sleeps) and leaves a screenshot in
`<tmp_path>/screens` (the test prints the folder; run pytest with -s to see it).
"""

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from browser import UI, chromium, printed_link
from conftest import run_cli
from selenium.webdriver.common.by import By
from services import mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.browser]


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
