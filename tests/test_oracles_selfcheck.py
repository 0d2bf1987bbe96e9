"""The oracles against an independent NumPy LSTM: if both agree, their weights and states can
be trusted as references for the Keras 3 code."""

import numpy as np
import pytest

try:  # `python -m pytest` from the repo root
    from tests.oracles.tf1_oracle import load_oracle, run_oracles
    from tests.oracles.torch_oracle import torch_lstm
except ImportError:  # plain `pytest`: only tests/ is on sys.path
    from oracles.tf1_oracle import load_oracle, run_oracles
    from oracles.torch_oracle import torch_lstm

ATOL = 1e-5
# The tutorial's batch: B=2, T=3, F=6.
BATCH = [
    [[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
    [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]],
]

TF1_SPECS = {
    # The tutorial's first experiment: BasicLSTMCell(4), one call, zero state.
    "tutorial_step": dict(
        cell="basic", units=[4], input=[[3, 2, 2, 2, 2, 2]], scope="LSTM_sample1", seed=1
    ),
    "multi_4_5": dict(cell="basic", units=[4, 5], input=BATCH, seed=2),
    "multi_4_5_lengths": dict(
        cell="lstm",
        units=[4, 5],
        input=BATCH,
        lengths=[3, 2],
        initial_state="random",
        random_bias=True,
        seed=3,
    ),
    # Small clips so that both clips really bite on this input.
    "peep_clip_proj": dict(
        cell="lstm",
        units=[5],
        peepholes=True,
        cell_clip=0.3,
        num_proj=3,
        proj_clip=0.05,
        forget_bias=0.5,
        input=BATCH,
        lengths=[3, 2],
        initial_state="random",
        random_bias=True,
        seed=4,
    ),
    "bidirectional": dict(
        cell="lstm",
        units=[4],
        peepholes=True,
        bidirectional=True,
        input=BATCH,
        lengths=[3, 2],
        initial_state="random",
        random_bias=True,
        seed=5,
    ),
}

TF1_VARIABLES = {
    "tutorial_step": ["LSTM_sample1/basic_lstm_cell/bias", "LSTM_sample1/basic_lstm_cell/kernel"],
    "multi_4_5": [
        f"rnn/multi_rnn_cell/cell_{k}/basic_lstm_cell/{v}"
        for k in (0, 1)
        for v in ("bias", "kernel")
    ],
    "multi_4_5_lengths": [
        f"rnn/multi_rnn_cell/cell_{k}/lstm_cell/{v}" for k in (0, 1) for v in ("bias", "kernel")
    ],
    "peep_clip_proj": [
        f"rnn/lstm_cell/{v}"
        for v in ("bias", "kernel", "projection/kernel", "w_f_diag", "w_i_diag", "w_o_diag")
    ],
    "bidirectional": [
        f"bidirectional_rnn/{d}/lstm_cell/{v}"
        for d in ("bw", "fw")
        for v in ("bias", "kernel", "w_f_diag", "w_i_diag", "w_o_diag")
    ],
}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ------------------------------------------------------------------ NumPy reference, TF1
def tf1_step(x, c, h, w, spec):
    """One LSTMCell/BasicLSTMCell step: gates i,j,f,o from [x, h] @ kernel + bias."""
    i, j, f, o = np.split(np.concatenate([x, h], 1) @ w["kernel"] + w["bias"], 4, axis=1)
    f = f + spec.get("forget_bias", 1.0)
    if spec.get("peepholes"):  # i and f see the old c, o sees the new one
        i, f = i + w["w_i_diag"] * c, f + w["w_f_diag"] * c
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(j)
    if spec.get("cell_clip") is not None:
        c = np.clip(c, -spec["cell_clip"], spec["cell_clip"])
    if spec.get("peepholes"):
        o = o + w["w_o_diag"] * c
    h = sigmoid(o) * np.tanh(c)
    if spec.get("num_proj") is not None:
        h = h @ w["projection/kernel"]
        if spec.get("proj_clip") is not None:
            h = np.clip(h, -spec["proj_clip"], spec["proj_clip"])
    return c, h


def tf1_layer(x, lengths, c, h, w, spec, reverse=False):
    """dynamic_rnn semantics: zeros out past a row's length, state frozen at its last step."""
    batch, steps = x.shape[:2]
    out = np.zeros((batch, steps, h.shape[1]))
    for b in range(batch):
        valid = range(lengths[b])
        for t in reversed(valid) if reverse else valid:
            cb, hb = tf1_step(x[b : b + 1, t], c[b : b + 1], h[b : b + 1], w, spec)
            c[b], h[b], out[b, t] = cb[0], hb[0], hb[0]
    return out, c, h


def tf1_reference(spec, weights, expected):
    x = np.asarray(spec["input"], np.float64)
    dirs = ("fw", "bw") if spec.get("bidirectional") else ("",)
    ref = {}
    for d in dirs:
        sub, prefix = (f"/{d}", f"{d}/") if d else ("", "")
        seq = x
        for k, n in enumerate(spec["units"]):
            own = f"{prefix}cell_{k}/"
            w = {key[len(own) :]: v for key, v in weights.items() if key.startswith(own)}
            h_size = spec.get("num_proj") or n
            c = expected.get(f"initial/layer_{k}{sub}/c", np.zeros((x.shape[0], n))).copy()
            h = expected.get(f"initial/layer_{k}{sub}/h", np.zeros((x.shape[0], h_size))).copy()
            if x.ndim == 2:  # a single cell call
                c, h = tf1_step(seq, c, h, w, spec)
                seq = h
            else:
                lengths = spec.get("lengths") or [x.shape[1]] * x.shape[0]
                seq, c, h = tf1_layer(seq, lengths, c, h, w, spec, reverse=d == "bw")
            ref[f"layer_{k}{sub}/c"], ref[f"layer_{k}{sub}/h"] = c, h
        ref[f"output{sub}"] = seq
    if len(dirs) == 2:
        ref["output"] = np.concatenate([ref.pop("output/fw"), ref.pop("output/bw")], -1)
    return ref


# ------------------------------------------------------------------ NumPy reference, torch
def torch_reference(x, state_dict, n_layers, lengths, bidirectional):
    """nn.LSTM: gates i,f,g,o from x W_ih^T + b_ih + h W_hh^T + b_hh; optional h W_hr^T."""
    batch, steps = x.shape[:2]
    lengths = lengths or [steps] * batch
    seq, ref = x.astype(np.float64), {}
    for k in range(n_layers):
        outs = []
        for d, sub in enumerate(("/fw", "/bw") if bidirectional else ("",)):
            sfx = f"l{k}" + ("_reverse" if d else "")
            w = {
                name: state_dict[f"{name}_{sfx}"]
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            }
            w_hr = state_dict.get(f"weight_hr_{sfx}")
            hidden = w["weight_ih"].shape[0] // 4
            h_size = w["weight_hh"].shape[1]  # proj_size when projecting, else hidden
            out = np.zeros((batch, steps, h_size))
            c_n, h_n = np.zeros((batch, hidden)), np.zeros((batch, h_size))
            for b in range(batch):
                c, h = np.zeros(hidden), np.zeros(h_size)
                valid = range(lengths[b])
                for t in reversed(valid) if d else valid:
                    z = (
                        seq[b, t] @ w["weight_ih"].T
                        + w["bias_ih"]
                        + h @ w["weight_hh"].T
                        + w["bias_hh"]
                    )
                    i, f, g, o = np.split(z, 4)
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                    h = sigmoid(o) * np.tanh(c)
                    if w_hr is not None:
                        h = h @ w_hr.T
                    out[b, t] = h
                c_n[b], h_n[b] = c, h
            ref[f"layer_{k}{sub}/c"], ref[f"layer_{k}{sub}/h"] = c_n, h_n
            outs.append(out)
        seq = np.concatenate(outs, -1)
    ref["output"] = seq
    return ref


def tf1_key(var):
    """Checkpoint name -> tf1-layout key, e.g. rnn/multi_rnn_cell/cell_1/lstm_cell/kernel
    -> cell_1/kernel and bidirectional_rnn/fw/lstm_cell/w_i_diag -> fw/cell_0/w_i_diag."""
    parts = var.split("/")
    cell = next((p for p in parts if p.startswith("cell_")), "cell_0")
    direction = next((f"{p}/" for p in parts if p in ("fw", "bw")), "")
    return f"{direction}{cell}/" + var.split("lstm_cell/", 1)[1]


def assert_matches(ref, expected):
    for key, value in ref.items():
        assert expected[key].shape == value.shape, key
        np.testing.assert_allclose(expected[key], value, rtol=0, atol=ATOL, err_msg=key)


# ------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def tf1_results(tmp_path_factory):
    # One subprocess for all specs: importing TensorFlow is the slow part.
    # "repeat" runs a spec a second time, to check that the seed alone fixes the weights.
    specs = {**TF1_SPECS, "repeat": TF1_SPECS["multi_4_5_lengths"]}
    root = tmp_path_factory.mktemp("tf1_oracle")
    run_oracles([(spec, str(root / name)) for name, spec in specs.items()])
    return {name: load_oracle(str(root / name)) for name in specs}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TF1_SPECS))
def test_tf1_oracle_matches_numpy(tf1_results, name):
    spec = TF1_SPECS[name]
    weights, expected, meta = tf1_results[name]
    assert sorted(meta["variables"]) == TF1_VARIABLES[name]
    # The tf1 layout holds exactly the checkpoint's variables, one to one, same shapes.
    assert {tf1_key(var): shape for var, shape in meta["variables"].items()} == {
        key: list(w.shape) for key, w in weights.items()
    }
    np.testing.assert_array_equal(expected["input"], np.asarray(spec["input"], np.float32))
    assert_matches(tf1_reference(spec, weights, expected), expected)


@pytest.mark.slow
def test_tf1_clips_are_exercised(tf1_results):
    # Otherwise the peephole/clip case would pass with the clipping code removed.
    _, expected, _ = tf1_results["peep_clip_proj"]
    assert np.isclose(np.abs(expected["layer_0/c"]).max(), 0.3)
    assert np.isclose(np.abs(expected["output"]).max(), 0.05)


@pytest.mark.slow
def test_tf1_oracle_is_deterministic(tf1_results):
    (w1, e1, _), (w2, e2, _) = tf1_results["multi_4_5_lengths"], tf1_results["repeat"]
    for a, b in ((w1, w2), (e1, e2)):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_tf1_random_initial_state_is_recorded(tf1_results):
    _, expected, _ = tf1_results["multi_4_5_lengths"]
    assert expected["initial/layer_1/c"].shape == (2, 5)
    assert np.abs(expected["initial/layer_0/h"]).max() > 0


@pytest.mark.parametrize(
    "units, proj_size, lengths, bidirectional",
    [
        ([4, 5], None, None, False),  # unequal sizes: one nn.LSTM per layer, renamed
        ([4, 5], None, [3, 2], False),
        ([4, 4], 3, [3, 2], False),  # equal sizes: one nn.LSTM(num_layers=2) with projection
        ([4, 5], 3, [2, 3], True),
    ],
)
def test_torch_oracle_matches_numpy(units, proj_size, lengths, bidirectional):
    x = np.asarray(BATCH, np.float32)
    state_dict, expected = torch_lstm(
        x, units, proj_size, lengths, seed=7, bidirectional=bidirectional
    )
    suffixes = ("", "_reverse") if bidirectional else ("",)
    names = {
        f"{p}_l{k}{s}"
        for k in range(len(units))
        for s in suffixes
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        + (("weight_hr",) if proj_size else ())
    }
    assert set(state_dict) == names
    ref = torch_reference(x, state_dict, len(units), lengths, bidirectional)
    assert_matches(ref, expected)
    if proj_size:
        key = "layer_0/fw/h" if bidirectional else "layer_0/h"
        assert expected[key].shape == (2, proj_size)
    if lengths:
        row = int(np.argmin(lengths))
        assert not expected["output"][row, min(lengths) :].any()
