"""scripts/bench: its smoke run completes and writes every section's ratios to JSON."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_bench_smoke_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["smoke"] is True
    assert results["forward"]["matmul_peak_gflops"] > 0
    rows = results["forward"]["stack"]["results"]
    assert {"stock_tf_function", "fused_layerwise_xla", "fused_wavefront_graph"} <= set(rows)
    assert results["start"]["wall_ratio"] > 0 and results["start"]["rss_ratio"] > 0
    assert results["sweep"]["per_job_ratio"] > 0
    assert "cold start:" in proc.stdout and "sweep of 3:" in proc.stdout
