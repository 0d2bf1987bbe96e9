"""Where the Hydra configs are, and composing them outside the CLI (notebooks, tests, rerun)."""

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from lstm_exp.config.schema import register

_PACKAGE = Path(__file__).resolve().parents[1]


def _config_dir() -> Path:
    # An installed wheel carries conf/ as lstm_exp/conf (pyproject's package-dir); a checkout, and an
    # editable install of it, keep it at the repository's top level, where users edit it.
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise RuntimeError(f"lstm_exp's configs are missing: no conf/config.yaml in or beside {_PACKAGE}")


CONFIG_DIR = _config_dir()


def compose(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
    """Composes `conf/config.yaml` with command-line style overrides.

    Example:
        >>> compose("model=stacked", "seed=3").model.units
        [4, 5]
    """
    register()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
