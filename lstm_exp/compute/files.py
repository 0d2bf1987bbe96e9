"""The readers of user files: .npy, .npz, .csv and TF1 checkpoints, one per kind (NumPy only).

Every file is hostile until read: each reader checks the header's shape and dtype against a byte
budget (`run.max_memory_gb`) before it allocates, never unpickles, accepts only real numbers (ints
and floats; no bool, complex, text, object, structured or datetime dtype) whose values are finite
and within float32's range, and turns every OS, zip, header or checkpoint error into one
`ConfigError` naming the config key and the file.

Example:
    >>> read_npy("x.npy", "input.path", budget=2**30).shape
    (2, 3, 6)
"""

import lzma
import math
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable

import numpy as np

from lstm_exp.config.validate import FLOAT32_MAX
from lstm_exp.errors import ConfigError

DEFAULT_BUDGET = 8 * 2**30  # bytes: the schema's default run.max_memory_gb, for callers without a config
MAX_HEADER = 10_000  # bytes: NumPy's own default bound on an .npy header
# A CSV value takes at least two bytes ("1,"), so a file of S bytes parses to at most S/2 float64s.
CSV_BYTES_PER_BYTE = 4
# What a broken file or archive raises while it is opened or decompressed.
_BROKEN = (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError,
           struct.error, NotImplementedError, RuntimeError, UnicodeDecodeError)


def _refuse(key: str, path: object, allowed: str, reason: str) -> ConfigError:
    return ConfigError(key, str(path), f"{allowed} ({reason})")


def _regular_size(path: object, key: str, allowed: str) -> int:
    """The size of a regular file; a missing, unreachable or special file (FIFO, device) is refused."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as error:  # ENOENT, EACCES, ENAMETOOLONG, ELOOP, an embedded NUL...
        raise _refuse(key, path, allowed, _os_reason(error)) from None
    if stat.S_ISDIR(info.st_mode):
        raise _refuse(key, path, allowed, "it is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(key, path, allowed, "not a regular file")
    if info.st_size == 0:
        raise _refuse(key, path, allowed, "the file is empty")
    return info.st_size


def _os_reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return " ".join(str(error).split())[:160] or type(error).__name__


def _check_dtype(dtype: np.dtype, key: str, path: object, allowed: str, what: str = "") -> None:
    if dtype.kind not in "iuf":  # b, c, U, S, O, V (structured, sub-arrays, bfloat16), M, m
        raise _refuse(key, path, allowed, f"{what}dtype {dtype} is not a real number type")


def _check_size(count: int, key: str, path: object, allowed: str, budget: int, what: str = "") -> None:
    needed = 8 * count  # the float64 working copy every caller makes
    if needed > budget:
        raise _refuse(key, path, allowed, f"{what}needs about {needed / 2**30:.3g} GB, more than "
                      f"run.max_memory_gb={budget / 2**30:g} allows")


def check_values(array: np.ndarray, key: str, path: object, allowed: str, what: str = "") -> None:
    """Finite and within float32's range (|x| <= 3.4e38): larger values would become infinity."""
    if array.dtype.kind != "f":  # every int64 and uint64 is within float32's range
        return
    # Compared in the array's own type: float16 would make FLOAT32_MAX infinity, so finiteness first.
    finite = np.all(np.isfinite(array))
    if not finite or (array.itemsize > 4 and not np.all(np.abs(array) <= FLOAT32_MAX)):
        raise _refuse(key, path, allowed, f"{what}holds NaN, infinity or a value beyond float32's range")


def _read_npy_stream(stream, key: str, path: object, allowed: str, budget: int, what: str = "",
                     available: int | None = None, values: bool = True) -> np.ndarray:
    """One .npy from an open binary stream: header checked first, then exactly its data read."""
    try:
        version = np.lib.format.read_magic(stream)
    except ValueError:
        raise _refuse(key, path, allowed, f"{what}not a NumPy .npy file") from None
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise _refuse(key, path, allowed, f"{what}unsupported .npy version {version}")
    try:
        shape, fortran_order, dtype = readers[version](stream, max_header_size=MAX_HEADER)
    except Exception as error:  # noqa: BLE001 - NumPy tokenizes and evaluates untrusted text here:
        # ValueError, SyntaxError, tokenize.TokenError, RecursionError... all say the header is broken.
        reason = "pickled object arrays are refused" if "pickle" in str(error) else "a broken .npy header"
        raise _refuse(key, path, allowed, what + reason) from None
    if any(n < 0 for n in shape):
        raise _refuse(key, path, allowed, f"{what}a negative dimension in shape {shape}")
    _check_dtype(dtype, key, path, allowed, what)
    count = math.prod(shape)
    # Dimensions of an empty array count too: (0, 2**62) cannot be reshaped into either.
    _check_size(math.prod(max(n, 1) for n in shape), key, path, allowed, budget, what)
    nbytes = count * dtype.itemsize
    if available is not None and nbytes > available - stream.tell():
        raise _refuse(key, path, allowed, f"{what}truncated: shape {shape} needs {nbytes} bytes of data")
    data = bytearray(nbytes)  # writable, and the only copy of the data
    view, done = memoryview(data), 0
    while done < nbytes:
        got = stream.readinto(view[done:])
        if not got:
            raise _refuse(key, path, allowed, f"{what}truncated: shape {shape} needs {nbytes} bytes of data")
        done += got
    array = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran_order else "C")
    if values:
        check_values(array, key, path, allowed, what)
    return array


def read_npy(path: object, key: str, budget: int, allowed: str = "a readable .npy file of numbers"):
    """Reads one .npy array, checked (see the module's docstring).

    Args:
        path: the file.
        key: the config key that named it, e.g. ``input.path``.
        budget: bytes the array may take as float64 (``run.max_memory_gb * 2**30``).
        allowed: what the key accepts, in words, for the error message.

    Raises:
        ConfigError: for any file that is not such an array.
    """
    size = _regular_size(path, key, allowed)
    try:
        with open(path, "rb") as stream:
            return _read_npy_stream(stream, key, path, allowed, budget, available=size)
    except _BROKEN as error:
        raise _refuse(key, path, allowed, _os_reason(error)) from None


def read_npz(path: object, key: str, budget: int, allowed: str = "a readable .npz file of numbers",
             values: bool = True) -> dict[str, np.ndarray]:
    """Reads every array of an .npz (a zip of .npy members), checked; `values=False` skips the range check.

    The members' declared sizes are checked against the budget before any is decompressed, so that
    a zip bomb is refused unread; members that are not .npy files are refused.
    """
    # Its members are compressed or stored, so a file that fits has a size within the budget; a bigger
    # one would have zipfile hold a central directory of millions of entries before we see them.
    _check_size(_regular_size(path, key, allowed) // 8, key, path, allowed, budget)
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(m.file_size for m in members)
            if declared > budget:
                raise _refuse(key, path, allowed, f"its members unpack to {declared} bytes, more than "
                              f"run.max_memory_gb={budget / 2**30:g} allows")
            for member in members:
                name = member.filename.removesuffix(".npy")
                if name == member.filename or member.is_dir():
                    raise _refuse(key, path, allowed, f"member {member.filename!r} is not an .npy array")
                if name in arrays:
                    raise _refuse(key, path, allowed, f"member {member.filename!r} appears twice")
                what = f"member {member.filename!r}: "
                with archive.open(member) as stream:
                    arrays[name] = _read_npy_stream(stream, key, path, allowed, budget, what,
                                                    member.file_size, values)
                    stream.read(1)  # reaching the end makes zipfile check the member's CRC
    except _BROKEN as error:
        raise _refuse(key, path, allowed, f"a broken .npz: {_os_reason(error)}") from None
    if not arrays:
        raise _refuse(key, path, allowed, "the archive holds no arrays")
    return arrays


def read_csv(path: object, key: str, budget: int, allowed: str = "a readable .csv file of numbers"):
    """Reads a comma-separated table of numbers as a float64 (rows, columns) array."""
    size = _regular_size(path, key, allowed)
    _check_size(CSV_BYTES_PER_BYTE * size // 8, key, path, allowed, budget)
    try:
        array = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, *_BROKEN) as error:
        reason = " ".join(str(error).split())[:120]
        raise _refuse(key, path, allowed, f"not a table of numbers: {reason}") from None
    check_values(array, key, path, allowed)
    return array


def read_checkpoint(prefix: str, key: str, budget: int, select: Callable[[list[str]], list[str]],
                    allowed: str = "a readable TF1 checkpoint") -> dict[str, np.ndarray]:
    """Reads the variables `select(all variable names)` names from a TF1 checkpoint prefix.

    Shapes and dtypes come from the index before any tensor is read; a missing or truncated data
    file or a garbled index (TensorFlow's DataLoss/NotFound/OutOfRange errors) is refused.
    """
    from lstm_exp.compute.tf_runtime import quiet_native_stderr

    with quiet_native_stderr():
        import tensorflow as tf

        # What TensorFlow raises for a garbled index or a missing or short data file; a data file
        # cut short gives an IndexError ("Read less bytes than requested").
        broken = (tf.errors.OpError, ValueError, TypeError, RuntimeError, OSError, IndexError)
        try:
            reader = tf.train.load_checkpoint(prefix)
            shapes = reader.get_variable_to_shape_map()
            dtypes = reader.get_variable_to_dtype_map()
        except broken as error:
            raise _refuse(key, prefix, allowed, " ".join(str(error).split())[:200]) from None
        wanted = select(sorted(shapes))
        for var in wanted:
            what = f"variable {var}: "
            try:
                dtype = np.dtype(dtypes[var].as_numpy_dtype)
            except TypeError:
                reason = f"{what}dtype {dtypes[var].name} is not a number type"
                raise _refuse(key, prefix, allowed, reason) from None
            _check_dtype(dtype, key, prefix, allowed, what)
        _check_size(sum(math.prod(shapes[v]) for v in wanted), key, prefix, allowed, budget)
        arrays = {}
        for var in wanted:
            try:
                arrays[var] = np.asarray(reader.get_tensor(var))
            except broken as error:
                reason = " ".join(str(error).split())[:200]
                raise _refuse(key, prefix, allowed, f"variable {var}: {reason}") from None
            check_values(arrays[var], key, prefix, allowed, f"variable {var}: ")
    return arrays
