"""Groups of runs and their verdict (record/groups.py), the `sweep` section's checks, the group table's
columns and the report page, on runs made by hand (no store): FAILED runs are named and never averaged,
NaN values are left out and counted, and every number is the one `scipy.stats` computes (1e-9 relative).
"""

import math
from html.parser import HTMLParser

import numpy as np
import pytest
from scipy import stats

from lstm_exp.config.compose import compose
from lstm_exp.config.sweep_validate import validate_sweep
from lstm_exp.errors import ConfigError
from lstm_exp.jobs.group_text import description, format_conclusions
from lstm_exp.jobs.sweep_conclusions import swept_keys
from lstm_exp.record.conclusions_log import best_metrics, groups_table
from lstm_exp.record.groups import RecordedRun, conclude
from lstm_exp.record.report_html import report_page

LSTM = [0.0213, 0.0187, 0.0251, 0.0199, 0.0230]
GRU = [0.0031, 0.0029, 0.0044, 0.0025, 0.0038]
CLOSE = [0.0215, 0.0190, 0.0240, 0.0205, 0.0228]


def run(cell: str, seed: int, val_loss: float, status: str = "FINISHED", task: str = "adding") -> RecordedRun:
    params = {"model.cell": cell, "model.name": "basic", "seed": str(seed), "task.name": task}
    metrics = {"val_loss": val_loss, "baseline_loss": 0.1667, "layer_0.forget_mean": 0.5 + seed / 100}
    overrides = {"task": task, "model.cell": cell, "seed": str(seed)}
    if status != "FINISHED":  # as recorded: a run that failed has no params, only its overrides tag
        params, metrics = {}, {"val_loss": val_loss}
    name = f"basic model.cell={cell} seed={seed}"
    return RecordedRun(f"{cell}{seed:030d}", name, status, params, metrics, [1.0, val_loss], "1", overrides)


def runs(**cells: list[float]) -> list[RecordedRun]:
    return [run(cell, seed, value) for cell, values in cells.items() for seed, value in enumerate(values)]


def test_groups_are_summarized_as_scipy_does_and_the_best_beats_the_other():
    found = conclude(runs(lstm=LSTM, gru=GRU), ["model.cell"], None, "minimize")
    assert [g.label for g in found.groups] == ["lstm", "gru"]
    gru = found.groups[1].summaries["val_loss"]
    low, high = stats.t.interval(0.95, 4, loc=np.mean(GRU), scale=stats.sem(GRU))
    assert (gru.n, gru.ci_low, gru.ci_high) == (
        5,
        pytest.approx(low, rel=1e-9),
        pytest.approx(high, rel=1e-9),
    )
    verdict = found.verdict
    assert (verdict.metric, verdict.best.label) == ("val_loss", "gru")  # val_loss by default, after training
    welch = stats.ttest_ind(LSTM, GRU, equal_var=False).confidence_interval(0.95)
    d = verdict.differences["lstm"]
    assert (d.ci_low, d.ci_high) == (pytest.approx(welch.low, rel=1e-9), pytest.approx(welch.high, rel=1e-9))
    expected = (
        f"gru beats lstm on val_loss by {np.mean(LSTM) - np.mean(GRU):.3g} "
        f"(95 % CI {welch.low:.3g} to {welch.high:.3g}, n = 5 each)"
    )
    assert verdict.lines == [expected]
    assert "verdict: " + expected in format_conclusions(found)
    assert expected in description(found, "model.cell=lstm,gru seed=0,1,2,3,4", "10 jobs: 10 finished")


def test_close_groups_get_no_difference_shown_and_maximize_turns_the_order():
    found = conclude(runs(lstm=LSTM, other=CLOSE), ["model.cell"], "val_loss", "minimize")
    assert found.verdict.lines[0].startswith(
        "no difference shown between other and lstm on val_loss at n = 5 each (other lower by 4e-05"
    )
    assert (
        conclude(runs(lstm=LSTM, gru=GRU), ["model.cell"], "val_loss", "maximize").verdict.best.label
        == "lstm"
    )


def test_failed_runs_are_named_not_averaged_and_nan_is_left_out_and_counted():
    recorded = runs(lstm=LSTM[:3], gru=[*GRU[:2], math.nan])
    recorded.append(run("gru", 7, 99.0, status="FAILED"))
    recorded.append(run("lstm", 8, 99.0, status="KILLED"))
    found = conclude(
        recorded, ["model.cell"], None, "minimize", unrecorded=["job 9 (seed=9): INVALID, no run"]
    )
    lstm, gru = found.groups
    assert (len(gru.runs), gru.summaries["val_loss"].n, gru.summaries["val_loss"].excluded) == (3, 2, 1)
    assert gru.summaries["val_loss"].mean == pytest.approx(np.mean(GRU[:2]), rel=1e-12)  # 99 not in it
    assert lstm.summaries["val_loss"].mean == pytest.approx(np.mean(LSTM[:3]), rel=1e-12)
    assert gru.failed == [f"basic model.cell=gru seed=7 (FAILED, run {'gru' + '0' * 5})"]
    text = format_conclusions(found)
    assert "not averaged (3): " in text and "seed=8 (KILLED" in text and "job 9 (seed=9): INVALID" in text
    assert "NaN left out" in text.splitlines()[0]
    table = groups_table(found)
    assert (table["n"], table["failed"], table["val_loss.nan"]) == ([3, 3], [1, 1], [0, 1])


def test_one_run_per_group_has_no_interval_and_says_so():
    found = conclude(runs(lstm=[0.02], gru=[0.01]), ["model.cell"], None, "minimize")
    assert found.groups[0].summaries["val_loss"].ci_low is None
    assert found.verdict.lines == [
        "no difference shown between gru and lstm on val_loss at n = 1 each: gru is "
        "lower by 0.01, but one run gives no interval"
    ]
    assert best_metrics(found) == {"best/val_loss.mean": 0.01, "best/val_loss.n": 1.0}


def test_bad_keys_metrics_and_mixed_tasks_are_refused_naming_the_option():
    recorded = runs(lstm=LSTM, gru=GRU)
    with pytest.raises(ConfigError, match=r"^--group-by must be config keys of the runs, e.g. model.cell"):
        conclude(recorded, ["model.cel"], None, "minimize")
    with pytest.raises(ConfigError, match=r"^--metric must be a metric the FINISHED runs recorded: val_loss"):
        conclude(recorded, ["model.cell"], "forward_ms", "minimize")
    mixed = [*recorded, run("gru", 9, 0.5, task="copy")]
    with pytest.raises(ConfigError, match=r"group 'gru' mixes tasks adding, copy; add task.name"):
        conclude(mixed, ["model.cell"], None, "minimize")
    assert len(conclude(mixed, ["model.cell", "task.name"], None, "minimize").groups) == 3


def test_the_sweep_section_is_checked_against_the_sweep():
    cfg = compose("task=adding")
    assert validate_sweep(cfg.sweep, cfg, ["model.cell", "seed"]) == [
        "model.cell"
    ]  # every swept key but seed
    assert validate_sweep(compose("sweep.group_by=[model]").sweep, cfg, ["model", "seed"]) == ["model"]
    refused = [  # (overrides, swept keys, the line's start)
        (["sweep.group_by=[nope]"], ["seed"], "sweep.group_by must be keys of the config"),
        (["sweep.metric=bogus"], ["seed"], "sweep.metric must be a final metric of the runs"),
        (["sweep.direction=up"], ["seed"], "sweep.direction must be one of minimize, maximize"),
        (
            ["sweep.metric=val_loss", "task=none"],
            ["seed"],
            "sweep.metric must be a metric the sweep's runs record: it needs training",
        ),
        (
            ["sweep.metric=forward_ms"],
            ["seed"],
            "sweep.metric must be a metric the sweep's runs record: it needs run.repeat > 0",
        ),
        (
            ["sweep.group_by=[model.cell]"],
            ["task", "model.cell"],
            "sweep.group_by must be keys that keep the swept tasks apart",
        ),
    ]
    for overrides, swept, line in refused:
        cfg = compose("task=adding", *overrides)
        with pytest.raises(ConfigError, match="^" + line.replace(".", r"\.").replace("(", r"\(")):
            validate_sweep(cfg.sweep, cfg, swept)


def test_the_swept_keys_are_those_whose_value_changes():
    jobs = [
        ["model.cell=lstm", "seed=0", "task=adding", "tracking.uri=x"],
        ["model.cell=lstm", "seed=1", "task=adding", "tracking.uri=y"],
        ["model.cell=gru", "seed=0", "task=adding", "tracking.uri=x"],
    ]
    assert swept_keys(jobs) == ["model.cell", "seed"]  # tracking.* says where, not what


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.sources, self.scripts, self.links, self._in = 0, [], 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in.append(tag)
        self.rows += tag == "tr" and "tbody" in self._in and "groups" in self._tables
        self.scripts += tag == "script" or tag == "link"
        self.sources += [attrs["src"]] if "src" in attrs else []
        self.links += [attrs["href"]] if tag == "a" else []
        if tag == "table":
            self._tables = attrs.get("id", "")

    _tables = ""


def test_the_report_page_has_a_row_per_group_and_needs_no_other_file(tmp_path):
    from lstm_exp.record.group_plots import learning_curves

    found = conclude(runs(lstm=LSTM, gru=GRU, other=CLOSE), ["model.cell"], None, "minimize")
    figure = learning_curves(found.groups, "val_loss", tmp_path / "curves.png")
    page = _Page()
    page.feed(report_page(found, "sweep", ["swept: model.cell"], figure, "http://127.0.0.1:5000"))
    assert page.rows == 3
    assert (
        page.scripts == 0
        and page.sources
        and all(s.startswith("data:image/png;base64,") for s in page.sources)
    )
    assert len(page.links) == 15 and all(
        h.startswith("http://127.0.0.1:5000/#/experiments/1/runs/") for h in page.links
    )


def test_a_sweeps_jobs_without_a_run_are_named_in_its_conclusions():
    from lstm_exp.jobs.sweep_conclusions import rows_conclusions

    rows = [{"job": 0, "overrides": "model.units=[0] seed=0", "status": "INVALID", "run_id": None},
            {"job": 1, "overrides": "model.units=[-1] seed=0", "status": "FAILED", "run_id": ""}]
    found = rows_conclusions(None, rows, ["model.units"], None, "minimize")  # no run to read
    assert found.groups == [] and found.unrecorded == [
        "job 0 (model.units=[0] seed=0): INVALID, no run", "job 1 (model.units=[-1] seed=0): FAILED, no run"]
    assert format_conclusions(found).splitlines()[:2] == [
        "groups: no job recorded a run",
        "not averaged (2): job 0 (model.units=[0] seed=0): INVALID, no run; job 1 (model.units=[-1] seed=0): "
        "FAILED, no run"]
