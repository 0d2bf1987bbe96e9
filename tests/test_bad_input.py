"""Bad configuration and bad input, one table: exit 2, one line on stderr naming the key, no
traceback, and nothing recorded in the (default, SQLite) store but at most a FAILED run saying why.

Most cases run `lstm_exp.run.main` in this process (milliseconds each); the `cli` ones run the real
command in a subprocess and also check its peak memory, so a refused size is refused before allocating.
"""

import contextlib
import os
import sqlite3
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import CLI_TIMEOUT, run_in_process
from raw_files import TF1_BIAS, TF1_KERNEL, npy_bytes, npy_with_header, write_checkpoint, zip_bytes

PEAK_RSS_MB = 400  # the CLI failing early needs ~100 MB; the refused config would need ~1.6 GB
BIG = "input=random input.batch=64 input.timesteps=20000 input.features=64 run.max_memory_gb=0.5"

# (id, overrides, the key the line must name, how: "cli" = subprocess, "" = in-process)
CASES = [
    ("values-ragged", "input.values=[[1,2],[3]]", "input.values", "cli"),
    ("values-text", "input.values=[[1,a]]", "input.values", ""),
    ("values-nan", "input.values=[[1,nan,2,2,2,2]]", "input.values", ""),
    ("values-inf", "input.values=[[1,inf,2,2,2,2]]", "input.values", ""),
    ("values-bool", "input.values=[[true,1,2,2,2,2]]", "input.values", ""),
    ("values-empty", "input.values=[]", "input.values", ""),
    ("file-missing", "input=file input.path=missing.npy", "input.path", ""),
    ("file-not-given", "input=file", "input.path", ""),
    ("file-empty", "input=file input.path=empty.npy", "input.path", ""),
    ("file-corrupt", "input=file input.path=corrupt.npy", "input.path", "cli"),
    ("file-rank-1", "input=file input.path=rank1.npy", "input.path", ""),
    ("file-rank-4", "input=file input.path=rank4.npy", "input.path", ""),
    ("file-pickled", "input=file input.path=pickled.npy", "input.path", ""),
    ("file-csv-text", "input=file input.path=text.csv", "input.path", ""),
    ("file-npz-ambiguous", "input=file input.path=two.npz", "input.path", ""),
    ("file-suffix", "input=file input.path=data.txt", "input.path", ""),
    ("lengths-zero", "model=stacked input.lengths=[0,3]", "input.lengths", ""),
    ("lengths-past-T", "model=stacked input.lengths=[4,3]", "input.lengths", ""),
    ("lengths-count", "model=stacked input.lengths=[3]", "input.lengths", ""),
    ("units-zero", "model.units=[0]", "model.units[0]", ""),
    ("units-negative", "model.units=[4,-1]", "model.units[1]", ""),
    ("units-huge", f"model.units=[{10**9}]", "model.units[0]", "cli"),
    ("units-float", "model.units=[2.5]", "model.units[0]", ""),
    ("units-empty", "model.units=[]", "model.units", ""),
    ("too-big-for-memory", BIG, "run.max_memory_gb=0.5; this one needs about 1.6 GB", "cli"),
    ("unknown-key", "foo=1", "foo", ""),
    ("unknown-group", "model=nope", "model", "cli"),
    ("seed-text", "seed=abc", "seed", "cli"),
    ("seed-negative", "seed=-1", "seed", ""),
    ("bool-maybe", "model.bidirectional=maybe", "model.bidirectional", ""),
    ("weights-shape", "model.weights.path=weights.npz", "model.weights.path", ""),
    ("cell-unknown", "model.cell=lstmx", "model.cell", ""),
    ("extras-not-lstm", "model.cell=gru model.peepholes=true", "model.peepholes", ""),
    ("distribution", "input=random input.distribution=zipf", "input.distribution", ""),
    ("implementation", "model.implementation=warp", "model.implementation", ""),
    ("initial-state", "input.initial_state=bogus", "input.initial_state", ""),
    ("repeat-negative", "run.repeat=-1", "run.repeat", ""),
    ("memory-limit-zero", "run.max_memory_gb=0", "run.max_memory_gb", ""),
    ("fault-not-a-key", "run.inject_fault=forward", "run.inject_fault", ""),  # tests/faults.py injects them
    ("uri-scheme", "tracking.uri=ftp://example.org/x", "tracking.uri", ""),
    ("experiment-empty", "tracking.experiment=", "tracking.experiment", ""),
    ("timeout-negative", "tracking.timeout_s=-1", "tracking.timeout_s", ""),
    # Issue 14: hostile files, refused from their header before anything is allocated...
    ("npy-huge-shape", "input=file input.path=huge.npy", "input.path", "cli"),
    ("npy-shape-past-int64", "input=file input.path=past_int64.npy", "input.path", ""),
    ("npy-negative-shape", "input=file input.path=negative.npy", "input.path", ""),
    ("npy-sparse-2gb", "input=file input.path=sparse.npy run.max_memory_gb=1", "input.path", "cli"),
    ("npy-unicode", "input=file input.path=unicode.npy", "input.path", ""),
    ("npy-bytes", "input=file input.path=bytes.npy", "input.path", ""),
    ("npy-bool", "input=file input.path=bool.npy", "input.path", ""),
    ("npy-complex", "input=file input.path=complex.npy", "input.path", ""),
    ("npy-structured", "input=file input.path=structured.npy", "input.path", ""),
    ("npy-datetime", "input=file input.path=datetime.npy", "input.path", ""),
    ("npy-subarray-dtype", "input=file input.path=subarray.npy", "input.path", ""),
    ("npy-object-huge", "input=file input.path=object_huge.npy", "input.path", ""),
    ("npy-fortran-garbage", "input=file input.path=fortran.npy", "input.path", ""),
    ("npy-descr-garbage", "input=file input.path=descr.npy", "input.path", ""),
    ("npy-header-not-dict", "input=file input.path=notdict.npy", "input.path", ""),
    ("npy-version-9", "input=file input.path=version9.npy", "input.path", ""),
    ("npy-cut-in-magic", "input=file input.path=cut4.npy", "input.path", ""),
    ("npy-cut-in-header", "input=file input.path=cut30.npy", "input.path", ""),
    ("npy-cut-in-data", "input=file input.path=cut_data.npy", "input.path", ""),
    ("npy-beyond-float32", "input=file input.path=big_values.npy", "input.path", ""),
    ("npy-inf", "input=file input.path=inf.npy", "input.path", ""),
    ("npz-member-not-npy", "input=file input.path=text_member.npz", "input.path", ""),
    ("npz-no-members", "input=file input.path=no_members.npz", "input.path", ""),
    ("npz-unicode-member", "input=file input.path=unicode.npz", "input.path", ""),
    ("npz-not-a-zip", "input=file input.path=random.npz", "input.path", ""),
    ("npz-cut-at-10", "input=file input.path=cut10.npz", "input.path", ""),
    ("npz-cut-at-100", "input=file input.path=cut100.npz", "input.path", ""),
    ("npz-cut-before-end", "input=file input.path=cut_end.npz", "input.path", ""),
    ("npz-bomb", "input=file input.path=bomb.npz run.max_memory_gb=0.01", "input.path", "cli"),
    ("npz-bomb-declared", "input=file input.path=declared.npz run.max_memory_gb=1", "input.path", ""),
    ("npz-bomb-lying", "input=file input.path=lying.npz", "input.path", ""),
    ("npz-compression-99", "input=file input.path=method99.npz", "input.path", ""),
    ("npz-bad-crc", "input=file input.path=crc.npz", "input.path", ""),
    ("csv-beyond-float32", "input=file input.path=big.csv", "input.path", ""),
    ("csv-nan", "input=file input.path=nan.csv", "input.path", ""),
    ("csv-binary", "input=file input.path=binary.csv", "input.path", ""),
    ("csv-too-big", "input=file input.path=large.csv run.max_memory_gb=0.0001", "input.path", ""),
    ("path-too-long", f"input=file input.path={'n' * 300}.npy", "input.path", ""),
    ("path-a-directory", "input=file input.path=folder.npy", "input.path", ""),
    ("path-a-fifo", "input=file input.path=fifo.npy", "input.path", ""),
    ("path-loop", "input=file input.path=loop.npy", "input.path", ""),
    ("weights-huge-shape", "model.weights.path=huge_weights.npz", "model.weights.path", "cli"),
    ("weights-unicode", "model.weights.path=unicode_weights.npz", "model.weights.path", ""),
    ("weights-pickled", "model.weights.path=pickled_weights.npz", "model.weights.path", ""),
    ("weights-beyond-float32", "model.weights.path=big_weights.npz", "model.weights.path", ""),
    ("weights-cut", "model.weights.path=cut_weights.npz", "model.weights.path", ""),
    ("weights-member-not-npy", "model.weights.path=text_member.npz", "model.weights.path", ""),
    ("weights-path-too-long", f"model.weights.path={'w' * 300}.npz", "model.weights.path", ""),
    ("weights-prefix-too-long", f"model.weights.path={'w' * 300}", "model.weights.path", ""),
    ("weights-a-directory", "model.weights.path=folder.npz", "model.weights.path", ""),
    ("ckpt-data-missing", "model.weights.path=ckpt_missing/model.ckpt", "model.weights.path", ""),
    ("ckpt-data-empty", "model.weights.path=ckpt_empty/model.ckpt", "model.weights.path", ""),
    ("ckpt-data-cut", "model.weights.path=ckpt_cut/model.ckpt", "model.weights.path", ""),
    ("ckpt-index-garbage", "model.weights.path=ckpt_garbage/model.ckpt", "model.weights.path", ""),
    ("ckpt-index-cut", "model.weights.path=ckpt_index_cut/model.ckpt.index", "model.weights.path", ""),
    ("ckpt-string-kernel", "model.weights.path=ckpt_string/model.ckpt", "model.weights.path", ""),
    ("ckpt-beyond-float32", "model.weights.path=ckpt_big/model.ckpt", "model.weights.path", ""),
    ("state-huge-shape", "input.initial_state=huge_state.npz", "input.initial_state", "cli"),
    ("state-member-not-npy", "input.initial_state=text_member.npz", "input.initial_state", ""),
    ("state-cut", "input.initial_state=cut_end.npz", "input.initial_state", ""),
    ("state-bool", "input.initial_state=bool_state.npz", "input.initial_state", ""),
    ("state-nan", "input.initial_state=nan_state.npz", "input.initial_state", ""),
    ("state-too-long", f"input.initial_state={'s' * 300}.npz", "input.initial_state", ""),
    ("state-a-directory", "input.initial_state=folder.npz", "input.initial_state", ""),
    # ... literal values beyond float32, and numbers too large for NumPy, Keras or sockets.
    ("values-beyond-float32", "input.values=[[1e39,2,2,2,2,2]]", "input.values", ""),
    ("values-below-float32", "input.values=[[-1e39,2,2,2,2,2]]", "input.values", ""),
    ("values-int-past-float64", f"input.values=[[{10**400},2,2,2,2,2]]", "input.values", ""),
    ("seed-huge", f"seed={10**30}", "seed", ""),
    ("seed-2-32", f"seed={2**32}", "seed", ""),
    ("repeat-huge", f"run.repeat={10**30}", "run.repeat", ""),
    ("repeat-past-bound", "run.repeat=100001", "run.repeat", ""),
    ("batch-huge", f"input=random input.batch={10**30}", "input.batch", ""),
    ("timesteps-huge", f"input=random input.timesteps={10**30}", "input.timesteps", ""),
    ("features-huge", f"input=random input.features={10**8}", "input.features", ""),
    ("units-huge-int", f"model.units=[{10**30}]", "model.units[0]", ""),
    ("proj-size-huge", f"model.proj_size={10**30}", "model.proj_size", ""),
    ("lengths-huge", f"model=stacked input.lengths=[{10**30},3]", "input.lengths", ""),
    ("timeout-huge", "tracking.timeout_s=1e30", "tracking.timeout_s", ""),
    ("timeout-inf", "tracking.timeout_s=inf", "tracking.timeout_s", ""),
    ("timeout-nan", "tracking.timeout_s=nan", "tracking.timeout_s", ""),
    ("memory-huge", "run.max_memory_gb=1e30", "run.max_memory_gb", ""),
    ("memory-nan", "run.max_memory_gb=nan", "run.max_memory_gb", ""),
    ("cell-clip-beyond-float32", "model.cell_clip=1e39", "model.cell_clip", ""),
    ("cell-clip-inf", "model.cell_clip=inf", "model.cell_clip", ""),
    ("proj-clip-nan", "model.proj_size=2 model.proj_clip=nan", "model.proj_clip", ""),
    ("forget-bias-beyond-float32", "model.weights.forget_bias=1e39", "model.weights.forget_bias", ""),
    ("forget-bias-huge-int", f"model.weights.forget_bias={10**400}", "model.weights.forget_bias", ""),
    ("group-int", "model=0", "model", ""),
    ("group-float", "input=1.5", "input", ""),
    ("group-list-of-ints", "tracking=[1]", "tracking", ""),
    ("group-list-of-null", "model=[null]", "model", ""),
    ("group-nested-lists", "task=[[],[]]", "task", ""),
    # The larger of the two sizes is named, with its value: not train_size when val_size is the culprit.
    ("task-val-size-too-big", "task=adding task.val_size=1000000 task.timesteps=10000",
     "Received: task.val_size=1000000", ""),
    # task=file: the file's members, shapes and values; then the training controls.
    ("task-file-missing", "task=file task.path=missing.npz", "task.path", ""),
    ("task-file-not-given", "task=file", "task.path", ""),
    ("task-file-no-x", "task=file task.path=task_no_x.npz", "no member 'x'", ""),
    ("task-file-no-y", "task=file task.path=task_no_y.npz", "no member 'y'", ""),
    ("task-file-unknown-member", "task=file task.path=task_extra.npz", "member 'X'", ""),
    ("task-file-rows-disagree", "task=file task.path=task_rows.npz", "y has N=5 rows, x has 4", ""),
    ("task-file-steps-disagree", "task=file task.path=task_steps.npz", "y has T=5 steps, x has 3", ""),
    ("task-file-x-rank-2", "task=file task.path=task_rank2.npz", "x has shape (4, 3)", ""),
    ("task-file-y-rank-4", "task=file task.path=task_y_rank4.npz", "y has shape", ""),
    ("task-file-nan", "task=file task.path=task_nan.npz", "member 'x.npy': holds NaN", ""),
    ("task-file-inf-y", "task=file task.path=task_inf.npz", "member 'y.npy': holds NaN, infinity", ""),
    ("task-file-pickled-y", "task=file task.path=task_pickled.npz", "task.path", ""),
    ("task-file-negative-class", "task=file task.path=task_negative.npz", "y holds class -1", ""),
    ("task-file-class-past-classes", "task=file task.path=task_classes.npz task.classes=3",
     "Received: task.classes=3", ""),
    ("task-file-lengths-past-T", "task=file task.path=task_lengths_long.npz", "lengths holds 1..4", ""),
    ("task-file-lengths-zero", "task=file task.path=task_lengths_zero.npz", "not 1..T=3", ""),
    ("task-file-lengths-float", "task=file task.path=task_lengths_float.npz", "lengths has shape", ""),
    ("task-file-x-val-alone", "task=file task.path=task_x_val.npz", "x_val and y_val come together", ""),
    ("task-file-val-features", "task=file task.path=task_val_features.npz", "x_val has shape", ""),
    ("task-file-val-classes", "task=file task.path=task_val_kind.npz", "y_val has shape", ""),
    ("task-file-val-fraction-empties", "task=file task.path=task_rows_ok.npz task.val_fraction=0.01",
     "task.val_fraction", ""),
    ("task-file-too-big-for-memory", "task=file task.path=task_rows_ok.npz run.max_memory_gb=0.05",
     "run.max_memory_gb=0.05", ""),
    ("task-path-for-synthetic", "task=adding task.path=task_rows_ok.npz", "task.path", ""),
    ("task-val-fraction-one", "task=file task.path=task_rows_ok.npz task.val_fraction=1", "task.val_fraction",
     ""),
    ("task-patience-negative", "task=adding task.patience=-1", "task.patience", ""),
    ("task-min-delta-negative", "task=adding task.min_delta=-0.1", "task.min_delta", ""),
    ("task-schedule-unknown", "task=adding task.schedule=linear", "task.schedule", ""),
    ("task-both-clips", "task=adding task.clipnorm=1 task.global_clipnorm=1", "task.global_clipnorm", ""),
    ("task-clipnorm-zero", "task=adding task.clipnorm=0", "task.clipnorm", ""),
    ("task-clipnorm-inf", "task=adding task.global_clipnorm=inf", "task.global_clipnorm", ""),
    ("task-warmup-past-epochs", "task=adding task.epochs=3 task.warmup_epochs=4", "task.warmup_epochs", ""),
    ("task-step-size-zero", "task=adding task.schedule=step task.step_size=0", "task.step_size", ""),
    ("task-step-factor-zero", "task=adding task.schedule=step task.step_factor=0", "task.step_factor", ""),
    ("task-weight-decay-nan", "task=adding task.weight_decay=nan", "task.weight_decay", ""),
    ("task-classes-one", "task=file task.path=task_rows_ok.npz task.classes=1", "task.classes", ""),
    ("task-classes-for-synthetic", "task=copy task.classes=4", "task.classes", ""),
    # Hydra's output folders below a plain file, and sweeps the grid cannot run.
    ("run-dir-under-a-file", "hydra.run.dir=data.txt/out", "hydra.run.dir", "cli"),
    ("run-dir-a-file", "hydra.run.dir=data.txt", "hydra.run.dir", ""),
    ("sweep-dir-under-a-file", "-m seed=0,1 hydra.sweep.dir=data.txt/sweep", "hydra.sweep.dir", ""),
    ("sweep-batch-size-zero", "-m seed=0,1 hydra.sweeper.max_batch_size=0", "hydra.sweeper.max_batch_size",
     ""),
    ("sweep-interval", "-m seed=interval(0,1)", "seed", ""),
]

def _patch_central(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Overwrites a field of the (first) central-directory entry, which is what zipfile trusts."""
    at = data.index(b"PK\x01\x02") + offset
    return data[:at] + struct.pack(fmt, value) + data[at + struct.calcsize(fmt):]


def tutorial_checkpoint(folder, kernel: np.ndarray | None = None) -> None:
    """The default model's TF1 checkpoint in `folder`/model.ckpt."""
    folder.mkdir()
    kernel = np.full((10, 16), 0.1, np.float32) if kernel is None else kernel
    write_checkpoint(folder / "model.ckpt", {TF1_KERNEL: kernel, TF1_BIAS: np.zeros(16, np.float32)})


def _broken_checkpoint(folder, how: str) -> None:
    tutorial_checkpoint(folder)
    data, index = folder / "model.ckpt.data-00000-of-00001", folder / "model.ckpt.index"
    if how == "missing":
        data.unlink()
    elif how == "empty":
        data.write_bytes(b"")
    elif how == "cut":
        data.write_bytes(data.read_bytes()[:40])
    elif how == "garbage":
        index.write_bytes(np.random.default_rng(1).bytes(300))
    elif how == "index_cut":
        index.write_bytes(index.read_bytes()[:30])


def _fifo(path) -> None:
    os.mkfifo(path)


def _loop(path) -> None:
    os.symlink(path.name, path)  # a link to itself: ELOOP


def _sparse_npy(path) -> None:
    # A valid 2 GiB .npy that takes no disk: refused for its size, it must not be read.
    header = npy_with_header(f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({2**28},), }}")
    with open(path, "wb") as out:
        out.write(header)
        out.truncate(len(header) + 8 * 2**28)


def _bomb(path) -> None:
    # 48 MB of zeros deflate to ~50 kB; the members' declared size is checked before unpacking.
    path.write_bytes(zip_bytes({"input.npy": npy_bytes(np.zeros((2**20, 6)))}, zipfile.ZIP_DEFLATED))


def _string_checkpoint(folder) -> None:
    folder.mkdir()
    kernel = np.full((10, 16), "x", object)  # a tf.string variable where the kernel should be
    write_checkpoint(folder / "model.ckpt", {TF1_KERNEL: kernel, TF1_BIAS: np.zeros(16, np.float32)})


def _members(arrays: dict[str, np.ndarray], allow_pickle: bool = False) -> bytes:
    return zip_bytes({f"{n}.npy": npy_bytes(a, allow_pickle) for n, a in arrays.items()})


def _hostile_files() -> dict:
    """File name -> bytes, or a function that makes the file at that path."""
    good = npy_bytes(np.ones((1, 6)))
    good_npz = zip_bytes({"input.npy": npy_bytes(np.ones((1, 3, 6)))})
    declared = zip_bytes({"input.npy": good})
    lying = zip_bytes({"input.npy": npy_bytes(np.zeros((10**5, 6)))}, zipfile.ZIP_DEFLATED)
    crc = bytearray(zip_bytes({"input.npy": good}))
    crc[crc.index(b"NUMPY") + 80] ^= 0xFF  # a data byte of the stored member: the CRC no longer matches
    state = {"layer_0/h": np.zeros((1, 4), np.float32), "layer_0/c": np.zeros((1, 4), np.float32)}
    weights = {"layer_0/kernel": np.zeros((6, 16)), "layer_0/recurrent_kernel": np.zeros((4, 16)),
               "layer_0/bias": np.zeros(16)}
    huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 6), }"
    past_int64 = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({2**62}, {2**62}), }}"
    subarray = "{'descr': ('<f8', (1000000,)), 'fortran_order': False, 'shape': (1, 6), }"
    objects = "{'descr': '|O', 'fortran_order': False, 'shape': (10000000000,), }"
    data = bytes(48)  # (1, 6) float64
    return {
        "huge.npy": npy_with_header(huge),
        "past_int64.npy": npy_with_header(past_int64),
        "negative.npy": npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (-1, 6), }"),
        "sparse.npy": _sparse_npy,
        "unicode.npy": npy_bytes(np.array([["a"] * 6])),
        "bytes.npy": npy_bytes(np.array([[b"abc"] * 6])),
        "bool.npy": npy_bytes(np.ones((1, 6), bool)),
        "complex.npy": npy_bytes(np.ones((1, 6), complex)),
        "structured.npy": npy_bytes(np.zeros((1, 6), dtype=[("a", "<f4"), ("b", "<i4")])),
        "datetime.npy": npy_bytes(np.zeros((1, 6), dtype="datetime64[s]")),
        "subarray.npy": npy_with_header(subarray),
        "object_huge.npy": npy_with_header(objects),
        "fortran.npy": npy_with_header("{'descr': '<f8', 'fortran_order': 'yes', 'shape': (1, 6), }", data),
        "descr.npy": npy_with_header("{'descr': '<f13', 'fortran_order': False, 'shape': (1, 6), }", data),
        "notdict.npy": npy_with_header("[1, 2, 3]"),
        "version9.npy": good[:6] + bytes([9, 0]) + good[8:],
        "cut4.npy": good[:4],
        "cut30.npy": good[:30],
        "cut_data.npy": good[:-10],
        "big_values.npy": npy_bytes(np.full((1, 6), 1e39)),
        "inf.npy": npy_bytes(np.full((1, 6), np.inf)),
        "text_member.npz": zip_bytes({"input.npy": good, "notes.txt": b"hello"}),
        "no_members.npz": zip_bytes({}),
        "unicode.npz": zip_bytes({"input.npy": npy_bytes(np.array([["x"] * 6]))}),
        "random.npz": np.random.default_rng(2).bytes(600),
        "cut10.npz": good_npz[:10],
        "cut100.npz": good_npz[:100],
        "cut_end.npz": good_npz[:-30],
        "bomb.npz": _bomb,
        "declared.npz": _patch_central(declared, 24, "<I", 0xFFFFFFF0),  # claims 4 GiB unpacked
        "lying.npz": _patch_central(_patch_central(lying, 24, "<I", 200), 20, "<I", 200),
        "method99.npz": _patch_central(declared, 10, "<H", 99),
        "crc.npz": bytes(crc),
        "big.csv": b"1e39,2,2,2,2,2\n",
        "nan.csv": b"1,nan,2,2,2,2\n",
        "binary.csv": b"\xff\xfe\x00garbage\x81\n",
        "large.csv": b"1,2,3,4,5,6\n" * 20000,
        "folder.npy": os.mkdir,
        "folder.npz": os.mkdir,
        "fifo.npy": _fifo,
        "loop.npy": _loop,
        "huge_weights.npz": zip_bytes({"layer_0/kernel.npy": npy_with_header(huge)}),
        "unicode_weights.npz": _members({n: np.full(a.shape, "x") for n, a in weights.items()}),
        "pickled_weights.npz": _members({n: np.full(a.shape, None) for n, a in weights.items()}, True),
        "big_weights.npz": _members({n: np.full(a.shape, 1e39) for n, a in weights.items()}),
        "cut_weights.npz": _members(weights)[:-50],
        "ckpt_missing": lambda p: _broken_checkpoint(p, "missing"),
        "ckpt_empty": lambda p: _broken_checkpoint(p, "empty"),
        "ckpt_cut": lambda p: _broken_checkpoint(p, "cut"),
        "ckpt_garbage": lambda p: _broken_checkpoint(p, "garbage"),
        "ckpt_index_cut": lambda p: _broken_checkpoint(p, "index_cut"),
        "ckpt_string": _string_checkpoint,
        "ckpt_big": lambda p: tutorial_checkpoint(p, np.full((10, 16), 1e39)),
        "huge_state.npz": zip_bytes({"layer_0/h.npy": npy_with_header(huge),
                                     "layer_0/c.npy": npy_bytes(state["layer_0/c"])}),
        "bool_state.npz": _members({n: a.astype(bool) for n, a in state.items()}),
        "nan_state.npz": _members({n: a + np.nan for n, a in state.items()}),
        **_task_files(),
    }


def _task_files() -> dict:
    """task=file's bad files: x (4, 3, 2) and what goes wrong beside it."""
    x, y = np.ones((4, 3, 2)), np.zeros(4)
    classes = np.array([0, 1, 2, 5])
    return {
        "task_no_x.npz": _members({"y": y}),
        "task_no_y.npz": _members({"x": x}),
        "task_extra.npz": _members({"x": x, "y": y, "X": x}),
        "task_rows.npz": _members({"x": x, "y": np.zeros(5)}),
        "task_steps.npz": _members({"x": x, "y": np.zeros((4, 5, 1))}),
        "task_rank2.npz": _members({"x": np.ones((4, 3)), "y": y}),
        "task_y_rank4.npz": _members({"x": x, "y": np.zeros((4, 3, 1, 1))}),
        "task_nan.npz": _members({"x": np.where(x > 0, np.nan, x), "y": y}),
        "task_inf.npz": _members({"x": x, "y": np.full(4, np.inf)}),
        "task_pickled.npz": _members({"x": x, "y": np.array([None] * 4)}, True),
        "task_negative.npz": _members({"x": x, "y": np.array([0, 1, -1, 1])}),
        "task_classes.npz": _members({"x": x, "y": classes}),
        "task_lengths_long.npz": _members({"x": x, "y": y, "lengths": np.array([1, 2, 3, 4])}),
        "task_lengths_zero.npz": _members({"x": x, "y": y, "lengths": np.array([0, 2, 3, 3])}),
        "task_lengths_float.npz": _members({"x": x, "y": y, "lengths": np.array([1.0, 2, 3, 3])}),
        "task_x_val.npz": _members({"x": x, "y": y, "x_val": x}),
        "task_val_features.npz": _members({"x": x, "y": y, "x_val": np.ones((2, 3, 5)),
                                           "y_val": np.zeros(2)}),
        "task_val_kind.npz": _members({"x": x, "y": classes, "x_val": x, "y_val": y}),
        "task_rows_ok.npz": _members({"x": x, "y": y}),
    }


def _write_bad_files(folder, overrides: str = "") -> None:
    np.save(folder / "rank1.npy", np.zeros(6))
    np.save(folder / "rank4.npy", np.zeros((1, 2, 3, 6)))
    np.save(folder / "pickled.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    np.savez(folder / "two.npz", a=np.zeros((1, 6)), b=np.zeros((1, 6)))
    (folder / "empty.npy").write_bytes(b"")
    (folder / "corrupt.npy").write_bytes(np.random.default_rng(0).bytes(512))
    (folder / "text.csv").write_text("1,2,3\n4,five,6\n")
    (folder / "data.txt").write_text("1 2 3\n")
    # LSTM(4) weights for F=5 features, while the default input has F=6.
    np.savez(folder / "weights.npz", **{"layer_0/kernel": np.zeros((5, 16)),
                                        "layer_0/recurrent_kernel": np.zeros((4, 16)),
                                        "layer_0/bias": np.zeros(16)})
    for name, content in _hostile_files().items():
        if name not in overrides:  # only what the case reads: some take a moment to make
            continue
        if callable(content):
            content(folder / name)
        else:
            (folder / name).write_bytes(content)


# Runs the CLI as its only child and writes that child's peak RSS (KiB) to $PEAK_RSS_FILE. Measured
# from pytest directly, the child would count the pages of the (large) pytest process it forked from.
MEASURE = (
    "import os, resource, subprocess, sys\n"
    "status = subprocess.call([sys.executable, '-m', 'lstm_exp.run', *sys.argv[1:]])\n"
    "with open(os.environ['PEAK_RSS_FILE'], 'w') as out:\n"
    "    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(status)\n"
)


def _subprocess(args: list[str], cwd) -> tuple[int, str, float]:
    """The real CLI: (exit status, stderr, peak RSS in MB)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PEAK_RSS_FILE": str(cwd / "peak_rss")}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-c", MEASURE, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT)
    return proc.returncode, proc.stderr, int((cwd / "peak_rss").read_text()) / 1024


def _runs(launch) -> list[tuple[str, str | None]]:
    """(status, lstm_exp.error tag) of every run in the launch directory's store."""
    if not (launch / "mlflow.db").exists():
        return []
    with contextlib.closing(sqlite3.connect(launch / "mlflow.db")) as db:
        return db.execute(
            "SELECT status, (SELECT value FROM tags WHERE tags.run_uuid = runs.run_uuid"
            " AND key = 'lstm_exp.error') FROM runs"
        ).fetchall()


# OmegaConf's FloatNode converts with float(), whose OverflowError (an int beyond float64) is not one of
# OmegaConf's errors: `cli/run.py:main` must turn it into the one line too (it carries "full_key: ...").
# Likewise Hydra's defaults list raises ValueError/TypeError for a config group given a number or a list.
def _params():
    # A `cli` case starts the real command: seconds each where the in-process ones take milliseconds.
    return [pytest.param(*c[1:], id=c[0], marks=[pytest.mark.slow] if c[3] == "cli" else []) for c in CASES]


@pytest.mark.parametrize("overrides,key,how", _params())
def test_bad_input_exits_2_with_one_line(tmp_path, monkeypatch, capsys, overrides, key, how):
    _write_bad_files(tmp_path, overrides)
    monkeypatch.chdir(tmp_path)  # the default store is ./mlflow.db of the launch directory
    args = overrides.split()
    if how == "cli":
        status, stderr, peak_mb = _subprocess(args, tmp_path)
        print(f"peak RSS {peak_mb:.0f} MB")
        assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB: allocated before refusing"
    else:
        status, stderr = run_in_process(args, monkeypatch, capsys)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert key in lines[0]
    assert lines[0].startswith("error: ")
    # Nothing recorded, or at most a run that ended FAILED and says why.
    assert all(status == "FAILED" and reason for status, reason in _runs(tmp_path))
