"""Runs a Databricks source-format notebook locally, the way Databricks runs it.

Cells are split at `# COMMAND ----------`. A cell whose lines all start with `# MAGIC` is a
magic cell: `%md` is documentation (rendered, not run) and `%pip` is resolved by the real
pip against the real index (`--dry-run`: the test environment keeps its own packages, and
the notebook must work with both). Other cells run as Python in one namespace that holds
what Databricks provides: `spark`, `dbutils` (widgets, secrets, library) and `display`;
`dbutils.library.restartPython()` empties that namespace, as a restart of Python does.
`display` refuses what Databricks' refuses: anything but a DataFrame or an object that
renders itself as HTML (`Cannot call display(<class 'str'>)`, the runtime's words); what a
cell prints is kept, as a cell's output is. A Python cell may have a title (a first line
`# DBTITLE 1,<title>`, as Databricks exports it), and a test may run only the cells of some
titles: the definitions it needs, without the %pip cell or a streaming query.
"""

from __future__ import annotations

import builtins
import copy
import shlex
import subprocess
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"
TITLE = "# DBTITLE 1,"
# What the notebook's Python finds without defining it (`print`: its output is kept).
PROVIDED = ("spark", "dbutils", "display", "print")


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


def cell_title(cell: str) -> str | None:
    first = cell.split("\n", 1)[0]
    return first.removeprefix(TITLE) if first.startswith(TITLE) else None


def displayable(item: Any) -> bool:
    """What Databricks' `display` renders: a Spark (classic or Connect) or pandas DataFrame,
    or an object with `_repr_html_`; the runtime raises for anything else."""
    kind = type(item)
    dataframe = kind.__name__ == "DataFrame" and kind.__module__.startswith(("pyspark.", "pandas."))
    return dataframe or callable(getattr(item, "_repr_html_", None))


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
        """Databricks' `display`: what it cannot render is refused, with the runtime's message."""
        if not displayable(item):
            raise Exception(f"Cannot call display({type(item)})")  # the runtime's words
        self.displayed.append(item)


def run_notebook(
    path: Path,
    spark: Any,
    widgets: dict[str, str],
    secrets: dict[tuple[str, str], str] | None = None,
    cwd: Path | None = None,
    run: NotebookRun | None = None,
    titles: Collection[str] | None = None,
) -> NotebookRun:
    """Run the notebook's cells in order; with `titles`, only the Python cells of those titles."""
    import os

    run = run or NotebookRun(namespace={})
    dbutils = DBUtils(Widgets(widgets), Secrets(secrets or {}), Library(run))
    cell_print = CellPrint(run.printed)
    run.namespace.update(spark=spark, dbutils=dbutils, display=run.display, print=cell_print)
    cells = split_cells(path.read_text())
    if titles is not None:
        missing = set(titles) - {cell_title(cell) for cell in cells}
        if missing:
            raise ValueError(f"{path.name} has no cell titled {sorted(missing)}")
        cells = [cell if cell_title(cell) in titles else "" for cell in cells]
    old_cwd = Path.cwd()
    os.chdir(cwd or path.parent)  # Databricks runs a notebook in its own folder
    try:
        for index, cell in enumerate(cells):
            if not cell:
                continue  # a cell not asked for
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
