"""The native op's build: the widest vector unit on every x86-64 generation in use, a cache that is
verified before anything loads from it, and fallbacks whose log line says why.

Real compiles (g++ against the installed TensorFlow) and real processes (`python -m lstm_exp.run`).
"""

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_cli
from processes import with_environment

from lstm_exp.compute.native import build, cache, cpu

# -march target: the build it must get. sapphirerapids has AVX512-FP16, with which g++ 12 fails
# inside TensorFlow's Eigen; the ladder's next step must still give it AVX-512. Zen 3 has no AVX-512.
MATRIX = {"x86-64-v2": "portable", "x86-64-v3": "avx2", "x86-64-v4": "avx512",
          "skylake-avx512": "avx512", "icelake-server": "avx512", "sapphirerapids": "avx512",
          "znver3": "avx2", "znver4": "avx512"}
# What `-march=native` passes on a Zen 4 with a g++ that does not know znver4 (before 12.3): the
# nearest known CPU plus every extension it finds, AVX-512 (no FP16) included.
ZEN4_FOR_OLDER_GCC = ("-march=znver3", "-mavx512f", "-mavx512cd", "-mavx512vl", "-mavx512bw",
                      "-mavx512dq", "-mavx512ifma", "-mavx512vbmi", "-mavx512vbmi2", "-mavx512bitalg",
                      "-mavx512vnni", "-mavx512vpopcntdq", "-mavx512bf16", "-mgfni", "-mvaes",
                      "-mvpclmulqdq")
ON_X86 = platform.machine().lower() in build.X86_MACHINES


def _target(cxx: str, march: str) -> tuple[str, ...]:
    """``-march=<march>``, or for Zen 4 what an older g++'s ``-march=native`` makes of it."""
    probe = subprocess.run([cxx, f"-march={march}", "-E", "-x", "c++", "-", "-o", os.devnull],
                           input="", capture_output=True, text=True, timeout=60)
    if probe.returncode != 0 and march == "znver4":
        return ZEN4_FOR_OLDER_GCC
    return (f"-march={march}",)


def test_every_flag_set_is_native_less_something():
    """Whatever compiles runs here: no flag set asks for more than -march=native gives."""
    for machine in ("x86_64", "aarch64"):
        ladder = build.flag_ladder(machine=machine)
        assert ladder[0] == ("-march=native",) and ladder[-1] == ()
        for flags in ladder[1:-1]:
            assert flags[0] == "-march=native" and all(f.startswith("-mno-") for f in flags[1:])
    assert build.flag_ladder(machine="aarch64") == [("-march=native",), ()]  # no x86 options on Arm


@pytest.mark.slow
@pytest.mark.skipif(not ON_X86 or shutil.which("g++") is None, reason="needs g++ targeting x86-64")
def test_compile_matrix_builds_the_widest_vector_unit_of_each_target(tmp_path):
    """Compiles only (the libraries are for other CPUs): each target's build and its name."""
    cxx = build.compiler()

    targets = {march: _target(cxx, march) for march in MATRIX}

    def compile_for(march):
        folder = tmp_path / march
        folder.mkdir()
        try:
            return build.compile_widest(cxx, folder / build.LIBRARY, targets[march])
        except build.NativeBuildError as err:
            return err

    with ThreadPoolExecutor(2) as pool:  # two compiles at a time: ~1 min on 2 cores
        built = dict(zip(MATRIX, pool.map(compile_for, MATRIX), strict=True))
    got = {march: b.isa if isinstance(b, build.Build) else f"failed: {b}" for march, b in built.items()}
    assert got == MATRIX
    for march, b in built.items():
        ladder = build.flag_ladder(targets[march])
        assert b.flags in ladder[:-1] and b.path.is_file()  # built for the target, not the baseline
        assert len(b.failures) == ladder.index(b.flags)  # one reason per wider flag set


def test_the_build_compiles_every_source_and_the_cache_key_hashes_each_one(tmp_path, monkeypatch):
    """The op is several sources and shared headers, compiled as one translation unit that includes
    every source (TensorFlow's headers parsed once); a change to any file (a header included by the
    others too, or the unit) makes a new cache key, hence a rebuild."""
    command = build.compile_command("g++", (), tmp_path / "x.so")
    assert [arg for arg in command if arg.endswith(".cc")] == [str(build.UNIT)]
    includes = {path: [line.split('"')[1] for line in path.read_text().splitlines()
                       if line.startswith('#include "') and not line.startswith('#include "tensorflow/')]
                for path in (build.UNIT, *build.SOURCES, *build.HEADERS)}
    assert includes[build.UNIT] == [p.name for p in build.SOURCES]  # every source, each once
    used = {name for path in (*build.SOURCES, *build.HEADERS) for name in includes[path]}
    assert used == {p.name for p in build.HEADERS}  # every header the sources use is hashed
    copies = []
    for path in (build.UNIT, *build.SOURCES, *build.HEADERS):
        copies.append(tmp_path / path.name)
        shutil.copy(path, copies[-1])
    monkeypatch.setattr(build, "UNIT", copies[0])
    monkeypatch.setattr(build, "SOURCES", tuple(copies[1:1 + len(build.SOURCES)]))
    monkeypatch.setattr(build, "HEADERS", tuple(copies[1 + len(build.SOURCES):]))
    keys = {cache._key("g++", build.NATIVE)}
    for path in copies:
        path.write_text(path.read_text() + "\n// changed\n")
        keys.add(cache._key("g++", build.NATIVE))
    assert len(keys) == len(copies) + 1


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A compiler wrapper and a cache holding a good build of the op, made by one real run, with a
    pristine copy of that cache. The wrapper's path is part of the cache key, so every test uses
    this one; a file named `refuse` beside it makes it fail."""
    root = tmp_path_factory.mktemp("native-cache")
    compiler = root / "c++"
    compiler.write_text(f'#!/bin/sh\n[ -e "{root}/refuse" ] && exit 1\nexec g++ "$@"\n')
    compiler.chmod(0o755)
    proc = run_cli("model=stacked", "tracking.enabled=false", cwd=root, env=_env(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copytree(root / "cache", root / "pristine")
    return root


@pytest.fixture
def cached_library(built_cache):
    """The cache as the build left it (restored for every test); returns its library."""
    shutil.rmtree(built_cache / "cache")
    shutil.copytree(built_cache / "pristine", built_cache / "cache")
    (built_cache / "refuse").unlink(missing_ok=True)
    (library,) = (built_cache / "cache").glob(f"lstm_exp/native/*/{build.LIBRARY}")
    assert _verified(library)
    return library


def _env(root: Path) -> dict:
    return {"XDG_CACHE_HOME": str(root / "cache"), "CXX": str(root / "c++"), cache.DISABLE_ENV: ""}


def _verified(library: Path) -> bool:
    record = json.loads(library.with_name(cache.RECORD).read_text())
    return hashlib.sha256(library.read_bytes()).hexdigest() == record["sha256"]


def _log(proc) -> list[str]:
    """The lines a run logged (Hydra's console handler writes them to stdout or stderr)."""
    return (proc.stdout + proc.stderr).splitlines()


DAMAGES = ("truncated library", "overwritten library", "garbage record", "missing record")


def _corrupt(library: Path, damage: str) -> None:
    if damage == "truncated library":  # a full disk, an interrupted copy: mapped, it raised SIGBUS
        library.write_bytes(library.read_bytes()[: library.stat().st_size // 2])
    elif damage == "overwritten library":  # same size, other bytes
        data = bytearray(library.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 4096] = bytes(4096)
        library.write_bytes(bytes(data))
    elif damage == "garbage record":
        library.with_name(cache.RECORD).write_text("{not json")
    elif damage == "missing record":
        library.with_name(cache.RECORD).unlink()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated library", "garbage record"])
def test_a_damaged_cache_entry_is_rebuilt_with_one_log_line(built_cache, cached_library, tmp_path, damage):
    _corrupt(cached_library, damage)
    proc = run_cli("model=stacked", "tracking.enabled=false", cwd=tmp_path, env=_env(built_cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"engine=native ({cpu.widest_isa()})" in proc.stdout
    lines = [line for line in _log(proc) if "is damaged" in line]
    assert len(lines) == 1 and f"{cached_library}" in lines[0], proc.stderr[-3000:]
    assert _verified(cached_library)  # rebuilt in place


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGES)
def test_every_damage_is_found_before_loading(cached_library, damage):
    """What the runs above rely on, for each kind of damage (no run: nothing is rebuilt)."""
    _corrupt(cached_library, damage)
    found, reason = cache.check_entry(cached_library)
    assert found is None and reason


@pytest.mark.slow
def test_a_damaged_entry_that_cannot_be_rebuilt_falls_back(built_cache, cached_library, tmp_path):
    _corrupt(cached_library, "truncated library")
    (built_cache / "refuse").touch()
    proc = run_cli("model=stacked", "tracking.enabled=false", cwd=tmp_path, env=_env(built_cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # `auto` without native: stock Keras or fused, whichever its measurement found faster here
    assert "engine=keras (auto, measured" in proc.stdout or "engine=fused (auto, measured" in proc.stdout
    assert len([line for line in _log(proc) if "is damaged" in line]) == 1
    (unavailable,) = [line for line in _log(proc) if "native LSTM engine unavailable" in line]
    assert f"'{built_cache / 'c++'}' exited with status 1 and printed nothing" in unavailable


@pytest.mark.slow
def test_a_fallback_says_why_each_flag_set_failed(tmp_path):
    proc = run_cli("model=stacked", "tracking.enabled=false", "model.implementation=native", cwd=tmp_path,
                   env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "CXX": "/bin/false",
                        cache.DISABLE_ENV: ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "engine=fused" in proc.stdout
    (line,) = [line for line in _log(proc) if "native LSTM engine unavailable" in line]
    for flags in build.flag_ladder():
        assert f"{build.describe_flags(flags)}: '/bin/false' exited with status 1 and printed nothing" in line


@pytest.mark.skipif(shutil.which("g++") is None or not Path("/dev/full").exists(),
                    reason="needs g++ and /dev/full")
def test_a_link_that_fails_gives_the_linkers_reason(tmp_path):
    # The linker writing to /dev/full meets ENOSPC, as it does in a cache on a full disk; collect2's
    # "ld returned 1 exit status", the only line with "error:", does not say why.
    source = tmp_path / "one.cc"
    source.write_text("int one() { return 1; }\n")
    proc = subprocess.run(["g++", "-shared", "-fPIC", str(source), "-o", "/dev/full"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert build._reason("g++", proc).endswith("final link failed: No space left on device"), proc.stderr


def test_a_compiler_that_hangs_is_given_up_with_a_reason(tmp_path, monkeypatch):
    # A wedged compiler (a network filesystem, a licence server): BUILD_TIMEOUT_S is long, so a short
    # one stands in for it; the compiler really runs, and is killed when it is spent.
    hang = tmp_path / "c++"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    monkeypatch.setattr(build, "BUILD_TIMEOUT_S", 3)
    with pytest.raises(build.NativeBuildError) as failed:
        build.compile_widest(str(hang), tmp_path / build.LIBRARY)
    first, *rest = str(failed.value).split(": ", 1)[1].split(" | ")
    assert first == f"-march=native: '{hang}' did not finish within the build's 3 s (killed)"
    assert rest and all(reason.endswith(": not tried, the build's 3 s were spent") for reason in rest)
    assert list(tmp_path.iterdir()) == [hang]  # no partial library left


@pytest.mark.slow
def test_sigterm_during_the_build_leaves_no_compiler_running(tmp_path):
    # g++ runs cc1plus as its child: killing g++ alone left cc1plus compiling after the run had exited.
    value = uuid.uuid4().hex
    mark = f"LSTM_EXP_BUILD_TEST={value}"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), cache.DISABLE_ENV: "",
           "LSTM_EXP_BUILD_TEST": value}
    env.pop("CXX", None)
    command = [sys.executable, "-m", "lstm_exp.run", "model=stacked", "tracking.enabled=false"]
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 240  # TensorFlow's import, then the compile starts
        while (run.poll() is None and time.monotonic() < deadline
               and not any("cc1plus" in p.command for p in with_environment(mark))):
            time.sleep(0.1)
        assert run.poll() is None, "the run ended before its build could be stopped"
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
        left = [p for p in with_environment(mark) if p.pid != run.pid]
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        for p in with_environment(mark):  # a regression's leftovers go with the test
            with contextlib.suppress(OSError):
                os.kill(p.pid, signal.SIGKILL)
    assert run.returncode == 143, stderr[-3000:]
    assert left == [], "the build's processes outlived the run"


def test_a_compile_error_is_named_by_its_file_not_its_folders():
    """The reason keeps the compiler's first error with the file's name, not the include tree's path."""
    stderr = ("In file included from /venv/lib/python3.11/site-packages/tensorflow/include/Eigen/Core:12,\n"
              "/venv/lib/python3.11/site-packages/tensorflow/include/Eigen/src/Core/arch/AVX512/"
              "PacketMathFP16.h:740:49: error: expected initializer before '<' token\n"
              "note: something after\n")
    failed = subprocess.CompletedProcess(["g++"], 1, stdout="", stderr=stderr)
    assert build._reason("/usr/bin/g++", failed) == (
        "'/usr/bin/g++' exited with status 1: "
        "PacketMathFP16.h:740:49: error: expected initializer before '<' token")
