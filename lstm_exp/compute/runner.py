"""Executes one experiment: inputs -> weights -> Keras stack -> arrays, checked by the NumPy reference.

No Hydra and no MLflow here: `execute(cfg)` is a pure function of the config, used by the CLI, the
notebook API and `rerun`.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from omegaconf import DictConfig

from lstm_exp.compute.engines import build_forward, choose_engine, engine_build, forward_flops, time_forward
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.inputs import InputData, check_lengths, initial_states, load_sequences, planned_shape
from lstm_exp.compute.reference import max_abs_err, reference_forward
from lstm_exp.compute.tasks import held_out
from lstm_exp.compute.tf_runtime import load_tensorflow, quiet_native_stderr
from lstm_exp.compute.training import TrainResult, train  # TensorFlow is imported only when it trains
from lstm_exp.compute.weights import load_weights
from lstm_exp.config.task_memory import check_training_memory
from lstm_exp.config.task_validate import validate_task
from lstm_exp.config.validate import (
    ModelSpec,
    estimate_bytes,
    expected_shapes,
    validate_input_settings,
    validate_model,
    validate_run_settings,
    validate_tracking,
)
from lstm_exp.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a run needs before TensorFlow is involved."""

    spec: ModelSpec
    data: InputData
    weights: dict[str, np.ndarray]
    expected_shapes: dict[str, tuple[int, ...]]
    engine: str  # keras | fused | native, `model.implementation` resolved for this input


@dataclass
class Result:
    """What one run produced; `arrays` follows the names in DESIGN.md."""

    arrays: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    expected_shapes: dict[str, tuple[int, ...]]
    reference_max_abs_err: float
    spec: ModelSpec
    engine: str  # keras | fused | native: what ran
    timings: dict[str, float] = field(default_factory=dict)  # seconds, and forward_ms when timed
    training: TrainResult | None = None  # with a task: losses per epoch, baseline, trained weights
    engine_build: str = ""  # native's vector unit (avx512, avx2, avx, portable); "" for the others

    @property
    def engine_label(self) -> str:
        """What ran, as the `lstm_exp.engine` tag and the console name it: `native (avx512)`, `fused`."""
        return f"{self.engine} ({self.engine_build})" if self.engine_build else self.engine


def _check_memory(cfg: DictConfig, spec: ModelSpec, shape: tuple[int, int, int], one_step: bool):
    batch, steps, features = shape
    needed = estimate_bytes(expected_shapes(spec, batch, steps, features, one_step), spec, features)
    limit = cfg.run.max_memory_gb * 2**30
    if needed > limit:
        raise ConfigError(
            "input",
            f"(B={batch}, T={steps}, F={features}) with model.units={list(spec.units)}",
            f"a size whose arrays fit in run.max_memory_gb={cfg.run.max_memory_gb:g}; "
            f"this one needs about {needed / 2**30:.1f} GB",
        )


def prepare(cfg: DictConfig) -> Prepared:
    """Validates the config and builds the NumPy inputs and weights (no TensorFlow)."""
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= 2**32 - 1:
        raise ConfigError("seed", cfg.seed, "an integer from 0 to 2**32-1 (NumPy's and Keras's seed range)")
    spec = validate_model(cfg.model)
    validate_input_settings(cfg.input)
    validate_run_settings(cfg.run)
    validate_tracking(cfg.tracking)
    validate_task(cfg.task, spec)
    if cfg.task.name != "none":  # refuse before any data is drawn
        check_training_memory(cfg.task, spec, cfg.run.max_memory_gb)
    planned = planned_shape(cfg.input) if cfg.task.name == "none" else None
    if planned:  # refuse before allocating
        _check_memory(cfg, spec, planned, one_step=False)
    budget = int(cfg.run.max_memory_gb * 2**30)  # bytes a file's arrays may take, checked before reading
    if cfg.task.name == "none":
        x, one_step = load_sequences(cfg.input, cfg.seed, budget)
    else:  # task (issue 12): after training, the forward pass and analyses run on held-out sequences
        if cfg.input.lengths is not None:
            raise ConfigError("input.lengths", cfg.input.lengths, f"null with task={cfg.task.name}")
        x, one_step = held_out(cfg.task, cfg.seed)[0], False
    batch, steps, features = x.shape
    _check_memory(cfg, spec, x.shape, one_step)
    lengths = check_lengths(cfg.input.lengths, batch, steps)
    state = initial_states(cfg.input.initial_state, spec, batch, cfg.seed, budget)
    if cfg.model.weights.path:
        weights = load_weights(cfg.model.weights, spec, features, budget)
    else:
        weights = initial_weights(spec, features, cfg.seed)
    shapes = expected_shapes(spec, batch, steps, features, one_step)
    engine = choose_engine(spec, x.shape)
    return Prepared(spec, InputData(x, one_step, lengths, state), weights, shapes, engine)


def execute(
    cfg: DictConfig,
    prepared: Prepared | None = None,
    on_epoch: Callable[[int, float, float, float], None] | None = None,
) -> Result:
    """Runs the experiment described by `cfg`.

    Args:
        cfg: a composed config (see `lstm_exp.config.compose`).
        prepared: the output of `prepare(cfg)`, when the caller already validated.
        on_epoch: with a task, called after each training epoch as
            on_epoch(epoch, train_loss, val_loss, seconds) (see `training.train`).

    Returns:
        A `Result` whose arrays have exactly the expected shapes.
    """
    timings = {}
    start = time.perf_counter()
    prepared = prepared or prepare(cfg)
    spec, data = prepared.spec, prepared.data
    timings["prepare_s"] = time.perf_counter() - start

    training = None
    if cfg.task.name != "none":  # task (issue 12): train first; the forward pass runs the trained stack
        with quiet_native_stderr():  # TensorFlow's start-up notices; the epochs' progress stays live
            load_tensorflow(cfg.seed)
        training = train(cfg.task, spec, prepared.weights, cfg.seed, on_epoch)
        prepared = replace(prepared, weights=training.weights)
        timings["train_s"] = training.train_s

    with quiet_native_stderr():
        start = time.perf_counter()
        load_tensorflow(cfg.seed)
        engine = prepared.engine
        run_once = build_forward(engine, spec, prepared.weights, data, cfg.run.repeat)
        engine = run_once.engine  # what runs: native falls back to fused where it cannot build
        build = engine_build(engine)
        timings["build_s"] = time.perf_counter() - start

        start = time.perf_counter()
        arrays = {name: np.asarray(value) for name, value in run_once().items()}
        timings["forward_s"] = time.perf_counter() - start
        if cfg.run.repeat > 0:
            timings["forward_ms"] = time_forward(run_once, cfg.run.repeat)
            timings["forward_gflops"] = forward_flops(spec, data.x.shape) / (timings["forward_ms"] * 1e6)

    start = time.perf_counter()
    expected = reference_forward(spec, prepared.weights, data.x, data.lengths, data.initial_state)
    error = max_abs_err(arrays, expected)
    timings["reference_s"] = time.perf_counter() - start

    if cfg.run.inject_fault == "pause":
        _wait_for_release()
    if cfg.run.inject_fault == "forward":
        raise RuntimeError("fault injected after the forward pass (run.inject_fault=forward)")
    arrays["input"] = data.x[:, 0] if data.one_step else data.x
    if data.one_step:
        arrays["output"] = arrays["output"][:, 0]
    _check_shapes(arrays, prepared.expected_shapes)
    if not math.isfinite(error):
        error = float("inf")
    return Result(arrays, prepared.weights, prepared.expected_shapes, error, spec, engine, timings, training,
                  build)


def _check_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    # Expected shapes come from the config alone (dry_run prints them); a difference is a bug here.
    actual = {name: tuple(a.shape) for name, a in arrays.items()}
    if actual != expected:
        diff = {n: (expected.get(n), actual.get(n)) for n in set(actual) | set(expected)
                if expected.get(n) != actual.get(n)}
        raise RuntimeError(f"array shapes differ from those the config implies (expected, actual): {diff}")


RELEASE_FILE = "lstm_exp_release"  # tests only: run.inject_fault=pause waits for it in the launch dir
RELEASE_WAIT_S = 300


def _wait_for_release() -> None:
    """Tests only: holds the job, its run open, until the test has broken something (a bounded wait)."""
    from pathlib import Path

    deadline = time.monotonic() + RELEASE_WAIT_S
    while not Path(RELEASE_FILE).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"run.inject_fault=pause: no {RELEASE_FILE} within {RELEASE_WAIT_S} s")
        time.sleep(0.1)
