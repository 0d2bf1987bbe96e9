"""The command line: `python -m lstm_exp.cli.run [overrides]`, also installed as `lstm-exp`.

Exit status: 0 success; 2 bad configuration or input (one line on stderr); 1 unexpected failure;
130 interrupted.
"""

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import lstm_exp  # noqa: F401  (sets TensorFlow's log level before anything imports it)
from lstm_exp import errors
from lstm_exp.cli.job import failure_outcome, run_job
from lstm_exp.config.compose import CONFIG_DIR
from lstm_exp.config.schema import register
from lstm_exp.record import sweep

log = logging.getLogger("lstm_exp")
register()


_run_error: list[BaseException] = []  # a single run's error, raised again outside Hydra by `main`


# An absolute path: "../conf" resolves against the calling module, which breaks the `lstm-exp`
# console script and any import of this module (only `python -m` found it).
@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def _hydra_task(cfg: DictConfig) -> int:
    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    output_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        try:
            outcome = run_job(cfg, overrides)
        except Exception as error:  # noqa: BLE001 - Hydra would print its own banner first
            _run_error.append(error)
            failure_outcome(error).save(output_dir)
            return 1
        outcome.save(output_dir)
        print(outcome.report)
        return 0
    # In a sweep one job's failure must not stop the others: record it and go on.
    try:
        outcome = run_job(cfg, overrides, sweep.parent_run_id(Path(hydra_cfg.sweep.dir)))
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - reported per job, summed up at the sweep's end
        outcome = failure_outcome(error)
        log.error("job %s failed: %s", hydra_cfg.job.num, outcome.error)
    outcome.save(output_dir)
    if outcome.report:
        print(outcome.report)
    return outcome.exit_status


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


def main() -> None:
    """Runs Hydra and turns every failure into an exit status and, for bad input, one plain line."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        try:
            _hydra_task()
        except sweep.SweepAborted as aborted:  # the sweep's store failed before any job started
            raise aborted.error from None
        if _run_error:
            raise _run_error.pop()
    except errors.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sweep.abort_parent()
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # the launcher's own failure, e.g. a worker killed for memory: exit 1
        sweep.abort_parent("FAILED", f"{type(error).__name__}: {error}")
        raise
    sys.exit(sweep.exit_status())


if __name__ == "__main__":
    main()
