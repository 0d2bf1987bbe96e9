"""TensorFlow, loaded quietly and deterministically.

TensorFlow 2.21 writes its C++ start-up chatter (oneDNN notices, CUDA probes, CPU feature hints)
straight to file descriptor 2, ignoring TF_CPP_MIN_LOG_LEVEL. While TensorFlow works we route fd 2 to
a file and replay afterwards every line that is not such a notice, so real warnings still show.
"""

import contextlib
import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|To enable the following"
    r"|\S+ \d+ \S+\.cc:\d+\])"
)


@contextlib.contextmanager
def quiet_native_stderr():
    """Captures fd 2 for the duration and replays the lines that are not TensorFlow notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)


def load_tensorflow(seed: int):
    """Imports TensorFlow, seeds every generator and enables op determinism. Returns `tf`."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return tf
