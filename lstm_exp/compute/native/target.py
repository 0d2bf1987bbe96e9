"""Which CPU the native op is compiled for: this one, or a narrower x86-64 level asked for by name.

By default the op is compiled with ``-march=native``. ``LSTM_EXP_NATIVE_MARCH`` names an x86-64
microarchitecture level instead (``x86-64-v4``: AVX-512; ``x86-64-v3``: AVX2 and FMA;
``x86-64-v2``: SSE4.2; ``x86-64``: the baseline), tuned for this CPU (``-mtune=native``). It is how a
machine runs, and measures, what a CPU without its widest units would: the AVX2 build on an AVX-512
machine. Only levels are accepted, and only those this CPU can run: code compiled for a CPU this
one is not would die on its first illegal instruction, not fall back.
"""

from __future__ import annotations

import os

from lstm_exp.compute.native import cpu

MARCH_ENV = "LSTM_EXP_NATIVE_MARCH"
NATIVE = ("-march=native",)
# Each level's flags as /proc/cpuinfo names them (x86-64 psABI; each level includes the ones below).
LEVELS = {
    "x86-64": (),
    "x86-64-v2": ("cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"),
    "x86-64-v3": ("avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"),
    "x86-64-v4": ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"),
}


class TargetError(ValueError):
    """``LSTM_EXP_NATIVE_MARCH`` names no level, or one this CPU cannot run."""


def target_arch() -> tuple[str, ...]:
    """The ``-march`` flags to compile for: ``NATIVE``, or the level named by ``LSTM_EXP_NATIVE_MARCH``.

    Raises:
        TargetError: the variable names no level, or a level this CPU lacks flags of.
    """
    level = os.environ.get(MARCH_ENV, "").strip()
    if level in ("", "native"):
        return NATIVE
    if level not in LEVELS:
        raise TargetError(f"{MARCH_ENV} must be one of native, {', '.join(LEVELS)}; got {level!r}")
    names = list(LEVELS)
    needed = [flag for lower in names[: names.index(level) + 1] for flag in LEVELS[lower]]
    missing = sorted(set(needed) - cpu.flags())
    if missing:
        raise TargetError(f"{MARCH_ENV}={level} needs {', '.join(missing)}, which this CPU "
                          f"({cpu.model_name()}) lacks: its code would stop on an illegal instruction")
    return (f"-march={level}", "-mtune=native")


def why_narrower() -> str | None:
    """Why the build is narrower than the CPU when it was asked for (``LSTM_EXP_NATIVE_MARCH=...``)."""
    level = os.environ.get(MARCH_ENV, "").strip()
    return f"{MARCH_ENV}={level}" if level not in ("", "native") else None
