"""The end of a sweep: its jobs in groups (seeds as repeats), the verdict, and what the parent keeps.

`run_sweep` checks `sweep.*` before the parent run opens (`sweep_keys`), and at the end, once every job
has reported, reads the jobs' runs back from the store and concludes (`conclude_sweep`): the group
table and verdict are printed, and the parent gets its description, the best group's metrics, the
`sweep_groups` table, the learning-curve bands and `report.html` (record/conclusions_log.py).
`python -m lstm_exp.report` builds the same report from the parent's `sweep_summary.csv`.
"""

import logging
import sys
import tempfile
from pathlib import Path

from lstm_exp.config.sweep_validate import validate_sweep
from lstm_exp.errors import ConfigError
from lstm_exp.jobs.group_text import description, format_conclusions
from lstm_exp.jobs.text import job_overrides
from lstm_exp.record.groups import CURVE, Conclusions, conclude, read_runs
from lstm_exp.record.server_access import is_refusal

log = logging.getLogger(__name__)
NAMES = ("sweep.group_by", "sweep.metric")
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` on a SQLite store listens, as the run's link says


def swept_keys(jobs: list[list[str]]) -> list[str]:
    """The keys whose value differs between the jobs, in the order they were given."""
    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job_overrides(job):
            key, _, value = override.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    return [key for key, seen in values.items() if len(seen) > 1]


def sweep_keys(config, jobs: list[list[str]]) -> list[str]:
    """The keys the sweep's groups are made by, once `sweep.*` is checked (ConfigError if bad)."""
    return validate_sweep(config.sweep, config, swept_keys(jobs))


def rows_conclusions(client, rows: list[dict], keys: list[str], metric: str | None, direction: str,
                     names: tuple[str, str] = NAMES) -> Conclusions:
    """The groups of a sweep's summary rows: each row's run read back; a row without one is named."""
    ids = [row["run_id"] for row in rows if row.get("run_id")]
    unrecorded = [f"job {row['job']} ({row['overrides'] or 'no overrides'}): {row['status']}, no run"
                  for row in rows if not row.get("run_id")]
    return conclude(read_runs(client, ids), keys, metric, direction, names, unrecorded)


def ui_base(uri: str) -> str:
    """Where the MLflow UI shows this store: the server itself, or `mlflow ui` on this machine."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI


def write_report(found: Conclusions, title: str, facts: list[str], uri: str, folder: Path) -> Path:
    """report.html (and plots/learning_curves.png with training) in `folder`."""
    from lstm_exp.record.group_plots import NAME, learning_curves
    from lstm_exp.record.report_html import report_page

    curves = learning_curves(found.groups, CURVE, folder / "plots" / NAME)
    page = folder / "report.html"
    page.write_text(report_page(found, title, facts, curves, ui_base(uri)), encoding="utf-8")
    return page


def conclude_sweep(parent, config, keys: list[str], rows: list[dict], counts: str) -> int:
    """Prints the groups and the verdict and records them on the parent; the exit status it adds.

    Returns:
        0; 2 when the verdict's metric is one no FINISHED job recorded; 1 when the store failed (the
        summary's own closing then says so in its one line).
    """
    from lstm_exp.record.conclusions_log import log_conclusions

    swept = " ".join(config.hydra.overrides.task)
    try:
        client = parent.store.client(parent.uri)
        found = rows_conclusions(client, rows, keys, config.sweep.metric, config.sweep.direction)
        print(format_conclusions(found))
        with tempfile.TemporaryDirectory(prefix="lstm_exp_groups_") as tmp:
            write_report(found, f"sweep {swept}", [f"swept: {swept}", f"jobs: {counts}",
                         f"store: {parent.uri}, parent run {parent.run_id}"], parent.uri, Path(tmp))
            log_conclusions(client, parent.run_id, found, description(found, swept, counts), Path(tmp))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the store went away: the parent's closing reports it
        if is_refusal(error):  # the user lost access: the closing names the user and the runs left
            return 2
        reason = " ".join(str(error).split())[:300]
        log.warning("the sweep's groups were not recorded on its parent run: %s", reason)
        return 1
    return 0
