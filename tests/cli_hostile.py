"""Shared by the hostile command-line tests: every `python -m lstm_exp.*` command, its parser, and
hostile values for each kind of option. Not a test module: nothing here is collected.
"""

import argparse
import importlib
import re
from pathlib import Path

from hypothesis import strategies as st

PACKAGE = Path(__file__).resolve().parents[1] / "lstm_exp"


def commands() -> list[str]:
    """`python -m lstm_exp.<name>` for every module of the package that runs as a program."""
    return sorted(p.stem for p in PACKAGE.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def parser_of(command: str) -> argparse.ArgumentParser:
    """The parser a command reads its arguments with (`run`'s: the mirror of Hydra's flags)."""
    if command == "run":
        return importlib.import_module("lstm_exp.cli.hydra_flags").build_parser()
    entry = importlib.import_module(f"lstm_exp.{command}").main
    return importlib.import_module(entry.__module__).build_parser()


def options(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.Action]:
    """Every option and positional of a parser and its sub-commands, named `sub:--flag` or `sub:dest`."""
    found = {}
    for action in parser._actions:  # argparse offers no public list of a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= options(sub, f"{prefix}{name}:")
        elif not isinstance(action, argparse._HelpAction):
            found[prefix + (action.option_strings[0] if action.option_strings else action.dest)] = action
    return found


# -- hostile values -----------------------------------------------------------------------------------
NON_FINITE = ["nan", "-nan", "inf", "-inf", "1e999", "-1e999", "Infinity", "NaN"]
HUGE = ["1e308", "-1e308", "3.5e38", "-3.5e38", str(10**400), str(2**64), "0x10", "1_000"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
WORDS = st.sampled_from(["", " ", "-", "--", "é", "日本", "'", '"', "`", "%", "\\", "..", "/", "x" * 300,
                         "a=b", "-1", "0", "sqlite:///", "http://127.0.0.1:9", "file:///dev/null"])
NUMBERS = st.one_of(st.sampled_from(NON_FINITE + HUGE),
                    st.floats(allow_nan=True, allow_infinity=True).map(str),
                    st.integers(-(10**40), 10**40).map(str))
# Output files: missing folders, unknown or missing extensions, folders, unwritable places, unicode.
OUT_FOLDERS = st.sampled_from(["", "missing/", "missing/deeper/", "/proc/", "/", "./", "日本/", "a b/"])
OUT_NAMES = st.sampled_from(["out", "out.", ".npz", "out.npz", "OUT.NPZ", "out.png", "out.PDF", "out.svg",
                             "out.txt", "out.npz.bak", "out.xyz", "out.pgf", "é.png", "..", ".", "out.html",
                             "OUT.HTML", "out.htm"])
OUT_FILES = st.builds(lambda folder, name: folder + name, OUT_FOLDERS, OUT_NAMES)
RUN_REFS = st.one_of(st.sampled_from(["RUN_ID", "PREFIX", "0", "f", "%", "'", "_", "' OR 1=1 --",
                                      "0" * 32, "g" * 32, "ffffffffffffffffffffffffffffffffff"]), TEXT)
ANYTHING = st.one_of(TEXT, WORDS, NUMBERS)


def strategy_for(action: argparse.Action) -> st.SearchStrategy[str]:
    """Hostile text for one option's value, by the kind of value it takes."""
    if action.choices:
        return st.one_of(st.sampled_from(list(action.choices)), ANYTHING)
    if action.type is float or action.type is int:
        return st.one_of(NUMBERS, st.sampled_from(["0", "1", "-1"]), ANYTHING)
    if action.type is Path:
        return st.one_of(OUT_FILES, ANYTHING)
    return ANYTHING


def printed_paths(stdout: str) -> list[str]:
    """The files a command says it wrote: `wrote PATH (...)`, `plot: PATH` and `report: PATH` lines."""
    return re.findall(r"^(?:wrote (.+) \(\w+ layout\)|plot: (.+)|report: (.+))$", stdout, re.MULTILINE)


def check_one_line(status: int, stderr: str, allowed: tuple[int, ...] = (0, 2)) -> None:
    """Exit 0 or 2, no traceback, and for 2 exactly one `error: ...` line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert status in allowed, (status, stderr)
    if status == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
