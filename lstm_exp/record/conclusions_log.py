"""What a sweep's parent run carries of its groups: the description, the best group's metrics, the
`sweep_groups` table, the learning-curve bands and `report.html`.

    description   tag mlflow.note.content (markdown): the swept keys, the jobs, the best group, the verdict
    metrics       best/<metric>.mean, .std, .ci_low, .ci_high, .n: the best group's, by the verdict's metric
    table         sweep_groups.json (mlflow.log_table): a row per group, its keys, n, failed, and per
                  metric <metric>.mean, .std, .ci_low, .ci_high, .n, .nan (values left out)
    tags          lstm_exp.group_by, lstm_exp.sweep_metric, lstm_exp.sweep_direction, lstm_exp.best_group
    artifacts     report.html, plots/learning_curves.png (with training)
"""

import time
from pathlib import Path

from lstm_exp.record.store_locks import retry_locked

TABLE = "sweep_groups.json"
STATISTICS = ("mean", "std", "ci_low", "ci_high", "n")


def groups_table(found) -> dict[str, list]:
    """The `sweep_groups` table as columns: one row per group."""
    table: dict[str, list] = {key: [g.values[i] for g in found.groups] for i, key in enumerate(found.keys)}
    table["group"] = [g.label for g in found.groups]
    table["n"] = [len(g.runs) for g in found.groups]
    table["failed"] = [len(g.failed) for g in found.groups]
    for m in found.metrics:
        for stat in STATISTICS:
            table[f"{m}.{stat}"] = [getattr(g.summaries[m], stat) for g in found.groups]
        table[f"{m}.nan"] = [g.summaries[m].excluded for g in found.groups]
    return table


def best_metrics(found) -> dict[str, float]:
    """best/<metric>.<statistic> of the verdict's best group (intervals only where they exist)."""
    verdict = found.verdict
    if verdict.best is None:
        return {}
    s = verdict.best.summaries[verdict.metric]
    values = {stat: getattr(s, stat) for stat in STATISTICS}
    return {f"best/{verdict.metric}.{stat}": float(v) for stat, v in values.items() if v is not None}


def tags(found, description: str) -> dict[str, str]:
    verdict = found.verdict
    return {"mlflow.note.content": description, "lstm_exp.group_by": ",".join(found.keys),
            "lstm_exp.sweep_metric": verdict.metric or "", "lstm_exp.sweep_direction": verdict.direction,
            "lstm_exp.best_group": verdict.best.label if verdict.best else ""}


def log_conclusions(client, run_id: str, found, description: str, folder: Path) -> None:
    """Logs the groups on the parent run; `folder` holds report.html and plots/ (logged as they are)."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(name, value, now, 0) for name, value in best_metrics(found).items()]
    tag_list = [RunTag(k, v) for k, v in tags(found, description).items()]
    retry_locked(lambda: client.log_batch(run_id, metrics=metrics, tags=tag_list))
    if found.groups:
        retry_locked(lambda: client.log_table(run_id, groups_table(found), TABLE))
    retry_locked(lambda: client.log_artifacts(run_id, str(folder)))
