"""The native C++ LSTM engine against the float64 NumPy reference, its fallback and its build cache.

Tolerance: 1e-6 absolute (everything in float32; observed errors are ~1e-7 with the app's initializers).
"""

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

import lstm_exp
from lstm_exp.compute.engines import build_forward, choose_engine, resolve_engine
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.inputs import InputData
from lstm_exp.compute.native import build, cache, cpu
from lstm_exp.compute.reference import max_abs_err, reference_forward
from lstm_exp.config.specs import ModelSpec

ATOL = 1e-6
CASES = {  # name: (B, T, F, units, with lengths, with initial state)
    "tutorial": (2, 3, 6, [4, 5], False, False),
    "odd-batch-three-layers": (3, 7, 5, [5, 17, 130], True, True),
    "batch-33-one-step": (33, 1, 4, [17], False, True),
    "batch-33-lengths": (33, 12, 9, [130, 5], True, True),
    "unit-multiple-of-16": (5, 6, 3, [32, 16], True, False),
}


@pytest.fixture(scope="session")
def native():
    """The op, built (or found in the user's cache) once for the whole session."""
    from lstm_exp.compute.native.engine import load

    try:
        load()
    except build.NativeBuildError as err:
        pytest.skip(f"the native op cannot be built here: {err}")
    from lstm_exp.compute.native.engine import NativeLSTMStack

    return NativeLSTMStack


def make_case(name):
    batch, steps, feats, units, with_lengths, with_state = CASES[name]
    rng = np.random.default_rng(len(name))
    spec = ModelSpec("lstm", tuple(units), implementation="native")
    x = rng.standard_normal((batch, steps, feats)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, batch).astype(np.int32) if with_lengths else None
    if lengths is not None:
        lengths[0] = 1  # a row that stops after its first step
    state = ({f"layer_{k}/{p}": rng.uniform(-1, 1, (batch, u)).astype(np.float32)
              for k, u in enumerate(units) for p in "hc"} if with_state else {})
    return spec, initial_weights(spec, feats, seed=len(name)), InputData(x, False, lengths, state)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_matches_float64_reference(native, case):
    spec, weights, data = make_case(case)
    got = {k: np.asarray(v) for k, v in native(weights)(data.x, data.lengths, data.initial_state,
                                                        return_gates=True).items()}
    want = reference_forward(spec, weights, data.x, data.lengths, data.initial_state)
    assert set(got) == set(want) - {"output"}
    assert all(v.dtype == np.float32 for v in got.values())
    assert max_abs_err(got, want) <= ATOL
    if data.lengths is not None:  # past a row's length: zero outputs and gates, state carried
        top = len(spec.units) - 1
        assert not got[f"layer_{top}/sequence"][0, 1:].any()
        assert not got["layer_0/gates/f"][0, 1:].any()
    # Threads split the rows or the unit blocks (columns), and the input projection is chunked
    # over steps; none of these changes any sum's order, so one thread, the column split at any
    # thread count, or chunks of 3 steps (a ragged last chunk, tiles of rows spanning two steps),
    # compute every value bit for bit alike.
    for options in ({"max_threads": 1}, {"chunk_steps": 3}, {"max_threads": 1, "chunk_steps": 2},
                    {"split": "columns"}, {"split": "columns", "max_threads": 1},
                    {"split": "columns", "max_threads": 3, "chunk_steps": 2}):
        other = native(weights, **options)(data.x, data.lengths, data.initial_state, return_gates=True)
        for key, value in other.items():
            np.testing.assert_array_equal(np.asarray(value), got[key], err_msg=f"{options} {key}")


@pytest.mark.slow
def test_auto_split_is_measured_once_per_shape_class_and_kept(native, tmp_path):
    spec, weights, data = make_case("batch-33-lengths")
    got = native(weights, choices_folder=tmp_path)(data.x, data.lengths, data.initial_state)
    path = tmp_path / "choices.json"
    choices = json.loads(path.read_text())
    # One choice per layer, keyed by its shape class (sizes rounded up to powers of two).
    assert set(choices) == {"native-split B64 T16 F16 U256", "native-split B64 T16 F256 U8"}
    for choice in choices.values():
        assert choice["engine"] in ("rows", "columns") and set(choice["median_ms"]) == {"rows", "columns"}
    kept = path.read_text()
    again = native(weights, choices_folder=tmp_path)(data.x, data.lengths, data.initial_state)
    assert path.read_text() == kept  # read, not measured again
    for split in ("rows", "columns"):  # whichever was chosen, the outputs are the same bits
        fixed = native(weights, split=split)(data.x, data.lengths, data.initial_state)
        for key, value in fixed.items():
            np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(value), err_msg=key)
            np.testing.assert_array_equal(np.asarray(again[key]), np.asarray(value), err_msg=key)


def test_auto_split_measures_nothing_where_one_thread_works(native, tmp_path):
    _, weights, data = make_case("tutorial")
    native(weights, max_threads=1, choices_folder=tmp_path)(data.x)
    assert not (tmp_path / "choices.json").exists()
    with pytest.raises(ValueError, match="split must be one of auto, rows, columns; got 'cols'"):
        native(weights, split="cols")


@pytest.mark.slow
def test_graph_mode_with_unknown_batch_and_time(native):
    import tensorflow as tf

    spec, weights, data = make_case("batch-33-lengths")
    stack = native(weights)
    fn = tf.function(lambda x, lengths: stack(x, lengths)["layer_1/sequence"],
                     input_signature=[tf.TensorSpec((None, None, 9)), tf.TensorSpec((None,), tf.int32)])
    for rows in (33, 4):
        x, lengths = data.x[:rows], data.lengths[:rows]
        want = reference_forward(spec, weights, x, lengths)["layer_1/sequence"]
        assert np.abs(fn(x, lengths).numpy() - want).max() <= ATOL
    assert fn.experimental_get_tracing_count() == 1


@pytest.mark.slow
@pytest.mark.parametrize("timed", [0, 5])
def test_build_forward_mirrors_fused(native, timed):
    spec, weights, data = make_case("odd-batch-three-layers")
    engine, run = build_forward("native", spec, weights, data, timed)
    fused = {k: np.asarray(v) for k, v in build_forward("fused", spec, weights, data, 0)[1]().items()}
    got = {k: np.asarray(v) for k, v in run().items()}
    assert engine == "native"
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in fused.items()}
    assert max_abs_err(got, reference_forward(spec, weights, data.x, data.lengths,
                                              data.initial_state)) <= ATOL


@pytest.mark.slow
def test_through_the_config(native):
    from lstm_exp.config.experiment import parse
    from lstm_exp.record.artifacts import description_tags

    cfg = lstm_exp.compose("tracking.enabled=false", "model=stacked", "model.implementation=native")
    result = lstm_exp.execute(cfg)
    assert result.engine == "native"
    label = f"native ({result.engine_build})"  # the tag and the console name the build that ran
    assert result.engine_label == label and description_tags(parse(cfg), result)["lstm_exp.engine"] == label
    assert result.reference_max_abs_err <= ATOL
    assert result.arrays["output"].shape == (2, 3, 5)


def test_auto_measures_native_for_every_model_it_computes():
    for shape in ((2, 3, 6), (64, 256, 128)):
        assert choose_engine(ModelSpec("lstm", (4, 5)), shape) == "auto"  # native among the candidates
        assert choose_engine(ModelSpec("gru", (4, 5)), shape) == "auto"  # the native GRU op too
    for unsupported in (ModelSpec("simple_rnn", (4, 5)), ModelSpec("lstm", (4,), bidirectional=True)):
        assert choose_engine(unsupported, (64, 256, 128)) == "keras"


@pytest.mark.slow
def test_builds_for_the_widest_vector_unit_of_this_cpu(native):
    """AVX-512 where the CPU has it (AVX512-FP16 included), AVX2 where that is the widest, ..."""
    from lstm_exp.compute.native.engine import load

    loaded = load()
    assert loaded.build.isa == cpu.widest_isa(), loaded.build.failures
    assert loaded.width == {"avx512": 16, "avx2": 8, "avx": 8, "portable": 4}[loaded.build.isa]


@pytest.mark.parametrize("env", [{cache.DISABLE_ENV: "1"}, {"CXX": "/nonexistent/c++"}])
def test_falls_back_to_fused_with_one_warning(env, monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing cached: CXX must be used
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec, weights, data = make_case("odd-batch-three-layers")
    with caplog.at_level(logging.WARNING, logger="lstm_exp.compute.engines"):
        assert resolve_engine("native", spec) == "fused"
    assert len(caplog.records) == 1 and "native" in caplog.records[0].getMessage()
    engine, run = build_forward("native", spec, weights, data, 0)
    assert engine == "fused"
    got = {k: np.asarray(v) for k, v in run().items()}
    assert max_abs_err(got, reference_forward(spec, weights, data.x, data.lengths,
                                              data.initial_state)) <= ATOL


BUILDER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from lstm_exp.compute.native import cache
    print(cache.cached_build().path)
""")


@pytest.mark.slow
def test_two_processes_build_once_into_the_cache(tmp_path):
    log = tmp_path / "compiles.log"
    compiler = tmp_path / "logging-c++"
    # Logs which process compiles; slow enough that the second process finds the first one
    # holding the lock.
    compiler.write_text(f"#!/bin/sh\necho \"$PPID $@\" >> {log}\nsleep 2\nexec g++ \"$@\"\n")
    compiler.chmod(0o755)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CXX": str(compiler),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(cache.DISABLE_ENV, None)
    script = BUILDER.format(repo=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=cache.LOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                p.wait()
            raise
        assert proc.returncode == 0, err[-3000:]
        outs.append(out.strip().splitlines()[-1])
    assert outs[0] == outs[1]
    assert outs[0].startswith(str(tmp_path / "cache" / "lstm_exp" / "native"))
    # One process compiled, once per flag set tried: the one that built and the wider ones that
    # failed here before it (on CPUs with AVX512-FP16, -march=native fails in TensorFlow's Eigen).
    compiles = log.read_text().splitlines()
    record = json.loads((Path(outs[0]).parent / cache.RECORD).read_text())
    assert len(compiles) == 1 + len(record["failures"]), compiles
    assert len({line.split()[0] for line in compiles}) == 1
    folder = os.path.dirname(outs[0])
    assert sorted(os.listdir(folder)) == [".lock", cache.RECORD, build.LIBRARY]  # no partial files


PORTABLE_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import numpy as np
    from lstm_exp.compute.native.engine import NativeLSTMStack, load
    case = dict(np.load({case!r}))
    weights = {{k: v for k, v in case.items() if k.startswith("layer_")}}
    state = {{k[len("state/"):]: v for k, v in case.items() if k.startswith("state/")}}
    out = NativeLSTMStack(weights)(case["x"], case["lengths"], state, return_gates=True)
    np.savez({out!r}, width=load().width, **{{k: np.asarray(v) for k, v in out.items()}})
""")


@pytest.mark.slow
def test_a_compiler_without_march_native_builds_the_portable_kernel(tmp_path):
    """The generic flag set: the same source at the baseline vector width, against the reference."""
    compiler = tmp_path / "c++-without-march-native"
    compiler.write_text('#!/bin/sh\ncase "$*" in *-march=native*) echo "unsupported: -march=native" >&2;'
                        ' exit 1;; esac\nexec g++ "$@"\n')
    compiler.chmod(0o755)
    spec, weights, data = make_case("odd-batch-three-layers")
    np.savez(tmp_path / "case.npz", x=data.x, lengths=data.lengths, **weights,
             **{f"state/{k}": v for k, v in data.initial_state.items()})
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "CXX": str(compiler),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(cache.DISABLE_ENV, None)
    script = PORTABLE_RUN.format(repo=str(REPO), case=str(tmp_path / "case.npz"),
                                 out=str(tmp_path / "out.npz"))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=cache.LOCK_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict(np.load(tmp_path / "out.npz"))
    assert int(got.pop("width")) == 4  # no -march: 16-byte vectors (SSE on x86-64, NEON on Arm)
    if cpu.widest_isa() != "portable":  # a narrower build than the CPU's is never silent
        assert (f"runs its portable build, narrower than this CPU's {cpu.widest_isa()}: -march=native:"
                in proc.stderr), proc.stderr[-3000:]
        assert "unsupported: -march=native" in proc.stderr
    want = reference_forward(spec, weights, data.x, data.lengths, data.initial_state)
    assert set(got) == set(want) - {"output"}
    assert max_abs_err(got, want) <= ATOL
