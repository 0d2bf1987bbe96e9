"""Compiles the native LSTM and GRU ops against the installed TensorFlow, for the widest vector unit
that compiles.

The flag sets are tried widest first (`flag_ladder`). Every one is ``-march=native`` (or the
narrower level ``target.py`` was asked for) less something, never more, so whatever compiles runs on
this CPU:

- ``-march=native``: everything the CPU has;
- ``-mno-avx512fp16``: on CPUs with AVX512-FP16 (Intel since Sapphire Rapids) g++ 12 fails inside
  TensorFlow's own Eigen header (``PacketMathFP16.h: expected initializer before '<'``); the kernel
  uses no half precision, so this is still the AVX-512 build;
- ``-mno-avx512f`` (AVX2), ``-mno-avx`` (SSE): should a header break at those widths too;
- no ``-march`` at all: the compiler's baseline, for compilers that refuse ``-march=native``.

Each flag set that fails is kept with its reason; the one that compiled is named by the vector
unit it was compiled for (``avx512``, ``avx2``, ``avx``, ``portable``), read from the library's
bytes (``lstm_exp_native_isa`` in ``lstm_forward.cc``) so that no library is loaded to name it.
``cache.py`` decides when to build and where the library lives. ``CXX`` names the compiler
(``g++`` by default).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lstm_exp.compute.native import target

# The op's sources, compiled as one translation unit (`UNIT` includes each: TensorFlow's headers are
# then parsed once, not once per source), and the headers they share: all of them go into the cache
# key (cache.py), so changing any one rebuilds.
SOURCES = tuple(Path(__file__).with_name(name)
                for name in ("lstm_forward.cc", "lstm_columns.cc", "lstm_backward.cc",
                             "gru_forward.cc", "gru_backward.cc"))
UNIT = Path(__file__).with_name("native_ops.cc")
HEADERS = tuple(Path(__file__).with_name(name) for name in ("lstm_simd.h", "lstm_forward.h"))
LIBRARY = "lstm_kernel.so"
BUILD_TIMEOUT_S = 300  # the whole ladder; one compile takes ~8-20 s, but a wedged one must not hang a run
BASE_FLAGS = ("-O3", "-ffp-contract=fast")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
NATIVE = target.NATIVE
_ISA_MARK = re.compile(rb"lstm_exp_native_isa=(\w+)\0")
_LINKER_STATUS = re.compile(r"^collect2: error: ld returned \d+ exit status$")


class NativeBuildError(RuntimeError):
    """The native op could not be built or loaded here (no compiler, failed compile, disabled)."""


@dataclass(frozen=True)
class Build:
    """A compiled native op and how it came about.

    Attributes:
        path: The library.
        isa: The vector unit it was compiled for: ``avx512``, ``avx2``, ``avx`` or ``portable``.
        flags: The flag set that compiled it (``()`` is the compiler's baseline).
        failures: ``"<flags>: <reason>"`` for each wider flag set that failed before it.
    """

    path: Path
    isa: str
    flags: tuple[str, ...]
    failures: tuple[str, ...] = ()


def compiler() -> str:
    """The path of ``$CXX`` (default ``g++``).

    Raises:
        NativeBuildError: it is not an executable on PATH.
    """
    name = os.environ.get("CXX") or "g++"
    path = shutil.which(name)
    if path is None:
        raise NativeBuildError(f"no C++ compiler: CXX={name!r} is not an executable on PATH")
    return path


def flag_ladder(arch: tuple[str, ...] = NATIVE, machine: str | None = None) -> list[tuple[str, ...]]:
    """The flag sets to try, widest first (see the module's docstring).

    Args:
        arch: The target CPU: ``-march=native`` for this one; another (``("-march=znver3",)``, ...)
            compiles for that CPU, to be run elsewhere.
        machine: ``platform.machine()`` by default. The ``-mno-*`` steps are x86 options; other
            machines try ``arch`` and then the baseline.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in X86_MACHINES:
        return [arch, ()]
    return [arch, (*arch, "-mno-avx512fp16"), (*arch, "-mno-avx512f"), (*arch, "-mno-avx"), ()]


def compile_command(cxx: str, flags: tuple[str, ...], output: Path) -> list[str]:
    """The command that compiles the op with ``flags`` into ``output``, against the installed TensorFlow."""
    import tensorflow as tf

    return [cxx, "-shared", "-fPIC", *BASE_FLAGS, *flags, *tf.sysconfig.get_compile_flags(),
            str(UNIT), "-o", str(output), *tf.sysconfig.get_link_flags()]


def library_isa(data: bytes) -> str:
    """The build's name, from the bytes of a library compiled from `UNIT`.

    Raises:
        NativeBuildError: the bytes carry no name (not our library, or a damaged one).
    """
    match = _ISA_MARK.search(data)
    if match is None:
        raise NativeBuildError("the library carries no lstm_exp_native_isa name")
    return match.group(1).decode()


def describe_flags(flags: tuple[str, ...]) -> str:
    return " ".join(flags) or "no -march"


def _reason(cxx: str, proc: subprocess.CompletedProcess) -> str:
    """Why a compile failed, in one line: the compiler's first error, else its last line."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if not lines:
        return f"{cxx!r} exited with status {proc.returncode} and printed nothing"
    # g++ prints the include trail first and the notes after; "error:" marks the cause. collect2's
    # "ld returned 1 exit status" only repeats the status: the linker's own line (a full disk's "final
    # link failed: No space left on device", an undefined symbol) says why.
    lines = [line for line in lines if not _LINKER_STATUS.search(line)] or lines
    cause = next((line for line in lines if re.search(r"\berror:", line)), lines[-1])
    # The file's folders (TensorFlow's include tree, often 200 characters) say nothing the name does not.
    cause = re.sub(r"(?<!\S)/\S*/([^/\s]+:\d+(:\d+)?:)", r"\1", cause)
    return f"{cxx!r} exited with status {proc.returncode}: {cause[:400]}"


def _run_compiler(command: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """Runs the compiler in a process group of its own, killed whole on a timeout, Ctrl-C or SIGTERM.

    g++ runs cc1plus, as and ld as its children: killing g++ alone (what `subprocess.run` does) left
    them compiling after the run had ended.
    """
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except BaseException:  # the timeout, or the run being stopped: nothing of the build outlives it
            with contextlib.suppress(ProcessLookupError):  # the group may be gone already
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def compile_widest(cxx: str, target: Path, arch: tuple[str, ...] = NATIVE) -> Build:
    """Compiles the op into ``target`` with the first flag set of `flag_ladder` that compiles.

    The library is written under a temporary name and renamed into place, so a reader of
    ``target`` sees no library or a whole one.

    Raises:
        NativeBuildError: no flag set compiled; the message gives each one's reason.
    """
    failures = []
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for flags in flag_ladder(arch):
        if time.monotonic() >= deadline:  # a compiler that hangs costs BUILD_TIMEOUT_S once, not per flag set
            failures.append(f"{describe_flags(flags)}: not tried, the build's {BUILD_TIMEOUT_S} s were spent")
            continue
        try:
            proc = _run_compiler(compile_command(cxx, flags, partial), deadline - time.monotonic())
            reason = "" if proc.returncode == 0 else _reason(cxx, proc)
        except subprocess.TimeoutExpired:  # its text would repeat the whole command line
            reason = f"{cxx!r} did not finish within the build's {BUILD_TIMEOUT_S} s (killed)"
        except OSError as err:
            reason = f"{type(err).__name__}: {err}"
        if not reason:
            try:
                isa = library_isa(partial.read_bytes())
            except (OSError, NativeBuildError) as err:
                reason = str(err)
        if reason:
            partial.unlink(missing_ok=True)
            failures.append(f"{describe_flags(flags)}: {reason}")
            continue
        os.replace(partial, target)  # atomic: a reader sees no library or a whole one
        return Build(target, isa, flags, tuple(failures))
    raise NativeBuildError("compiling the native LSTM op failed: " + " | ".join(failures))
