"""`analysis.*`: the fixed-point analysis a run may add (`analysis.fixed_points=true`), checked at the edge.

    analysis.fixed_points   bool (false): after the forward pass, find the fixed points of the (trained)
                            LSTM stack and log them with the run (see `compute/fixed_points.py`)
    analysis.input          null (zeros) or F numbers: the input held constant while stepping

Also the one check that `python -m lstm_exp.dynamics` shares: the map of `compute/lstm_map.py` needs a
plain LSTM stack.
"""

import math

from omegaconf import DictConfig

from lstm_exp.config.specs import AnalysisSpec, ModelSpec
from lstm_exp.errors import ConfigError

FLOAT32_MAX = 3.4028234663852886e38
N_INITS = 256  # initial states of the search (`compute.fixed_points.FixedPointOptions.n_inits`)
SEARCH_CHUNK = 1024  # initial states the search holds at once


def check_plain_lstm(spec: ModelSpec, key: str, received: object) -> None:
    """Refuses a model whose state has no (h, c) of the plain LSTM equations (one line, exit 2).

    GRU and SimpleRNN layers have no cell state c; peepholes, clipping and projections change the
    equations (and a clip makes F non-differentiable); a bidirectional layer is not a map in time.
    """
    if spec.cell != "lstm":
        raise ConfigError(key, received, f"a run of an LSTM stack (its cells are {spec.cell}: no cell "
                          "state c to find fixed points of)")
    if not spec.plain_lstm_stack:
        raise ConfigError(key, received, "a run of a unidirectional LSTM stack without peepholes, clipping "
                          "or projection (the fixed-point map follows the plain LSTM equations)")


def search_bytes(model: ModelSpec, n_inits: int) -> int:
    """What the search holds at its peak: about four (chunk, D, D) float64 arrays (the Jacobians, a
    trial's, dr/dx and the damped normal matrix), chunk = min(n_inits, SEARCH_CHUNK), D = 2 * sum(units)."""
    size = 2 * sum(model.units)
    return 4 * min(n_inits, SEARCH_CHUNK) * size * size * 8


def check_search_memory(model: ModelSpec, n_inits: int, budget_bytes: float, key: str,
                        received: object) -> None:
    """Refuses a search that would take more than `budget_bytes`, naming `key`."""
    needed = search_bytes(model, n_inits)
    if needed > budget_bytes:
        raise ConfigError(key, received, f"a search that fits in {budget_bytes / 2**30:g} GB: with a state "
                          f"of D={2 * sum(model.units)} values, {n_inits} initial states need about "
                          f"{needed / 2**30:.1f} GB (fewer initial states, or smaller layers)")


def validate_analysis(analysis: DictConfig, model: ModelSpec, max_memory_gb: float) -> AnalysisSpec:
    """Checks `analysis.*` against the model (the input's width waits for the input: `check_input_width`)."""
    values = None if analysis.input is None else tuple(analysis.input)
    if values is not None and not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in values):
        raise ConfigError("analysis.input", list(values), "null (zeros) or a list of finite numbers")
    if analysis.fixed_points:
        check_plain_lstm(model, "analysis.fixed_points", True)
        check_search_memory(model, N_INITS, max_memory_gb * 2**30, "analysis.fixed_points", True)
    return AnalysisSpec(bool(analysis.fixed_points), values)


def check_input_width(analysis: AnalysisSpec, features: int) -> None:
    """Refuses an `analysis.input` whose length is not the stack's input width F."""
    if analysis.fixed_points and analysis.input is not None and len(analysis.input) != features:
        raise ConfigError("analysis.input", list(analysis.input),
                          f"null (zeros) or {features} numbers, the run's input width F={features}")
