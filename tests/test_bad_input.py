"""Bad configuration and bad input, one table: exit 2, one line on stderr naming the key, no
traceback, and nothing recorded in the (default, SQLite) store but at most a FAILED run saying why.

Most cases run `lstm_exp.run.main` in this process (milliseconds each); the `cli` ones run the real
command in a subprocess and also check its peak memory, so a refused size is refused before allocating.
"""

import contextlib
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from conftest import CLI_TIMEOUT

from lstm_exp.cli import run

PEAK_RSS_MB = 400  # the CLI failing early needs ~100 MB; the refused config would need ~1.3 GB
BIG = "input=random input.batch=64 input.timesteps=20000 input.features=64 run.max_memory_gb=0.5"

# (id, overrides, the key the line must name, how: "cli" = subprocess, "" = in-process)
CASES = [
    ("values-ragged", "input.values=[[1,2],[3]]", "input.values", "cli"),
    ("values-text", "input.values=[[1,a]]", "input.values", ""),
    ("values-nan", "input.values=[[1,nan,2,2,2,2]]", "input.values", ""),
    ("values-inf", "input.values=[[1,inf,2,2,2,2]]", "input.values", ""),
    ("values-bool", "input.values=[[true,1,2,2,2,2]]", "input.values", ""),
    ("values-empty", "input.values=[]", "input.values", ""),
    ("file-missing", "input=file input.path=missing.npy", "input.path", ""),
    ("file-not-given", "input=file", "input.path", ""),
    ("file-empty", "input=file input.path=empty.npy", "input.path", ""),
    ("file-corrupt", "input=file input.path=corrupt.npy", "input.path", "cli"),
    ("file-rank-1", "input=file input.path=rank1.npy", "input.path", ""),
    ("file-rank-4", "input=file input.path=rank4.npy", "input.path", ""),
    ("file-pickled", "input=file input.path=pickled.npy", "input.path", ""),
    ("file-csv-text", "input=file input.path=text.csv", "input.path", ""),
    ("file-npz-ambiguous", "input=file input.path=two.npz", "input.path", ""),
    ("file-suffix", "input=file input.path=data.txt", "input.path", ""),
    ("lengths-zero", "model=stacked input.lengths=[0,3]", "input.lengths", ""),
    ("lengths-past-T", "model=stacked input.lengths=[4,3]", "input.lengths", ""),
    ("lengths-count", "model=stacked input.lengths=[3]", "input.lengths", ""),
    ("units-zero", "model.units=[0]", "model.units[0]", ""),
    ("units-negative", "model.units=[4,-1]", "model.units[1]", ""),
    ("units-huge", f"model.units=[{10**9}]", "model.units[0]", "cli"),
    ("units-float", "model.units=[2.5]", "model.units[0]", ""),
    ("units-empty", "model.units=[]", "model.units", ""),
    ("too-big-for-memory", BIG, "run.max_memory_gb=0.5; this one needs about 1.3 GB", "cli"),
    ("unknown-key", "foo=1", "foo", ""),
    ("unknown-group", "model=nope", "model", "cli"),
    ("seed-text", "seed=abc", "seed", "cli"),
    ("seed-negative", "seed=-1", "seed", ""),
    ("bool-maybe", "model.bidirectional=maybe", "model.bidirectional", ""),
    ("weights-shape", "model.weights.path=weights.npz", "model.weights.path", ""),
    ("cell-unknown", "model.cell=lstmx", "model.cell", ""),
    ("extras-not-lstm", "model.cell=gru model.peepholes=true", "model.peepholes", ""),
    ("distribution", "input=random input.distribution=zipf", "input.distribution", ""),
    ("implementation", "model.implementation=warp", "model.implementation", ""),
    ("initial-state", "input.initial_state=bogus", "input.initial_state", ""),
    ("repeat-negative", "run.repeat=-1", "run.repeat", ""),
    ("memory-limit-zero", "run.max_memory_gb=0", "run.max_memory_gb", ""),
    ("fault-unknown", "run.inject_fault=boom", "run.inject_fault", ""),
    ("uri-scheme", "tracking.uri=ftp://example.org/x", "tracking.uri", ""),
    ("experiment-empty", "tracking.experiment=", "tracking.experiment", ""),
    ("timeout-negative", "tracking.timeout_s=-1", "tracking.timeout_s", ""),
]


def _write_bad_files(folder) -> None:
    np.save(folder / "rank1.npy", np.zeros(6))
    np.save(folder / "rank4.npy", np.zeros((1, 2, 3, 6)))
    np.save(folder / "pickled.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    np.savez(folder / "two.npz", a=np.zeros((1, 6)), b=np.zeros((1, 6)))
    (folder / "empty.npy").write_bytes(b"")
    (folder / "corrupt.npy").write_bytes(np.random.default_rng(0).bytes(512))
    (folder / "text.csv").write_text("1,2,3\n4,five,6\n")
    (folder / "data.txt").write_text("1 2 3\n")
    # LSTM(4) weights for F=5 features, while the default input has F=6.
    np.savez(folder / "weights.npz", **{"layer_0/kernel": np.zeros((5, 16)),
                                        "layer_0/recurrent_kernel": np.zeros((4, 16)),
                                        "layer_0/bias": np.zeros(16)})


def _in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """`main()` with `sys.argv` patched: (exit status, stderr)."""
    # Hydra's logging.config.dictConfig would close every existing handler, absl's too (TensorFlow,
    # imported by other test modules), and with it the stream pytest captured when absl was imported.
    logging_off = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["lstm-exp", *args, *logging_off])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # main() sets it; monkeypatch restores it
    with pytest.raises(SystemExit) as stop:
        run.main()
    return stop.value.code, capsys.readouterr().err


# Runs the CLI as its only child and writes that child's peak RSS (KiB) to $PEAK_RSS_FILE. Measured
# from pytest directly, the child would count the pages of the (large) pytest process it forked from.
MEASURE = (
    "import os, resource, subprocess, sys\n"
    "status = subprocess.call([sys.executable, '-m', 'lstm_exp.run', *sys.argv[1:]])\n"
    "with open(os.environ['PEAK_RSS_FILE'], 'w') as out:\n"
    "    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(status)\n"
)


def _subprocess(args: list[str], cwd) -> tuple[int, str, float]:
    """The real CLI: (exit status, stderr, peak RSS in MB)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PEAK_RSS_FILE": str(cwd / "peak_rss")}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-c", MEASURE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT)
    return proc.returncode, proc.stderr, int((cwd / "peak_rss").read_text()) / 1024


def _runs(launch) -> list[tuple[str, str | None]]:
    """(status, lstm_exp.error tag) of every run in the launch directory's store."""
    if not (launch / "mlflow.db").exists():
        return []
    with contextlib.closing(sqlite3.connect(launch / "mlflow.db")) as db:
        return db.execute(
            "SELECT status, (SELECT value FROM tags WHERE tags.run_uuid = runs.run_uuid"
            " AND key = 'lstm_exp.error') FROM runs"
        ).fetchall()


@pytest.mark.parametrize("overrides,key,how", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, overrides, key, how):
    _write_bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)  # the default store is ./mlflow.db of the launch directory
    args = overrides.split()
    if how == "cli":
        status, stderr, peak_mb = _subprocess(args, tmp_path)
        print(f"peak RSS {peak_mb:.0f} MB")
        assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB: allocated before refusing"
    else:
        status, stderr = _in_process(args, monkeypatch, capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert key in lines[0]
    assert lines[0].startswith("error: ")
    # Nothing recorded, or at most a run that ended FAILED and says why.
    assert all(status == "FAILED" and reason for status, reason in _runs(tmp_path))
