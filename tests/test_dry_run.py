"""Shapes before running: `dry_run=true` and `--cfg job` say what a run will produce, without TensorFlow."""

import ast
import subprocess
import sys

import pytest
from conftest import CLI_TIMEOUT, REPO, compose, run_cli
from omegaconf import OmegaConf

from lstm_exp.compute.runner import execute
from lstm_exp.config.experiment import parse
from lstm_exp.errors import ConfigError
from lstm_exp.jobs.job import run_job

MODELS = sorted(path.stem for path in (REPO / "conf" / "model").glob("*.yaml"))
VARIANTS = [
    *[(f"model={name}",) for name in MODELS],
    ("model=stacked", "model.bidirectional=true"),
    ("model=gru", "model.bidirectional=true"),
    ("model=stacked", "model.proj_size=3"),
]


def _dry_run_shapes(*overrides: str) -> dict[str, tuple[int, ...]]:
    """The shapes `dry_run=true` prints, read back from its report."""
    report = run_job(compose(*overrides, "dry_run=true"), list(overrides)).report
    shapes, memory = report.split("\n\n")
    assert memory.startswith("memory: about ") and "TensorFlow's base included" in memory
    _, *lines = shapes.splitlines()
    return {name: ast.literal_eval(shape) for name, shape in (line.split(maxsplit=1) for line in lines)}


@pytest.mark.parametrize("overrides", VARIANTS, ids=" ".join)
def test_dry_run_shapes_are_the_real_shapes(overrides):
    try:
        printed = _dry_run_shapes(*overrides)
    except ConfigError as error:
        if "proj_size" in " ".join(overrides):
            pytest.skip(f"projection not available: {error}")
        raise
    arrays = execute(parse(compose(*overrides))).arrays
    assert printed == {name: tuple(a.shape) for name, a in arrays.items()}


DRY_RUN_IN_PROCESS = """
import sys
sys.argv = ["lstm-exp", "model=stacked", "model.bidirectional=true", "dry_run=true"]
from lstm_exp.cli.run import main
try:
    main()
except SystemExit as done:
    print("exit", done.code)
print("loaded", sorted(m for m in ("tensorflow", "keras", "mlflow") if m in sys.modules))
"""


def test_dry_run_imports_no_tensorflow(tmp_path):
    proc = subprocess.run([sys.executable, "-c", DRY_RUN_IN_PROCESS], cwd=tmp_path,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    *shapes, memory, done, loaded = proc.stdout.splitlines()
    shapes = dict(line.split(maxsplit=1) for line in shapes[1:] if line)
    assert memory.endswith("; the gates (4 per LSTM layer and direction) are the largest arrays")
    assert shapes["layer_1/fw/gates/o"] == "(2, 3, 5)" and shapes["output"] == "(2, 3, 10)"
    assert (done, loaded) == ("exit 0", "loaded []")
    assert not (tmp_path / "mlflow.db").exists()


def test_cfg_job_prints_the_composed_config(tmp_path):
    proc = run_cli("model=stacked", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = OmegaConf.create(proc.stdout)
    assert cfg.model.units == [4, 5] and cfg.input.name == "tutorial_batch"
    assert not (tmp_path / "mlflow.db").exists()


def test_dry_run_prints_the_estimate_max_memory_is_checked_against():
    from lstm_exp.config.experiment import estimate_run
    from lstm_exp.config.validate import expected_shapes

    overrides = ("model=gru", "input=random", "input.batch=4", "input.timesteps=50", "input.features=3")
    report = run_job(compose(*overrides, "dry_run=true"), list(overrides)).report
    experiment = parse(compose(*overrides))
    estimate = estimate_run(experiment, expected_shapes(experiment.model, 4, 50, 3, one_step=False))
    assert report.splitlines()[-1] == (f"memory: about {estimate / 2**30:.2f} GB at the peak, TensorFlow's "
                                       "base included (run.max_memory_gb=8)")  # GRU: no gates to name
    with pytest.raises(ConfigError, match="run.max_memory_gb"):  # the same figure refuses, before allocating
        parse(compose(*overrides, f"run.max_memory_gb={estimate / 2**30 * 0.99}"))
    parse(compose(*overrides, f"run.max_memory_gb={estimate / 2**30 * 1.01}"))
