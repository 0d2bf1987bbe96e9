"""Re-runs a recorded run from its own config and weights, and checks every array against the record.

    python -m lstm_exp.rerun RUN_ID [--tracking-uri URI]

Prints, for every array of the run's `states.npz`, `identical` (bit for bit) or the largest absolute
difference. Exit status: 0 when all are bit-identical; 1 when any differs; 2 for an unknown run or
one that cannot be rebuilt (one line on stderr). Nothing is recorded: tracking is off for the rerun.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lstm_exp.cli.options import OneLineParser, exit_2_on_bad_input, store_uri
from lstm_exp.compute.array_diff import difference, read_arrays
from lstm_exp.config.task_kinds import NO_TASK
from lstm_exp.errors import ConfigError
from lstm_exp.record.runs import download, find_run, open_store

# Keys earlier versions wrote into config.yaml that the schema no longer has: `run.inject_fault` (a
# test-only fault, now a Hydra callback under tests/).
RETIRED_KEYS = ("run.inject_fault",)


def rebuild_config(config_path: Path, weights_path: Path, run_id: str = "") -> DictConfig:
    """The run's `config.yaml` merged onto the schema, reading `weights_path` (keras layout), untracked.

    The logged weights are the ones the run used, whatever it loaded them from (a TF1 checkpoint, a
    torch file, fresh from the seed), so the rebuild does not depend on files outside the store.

    Args:
        config_path: the run's downloaded `config.yaml` (resolved, as the run logged it).
        weights_path: the run's downloaded `weights.npz`.
        run_id: named in the error when the config no longer fits the schema.
    """
    from lstm_exp.config.schema import ExperimentConfig

    try:
        recorded = OmegaConf.load(config_path)
        for key in RETIRED_KEYS:  # recorded by earlier versions; they changed nothing that is computed
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(recorded, parent)
            if isinstance(node, DictConfig) and leaf in node:
                node.pop(leaf)
        cfg = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), recorded)
    except OmegaConfBaseException as error:
        reason = " ".join(str(error).split("\n")[0].split())
        allowed = f"a run whose config.yaml the current schema accepts ({reason})"
        raise ConfigError("RUN_ID", run_id, allowed) from None
    if cfg.task.name == NO_TASK:
        cfg.model.weights.path = str(weights_path)
        cfg.model.weights.layout = "keras"
    # A trained run starts again from its own starting weights and trains again: what is checked is
    # that training gives the same weights, bit for bit (`rerun` compares them too).
    cfg.tracking.enabled = False
    cfg.dry_run = cfg.resume = False
    if "resume_from" in cfg.task:  # a continued training is retrained whole: the same weights, bit for bit
        cfg.task.resume_from = None
    cfg.run.repeat = 0  # timing is not what is being checked
    return cfg


def rerun(run_ref: str, tracking_uri: str | None) -> tuple[str, list[tuple[str, str]]]:
    """Rebuilds and executes a run; returns its id and (array, 'identical' or its difference) pairs.

    Raises:
        ConfigError: no such run, a run without config.yaml / weights.npz / states.npz, or a config
            that no longer validates.
    """
    from lstm_exp.compute.runner import execute
    from lstm_exp.config.experiment import parse

    with open_store(tracking_uri) as (client, _), \
            tempfile.TemporaryDirectory(prefix="lstm_exp_rerun_") as tmp:
        run_id = find_run(client, run_ref, key="RUN_ID").info.run_id
        config_path = download(client, run_id, "config.yaml", tmp)
        weights_path = download(client, run_id, "weights.npz", tmp)
        logged = read_arrays(download(client, run_id, "states.npz", tmp))
        cfg = rebuild_config(config_path, weights_path, run_id)
        result = execute(parse(cfg))
        arrays = dict(result.arrays)
        if cfg.task.name != "none":  # the trained weights are results too
            logged |= {f"weights:{n}": a for n, a in read_arrays(weights_path).items()}
            arrays |= {f"weights:{n}": a for n, a in result.weights.items()}
    rows = [(name, difference(logged[name], arrays[name]) if name in arrays else "missing from the rerun")
            for name in logged]
    rows += [(name, "not in the logged states.npz") for name in arrays if name not in logged]
    return run_id, rows


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m lstm_exp.rerun`."""
    parser = OneLineParser(prog="python -m lstm_exp.rerun", description=__doc__.split("\n")[0])
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id (or a unique prefix of it)")
    parser.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command line: the per-array report, then exit 0 (all identical), 1 (a difference) or 2."""
    with exit_2_on_bad_input():
        args = build_parser().parse_command_line(argv)
        run_id, rows = rerun(args.run_id, store_uri("--tracking-uri", args.tracking_uri))
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {verdict}" for name, verdict in rows))
    differ = sum(verdict != "identical" for _, verdict in rows)
    print(f"run {run_id}: " + (f"{differ} of {len(rows)} arrays differ" if differ
                               else f"all {len(rows)} arrays bit-identical"))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
