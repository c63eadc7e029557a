"""The figures tables of docs/performance.md, generated from the results they come from.

.venv/bin/python bench/docs_tables.py          # rewrite the tables in place
.venv/bin/python bench/docs_tables.py --check  # exit 1 if one is out of date (tests)

Each table sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->` and starts with the
line that names the commit, date and machine of its results.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
DOC = BENCH.parent / "docs" / "performance.md"


def _seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}"


def wall_table(results: dict[str, Any]) -> str:
    """The wall past capacity: each load, both policies side by side."""
    lines = [
        f"Results of commit {results.get('commit', 'unknown')}, {results['date']},"
        f" {results['machine']['cpus']} cores, OpenCV {results['machine']['opencv']};"
        " one run of each cell.",
        "",
        "| cameras | policy | delay p50 / p95 | analysed frames/s a camera (min-median)"
        " | longest gap | stale | shed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for w in results["wall"]:
        stale = w["stale_tiles"] > 0 and w["analysed_fps_median"] == 0
        analysed = (
            "0 (tiles stale)"
            if stale
            else f"{w['analysed_fps_min']}-{w['analysed_fps_median']}"
            if w["analysed_fps_min"] != w["analysed_fps_median"]
            else f"{w['analysed_fps_min']}"
        )
        gap_s = w["analysed_gap_max_s"]
        gap = "-" if stale or gap_s is None else f"{gap_s:.2f} s"
        lines.append(
            f"| {w['cameras']} | `{w['policy']}` | {_seconds(w['delay_ms_p50'])} /"
            f" {_seconds(w['delay_ms_p95'])} s | {analysed} | {gap} | {w['stale_tiles']}"
            f" | {round(100 * w['shed_share_median'])}% |"
        )
    return "\n".join(lines)


TABLES: dict[str, tuple[Path, Callable[[dict[str, Any]], str]]] = {
    "wall": (BENCH / "results" / "wall" / "results.json", wall_table),
}


def render(text: str) -> str:
    for name, (source, table) in TABLES.items():
        block = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.DOTALL)
        if not block.search(text):
            raise SystemExit(f"{DOC} has no <!-- {name}:begin/end --> block")
        body = table(json.loads(source.read_text()))
        text = block.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    current = DOC.read_text()
    wanted = render(current)
    if "--check" in argv:
        if wanted != current:
            print(f"{DOC}: a figures table differs from its results; run {__file__}")
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
