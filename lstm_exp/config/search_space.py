"""The search space of `-m hydra/sweeper=search`, written in Hydra's override grammar.

Users write a search as they write a grid sweep, on the command line or in `hydra.sweeper.params`:

    'model.units=choice([32],[64],[32,32])'  ->  categorical over the three override strings
    model.cell=lstm,gru                       ->  categorical (a plain list is a choice)
    'task.learning_rate=tag(log, interval(1e-4, 1e-1))'  ->  float, log-uniform
    'task.epochs=tag(int, interval(2, 6))'    ->  int (Hydra reads an interval's bounds as floats)
    'task.batch_size=range(8, 33, 8)'         ->  int 8, 16, 24, 32

A categorical choice is kept as its override text (`[32,32]`, `lstm`): Optuna's categorical values must
be scalars, and the text is exactly what the job's override needs. Everything else on the command line is
a fixed override every trial gets. Parsed with Hydra's public `OverridesParser`; each refusal is a
`ConfigError` naming the key, the value and what is allowed (exit 2), before any trial starts.
"""

import math

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from lstm_exp.errors import ConfigError


def parse_search(parser: OverridesParser, arguments: list[str], cfg: DictConfig
                 ) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Splits the sweep's overrides into the search space and the fixed overrides.

    Args:
        parser: Hydra's parser (`OverridesParser.create(config_loader=...)`).
        arguments: `hydra.sweeper.params` as `key=value` strings, then the command line's.
        cfg: the composed config: every searched key must be one of its keys or config groups.

    Returns:
        ({key: distribution}, fixed overrides as written); a later override of a key replaces an earlier.

    Raises:
        ConfigError: an unknown key, an empty choice, an interval with low > high, a log scale with a
            non-positive bound, a sweep kind a search cannot sample (glob).
    """
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for argument in arguments:
        key = argument.split("=", 1)[0]
        try:
            override = parser.parse_override(argument)
        except Exception as error:  # noqa: BLE001 - Hydra's parse errors name neither key nor value
            cause = error.__cause__ or error
            raise ConfigError(key, argument.split("=", 1)[-1],
                              f"a value or search space in Hydra's override grammar ({cause})") from None
        if override.is_hydra_override() or not override.is_sweep_override():
            fixed[override.get_key_element()] = argument
            space.pop(override.get_key_element(), None)
            continue
        key = override.get_key_element()
        text = argument.split("=", 1)[1]
        _check_key(cfg, key, text)
        space[key] = _distribution(key, override, text)
        fixed.pop(key, None)
    return space, list(fixed.values())


def _check_key(cfg: DictConfig, key: str, value: str) -> None:
    if key.startswith(("+", "~")):
        raise ConfigError(key, value, "a search over keys of the config (adding or deleting keys is "
                          "not searched)")
    absent = object()
    try:
        found = OmegaConf.select(cfg, key, default=absent, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - OmegaConf raises several kinds for a malformed key
        found = absent
    if found is absent or key.startswith(("hydra.", "sweep.", "tracking.")):
        raise ConfigError(key, value, "a key of the config that changes what a trial computes, "
                          "e.g. model.units, model.cell, task.learning_rate")


def _distribution(key: str, override, text: str) -> BaseDistribution:
    """The Optuna distribution of one sweep override (`text`: its value as written)."""
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        choices = list(override.sweep_string_iterator())
        if not choices:
            raise ConfigError(key, text, "a choice of at least one value")
        return CategoricalDistribution(list(dict.fromkeys(choices)))
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(key, text, "a range with at least one value (start < stop for a positive step)")
        if all(isinstance(v, int) for v in values) and sweep.step > 0:
            return IntDistribution(values[0], values[-1], step=int(sweep.step))
        return CategoricalDistribution(list(dict.fromkeys(override.sweep_string_iterator())))
    if isinstance(sweep, IntervalSweep):
        low, high, log = sweep.start, sweep.end, "log" in sweep.tags
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ConfigError(key, text, "an interval(low, high) with finite bounds and low <= high")
        if log and low <= 0:
            raise ConfigError(key, text, "positive bounds for a log scale (tag(log, interval(low, high)) "
                              "with 0 < low <= high)")
        if "int" in sweep.tags:
            if low != int(low) or high != int(high):
                raise ConfigError(key, text, "whole-number bounds for tag(int, interval(...))")
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise ConfigError(key, text, "choice(...), a,b, range(...) or [tag(log|int, ...)] interval(...) "
                      "(a search cannot sample glob(...))")


def trial_override(key: str, value: object) -> str:
    """The override that gives a trial its sampled `value` (categorical values are override text)."""
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"
