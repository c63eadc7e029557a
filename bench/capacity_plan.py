"""Capacity plan from the benchmark's measured per-frame costs: cores, partitions, brokers.

    .venv/bin/python bench/capacity_plan.py                       # the README's table
    .venv/bin/python bench/capacity_plan.py --cameras 250 --fps 8 --resolution 1280x720

Inputs come from bench/results/results.json (`make bench`): one core's milliseconds per
frame of the per-frame function per preset and resolution, the JPEG size, the Spark job's
efficiency against its own per-record path outside Spark, and the cameras one producer
process sustains. The formulas are in `plan()` and in the README, so a user can redo them
for their cameras.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "results.json"

# Planning assumptions (not measured here: our brokers share one 2-core box over loopback).
UTILISATION = 0.7  # keep 30% of every core free for bursts and catching up after a stall
BROKER_WRITE_MB_S = 100.0  # replicated writes one broker sustains (disk + network), conservative
REPLICATION = 3
MIN_BROKERS = 3  # replication factor 3 needs three brokers


def plan(
    cameras: int,
    fps: float,
    ms_per_frame: float,
    jpeg_bytes: float,
    efficiency: float,
    producer_fps: float,
    encode_ms: float,
) -> dict[str, Any]:
    """Resources for `cameras` cameras at `fps` each; see the README for each formula."""
    frames_s = cameras * fps
    # Analytics: core-seconds per second of video, divided by what Spark keeps of a core.
    cores = math.ceil(frames_s * ms_per_frame / 1000 / (efficiency * UTILISATION))
    # At most one core's worth per partition (UTILISATION * 1000 / ms_per_frame frames/s):
    # frame threads let a micro-batch task use more, but Real-time Mode runs a task per
    # partition, a frame at a time, and small partitions spread cameras over executors.
    per_partition_fps = UTILISATION * 1000 / ms_per_frame
    partitions = max(cores, math.ceil(frames_s / per_partition_fps))
    partitions = math.ceil(partitions / cores) * cores  # an even share per executor core
    cameras_per_partition = max(1, math.floor(per_partition_fps / fps))
    # Kafka: input frames plus annotated frames (about the same size) are written, RF times.
    mb_in = frames_s * jpeg_bytes / 1e6
    replicated_writes = 2 * mb_in * REPLICATION
    brokers = max(MIN_BROKERS, math.ceil(replicated_writes / BROKER_WRITE_MB_S))
    producers = math.ceil(frames_s / producer_fps)
    producer_cores = frames_s * encode_ms / 1000 / UTILISATION  # cameras that need encoding
    return {
        "frames_s": frames_s,
        "analytics_cores": cores,
        "partitions": partitions,
        "cameras_per_partition": cameras_per_partition,
        "mb_s_in": mb_in,
        "replicated_writes_mb_s": replicated_writes,
        "network_gbit_s": (2 * mb_in * REPLICATION + 2 * mb_in) * 8 / 1000,
        "brokers": brokers,
        "producer_processes": producers,
        "producer_encode_cores": producer_cores,
    }


def inputs(results: dict[str, Any]) -> dict[str, Any]:
    costs = results["frame_costs"]
    # What the job keeps of its own per-record path's rate outside Spark, on even cameras
    # (the lower preset's median): the cost per frame below is that path's on one core.
    efficiency = min(
        row["ratio"]["median"] for row in results["same_work"] if row["shape"] == "uniform"
    )
    producer = results.get("producer_capacity", {})
    steps = [s for s in producer.get("steps", []) if s["sustained"]]
    producer_fps = max((s["cameras"] for s in steps), default=200)
    return {"costs": costs, "efficiency": efficiency, "producer_fps": producer_fps}


def table(
    results: dict[str, Any],
    camera_counts: list[int],
    rates: list[float],
    resolutions: list[str] | None = None,
) -> str:
    given = inputs(results)
    rows = [
        "| cameras x frames/s | resolution | frames/s | analytics cores fast / faithful"
        " | partitions (fast) | Kafka in MB/s | brokers (RF 3) | network Gbit/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for resolution in resolutions or list(given["costs"]):
        cost = given["costs"][resolution]
        for cameras in camera_counts:
            for fps in rates:
                common = {
                    "cameras": cameras,
                    "fps": fps,
                    "jpeg_bytes": cost["jpeg_bytes_median"],
                    "efficiency": given["efficiency"],
                    "producer_fps": given["producer_fps"],
                    "encode_ms": cost.get("encode_ms", 0.0),
                }
                fast = plan(ms_per_frame=cost["fast_ms_per_frame"], **common)
                faithful = plan(ms_per_frame=cost["faithful_ms_per_frame"], **common)
                rows.append(
                    f"| {cameras} x {fps:g} | {resolution} | {fast['frames_s']:,.0f}"
                    f" | {fast['analytics_cores']} / {faithful['analytics_cores']}"
                    f" | {fast['partitions']} ({fast['cameras_per_partition']} cameras each)"
                    f" | {fast['mb_s_in']:.0f} | {fast['brokers']}"
                    f" | {fast['network_gbit_s']:.1f} |"
                )
    return "\n".join(rows)


def gated_cost_ms(activity: float, fps: float, keyframe_s: float, gating: dict[str, Any]) -> float:
    """One core's ms per frame with the motion gate, everything in (Spark, Kafka, Python).

    A share `activity` of frames moved and is analysed on its moving regions; a camera's
    keyframe every `keyframe_s` is analysed whole; the rest is gated. Costs come from the
    bench's gating scenario: the whole-frame cost all-in from the ungated load, the gated
    frame's all-in cost from the gated load, the regions' saving from the labelled scenes.
    """
    costs = gating_costs(gating)
    keyframes = min(1.0, 1.0 / (keyframe_s * fps))
    gated = max(0.0, 1.0 - activity - keyframes)
    return (
        activity * costs["motion_frame_ms"]
        + keyframes * costs["analysed_frame_ms"]
        + gated * costs["gated_frame_ms"]
    )


def gating_costs(gating: dict[str, Any]) -> dict[str, float]:
    """All-in ms per frame on one core: analysed whole, analysed on regions, gated.

    All in means the job's processes (the broker, Spark's JVM, its Python workers) while
    the job drains a minute of the still-scene cameras alone on the cores, gated and not
    (the cameras and the station run elsewhere, as deployed). Runs without those drains
    fall back to the live loads, whose cores also ran the cameras and a station.
    """
    loads = gating["loads"]
    drains = {row["label"]: row for row in gating.get("drains", [])}
    gated_loads = [r for r in loads if r["label"] == "gated, regions"] or [
        r for r in loads if r["label"].startswith("gated")
    ]
    # The share analysed comes from a live load of the same cameras (the job counts it).
    row = max(gated_loads, key=lambda r: (r["keeps_up"], r["cameras"]))
    if "ungated" in drains and "gated, regions" in drains:
        # Start to end of each drain, nothing trimmed (its last round).
        analysed_ms = _ms_per_frame(drains["ungated"], "wall_fps")
        total_ms = _ms_per_frame(drains["gated, regions"], "wall_fps")
    else:
        ungated = max(
            (r for r in loads if r["label"] == "ungated"), key=lambda r: r["delivered_fps"]
        )
        analysed_ms = _ms_per_frame(ungated, "delivered_fps")
        total_ms = _ms_per_frame(row, "delivered_fps")
    frames = row["frames_analysed"] + row["frames_gated"]
    regions = gating["regions"]["fast"]
    region_ratio = regions["cascade_ms_total_regions"] / regions["cascade_ms_total_whole_frame"]
    motion_ms = analysed_ms * region_ratio
    share_analysed = row["frames_analysed"] / max(1, frames)
    # Of the analysed frames, those that moved (the labels say how many) were analysed on
    # their regions, the rest (keyframes, cameras new to the gate) whole; what the load
    # spent beyond them went on the gated frames.
    moved = min(share_analysed, gating["recall"]["fast, regions"]["share_moved"])
    analysed_cost = moved * motion_ms + (share_analysed - moved) * analysed_ms
    gated_ms = max(0.05, (total_ms - analysed_cost) / max(1e-9, 1 - share_analysed))
    return {
        "analysed_frame_ms": analysed_ms,
        "motion_frame_ms": motion_ms,
        "gated_frame_ms": gated_ms,
    }


def _ms_per_frame(row: dict[str, Any], rate: str) -> float:
    return sum(row["cores_busy_by_role"].values()) * 1000 / row[rate]


def gated_table(results: dict[str, Any], fps: float = 1.0, keyframe_s: float = 60.0) -> str:
    """Cameras per core at `fps` as a function of the share of frames with movement."""
    gating = results["gating"]
    rows = [
        f"| frames with movement | ms per frame (one core, all in) | cameras per core at {fps:g}"
        " frame/s (70% busy) | cores for 1,000 cameras |",
        "| --- | --- | --- | --- |",
    ]
    for activity in (0.0, 0.05, 0.10, 0.25, 0.50, 1.0):
        cost = gated_cost_ms(activity, fps, keyframe_s, gating)
        per_core = UTILISATION * 1000 / (fps * cost)
        rows.append(
            f"| {activity:.0%} | {cost:.2f} | {per_core:,.0f} | {math.ceil(1000 / per_core)} |"
        )
    ungated = gating_costs(gating)["analysed_frame_ms"]
    per_core = UTILISATION * 1000 / (fps * ungated)
    rows.append(f"| no gate | {ungated:.2f} | {per_core:,.0f} | {math.ceil(1000 / per_core)} |")
    return "\n".join(rows)


def report(
    results: dict[str, Any],
    camera_counts: list[int],
    rates: list[float],
    resolutions: list[str] | None = None,
) -> str:
    """The plan with its measured inputs: what `make capacity` prints and the docs show."""
    given = inputs(results)
    lines = [
        f"Inputs: the job keeps {given['efficiency']:.2f} of its per-record path's rate outside"
        f" Spark; one producer process sustains {given['producer_fps']:,.0f} frames/s;"
        f" utilisation target {UTILISATION:.0%}; {BROKER_WRITE_MB_S:.0f} MB/s replicated"
        " writes per broker (assumed).",
        "",
    ]
    for resolution, cost in given["costs"].items():
        lines.append(
            f"- {resolution}: fast {cost['fast_ms_per_frame']:.1f} ms, faithful"
            f" {cost['faithful_ms_per_frame']:.1f} ms per frame on one core;"
            f" JPEG {cost['jpeg_bytes_median'] / 1000:.0f} KB"
        )
    lines += ["", table(results, camera_counts, rates, resolutions)]
    if "gating" in results:
        lines += [
            "",
            "With the motion gate (preset fast; the still scenes, 640x480, keyframes every 60 s;"
            " all in: the broker, Spark and its Python workers, from the job draining the"
            " cameras alone on the cores):",
            "",
            gated_table(results),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--cameras", type=int, nargs="*", default=[100, 500, 1000])
    parser.add_argument("--fps", type=float, nargs="*", default=[1, 5, 15])
    parser.add_argument("--resolution", nargs="*", help="640x480 and/or 1280x720 (default both)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text())
        inputs(results)
    except (OSError, KeyError, ValueError) as exc:
        print(
            f"capacity_plan: {args.results} lacks the measured inputs ({exc}):"
            " run `make bench` (or bench/run.py --scenarios costs,producer,same-work) first",
            file=sys.stderr,
        )
        return 1
    print(report(results, args.cameras, args.fps, args.resolution))
    return 0


if __name__ == "__main__":
    sys.exit(main())
