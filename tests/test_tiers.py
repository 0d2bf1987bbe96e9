"""The test tiers, read from the test sources: `scripts/test --quick` deselects exactly the tier marks
registered in pyproject.toml; every test that starts a service or a browser carries that tier's mark
(a quick run without root or services would fail on it), and only those do; the quick tier holds the
core of the suite; and no test module imports another (shared helpers live in plain modules).

A test uses what it names in its body or arguments, what the module's functions and fixtures it names
use, and what conftest's fixtures and the helper modules' functions use, followed to the end.
"""

import ast
import re
import tomllib
from pathlib import Path

from conftest import REPO

TESTS = REPO / "tests"
# What each tier mark stands for: the names whose use puts a test in that tier. `slow` has no names: its
# tests are the ones measured to take long (`pytest --durations`).
USES = {
    "service": {"mlflow_server", "postgres_cluster", "slurm_cluster"},  # tests/services.py, slurm_cluster.py
    "browser": {"webdriver"},  # selenium, driving chromium
    "slow": set(),
}
# Modules with tests in the quick tier: the edit-test loop covers configs, numbers, layouts, bad input.
CORE = ["test_config", "test_reference", "test_cells", "test_fused", "test_layering", "test_weights",
        "test_bad_input", "test_hostile", "test_dry_run", "test_tasks", "test_tiers"]


def _registered_marks() -> set[str]:
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    return {line.split(":")[0].strip() for line in markers}


def _mark_names(node: ast.AST, aliases: dict[str, set[str]]) -> set[str]:
    """The tier marks a decorator, `pytestmark` value or alias stands for (`pytest.mark.X`, lists of them)."""
    if isinstance(node, ast.List | ast.Tuple):
        return set().union(*(_mark_names(n, aliases) for n in node.elts))
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return aliases.get(node.id, set())
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "mark" and node.attr in USES):
        return {node.attr}
    return set()


def _references(node: ast.AST) -> set[str]:
    """Every name a definition refers to: in its body, its decorators, and its arguments (fixtures)."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return names | {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}


def _definitions(tree: ast.Module) -> dict[str, set[str]]:
    return {n.name: _references(n) for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _tiers_used(name: str, local: dict[str, set[str]], shared: dict[str, set[str]]) -> set[str]:
    """The tiers whose names definition `name` uses, directly or through the definitions it names."""
    found, seen, todo = set(), set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        found |= {tier for tier, names in USES.items() if current in names}
        todo += local.get(current, shared.get(current, set()))
    return found


def _tests() -> list[tuple[str, str, set[str], set[str]]]:
    """(module, test, the tier marks it carries, the tiers it uses) for every test function."""
    shared: dict[str, set[str]] = {}
    for path in sorted(TESTS.glob("*.py")):
        if not path.name.startswith("test_"):
            for name, refs in _definitions(_parse(path)).items():
                shared[name] = shared.get(name, set()) | refs
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = _parse(path)
        local = _definitions(tree)
        aliases, module_marks = {}, set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(target := node.targets[0], ast.Name):
                marks = _mark_names(node.value, aliases)
                if target.id == "pytestmark":
                    module_marks = marks
                elif marks:
                    aliases[target.id] = marks
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marks = module_marks.union(*(_mark_names(d, aliases) for d in node.decorator_list))
                found.append((path.stem, node.name, marks, _tiers_used(node.name, local, shared)))
    return found


def test_quick_deselects_exactly_the_registered_tier_marks():
    assert _registered_marks() == set(USES)
    quick = re.search(r'tier="([^"]+)"', (REPO / "scripts" / "test").read_text()).group(1)
    assert quick == " and ".join(f"not {mark}" for mark in sorted(USES))


def test_every_test_that_starts_a_service_or_a_browser_carries_its_mark_and_only_those():
    tests = _tests()
    assert len(tests) > 100  # the parse found the suite
    unmarked = [f"{m}::{t} needs {sorted(used - marks)}" for m, t, marks, used in tests if used - marks]
    assert unmarked == []
    stale = [f"{m}::{t} is marked {sorted(marks & {'service', 'browser'} - used)} but uses none"
             for m, t, marks, used in tests if marks & {"service", "browser"} - used]
    assert stale == []


def test_the_quick_tier_holds_the_core_of_the_suite():
    quick = [(module, test) for module, test, marks, _ in _tests() if not marks]
    assert len(quick) > 50
    assert {module for module, _ in quick} >= set(CORE)


def test_no_test_module_imports_another():
    imports = []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(_parse(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            imports += [f"{path.name} imports {name}" for name in names if name.startswith("test_")]
    assert imports == []
