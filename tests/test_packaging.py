"""The wheel ships every package of the source tree: pyproject lists packages by name, so a new folder
under lstm_exp/ that is not listed would be missing from a wheel while a checkout still runs."""

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(project["tool"]["setuptools"]["packages"])


def _packages_on_disk() -> set[str]:
    found = {"lstm_exp"}
    for init in (REPO / "lstm_exp").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_every_package_under_lstm_exp_is_in_the_wheel():
    on_disk = _packages_on_disk()
    assert {"lstm_exp.jobs", "lstm_exp.compute.native", "lstm_exp.record"} <= on_disk  # the walk works
    assert on_disk - _listed() == set()
