"""Keras 3 stacks built from a validated `ModelSpec` and a keras-layout weight dict."""

import keras
import numpy as np
import tensorflow as tf

from lstm_exp.config import names
from lstm_exp.config.names import GATES
from lstm_exp.config.specs import ModelSpec

STOCK_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}


def make_layer(spec: ModelSpec, k: int, name: str, *, states: bool = True,
               go_backwards: bool = False) -> keras.layers.Layer:
    """Stock Keras layer for plain settings (cuDNN on a GPU); the TF1-style cell for the extras.

    With `states` (the runner's stack) the layer also returns its final states and the TF1-style cell
    its gates; without (the exported model) it returns its output sequence alone.
    """
    units = spec.units[k]
    if spec.cell == "lstm" and spec.has_extras:
        from lstm_exp.compute.cells import TF1LSTMCell

        cell = TF1LSTMCell(
            units,
            peepholes=spec.peepholes,
            cell_clip=spec.cell_clip,
            proj_size=spec.proj_size,
            proj_clip=spec.proj_clip,
            return_gates=states,
            name=f"{name}_cell",
        )
        return keras.layers.RNN(cell, return_sequences=True, return_state=states,
                                go_backwards=go_backwards, name=name)
    return STOCK_LAYERS[spec.cell](units, return_sequences=True, return_state=states,
                                   go_backwards=go_backwards, name=name)


def _reverse(seq: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    return tf.reverse_sequence(seq, lengths, seq_axis=1, batch_axis=0)


class KerasStack:
    """A stack of recurrent layers, one Keras layer per layer and direction.

    A backward direction runs on each row's valid steps reversed (TF1's `bidirectional_dynamic_rnn`),
    so lengths, gates and initial states work alike in both directions.

    Example:
        >>> stack = KerasStack(ModelSpec("lstm", (4, 5)), weights, features=6)
        >>> stack(np.zeros((2, 3, 6), np.float32))["output"].shape
        TensorShape([2, 3, 5])
    """

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], features: int):
        self.spec = spec
        self.layers: dict[str, keras.layers.Layer] = {}
        fan_in = features
        for k in range(len(spec.units)):
            for d in spec.directions:
                name = names.flat_layer_name(k, d)  # stable across jobs: no lstm_7
                layer = make_layer(spec, k, name)
                layer.build((None, None, fan_in))
                for variable in layer.weights:
                    variable.assign(weights[names.array_name(k, variable.name, d)])
                self.layers[names.layer_prefix(k, d)] = layer
            fan_in = spec.output_size(k)

    def _direction(self, k, d, seq, lengths, mask, initial_state, batch):
        spec, layer = self.spec, self.layers[names.layer_prefix(k, d)]
        units, hidden = spec.units[k], spec.hidden_size(k)
        h0 = initial_state.get(names.array_name(k, names.H, d), tf.zeros((batch, hidden)))
        c0 = initial_state.get(names.array_name(k, names.C, d), tf.zeros((batch, units)))
        state = [h0, c0] if spec.cell == "lstm" else [h0]
        backward = d == names.BACKWARD
        inputs = _reverse(seq, lengths) if backward else seq
        outputs = layer(inputs, mask=mask, initial_state=state)
        valid = mask[:, :, None]  # (B, T, 1)
        # The TF1-style cell emits [h | gates] per step, (B, T, H + 4C); stock layers emit h alone.
        sequence = tf.where(valid, outputs[0][..., :hidden], 0.0)  # dynamic_rnn: zeros past the end
        result = {names.SEQUENCE: sequence, names.H: outputs[1]}
        if spec.cell == "lstm":
            result[names.C] = outputs[2]
            if spec.has_extras:
                gates = outputs[0][..., hidden:]  # (B, T, 4C)
            else:
                h_prev = tf.concat([h0[:, None, :], sequence[:, :-1]], axis=1)  # (B, T, H)
                gates = self._stock_gates(layer, inputs, h_prev)
            for n, gate in enumerate(GATES):
                result[names.gate_part(gate)] = tf.where(valid, gates[..., n * units : (n + 1) * units], 0.0)
        if backward:
            result = {n: _reverse(v, lengths) if v.shape.rank == 3 else v for n, v in result.items()}
        return result

    @staticmethod
    def _stock_gates(layer, inputs, h_prev):
        # keras.layers.LSTM does not expose its gates; at valid steps they follow exactly from the
        # layer's own weights, the inputs and the previous step's output.
        kernel, recurrent, bias = (w.value for w in layer.weights)
        z = inputs @ kernel + h_prev @ recurrent + bias  # (B, T, 4H)
        z_i, z_f, z_g, z_o = tf.split(z, 4, axis=-1)
        return tf.concat([tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)], -1)

    def __call__(self, x, lengths=None, initial_state=None) -> dict[str, tf.Tensor]:
        """Runs the stack on x (B, T, F); returns the runner's array names as tensors."""
        x = tf.convert_to_tensor(x, tf.float32)
        batch, steps = x.shape[0], x.shape[1]
        lengths = tf.fill([batch], steps) if lengths is None else tf.convert_to_tensor(lengths, tf.int32)
        mask = tf.sequence_mask(lengths, steps)  # (B, T)
        initial_state = {n: tf.convert_to_tensor(v) for n, v in (initial_state or {}).items()}
        arrays, seq = {}, x
        for k in range(len(self.spec.units)):
            parts = []
            for d in self.spec.directions:
                part = self._direction(k, d, seq, lengths, mask, initial_state, batch)
                # A direction's own states and gates; one direction's are the layer's.
                arrays.update({names.array_name(k, n, d): v for n, v in part.items()
                               if not (d and n == names.SEQUENCE)})
                parts.append(part)
            if d:
                for name in (names.SEQUENCE, names.H, names.C):
                    if name in parts[0]:
                        arrays[names.array_name(k, name)] = tf.concat([p[name] for p in parts], -1)
            seq = arrays[names.array_name(k, names.SEQUENCE)]
        arrays[names.OUTPUT] = seq
        return arrays
