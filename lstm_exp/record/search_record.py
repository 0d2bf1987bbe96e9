"""A search's runs in MLflow: the trial tags, one parent run per study (found again on resume), the
runs a dead sweeper left RUNNING, and the study's summary on the parent.

Parent: description (`mlflow.note.content`) with the best trial; metric `best_<objective>`; tags
`lstm_exp.study`, `lstm_exp.study_storage`, `lstm_exp.best_run_id`, `lstm_exp.best_params` (JSON),
`lstm_exp.best_trial`; metrics `search.trials_counted` / `_failed` / `_killed`; the table
`search_trials.json` (one row per trial, `counted` true for COMPLETE and PRUNED, `mlflow.load_table`); plots
`plots/optimization_history.png`, `plots/param_importances.png`.
"""

import json
import logging
import tempfile
import warnings
from pathlib import Path

from lstm_exp.record.run_end import end_if_running
from lstm_exp.record.store_locks import retry_locked

log = logging.getLogger(__name__)
TAG_PREFIX = "lstm_exp."
STUDY_TAG, TRIAL_TAG = TAG_PREFIX + "study", TAG_PREFIX + "trial"
STATE_TAG, NOTE_TAG = TAG_PREFIX + "trial_state", TAG_PREFIX + "trial_note"
TABLE = "search_trials.json"


def trial_tags(study: str, number: int) -> dict[str, str]:
    """A search trial's run: its study and trial number (how a resumed search finds it again)."""
    return {STUDY_TAG: study, TRIAL_TAG: str(number)}


def trial_state_tags(state: str, note: str | None) -> dict[str, str]:
    """How a search trial ended: COMPLETE | PRUNED | FAIL, and why when it did not complete."""
    return {STATE_TAG: state, **({NOTE_TAG: note} if note else {})}


def tag_trial_run(client, run_id: str, state: str, note: str | None) -> None:
    """Tags a trial's run whose job could not (it failed, or died) with the trial's state."""
    for key, value in trial_state_tags(state, note).items():
        retry_locked(lambda k=key, v=value: client.set_tag(run_id, k, v[:5000]))


def study_parent(client, experiment_id: str, study: str) -> str | None:
    """The parent run of `study` from an earlier search, made RUNNING again; None on the first search."""
    found = retry_locked(lambda: client.search_runs(
        [experiment_id], f"tags.`{STUDY_TAG}` = '{study}' and tags.`lstm_exp.sweep` = 'parent'",
        max_results=1, order_by=["attributes.start_time ASC"]))
    if not found:
        return None
    run_id = found[0].info.run_id
    retry_locked(lambda: client.update_run(run_id, status="RUNNING"))
    return run_id


def running_trial_runs(client, parent_run_id: str) -> dict[int | None, list[str]]:
    """The parent's children still RUNNING (a dead sweeper's), by their trial number (None: untagged)."""
    from lstm_exp.record.store import running_children

    found: dict[int | None, list[str]] = {}
    for run_id in running_children(client, parent_run_id):
        number = retry_locked(lambda r=run_id: client.get_run(r)).data.tags.get(TRIAL_TAG)
        found.setdefault(int(number) if number is not None else None, []).append(run_id)
    return found


def end_stale_children(client, uri: str, runs: dict[int | None, list[str]], notes: dict[int, str],
                       reason: str) -> list[str]:
    """Tags FAIL, then ends FAILED, the runs a dead sweeper left RUNNING (tagged first: an ended run's
    record is never written to again).

    Args:
        runs: `running_trial_runs`' answer.
        notes: trial number -> the note its run carries ("worker killed; asked again as trial N").
        reason: the runs' end reason (`lstm_exp.error`).
    """
    ended = []
    for number, run_ids in runs.items():
        for run_id in run_ids:
            tag_trial_run(client, run_id, "FAIL", notes.get(number, reason))
            end_if_running(client, uri, run_id, "FAILED", reason)
            ended.append(run_id)
    return ended


def log_study(client, run_id: str, rows: list[dict], best: dict | None, tags: dict[str, str],
              params: dict[str, str], study, metrics: dict[str, float]) -> None:
    """The study's table, best trial, plots, description and tags on its parent run (left open).

    Args:
        rows: one per trial: number, state, value, params, seconds, run_id, counted, note.
        metrics: the trials' counts (`names.TRIALS_COUNTED`, ...).
        best: {"number", "value", "params", "run_id", "metric"} of the best trial; None if none completed.
        study: the Optuna study, for the plots.
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if rows:
        table = {column: [_cell(row.get(column)) for row in rows] for column in columns}
        retry_locked(lambda: client.log_table(run_id, table, TABLE))
    for key, value in params.items():
        retry_locked(lambda k=key, v=value: client.log_param(run_id, k, v))
    for key, value in metrics.items():
        retry_locked(lambda k=key, v=value: client.log_metric(run_id, k, v))
    if best is not None:
        retry_locked(lambda: client.log_metric(run_id, f"best_{best['metric']}", best["value"]))
        tags = {**tags, TAG_PREFIX + "best_run_id": str(best["run_id"]), TAG_PREFIX + "best_trial":
                str(best["number"]), TAG_PREFIX + "best_params": json.dumps(best["params"], sort_keys=True)}
    for key, value in tags.items():
        retry_locked(lambda k=key, v=value: client.set_tag(run_id, k, v[:5000]))
    with tempfile.TemporaryDirectory(prefix="lstm_exp_search_") as tmp:
        for path in _plots(study, Path(tmp)):
            retry_locked(lambda p=path: client.log_artifact(run_id, str(p), "plots"))


def _cell(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else value


def _plots(study, folder: Path) -> list[Path]:
    """The optimization history and the parameter importances (PED-ANOVA: no scikit-learn needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    drawings = {
        "optimization_history.png": lambda: optuna_plots.plot_optimization_history(study),
        "param_importances.png": lambda: optuna_plots.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()),
    }
    for name, draw in drawings.items():
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = draw()
        except Exception as error:  # noqa: BLE001 - too few finished trials for the plot: skipped, said why
            log.warning("search: no %s (%s)", name, error)
            continue
        path = folder / name
        axes.figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(path)
    return written
