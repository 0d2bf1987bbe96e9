"""Exporting a recorded run's states for other tools.

    python -m lstm_exp.export lstmvis RUN_ID DIR [--tracking-uri URI]

RUN_ID is a run's id or a unique prefix of it; DIR is created if missing and must hold no earlier
export (its files are not overwritten). The store is only read. What is written: `record/lstmvis.py`.
"""

import contextlib
from pathlib import Path

import numpy as np

from lstm_exp.cli.options import OneLineParser, exit_2_on_bad_input, store_uri
from lstm_exp.cli.recorded_files import RecordedRun, read_run, recorded_input
from lstm_exp.compute.lstm_map import cell_trajectory
from lstm_exp.config import names
from lstm_exp.errors import ConfigError
from lstm_exp.record.lstmvis import CONFIG_FILE, DICT_FILE, STATES_FILE, WORDS_FILE, write_lstmvis


def layer_states(recorded: RecordedRun) -> dict[str, np.ndarray]:
    """Per layer, h at every step (`layer_{k}/sequence`, as recorded) and, where the cell has one and
    the gates give it exactly (a unidirectional LSTM without cell clipping), c at every step."""
    spec, states = recorded.spec, recorded.states
    out = {}
    for k in range(len(spec.units)):
        sequence = np.asarray(states[names.array_name(k, names.SEQUENCE)])
        if sequence.ndim == 2:  # a one-step run's (B, H)
            sequence = sequence[:, None, :]
        out[names.array_name(k, names.H)] = sequence
        if spec.cell == "lstm" and not spec.bidirectional and not spec.cell_clip:
            gates = {g: np.asarray(states[names.gate_name(k, g)]) for g in ("i", "f", "g")}
            out[names.array_name(k, names.C)] = cell_trajectory(gates).astype(sequence.dtype)
    return out


def export_lstmvis(run_ref: str, folder: Path, uri: str | None) -> list[Path]:
    """Writes the LSTMVis files of the run into `folder`; returns them."""
    recorded, _ = read_run(run_ref, uri, need_weights=False)
    name = recorded.run.data.tags.get("mlflow.runName", recorded.run_id)
    spec = recorded.spec
    description = f"lstm_exp run {recorded.run_id}: {spec.cell} {list(spec.units)}"
    try:
        folder.mkdir(exist_ok=True)
        return write_lstmvis(folder, recorded_input(recorded), layer_states(recorded), name, description)
    except BaseException as error:  # nothing half-written: `_check_folder` saw none of these files there
        for file in (STATES_FILE, WORDS_FILE, DICT_FILE, CONFIG_FILE):
            with contextlib.suppress(OSError):  # e.g. a name too long: nothing was written under it
                (folder / file).unlink(missing_ok=True)
        if isinstance(error, OSError):  # h5py's own errors are OSErrors too, some without a strerror
            reason = error.strerror or " ".join(str(error).split())[:200]
            raise ConfigError("DIR", str(folder), f"a folder that can be written here ({reason})") from None
        raise


def _check_folder(folder: Path) -> Path:
    try:
        return _checked_folder(folder)
    except OSError as error:  # a name too long, a folder that cannot be searched
        raise ConfigError("DIR", str(folder), f"a folder name this system takes ({error.strerror})") from None


def _checked_folder(folder: Path) -> Path:
    taken = [n for n in (STATES_FILE, WORDS_FILE, DICT_FILE, CONFIG_FILE) if (folder / n).exists()]
    if folder.exists() and not folder.is_dir():
        raise ConfigError("DIR", str(folder), "a folder (this is a file)")
    if taken:
        held = ', '.join(taken)
        raise ConfigError("DIR", str(folder), f"a folder without an earlier export (it holds {held})")
    if not folder.parent.is_dir():
        raise ConfigError("DIR", str(folder), f"a folder in an existing folder (no folder {folder.parent})")
    return folder


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m lstm_exp.export", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    lstmvis = commands.add_parser("lstmvis", help="states as HDF5 + lstm.yml for LSTMVis")
    lstmvis.add_argument("run_id", metavar="RUN_ID", help="the run's id (or a unique prefix of it)")
    lstmvis.add_argument("folder", metavar="DIR", type=Path, help="where the files go")
    lstmvis.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    return parser


def main(argv: list[str] | None = None) -> None:
    """`python -m lstm_exp.export lstmvis RUN_ID DIR`; exit 2 with one line on a bad run or folder."""
    with exit_2_on_bad_input():
        args = build_parser().parse_command_line(argv)
        folder = _check_folder(args.folder)
        written = export_lstmvis(args.run_id, folder, store_uri("--tracking-uri", args.tracking_uri))
    print(f"wrote {', '.join(str(p) for p in written)} (open {folder / CONFIG_FILE}'s folder in LSTMVis)")


if __name__ == "__main__":
    main()
