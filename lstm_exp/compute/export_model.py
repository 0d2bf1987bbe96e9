"""The run's stack as one saved Keras model, x (B, T, F) -> output (B, T, H), for `tracking.log_model`.

The runner's `KerasStack` also reports states and gates, and takes lengths and initial states; the
exported model is what a user predicts with: new sequences in, the last layer's output out, from zero
initial states with every step valid. It is a plain functional model of stock Keras layers (and the
TF1-style cell, registered as `lstm_exp>TF1LSTMCell`), so `keras.saving.load_model` rebuilds it once
`lstm_exp.compute.cells` is imported.
"""

from pathlib import Path

import keras
import numpy as np

from lstm_exp.compute.keras_stack import make_layer
from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec


def _assign(layer: keras.layers.Layer, weights: dict[str, np.ndarray], prefix: str) -> None:
    for variable in layer.weights:  # names as in `KerasStack`: kernel, recurrent_kernel, bias, extras
        variable.assign(weights[prefix + variable.name])


def stack_model(spec: ModelSpec, weights: dict[str, np.ndarray], features: int) -> keras.Model:
    """A Keras model of the stack with the run's weights (keras layout).

    A bidirectional layer is `keras.layers.Bidirectional`: its backward direction reads the sequence
    reversed and its outputs are put back in time order, as the runner's stack does for full rows.

    Example:
        >>> model = stack_model(ModelSpec("lstm", (4, 5)), weights, features=6)
        >>> model(np.zeros((2, 3, 6), "float32")).shape
        TensorShape([2, 3, 5])
    """
    x = keras.Input((None, features), name="x")  # (B, T, F), any T
    seq, placed = x, []
    for k in range(len(spec.units)):
        name = names.flat_layer_name(k)
        if spec.bidirectional:
            fw, bw = names.FORWARD, names.BACKWARD
            forward = make_layer(spec, k, names.flat_layer_name(k, fw), states=False)
            backward = make_layer(spec, k, names.flat_layer_name(k, bw), states=False, go_backwards=True)
            layer = keras.layers.Bidirectional(forward, backward_layer=backward, name=name)
            placed += [(layer.forward_layer, names.layer_prefix(k, fw)),
                       (layer.backward_layer, names.layer_prefix(k, bw))]
        else:
            layer = make_layer(spec, k, name, states=False)
            placed.append((layer, names.layer_prefix(k)))
        seq = layer(seq)  # (B, T, H_k), both directions concatenated
    model = keras.Model(x, seq, name="lstm_exp_stack")
    for layer, prefix in placed:  # built by the call above; the wrapper holds its own copies
        _assign(layer, weights, prefix)
    return model


def save_stack_model(spec: ModelSpec, weights: dict[str, np.ndarray], features: int, path: Path) -> None:
    """Saves `stack_model(...)` to `path`, a `.keras` file."""
    stack_model(spec, weights, features).save(Path(path))
