"""A search's runs in MLflow: the trial tags, one parent run per study (found again on resume), the
runs a dead sweeper left RUNNING, and the study's summary on the parent.

Parent: description (`mlflow.note.content`) with the best trial; metric `best_<objective>`; tags
`lstm_exp.study`, `lstm_exp.study_storage`, `lstm_exp.best_run_id`, `lstm_exp.best_params` (JSON),
`lstm_exp.best_trial`; the table `search_trials.json` (one row per trial, `mlflow.load_table`); plots
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


def end_stale_children(client, uri: str, parent_run_id: str, reason: str) -> list[str]:
    """Ends FAILED the parent's children still RUNNING (their worker died) and tags them FAIL."""
    from lstm_exp.record.store import running_children

    stale = running_children(client, parent_run_id)
    for run_id in stale:
        end_if_running(client, uri, run_id, "FAILED", reason)
        tag_trial_run(client, run_id, "FAIL", reason)
    return stale


def log_study(client, run_id: str, rows: list[dict], best: dict | None, tags: dict[str, str],
              params: dict[str, str], study) -> None:
    """The study's table, best trial, plots, description and tags on its parent run (left open).

    Args:
        rows: one per trial: number, state, value, params, seconds, run_id, note.
        best: {"number", "value", "params", "run_id", "metric"} of the best trial; None if none completed.
        study: the Optuna study, for the plots.
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if rows:
        table = {column: [_cell(row.get(column)) for row in rows] for column in columns}
        retry_locked(lambda: client.log_table(run_id, table, TABLE))
    for key, value in params.items():
        retry_locked(lambda k=key, v=value: client.log_param(run_id, k, v))
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
