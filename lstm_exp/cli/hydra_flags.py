"""The flags of `python -m lstm_exp.run` (Hydra's own), checked before Hydra parses them.

Hydra answers a bad flag with its usage block, and a flag used out of place (`--resolve` alone,
`--shell-completion` without what to do) with a traceback. This parser mirrors Hydra's flags
(`tests/test_hostile_cli.py` checks the two agree) so that these are one line and exit 2 instead.
`--experimental-rerun` is refused: it unpickles a file, and `python -m lstm_exp.rerun` reruns a run.
"""

import argparse

from lstm_exp.cli.options import OneLineParser
from lstm_exp.errors import ConfigError

INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")
COMPLETION_COMMANDS = ("install", "uninstall", "query")


def build_parser() -> argparse.ArgumentParser:
    """Hydra's flags, as `hydra.main` defines them (help and version print as Hydra prints them)."""
    parser = OneLineParser(prog="python -m lstm_exp.run", add_help=False)
    parser.add_argument("--help", "-h", action="store_true")
    parser.add_argument("--hydra-help", action="store_true")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--cfg", "-c", choices=("job", "hydra", "all"))
    parser.add_argument("--resolve", action="store_true")
    parser.add_argument("--package", "-p")
    parser.add_argument("--run", "-r", action="store_true")
    parser.add_argument("--multirun", "-m", action="store_true")
    parser.add_argument("--shell-completion", "-sc", action="store_true")
    parser.add_argument("--config-path", "-cp")
    parser.add_argument("--config-name", "-cn")
    parser.add_argument("--config-dir", "-cd")
    parser.add_argument("--experimental-rerun")
    parser.add_argument("--info", "-i", const="all", nargs="?", choices=INFO_CHOICES)
    return parser


def check_flags(argv: list[str]) -> None:
    """Refuses, in one line (exit 2), what Hydra would answer with its usage block or a traceback."""
    args = build_parser().parse_args(argv)
    modes = [(flag, value) for flag, value in (("--run", args.run), ("--multirun", args.multirun),
                                               ("--cfg", args.cfg), ("--info", args.info),
                                               ("--shell-completion", args.shell_completion)) if value]
    if len(modes) > 1:  # Hydra raises a ValueError for this, after its own parse
        (first, _), (flag, value) = modes[:2]
        raise ConfigError(flag, value, f"left out when {first} is given: one mode at a time (--run, "
                          "--multirun, --cfg, --info and --shell-completion exclude each other)")
    if args.experimental_rerun is not None:
        raise ConfigError("--experimental-rerun", args.experimental_rerun,
                          "left out: it unpickles a file; python -m lstm_exp.rerun RUN_ID reruns a run")
    if args.resolve and not (args.cfg or args.help):
        raise ConfigError("--resolve", True, "used with --cfg or --help")
    if args.package is not None and not args.cfg:
        raise ConfigError("--package", args.package, "used with --cfg")
    if args.cfg and args.package not in (None, "_global_") and not (
        args.config_path or args.config_name or args.config_dir or args.multirun
    ):
        _check_package(args.package, args.cfg, args.overrides)
    if args.shell_completion:
        chosen = [o for o in args.overrides if o.split("=")[0] in COMPLETION_COMMANDS]
        if len(chosen) != 1:
            raise ConfigError("--shell-completion", " ".join(args.overrides),
                              "one of " + ", ".join(f"{c}=SHELL" for c in COMPLETION_COMMANDS))


def _check_package(package: str, cfg: str, overrides: list[str]) -> None:
    """`--package` names a node of what `--cfg` prints (Hydra itself would exit 1 for one it lacks)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from lstm_exp.config.compose import compose

    composed = compose(*overrides, return_hydra_config=cfg != "job")
    if cfg == "hydra":
        composed = OmegaConf.create({"hydra": composed.hydra})
    try:
        found = OmegaConf.select(composed, package)
    except (OmegaConfBaseException, IndexError, ValueError):  # a package that is no dotted key at all
        found = None
    if found is None:
        allowed = f"a key of the config --cfg {cfg} prints, e.g. " + ", ".join(sorted(composed)[:6])
        raise ConfigError("--package", package, allowed)
