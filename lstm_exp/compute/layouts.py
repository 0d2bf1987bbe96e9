"""Weight layouts: the names, shapes and gate orders of keras, TF1 and PyTorch, and the maps between them.

Every engine runs on the keras layout; `tf1` and `torch` files are converted on import and can be
written back out with `to_layout`. Per layer k and direction d (`fw/`, `bw/` when bidirectional):

    keras   layer_{k}/{d}kernel (F, 4C)       recurrent_kernel (H, 4C)   bias (4C,)   gates i,f,c,o
            layer_{k}/{d}peephole_{i,f,o} (C,)   layer_{k}/{d}projection (C, P)
    tf1     {d}cell_{k}/kernel [F + H, 4C] (input rows, then recurrent rows)   gates i,j,f,o
            {d}cell_{k}/bias (4C,), without the forget bias TF1 adds at run time
            {d}cell_{k}/w_{i,f,o}_diag (C,)   {d}cell_{k}/projection/kernel (C, P)
    torch   weight_ih_l{k}{s} (4C, F)   weight_hh_l{k}{s} (4C, H)   bias_ih_l{k}{s} + bias_hh_l{k}{s}
            weight_hr_l{k}{s} (P, C); gates i,f,g,o; s = "_reverse" for the bw direction

H is P with a projection, else C.
"""

import logging
import re

import numpy as np

from lstm_exp.compute.initializers import GATE_COUNT
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec
from lstm_exp.errors import ConfigError

log = logging.getLogger(__name__)
PEEPHOLES = ("i", "f", "o")
# Gate blocks of one layout in the other's order. Swapping the middle two maps tf1's i,j,f,o to
# keras's i,f,c,o and back, so one permutation serves both directions.
_SWAP_JF = (0, 2, 1, 3)
_CHECKPOINT_LEAVES = ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag")


def expected_weight_shapes(spec: ModelSpec, features: int) -> dict[str, tuple[int, ...]]:
    """Every keras-layout weight name the model needs, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan_in = features
    for k, units in enumerate(spec.units):
        gates = GATE_COUNT[spec.cell] * units
        for d in spec.directions:
            pre = names.layer_prefix(k, d)
            shapes[pre + "kernel"] = (fan_in, gates)
            shapes[pre + "recurrent_kernel"] = (spec.hidden_size(k), gates)
            shapes[pre + "bias"] = (2, gates) if spec.cell == "gru" else (gates,)
            if spec.peepholes:
                shapes.update({f"{pre}peephole_{g}": (units,) for g in PEEPHOLES})
            if spec.proj_size:
                shapes[pre + "projection"] = (units, spec.proj_size)
        fan_in = spec.output_size(k)
    return shapes


def _slots(spec: ModelSpec):
    """(k, d, keras prefix, tf1 prefix, torch suffix) for every layer and direction."""
    for k in range(len(spec.units)):
        for d in spec.directions:
            tf1 = f"{d}/cell_{k}/" if d else f"cell_{k}/"
            yield k, d, names.layer_prefix(k, d), tf1, f"_l{k}" + ("_reverse" if d == names.BACKWARD else "")


def _swap_gates(array: np.ndarray) -> np.ndarray:
    blocks = np.split(array, 4, axis=-1)
    return np.concatenate([blocks[n] for n in _SWAP_JF], axis=-1)


def check_convertible(spec: ModelSpec, layout: str, key: str) -> None:
    """Refuses a layout that cannot hold this model's weights."""
    if layout in ("tf1", "torch") and spec.cell != "lstm":
        raise ConfigError(key, layout, f"keras or auto for model.cell={spec.cell} (tf1/torch hold LSTMs)")
    if layout == "torch" and spec.peepholes:
        raise ConfigError(key, layout, "keras, tf1 or auto with model.peepholes=true (nn.LSTM has none)")


def layout_shapes(spec: ModelSpec, features: int, layout: str) -> dict[str, tuple[int, ...]]:
    """Every weight name the model needs in `layout`, with its shape, in the layout's own order."""
    keras = expected_weight_shapes(spec, features)
    if layout == "keras":
        return keras
    shapes: dict[str, tuple[int, ...]] = {}
    for _, _, pre, tf1, sfx in _slots(spec):
        (fan_in, gates), hidden = keras[pre + "kernel"], keras[pre + "recurrent_kernel"][0]
        units = gates // 4
        if layout == "tf1":
            shapes[tf1 + "kernel"] = (fan_in + hidden, gates)
            shapes[tf1 + "bias"] = (gates,)
            shapes.update({f"{tf1}w_{g}_diag": (units,) for g in PEEPHOLES if spec.peepholes})
            if spec.proj_size:
                shapes[tf1 + "projection/kernel"] = (units, spec.proj_size)
        else:
            shapes.update({"weight_ih" + sfx: (gates, fan_in), "weight_hh" + sfx: (gates, hidden)})
            shapes.update({"bias_ih" + sfx: (gates,), "bias_hh" + sfx: (gates,)})
            if spec.proj_size:
                shapes["weight_hr" + sfx] = (spec.proj_size, units)
    return shapes


def detect_layout(names) -> str | None:
    """The layout a set of array names is written in, or None when none fits."""
    names = list(names)
    if any(n.startswith("layer_") for n in names):
        return "keras"
    if any(re.match(r"weight_ih_l\d+", n) for n in names):
        return "torch"
    if any(re.match(r"((fw|bw)/)?cell_\d+/", n) for n in names):
        return "tf1"
    return None


def to_keras(weights: dict[str, np.ndarray], spec: ModelSpec, layout: str, forget_bias: float = 1.0):
    """Converts checked `layout` arrays to the keras layout (float32).

    Args:
        weights: arrays named as `layout_shapes(spec, features, layout)` says, shapes already checked.
        spec: the validated model.
        layout: `keras`, `tf1` or `torch`.
        forget_bias: TF1's run-time forget bias, added to the forget slice of a tf1 bias.
    """
    if layout == "keras":
        return {n: np.asarray(v, np.float32) for n, v in weights.items()}
    out: dict[str, np.ndarray] = {}
    for k, _, pre, tf1, sfx in _slots(spec):
        units, hidden = spec.units[k], spec.hidden_size(k)
        if layout == "tf1":
            kernel = weights[tf1 + "kernel"]  # (F + H, 4C): the input's rows first
            out[pre + "kernel"] = _swap_gates(kernel[: kernel.shape[0] - hidden])
            out[pre + "recurrent_kernel"] = _swap_gates(kernel[kernel.shape[0] - hidden :])
            bias = _swap_gates(weights[tf1 + "bias"].astype(np.float64))
            bias[units : 2 * units] += forget_bias  # float64: one rounding, to the nearest float32
            out[pre + "bias"] = bias
            for g in PEEPHOLES if spec.peepholes else ():
                out[f"{pre}peephole_{g}"] = weights[f"{tf1}w_{g}_diag"]
            if spec.proj_size:
                out[pre + "projection"] = weights[tf1 + "projection/kernel"]
        else:
            out[pre + "kernel"] = weights["weight_ih" + sfx].T
            out[pre + "recurrent_kernel"] = weights["weight_hh" + sfx].T
            out[pre + "bias"] = weights["bias_ih" + sfx].astype(np.float64) + weights["bias_hh" + sfx]
            if spec.proj_size:
                out[pre + "projection"] = weights["weight_hr" + sfx].T
    return {n: np.ascontiguousarray(v, np.float32) for n, v in out.items()}


def to_layout(
    weights_keras: dict[str, np.ndarray], spec: ModelSpec, layout: str, forget_bias: float = 1.0
) -> dict[str, np.ndarray]:
    """Writes keras-layout weights in `layout`; the inverse of `to_keras`.

    A tf1 bias has `forget_bias` taken off its forget slice, since TF1 adds it back at run time;
    torch gets the whole bias in `bias_ih` and zeros in `bias_hh`. Re-importing gives the same
    arrays, bit for bit, whenever `bias - forget_bias` is a float32 (always for Keras's 0/1 biases);
    otherwise that one subtraction rounds, to within a float32 epsilon.

    Example:
        >>> to_layout(weights, ModelSpec("lstm", (4, 5)), "torch")["weight_ih_l0"].shape
        (16, 6)
    """
    check_convertible(spec, layout, "layout")
    if layout == "keras":
        return {n: np.asarray(v, np.float32) for n, v in weights_keras.items()}
    if layout == "torch" and (spec.cell_clip or spec.proj_clip):
        log.warning("nn.LSTM has no cell_clip or proj_clip: a torch model will compute without them")
    out: dict[str, np.ndarray] = {}
    for k, _, pre, tf1, sfx in _slots(spec):
        units = spec.units[k]
        if layout == "tf1":
            rows = [weights_keras[pre + "kernel"], weights_keras[pre + "recurrent_kernel"]]
            out[tf1 + "kernel"] = _swap_gates(np.concatenate(rows, axis=0))
            bias = weights_keras[pre + "bias"].astype(np.float64)
            bias[units : 2 * units] -= forget_bias
            out[tf1 + "bias"] = _swap_gates(bias)
            for g in PEEPHOLES if spec.peepholes else ():
                out[f"{tf1}w_{g}_diag"] = weights_keras[f"{pre}peephole_{g}"]
            if spec.proj_size:
                out[tf1 + "projection/kernel"] = weights_keras[pre + "projection"]
        else:
            out["weight_ih" + sfx] = weights_keras[pre + "kernel"].T
            out["weight_hh" + sfx] = weights_keras[pre + "recurrent_kernel"].T
            out["bias_ih" + sfx] = weights_keras[pre + "bias"]
            out["bias_hh" + sfx] = np.zeros_like(weights_keras[pre + "bias"])
            if spec.proj_size:
                out["weight_hr" + sfx] = weights_keras[pre + "projection"].T
    return {n: np.ascontiguousarray(v, np.float32) for n, v in out.items()}


def checkpoint_names(variables) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Maps TF1 checkpoint variables to tf1-layout names.

    `rnn/multi_rnn_cell/cell_1/lstm_cell/kernel` -> `cell_1/kernel`,
    `LSTM_sample1/basic_lstm_cell/bias` -> `cell_0/bias`,
    `bidirectional_rnn/fw/lstm_cell/w_i_diag` -> `fw/cell_0/w_i_diag`. Variables of other layers
    (no `lstm` or `cell` in the owning scope) and optimizer slots are left out.

    Returns:
        ({tf1 name: checkpoint variable}, [(tf1 name, variable, other variable)] for names that two
        variables claim, i.e. a checkpoint holding more than one LSTM).
    """
    found: dict[str, str] = {}
    clashes = []
    for var in sorted(variables):
        parts = var.split("/")
        if len(parts) >= 3 and parts[-2:] == ["projection", "kernel"]:
            leaf, owner = "projection/kernel", parts[-3]
        elif len(parts) >= 2 and parts[-1] in _CHECKPOINT_LEAVES:
            leaf, owner = parts[-1], parts[-2]
        else:
            continue
        if "lstm" not in owner.lower() and "cell" not in owner.lower():
            continue
        k = next((p[5:] for p in parts if re.fullmatch(r"cell_\d+", p)), "0")
        d = next((p + "/" for p in parts if p in ("fw", "bw")), "")
        name = f"{d}cell_{k}/{leaf}"
        if name in found:
            clashes.append((name, found[name], var))
        found[name] = var
    return found, clashes
