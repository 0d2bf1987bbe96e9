"""The command-line options of `compare`, `rerun` and `weights`, checked once, at the edge.

Every refusal is one `ConfigError` line naming the option, the value received and what is allowed,
raised before a store is opened or a file written:

- `OneLineParser`: argparse's own errors (an unknown option, a missing argument, a bad choice) as
  one line, exit 2, instead of its usage block; `parse_command_line` checks the arguments' text too;
- `exit_2_on_bad_input`: a command's one edge, where any `ConfigError` becomes `error: ...`, exit 2;
- `check_utf8`: every argument must be valid UTF-8 text; a file name of other bytes reaches Python
  as lone surrogates, which MLflow, SQLite and a UTF-8 console cannot encode;
- `output_file`: an output file's folder must exist and its extension must be one the writer keeps
  as given, so that the path printed is the file written (`np.savez` appends `.npz` to any other
  name, matplotlib `.png` to a name without one);
- `finite_number`: `float()` takes `nan`, `inf` and `1e999`; these are refused here;
- `store_uri`: `--tracking-uri` gets the checks of `tracking.uri` (a bare path would otherwise reach
  MLflow's retired file store and its traceback).
"""

import argparse
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lstm_exp.config.store_checks import check_store_uri
from lstm_exp.errors import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one `error: ...` line and exit status 2 (`--help` is unchanged)."""

    def error(self, message: str):
        print(f"error: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        for argument in sys.argv[1:] if args is None else args:
            # argparse (before Python 3.13) turns `--filter=--` into an empty list, not the text `--`.
            if re.fullmatch(r"-[^=]+=--", argument):
                self.error(f"argument {argument.split('=')[0]}: '--' cannot be a value")
        return super().parse_args(args, namespace)

    def parse_command_line(self, argv: list[str] | None) -> argparse.Namespace:
        """`argv` (None: `sys.argv[1:]`) checked as text (`check_utf8`), then parsed."""
        argv = sys.argv[1:] if argv is None else argv
        check_utf8(argv)
        return self.parse_args(argv)


@contextmanager
def exit_2_on_bad_input() -> Iterator[None]:
    """Around a command's work: a `ConfigError` from inside ends it with one `error:` line, exit 2."""
    try:
        yield
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def check_utf8(argv: list[str]) -> None:
    """Refuses an argument that is not valid UTF-8 (a file name of other bytes, say).

    Args:
        argv: the arguments as Python received them (`sys.argv[1:]`).

    Raises:
        ConfigError: naming the option or override key the argument belongs to (else its position);
            the value is shown with its bytes escaped.
    """
    for position, argument in enumerate(argv):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            name, value = _named(argv, position)
            raw = value.encode("utf-8", "surrogateescape")
            raise ConfigError(name, raw, "valid UTF-8 text (file names included)") from None


def _named(argv: list[str], position: int) -> tuple[str, str]:
    """(name, value) of an argument: `--out X`, `--out=X`, the override `input.path=X`, else its position."""
    argument = argv[position]
    before = argv[position - 1] if position else ""
    if before.startswith("-") and "=" not in before and before.isascii():
        return before, argument
    name, equals, value = argument.partition("=")
    if equals and re.fullmatch(r"[-+~]*[\w.@/]+", name):
        return name, value
    return f"argument {position + 1}", argument


def output_file(option: str, path: Path | None, extensions: tuple[str, ...]) -> Path | None:
    """An output file whose folder exists and whose extension is one of `extensions` (any case).

    A missing folder is refused rather than created, so that a typo in it costs nothing and leaves
    no stray folders; `mkdir -p` it first.

    Example:
        >>> output_file("--out", Path("w.txt"), (".npz",))
        ConfigError: --out must be a file name ending in .npz. Received: --out=w.txt
    """
    if path is None:
        return None
    if path.suffix.lower() not in extensions:
        raise ConfigError(option, str(path), "a file name ending in " + ", ".join(extensions))
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(option, str(path), f"a file in an existing folder (no folder {folder})")
    if path.is_dir():
        raise ConfigError(option, str(path), "a file name, not a folder")
    return path


def finite_number(option: str, value: float | None, low: float, high: float) -> float | None:
    """`value` when it is a finite number in [low, high], else a ConfigError (None passes)."""
    if value is None:
        return None
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(option, value, f"a finite number from {low:g} to {high:g}")
    return value


def store_uri(option: str, uri: str | None) -> str | None:
    """`uri` when `tracking.uri` would accept it (see `config/store_checks.py`), named as `option`."""
    if uri is not None:
        try:
            check_store_uri(uri)
        except ConfigError as error:
            raise ConfigError(option, error.received, error.allowed) from None  # a password starred
    return uri
