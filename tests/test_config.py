"""The real config: every option of every group composes and validates; defaults pair model and input."""

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, compose

from lstm_exp.compute.runner import prepare
from lstm_exp.config.experiment import parse
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.validate import expected_shapes, validate_model

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in (REPO / "conf").iterdir()
    if group.is_dir()
}


def test_groups_exist():
    assert {"basic", "stacked", "gru", "simple_rnn"} <= set(GROUPS["model"])
    assert {"tutorial_step", "tutorial_batch", "random", "file"} <= set(GROUPS["input"])
    assert {"sqlite", "server", "off"} <= set(GROUPS["tracking"])


@pytest.mark.parametrize(
    "group,option", [(g, o) for g, options in sorted(GROUPS.items()) for o in options]
)
def test_every_option_composes_and_validates(group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "input" and option == "file":
        np.save(tmp_path / "x.npy", np.ones((2, 3, 6), np.float32))
        overrides.append(f"input.path={tmp_path / 'x.npy'}")
    if group == "task" and option == "file":
        np.savez(tmp_path / "d.npz", x=np.ones((10, 3, 2), np.float32), y=np.zeros(10, np.float32))
        overrides.append(f"task.path={tmp_path / 'd.npz'}")
    if group == "experiment":
        overrides = [f"+{group}={option}"]
    cfg = compose(*overrides)
    prepared = prepare(parse(cfg))  # NumPy only: validation, inputs, weights, expected shapes
    assert prepared.expected_shapes["output"][0] == prepared.data.x.shape[0]


def test_default_is_the_tutorial_first_cell():
    prepared = prepare(parse(compose()))
    assert prepared.spec == ModelSpec("lstm", (4,))
    np.testing.assert_array_equal(prepared.data.x, [[[3, 2, 2, 2, 2, 2]]])
    assert prepared.data.one_step
    assert prepared.expected_shapes["output"] == (1, 4)


def test_stacked_pairs_with_the_tutorial_batch_and_any_input_can_be_chosen():
    stacked = prepare(parse(compose("model=stacked")))
    assert stacked.data.x.shape == (2, 3, 6) and stacked.expected_shapes["output"] == (2, 3, 5)
    assert stacked.data.x[1, 2].tolist() == [0, 0, 0, 0, 3, 2]
    chosen = prepare(parse(compose("model=stacked", "input=random", "input.batch=8", "input.timesteps=20")))
    assert chosen.data.x.shape == (8, 20, 6) and chosen.expected_shapes["output"] == (8, 20, 5)


def test_expected_shapes_of_the_tutorial_stack():
    shapes = expected_shapes(ModelSpec("lstm", (4, 5)), 2, 3, 6, one_step=False)
    assert shapes["layer_0/h"] == (2, 4) and shapes["layer_1/c"] == (2, 5)
    assert shapes["layer_1/gates/f"] == (2, 3, 5) and shapes["output"] == (2, 3, 5)


def test_projection_and_bidirectional_shapes():
    spec = validate_model(compose("model=stacked", "model.proj_size=3", "model.bidirectional=true").model)
    shapes = expected_shapes(spec, 2, 3, 6, one_step=False)
    assert shapes["layer_0/fw/h"] == (2, 3) and shapes["layer_0/fw/c"] == (2, 4)
    assert shapes["layer_1/sequence"] == (2, 3, 6) and shapes["output"] == (2, 3, 6)


def test_seeded_inputs_and_weights_are_reproducible():
    a = prepare(parse(compose("model=stacked", "input=random", "seed=3")))
    b = prepare(parse(compose("model=stacked", "input=random", "seed=3")))
    c = prepare(parse(compose("model=stacked", "input=random", "seed=4")))
    np.testing.assert_array_equal(a.data.x, b.data.x)
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])
    assert not np.array_equal(a.data.x, c.data.x)
    assert not np.array_equal(a.weights["layer_0/kernel"], c.weights["layer_0/kernel"])


def test_csv_input_is_one_sequence(tmp_path: Path):
    path = tmp_path / "seq.csv"
    path.write_text("1,2,3\n4,5,6\n")
    prepared = prepare(parse(compose("input=file", f"input.path={path}")))
    np.testing.assert_array_equal(prepared.data.x, [[[1, 2, 3], [4, 5, 6]]])
