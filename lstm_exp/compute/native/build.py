"""Compiles the native LSTM op on first use, against the TensorFlow that is installed.

The library is cached under ``$XDG_CACHE_HOME/lstm_exp/native/<key>/`` (``~/.cache`` when unset),
``<key>`` a hash of the source, the compile command, the TensorFlow version and this CPU, because
``-march=native`` code only runs on the CPU that built it and a home directory may be shared by
machines that differ. Processes that need it at the same time build it once: one holds an
``fcntl`` lock while compiling to a temporary name and renames the result into place, and the
others wait for the lock and then find the library.

``CXX`` names the compiler (``g++`` by default); ``LSTM_EXP_NATIVE_DISABLE=1`` refuses to build
or load, which makes the engine fall back.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

SOURCE = Path(__file__).with_name("lstm_kernel.cc")
LIBRARY = "lstm_kernel.so"
BUILD_TIMEOUT_S = 300  # one compile takes ~5-10 s; a wedged compiler must not hang a run
LOCK_TIMEOUT_S = BUILD_TIMEOUT_S + 60  # a waiter outlives the builder's own timeout
DISABLE_ENV = "LSTM_EXP_NATIVE_DISABLE"
# The generic fallback also serves compilers or CPUs without -march=native.
FLAG_SETS = (["-O3", "-march=native", "-ffp-contract=fast"], ["-O3", "-ffp-contract=fast"])


class NativeBuildError(RuntimeError):
    """The native op could not be built or loaded here (no compiler, failed compile, disabled)."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/lstm_exp/native``, or ``~/.cache/lstm_exp/native``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lstm_exp" / "native"


def _cpu_fingerprint() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return platform.machine() + "|" + "|".join(wanted)


def _compiler() -> str:
    name = os.environ.get("CXX") or "g++"
    path = shutil.which(name)
    if path is None:
        raise NativeBuildError(f"no C++ compiler: CXX={name!r} is not an executable on PATH")
    return path


def _command(compiler: str, flags: list[str], output: Path) -> list[str]:
    import tensorflow as tf

    return [compiler, "-shared", "-fPIC", *flags, *tf.sysconfig.get_compile_flags(),
            str(SOURCE), "-o", str(output), *tf.sysconfig.get_link_flags()]


def _key(compiler: str) -> str:
    import tensorflow as tf

    digest = hashlib.sha256(SOURCE.read_bytes())
    for part in (compiler, repr(FLAG_SETS), tf.__version__, tf.sysconfig.get_lib(), _cpu_fingerprint()):
        digest.update(b"\0" + part.encode())
    return f"tf{tf.__version__}-{digest.hexdigest()[:16]}"


def _lock(path: Path):
    """An exclusive ``flock`` on ``path``, waited for at most LOCK_TIMEOUT_S."""
    import fcntl  # POSIX only; elsewhere the ImportError makes the engine fall back

    handle = open(path, "a+")  # noqa: SIM115 - held until the caller closes it
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise NativeBuildError(f"timed out after {LOCK_TIMEOUT_S} s waiting for {path}") from None
            time.sleep(0.1)


def _compile(compiler: str, target: Path) -> None:
    errors = []
    for flags in FLAG_SETS:
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            proc = subprocess.run(_command(compiler, flags, partial), capture_output=True, text=True,
                                  timeout=BUILD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as err:
            partial.unlink(missing_ok=True)
            errors.append(str(err))
            continue
        if proc.returncode == 0:
            os.replace(partial, target)  # atomic: a reader sees no library or a whole one
            return
        partial.unlink(missing_ok=True)
        errors.append(proc.stderr.strip()[-2000:])
    raise NativeBuildError("compiling the native LSTM op failed: " + " | ".join(errors))


def library_path() -> Path:
    """The built library for this TensorFlow and CPU, compiling it when not cached yet.

    Raises:
        NativeBuildError: disabled by ``LSTM_EXP_NATIVE_DISABLE``, no compiler, or a failed build.
    """
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        raise NativeBuildError(f"disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    compiler = _compiler()
    folder = cache_root() / _key(compiler)
    target = folder / LIBRARY
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = _lock(folder / ".lock")
    except OSError as err:
        raise NativeBuildError(f"cannot use the cache directory {folder}: {err}") from err
    with handle:
        if not target.exists():  # another process may have built it while this one waited
            _compile(compiler, target)
    return target
