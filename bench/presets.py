"""The detection presets side by side on labelled frames: recall, false boxes, ms per frame.

Each preset runs the job's per-record path (`analyse_jpeg`: check, detect, draw, encode)
on one thread over two labelled sets of 640x480 JPEGs (quality 80): the still
scenes (`camstream.cameras.still_scenes`: 8 clips, 480 frames) and the sample video (80
frames, `sample_labels.json`). Scored as the motion gate's recall is (`gating.py`): a
labelled face counts as found when a box overlaps it with IoU >= 0.5. A box that overlaps
no labelled face so is a false box, unless its centre is on a face only partly in view
(those count neither way). Times: the presets take turns over both sets, in an order that
rotates each round (the machine's drift falls on each alike); per preset the median of
the rounds and their spread.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
from frame_functions import analyse_jpeg, boxes_of
from gating import IOU_MATCH
from registry import say

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.cameras.still_scenes import CLIPS, FRAMES, Clip, labels, render
from camstream.core.boxes import iou
from camstream.core.jpeg import encode_jpeg
from camstream.core.settings import DETECTION_PRESETS

PRESETS = ("faithful", "equalized", "fast")
STILL, SAMPLE = "still scenes", "sample video"


@dataclass(frozen=True)
class LabelledFrame:
    jpeg: bytes
    faces: list[list[int]]  # fully in view: each one is to be found
    partial: list[list[int]]  # partly in view: found or not, a box on one is not false


def still_scene_frames(
    indices: Sequence[int] = range(FRAMES), clips: Sequence[Clip] = CLIPS
) -> list[LabelledFrame]:
    """The frames at `indices` of each clip, as their cameras send them."""
    frames = []
    for clip in clips:
        truth = labels(clip)
        for index in indices:
            jpeg = encode_jpeg(render(clip, index), 80)  # as clip_jpegs, for these frames only
            frames.append(LabelledFrame(jpeg, truth[index]["faces"], truth[index]["partial"]))
    return frames


def sample_frames(step: int = 1) -> list[LabelledFrame]:
    """Every `step`-th frame of the sample video, as JPEG, with its faces."""
    images = load_sample_frames()
    return [
        LabelledFrame(encode_jpeg(images[label["index"]], 80), label["faces"], [])
        for label in sample_labels()["frames"][::step]
    ]


def score(boxes: list[list[int]], frame: LabelledFrame) -> tuple[int, int]:
    """(labelled faces found, false boxes) of one frame's boxes."""
    found = sum(any(iou(face, box) >= IOU_MATCH for box in boxes) for face in frame.faces)
    false = 0
    for x1, y1, x2, y2 in boxes:
        if any(iou(face, (x1, y1, x2, y2)) >= IOU_MATCH for face in frame.faces):
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        false += not any(
            px1 <= cx <= px2 and py1 <= cy <= py2 for px1, py1, px2, py2 in frame.partial
        )
    return found, false


def _summary(runs_ms: list[float]) -> dict[str, Any]:
    return {
        "ms_per_frame_median": round(statistics.median(runs_ms), 2),
        "ms_per_frame_min": round(min(runs_ms), 2),
        "ms_per_frame_max": round(max(runs_ms), 2),
        "ms_per_frame_runs": [round(ms, 2) for ms in runs_ms],
    }


TIMED_STEP = 4  # every 4th frame of each set is timed in each round


def evaluate(
    sets: dict[str, list[LabelledFrame]], repeats: int, presets: Sequence[str] = PRESETS
) -> dict[str, Any]:
    """Per preset: its settings, and per set recall, false boxes and ms per frame."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core's cost, as a Spark task's thread pays it
    try:
        first = next(frame.jpeg for frames in sets.values() for frame in frames)
        for preset in presets:
            analyse_jpeg(first, DETECTION_PRESETS[preset])  # warm-up: the classifier's load
        # Scored once on every frame (the boxes are the same every time); timed in rounds
        # on every TIMED_STEP-th frame, the presets taking turns.
        boxes = {
            (preset, name): [
                boxes_of(analyse_jpeg(frame.jpeg, DETECTION_PRESETS[preset])) for frame in frames
            ]
            for preset in presets
            for name, frames in sets.items()
        }
        timed = {name: frames[::TIMED_STEP] for name, frames in sets.items()}
        seconds: dict[tuple[str, str], list[float]] = {(p, s): [] for p in presets for s in sets}
        for round_ in range(repeats):
            shift = round_ % len(presets)
            for preset in [*presets[shift:], *presets[:shift]]:
                settings = DETECTION_PRESETS[preset]
                for name, frames in timed.items():
                    started = time.perf_counter()
                    for frame in frames:
                        analyse_jpeg(frame.jpeg, settings)
                    seconds[preset, name].append(time.perf_counter() - started)
                    ms = 1000 * seconds[preset, name][-1] / len(frames)
                    say(f"presets: round {round_ + 1}/{repeats} {preset} {name}: {ms:.0f} ms/frame")
    finally:
        cv2.setNumThreads(threads)
    result: dict[str, Any] = {}
    for preset in presets:
        row: dict[str, Any] = {"settings": dataclasses.asdict(DETECTION_PRESETS[preset])}
        for name, frames in sets.items():
            scores = [score(b, f) for b, f in zip(boxes[preset, name], frames, strict=True)]
            faces = sum(len(frame.faces) for frame in frames)
            false = sum(s[1] for s in scores)
            row[name] = {
                "frames": len(frames),
                "faces": faces,
                "found": sum(s[0] for s in scores),
                "recall": round(sum(s[0] for s in scores) / max(1, faces), 4),
                "false_boxes": false,
                "false_boxes_per_100_frames": round(100 * false / max(1, len(frames)), 2),
                **_summary([1000 * s / len(timed[name]) for s in seconds[preset, name]]),
            }
        count = sum(len(frames) for frames in timed.values())
        totals = [sum(seconds[preset, name][r] for name in sets) for r in range(repeats)]
        row["all"] = {"frames": count, **_summary([1000 * s / count for s in totals])}
        result[preset] = row
    return result


def labelled_sets(quick: bool) -> dict[str, list[LabelledFrame]]:
    """Both sets whole; a quick run (the tests' smoke run) takes the middle frame of four
    still clips (three faces) and the sample's first: whether it runs, not its figures."""
    if quick:
        return {STILL: still_scene_frames([FRAMES // 2], CLIPS[:4]), SAMPLE: sample_frames(80)}
    return {STILL: still_scene_frames(), SAMPLE: sample_frames()}
