"""Makes lstm_exp's sweeper and Slurm launcher known to Hydra, however lstm_exp was installed.

Hydra instantiates only the plugin classes it knows, and it learns them by walking the `hydra_plugins`
namespace package with `pkgutil`. The walk sees files on a path (a wheel, `pip install .`, a compat
editable install) but not modules served by an import hook, and an import hook is how setuptools'
default editable install (`pip install -e .`, `uv pip install -e .`) serves our `hydra_plugins`: a
path would also make the checkout's other folders importable, and conf/ is mapped to lstm_exp.conf.
A layout that made setuptools choose a path would depend on its heuristics. An ordinary import goes
through the hook in every install mode, so the entry point imports the two plugin classes and hands
them to Hydra's public `Plugins.register`. Their config options need no walk either: the sweeper's
are YAML in conf/hydra/, found by the config search path, and the Slurm launcher's a dataclass that
`lstm_exp.config.schema.register` puts in Hydra's ConfigStore; a single run never needs a plugin at all.
"""

from hydra.core.plugins import Plugins


def register_plugins() -> None:
    """Registers our two sweepers and `LstmExpSlurmLauncher` with Hydra (idempotent)."""
    # Plugins first: its walk, where it sees our modules, executes them again and so replaces their
    # classes; a class imported before it would no longer be the module's own, and would not pickle
    # (joblib and submitit pickle the launcher and Hydra's plugin registry into every job).
    plugins = Plugins.instance()
    from hydra_plugins.lstm_exp_slurm_launcher.lstm_exp_slurm_launcher import LstmExpSlurmLauncher
    from hydra_plugins.lstm_exp_sweeper.lstm_exp_sweeper import LstmExpSweeper
    from hydra_plugins.lstm_exp_sweeper.search_sweeper import LstmExpSearchSweeper

    for plugin in (LstmExpSweeper, LstmExpSearchSweeper, LstmExpSlurmLauncher):
        plugins.register(plugin)
