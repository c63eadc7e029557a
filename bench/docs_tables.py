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
    """The wall past capacity: both policies side by side, over interleaved rounds."""
    wall = results["wall"]

    def seconds(figure: dict[str, Any]) -> str:
        return _spread({**figure, **{k: figure[k] / 1000 for k in ("median", "min", "max")}}, 2)

    lines = [
        _header(
            results,
            f"`camstream demo --cameras {wall['cameras']}`, `faithful`, a browser on the wall;"
            f" after {wall['warmup_s']} s, the station every 5 s for {wall['sample_s']} s",
        ),
        "",
        "| policy | delay p50 (s) | delay p95 (s) | analysed frames/s a camera: least, median"
        " | longest gap | stale tiles | shed |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for policy, w in wall["policies"].items():
        gap = w["analysed_gap_max_s"]
        lines.append(
            f"| `{policy}` | {seconds(w['delay_ms_p50'])} | {seconds(w['delay_ms_p95'])}"
            f" | {w['analysed_fps_min']:.2f}, {_spread(w['analysed_fps_median'], 2)}"
            f" | {'-' if gap is None else f'{gap:.2f} s'} | {w['stale_tiles']}"
            f" | {_spread(_percent(w['shed_share']))}% |"
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
        " ms per frame: camstream's per-frame function on one thread"
        + (f" (every {step}th frame of each set)" if (step := section.get("timed_step")) else "")
        + f", median (min-max) of {rounds} interleaved round{'s' if rounds != 1 else ''}.",
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
        " median (min-max)."
        + (" **A quick run: not figures to go by.**" if results.get("quick") else ""),
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


def _spread(figure: dict[str, Any] | None, digits: int = 0) -> str:
    """A figure of interleaved rounds: median (min-max)."""
    if not figure:
        return "-"
    median, low, high = (f"{figure[k]:,.{digits}f}" for k in ("median", "min", "max"))
    return median if figure["n"] == 1 else f"{median} ({low}-{high})"


def _header(results: dict[str, Any], what: str) -> str:
    machine = results["machine"]
    quick = " **A quick run: a few frames, not figures to go by.**" if results["quick"] else ""
    return (
        f"Results of commit {results['commit']}, {results['date']}, {machine['cpus']} cores,"
        f" OpenCV {machine['opencv']}; {what}; median (min-max) of {results['repeats']}"
        f" interleaved rounds.{quick}"
    )


def same_work_table(results: dict[str, Any]) -> str:
    """The job against its own per-record path outside Spark, per preset and load shape;
    the plain OpenCV loop as a second, labelled table."""
    rows = results["same_work"]
    lines = [
        _header(results, "a burst of each shape's frames, wall clock from the first in to the"
                " last out"),
        "",
        "| preset | cameras | frames a burst | the job (frames/s) | the same path outside"
        " Spark, a process per core (frames/s) | job / outside | each camera in order |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for row in rows:
        lines.append(
            f"| `{row['preset']}` | {row['shape']} | {row['frames']:,}"
            f" | {_spread(row['job_fps'], 1)}"
            f" | {_spread(row['baseline_fps'], 1)} | {_spread(row['ratio'], 2)}"
            f" | {'yes' if row['in_order'] else '**no**'} |"
        )
    naive = [row for row in rows if "naive_loop_fps" in row]
    if naive:
        lines += [
            "",
            "Not the same work: the plain OpenCV loop (decodes in colour, draws and re-encodes"
            " every frame) on the uniform frames, beside the job:",
            "",
            "| preset | plain loop (frames/s) | job / plain loop |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| `{row['preset']}` | {_spread(row['naive_loop_fps'], 1)}"
            f" | {_spread(row['ratio_to_naive_loop'], 2)} |"
            for row in naive
        ]
    return "\n".join(lines)


def _percent(share: dict[str, Any]) -> dict[str, Any]:
    return {**share, **{k: 100 * share[k] for k in ("median", "min", "max")}}


def pipelines_table(results: dict[str, Any]) -> str:
    """The three pipelines side by side: capacity, delay at half of it, a worker killed."""
    section = results["pipelines"]
    capacity, delay, killed = section["capacity"], section["delay"], section["killed"]
    presets = list(capacity)
    lines = [
        _header(
            results,
            f"{section['cameras']} cameras; capacity: a burst drained by the running pipeline"
            " after the same warm-up; delay: capture (as scheduled) to a consumer of the"
            " output, at half the mode's own capacity",
        ),
        "",
        "| pipeline | capacity (frames/s) "
        + " / ".join(f"`{p}`" for p in presets)
        + " | "
        + " | ".join(f"delay p50 / p99, `{p}`" for p in presets)
        + " | twice its capacity (`fast`, `live`): delay p50 / p99, shed"
        + " | a worker killed (`fast`): lost, longest pause |",
        "| --- | --- | " + " | ".join("---" for _ in presets) + " | --- | --- |",
    ]
    overload = section["overload"]
    for mode in capacity[presets[0]]:
        caps = " / ".join(_spread(capacity[p][mode]["fps"], 1) for p in presets)
        delays = " | ".join(
            f"{_spread(delay[p][mode]['p50_ms'])} / {_spread(delay[p][mode]['p99_ms'])} ms"
            for p in presets
        )
        kill = killed.get(mode)
        rounds = kill["longest_pause_s"]["n"] if kill and kill["longest_pause_s"] else 0
        stopped = kill and kill.get("rounds_every_camera_resumed", rounds) < rounds
        kill_text = (
            f"{kill['lost']} lost, {_spread(kill['longest_pause_s'], 1)} s"
            + (" (**cameras never resumed in some rounds**)" if stopped else "")
            if kill and kill["longest_pause_s"]
            else "- (its tasks run in Spark's JVM)"
            if "Real-time" in mode
            else "-"
        )
        over = overload.get(mode)
        over_text = (
            f"{_spread(over['p50_ms'])} / {_spread(over['p99_ms'])} ms,"
            f" {_spread(_percent(over['skipped_share']))}%"
            if over
            else "-"
        )
        lines.append(f"| {mode} | {caps} | {delays} | {over_text} | {kill_text} |")
    return "\n".join([*lines, "", *pipelines_verdict(section)])


def pipelines_verdict(section: dict[str, Any]) -> list[str]:
    """Where each pipeline wins, in words, from the medians (the table has the ranges)."""
    capacity, delay = section["capacity"], section["delay"]

    def best(figures: dict[str, Any], key: str, lowest: bool) -> tuple[str, float]:
        medians = {mode: f[key]["median"] for mode, f in figures.items()}
        mode = (min if lowest else max)(medians, key=lambda m: medians[m])
        return mode, medians[mode]

    lines = []
    for preset in capacity:
        mode, fps = best(capacity[preset], "fps", lowest=False)
        others = ", ".join(
            f"{m} {f['fps']['median']:,.1f}"
            for m, f in sorted(capacity[preset].items(), key=lambda i: -i[1]["fps"]["median"])
            if m != mode
        )
        lines.append(f"- Most frames/s with `{preset}`: **{mode}**, {fps:,.1f} (then {others}).")
    for preset in delay:
        mode, p50 = best(delay[preset], "p50_ms", lowest=True)
        others = ", ".join(
            f"{m} {f['p50_ms']['median']:,.0f} ms"
            for m, f in sorted(delay[preset].items(), key=lambda i: i[1]["p50_ms"]["median"])
            if m != mode
        )
        lines.append(
            f"- Least delay at half capacity with `{preset}`: **{mode}**, p50 {p50:,.0f} ms"
            f" (then {others})."
        )
    if section.get("overload"):
        kept = [m for m, f in section["overload"].items() if f["p99_ms"]["median"] < 5000]
        lines.append(
            "- Twice its capacity, under `live`, p99 stays under 5 s for: "
            + (", ".join(kept) if kept else "none")
            + "."
        )
    for mode, kill in section.get("killed", {}).items():
        if kill["longest_pause_s"]:
            rounds = kill["longest_pause_s"]["n"]
            resumed = kill.get("rounds_every_camera_resumed", rounds)
            lines.append(
                f"- One worker killed, {mode}: {kill['lost']} frames lost over {rounds} rounds;"
                + (
                    f" a camera's outputs paused at most {kill['longest_pause_s']['max']:.1f} s."
                    if resumed == rounds
                    else f" in {rounds - resumed} of them some cameras never resumed."
                )
            )
    return lines


def reference_table(results: dict[str, Any]) -> str:
    """The reference design against the job on the same frames."""
    ref = results["reference"]
    return "\n".join(
        [
            _header(results, f"{ref['frames']} frames, `faithful`, each drained by its running"
                    " query"),
            "",
            "| | the job | the reference design | ratio |",
            "| --- | --- | --- | --- |",
            f"| drains (frames/s) | {_spread(ref['job_fps'], 1)}"
            f" | {_spread(ref['reference_fps'], 1)} | {_spread(ref['ratio'], 1)} |",
            f"| producer (frames/s) | {ref['our_producer_fps']:,.0f}"
            f" | {_spread(ref['reference_producer_fps'])} | - |",
        ]
    )  # fmt: skip


def demo_table(results: dict[str, Any]) -> str:
    """`make demo` as a user sees it: the delay of the frames the page shows."""
    demo = results["demo"]

    def seconds(figure: dict[str, Any] | None) -> str:
        if not figure:
            return "-"
        return _spread({**figure, **{k: figure[k] / 1000 for k in ("median", "min", "max")}}, 2)

    return "\n".join(
        [
            _header(results, f"`camstream demo` with its defaults, a headless browser on the"
                    f" wall, after {demo['warmup_s']} s"),
            "",
            "| shown delay p50 (s) | p95 (s) | the tiles' frames/s |",
            "| --- | --- | --- |",
            f"| {seconds(demo['shown_delay_ms_p50'])} | {seconds(demo['shown_delay_ms_p95'])}"
            f" | {demo['tile_fps_min']}-{demo['tile_fps_max']} |",
        ]
    )  # fmt: skip


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def gating_table(results: dict[str, Any]) -> str:
    """The motion gate's figures (`bench/gating.py: gate_tables`)."""
    import gating

    return gating.gate_tables(
        results["gating"], results["machine"], results["commit"], results["date"]
    )


def capacity_table(results: dict[str, Any]) -> str:
    """The capacity plan from the run's measured costs (`bench/capacity_plan.py`)."""
    import capacity_plan

    plan = capacity_plan.report(results, [100, 500, 1000], [1, 5, 15])
    return _header(results, "the plan's inputs as measured") + "\n\n" + plan


# Every section's table, by the results section it draws (the bench's report prints them).
RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "presets": presets_table,
    "same_work": same_work_table,
    "pipelines": pipelines_table,
    "reference": reference_table,
    "demo": demo_table,
    "gating": gating_table,
    "wall": wall_table,
    "replay": replay_table,
}

RESULTS = BENCH / "results" / "results.json"
# The blocks of the documents: (document, block name, results file, the sections it draws,
# how it is drawn). A block whose sections the results lack says so: no figure is shown
# that was not measured.
Renderer = Callable[[dict[str, Any]], str]
TABLES: list[tuple[Path, str, Path, tuple[str, ...], Renderer]] = [
    (README, "presets", RESULTS, ("presets",), presets_table),
    (README, "pipelines", RESULTS, ("pipelines",), pipelines_table),
    (PERFORMANCE, "pipelines", RESULTS, ("pipelines",), pipelines_table),
    (PERFORMANCE, "same_work", RESULTS, ("same_work",), same_work_table),
    (PERFORMANCE, "reference", RESULTS, ("reference",), reference_table),
    (PERFORMANCE, "demo", RESULTS, ("demo",), demo_table),
    (PERFORMANCE, "wall", RESULTS, ("wall",), wall_table),
    (PERFORMANCE, "gating", RESULTS, ("gating",), gating_table),
    (PERFORMANCE, "capacity", RESULTS, ("frame_costs", "same_work", "producer_capacity"),
     capacity_table),
    (RECORDING, "replay", RESULTS, ("replay",), replay_table),
]  # fmt: skip


# The results' layout these tables read (bench/run.py writes it); older runs measured
# differently (issue 26) and their sections are not shown, but the presets', measured
# then as now.
BENCH_VERSION = 2
SAME_SINCE_VERSION_1 = ("presets",)


def body(source: Path, sections: tuple[str, ...], table: Renderer) -> str:
    results = json.loads(source.read_text())
    current = results.get("bench_version") == BENCH_VERSION
    missing = [
        name
        for name in sections
        if name not in results or not (current or name in SAME_SINCE_VERSION_1)
    ]
    if missing:
        where = f"`{source.relative_to(BENCH.parent)}`"
        if not current:
            return (
                f"Not measured by this bench yet: {where} comes from an earlier one (commit"
                f" {results.get('commit', 'unknown')}, {results.get('date', 'undated')}),"
                " which measured it differently. `make bench` measures it."
            )
        return f"Not measured: {where} has no {', '.join(missing)}. `make bench` measures it."
    return table(results)


def render(doc: Path, text: str) -> str:
    for in_doc, name, source, sections, table in TABLES:
        if in_doc != doc:
            continue
        block = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.DOTALL)
        if not block.search(text):
            raise SystemExit(f"{doc} has no <!-- {name}:begin/end --> block")
        drawn = body(source, sections, table)
        text = block.sub(lambda m, drawn=drawn: m.group(1) + drawn + "\n" + m.group(2), text)
    return text


# A measured figure: a number with a unit of rate, time, size or share, a ratio ("1.2x"), or
# a percentile's value. In these documents' prose, outside the generated blocks, there is
# none: every figure they show is drawn from the results (`stray_figures`).
FIGURE = re.compile(
    r"\bp(?:50|95|99)\s+\d[\d,.]*"
    r"|\b\d[\d,]*(?:\.\d+)?\s?(?:frames/s|fps|ms|s|MB|GB|KB|%)(?![\w/])|\b\d+(?:\.\d+)?x\b"
)
CHECKED_PROSE: dict[Path, tuple[str, ...]] = {
    PERFORMANCE: ("",),  # the whole document
    README: ("## Watching what moves", "## Performance"),  # these sections
}


def stray_figures(doc: Path, text: str) -> list[str]:
    """Figures in the checked prose of `doc` outside its generated blocks."""
    blocks = re.compile(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", re.DOTALL)
    found = []
    for heading in CHECKED_PROSE.get(doc, ()):
        start = text.find(heading) if heading else 0
        if start < 0:
            found.append(f"no section {heading!r}")
            continue
        end = text.find("\n## ", start + len(heading)) if heading else len(text)
        prose = blocks.sub("", text[start : end if end > 0 else len(text)])
        prose = re.sub(r"`[^`]*`", "", prose)  # code: settings, commands, names
        found += [m.group(0) for m in FIGURE.finditer(prose)]
    return found


def main(argv: list[str]) -> int:
    stale, strays = [], []
    for doc in dict.fromkeys(doc for doc, *_ in TABLES):
        current = doc.read_text()
        wanted = render(doc, current)
        if "--check" not in argv:
            doc.write_text(wanted)
        elif wanted != current:
            stale.append(doc)
        strays += [f"{doc}: {figure!r}" for figure in stray_figures(doc, wanted)]
    for doc in stale:
        print(f"{doc}: a figures table differs from its results; run {__file__}")
    for stray in strays:
        print(f"{stray}: a figure outside the generated tables (not from the results)")
    return 1 if stale or strays else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
