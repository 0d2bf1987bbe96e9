"""Which engine computes the training step's forward and backward, and why.

- `keras` (and `fused`, which has no training path of its own): the stock Keras layers.
- `native`: the native op with its backward through time (`native/trainable.py`), on the stock
  layers' own variables; where the op cannot be built or loaded, stock Keras, with one warning
  naming the reason.
- `auto`: plain LSTM and GRU stacks time both on the first use per CPU, cell and shape class and
  keep the choice (`engine_choice.py`); other models train with stock Keras.

Plain GRU stacks (`keras.layers.GRU`, reset_after=True) train on the native GRU ops
(`native/gru_trainable.py`) exactly as LSTM stacks do on the LSTM ops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from lstm_exp.config.specs import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingEngine:
    """`label` (``keras``, ``native (avx512)``), `why` it runs, and `compute`: x -> the stack's arrays."""

    label: str
    why: str
    compute: Callable


def training_engine(spec: ModelSpec, stack, shape: tuple[int, int, int],
                    step_on: Callable[[Callable], Callable[[], object]]) -> TrainingEngine:
    """Resolves `spec.implementation` for training.

    Args:
        spec: the validated model.
        stack: the trainer's `KerasStack` (its variables are trained whichever engine computes).
        shape: (B, T, F) of a training batch: `auto`'s shape class.
        step_on: compute -> a call running one forward and backward (no optimizer step) and
            waiting for it: what `auto` times.
    """
    keras = TrainingEngine("keras", f"model.implementation={spec.implementation}", stack)
    if spec.implementation in ("keras", "fused"):
        return keras
    if not spec.native_stack:
        return TrainingEngine("keras", "the native op trains plain LSTM and GRU stacks only", stack)
    from lstm_exp.compute.native.build import NativeBuildError
    from lstm_exp.compute.native.engine import load
    from lstm_exp.compute.native.trainable import NativeTrainableStack

    try:
        native = NativeTrainableStack(stack.layers.values(), cell=spec.cell)
    except NativeBuildError as err:
        log.warning("native %s training unavailable, training with stock Keras instead: %s",
                    spec.cell.upper(), err)
        return TrainingEngine("keras", f"native unavailable: {err}", stack)
    label = f"native ({native.build})"
    if spec.implementation == "native":
        return TrainingEngine(label, "model.implementation=native", native)
    from lstm_exp.compute.engine_choice import measured_choice, shape_class

    key = shape_class("training", shape, spec.units, spec.cell)
    choice = measured_choice(load().build.path.parent, key,
                             {"keras": step_on(stack), "native": step_on(native)})
    if choice.engine == "native":
        return TrainingEngine(label, f"auto, {choice.why}", native)
    return TrainingEngine("keras", f"auto, {choice.why}", stack)
