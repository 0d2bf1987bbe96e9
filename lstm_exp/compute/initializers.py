"""Fresh weights in the keras layout, drawn with NumPy from the run's seed.

The distributions are Keras's defaults (glorot-uniform kernels, orthogonal recurrent kernels, zero
biases with a unit forget bias). Drawing them in NumPy rather than through Keras initializers makes
them bit-identical across processes, launchers and TensorFlow versions, and lets every engine (stock
Keras, the custom cell, the fused stack, the NumPy reference) start from one dict.
"""

import numpy as np

from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec

GATE_COUNT = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def _glorot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    fan_in, fan_out = (shape[0], shape[-1]) if len(shape) > 1 else (shape[0], shape[0])
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    flat = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # makes the decomposition unique, as Keras's Orthogonal does
    return q if rows >= cols else q.T


def initial_weights(spec: ModelSpec, features: int, seed: int) -> dict[str, np.ndarray]:
    """Draws every layer's weights.

    Args:
        spec: the validated model.
        features: F, the input's last dimension.
        seed: the run's seed; each layer and direction draws from its own stream of it.

    Returns:
        float32 arrays named `layer_{k}/[fw/|bw/]{kernel,recurrent_kernel,bias,...}`.
    """
    weights: dict[str, np.ndarray] = {}
    fan_in = features
    for k, units in enumerate(spec.units):
        gates = GATE_COUNT[spec.cell] * units
        hidden = spec.hidden_size(k)
        for n, d in enumerate(spec.directions):
            rng = np.random.default_rng([seed, k, n])
            pre = names.layer_prefix(k, d)
            weights[pre + "kernel"] = _glorot(rng, (fan_in, gates))
            weights[pre + "recurrent_kernel"] = _orthogonal(rng, hidden, gates)
            if spec.cell == "lstm":
                bias = np.zeros(gates)
                bias[units : 2 * units] = 1.0  # Keras's unit_forget_bias
            elif spec.cell == "gru":
                bias = np.zeros((2, gates))  # reset_after: input and recurrent biases
            else:
                bias = np.zeros(gates)
            weights[pre + "bias"] = bias
            if spec.peepholes:
                for gate in ("i", "f", "o"):
                    weights[f"{pre}peephole_{gate}"] = _glorot(rng, (units,))
            if spec.proj_size:
                weights[pre + "projection"] = _glorot(rng, (units, spec.proj_size))
        fan_in = spec.output_size(k)
    return {name: value.astype(np.float32) for name, value in weights.items()}
