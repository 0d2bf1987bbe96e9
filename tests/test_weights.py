"""Weight layouts: round trips, detection, checkpoint names, errors, and the export CLI."""


import numpy as np
import pytest
from conftest import error_lines, run_cli

import lstm_exp
from lstm_exp.cli import weights as export_cli
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.layouts import checkpoint_names, detect_layout, layout_shapes, to_keras, to_layout
from lstm_exp.compute.weights import load_weights
from lstm_exp.config.specs import ModelSpec, WeightsSpec
from lstm_exp.errors import ConfigError

PLAIN = ModelSpec("lstm", (4, 5))
PEEP_PROJ = ModelSpec("lstm", (4, 5), peepholes=True, cell_clip=0.5, proj_size=3, proj_clip=0.1)
BIDIRECTIONAL = ModelSpec("lstm", (4, 5), bidirectional=True, proj_size=3)
SPECS = {"plain": PLAIN, "peep_proj": PEEP_PROJ, "bidirectional": BIDIRECTIONAL}


def _weights_cfg(path, layout="auto", forget_bias=1.0):
    return WeightsSpec(str(path), layout, forget_bias)


def _reimport(tmp_path, arrays, spec, layout, forget_bias=1.0):
    np.savez(tmp_path / f"{layout}.npz", **arrays)
    return load_weights(_weights_cfg(tmp_path / f"{layout}.npz", layout, forget_bias), spec, 6)


@pytest.mark.parametrize(
    "name, layout",
    # nn.LSTM has no peepholes: the torch layout cannot hold PEEP_PROJ (see test_unusable_layouts).
    [(n, lay) for n in SPECS for lay in ("tf1", "torch", "keras") if (n, lay) != ("peep_proj", "torch")],
)
def test_round_trip_is_identical(tmp_path, name, layout):
    spec = SPECS[name]
    keras = initial_weights(spec, 6, seed=1)
    exported = to_layout(keras, spec, layout, forget_bias=0.5)
    assert set(exported) == set(layout_shapes(spec, 6, layout))
    back = _reimport(tmp_path, exported, spec, layout, forget_bias=0.5)
    assert back.keys() == keras.keys()
    for key, value in keras.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    assert detect_layout(exported) == layout


def test_tf1_round_trip_of_any_bias_is_within_rounding():
    # b - forget_bias is not always a float32: the export rounds it once, to the nearest.
    keras = initial_weights(PLAIN, 6, seed=2)
    rng = np.random.default_rng(0)
    for k in (0, 1):
        keras[f"layer_{k}/bias"] = rng.uniform(-0.5, 0.5, keras[f"layer_{k}/bias"].shape).astype(np.float32)
    back = to_keras(to_layout(keras, PLAIN, "tf1"), PLAIN, "tf1")
    for key, value in keras.items():
        np.testing.assert_allclose(back[key], value, rtol=0, atol=np.spacing(np.float32(1)), err_msg=key)


def test_tf1_layout_by_hand():
    # One layer of C=1 makes the gate permutation and the forget bias visible.
    spec = ModelSpec("lstm", (1,))
    tf1 = {"cell_0/kernel": np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32),  # i, j, f, o
           "cell_0/bias": np.array([0.1, 0.2, 0.3, 0.4], np.float32)}
    keras = to_keras(tf1, spec, "tf1", forget_bias=1.0)
    np.testing.assert_array_equal(keras["layer_0/kernel"], [[1, 3, 2, 4]])  # i, f, c, o
    np.testing.assert_array_equal(keras["layer_0/recurrent_kernel"], [[5, 7, 6, 8]])
    np.testing.assert_allclose(keras["layer_0/bias"], [0.1, 1.3, 0.2, 0.4], rtol=1e-7)


def test_torch_biases_add_up():
    spec = ModelSpec("lstm", (1,), proj_size=2)
    torch = {"weight_ih_l0": np.arange(12, dtype=np.float32).reshape(4, 3),
             "weight_hh_l0": np.ones((4, 2), np.float32), "weight_hr_l0": np.ones((2, 1), np.float32),
             "bias_ih_l0": np.ones(4, np.float32), "bias_hh_l0": np.full(4, 2, np.float32)}
    keras = to_keras(torch, spec, "torch")
    np.testing.assert_array_equal(keras["layer_0/kernel"], torch["weight_ih_l0"].T)
    np.testing.assert_array_equal(keras["layer_0/bias"], np.full(4, 3))
    assert keras["layer_0/projection"].shape == (1, 2)


def test_checkpoint_names():
    names, clashes = checkpoint_names([
        "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel", "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel/Adam",
        "LSTM_sample1/basic_lstm_cell/bias", "bidirectional_rnn/bw/lstm_cell/w_i_diag",
        "rnn/lstm_cell/projection/kernel", "dense/kernel", "global_step",
    ])
    assert names == {
        "cell_1/kernel": "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel",
        "cell_0/bias": "LSTM_sample1/basic_lstm_cell/bias",
        "bw/cell_0/w_i_diag": "bidirectional_rnn/bw/lstm_cell/w_i_diag",
        "cell_0/projection/kernel": "rnn/lstm_cell/projection/kernel",
    }
    assert not clashes
    _, clashes = checkpoint_names(["a/lstm_cell/kernel", "b/lstm_cell/kernel"])
    assert clashes == [("cell_0/kernel", "a/lstm_cell/kernel", "b/lstm_cell/kernel")]


@pytest.mark.parametrize(
    "spec, layout, change, message",
    [
        (PLAIN, "tf1", lambda w: w.pop("cell_1/bias"), r"cell_1/bias \(20,\).*it is missing"),
        (PLAIN, "torch", lambda w: w.update(weight_hh_l1=np.zeros((20, 4))),
         r"weight_hh_l1 of shape \(20, 5\); found \(20, 4\)"),
        (PLAIN, "keras", lambda w: w.update({"layer_2/kernel": np.zeros((5, 12))}),
         r"found layer_2/kernel \(5, 12\).*file has 3 layers, model.units=\[4, 5\] has 2"),
        (PLAIN, "tf1", lambda w: w.update({"cell_0/w_i_diag": np.zeros(4)}),
         r"found cell_0/w_i_diag \(4,\).*model.peepholes=false"),
        (PEEP_PROJ, "tf1", lambda w: w.pop("cell_0/w_f_diag"),
         r"cell_0/w_f_diag \(4,\) \(model.peepholes=true\)"),
        (PLAIN, "tf1", lambda w: w.update({"cell_0/kernel": np.zeros((14, 16))}),
         r"cell_0/kernel of shape \(10, 16\) \(the input has F=6 features\); found \(14, 16\)"),
    ],
    ids=["missing", "shape", "extra_layer", "peepholes_present", "peepholes_missing", "features"],
)
def test_layout_errors_name_the_array(tmp_path, spec, layout, change, message):
    arrays = to_layout(initial_weights(spec, 6, seed=0), spec, layout)
    change(arrays)
    np.savez(tmp_path / "w.npz", **arrays)
    with pytest.raises(ConfigError, match=message) as error:
        load_weights(_weights_cfg(tmp_path / "w.npz", "auto"), spec, 6)
    assert str(error.value).startswith("model.weights.path must be")


def test_unusable_layouts(tmp_path):
    np.savez(tmp_path / "w.npz", foo=np.zeros(3))
    with pytest.raises(ConfigError, match="keras .*tf1 .*torch .*found foo"):
        load_weights(_weights_cfg(tmp_path / "w.npz"), PLAIN, 6)
    with pytest.raises(ConfigError, match="model.weights.layout must be keras, tf1 or auto"):
        load_weights(_weights_cfg(tmp_path / "w.npz", "torch"), PEEP_PROJ, 6)
    with pytest.raises(ConfigError, match="layout must be keras, tf1 or auto with model.peepholes"):
        to_layout(initial_weights(PEEP_PROJ, 6, seed=0), PEEP_PROJ, "torch")
    with pytest.raises(ConfigError, match="model.weights.layout must be keras or auto for model.cell=gru"):
        load_weights(_weights_cfg(tmp_path / "w.npz", "tf1"), ModelSpec("gru", (4,)), 6)
    with pytest.raises(ConfigError, match="existing .npz file of weights or a TF1 checkpoint prefix"):
        load_weights(_weights_cfg(tmp_path / "nothing"), PLAIN, 6)


@pytest.mark.slow
def test_feature_mismatch_from_the_cli(tmp_path):
    # The tutorial's weights (F=6) on a 5-feature input: exit 2, one line naming key and shapes.
    result = lstm_exp.execute(lstm_exp.compose("model=stacked", "tracking.enabled=false"))
    np.savez(tmp_path / "tf1.npz", **to_layout(result.weights, result.spec, "tf1"))
    proc = run_cli("model=stacked", f"model.weights.path={tmp_path / 'tf1.npz'}", "input=random",
                   "input.features=5", "tracking.enabled=false", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: model.weights.path must be")
    assert "cell_0/kernel of shape (9, 16) (the input has F=5 features); found (10, 16)" in lines[0]


@pytest.fixture
def recorded_run(stacked_run):
    """(store folder, run id, the run's weights.npz) of this test's copy of a recorded `model=stacked` run."""
    (logged,) = stacked_run.folder.rglob("weights.npz")  # the store's only run; its folder layout is MLflow's
    with np.load(logged) as archive:
        return stacked_run.folder, stacked_run.run_id, dict(archive)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["torch", "tf1", "keras"])
def test_export_cli_re_imports_to_the_same_arrays(recorded_run, tmp_path, layout, monkeypatch, capsys):
    store, run_id, logged = recorded_run
    monkeypatch.chdir(store)  # the default store: sqlite:///$PWD/mlflow.db
    export_cli.main(["export", run_id, "--layout", layout, "--out", str(tmp_path / "out.npz")])
    assert f"wrote {tmp_path / 'out.npz'} ({layout} layout)" in capsys.readouterr().out
    with np.load(tmp_path / "out.npz") as archive:
        assert detect_layout(archive.keys()) == layout
    back = load_weights(_weights_cfg(tmp_path / "out.npz", layout), PLAIN, 6)
    assert back.keys() == logged.keys()
    for key, value in logged.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.slow
def test_export_cli_bad_run_id(recorded_run):
    store, _, _ = recorded_run
    proc = run_cli("export", "no-such-run", "--layout", "torch", "--tracking-uri", f"sqlite:///{store}/mlflow.db",
                   cwd=store, module="lstm_exp.weights")
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("error: RUN_ID must be the id of a run"), proc.stderr
    assert "no-such-run" in lines[0]
    assert not (store / "weights_torch.npz").exists()
