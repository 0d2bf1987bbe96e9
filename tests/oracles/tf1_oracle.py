"""TF1 oracle: reference weights and states from the tutorial's own `tf.compat.v1` LSTM cells.

Run it only as its own process: it needs TF_USE_LEGACY_KERAS=1 before TensorFlow is imported,
because `tf.compat.v1.nn.rnn_cell.*` are tf_keras legacy cells, and that switch is process-wide.
From a test (where Keras 3 is already loaded) call `run_oracle` / `run_oracles`, which start
the subprocess for you.

CLI:
    python tests/oracles/tf1_oracle.py SPEC.json OUT_DIR [SPEC.json OUT_DIR ...]

Several (SPEC, OUT_DIR) pairs share one process, since importing TensorFlow costs seconds.

SPEC fields (see `_DEFAULTS`): cell ("basic" | "lstm"), units (list[int]), multi, peepholes,
cell_clip, num_proj, proj_clip, forget_bias, input (rank 2 = one `cell(x, state)` call,
rank 3 = `dynamic_rnn`), lengths, initial_state (null | "random"), bidirectional, seed,
scope, random_bias (extra: TF1 initializes biases to zeros, which would leave the bias
layout untested; true overwrites them with seeded uniform values before the checkpoint).

OUT_DIR receives weights_tf1.npz (tf1 layout: cell_{k}/kernel [F+H_rec, 4H] gates i,j,f,o;
cell_{k}/bias; cell_{k}/w_{i,f,o}_diag; cell_{k}/projection/kernel; fw/ and bw/ prefixes for
bidirectional), model.ckpt* (tf.compat.v1.train.Saver), expected.npz (output, layer_{k}/c,
layer_{k}/h, input, initial/layer_{k}/{c,h}) and expected.json (spec + checkpoint variables).
"""

import os

# Must precede any TensorFlow import: it selects tf_keras, which provides the v1 rnn cells.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

_DEFAULTS = {
    "cell": "lstm",
    "units": None,
    "multi": False,
    "peepholes": False,
    "cell_clip": None,
    "num_proj": None,
    "proj_clip": None,
    "forget_bias": 1.0,
    "input": None,
    "lengths": None,
    "initial_state": None,
    "bidirectional": False,
    "seed": 0,
    "scope": None,  # None: "rnn", or TF1's own "bidirectional_rnn" when bidirectional
    "random_bias": False,
}


# --------------------------------------------------------------------------- parent side
def run_oracles(cases: list[tuple[dict, str]], timeout: float = 600) -> None:
    """Run several specs in one fresh TF1 process; each case is (spec, out_dir)."""
    argv = [sys.executable, str(Path(__file__).resolve())]
    for spec, out_dir in cases:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "spec.json").write_text(json.dumps(spec))
        argv += [str(out / "spec.json"), str(out)]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    # The oracle's numbers should come from the CPU kernels, whatever machine runs the tests.
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"tf1_oracle failed (rc={proc.returncode}):\n{proc.stderr[-8000:]}")


def run_oracle(spec: dict, out_dir: str) -> None:
    """Run one spec in a subprocess with TF_USE_LEGACY_KERAS=1; raises with its stderr."""
    run_oracles([(spec, out_dir)])


def load_oracle(out_dir: str) -> tuple[dict, dict, dict]:
    """(weights_tf1, expected arrays, expected.json) as written by the oracle."""
    out = Path(out_dir)
    with np.load(out / "weights_tf1.npz") as w, np.load(out / "expected.npz") as e:
        weights, expected = dict(w), dict(e)
    return weights, expected, json.loads((out / "expected.json").read_text())


# --------------------------------------------------------------------------- child side
def _full_spec(spec: dict) -> dict:
    unknown = set(spec) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown spec keys: {sorted(unknown)}")
    s = {**_DEFAULTS, **spec}
    if not s["units"] or s["input"] is None:
        raise ValueError("spec needs 'units' and 'input'")
    if s["cell"] not in ("basic", "lstm"):
        raise ValueError(f"cell must be 'basic' or 'lstm', got {s['cell']!r}")
    lstm_only = ("peepholes", "cell_clip", "num_proj", "proj_clip")
    if s["cell"] == "basic" and any(s[k] not in (None, False) for k in lstm_only):
        raise ValueError(f"BasicLSTMCell has none of {lstm_only}")
    if s["bidirectional"] and (len(s["units"]) != 1 or s["multi"]):
        raise ValueError("bidirectional supports a single, un-stacked layer only")
    if s["scope"] is None:
        s["scope"] = "bidirectional_rnn" if s["bidirectional"] else "rnn"
    return s


def _build_cells(tf, s: dict) -> list:
    v1 = tf.compat.v1
    cells = []
    for n in s["units"]:
        if s["cell"] == "basic":
            cells.append(v1.nn.rnn_cell.BasicLSTMCell(n, forget_bias=s["forget_bias"]))
        else:
            cells.append(
                v1.nn.rnn_cell.LSTMCell(
                    n,
                    use_peepholes=s["peepholes"],
                    cell_clip=s["cell_clip"],
                    num_proj=s["num_proj"],
                    proj_clip=s["proj_clip"],
                    forget_bias=s["forget_bias"],
                )
            )
    return cells


def _draw_initial(rng, s: dict, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    # Per layer (c, h); h has the projected size when num_proj is set.
    states = []
    for n in s["units"]:
        h_size = s["num_proj"] or n
        c = rng.uniform(-1, 1, (batch, n)).astype(np.float32)
        h = rng.uniform(-1, 1, (batch, h_size)).astype(np.float32)
        states.append((c, h))
    return states


def _run_one(tf, spec: dict, out_dir: str) -> None:
    v1 = tf.compat.v1
    s = _full_spec(spec)
    x_np = np.asarray(s["input"], dtype=np.float32)
    if x_np.ndim not in (2, 3):
        raise ValueError(f"input must be rank 2 (B,F) or 3 (B,T,F), got shape {x_np.shape}")
    if x_np.ndim == 2 and (s["lengths"] is not None or s["bidirectional"]):
        raise ValueError("a single cell call (rank-2 input) takes no lengths, no bidirectional")
    batch = x_np.shape[0]
    stacked = s["multi"] or len(s["units"]) > 1
    rng = np.random.RandomState(s["seed"])
    dirs = ("fw", "bw") if s["bidirectional"] else ("",)
    # Initial states as numpy, per direction, per layer; None means zeros.
    init = None
    if s["initial_state"] == "random":
        init = {d: _draw_initial(rng, s, batch) for d in dirs}
    elif s["initial_state"] is not None:
        raise ValueError("initial_state must be null or 'random'")

    graph = tf.Graph()  # fresh graph per spec: names restart, nothing leaks between specs
    with graph.as_default():
        v1.set_random_seed(s["seed"])
        # Not enough on its own: the legacy cells take tf_keras initializers, which draw their
        # seed from Python's `random` unless Keras itself is seeded.
        tf.keras.utils.set_random_seed(s["seed"])
        x = tf.constant(x_np)
        lengths = None if s["lengths"] is None else tf.constant(s["lengths"], tf.int32)

        def as_cell(cells):
            return v1.nn.rnn_cell.MultiRNNCell(cells) if stacked else cells[0]

        def as_state(layers):
            tuples = [
                v1.nn.rnn_cell.LSTMStateTuple(tf.constant(c), tf.constant(h)) for c, h in layers
            ]
            return tuple(tuples) if stacked else tuples[0]

        cells = {d: _build_cells(tf, s) for d in dirs}
        if s["bidirectional"]:
            (out_fw, out_bw), (st_fw, st_bw) = v1.nn.bidirectional_dynamic_rnn(
                cells["fw"][0],
                cells["bw"][0],
                x,
                sequence_length=lengths,
                initial_state_fw=None if init is None else as_state(init["fw"]),
                initial_state_bw=None if init is None else as_state(init["bw"]),
                dtype=tf.float32,
                scope=s["scope"],
            )
            output, finals = tf.concat([out_fw, out_bw], -1), {"fw": [st_fw], "bw": [st_bw]}
        elif x_np.ndim == 3:
            output, state = v1.nn.dynamic_rnn(
                as_cell(cells[""]),
                x,
                sequence_length=lengths,
                initial_state=None if init is None else as_state(init[""]),
                dtype=tf.float32,
                scope=s["scope"],
            )
            finals = {"": list(state) if stacked else [state]}
        else:
            # The tutorial's first experiment: one call of the cell inside a variable scope.
            with v1.variable_scope(s["scope"]):
                cell = as_cell(cells[""])
                state0 = cell.zero_state(batch, tf.float32) if init is None else as_state(init[""])
                output, state = cell(x, state0)
            finals = {"": list(state) if stacked else [state]}

        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            if s["random_bias"]:
                for d in dirs:
                    for cell in cells[d]:
                        for var in cell.weights:
                            if var.name.split("/")[-1].startswith("bias"):
                                val = rng.uniform(-0.5, 0.5, var.shape).astype(np.float32)
                                sess.run(var.assign(val))
            out_np, finals_np = sess.run([output, finals])
            # Weights in the tf1 layout, taken from each cell's own variables.
            weights = {}
            for d in dirs:
                prefix = f"{d}/" if d else ""
                for k, cell in enumerate(cells[d]):
                    for var in cell.weights:
                        parts = var.name.split(":")[0].split("/")
                        leaf = "/".join(parts[-2:]) if parts[-2] == "projection" else parts[-1]
                        weights[f"{prefix}cell_{k}/{leaf}"] = sess.run(var)
            ckpt = v1.train.Saver().save(sess, os.path.join(out_dir, "model.ckpt"))

    expected = {"output": out_np, "input": x_np}
    for d in dirs:
        sub = f"/{d}" if d else ""
        for k, (c, h) in enumerate(finals_np[d]):
            expected[f"layer_{k}{sub}/c"], expected[f"layer_{k}{sub}/h"] = c, h
        if init is not None:
            for k, (c, h) in enumerate(init[d]):
                expected[f"initial/layer_{k}{sub}/c"] = c
                expected[f"initial/layer_{k}{sub}/h"] = h
    variables = {name: list(shape) for name, shape in tf.train.list_variables(ckpt)}
    np.savez(os.path.join(out_dir, "weights_tf1.npz"), **weights)
    np.savez(os.path.join(out_dir, "expected.npz"), **expected)
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump({**s, "variables": variables}, f, indent=1)
    print(f"{out_dir}: " + ", ".join(variables))


def main(argv: list[str]) -> None:
    if not argv or len(argv) % 2:
        sys.exit(__doc__)
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    for spec_path, out_dir in zip(argv[::2], argv[1::2], strict=True):
        os.makedirs(out_dir, exist_ok=True)
        with open(spec_path) as f:
            _run_one(tf, json.load(f), out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
