"""`LSTM_EXP_NATIVE_MARCH`: the native op compiled for a narrower x86-64 level than this CPU's.

Only levels this CPU can run are accepted (code for another CPU would stop on an illegal
instruction); anything else is refused with one line, and the op then falls back like any other
build failure. A narrower build is never silent: the run logs it with the variable as the reason.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from lstm_exp.compute.native import cache, cpu, target
from lstm_exp.compute.native.build import NativeBuildError


def test_unset_or_native_compiles_for_this_cpu(monkeypatch):
    for value in (None, "", "native"):
        if value is None:
            monkeypatch.delenv(target.MARCH_ENV, raising=False)
        else:
            monkeypatch.setenv(target.MARCH_ENV, value)
        assert target.target_arch() == ("-march=native",)
        assert target.why_narrower() is None


@pytest.mark.parametrize("value", ["skylake", "x86-64-v5", "X86-64-V3", "-march=native", "x86-64-v3 -O0",
                                   "ü", "x86-64-v3\n"])
def test_a_value_that_is_no_level_is_refused_with_one_line_and_builds_nothing(monkeypatch, tmp_path, value):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(target.MARCH_ENV, value)
    if value.strip() == "x86-64-v3" and "avx2" in cpu.flags():  # surrounding blanks are stripped
        return
    with pytest.raises(NativeBuildError) as refused:
        cache.cached_build()
    assert str(refused.value) == (f"{target.MARCH_ENV} must be one of native, x86-64, x86-64-v2, "
                                  f"x86-64-v3, x86-64-v4; got {value.strip()!r}")
    assert not any(tmp_path.iterdir())  # refused before a folder or a compile


def test_a_level_this_cpu_cannot_run_is_refused(monkeypatch):
    # A CPU with AVX2 but no AVX-512 (its flags as /proc/cpuinfo names them).
    avx2_cpu = {*target.LEVELS["x86-64-v2"], *target.LEVELS["x86-64-v3"]}
    monkeypatch.setattr(cpu, "flags", lambda: avx2_cpu)
    monkeypatch.setenv(target.MARCH_ENV, "x86-64-v3")
    assert target.target_arch() == ("-march=x86-64-v3", "-mtune=native")
    monkeypatch.setenv(target.MARCH_ENV, "x86-64-v4")
    with pytest.raises(target.TargetError, match=r"x86-64-v4 needs avx512bw, avx512cd, avx512dq, "
                       r"avx512f, avx512vl, which this CPU \(.*\) lacks"):
        target.target_arch()
    monkeypatch.setattr(cpu, "flags", lambda: avx2_cpu - {"fma"})  # one flag short of the level
    monkeypatch.setenv(target.MARCH_ENV, "x86-64-v3")
    with pytest.raises(target.TargetError, match="x86-64-v3 needs fma, which"):
        target.target_arch()


def test_each_level_compiles_into_its_own_cache_entry():
    assert cache._key("g++", ("-march=x86-64-v3", "-mtune=native")) != cache._key("g++", target.NATIVE)


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("g++") is None
                    or not {"avx512f", "avx2", "fma"} <= cpu.flags(),
                    reason="needs g++ and an x86-64 CPU with AVX-512 (to run its AVX2 build beside it)")
def test_a_run_on_the_avx2_build_says_so_and_its_arrays_match_the_reference(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), target.MARCH_ENV: "x86-64-v3",
           cache.DISABLE_ENV: ""}
    proc = run_cli("model=stacked", "model.implementation=native", "tracking.enabled=false",
                   cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]  # the run checks every array against float64
    assert ("the native LSTM op runs its avx2 build, narrower than this CPU's avx512: "
            f"{target.MARCH_ENV}=x86-64-v3") in proc.stderr + proc.stdout
    (record,) = (tmp_path / "cache").glob(f"lstm_exp/native/*/{cache.RECORD}")
    assert "-march=x86-64-v3" in record.read_text()


def test_a_benchmark_header_names_what_narrows_the_contenders(monkeypatch):
    for name in cpu.CAP_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    plain = cpu.describe()
    assert "capped" not in plain
    monkeypatch.setenv(target.MARCH_ENV, "x86-64-v3")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu.describe() == f"{plain}; capped by {target.MARCH_ENV}=x86-64-v3 ONEDNN_MAX_CPU_ISA=AVX2"


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("g++") is None
                    or not {"avx512f", "avx2", "fma"} <= cpu.flags(),
                    reason="needs g++ and an x86-64 CPU with AVX-512 (to run its AVX2 build beside it)")
def test_the_avx2_build_passes_the_numeric_checks_the_widest_build_passes(tmp_path):
    """The AVX2 build has its own tile (2 rows, not 4): every forward case against the float64
    reference and every gradient against TensorFlow's and finite differences, LSTM and GRU, run on
    that build.
    One process loads one build (TensorFlow registers an op's name once), hence a pytest of its own."""
    tests = Path(__file__).parent
    checks = ["test_matches_float64_reference", "test_gradients_match", "test_gru_gradients_match",
              "test_native_gru_stack_matches"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), target.MARCH_ENV: "x86-64-v3",
           cache.DISABLE_ENV: ""}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                           *(str(tests / name) for name in ("test_native.py", "test_native_training.py",
                                                            "test_native_gru.py")),
                           "-k", " or ".join(checks)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = [line for line in proc.stdout.splitlines() if " PASSED" in line]
    for check in checks:  # each ran (and passed), none was left out by a rename
        assert any(f"::{check}" in line for line in ran), (check, proc.stdout[-2000:])
    (record,) = (tmp_path / "cache").glob(f"lstm_exp/native/*/{cache.RECORD}")
    assert "-march=x86-64-v3" in record.read_text()  # they ran on the AVX2 build
