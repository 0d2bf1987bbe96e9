"""Faults injected into the CLI's jobs from outside the product: a Hydra callback.

A test adds `fault_overrides(...)` to the CLI's arguments; the callback `Fault` then sits under
`hydra.callbacks`, and Hydra's `run_job` instantiates it in every job's process (the CLI helpers put
this folder on PYTHONPATH; Slurm's jobs inherit the submitting environment) and calls `on_job_start`
before the task, under every launcher. A job whose `seed` is chosen gets, for its duration only, a
wrapped `lstm_exp.compute.runner.execute` (jobs/job.py imports it at call time):
- pause: after the forward pass and its reference check, the job waits, its MLflow run open, until
  `RELEASE_FILE` appears in the launch directory (at most `RELEASE_WAIT_S`, then it fails);
- deaf: as pause, with SIGTERM ignored while it waits (a job stuck where no signal handler runs);
- forward: after the forward pass, the job raises ("fault injected ...");
- kill: once the training's checkpoint after `kill_after_epochs` epochs is in its run, the job's
  process sends itself `kill_signal` (SIGKILL by default: a kill that nothing can catch);
- stall: in a Slurm job's first attempt (no `SLURM_RESTART_COUNT`), once the checkpoint after
  `kill_after_epochs` epochs is in its run, the job waits (at most `RELEASE_WAIT_S`) for its time
  limit: whatever the machine's speed, the training needs a requeue;
- nan: training's per-epoch callback sees val_loss NaN (a diverged training, as a search trial sees it).
Keyed on the seed, the faulty job is named in the `lstm_exp.overrides` tag and the sweep's lines
(`seed=1`), which Hydra's own `hydra.*` overrides never are.

    run_cli("-m", "seed=0,1", *fault_overrides(pause=[1]), cwd=launch)  # job 1 holds its run open
    (launch / RELEASE_FILE).touch()  # and goes on
"""

import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

TESTS = Path(__file__).resolve().parent
RELEASE_FILE = "lstm_exp_release"  # a paused job waits for it in its launch directory
RELEASE_WAIT_S = 300  # a test that never releases its paused jobs stops them, or they fail after this
POLL_S = 0.1


def fault_overrides(pause: Iterable[int] = (), forward: Iterable[int] = (), kill: Iterable[int] = (),
                    kill_after_epochs: int = 1, kill_signal: int = signal.SIGKILL,
                    stall: Iterable[int] = (), nan: Iterable[int] = (),
                    deaf: Iterable[int] = ()) -> tuple[str, ...]:
    """The CLI overrides that make the jobs of these seeds pause or fail after the forward pass, see
    a NaN val_loss, or kill themselves (or stall, in a Slurm job's first attempt) after a training
    checkpoint."""
    listed = {"pause_seeds": list(pause), "forward_seeds": list(forward), "kill_seeds": list(kill),
              "stall_seeds": list(stall), "nan_seeds": list(nan), "deaf_seeds": list(deaf)}
    kills = (f"+hydra.callbacks.fault.kill_after_epochs={kill_after_epochs}",
             f"+hydra.callbacks.fault.kill_signal={int(kill_signal)}") if kill or stall else ()
    return ("+hydra.callbacks.fault._target_=faults.Fault",
            *(f"+hydra.callbacks.fault.{key}=[{','.join(map(str, seeds))}]"
              for key, seeds in listed.items() if seeds), *kills)


def on_python_path(env: dict[str, str]) -> dict[str, str]:
    """`env` with this folder first on PYTHONPATH, so that a CLI's job processes can import `faults`."""
    path = [str(TESTS), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


class Fault(Callback):
    """Makes the jobs of `pause_seeds` wait for the release file and those of `forward_seeds` raise.

    Args:
        pause_seeds: seeds whose jobs hold their open run until `RELEASE_FILE` appears in the launch
            directory (`hydra.runtime.cwd`).
        forward_seeds: seeds whose jobs raise a RuntimeError after the forward pass.
        nan_seeds: seeds whose jobs' per-epoch callback receives val_loss NaN.
        deaf_seeds: as `pause_seeds`, with SIGTERM ignored while they wait.
    """

    def __init__(self, pause_seeds: Iterable[int] = (), forward_seeds: Iterable[int] = (),
                 kill_seeds: Iterable[int] = (), kill_after_epochs: int = 1,
                 kill_signal: int = signal.SIGKILL, stall_seeds: Iterable[int] = (),
                 nan_seeds: Iterable[int] = (), deaf_seeds: Iterable[int] = ()) -> None:
        self.pause_seeds = frozenset(pause_seeds)
        self.forward_seeds = frozenset(forward_seeds)
        self.kill_seeds = frozenset(kill_seeds)
        self.stall_seeds = frozenset(stall_seeds)
        self.nan_seeds = frozenset(nan_seeds)
        self.deaf_seeds = frozenset(deaf_seeds)
        self.kill_after_epochs, self.kill_signal = kill_after_epochs, kill_signal
        self._execute = None  # lstm_exp's own `execute` while a job runs with it wrapped

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        from lstm_exp.compute import runner

        first_attempt = "SLURM_RESTART_COUNT" not in os.environ
        if config.seed in self.kill_seeds or (config.seed in self.stall_seeds and first_attempt):
            release = Path(config.hydra.runtime.cwd) / RELEASE_FILE
            self._kill_after_checkpoint(runner, release if config.seed in self.stall_seeds else None)
        pause, forward = config.seed in self.pause_seeds, config.seed in self.forward_seeds
        nan, deaf = config.seed in self.nan_seeds, config.seed in self.deaf_seeds
        if not (pause or forward or nan or deaf):
            return
        execute, release = runner.execute, Path(config.hydra.runtime.cwd) / RELEASE_FILE
        reason = f"fault injected after the forward pass (faults.Fault, seed {config.seed})"

        def execute_with_fault(*args, **options):
            if nan and options.get("on_epoch") is not None:
                on_epoch = options["on_epoch"]
                options["on_epoch"] = lambda epoch, train, val, s: on_epoch(epoch, train, float("nan"), s)
            result = execute(*args, **options)  # the forward pass and its reference check
            if pause:
                _wait_for(release)
            if deaf:
                heard = signal.signal(signal.SIGTERM, signal.SIG_IGN)
                _wait_for(release)
                signal.signal(signal.SIGTERM, heard)
            if forward:
                raise RuntimeError(reason)
            return result

        self._execute, runner.execute = execute, execute_with_fault

    def _kill_after_checkpoint(self, runner, stall: Path | None = None) -> None:
        """Wraps `execute` so that the checkpoint after `kill_after_epochs` epochs, once saved into
        the run, is followed by `kill_signal` to this process (or, with `stall`, by a wait for that
        release file, which a test leaves absent: Slurm's requeue or time limit ends the wait)."""
        execute, after, number = runner.execute, self.kill_after_epochs, self.kill_signal

        def execute_then_kill(*args, checkpointing=None, **options):
            save = checkpointing.save

            def save_then_kill(checkpoint):
                save(checkpoint)
                if checkpoint.epochs_done == after and stall:
                    _wait_for(stall)
                elif checkpoint.epochs_done == after:
                    os.kill(os.getpid(), number)

            checkpointing.save = save_then_kill
            return execute(*args, checkpointing=checkpointing, **options)

        self._execute, runner.execute = execute, execute_then_kill

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        # The basic launcher runs a sweep's jobs one after the other in this process.
        if self._execute is not None:
            from lstm_exp.compute import runner

            runner.execute, self._execute = self._execute, None


def _wait_for(release: Path) -> None:
    """Holds the job until `release` exists; a bounded wait, so a forgotten job cannot hang a test."""
    deadline = time.monotonic() + RELEASE_WAIT_S
    while not release.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"faults.Fault pause: no {release} within {RELEASE_WAIT_S} s")
        time.sleep(POLL_S)
