"""Files made byte by byte, for the bad-input and hostile-input tests: .npy files with any header,
.npz archives of any members, and TF1 checkpoints of any tensors.
"""

import io
import struct
import zipfile

import numpy as np

# The tutorial's default model (LSTM 4 on F=6): its tf1 kernel is (F + H, 4H) = (10, 16).
TF1_KERNEL, TF1_BIAS = "rnn/lstm_cell/kernel", "rnn/lstm_cell/bias"


def npy_with_header(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy file with any header text (NumPy's own writer only writes valid ones)."""
    text = header.encode("utf-8" if version[0] >= 3 else "latin1", errors="replace")
    size_format = "<H" if version[0] == 1 else "<I"
    fixed = 6 + 2 + struct.calcsize(size_format)
    text += b" " * (-(fixed + len(text) + 1) % 64) + b"\n"
    return np.lib.format.MAGIC_PREFIX + bytes(version) + struct.pack(size_format, len(text)) + text + data


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_checkpoint(prefix, tensors: dict[str, np.ndarray]) -> None:
    """A TF1 name-based checkpoint (what tf.compat.v1.train.Saver writes): PREFIX.index + PREFIX.data-*."""
    import tensorflow as tf

    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=list(tensors), shape_and_slices=[""] * len(tensors),
                      tensors=list(tensors.values()))
