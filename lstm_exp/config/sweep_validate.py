"""Validation of the `sweep` section against the sweep it would group (no TensorFlow, no MLflow).

Checked once in the launching process, before the sweep's parent run opens: a key to group by must be
a key of the config, the metric one that the sweep's runs record, and a sweep over tasks must keep
them apart (a mean over two tasks' losses means nothing).
"""

import re

from omegaconf import DictConfig, OmegaConf

from lstm_exp.errors import ConfigError

DIRECTIONS = ("minimize", "maximize")
# Final metrics a user compares groups by. val_loss_ratio is val_loss / baseline_loss (below 1 beats
# the task's trivial predictor); it is derived when runs are read back, not logged by the runs.
TRAINING_METRICS = ("val_loss", "val_loss_ratio", "baseline_loss", "train_loss", "train_s")
TIMED_METRICS = ("forward_ms", "forward_gflops")
ALWAYS_METRICS = ("reference_max_abs_err",)
COMPARED_METRICS = (*TRAINING_METRICS[:2], "train_s", "forward_ms", "reference_max_abs_err")
STATE_METRIC = re.compile(
    r"layer_\d+\.(?:[ifo]_sat_(?:low|high)|forget_mean|forget_timescale|c_tanh_sat|h_step_change"
    r"|pca_var_[123]|h_norm|c_norm)")


def known_metric(name: str) -> bool:
    """True for a metric name some run records (or val_loss_ratio, derived from two of them)."""
    return name in (*TRAINING_METRICS, *TIMED_METRICS, *ALWAYS_METRICS) or bool(STATE_METRIC.fullmatch(name))


def group_key_path(cfg: DictConfig, key: str) -> str | None:
    """The config key a group key reads: `key` itself, or `key.name` for a config group; None if absent."""
    absent = object()
    try:
        node = OmegaConf.select(cfg, key, default=absent, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - OmegaConf raises several kinds for a malformed key
        return None
    if node is absent:
        return None
    if isinstance(node, DictConfig):
        return f"{key}.name" if "name" in node else None
    return key


def default_group_by(swept: list[str]) -> list[str]:
    """Every swept key but `seed` (the repeats)."""
    return [key for key in swept if key != "seed"]


def validate_sweep(sweep: DictConfig, cfg: DictConfig, swept: list[str]) -> list[str]:
    """Checks `sweep.*` against the sweep; returns the keys its groups are made by.

    Args:
        sweep: the `sweep` section (`SweepConfig`).
        cfg: the whole composed config: a key to group by may name any of its keys.
        swept: the keys the sweep varies, in the order they were given.

    Raises:
        ConfigError: naming `sweep.group_by`, `sweep.metric` or `sweep.direction`.
    """
    if sweep.direction not in DIRECTIONS:
        raise ConfigError("sweep.direction", sweep.direction, "one of " + ", ".join(DIRECTIONS))
    keys = default_group_by(swept) if sweep.group_by is None else list(sweep.group_by)
    for key in keys:
        if not isinstance(key, str) or group_key_path(cfg, key) is None:
            raise ConfigError("sweep.group_by", list(keys), f"keys of the config, e.g. model.cell or task "
                              f"({key!r} is not one)")
    tasks_apart = any(k in ("task", "task.name") for k in keys)
    if any(k in ("task", "task.name") for k in swept) and not tasks_apart:
        raise ConfigError("sweep.group_by", keys, "keys that keep the swept tasks apart: add task "
                          "(a mean over two tasks' losses means nothing)")
    metric = sweep.metric
    if metric is None:
        return keys
    if not isinstance(metric, str) or not known_metric(metric):
        raise ConfigError("sweep.metric", metric, "a final metric of the runs: one of "
                          + ", ".join(COMPARED_METRICS) + ", or a state analysis such as layer_0.forget_mean")
    trains = cfg.task.name != "none" or any(k.startswith("task") for k in swept)
    if metric in TRAINING_METRICS and not trains:
        raise ConfigError("sweep.metric", metric, "a metric the sweep's runs record: it needs training "
                          "(a task other than none)")
    timed = cfg.run.repeat > 0 or "run.repeat" in swept
    if metric in TIMED_METRICS and not timed:
        raise ConfigError("sweep.metric", metric, "a metric the sweep's runs record: it needs run.repeat > 0")
    return keys
