"""TF1LSTMCell against the NumPy float64 reference, its serialization, and the extras from the CLI."""

import re

import keras
import numpy as np
import pytest
from conftest import run_cli

import lstm_exp
from lstm_exp.compute.cells import TF1LSTMCell
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.reference import reference_forward
from lstm_exp.config.names import GATES
from lstm_exp.config.specs import ModelSpec

X = np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32)  # (B, T, F)
EXTRAS = ModelSpec("lstm", (4,), peepholes=True, cell_clip=0.4, proj_size=3, proj_clip=0.2)


def _assign(cell: TF1LSTMCell, weights: dict, prefix: str) -> None:
    for variable in cell.weights:
        variable.assign(weights[prefix + variable.name])


def _initial_state(spec: ModelSpec, k: int) -> dict:
    rng = np.random.default_rng(k)
    return {
        "h": rng.uniform(-1, 1, (2, spec.hidden_size(k))).astype(np.float32),
        "c": rng.uniform(-1, 1, (2, spec.units[k])).astype(np.float32),
    }


@pytest.mark.parametrize(
    "spec",
    [
        EXTRAS,
        ModelSpec("lstm", (5,), peepholes=True),
        ModelSpec("lstm", (5,), proj_size=2),
        ModelSpec("lstm", (3,), cell_clip=0.05),
    ],
    ids=["all_extras", "peepholes", "projection", "cell_clip"],
)
def test_cell_matches_reference(spec):
    weights = initial_weights(spec, X.shape[-1], seed=3)
    weights["layer_0/bias"] += np.linspace(-0.5, 0.5, weights["layer_0/bias"].size, dtype=np.float32)
    state = _initial_state(spec, 0)
    cell = TF1LSTMCell(spec.units[0], peepholes=spec.peepholes, cell_clip=spec.cell_clip,
                       proj_size=spec.proj_size, proj_clip=spec.proj_clip)
    layer = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    layer.build((None, None, X.shape[-1]))
    _assign(cell, weights, "layer_0/")
    sequence, h, c = (np.asarray(t) for t in layer(X, initial_state=[state["h"], state["c"]]))

    initial = {f"layer_0/{n}": v for n, v in state.items()}
    expected = reference_forward(spec, weights, X, initial_state=initial)
    hidden, units = spec.hidden_size(0), spec.units[0]
    assert sequence.shape == (2, 5, hidden + 4 * units)
    np.testing.assert_allclose(sequence[..., :hidden], expected["layer_0/sequence"], atol=1e-6)
    np.testing.assert_allclose(h, expected["layer_0/h"], atol=1e-6)
    np.testing.assert_allclose(c, expected["layer_0/c"], atol=1e-6)
    for n, gate in enumerate(GATES):
        got = sequence[..., hidden + n * units : hidden + (n + 1) * units]
        np.testing.assert_allclose(got, expected[f"layer_0/gates/{gate}"], atol=1e-6, err_msg=gate)
    if spec.cell_clip:  # the clip must really bite, or this case tests nothing
        assert np.isclose(np.abs(c).max(), spec.cell_clip)


def test_cells_stack():
    spec = ModelSpec("lstm", (4, 5), peepholes=True, cell_clip=0.4, proj_size=3)
    weights = initial_weights(spec, X.shape[-1], seed=5)
    cells = [TF1LSTMCell(n, peepholes=True, cell_clip=0.4, proj_size=3, return_gates=False)
             for n in spec.units]
    layer = keras.layers.RNN(keras.layers.StackedRNNCells(cells), return_sequences=True)
    layer.build((None, None, X.shape[-1]))
    for k, cell in enumerate(cells):
        _assign(cell, weights, f"layer_{k}/")
    expected = reference_forward(spec, weights, X)
    np.testing.assert_allclose(np.asarray(layer(X)), expected["output"], atol=1e-6)


def test_cell_serializes():
    cell = TF1LSTMCell(4, peepholes=True, cell_clip=0.5, proj_size=3, proj_clip=0.1, name="c0")
    layer = keras.layers.RNN(cell, return_sequences=True, return_state=True, name="rnn")
    clone = keras.layers.RNN.from_config(layer.get_config())
    assert clone.cell.get_config() == cell.get_config()
    assert isinstance(clone.cell, TF1LSTMCell) and clone.cell.state_size == [3, 4]

    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
    for built in (layer, restored):
        built.build((None, None, 6))
    restored.set_weights(layer.get_weights())
    assert [v.name for v in restored.cell.weights] == [
        "kernel", "recurrent_kernel", "bias", "peephole_i", "peephole_f", "peephole_o", "projection"
    ]
    np.testing.assert_array_equal(np.asarray(restored(X)[0]), np.asarray(layer(X)[0]))


def test_cell_rejects_bad_arguments():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        TF1LSTMCell(0)
    with pytest.raises(ValueError, match="proj_clip needs proj_size"):
        TF1LSTMCell(4, proj_clip=0.1)


def test_extras_through_the_config_api():
    cfg = lstm_exp.compose(
        "model=stacked", "model.bidirectional=true", "model.peepholes=true", "model.cell_clip=0.5",
        "model.proj_size=3", "input.lengths=[3,2]", "input.initial_state=random",
        "tracking.enabled=false",
    )
    result = lstm_exp.execute(cfg)
    assert result.reference_max_abs_err <= 1e-6
    assert result.arrays["output"].shape == (2, 3, 6)
    assert result.arrays["layer_1/bw/gates/o"].shape == (2, 3, 5)


@pytest.mark.slow
def test_extras_from_the_cli(tmp_path):
    # The "done when": every TF1 extra at once, run from the command line.
    proc = run_cli("model=stacked", "model.peepholes=true", "model.cell_clip=0.5", "model.proj_size=3",
                   "model.proj_clip=0.1", "input.lengths=[3,2]", "input.initial_state=random",
                   "tracking.enabled=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "output (2, 3, 3)" in proc.stdout
    error = float(re.search(r"max \|keras - numpy float64\| = (\S+)", proc.stdout).group(1))
    assert error <= 1e-6
