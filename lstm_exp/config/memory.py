"""The memory a forward run takes, from its config alone: what `run.max_memory_gb` is checked against.

A run's peak resident memory is TensorFlow's base (the interpreter, TensorFlow, Keras and the
engine, with nothing computed yet), plus the run's float32 arrays (the engine returns them and NumPy
shares its buffers), the engine's input copies, and the float64 check. The check
(`compute/reference.py`) computes batch rows a chunk at a time, so it adds at most
`CHECK_BUDGET_BYTES` (or one row, when a single row is larger) whatever the run's size.

The constants are measured (scripts/bench_memory.py, README "Memory"), with their margins here.
"""

import math

from lstm_exp.config import names

FLOAT64 = 8
# Resident memory of `python -m lstm_exp.run` beyond what the estimate counts: the interpreter,
# NumPy, Hydra, TensorFlow and Keras, the engine, and what a run holds besides its arrays (TensorFlow's
# and the allocator's pools). Measured (scripts/bench_memory.py; 2-core "Intel(R) Xeon(R) Processor",
# TensorFlow 2.21, CPU only, tracking off): the same run at T=1 peaks at 735 MiB, and runs with
# arrays hold 23-61 MiB more than their arrays, input and check; 820 MiB puts the estimate 2-9 %
# above every peak measured there. Another machine, or a sweep's job (which imports MLflow too),
# has another base: the bench prints the base it measures next to this constant.
TF_BASE_BYTES = 820 * 2**20
# What the libraries' pools (TensorFlow's, the allocator's, BLAS's buffers) hold beyond the bytes a
# forward run counts, growing with them up to a bound. Measured (scripts/bench_memory.py) on a 2-core
# "AMD EPYC", whose base is 801 MiB: runs counting 107, 228 and 720 MiB (T=128, 512, 2048) held 15,
# 49 and 65 MiB more, so that the base alone left T=512 and 2048 3 % under their peaks; 15 % of the
# count, at most 64 MiB, puts every one 1.00-1.03x (and the Intel runs above at most 1.10x).
POOL_FRACTION = 0.15
POOL_CAP_BYTES = 64 * 2**20
INPUT_COPIES = 2  # the input: NumPy's float32 array and the engine's tf.constant of it
CHECK_BUDGET_BYTES = 64 * 2**20  # the float64 check's working set: rows are checked this many bytes at a time


def reference_row_bytes(shapes: dict[str, tuple[int, ...]]) -> int:
    """Float64 bytes one batch row takes in the check: its input, every array, and `output`'s difference.

    Args:
        shapes: `validate.expected_shapes` of the run (the batch first in every shape).
    """
    per_row = sum(math.prod(s[1:]) for s in shapes.values())  # `output`: its difference's temporary
    return FLOAT64 * per_row


def check_rows(shapes: dict[str, tuple[int, ...]], budget_bytes: int = CHECK_BUDGET_BYTES) -> int:
    """Batch rows the check computes at a time: as many as fit in `budget_bytes`, at least one.

    Example:
        >>> check_rows(expected_shapes(ModelSpec("lstm", (256, 256)), 32, 2048, 64, False))
        1
    """
    batch = shapes[names.INPUT][0]
    return max(1, min(batch, budget_bytes // reference_row_bytes(shapes)))
