"""The per-user cache of built native ops, verified before anything loads from it.

``$XDG_CACHE_HOME/lstm_exp/native/<key>/`` (``~/.cache`` when unset) holds ``lstm_kernel.so``
and ``build.json`` (its size, sha256, build name, flags and the flag sets that failed before
it), ``<key>`` a hash of the sources and headers, the flag sets, the compiler, the TensorFlow version and this
CPU, because ``-march=native`` code only runs on the CPU that built it and a home directory may be
shared by machines that differ.

A library is handed out only when its bytes match the digest written at build time: a truncated
file (a full disk, an interrupted copy), once mapped and run, kills the process with SIGBUS, so
the check must come before any ``dlopen``. A damaged entry is rebuilt in place, with one log line
saying why. Processes that need the op at the same time build it once: one holds an ``fcntl``
lock while compiling and the others wait for it, then find the library.

``LSTM_EXP_NATIVE_DISABLE=1`` refuses to build or load, which makes the engine fall back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import lstm_exp.compute.native.build as build
from lstm_exp.compute.native import cpu
from lstm_exp.compute.native.build import LIBRARY, Build, NativeBuildError
from lstm_exp.compute.native.target import TargetError, target_arch

log = logging.getLogger(__name__)

RECORD = "build.json"
LOCK_TIMEOUT_S = build.BUILD_TIMEOUT_S + 60  # a waiter outlives the builder's own timeout
DISABLE_ENV = "LSTM_EXP_NATIVE_DISABLE"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/lstm_exp/native``, or ``~/.cache/lstm_exp/native``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lstm_exp" / "native"


def _key(cxx: str, arch: tuple[str, ...]) -> str:
    import tensorflow as tf

    digest = hashlib.sha256()
    for path in (build.UNIT, *build.SOURCES, *build.HEADERS):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for part in (cxx, repr(build.BASE_FLAGS), repr(build.flag_ladder(arch)), tf.__version__,
                 tf.sysconfig.get_lib(), cpu.fingerprint()):
        digest.update(b"\0" + part.encode())
    return f"tf{tf.__version__}-{digest.hexdigest()[:16]}"


def file_lock(path: Path):
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


def _write_record(built: Build) -> None:
    """``build.json`` beside the library, renamed into place like the library itself."""
    data = built.path.read_bytes()
    record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "isa": built.isa,
              "flags": list(built.flags), "failures": list(built.failures)}
    path = built.path.with_name(RECORD)
    partial = path.with_name(f".{RECORD}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(record, indent=1))
    os.replace(partial, path)


def check_entry(target: Path) -> tuple[Build | None, str]:
    """Whether the library at ``target`` may be loaded, read without loading it.

    Returns:
        ``(build, "")`` when its bytes match ``build.json``; ``(None, "")`` when there is no
        library; ``(None, why)`` when it is damaged (truncated, overwritten, no or a bad record).
    """
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as err:
        return None, f"unreadable: {err}"
    try:
        record = json.loads(target.with_name(RECORD).read_text())
        size, digest = int(record["size"]), str(record["sha256"])
        flags, failures = tuple(map(str, record["flags"])), tuple(map(str, record["failures"]))
    except FileNotFoundError:
        return None, f"no {RECORD} beside it"
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"its {RECORD} is unreadable ({type(err).__name__}: {err})"
    if len(data) != size:
        return None, f"{len(data)} bytes where the build wrote {size}"
    if hashlib.sha256(data).hexdigest() != digest:
        return None, "its sha256 differs from the one written at build time"
    return Build(target, build.library_isa(data), flags, failures), ""


def cached_build() -> Build:
    """The verified library for this TensorFlow, compiler and CPU, compiled when not cached or damaged.

    Raises:
        NativeBuildError: disabled by ``LSTM_EXP_NATIVE_DISABLE``, no compiler, an unusable cache
            directory, or a failed build.
    """
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        raise NativeBuildError(f"disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    try:
        arch = target_arch()
    except TargetError as err:
        raise NativeBuildError(str(err)) from err
    cxx = build.compiler()
    folder = cache_root() / _key(cxx, arch)
    target = folder / LIBRARY
    found, _ = check_entry(target)
    if found:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = file_lock(folder / ".lock")
    except OSError as err:
        raise NativeBuildError(f"cannot use the cache directory {folder}: {err}") from err
    with handle:
        found, damage = check_entry(target)  # another process may have built it while this one waited
        if found:
            return found
        if damage:
            log.warning("the cached native LSTM op %s is damaged (%s); rebuilding it", target, damage)
        built = build.compile_widest(cxx, target, arch)
        _write_record(built)
    if built.failures:
        log.info("built the native LSTM op for %s with %s, after: %s", built.isa,
                 build.describe_flags(built.flags), " | ".join(built.failures))
    return built
