"""`python -m lstm_exp.compare`: the runs table, filters, two runs side by side, the h-norm plot."""

import contextlib
import os

import pytest
from conftest import error_lines, run_cli
from mlflow.tracking import MlflowClient
from small_filesystem import small_filesystem

from lstm_exp.cli import compare
from lstm_exp.record.runs import quote_dotted_names


@pytest.fixture(scope="module")
def lstm_and_gru(tmp_path_factory):
    """A store holding a sweep over the tutorial's stack with LSTM and GRU cells: (uri, runs by cell)."""
    launch = tmp_path_factory.mktemp("compare")
    proc = run_cli("-m", "model=stacked,gru", cwd=launch)
    assert proc.returncode == 0, proc.stderr
    uri = f"sqlite:///{launch / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id])
    children = {r.data.params["model.cell"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return launch, uri, children


@pytest.mark.slow
def test_table_lists_each_run_with_shapes_norms_and_status(lstm_and_gru, capsys):
    _, uri, runs = lstm_and_gru
    compare.main(["--tracking-uri", uri])
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["run", "name", "model", "cell", "units", "input", "output", "h", "norms",
                              "c", "norms", "ref", "err", "f", "mean", "pca", "1", "val", "loss", "/",
                              "baseline", "status"]
    assert len(rows) == 2  # the sweep's parent is not an experiment of its own
    lstm_row = next(r for r in rows if r.startswith(runs["lstm"].info.run_id[:8]))
    assert "stacked" in lstm_row and "[4, 5]" in lstm_row and lstm_row.endswith("FINISHED")
    assert "(2, 3, 6)" in lstm_row and "(2, 3, 5)" in lstm_row
    assert f"{runs['lstm'].data.metrics['layer_1.h_norm']:.4g}" in lstm_row


@pytest.mark.slow
@pytest.mark.parametrize("text", ["params.model.cell = 'gru'", "params.`model.cell` = 'gru'"])
def test_filter_in_plain_and_quoted_form(lstm_and_gru, capsys, text):
    _, uri, runs = lstm_and_gru
    compare.main(["--tracking-uri", uri, "--filter", text])
    _, *rows = capsys.readouterr().out.splitlines()
    assert [r[:8] for r in rows] == [runs["gru"].info.run_id[:8]]


def test_dotted_names_are_quoted_outside_strings():
    text = "params.model.cell = 'a.b params.x.y' and tags.`lstm_exp.model` = \"m.n\" and metrics.seed > 1"
    assert quote_dotted_names(text) == (
        "params.`model.cell` = 'a.b params.x.y' and tags.`lstm_exp.model` = \"m.n\" and metrics.seed > 1")


@pytest.mark.slow
def test_bad_filter_exits_2_with_one_line(lstm_and_gru):
    launch, _, _ = lstm_and_gru
    proc = run_cli("--filter", "params.model.cell = gru", module="lstm_exp.compare", cwd=launch)
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert line.startswith("error: --filter") and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_two_runs_show_array_differences_and_config_keys(lstm_and_gru, capsys):
    _, uri, runs = lstm_and_gru
    compare.main([runs["lstm"].info.run_id, runs["gru"].info.run_id[:10], "--tracking-uri", uri])
    out = capsys.readouterr().out.splitlines()
    arrays = {line.split()[0]: line for line in out if line.startswith("  ") and "(" in line}
    assert arrays["input"].split()[-1] == "identical"
    assert arrays["output"].count("(2, 3, 5)") == 2 and "max |diff| = " in arrays["output"]
    assert "layer_0/c" not in arrays  # GRU has no cell state
    assert any(line.startswith("only in A: ") and "layer_0/c" in line for line in out)
    keys = {line.split()[0]: line.split(maxsplit=1)[1] for line in out[out.index(
        "config keys that differ (A | B):") + 1:]}
    assert keys["model.cell"] == "lstm | gru" and keys["model.name"] == "stacked | gru"


@pytest.mark.slow
def test_plot_overlays_h_norm_histories(lstm_and_gru, tmp_path, capsys):
    _, uri, _ = lstm_and_gru
    path = tmp_path / "norms.png"
    compare.main(["--tracking-uri", uri, "--plot", str(path)])
    assert capsys.readouterr().out.splitlines()[-1] == f"plot: {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def full_folder(tmp_path):
    """A folder on a filesystem with no space left: a 64 KiB tmpfs, filled."""
    with small_filesystem(tmp_path / "full", 64 << 10) as folder:
        with contextlib.suppress(OSError), (folder / "fill").open("wb") as fill:
            fill.write(bytes(1 << 20))
        yield folder


@pytest.mark.slow
def test_a_plot_on_a_full_disk_is_one_line_and_leaves_no_file(lstm_and_gru, full_folder, capsys):
    _, uri, _ = lstm_and_gru
    path = full_folder / "norms.png"
    with pytest.raises(SystemExit) as stop:
        compare.main(["--tracking-uri", uri, "--plot", str(path)])
    assert stop.value.code == 2
    line = (f"error: --plot must be a file that can be written here ({os.strerror(28)}). "
            f"Received: --plot='{path}'")
    assert capsys.readouterr().err.splitlines() == [line]
    assert [p.name for p in full_folder.iterdir()] == ["fill"]  # no empty norms.png, no partial file
