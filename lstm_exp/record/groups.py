"""Recorded runs in groups: the runs that agree on the group keys (their seeds are the repeats), each
group's metrics summarized with their uncertainty, and the verdict between the best group and the rest.

    runs = read_runs(client, run_ids)                      # FINISHED or not, as recorded
    found = conclude(runs, ["model.cell"], "val_loss", "minimize")
    found.groups[0].summaries["val_loss"]                 # Summary(n, mean, std, ci_low, ci_high)
    found.verdict.lines                                    # "gru beats lstm on val_loss by 0.011 ..."

Only FINISHED runs are averaged; the others are counted and named in their group. NaN values are
left out of a summary and counted (`Summary.excluded`). The statistics are `compute/statistics.py`'s.
"""

import difflib
from dataclasses import dataclass, field

from lstm_exp.compute.statistics import Difference, Summary, summarize, welch
from lstm_exp.config.sweep_validate import COMPARED_METRICS, STATE_METRIC
from lstm_exp.errors import ConfigError

CURVE = "val_loss"  # the learning curve drawn per group, one point per epoch
AVERAGED = ("FINISHED",)  # SKIPPED jobs of a resumed sweep are read as the FINISHED runs they point at


@dataclass
class RecordedRun:
    """What grouping needs of one run: its status, config (params), final metrics and curve."""

    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]  # final values, and val_loss_ratio = val_loss / baseline_loss
    curve: list[float] = field(default_factory=list)  # val_loss per epoch
    experiment_id: str = ""
    # The job's overrides (its lstm_exp.overrides tag): a run that failed before its results were
    # logged has no params, and is put in its group by these.
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass
class Group:
    """Runs that agree on every group key; `runs` holds the FINISHED ones, `failed` names the rest."""

    values: tuple[str, ...]
    label: str
    runs: list[RecordedRun]
    failed: list[str]
    summaries: dict[str, Summary]


@dataclass
class Verdict:
    """The best group by the metric, and one sentence per other group (empty without a metric)."""

    metric: str | None
    direction: str
    best: Group | None
    differences: dict[str, Difference | None]  # other group's label -> best's advantage
    lines: list[str]


@dataclass
class Conclusions:
    keys: list[str]
    groups: list[Group]
    verdict: Verdict
    metrics: list[str]  # summarized, in the order tables show them
    unrecorded: list[str] = field(default_factory=list)  # jobs that failed before a run existed


def read_runs(client, run_ids: list[str]) -> list[RecordedRun]:
    """The runs, read back from the store (the val_loss curve from its metric history)."""
    from lstm_exp.record.store_locks import retry_locked

    found = []
    for run_id in run_ids:
        run = retry_locked(lambda r=run_id: client.get_run(r))
        curve = []
        if CURVE in run.data.metrics:
            history = retry_locked(lambda r=run_id: client.get_metric_history(r, CURVE))
            curve = [m.value for m in sorted(history, key=lambda m: m.step)]
        found.append(recorded(run, curve))
    return found


def recorded(run, curve: list[float] | None = None) -> RecordedRun:
    """An MLflow run as a `RecordedRun`."""
    metrics = dict(run.data.metrics)
    if "val_loss" in metrics and metrics.get("baseline_loss"):
        metrics["val_loss_ratio"] = metrics["val_loss"] / metrics["baseline_loss"]
    overrides = dict(o.partition("=")[::2] for o in run.data.tags.get("lstm_exp.overrides", "").split())
    return RecordedRun(run.info.run_id, run.info.run_name or run.info.run_id[:8], run.info.status,
                       dict(run.data.params), metrics, list(curve or []), run.info.experiment_id,
                       {key.lstrip("+~"): value for key, value in overrides.items()})


def key_value(run: RecordedRun, key: str) -> str | None:
    """The run's value of a group key: the param, or a config group's name (`model` -> model.name);
    for a run without params (it failed before they were logged), its override of the key."""
    if run.params:
        return run.params.get(key, run.params.get(f"{key}.name"))
    name = key.removesuffix(".name")
    return run.overrides.get(key, run.overrides.get(name if name != key else f"{key}.name"))


def task_of(run: RecordedRun) -> str | None:
    """The run's task (`none` without one); None when a run without params does not say."""
    return key_value(run, "task") or (None if not run.params else "none")


def conclude(runs: list[RecordedRun], keys: list[str], metric: str | None, direction: str,
             names: tuple[str, str] = ("--group-by", "--metric"), unrecorded: list[str] | None = None
             ) -> Conclusions:
    """Groups the runs by `keys`, summarizes every compared metric, and decides the verdict.

    Args:
        metric: the verdict's metric; None: val_loss when a run has it, else no verdict.
        direction: minimize or maximize.
        names: the option or config key that gave `keys` and `metric`, for the error lines.
        unrecorded: jobs that ended before their run existed (counted and named).

    Raises:
        ConfigError: a key no run has, a metric no FINISHED run has, or a group that mixes tasks.
    """
    for key in keys:
        if runs and all(key_value(run, key) is None for run in runs):
            known = sorted({k for run in runs for k in run.params})
            near = difflib.get_close_matches(key, known, n=3) or known[:5]
            raise ConfigError(names[0], ",".join(keys), f"config keys of the runs, e.g. {', '.join(near)} "
                              f"({key!r} is not one)")
    finished = [run for run in runs if run.status in AVERAGED]
    have = {name for run in finished for name, value in run.metrics.items()}
    if metric is None:
        metric = "val_loss" if "val_loss" in have else None
    elif metric not in have and finished:  # with no FINISHED run at all, the failures say why
        shown = [m for m in COMPARED_METRICS if m in have] or sorted(have)[:6]
        raise ConfigError(names[1], metric, "a metric the FINISHED runs recorded: "
                          + (", ".join(shown) or "none of them recorded any"))
    metrics = [m for m in COMPARED_METRICS if m in have]
    metrics += sorted((m for m in have if STATE_METRIC.fullmatch(m) and not m.endswith("_norm")), key=_layer)
    if metric and metric not in metrics:
        metrics.insert(0, metric)
    members: dict[tuple[str, ...], list[RecordedRun]] = {}
    for run in runs:
        members.setdefault(tuple(str(key_value(run, k)) for k in keys), []).append(run)
    groups = [_group(keys, values, group, metrics, names[0]) for values, group in members.items()]
    return Conclusions(keys, groups, decide(groups, metric, direction), metrics, list(unrecorded or []))


def _layer(name: str) -> tuple[int, str]:
    head, _, rest = name.partition(".")
    return int(head[len("layer_"):]), rest


def label_of(keys: list[str], values: tuple[str, ...]) -> str:
    """`gru` for one key, `seed=3` for a number, `model.cell=gru task=adding` for several, or `all runs`."""
    if len(keys) == 1 and not values[0].lstrip("-").replace(".", "", 1).isdigit():
        return values[0]
    return " ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def _group(keys: list[str], values: tuple[str, ...], runs: list[RecordedRun], metrics: list[str],
           option: str) -> Group:
    tasks = sorted({task for run in runs if (task := task_of(run)) is not None})
    label = label_of(keys, values)
    if len(tasks) > 1:
        raise ConfigError(option, ",".join(keys) or "(none)", f"keys that keep runs of different tasks apart "
                          f"(group {label!r} mixes tasks {', '.join(tasks)}; add task.name)")
    finished = [run for run in runs if run.status in AVERAGED]
    failed = [f"{r.name} ({r.status}, run {r.run_id[:8]})" for r in runs if r.status not in AVERAGED]
    # A run without the metric (a GRU has no gates) is not in its summary; a NaN it logged is, counted.
    summaries = {m: summarize(r.metrics[m] for r in finished if m in r.metrics) for m in metrics}
    return Group(values, label, finished, failed, summaries)


def decide(groups: list[Group], metric: str | None, direction: str) -> Verdict:
    """The best group by its mean of `metric`, and Welch's difference to each other group."""
    ranked = [g for g in groups if metric and g.summaries[metric].n]
    if not metric or len(ranked) < 2:
        why = ("no metric to compare by (sweep.metric, or val_loss after training)" if not metric
               else f"fewer than two groups with a {metric}: nothing to compare")
        return Verdict(metric, direction, ranked[0] if ranked else None, {}, [why])
    sign = 1 if direction == "minimize" else -1
    ranked.sort(key=lambda g: sign * g.summaries[metric].mean)
    best, lines, differences = ranked[0], [], {}
    values = lambda g: [r.metrics[metric] for r in g.runs if metric in r.metrics]  # noqa: E731
    for other in ranked[1:]:
        # The best group's advantage, positive when it is better: other - best (minimize), best - other.
        a, b = (values(other), values(best)) if sign == 1 else (values(best), values(other))
        difference = differences[other.label] = welch(a, b)
        lines.append(sentence(best, other, metric, difference, direction))
    return Verdict(metric, direction, best, differences, lines)


def sentence(best: Group, other: Group, metric: str, d: Difference, direction: str) -> str:
    """'gru beats lstm on val_loss by 0.011 (95 % CI 0.006 to 0.016, n = 5 each)', or why not."""
    nb, no = best.summaries[metric].n, other.summaries[metric].n
    n = f"n = {nb} each" if nb == no else f"n = {nb} and {no}"
    lower = "lower" if direction == "minimize" else "higher"
    if d.ci_low is None:
        why = "no spread within the groups" if min(nb, no) > 1 else "one run gives no interval"
        return (f"no difference shown between {best.label} and {other.label} on {metric} at {n}: "
                f"{best.label} is {lower} by {d.estimate:.3g}, but {why}")
    interval = f"95 % CI {d.ci_low:.3g} to {d.ci_high:.3g}"
    if d.shown:
        return f"{best.label} beats {other.label} on {metric} by {d.estimate:.3g} ({interval}, {n})"
    return (f"no difference shown between {best.label} and {other.label} on {metric} at {n} "
            f"({best.label} {lower} by {d.estimate:.3g}, {interval})")
