"""Fixed points of a trained LSTM (`python -m lstm_exp.dynamics`) and the LSTMVis export
(`python -m lstm_exp.export lstmvis`), checked against the float64 NumPy reference and read back with
h5py and YAML.
"""

import numpy as np
import pytest
import yaml
from conftest import compose, error_lines, run_cli
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget
from mlflow.tracking import MlflowClient

from lstm_exp.cli.dynamics import constant_input
from lstm_exp.cli.dynamics import main as dynamics_main
from lstm_exp.compute.fixed_points import FixedPointOptions, find_fixed_points
from lstm_exp.compute.initializers import initial_weights
from lstm_exp.compute.lstm_map import cell_trajectory, state_slices, step
from lstm_exp.compute.reference import reference_forward
from lstm_exp.config import names
from lstm_exp.config.analysis import check_input_width
from lstm_exp.config.experiment import parse
from lstm_exp.config.specs import AnalysisSpec, ModelSpec
from lstm_exp.errors import ConfigError

# The acceptance run: an LSTM of 16 units on the 3-bit flip-flop with the task's defaults (50 steps,
# 2000 sequences, 10 epochs of Adam at 0.01; seed 0): val_loss ~0.004 against the baseline's 1.
FLIPFLOP = ("task=flipflop", "model.units=[16]", "seed=0", "run.print_arrays=false")
TOL_Q = FixedPointOptions().tol_q


def reference_map(spec, weights, u, x):
    """F(x) by the float64 reference: one step of the stack from state x under input u."""
    slices = state_slices(spec)
    state = {name: x[:, where] for name, where in slices.items()}
    arrays = reference_forward(spec, weights, np.broadcast_to(u, (len(x), 1, len(u))).copy(),
                               initial_state=state)
    return np.concatenate([arrays[name] for name in slices], axis=1)


def test_the_map_and_its_jacobian_match_the_reference_and_its_finite_differences():
    spec = ModelSpec("lstm", (5, 4))
    weights = {n: w.astype(np.float64) for n, w in initial_weights(spec, 3, seed=7).items()}
    for n in weights:
        if n.endswith("bias"):  # keras' initial biases are 0 and 1: give the gates something to differ on
            weights[n] = weights[n] + np.random.default_rng(1).normal(0, 0.5, weights[n].shape)
    rng = np.random.default_rng(0)
    u, x = rng.normal(size=3), rng.normal(size=(4, 18))
    fx, jac = step(spec, weights, u, x)
    np.testing.assert_allclose(fx, reference_map(spec, weights, u, x), rtol=0, atol=1e-13)
    eps = 1e-6
    columns = []
    for d in range(x.shape[1]):
        shift = np.zeros(x.shape[1])
        shift[d] = eps
        ahead, behind = reference_map(spec, weights, u, x + shift), reference_map(spec, weights, u, x - shift)
        columns.append((ahead - behind) / (2 * eps))
    finite_differences = np.stack(columns, axis=-1)  # (P, D, D): dF_i/dx_d
    # Central differences err by O(eps^2 |F'''|) plus rounding O(1e-16 / eps): ~1e-10 here.
    np.testing.assert_allclose(jac, finite_differences, rtol=0, atol=1e-8)
    assert np.abs(jac).max() > 0.1  # the comparison is not between near-zero matrices


def test_cell_trajectory_rebuilds_the_recorded_final_cell_state():
    spec = ModelSpec("lstm", (4,))
    rng = np.random.default_rng(3)
    weights = initial_weights(spec, 2, seed=3)
    arrays = reference_forward(spec, weights, rng.normal(size=(3, 7, 2)))
    gates = {g: arrays[names.gate_name(0, g)] for g in ("i", "f", "g")}
    np.testing.assert_allclose(cell_trajectory(gates)[:, -1], arrays["layer_0/c"], rtol=0, atol=1e-14)


def test_the_search_reports_what_did_not_converge_instead_of_failing():
    spec = ModelSpec("lstm", (6,))
    weights = initial_weights(spec, 2, seed=0)
    starts = np.random.default_rng(0).normal(size=(10, 12))
    found = find_fixed_points(spec, weights, np.zeros(2), starts, FixedPointOptions(n_inits=16, max_iters=1))
    assert found.iterations == 1
    assert found.n_not_converged + found.n_outliers + len(found.q) >= 1
    assert found.n_not_converged >= 1  # one Levenberg-Marquardt step from noise does not reach 1e-12


@pytest.fixture(scope="module")
def flipflop_run(tmp_path_factory):
    """The acceptance run, recorded through the real CLI, and its fixed points through the real CLI."""
    folder = tmp_path_factory.mktemp("flipflop")
    trained = run_cli(*FLIPFLOP, cwd=folder)
    assert trained.returncode == 0, trained.stderr
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (source,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    analysed = run_cli(source.info.run_id, cwd=folder, module="lstm_exp.dynamics")
    assert analysed.returncode == 0, analysed.stderr
    return folder, client, source, analysed


@pytest.mark.slow
def test_a_flipflop_lstm_has_one_stable_point_per_memory_and_saddles_between(flipflop_run):
    folder, client, source, analysed = flipflop_run
    linked = f"tags.`{names.DYNAMICS_OF_TAG}` = '{source.info.run_id}'"
    (dynamics,) = client.search_runs([source.info.experiment_id], linked)
    assert dynamics.info.status == "FINISHED"
    # The analysed run is left as it ended: same status, same end time, no artifact added.
    again = client.get_run(source.info.run_id)
    assert (again.info.status, again.info.end_time) == ("FINISHED", source.info.end_time)
    assert names.FIXED_POINTS_FILE not in {a.path for a in client.list_artifacts(source.info.run_id)}
    path = client.download_artifacts(dynamics.info.run_id, names.FIXED_POINTS_FILE, str(folder))
    with np.load(path) as archive:
        fp = {n: archive[n] for n in archive.files}
    stable = fp["stable"]
    assert stable.sum() == 8
    patterns = {tuple(np.sign(row).astype(int)) for row in fp["readout"][stable]}
    assert len(patterns) == 8  # all 2^3 sign patterns, one per stable point
    assert (~stable).sum() >= 1 and fp["unstable_modes"][~stable].min() >= 1
    # Independently: every reported point is a fixed point of the float64 reference.
    weights = {n: np.asarray(v, np.float64) for n, v in np.load(
        client.download_artifacts(source.info.run_id, "weights.npz", str(folder))).items()}
    spec = ModelSpec("lstm", (16,))
    residual = np.linalg.norm(reference_map(spec, weights, fp["input"], fp["points"]) - fp["points"], axis=1)
    assert residual.max() < np.sqrt(2 * TOL_Q)  # q = ½‖F(x) − x‖² < tol_q
    # Stability from the eigenvalues as stored.
    np.testing.assert_array_equal(stable, np.abs(fp["eigenvalues"]).max(axis=1) < 1)
    metrics = dynamics.data.metrics
    assert (metrics[names.FP_N_STABLE], metrics[names.FP_N_SADDLE]) == (8, (~stable).sum())
    assert metrics[names.FP_MAX_Q] == pytest.approx(fp["q"].max(), rel=1e-12) and fp["q"].max() < TOL_Q
    assert "plots/fixed_points.png" in {a.path for a in client.list_artifacts(dynamics.info.run_id, "plots")}
    assert "8 stable" in analysed.stdout


@pytest.mark.slow
def test_the_lstmvis_export_reads_back_as_the_recorded_states(flipflop_run, tmp_path):
    import h5py

    folder, client, source, _ = flipflop_run
    out = tmp_path / "lstmvis"
    proc = run_cli("lstmvis", source.info.run_id, str(out), cwd=folder, module="lstm_exp.export")
    assert proc.returncode == 0, proc.stderr
    with np.load(client.download_artifacts(source.info.run_id, "states.npz", str(tmp_path))) as archive:
        states = {n: archive[n] for n in archive.files}
    config = yaml.safe_load((out / "lstm.yml").read_text())
    assert config["word_sequence"] == {"file": "words", "path": "word_ids", "dict_file": "words_dict"}
    types = {entry["path"]: entry for entry in config["states"]["types"]}
    assert types["layer_0/h"] == {"type": "output", "layer": 1, "path": "layer_0/h", "transform": "none"}
    assert types["layer_0/c"]["type"] == "state"
    sequence = states["layer_0/sequence"]  # (N, T, 16)
    n, t, units = sequence.shape
    with h5py.File(out / config["files"]["states"]) as file:
        h, c = file["layer_0/h"][...], file["layer_0/c"][...]
    assert h.shape == c.shape == (n * t, units)
    for row, step_ in ((0, 0), (1, 0), (n - 1, t - 1), (2, 17)):  # row-major: row n·T + t
        np.testing.assert_array_equal(h[row * t + step_], sequence[row, step_])
    np.testing.assert_array_equal(h, sequence.reshape(n * t, units))  # bit for bit
    # c is rebuilt from the gates: its last step is the recorded final c, to float32 rounding.
    np.testing.assert_allclose(c.reshape(n, t, units)[:, -1], states["layer_0/c"], rtol=0, atol=1e-6)
    words = dict(line.split() for line in (out / config["files"]["words_dict"]).read_text().splitlines())
    with h5py.File(out / config["files"]["words"]) as file:
        ids = file["word_ids"][...]
    assert ids.shape == (n * t,)
    by_id = {int(i): w for w, i in words.items()}
    x = states["input"].reshape(n * t, 3)
    for k in (0, 5, n * t - 1):
        expected = "".join("+" if v > 0 else "-" if v < 0 else "0" for v in x[k])
        assert by_id[int(ids[k])] == expected


def _dynamics_in_process(capsys, *args: str) -> tuple[int, list[str]]:
    """`python -m lstm_exp.dynamics args` in this process: (exit status, stderr's lines)."""
    with pytest.raises(SystemExit) as ended:
        dynamics_main(list(args))
    return ended.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.slow  # reads a run recorded through the CLI (the session's stacked_run)
def test_bad_runs_and_options_end_with_one_line(stacked_run, capsys):
    store = ("--tracking-uri", stacked_run.uri)
    cases = [
        (("ffffffff", *store), "RUN_ID"),  # no such run
        ((stacked_run.run_id, "--input", "0,0", *store), "--input"),  # the stack's input is 6 wide
        ((stacked_run.run_id, "--n-inits", "0", *store), "--n-inits"),
    ]
    for args, key in cases:
        status, lines = _dynamics_in_process(capsys, *args)
        assert status == 2 and len(lines) == 1 and lines[0].startswith(f"error: {key} must be"), lines
    (weights,) = (stacked_run.folder / "mlartifacts").rglob(f"{stacked_run.run_id}/artifacts/weights.npz")
    weights.unlink()  # a run without weights
    status, lines = _dynamics_in_process(capsys, stacked_run.run_id, *store)
    assert status == 2 and len(lines) == 1 and "weights.npz" in lines[0], lines
    client = MlflowClient(stacked_run.uri)
    assert len(client.search_runs([client.get_run(stacked_run.run_id).info.experiment_id])) == 1  # none added


@pytest.mark.slow
def test_a_run_without_cell_states_is_refused_in_one_line(tmp_path):
    recorded = run_cli("model=gru", cwd=tmp_path)
    assert recorded.returncode == 0, recorded.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    proc = run_cli(run.info.run_id, cwd=tmp_path, module="lstm_exp.dynamics")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert line.startswith("error: RUN_ID must be a run of an LSTM stack (its cells are gru"), line
    assert len(client.search_runs([run.info.experiment_id])) == 1  # no dynamics run was opened
    # The LSTMVis export needs no c: a GRU stack's h alone, one `output` type per layer.
    out = tmp_path / "lstmvis"
    exported = run_cli("lstmvis", run.info.run_id, str(out), cwd=tmp_path, module="lstm_exp.export")
    assert exported.returncode == 0, exported.stderr
    types = yaml.safe_load((out / "lstm.yml").read_text())["states"]["types"]
    assert [(t["path"], t["type"]) for t in types] == [(f"layer_{k}/h", "output") for k in range(len(types))]
    assert len(types) == len(compose("model=gru").model.units)


def test_analysis_keys_are_checked_at_the_edge():
    refused_cases = [
        (("model=gru", "analysis.fixed_points=true"), "analysis.fixed_points"),
        (("model.peepholes=true", "analysis.fixed_points=true"), "analysis.fixed_points"),
        (("analysis.input=[0,nan,0]",), "analysis.input"),
        # 4 (256, D, D) float64 arrays with D = 4096: 128 GB, over run.max_memory_gb=8
        (("analysis.fixed_points=true", "model.units=[1024,1024]"), "analysis.fixed_points"),
    ]
    for overrides, key in refused_cases:
        with pytest.raises(ConfigError) as refused:
            parse(compose(*overrides))
        assert refused.value.key == key
    analysis = parse(compose("analysis.fixed_points=true", "analysis.input=[1,0]")).analysis
    assert analysis == AnalysisSpec(True, (1.0, 0.0))
    with pytest.raises(ConfigError, match="input width F=6"):
        check_input_width(analysis, 6)


@budget(60)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)), max_size=6))
def test_a_constant_input_is_f_finite_numbers_or_one_line(parts):
    text = ",".join(str(p) for p in parts)
    try:
        u = constant_input(text, 3)
    except ConfigError as error:
        assert error.key == "--input" and "\n" not in str(error)
        return
    assert u.shape == (3,) and np.isfinite(u).all()
    assert u.tolist() == [float(p) for p in text.split(",")]


@pytest.mark.slow
def test_a_run_with_analysis_fixed_points_logs_them_with_its_artifacts(tmp_path):
    proc = run_cli("model=stacked", "analysis.fixed_points=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    assert run.info.status == "FINISHED"
    assert {names.FP_N_STABLE, names.FP_N_SADDLE, names.FP_MAX_Q} <= set(run.data.metrics)
    with np.load(client.download_artifacts(run.info.run_id, names.FIXED_POINTS_FILE, str(tmp_path))) as fp:
        points, u = fp["points"], fp["input"]
        assert fp["stable"].sum() == run.data.metrics[names.FP_N_STABLE]
    weights = dict(np.load(client.download_artifacts(run.info.run_id, "weights.npz", str(tmp_path))))
    spec = ModelSpec("lstm", (4, 5))
    assert np.array_equal(u, np.zeros(6)) and len(points) >= 1
    residual = np.linalg.norm(reference_map(spec, weights, u, points) - points, axis=1)
    assert residual.max() < np.sqrt(2 * TOL_Q)
