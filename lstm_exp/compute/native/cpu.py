"""What this CPU is and the widest vector unit it has, read from ``/proc/cpuinfo``.

The native op is compiled for the machine it runs on, so a figure measured with it means little
without the CPU's name, and a build narrower than the CPU could run is worth a log line. The names
of the vector units are those of the kernel's builds (``lstm_simd.h``): ``avx512`` (16 floats
per vector), ``avx2`` and ``avx`` (8), ``portable`` (4: SSE on x86-64, NEON on Arm).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Widest first; the x86 flag that makes each build possible (the kernel keys on the same macros).
ISA_FLAGS = (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"))
# Flags printed beside a figure: the vector units, and AVX512-FP16, whose header in TensorFlow's
# Eigen does not compile with every g++ (see `build.flag_ladder`).
SHOWN_FLAGS = ("avx512f", "avx512_fp16", "avx2", "fma", "avx")
# What narrows the vector units the contenders use: our op's build (native/target.py), oneDNN's
# dispatch (PyTorch's LSTM, TensorFlow's matmuls), MKL's and PyTorch's own kernels.
CAP_VARIABLES = ("LSTM_EXP_NATIVE_MARCH", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                 "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux: the model and flags are unknown, the builds stay correct
        return []


def _field(name: str) -> str:
    for line in _cpuinfo():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def model_name() -> str:
    """The CPU's model, e.g. ``Intel(R) Xeon(R) Platinum 8480+`` (the machine type where unknown)."""
    return _field("model name") or platform.processor() or platform.machine()


def flags() -> set[str]:
    """The CPU's feature flags (x86: ``flags``, Arm: ``Features``); empty where unknown."""
    return set((_field("flags") or _field("Features")).split())


def widest_isa() -> str:
    """The widest build of the kernel this CPU can run: ``avx512``, ``avx2``, ``avx`` or ``portable``."""
    have = flags()
    return next((isa for isa, flag in ISA_FLAGS if flag in have), "portable")


def narrower(isa: str, other: str) -> bool:
    """Whether build ``isa`` uses narrower vectors, or fewer of their instructions, than ``other``."""
    order = ["portable", *reversed([name for name, _ in ISA_FLAGS])]
    return order.index(isa) < order.index(other)


def fingerprint() -> str:
    """Machine, model and flags: ``-march=native`` code runs only on a CPU that matches."""
    return "|".join([platform.machine(), model_name(), " ".join(sorted(flags()))])


def describe() -> str:
    """One line for a benchmark's header, e.g.
    ``Intel(R) Xeon(R) Processor (x86_64, 2 cores; avx512f avx512_fp16 avx2 fma avx)``, and the
    variables that narrow what the contenders use, when set (a narrower CPU emulated:
    ``...; capped by LSTM_EXP_NATIVE_MARCH=x86-64-v3 ONEDNN_MAX_CPU_ISA=AVX2``)."""
    have = flags()
    shown = " ".join(flag for flag in SHOWN_FLAGS if flag in have) or "no AVX"
    caps = " ".join(f"{name}={os.environ[name]}" for name in CAP_VARIABLES if os.environ.get(name))
    return (f"{model_name()} ({platform.machine()}, {os.cpu_count()} cores; {shown})"
            + (f"; capped by {caps}" if caps else ""))
