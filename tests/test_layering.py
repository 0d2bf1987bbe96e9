"""The package's data flow goes one way, read from the code itself with `ast`:
config -> compute -> record -> jobs -> cli; only `record/` imports mlflow; only the runner's check imports the
NumPy reference (the independent check must not become a dependency of the code it checks).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lstm_exp"
LAYERS = ("config", "compute", "record", "jobs", "cli")  # each may import only from those before it
REFERENCE_IMPORTERS = {"compute/runner.py"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, with the line: `import a.b`, `from a.b import c` (as a.b and a.b.c)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _where(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_the_walk_sees_the_package():
    names = {_where(p) for p in _sources()}
    assert {"cli/run.py", "record/store.py", "compute/runner.py", "config/validate.py"} <= names
    assert ("lstm_exp.compute.reference" in {m for _, m in _imports(PACKAGE / "compute" / "runner.py")})


def test_only_record_imports_mlflow():
    offenders = [f"{_where(p)}:{line} imports {module}" for p in _sources() for line, module in _imports(p)
                 if module.split(".")[0] == "mlflow" and not _where(p).startswith("record/")]
    assert offenders == []


def test_only_the_runners_check_imports_the_reference():
    offenders = [f"{_where(p)}:{line}" for p in _sources() for line, module in _imports(p)
                 if module.startswith("lstm_exp.compute.reference") and _where(p) not in REFERENCE_IMPORTERS]
    assert offenders == []


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_before_it(layer):
    later = LAYERS[LAYERS.index(layer) + 1 :]
    offenders = [f"{_where(p)}:{line} imports {module}" for p in sorted((PACKAGE / layer).rglob("*.py"))
                 for line, module in _imports(p)
                 if any(module.startswith(f"lstm_exp.{after}") for after in later)]
    assert offenders == []



def _config_trees(path: Path) -> list[str]:
    """Where a file names `DictConfig` or reads a `cfg.` attribute: the whole config tree handed down."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Name) and node.id == "DictConfig":
            found.append(f"{node.lineno} names DictConfig")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cfg":
            found.append(f"{node.lineno} reads cfg.{node.attr}")
    return found


def test_compute_takes_parsed_specs_not_the_config_tree():
    sources = sorted((PACKAGE / "compute").rglob("*.py"))
    assert len(sources) > 10  # the walk sees the compute package
    assert [f"{_where(p)}:{line}" for p in sources for line in _config_trees(p)] == []


def test_the_config_tree_check_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from omegaconf import DictConfig\n\ndef f(cfg: DictConfig):\n    return cfg.seed\n")
    assert sorted(_config_trees(sample)) == ["3 names DictConfig", "4 reads cfg.seed"]
