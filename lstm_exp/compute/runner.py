"""Executes one experiment: inputs -> weights -> Keras stack -> arrays, checked by the NumPy reference.

No Hydra and no MLflow here: `execute(experiment)` is a pure function of the parsed `Experiment`
(`config.experiment.parse`), used by the CLI, the notebook API and `rerun`.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from lstm_exp.compute.engines import build_forward, choose_engine, engine_build, forward_flops, time_forward
from lstm_exp.compute.forward_choice import auto_forward
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.inputs import InputData, check_lengths, initial_states, load_sequences
from lstm_exp.compute.reference import check_max_abs_err
from lstm_exp.compute.tasks import HELD_OUT, TaskData, held_out
from lstm_exp.compute.tf_runtime import load_tensorflow, quiet_native_stderr
from lstm_exp.compute.training import Checkpointing, TrainResult, train  # TensorFlow: only to train
from lstm_exp.compute.weights import load_weights
from lstm_exp.config.experiment import check_memory
from lstm_exp.config.specs import Experiment, ModelSpec
from lstm_exp.config.validate import expected_shapes

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a run needs before TensorFlow is involved."""

    spec: ModelSpec
    data: InputData
    weights: dict[str, np.ndarray]
    expected_shapes: dict[str, tuple[int, ...]]
    engine: str  # keras | fused | native | auto (measured when the engine is built), for this input
    task_data: TaskData | None = None  # task=file: the file's checked splits, read before training


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
    engine_why: str = ""  # with `auto`: what was measured or kept (`forward_choice.py`)

    @property
    def engine_label(self) -> str:
        """What ran, as the `lstm_exp.engine` tag and the console name it: `native (avx512)`, `fused`,
        with `auto` also why: `native (avx512) (auto, measured 75.2 ms vs keras 619.7 ms)`;
        after training also what trained and why: `...; training: keras (auto, measured ...)`."""
        label = f"{self.engine} ({self.engine_build})" if self.engine_build else self.engine
        if self.engine_why:
            label += f" ({self.engine_why})"
        if self.training is not None:
            label += f"; training: {self.training.engine} ({self.training.engine_why})"
        return label


def prepare(experiment: Experiment) -> Prepared:
    """Reads or draws the NumPy inputs and weights (no TensorFlow), checking what only files can tell."""
    budget = experiment.run.memory_budget  # bytes a file's arrays may take, checked before reading
    task_data, lengths = None, None
    if experiment.task is None:
        x, one_step = load_sequences(experiment.input, experiment.seed, budget)
    elif experiment.task.path is not None:  # task=file: the held-out rows lead its validation split
        from lstm_exp.compute.file_task import load_file_task

        task_data = load_file_task(experiment.task, experiment.model, experiment.seed, experiment.run)
        x, one_step = task_data.x_val[:HELD_OUT], False
        if task_data.lengths_val is not None:
            lengths = task_data.lengths_val[:HELD_OUT]
    else:  # after training, the forward pass and analyses run on held-out sequences of the task
        x, one_step = held_out(experiment.task, experiment.seed)[0], False
    batch, steps, features = x.shape
    check_memory(experiment.model, x.shape, one_step, experiment.run.max_memory_gb)
    spec = experiment.model
    if lengths is None:
        lengths = check_lengths(experiment.input.lengths, batch, steps)
    state = initial_states(experiment.input.initial_state, spec, batch, experiment.seed, budget)
    if experiment.weights.path:
        weights = load_weights(experiment.weights, spec, features, budget)
    else:
        weights = initial_weights(spec, features, experiment.seed)
    shapes = expected_shapes(spec, batch, steps, features, one_step)
    data = InputData(x, one_step, lengths, state)
    return Prepared(spec, data, weights, shapes, choose_engine(spec, x.shape), task_data)


def execute(
    experiment: Experiment,
    prepared: Prepared | None = None,
    on_epoch: Callable[[int, float, float, float], bool | None] | None = None,
    checkpointing: Checkpointing | None = None,
) -> Result:
    """Runs the experiment: trains first when it has a task, then the forward pass and its check.

    Args:
        experiment: the parsed config (`config.experiment.parse`).
        prepared: the output of `prepare(experiment)`, when the caller already prepared.
        on_epoch: with a task, called after each training epoch as
            on_epoch(epoch, train_loss, val_loss, seconds); True stops training (see `training.train`).
        checkpointing: with a task, where training starts and where its checkpoints go.

    Returns:
        A `Result` whose arrays have exactly the expected shapes.
    """
    start = time.perf_counter()
    prepared = prepared or prepare(experiment)
    timings = {"prepare_s": time.perf_counter() - start}
    training = None
    if experiment.task is not None:  # the forward pass runs the trained stack
        with quiet_native_stderr():  # TensorFlow's start-up notices; the epochs' progress stays live
            load_tensorflow(experiment.seed)
        training = train(experiment.task, prepared.spec, prepared.weights, experiment.seed, on_epoch,
                         prepared.task_data, checkpointing)
        prepared = replace(prepared, weights=training.weights)
        timings["train_s"] = training.train_s
    engine, why, arrays, forward_timings = _forward(prepared, experiment.seed, experiment.run.repeat)
    timings.update(forward_timings)
    start = time.perf_counter()
    data = prepared.data
    # A chunk of batch rows at a time: the check's float64 arrays never take more than its budget.
    error = check_max_abs_err(prepared.spec, prepared.weights, data.x, arrays, data.lengths,
                              data.initial_state)
    error = error if math.isfinite(error) else float("inf")
    timings["reference_s"] = time.perf_counter() - start
    arrays = _as_recorded(arrays, data)
    _check_shapes(arrays, prepared.expected_shapes)
    return Result(arrays, prepared.weights, prepared.expected_shapes, error, prepared.spec, engine, timings,
                  training, engine_build(engine), why)


def _forward(prepared: Prepared, seed: int, repeat: int) -> tuple[str, str, dict, dict[str, float]]:
    """Builds the engine and runs one pass, then `repeat` timed ones: (engine that ran, why `auto`
    chose it or "", arrays, timings)."""
    timings = {}
    with quiet_native_stderr():
        start = time.perf_counter()
        load_tensorflow(seed)
        # What runs: `native` falls back to fused where it cannot build; `auto` is measured (or kept).
        spec, data, why = prepared.spec, prepared.data, ""
        if prepared.engine == "auto":
            engine, why, run_once = auto_forward(spec, prepared.weights, data, repeat)
        else:
            engine, run_once = build_forward(prepared.engine, spec, prepared.weights, data, repeat)
        timings["build_s"] = time.perf_counter() - start
        start = time.perf_counter()
        arrays = {name: np.asarray(value) for name, value in run_once().items()}
        timings["forward_s"] = time.perf_counter() - start
        if repeat > 0:
            timings["forward_ms"] = time_forward(run_once, repeat)
            timings["forward_gflops"] = forward_flops(spec, data.x.shape) / (timings["forward_ms"] * 1e6)
    return engine, why, arrays, timings


def _as_recorded(arrays: dict[str, np.ndarray], data: InputData) -> dict[str, np.ndarray]:
    """The arrays as DESIGN.md names them: with the input, and a one-step run's output as (B, H)."""
    arrays = {**arrays, "input": data.x[:, 0] if data.one_step else data.x}
    if data.one_step:
        arrays["output"] = arrays["output"][:, 0]
    return arrays


def _check_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    # Expected shapes come from the config alone (dry_run prints them); a difference is a bug here.
    actual = {name: tuple(a.shape) for name, a in arrays.items()}
    if actual != expected:
        diff = {n: (expected.get(n), actual.get(n)) for n in set(actual) | set(expected)
                if expected.get(n) != actual.get(n)}
        raise RuntimeError(f"array shapes differ from those the config implies (expected, actual): {diff}")
