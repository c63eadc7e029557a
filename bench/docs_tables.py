"""The figures tables of README.md and docs/performance.md, generated from their results.

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
README = BENCH.parent / "README.md"
PERFORMANCE = BENCH.parent / "docs" / "performance.md"
RECORDING = BENCH.parent / "docs" / "recording.md"


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


_COLOURS = {(0, 255, 0): "green", (0, 0, 255): "red"}


def describe(settings: dict[str, Any]) -> str:
    """A preset's detection settings in a few words."""
    cascade = settings["cascade"].removeprefix("haarcascade_").removesuffix(".xml")
    parts = [f"`{cascade}`", f"{settings['scale_factor']}", f"{settings['min_neighbors']}"]
    size = settings["min_size"]
    parts.append(f"{size}-px minimum" if size else "no minimum size")
    width = settings["detect_width"]
    parts.append(f"on a {width}-px-wide copy" if width else "full frame")
    if settings["equalize_histogram"]:
        parts.append("`equalizeHist`")
    colour = tuple(settings["box_colour_bgr"])
    thickness = settings["box_thickness"]
    lines = f"{thickness}-px" if thickness else "scaled"
    parts.append(f"{_COLOURS.get(colour, f'BGR {colour}')} {lines} boxes")
    return ", ".join(parts)


def presets_table(results: dict[str, Any]) -> str:
    """The presets side by side: recall and false boxes per labelled set, ms per frame."""
    import dataclasses

    from camstream.config import DETECTION_PRESETS, Config

    section = results["presets"]
    default = {f.name: f.default for f in dataclasses.fields(Config)}["detection_preset"]
    rows = section["presets"]
    sets = [name for name in next(iter(rows.values())) if name not in ("settings", "all")]
    first = next(iter(rows.values()))
    sizes = ", ".join(
        f"{first[n]['frames']} frames of the {n} ({first[n]['faces']} faces)" for n in sets
    )
    rounds = section["repeats"]
    how = "a quick run (a few frames: not figures to go by)" if section["quick"] else sizes
    lines = [
        f"Results of commit {section['commit']}, {section['date']},"
        f" {section['machine']['cpus']} cores, OpenCV {section['machine']['opencv']}; {how};"
        " ms per frame: camstream's per-frame function on one thread, median (min-max) of"
        f" {rounds} interleaved round{'s' if rounds != 1 else ''}.",
        "",
        "| preset | detector | "
        + " | ".join(f"{n}: recall, false boxes (/100 frames)" for n in sets)
        + " | ms/frame |",
        "| --- | --- | " + " | ".join("---" for _ in sets) + " | --- |",
    ]
    for preset, row in rows.items():
        current = DETECTION_PRESETS.get(preset)
        text = describe(row["settings"])
        if (
            current is None
            or json.loads(json.dumps(dataclasses.asdict(current))) != row["settings"]
        ):
            text += " **(the preset has changed since: rerun the bench)**"
        figures = [
            f"{row[n]['recall']:.3f}, {row[n]['false_boxes']}"
            f" ({row[n]['false_boxes_per_100_frames']:.1f})"
            for n in sets
        ]
        ms = row["all"]
        lines.append(
            f"| `{preset}`{' (default)' if preset == default else ''} | {text} | "
            + " | ".join(figures)
            + f" | {ms['ms_per_frame_median']:.1f} ({ms['ms_per_frame_min']:.1f}"
            f"-{ms['ms_per_frame_max']:.1f}) |"
        )
    return "\n".join(lines)


def replay_table(results: dict[str, Any]) -> str:
    """Looking back at the demo's load: seek, clip and the live delay beside a replay."""
    rows = results["replay"]
    first = rows[0]
    recorded = first["recorded"]
    lines = [
        f"Results of commit {results.get('commit', 'unknown')}, {results['date']},"
        f" {results['machine']['cpus']} cores (everything on them), OpenCV"
        f" {results['machine']['opencv']}; {recorded['seconds'] / 60:.0f} min of"
        f" {recorded['cameras']} recorded cameras at {recorded['fps']} frames/s"
        f" ({recorded['frames']:,} frames) in the demo's output topic;"
        f" {first['rounds']} interleaved rounds of {first['live']['window_s']:.0f}-s windows;"
        " median (min-max).",
        "",
        "| live cameras (faithful, 4 frames/s) | seek to a moment: first frame p50 / p95"
        " (target < 500 ms) | a 20-s clip written (target < 2 s) | live delay p50 without /"
        " with a replay at 1x / 4x | with / without, 1x; 4x (target <= 1.10) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        seek, clip = row["seek_ms"], row["clip_s"]
        delays = {
            c: _seconds(_median([w["p50"] for w in windows]))
            for c, windows in row["live_delay_ms"].items()
        }
        ratios = "; ".join(
            f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})"
            for r in row["live_delay_ratio"].values()
        )
        lines.append(
            f"| {row['live']['cameras']} | {seek['median']:.0f} / {seek['p95']:.0f} ms"
            f" (n {seek['n']}) | {clip['median']:.2f} s ({clip['min']:.2f}-{clip['max']:.2f})"
            f" | {' / '.join(delays.values())} s | {ratios} |"
        )
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


# Per table: the document it is in, the results file it comes from, and how it is drawn.
TABLES: dict[str, tuple[Path, Path, Callable[[dict[str, Any]], str]]] = {
    "wall": (PERFORMANCE, BENCH / "results" / "wall" / "results.json", wall_table),
    "presets": (README, BENCH / "results" / "results.json", presets_table),
    "replay": (RECORDING, BENCH / "results" / "replay" / "results.json", replay_table),
}


def render(doc: Path, text: str) -> str:
    for name, (in_doc, source, table) in TABLES.items():
        if in_doc != doc:
            continue
        block = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.DOTALL)
        if not block.search(text):
            raise SystemExit(f"{doc} has no <!-- {name}:begin/end --> block")
        body = table(json.loads(source.read_text()))
        text = block.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    stale = []
    for doc in dict.fromkeys(doc for doc, _, _ in TABLES.values()):
        current = doc.read_text()
        wanted = render(doc, current)
        if "--check" not in argv:
            doc.write_text(wanted)
        elif wanted != current:
            stale.append(doc)
    for doc in stale:
        print(f"{doc}: a figures table differs from its results; run {__file__}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
