"""A real sweep's groups and verdict, end to end: what it prints, what its parent run keeps (description,
best/* metrics, the sweep_groups table, report.html), `compare --group-by` and `report` on the same
store (read-only), bad input refused with one line, and the report and the parent's page in Chromium.

The numbers are checked against an independent computation from the child runs' own metrics
(`scipy.stats.t.interval`, `scipy.stats.ttest_ind(equal_var=False)`), to 1e-9 relative.
"""

import hashlib
import re

import mlflow
import numpy as np
import pytest
from conftest import error_lines, run_cli
from faults import fault_overrides
from mlflow.tracking import MlflowClient
from scipy import stats

TINY = ("task=adding", "model.units=[4]", "task.epochs=2", "task.train_size=64", "task.val_size=32")
SWEEP = ("model.cell=lstm,gru", "seed=0,1,2", *TINY)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(launch directory, the sweep's process, its parent run id): 2 cells x 3 seeds, and one FAILED run."""
    launch = tmp_path_factory.mktemp("groups")
    proc = run_cli("-m", *SWEEP, f"hydra.sweep.dir={launch / 'sweep'}", cwd=launch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = run_cli(*TINY, "model.cell=gru", "seed=9", *fault_overrides(forward=[9]), cwd=launch)
    assert failed.returncode == 1, failed.stderr[-2000:]
    parent = re.findall(r"sweep parent run ([0-9a-f]{32})", proc.stdout)[-1]
    return launch, proc, parent


def _client(launch) -> MlflowClient:
    return MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")


def _values(client, parent: str) -> dict[str, list[float]]:
    """Each cell's final val_loss, read from the sweep's child runs themselves."""
    experiment = client.get_run(parent).info.experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")
    values: dict[str, list[float]] = {}
    for child in children:
        assert child.info.status == "FINISHED"
        values.setdefault(child.data.params["model.cell"], []).append(child.data.metrics["val_loss"])
    return values


@pytest.mark.slow
def test_the_parent_keeps_the_groups_and_the_verdict(swept):
    launch, proc, parent_id = swept
    client = _client(launch)
    values = _values(client, parent_id)
    assert sorted(values) == ["gru", "lstm"] and all(len(v) == 3 for v in values.values())
    best = min(values, key=lambda cell: np.mean(values[cell]))
    other = "gru" if best == "lstm" else "lstm"
    b = values[best]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(b), scale=stats.sem(b))
    parent = client.get_run(parent_id)
    metrics = parent.data.metrics
    assert metrics["best/val_loss.mean"] == pytest.approx(np.mean(b), rel=1e-9)
    assert metrics["best/val_loss.ci_low"] == pytest.approx(low, rel=1e-9)
    assert metrics["best/val_loss.ci_high"] == pytest.approx(high, rel=1e-9)
    assert metrics["best/val_loss.n"] == 3
    welch = stats.ttest_ind(values[other], b, equal_var=False)
    interval = welch.confidence_interval(0.95)
    difference = np.mean(values[other]) - np.mean(b)
    said = (f"{best} beats {other} on val_loss by {difference:.3g} (95 % CI {interval.low:.3g} to "
            f"{interval.high:.3g}, n = 3 each)" if welch.pvalue < 0.05 else
            f"no difference shown between {best} and {other} on val_loss at n = 3 each ({best} lower by "
            f"{difference:.3g}, 95 % CI {interval.low:.3g} to {interval.high:.3g})")
    assert f"verdict: {said}" in proc.stdout
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith("**Verdict** by val_loss (minimize") and f"- {said}" in note
    assert "**Jobs** 6 jobs: 6 finished" in note
    assert parent.data.tags["lstm_exp.group_by"] == "model.cell"
    assert parent.data.tags["lstm_exp.best_group"] == best

    mlflow.set_tracking_uri(f"sqlite:///{launch / 'mlflow.db'}")
    mlflow.set_experiment("lstm_exp")
    table = mlflow.load_table("sweep_groups.json", run_ids=[parent_id]).set_index("model.cell")
    assert sorted(table.index) == ["gru", "lstm"] and list(table["n"]) == [3, 3]
    for cell, cell_values in values.items():
        assert table.loc[cell, "val_loss.mean"] == pytest.approx(np.mean(cell_values), rel=1e-9)
        assert table.loc[cell, "val_loss.std"] == pytest.approx(np.std(cell_values, ddof=1), rel=1e-9)
    names = {a.path for a in client.list_artifacts(parent_id)} | {
        a.path for a in client.list_artifacts(parent_id, "plots")}
    assert {"report.html", "sweep_groups.json", "sweep_summary.json", "plots/learning_curves.png"} <= names


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_compare_and_report_group_any_runs_and_write_nothing_to_the_store(swept):
    launch, proc, parent_id = swept
    values = _values(_client(launch), parent_id)
    before = _digest(launch / "mlflow.db")
    # Every run of the store: a params filter would leave out the FAILED run, which has no params.
    compared = run_cli("--group-by", "model.cell", module="lstm_exp.compare", cwd=launch)
    assert compared.returncode == 0, compared.stderr
    rows = {line.split()[0]: line.split() for line in compared.stdout.splitlines()[1:3]}
    for cell, cell_values in values.items():
        # gru: the sweep's three runs, and the FAILED one named but not averaged
        assert rows[cell][1:4] == ["3", "1" if cell == "gru" else "0", f"{np.mean(cell_values):.4g}"]
    failed = r"not averaged \(1\): gru: basic .*seed=9.* \(FAILED, run [0-9a-f]{8}\)"
    assert re.search(failed, compared.stdout), compared.stdout
    assert "verdict: " in compared.stdout
    out = launch / "report.html"
    reported = run_cli(parent_id[:8], "--out", str(out), module="lstm_exp.report", cwd=launch)
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.strip() == f"report: {out}"
    page = out.read_text()
    groups = re.search(r'<table id="groups">.*?<tbody>(.*?)</tbody>', page).group(1)
    assert groups.count("<tr") == 2  # a row per group
    assert _digest(launch / "mlflow.db") == before


@pytest.mark.slow
@pytest.mark.parametrize(("module", "args", "line"), [
    ("lstm_exp.compare", ["--group-by", "model.cel"], "error: --group-by must be config keys of the runs, "
     "e.g. model.cell"),
    ("lstm_exp.compare", ["--group-by", "model.cell", "--metric", "forward_ms"],
     "error: --metric must be a metric the FINISHED runs recorded: val_loss"),
    ("lstm_exp.report", ["--group-by", "model.cell", "--filter", "params.model.cell = 'x'"],
     "error: --filter must be a filter that matches runs of experiment 'lstm_exp' (none match)"),
    ("lstm_exp.report", ["--group-by", "seed", "--filter", ""], None),  # every run, one group per seed
])
def test_bad_group_input_is_one_line(swept, module, args, line):
    launch, _, _ = swept
    proc = run_cli(*args, "--out", str(launch / "bad.html"), module=module, cwd=launch) \
        if module.endswith("report") else run_cli(*args, module=module, cwd=launch)
    if line is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2 and len(error_lines(proc)) == 1, proc.stderr
    assert error_lines(proc)[0].startswith(line), proc.stderr


@pytest.mark.parametrize(("overrides", "line"), [
    (["task=adding,copy", "model.cell=lstm,gru", "sweep.group_by=[model.cell]"],
     "error: sweep.group_by must be keys that keep the swept tasks apart"),
    (["seed=0,1", "sweep.group_by=[nope]"], "error: sweep.group_by must be keys of the config"),
    (["seed=0,1", "sweep.metric=val_loss"], "error: sweep.metric must be a metric the sweep's runs record: "
     "it needs training"),
])
def test_a_bad_sweep_section_is_refused_before_anything_is_recorded(tmp_path, overrides, line):
    proc = run_cli("-m", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1, proc.stderr
    assert error_lines(proc)[0].startswith(line), proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.service
@pytest.mark.browser
def test_the_report_and_the_parents_page_in_chromium(swept, tmp_path):
    from browser import UI, chromium, printed_link
    from selenium.webdriver.common.by import By
    from services import mlflow_server

    launch, proc, parent_id = swept
    out = tmp_path / "report.html"
    assert run_cli(parent_id, "--out", str(out), module="lstm_exp.report", cwd=launch).returncode == 0
    screens = tmp_path / "screens"
    with chromium() as driver:
        ui = UI(driver, screens)
        driver.get(out.as_uri())  # a file, opened offline: nothing else is fetched
        ui.see("Verdict", "Groups (by model.cell)", "Learning curves", "State analyses per group")
        rows = driver.find_elements(By.XPATH, "//table[@id='groups']/tbody/tr")
        assert sorted(r.find_element(By.XPATH, "./td[1]").text for r in rows) == ["gru", "lstm"]
        images = driver.find_elements(By.TAG_NAME, "img")
        assert images and all(int(i.get_attribute("naturalWidth")) > 0 for i in images)  # decoded
        ui.shot("report")
        with mlflow_server(f"sqlite:///{launch / 'mlflow.db'}", tmp_path / "ui", ui=True) as url:
            ui.open_run_page(printed_link(proc.stdout, url))
            best = re.search(r"best by val_loss \(minimize\): (\w+)", proc.stdout).group(1)
            verdict = re.search(r"^verdict: (.*)$", proc.stdout, re.MULTILINE).group(1)
            # The description starts with the verdict: the UI shows it before its "Show more".
            ui.see("Description", "Verdict by val_loss (minimize", verdict, f"Best {best}: mean val_loss",
                   "best/val_loss.mean", "best/val_loss.ci_low")
            ui.shot("parent-overview")
            ui.tab("Artifacts")
            ui.artifact("sweep_groups.json")
            ui.see("View as table", "model.cell", "val_loss.mean", "gru", "lstm")
            ui.shot("parent-groups-table")
            ui.artifact("report.html")
            ui.see("report.html")
            ui.shot("parent-report")
