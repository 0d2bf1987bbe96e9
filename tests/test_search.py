"""`-m hydra/sweeper=search`: a real Optuna study (journal storage beside the SQLite store), real jobs.

Tiny trainings (`adding`, 64 sequences, 3 epochs) so that a trial takes seconds. Nothing depends on luck:
pruning is checked with trials whose learning rate (1e-7) cannot learn, after trials that did, under the
median pruner; the NaN trial is injected by `faults.Fault`; the killed search is paused by it.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import error_lines, run_cli
from faults import RELEASE_FILE, fault_overrides, on_python_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from lstm_exp import compose
from lstm_exp.config.compose import CONFIG_DIR
from lstm_exp.config.search_settings import parse_settings
from lstm_exp.config.search_space import parse_search
from lstm_exp.errors import ConfigError
from lstm_exp.jobs.study import PRUNER_STARTUP

TINY = ("task=adding", "task.epochs=3", "task.train_size=64", "task.val_size=32", "model.units=[4]")
WAIT_S = 600  # bound on a paused job reaching its pause under load


def _search(*overrides, cwd, **kwargs):
    return run_cli("-m", "hydra/sweeper=search", *TINY, *overrides, f"hydra.sweep.dir={cwd / 'sweep'}",
                   cwd=cwd, **kwargs)


def _study(launch, name=None) -> optuna.Study:
    from lstm_exp.jobs.study import open_storage

    storage = open_storage(str(launch / "optuna_journal.log"))
    name = name or optuna.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage)


def _runs(launch):
    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("lstm_exp.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


@pytest.mark.parametrize(("argument", "key", "says"), [
    ("model.unitz=choice([4],[8])", "model.unitz", "a key of the config"),
    ("model.units=choice()", "model.units", "empty choice"),
    ("task.learning_rate=interval(0.1, 0.01)", "task.learning_rate", "low <= high"),
    ("task.learning_rate=tag(log, interval(0, 0.1))", "task.learning_rate", "positive bounds"),
    ("task.learning_rate=tag(log, interval(-1, 0.1))", "task.learning_rate", "positive bounds"),
    ("model=glob(*)", "model", "cannot sample glob"),
])
def test_bad_spaces_are_refused_naming_the_key(argument, key, says):
    with pytest.raises(ConfigError) as refused:
        parse_search(OverridesParser.create(), [argument], compose("task=adding"))
    assert str(refused.value).startswith(key) and says in str(refused.value)


@budget(40)
@given(low=st.floats(-1e6, 1e6), gap=st.floats(1e-6, 1e6))
def test_an_interval_with_low_above_high_is_refused(low, gap):
    high, low = low, low + gap
    with pytest.raises(ConfigError) as refused:
        parse_search(OverridesParser.create(), [f"task.learning_rate=interval({low!r}, {high!r})"],
                     compose("task=adding"))
    assert str(refused.value).startswith("task.learning_rate must be an interval(low, high)")


@pytest.mark.parametrize(("key", "value"), [
    ("n_trials", 0), ("n_trials", True), ("n_trials", "ten"), ("n_workers", -1), ("sampler", "grid"),
    ("pruner", "hyperband"), ("seed", -1), ("study_name", ""),
    ("storage", "postgresql://alice:secret@db.example/optuna"),
])
def test_bad_sweeper_settings_are_refused_naming_the_key(key, value):
    sweeper = OmegaConf.load(CONFIG_DIR / "hydra" / "sweeper" / "search.yaml")  # the real defaults
    parse_settings(sweeper, compose("task=adding").sweep, trains=True)
    sweeper[key] = value
    with pytest.raises(ConfigError) as refused:
        parse_settings(sweeper, compose("task=adding").sweep, trains=True)
    assert str(refused.value).startswith(f"hydra.sweeper.{key} must be")
    assert "secret" not in str(refused.value)


def test_space_in_hydra_grammar():
    space, fixed = parse_search(OverridesParser.create(), [
        "model.units=choice([32],[64],[32,32])", "task.learning_rate=tag(log, interval(1e-4, 1e-1))",
        "model.cell=lstm,gru", "task.batch_size=range(8,33,8)", "task.epochs=3"], compose("task=adding"))
    assert space["model.units"].choices == ("[32]", "[64]", "[32,32]")
    lr = space["task.learning_rate"]
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-1, True)
    assert space["model.cell"].choices == ("lstm", "gru")
    batch = space["task.batch_size"]
    assert (batch.low, batch.high, batch.step) == (8, 32, 8)
    assert fixed == ["task.epochs=3"]


@pytest.mark.slow
@pytest.mark.parametrize(("arguments", "key"), [
    (("model.units=choice()",), "model.units"),
    (("task.learning_rate=interval(1,0.1)",), "task.learning_rate"),
    (("task.learning_rate=0.1,0.01", "hydra.sweeper.sampler=grid"), "hydra.sweeper.sampler"),
    (("task.learning_rate=0.1,0.01", "hydra.sweeper.n_workers=2"), "hydra.sweeper.n_workers"),
])
def test_bad_search_exits_2_with_one_line(tmp_path, arguments, key):
    proc = _search(*arguments, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = error_lines(proc)
    # Hydra's own parse of the command line refuses an empty choice first, naming the override.
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], lines
    assert not (tmp_path / "optuna_journal.log").exists()  # refused before the study


@pytest.mark.slow
def test_joblib_workers_study_is_recorded(tmp_path):
    proc = _search("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_workers=2",
                   "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0", "hydra.sweeper.pruner=none",
                   "task.learning_rate=tag(log, interval(1e-3, 1e-1))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _study(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    client, parents, children = _runs(tmp_path)
    assert len(parents) == 1 and len(children) == 4
    assert {r.info.status for r in [*parents, *children]} == {"FINISHED"}
    by_trial = {int(r.data.tags["lstm_exp.trial"]): r for r in children}
    assert sorted(by_trial) == [0, 1, 2, 3]
    for trial in study.trials:  # the study's values are the runs' own final val_loss
        run = by_trial[trial.number]
        assert run.data.tags["lstm_exp.trial_state"] == "COMPLETE"
        assert math.isclose(trial.value, run.data.metrics["val_loss"], rel_tol=1e-9)
        assert trial.user_attrs["run_id"] == run.info.run_id
    best = min(children, key=lambda r: r.data.metrics["val_loss"])  # independently of Optuna
    parent = parents[0]
    assert math.isclose(parent.data.metrics["best_val_loss"], best.data.metrics["val_loss"], rel_tol=1e-9)
    assert parent.data.tags["lstm_exp.best_run_id"] == best.info.run_id
    assert parent.data.tags["lstm_exp.study"] == study.study_name
    assert "Best trial" in parent.data.tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/optimization_history.png", "plots/param_importances.png"}
    counts = re.findall(r"^trial \d+ \[(\d+)/4\]", proc.stdout, re.M)
    assert sorted(map(int, counts)) == [1, 2, 3, 4]  # counted when each was told: one by one
    assert f"search parent run {parent.info.run_id}" in proc.stdout


@pytest.mark.slow
def test_a_trial_that_cannot_learn_is_pruned_and_a_nan_trial_fails(tmp_path):
    # One study over an inert space (seed 0 only): what differs between its searches is fixed overrides.
    name = ("hydra.sweeper.study_name=prune", "hydra.sweeper.pruner=median", "seed=choice(0)")
    done = PRUNER_STARTUP  # trials that learn: what the median pruner waits for
    learned = _search(*name, f"hydra.sweeper.n_trials={done}", "task.learning_rate=0.05", cwd=tmp_path)
    assert learned.returncode == 0, learned.stderr[-3000:]
    # The next two cannot learn (rate 1e-7): at epoch 2 they are worse than every completed trial,
    # which is what the median pruner (after its startup trials, 1 warm-up epoch) prunes. The last sees NaN.
    stuck = _search(*name, f"hydra.sweeper.n_trials={done + 2}", "task.learning_rate=1e-7", cwd=tmp_path)
    assert stuck.returncode == 0, stuck.stderr[-3000:]
    nan = _search(*name, f"hydra.sweeper.n_trials={done + 3}", "task.learning_rate=0.05",
                  *fault_overrides(nan=[0]), cwd=tmp_path)
    assert nan.returncode == 0, nan.stderr[-3000:]  # the study has completed trials: the best stands
    study = _study(tmp_path, "prune")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * done + ["PRUNED", "PRUNED", "FAIL"]
    assert study.trials[done + 2].user_attrs["lstm_exp.fail_reason"] == "diverged: val_loss nan at epoch 1"
    _, parents, children = _runs(tmp_path)
    assert len(parents) == 1 and len(children) == done + 3  # one parent for the study's three searches
    by_trial = {int(r.data.tags["lstm_exp.trial"]): r for r in children}
    for number in (done, done + 1):
        run = by_trial[number]
        assert run.info.status == "FINISHED" and run.data.tags["lstm_exp.trial_state"] == "PRUNED"
        assert run.data.tags["lstm_exp.trial_note"] == "pruned at epoch 2"
        assert len(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_metric_history(
            run.info.run_id, "val_loss")) == 2  # the epochs it ran
    assert by_trial[done + 2].data.tags["lstm_exp.trial_state"] == "FAIL"
    assert "PRUNED at epoch 2" in stuck.stdout
    # n_trials counts COMPLETE + PRUNED
    assert f"trial {done + 2} [{done + 2}/{done + 3}, this one not counted]" in nan.stdout
    assert "FAIL (diverged: val_loss nan at epoch 1)" in nan.stdout


@pytest.mark.slow
def test_killed_search_resumes_to_exactly_n_trials(tmp_path):
    common = ("hydra.sweeper.n_trials=3", "hydra.sweeper.seed=0", "hydra.sweeper.pruner=none",
              "task.learning_rate=tag(log, interval(1e-3, 1e-1))")
    command = [sys.executable, "-m", "lstm_exp.run", "-m", "hydra/sweeper=search", *TINY, *common,
               f"hydra.sweep.dir={tmp_path / 'sweep'}", *fault_overrides(pause=[0])]
    log_path = tmp_path / "killed.log"
    with log_path.open("w") as log:
        env = on_python_path({**os.environ, "PYTHONUNBUFFERED": "1"})
        killed = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + WAIT_S  # the first trial holds its run open at its pause
            while "epoch 3/3" not in log_path.read_text() and time.monotonic() < deadline:
                assert killed.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.2)
            assert "epoch 3/3" in log_path.read_text()
        finally:
            os.killpg(killed.pid, signal.SIGKILL)  # the sweeper and its job, as a lost node would be
            killed.wait(timeout=60)
    assert not (tmp_path / RELEASE_FILE).exists()
    first = _study(tmp_path).trials[0]
    assert first.state.name == "RUNNING"

    resumed = _search(*common, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trial 0 (its worker was killed) asked again as trial 1" in resumed.stdout
    study = _study(tmp_path)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert study.trials[1].params == first.params  # the dead worker's trial, asked again
    # The progress count is the study's counted trials: it never passes n_trials after the resume.
    counts = re.findall(r"^trial (\d+) \[(\d+)/3\]", resumed.stdout, re.M)
    assert sorted(int(k) for _, k in counts) == [1, 2, 3], resumed.stdout[-3000:]
    client, parents, children = _runs(tmp_path)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4 and "RUNNING" not in {r.info.status for r in children}
    by_trial = {}
    for run in children:  # one run per trial number, never a second one counted for the same trial
        by_trial.setdefault(int(run.data.tags["lstm_exp.trial"]), []).append(run)
    assert sorted(by_trial) == [0, 1, 2, 3] and all(len(runs) == 1 for runs in by_trial.values())
    counted = [r for r in children if r.data.tags["lstm_exp.trial_state"] in ("COMPLETE", "PRUNED")]
    assert len(counted) == 3
    killed_run = by_trial[0][0]
    assert killed_run.info.status == "FAILED" and killed_run.data.tags["lstm_exp.trial_state"] == "FAIL"
    assert killed_run.data.tags["lstm_exp.trial_note"] == "worker killed; asked again as trial 1"
    killed = study.trials[0]
    assert killed.user_attrs["lstm_exp.fail_reason"] == "worker killed; asked again as trial 1"
    assert killed.user_attrs["run_id"] == killed_run.info.run_id
    # The parent says how the study's trials add up: counted == n_trials, the killed attempt apart.
    parent = parents[0]
    assert parent.data.metrics["search.trials_counted"] == 3
    assert parent.data.metrics["search.trials_failed"] == 1 == parent.data.metrics["search.trials_killed"]
    note = parent.data.tags["mlflow.note.content"]
    assert "3 of 3 trials counted" in note
    assert f"trial 0 (run {killed_run.info.run_id}): worker killed; asked again as trial 1" in note
    path = client.download_artifacts(parent.info.run_id, "search_trials.json", str(tmp_path))
    table = json.loads(Path(path).read_text())  # mlflow.log_table's layout: columns, then rows
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert [row["counted"] for row in rows] == [False, True, True, True]
    assert rows[0]["run_id"] == killed_run.info.run_id
    assert rows[0]["note"] == "worker killed; asked again as trial 1"


@pytest.mark.slow
def test_sigterm_leaves_no_run_running_and_the_trial_failed(tmp_path):
    command = [sys.executable, "-m", "lstm_exp.run", "-m", "hydra/sweeper=search", *TINY,
               "hydra.sweeper.n_trials=3", "task.learning_rate=0.05,0.01",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", *fault_overrides(pause=[0])]
    log_path = tmp_path / "stopped.log"
    with log_path.open("w") as log:
        env = on_python_path({**os.environ, "PYTHONUNBUFFERED": "1"})
        stopped = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + WAIT_S  # the first trial holds its run open at its pause
            while "epoch 3/3" not in log_path.read_text() and time.monotonic() < deadline:
                assert stopped.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.2)
            stopped.send_signal(signal.SIGTERM)
            assert stopped.wait(timeout=WAIT_S) == 143, log_path.read_text()[-3000:]
        finally:
            if stopped.poll() is None:
                os.killpg(stopped.pid, signal.SIGKILL)
                stopped.wait(timeout=60)
    assert [t.state.name for t in _study(tmp_path).trials] == ["FAIL"]
    _, parents, children = _runs(tmp_path)
    assert [r.info.status for r in [*parents, *children]] == ["KILLED", "KILLED"]


@pytest.mark.slow
@pytest.mark.service
def test_study_in_postgresql_storage(tmp_path):
    from services import postgres_cluster

    with postgres_cluster() as database:
        proc = _search("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_workers=2",
                       "hydra.sweeper.n_trials=3", "hydra.sweeper.seed=0", "hydra.sweeper.study_name=pg",
                       f"hydra.sweeper.storage={database}", "task.learning_rate=0.05,0.01",
                       cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        study = optuna.load_study(study_name="pg", storage=database)
        values = {t.number: t.value for t in study.trials}
    assert not (tmp_path / "optuna_journal.log").exists()
    _, parents, children = _runs(tmp_path)
    assert len(children) == 3 and {r.info.status for r in [*parents, *children]} == {"FINISHED"}
    for run in children:
        assert math.isclose(values[int(run.data.tags["lstm_exp.trial"])], run.data.metrics["val_loss"],
                            rel_tol=1e-9)
    assert parents[0].data.tags["lstm_exp.study_storage"] == database
