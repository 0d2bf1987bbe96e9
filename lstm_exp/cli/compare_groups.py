"""`compare --group-by KEY[,KEY]`: any runs of a store in groups, with intervals and a verdict.

    python -m lstm_exp.compare --group-by model.cell --filter "params.task.name = 'adding'"

The same table and sentences a sweep prints at its end, for whatever runs the filter selects (not
only one sweep's; sweep parents left out). The store is opened read-only, as every other `compare`.
"""

from lstm_exp.errors import ConfigError
from lstm_exp.jobs.group_text import format_conclusions
from lstm_exp.record.groups import Conclusions, conclude, recorded

DIRECTIONS = ("minimize", "maximize")


def group_keys(text: str) -> list[str]:
    """`model.cell,task` -> ["model.cell", "task"]; an empty key is refused."""
    keys = [key.strip() for key in text.split(",")]
    if not all(keys):
        raise ConfigError("--group-by", text, "config keys separated by commas, e.g. model.cell or "
                          "model.cell,task.name")
    return keys


def grouped_runs(runs: list, experiment: str, filter_text: str, keys: list[str], metric: str | None,
                 direction: str) -> Conclusions:
    """Runs a filter selected (MLflow's), grouped; a filter that matched none is refused."""
    if not runs:
        raise ConfigError("--filter", filter_text, f"a filter that matches runs of experiment "
                          f"{experiment!r} (none match)")
    # search() lists the newest first; groups appear in the order their first run was recorded.
    return conclude([recorded(run) for run in reversed(runs)], keys, metric, direction)


def compare_groups(runs: list, args) -> str:
    """What `compare --group-by` prints for the runs `compare`'s search found."""
    found = grouped_runs(runs, args.experiment, args.filter, group_keys(args.group_by), args.metric,
                         args.direction)
    return format_conclusions(found)
