"""scripts/bench: its smoke run completes and writes every section to JSON. The structure is checked,
not the ratios: a smoke run's timings are too short and too noisy to mean anything."""

import json
import math
import subprocess
import sys

import pytest
from conftest import REPO

from lstm_exp.compute.native import cpu


def _number(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _smoke(script: str, tmp_path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `scripts/<script> --smoke extra`; its output and the JSON it wrote, once it exited 0."""
    out = tmp_path / f"{script}.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--smoke", *extra,
                           "--json", str(out)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(out.read_text())


@pytest.mark.slow
def test_bench_smoke_writes_its_json(tmp_path):
    proc, results = _smoke("bench.py", tmp_path)
    assert results["smoke"] is True and set(results) >= {"start", "sweep", "forward", "train", "total_s"}
    assert results["cpu"] == cpu.describe() and f"CPU: {cpu.describe()}" in proc.stdout  # figures name it
    assert results["forward"]["stack"]["native_build"] in ("avx512", "avx2", "avx", "portable")
    rows = results["forward"]["stack"]["results"]
    assert {"native", "torch", "stock_tf_function", "fused_layerwise_xla"} <= set(rows)
    assert all(_number(row["median_ms"]) and _number(row["time_vs_torch"]) for row in rows.values())
    assert all(_number(results["start"][k]) for k in ("wall_ratio", "rss_ratio"))
    sweep = results["sweep"]
    assert sweep["jobs"] == 3 and set(sweep["runs"]) == {"sweep_1", "sweep_3", "plain_1", "plain_3"}
    assert _number(sweep["per_job_ratio"])
    assert _number(results["train"]["ratio"])
    for line in ("cold start:", "sweep of 3:", "native time / torch time:", "training epoch"):
        assert line in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_step_bench_smoke_names_the_cpu_and_every_contender(tmp_path, cell):
    """Its first losses agreeing with PyTorch's (1e-4 relative) is checked by the script itself,
    before it times: it exits non-zero otherwise."""
    proc, results = _smoke("bench_train_step.py", tmp_path, "--cell", cell)
    assert results["cpu"] == cpu.describe() and f"CPU: {cpu.describe()}" in proc.stdout
    assert results["cell"] == cell
    row = results["smoke"]
    assert {"keras", "native", "torch"} <= set(row["median_ms"]) == set(row["cpu_ms"])
    assert all(_number(v) for part in ("median_ms", "cpu_ms", "vs_torch") for v in row[part].values())
    assert "| smoke B4 T8 F3 [8, 8] | native |" in proc.stdout


@pytest.mark.slow
def test_training_epoch_bench_trains_the_same_model_in_pytorch(tmp_path):
    """The worked comparison's epoch against PyTorch: every contender named, and PyTorch's losses
    (an independent implementation of the same model, data, order and Adam) match lstm_exp's."""
    proc, results = _smoke("bench_train_epoch.py", tmp_path)
    assert results["cpu"] == cpu.describe() and f"CPU: {cpu.describe()}" in proc.stdout
    assert {"keras", "native", "auto", "torch"} <= set(results["wall_ms"]) == set(results["cpu_ms"])
    assert all(_number(v) for part in ("wall_ms", "cpu_ms", "vs_torch") for v in results[part].values())
    losses = results["last_losses"]
    for name in ("keras", "native", "auto"):  # five epochs of Adam in float32: observed ~1e-4 relative
        assert losses[name] == pytest.approx(losses["torch"], rel=1e-3), name


@pytest.mark.slow
def test_gru_forward_bench_smoke_names_the_cpu_and_every_contender(tmp_path):
    """Its contenders' outputs agreeing with stock Keras' (1e-5) is checked by the script itself,
    before it times: it exits non-zero otherwise."""
    proc, results = _smoke("bench_forward_gru.py", tmp_path)
    assert results["cpu"] == cpu.describe() and f"CPU: {cpu.describe()}" in proc.stdout
    row = results["smoke"]
    assert {"keras", "native", "torch"} <= set(row["median_ms"]) == set(row["cpu_ms"])
    assert all(_number(v) for part in ("median_ms", "cpu_ms", "vs_torch") for v in row[part].values())
