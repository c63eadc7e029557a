"""The documentation holds together: links resolve, the README stays short, tables are current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = [
    REPO / "README.md",
    REPO / "bench" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(document: Path) -> None:
    targets = [t for t in LINK.findall(document.read_text()) if "://" not in t]
    missing = [t for t in targets if not (document.parent / t).exists()]
    assert targets or document.name != "README.md"
    assert not missing, f"{document.name} links to missing files: {missing}"


def test_the_readme_reads_in_five_minutes() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    for doc in (
        "configuration",
        "performance",
        "scaling",
        "security",
        "databricks",
        "contributing",
    ):
        assert f"docs/{doc}.md" in "\n".join(lines)


def test_the_settings_table_is_generated_from_the_config() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_the_figures_tables_are_generated_from_their_results() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "docs_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_figure_typed_into_the_performance_prose_fails_the_check() -> None:
    """Figures in the performance documents come from the results only: one typed into
    their prose is caught, one in a generated block or in code is not."""
    from helpers import bench_module

    docs_tables = bench_module("docs_tables")
    performance = docs_tables.PERFORMANCE
    text = (
        "Intro.\n<!-- wall:begin -->\n| 3 | 1.50 s | 4.0 frames/s |\n<!-- wall:end -->\n"
        "Set `CAMSTREAM_ANALYSIS_BUDGET_MS` (`400 ms`) for two cameras at half load.\n"
    )
    assert docs_tables.stray_figures(performance, text) == []
    typed = text + "The demo keeps up: p50 690 ms, 531 frames/s gated (8.2x), 94% of raw.\n"
    assert docs_tables.stray_figures(performance, typed) == [
        "p50 690", "531 frames/s", "8.2x", "94%"
    ]  # fmt: skip
    # In the README only its performance sections are checked, and there too.
    readme = (
        "## Commands\nCameras at 5 frames/s.\n## Watching what moves\nGated.\n"
        "## Performance\nJob at 128 frames/s.\n## End\n"
    )
    assert docs_tables.stray_figures(docs_tables.README, readme) == ["128 frames/s"]
    assert docs_tables.stray_figures(docs_tables.README, "## Performance\n") == [
        "no section '## Watching what moves'"
    ]


def test_version_is_reported() -> None:
    from camstream import __version__

    done = subprocess.run(
        [sys.executable, "-m", "camstream", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"camstream {__version__}"
    assert __version__[0].isdigit() and "unknown" not in __version__
