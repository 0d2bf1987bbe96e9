"""lstm_exp against the real TF1 cells: weights imported from the tf1 .npz and from the TF1 checkpoint.

One oracle subprocess (tf.compat.v1 needs TF_USE_LEGACY_KERAS=1 in its own process) writes every
case; each case then runs through the real config and `lstm_exp.execute`.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

import lstm_exp

pytestmark = pytest.mark.slow  # TF1 in a subprocess, then the CLI

try:  # `python -m pytest` from the repo root
    from tests.oracles.tf1_oracle import load_oracle, run_oracles
except ImportError:  # plain `pytest`: only tests/ is on sys.path
    from oracles.tf1_oracle import load_oracle, run_oracles

ATOL = 1e-5
BATCH = [
    [[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
    [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]],
]
SEQUENCES = dict(input=BATCH, lengths=[3, 2], initial_state="random", random_bias=True)

# name: (TF1 oracle spec, lstm_exp overrides). Random biases, so the bias layout is really tested.
CASES = {
    "tutorial_step": (
        dict(cell="basic", units=[4], input=[[3, 2, 2, 2, 2, 2]], scope="LSTM_sample1", seed=1), []
    ),
    "multi_4_5": (
        dict(cell="lstm", units=[4, 5], multi=True, input=BATCH, random_bias=True, seed=2),
        ["model=stacked"],
    ),
    "multi_4_5_lengths": (
        dict(cell="lstm", units=[4, 5], multi=True, **SEQUENCES, seed=3),
        ["model=stacked", "input.lengths=[3,2]"],
    ),
    "peep_clip_proj": (  # small clips so that both bite; a forget bias other than TF1's default
        dict(cell="lstm", units=[5], peepholes=True, cell_clip=0.3, num_proj=3, proj_clip=0.05,
             forget_bias=0.5, **SEQUENCES, seed=4),
        ["model=stacked", "model.units=[5]", "model.peepholes=true", "model.cell_clip=0.3",
         "model.proj_size=3", "model.proj_clip=0.05", "model.weights.forget_bias=0.5",
         "input.lengths=[3,2]"],
    ),
    "bidirectional": (
        dict(cell="lstm", units=[4], peepholes=True, bidirectional=True, **SEQUENCES, seed=5),
        ["model=stacked", "model.units=[4]", "model.bidirectional=true", "model.peepholes=true",
         "input.lengths=[3,2]"],
    ),
}


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """{case: (case folder, expected arrays)}; the folder holds weights_tf1.npz and model.ckpt*."""
    root = tmp_path_factory.mktemp("tf1")
    run_oracles([(spec, str(root / name)) for name, (spec, _) in CASES.items()])
    found = {}
    for name in CASES:
        _, expected, _ = load_oracle(str(root / name))
        initial = {n[len("initial/") :]: v for n, v in expected.items() if n.startswith("initial/")}
        if initial:  # TF1's own random initial state, in lstm_exp's names
            np.savez(root / name / "initial.npz", **initial)
        found[name] = (root / name, expected)
    return found


def _overrides(name: str, folder: Path, source: str) -> list[str]:
    path, layout = (folder / "weights_tf1.npz", "tf1") if source == "npz" else (folder / "model.ckpt", "auto")
    overrides = [*CASES[name][1], f"model.weights.path={path}", f"model.weights.layout={layout}",
                 "tracking.enabled=false"]
    if (folder / "initial.npz").is_file():
        overrides.append(f"input.initial_state={folder / 'initial.npz'}")
    return overrides


def _compared(expected: dict) -> list[str]:
    return [n for n in expected if n == "output" or re.fullmatch(r"layer_\d+/((fw|bw)/)?[ch]", n)]


@pytest.mark.parametrize("source", ["npz", "checkpoint"])
@pytest.mark.parametrize("name", list(CASES))
def test_matches_tf1(oracle, name, source):
    folder, expected = oracle[name]
    result = lstm_exp.execute(lstm_exp.compose(*_overrides(name, folder, source)))
    worst = 0.0
    for key in _compared(expected):
        np.testing.assert_allclose(result.arrays[key], expected[key], rtol=0, atol=ATOL, err_msg=key)
        worst = max(worst, float(np.abs(result.arrays[key] - expected[key]).max()))
    print(f"{name}/{source}: max |lstm_exp - TF1| = {worst:.2g} over {_compared(expected)}")
    assert result.reference_max_abs_err <= 1e-6


def test_clips_bite(oracle):
    # Otherwise the extras case would pass with the clipping removed.
    _, expected = oracle["peep_clip_proj"]
    assert np.isclose(np.abs(expected["layer_0/c"]).max(), 0.3)
    assert np.isclose(np.abs(expected["output"]).max(), 0.05)


def _printed(report: str) -> dict[str, np.ndarray]:
    """`layer_{k}/{c,h}` and `output` as the report prints them."""
    arrays, name = {}, None
    for line in report.splitlines():
        layer = re.match(r"layer (\d+):", line)
        header = re.match(r"\s*(c|h|output) \(([\d, ]+)\) =", line)
        if layer:
            k = layer.group(1)
        elif header:
            part, shape = header.group(1), tuple(int(n) for n in header.group(2).split(",") if n.strip())
            name = "output" if part == "output" else f"layer_{k}/{part}"
            arrays[name] = (shape, [])
        elif name and (not line.strip() or line.strip()[0] in "[-0123456789"):
            arrays[name][1].extend(float(v) for v in re.findall(r"-?\d+\.\d*(?:e[-+]\d+)?", line))
        else:
            name = None
    return {n: np.reshape(values, shape) for n, (shape, values) in arrays.items()}


def test_cli_from_checkpoint_prints_tf1_states(oracle, tmp_path):
    # The "done when": the tutorial's stack, its TF1 checkpoint, the states TF1 printed.
    folder, expected = oracle["multi_4_5"]
    proc = run_cli("model=stacked", f"model.weights.path={folder / 'model.ckpt'}", "tracking.enabled=false",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = _printed(proc.stdout)
    assert sorted(printed) == ["layer_0/c", "layer_0/h", "layer_1/c", "layer_1/h", "output"]
    for key, value in printed.items():
        np.testing.assert_allclose(value, expected[key], rtol=0, atol=ATOL, err_msg=key)
