"""The command line: `python -m lstm_exp.run [overrides]`, also installed as `lstm-exp`.

Exit status: 0 success; 2 bad configuration or input (one line on stderr); 1 unexpected failure;
130 interrupted (Ctrl-C); 143 terminated (SIGTERM). A Ctrl-C after the work is recorded and reported
is ignored: the status is the one the work earned (see `console`).
"""

import atexit
import functools
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import hydra
import omegaconf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import lstm_exp  # noqa: F401  (sets TensorFlow's log level before anything imports it)
from lstm_exp import errors
from lstm_exp.cli.hydra_flags import check_flags
from lstm_exp.cli.options import check_utf8
from lstm_exp.cli.plugins import register_plugins
from lstm_exp.config.compose import CONFIG_DIR
from lstm_exp.config.schema import register
from lstm_exp.config.store_checks import check_no_password
from lstm_exp.jobs import handover
from lstm_exp.jobs.job import run_job
from lstm_exp.jobs.orphan_watch import watched_job
from lstm_exp.jobs.outcome import RecordedFailure, failure_outcome
from lstm_exp.jobs.output_dirs import output_dir_error
from lstm_exp.jobs.sweep import PARENT_ENV, SIZE_ENV
from lstm_exp.jobs.text import progress_line
from lstm_exp.jobs.worker_memory import freeze_long_lived_objects

log = logging.getLogger("lstm_exp")
register()


@functools.cache
def _sweep_store():
    """MLflow in this process, shared by the sweep jobs it runs (imported and opened once)."""
    from lstm_exp.record.local_store import LocalStore

    return LocalStore()


# An absolute path: a relative one resolves against the calling module, which breaks the console script.
@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def _hydra_task(cfg: DictConfig):
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    launch_dir = Path(hydra_cfg.runtime.cwd)  # the job's own folder is the cwd with hydra.job.chdir
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            outcome = run_job(cfg, overrides, launch_dir=launch_dir)
        except RecordedFailure as failure:  # a single run reports the error itself (its run is FAILED)
            handover.hand_over(failure.__cause__)
            return None
        except Exception as error:  # noqa: BLE001 - raised again by `main`, past Hydra's own printer
            handover.hand_over(error)
            return None
        print(outcome.report)
        return outcome
    # In a sweep one job's failure must not stop the others: its outcome goes back to the sweeper.
    start = time.perf_counter()
    try:
        with watched_job():  # a joblib worker whose sweep was killed stops its job and exits
            outcome = run_job(cfg, overrides, _sweep_store(), os.environ.get(PARENT_ENV) or None, launch_dir)
    except Exception as error:  # noqa: BLE001 - reported per job, summed up at the sweep's end
        outcome = failure_outcome(error, time.perf_counter() - start)
        print(f"error: job {hydra_cfg.job.num} ({' '.join(overrides)}): {outcome.error}", file=sys.stderr)
    total = int(os.environ.get(SIZE_ENV) or 0) or None
    print(progress_line(hydra_cfg.job.num, total, overrides, outcome), flush=True)
    if cfg.run.print_arrays and outcome.report:
        print(outcome.report)
    outcome.report = ""  # the arrays stay in the job's process; the sweeper needs the rest
    freeze_long_lived_objects()  # a joblib worker's next jobs: collections skip the libraries' objects
    return outcome


def _one_line(error: BaseException) -> str:
    """A Hydra or OmegaConf composition error as one line naming the key and the value."""
    cause = error.__cause__ if error.__cause__ is not None else error
    key = getattr(cause, "full_key", None)
    text = " ".join(str(cause).split("\n")[0].split())
    if key and not text.startswith(str(key)):
        text = f"{key}: {text}"
    if cause is not error and str(error).split("\n")[0] not in text:
        text = " ".join(str(error).split("\n")[0].split()) + " " + text
    return text


_PACKAGE = Path(lstm_exp.__file__).resolve().parent
_COMPOSERS = tuple(Path(module.__file__).resolve().parent for module in (hydra, omegaconf))


def _composition_error(error: BaseException) -> str | None:
    """One line for an error Hydra or OmegaConf raised while composing the config, else None.

    Some of their checks raise plain ValueError, TypeError or OverflowError (a config group given a
    number, an integer too large for a float key) without naming the key: it is found here.
    """
    frames = []
    traceback = error.__traceback__
    while traceback is not None:
        frames.append(Path(traceback.tb_frame.f_code.co_filename).resolve())
        traceback = traceback.tb_next
    # By the packages' own folders, not by names in the path: a checkout in a folder named lstm_exp,
    # with its .venv inside, puts "/lstm_exp/" in every frame of Hydra too.
    ours = [f for f in frames if f.is_relative_to(_PACKAGE) and f != Path(__file__).resolve()]
    if ours or not any(f.is_relative_to(folder) for f in frames[-1:] for folder in _COMPOSERS):
        return None  # raised by a job or the sweeper, not by composition
    text = str(error)
    if "full_key:" in text:  # OmegaConf's node errors carry the key in their text
        key = text.split("full_key:")[1].split()[0]
        value = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.split("=", 1)[0].lstrip("+~") == key),
                     "?")
        reason = text.splitlines()[0]
        return str(errors.ConfigError(key, value, f"a value the schema's type can hold ({reason})"))
    for override in sys.argv[1:]:
        key, _, value = override.partition("=")
        group = key.lstrip("+~")
        # A group override (no dot in its key) whose value is no config name: a number, a list.
        if "." not in group and value and not re.fullmatch(r"[A-Za-z_][\w-]*(,[A-Za-z_][\w-]*)*", value):
            options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
            allowed = "the name of one of its configs" + (": " + ", ".join(options) if options else "")
            return str(errors.ConfigError(key, value, allowed))
    return None


def main() -> None:
    """Runs Hydra and turns every failure into an exit status and, for bad input, one plain line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lstm_exp.record.run_record import Terminated

    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    handover.take()  # nothing from an earlier call in this process (tests, notebooks)
    register_plugins()  # before Hydra looks for them: its own scan misses them in an editable install
    try:
        check_utf8(sys.argv[1:])  # Hydra's lexer would refuse such bytes without naming the key
        check_flags(sys.argv[1:])
        for argument in sys.argv[1:]:  # before Hydra writes the overrides to .hydra/
            key, _, value = argument.partition("=")
            if key.lstrip("+~") == "tracking.uri":
                check_no_password(value)
        _hydra_task()
        result = handover.take()
        if isinstance(result, BaseException):
            raise result
    except errors.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        refused = output_dir_error(error)
        if refused is None:
            raise
        print(f"error: {refused}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("terminated (SIGTERM)", file=sys.stderr)
        sys.exit(143)
    except (ValueError, TypeError, OverflowError) as error:
        line = _composition_error(error)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)


def console() -> None:
    """`lstm-exp` and `python -m lstm_exp.run`: `main`, then an exit without the interpreter's teardown.

    Once `main` has recorded and reported the work, the teardown only frees memory: TensorFlow's alone
    took ~0.9 s of the tutorial run's 4.4 s here, and a Ctrl-C in it killed the process by the signal
    (status -2, no message) after a run that had FINISHED. So from here Ctrl-C is ignored, and when no
    other thread of this process is left (a launcher's workers, for one) the process runs its `atexit`
    handlers (log files, closing the recorder's input) and exits at once with `main`'s status.
    """
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if isinstance(code, int) and threading.active_count() == 1:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
