"""Runs a Databricks source-format notebook locally, the way Databricks runs it.

Cells are split at `# COMMAND ----------`. A cell whose lines all start with `# MAGIC` is a
magic cell: `%md` is documentation (rendered, not run) and `%pip` is resolved by the real
pip against the real index (`--dry-run`: the test environment keeps its own packages, and
the notebook must work with both). Other cells run as Python in one namespace that holds
what Databricks provides: `spark`, `dbutils` (widgets, secrets, library) and `display`;
`dbutils.library.restartPython()` empties that namespace, as a restart of Python does.
`display` refuses what Databricks' refuses (a string, a number: `Cannot call
display(<class 'str'>)`); what a cell prints is kept, as a cell's output is.
"""

from __future__ import annotations

import builtins
import copy
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"
# What the notebook's Python finds without defining it (`print`: its output is kept).
PROVIDED = ("spark", "dbutils", "display", "print")
# Not displayable in Databricks: `display` renders DataFrames (and figures), not plain values.
PLAIN_TYPES = (str, bytes, bytearray, int, float, complex, bool, list, tuple, dict, set,
               frozenset, type(None))  # fmt: skip


def split_cells(source: str) -> list[str]:
    if not source.startswith(HEADER + "\n"):
        raise ValueError(f"not a Databricks source notebook: first line must be {HEADER!r}")
    body = source[len(HEADER) + 1 :]
    return [cell.strip("\n") for cell in body.split("\n" + SEPARATOR + "\n")]


def magic_command(cell: str) -> str | None:
    """The magic cell's text without the `# MAGIC ` prefixes, or None for a Python cell."""
    lines = cell.splitlines()
    if not lines or not all(line.startswith(MAGIC) for line in lines):
        return None
    return "\n".join(line[len(MAGIC) :].removeprefix(" ") for line in lines)


class Widgets:
    def __init__(self, overrides: dict[str, str]) -> None:
        self.overrides = overrides
        self.defined: dict[str, str] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defined[name] = self.overrides.get(name, default)

    def dropdown(self, name: str, default: str, choices: list[str], label: str | None = None):
        value = self.overrides.get(name, default)
        if value not in choices:
            raise ValueError(f"widget {name}: {value!r} is not one of {choices}")
        self.defined[name] = value

    def get(self, name: str) -> str:
        if name not in self.defined:
            raise KeyError(f"widget {name!r} is not defined (Databricks: InputWidgetNotDefined)")
        return self.defined[name]


class Secrets:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values
        self.read: list[tuple[str, str]] = []

    def get(self, scope: str, key: str) -> str:
        self.read.append((scope, key))
        return self.values[(scope, key)]


class Library:
    def __init__(self, run: NotebookRun) -> None:
        self.run = run

    def restartPython(self) -> None:
        """What survives a restart of Python: the notebook's widgets, not its variables."""
        self.run.restarts += 1
        keep = {name: self.run.namespace[name] for name in PROVIDED}
        self.run.namespace.clear()
        self.run.namespace.update(keep)


@dataclass
class DBUtils:
    widgets: Widgets
    secrets: Secrets
    library: Library | None = None


class CellPrint:
    """`print` as a cell sees it: printed, and kept as the cell's output. A function that
    Spark ships to its workers takes plain `print` along (workers print to their logs)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __call__(self, *values: Any, sep: str | None = " ", **kwargs: Any) -> None:
        self.lines.append((" " if sep is None else sep).join(map(str, values)))
        builtins.print(*values, sep=sep, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return copy.copy, (builtins.print,)  # unpickled: plain `print` (copying it is itself)


@dataclass
class NotebookRun:
    namespace: dict[str, Any]
    displayed: list[Any] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)
    pip_commands: list[str] = field(default_factory=list)
    markdown_cells: int = 0
    restarts: int = 0

    def display(self, item: Any, *args: Any, **kwargs: Any) -> None:
        """Databricks' `display`: a plain value is refused, with the runtime's message."""
        if isinstance(item, PLAIN_TYPES):
            raise Exception(f"Cannot call display({type(item)})")  # the runtime's words
        self.displayed.append(item)


def run_notebook(
    path: Path,
    spark: Any,
    widgets: dict[str, str],
    secrets: dict[tuple[str, str], str] | None = None,
    cwd: Path | None = None,
    run: NotebookRun | None = None,
) -> NotebookRun:
    import os

    run = run or NotebookRun(namespace={})
    dbutils = DBUtils(Widgets(widgets), Secrets(secrets or {}), Library(run))
    cell_print = CellPrint(run.printed)
    run.namespace.update(spark=spark, dbutils=dbutils, display=run.display, print=cell_print)
    old_cwd = Path.cwd()
    os.chdir(cwd or path.parent)  # Databricks runs a notebook in its own folder
    try:
        for index, cell in enumerate(split_cells(path.read_text())):
            magic = magic_command(cell)
            if magic is None:
                exec(compile(cell, f"{path.name}[cell {index}]", "exec"), run.namespace)
            elif magic.startswith("%md"):
                run.markdown_cells += 1
            elif magic.startswith("%pip"):
                args = shlex.split(magic.removeprefix("%pip"))
                run.pip_commands.append(" ".join(args))
                subprocess.run([sys.executable, "-m", "pip", *args, "--dry-run", "-q"], check=True)
            else:
                raise ValueError(f"unsupported magic in cell {index}: {magic.split()[0]}")
    finally:
        os.chdir(old_cwd)
    return run
