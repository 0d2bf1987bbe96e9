"""The jobs of a `-m` sweep: the grid of its sweep overrides, cut into the launcher's batches.

Hydra's basic-sweeper semantics: `a=1,2 b=x,y` gives the four jobs `[a=1 b=x] [a=1 b=y] [a=2 b=x]
[a=2 b=y]` (the first key varies slowest); `range(0,3)`, `choice(x,y)` and `glob(*)` (the options of a
config group) expand the same way; a plain override goes to every job. `hydra.sweeper.params` come
first, and an override on the command line replaces theirs for the same key, in their place.

Example:
    >>> parser = OverridesParser.create()
    >>> job_batches(parser.parse_overrides(["seed=0,1", "model=stacked"]), max_batch_size=None)
    [[['seed=0', 'model=stacked'], ['seed=1', 'model=stacked']]]
"""

import itertools
from collections.abc import Mapping

from hydra.core.override_parser.types import Override

from lstm_exp.errors import ConfigError


def params_overrides(params: Mapping | None) -> list[str]:
    """`hydra.sweeper.params` ({key: "a,b"}) as command-line overrides (["key=a,b"])."""
    return [f"{key}={value}" for key, value in (params or {}).items()]


def job_batches(overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:
    """Every job's overrides, in batches of at most `max_batch_size` jobs (None: one batch).

    Args:
        overrides: parsed by `OverridesParser`; a `glob()` needs the parser's config loader.
        max_batch_size: `hydra.sweeper.max_batch_size`, a positive integer or None.
    """
    _check_batch_size(max_batch_size)
    choices: dict[str, list[str]] = {}  # a later override of a key replaces the earlier one
    for override in overrides:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:  # interval(): a continuous range has no grid
            raise ConfigError(key, override.get_value_string(),
                              "a list (a,b), range(), choice() or glob() in a grid sweep; "
                              "interval() needs a search sweeper")
    jobs = [list(job) for job in itertools.product(*choices.values())]
    size = max_batch_size or max(len(jobs), 1)
    return [jobs[start : start + size] for start in range(0, len(jobs), size)]


def _check_batch_size(max_batch_size: object) -> None:
    if max_batch_size is None:
        return
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ConfigError("hydra.sweeper.max_batch_size", max_batch_size,
                          "a positive integer, or null for all jobs in one batch")
