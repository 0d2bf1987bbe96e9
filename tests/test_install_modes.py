"""lstm_exp's Hydra plugins after setuptools' default editable install (`pip install -e .`, and uv's).

That install serves `hydra_plugins/` through an import hook, which Hydra's plugin scan cannot see; a
wheel and a compat editable install put files on a path, which it can (the CI installs the wheel and
the default editable install in full). Here a real default editable install of this checkout goes into
a fresh venv without its dependencies: they come from this venv's site-packages as a plain path, so
that this venv's own (compat) install of the checkout, a `.pth` file there, is not read.
"""

import os
import site
import subprocess
import sys

import pytest
from conftest import CLI_TIMEOUT, REPO

pytestmark = pytest.mark.slow  # fresh venvs and editable installs

INSTALL_TIMEOUT = 300  # s: pip building and installing the editable wheel, no downloads


# uv builds the editable wheel with the same setuptools hook; it installs it with its own installer.
INSTALLERS = {
    "pip": lambda python: [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "-e", str(REPO)],
    "uv": lambda python: [sys.executable, "-m", "uv", "pip", "install", "--python", python, "--no-deps",
                          "--no-build-isolation", "--offline", "-e", str(REPO)],
}


@pytest.fixture(scope="module", params=sorted(INSTALLERS))
def editable_python(request, tmp_path_factory) -> str:
    """The python of a fresh venv holding a default-mode editable install of this checkout."""
    venv = tmp_path_factory.mktemp("default-editable") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=INSTALL_TIMEOUT)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(purelib, "dependencies.pth"), "w") as pth:
        pth.write("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run(INSTALLERS[request.param](python), capture_output=True, text=True,
                             timeout=INSTALL_TIMEOUT)
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def _run(python: str, cwd, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    return subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


PLUGINS_SEEN = """
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from lstm_exp.cli.plugins import register_plugins

def seen():
    plugins = Plugins.instance().discover(Sweeper) + Plugins.instance().discover(Launcher)
    return sorted(c.__name__ for c in plugins if c.__name__.startswith("LstmExp"))

print("scan:", seen())
register_plugins()
print("registered:", seen())
"""


def test_the_install_hides_our_plugins_from_hydras_scan_and_registration_finds_them(editable_python,
                                                                                     tmp_path):
    proc = _run(editable_python, tmp_path, "-c", PLUGINS_SEEN)
    assert proc.returncode == 0, proc.stderr
    # The first line shows the install is the one the scan cannot see into (else this test tests nothing).
    registered = ['LstmExpSearchSweeper', 'LstmExpSlurmLauncher', 'LstmExpSweeper']
    assert proc.stdout.splitlines() == ["scan: []", f"registered: {registered}"]


@pytest.mark.parametrize("args", [
    pytest.param([], id="run"),
    pytest.param(["-m", "seed=0,1"], id="sweep"),
    pytest.param(["-m", "seed=0,1", "hydra/launcher=joblib"], id="sweep-joblib"),
])
def test_the_cli_works_from_another_directory(editable_python, tmp_path, args):
    proc = _run(editable_python, tmp_path, "-m", "lstm_exp.run", *args, "tracking.enabled=false",
                "dry_run=true")
    assert proc.returncode == 0, proc.stderr
    if args:
        assert "2 jobs: 2 dry_run" in proc.stdout, proc.stdout


def test_the_slurm_launchers_options_compose_in_the_install(editable_python, tmp_path):
    # Its ConfigStore entry is made before composition, not by Hydra's scan, which cannot see it here.
    proc = _run(editable_python, tmp_path, "-m", "lstm_exp.run", "hydra/launcher=slurm", "--cfg", "hydra")
    assert proc.returncode == 0, proc.stderr
    assert "LstmExpSlurmLauncher" in proc.stdout and "lost_job_grace_s: 60" in proc.stdout, proc.stdout
