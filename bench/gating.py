"""The motion gate on the labelled still scenes, scored: recall, precision, stale boxes.

Each clip plays as its camera would send it (1 frame/s capture times) through the job's own
per-record stages (`camstream.core.batch.process_batch`), in batches as a micro-batch would
hand them over, without the gate and with it (whole frame, or moving regions). The clips
are the still scenes with a person, the scenes without one, and the scenes with a person
plus change that is no person moving (`distractors.py`: auto-exposure steps, a swaying
branch, rain, a headlight sweep, an IR switch).

The scores (`score_frame`), over every frame of every clip of a kind:

- recall: a labelled face (fully in view) is found when an output box, detected or
  carried, overlaps it with IoU >= 0.5 (`IOU_MATCH`);
- precision: an output box (detected or carried) is true when it overlaps a labelled face
  fully in view with IoU >= 0.3 (`IOU_TRUE`), false when it overlaps no labelled face at
  all (in view or partly) that much, and counts neither way when it overlaps only a face
  partly in view; precision = true boxes / (true + false boxes). Two boxes on one face
  are both true (the rule is per box);
- stale-box rate: a carried box (one the gate carried from an earlier frame instead of
  detecting it: all boxes of a gated frame, and on a frame analysed on its moving
  regions, the earlier boxes kept outside them) is stale when no face, fully or partly in
  view, lies under it with IoU >= 0.3; rate = stale / carried boxes.

Faces only partly in view count neither way for recall. A gate that carries boxes forever
cannot lose recall: precision and the stale-box rate are what catch it.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from distractors import EMPTY_CLIPS, KINDS, PERSON_CLIPS, variant_jpegs, variant_labels

from camstream.cameras.still_scenes import CLIPS, FPS, clip_jpegs, labels
from camstream.core.analysis import detect_in_jpeg, detect_in_regions
from camstream.core.batch import process_batch
from camstream.core.boxes import iou
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import check_jpeg
from camstream.core.motion import GateDecision, MotionGate, motion_thumbnail, overlaps
from camstream.core.settings import (
    DETECTION_PRESETS,
    MotionSettings,
    RecordSettings,
)

IOU_MATCH = 0.5


def clip_records(name: str, camera_id: str, start_ns: int = 10**18) -> list[tuple]:
    """The clip's frames as Kafka records of one camera (key, value, headers)."""
    return jpeg_records(clip_jpegs(name), camera_id, start_ns)


def jpeg_records(jpegs: Sequence[bytes], camera_id: str, start_ns: int = 10**18) -> list[tuple]:
    """Frames at 1 frame/s as Kafka records of one camera (key, value, headers)."""
    records = []
    for seq, jpeg in enumerate(jpegs):
        meta = FrameMeta(camera_id, seq, start_ns + int(seq * 1e9 / FPS), 640, 480)
        records.append((camera_id.encode(), jpeg, meta.to_headers()))
    return records


def run_clip(
    name: str, settings: RecordSettings, gate: MotionGate | None, batch: int = 10
) -> list[dict[str, Any]]:
    """Per frame of the clip: its output boxes and whether they were carried."""
    records = clip_records(name, f"cam-{name}")
    out = []
    for first in range(0, len(records), batch):
        for result in process_batch(
            records[first : first + batch], settings, gate, clock=lambda: 10**18
        ):
            assert result.ok, result.error
            values = headers_to_dict(result.headers)
            out.append({"boxes": json.loads(values["boxes_xyxy"]), "carried": result.carried})
    return out


def evaluate(
    preset: str, motion: MotionSettings | None = None, clips: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Recall without and with the gate, the share gated, per clip and in all."""
    settings = RecordSettings(detection=DETECTION_PRESETS[preset])
    motion = motion or MotionSettings(enabled=True)
    totals = {
        "faces": 0,
        "found_ungated": 0,
        "found_gated": 0,
        "frames": 0,
        "gated": 0,
        "moved_frames": 0,
        "ms_ungated": 0.0,
        "ms_gated": 0.0,
    }
    per_clip = {}
    for clip in CLIPS:
        if clips is not None and clip.name not in clips:
            continue
        truth = labels(clip)
        started = time.perf_counter()
        plain = run_clip(clip.name, settings, None)
        middle = time.perf_counter()
        gate = MotionGate(motion)
        gated = run_clip(clip.name, dataclasses.replace(settings, motion=motion), gate)
        ended = time.perf_counter()
        row = {
            "faces": 0,
            "found_ungated": 0,
            "found_gated": 0,
            "frames": len(truth),
            "gated": sum(f["carried"] for f in gated),
            "moved_frames": sum(t["moved"] for t in truth),
            "ms_ungated": (middle - started) * 1000,
            "ms_gated": (ended - middle) * 1000,
        }
        for label, a, b in zip(truth, plain, gated, strict=True):
            for face in label["faces"]:
                row["faces"] += 1
                row["found_ungated"] += any(iou(face, box) >= IOU_MATCH for box in a["boxes"])
                row["found_gated"] += any(iou(face, box) >= IOU_MATCH for box in b["boxes"])
        per_clip[clip.name] = row
        for name in totals:
            totals[name] += row[name]
    faces = max(1, totals["faces"])
    recall_ungated = totals["found_ungated"] / faces
    recall_gated = totals["found_gated"] / faces
    return {
        "preset": preset,
        "recall_ungated": round(recall_ungated, 4),
        "recall_gated": round(recall_gated, 4),
        "recall_ratio": round(recall_gated / recall_ungated, 4) if recall_ungated else None,
        "share_gated": round(totals["gated"] / totals["frames"], 4),
        "share_moved": round(totals["moved_frames"] / totals["frames"], 4),
        "cpu_ratio_gated_to_ungated": round(totals["ms_gated"] / totals["ms_ungated"], 3),
        "totals": totals,
        "clips": per_clip,
    }


def still_mix_frames(
    cameras: int, seconds: int, start_ns: int
) -> list[tuple[str, int, bytes, int]]:
    """`seconds` of `cameras` still-scene cameras at 1 frame/s as the simulator plays them
    (camera i plays clip i mod 10 of the mix, `CAMERA_MIX`: every clip of it shows a
    person, from its own phase), in the order they are captured:
    (camera_id, seq, jpeg, capture_ts_ns)."""
    from camstream.cameras.simulate import camera_ids
    from camstream.cameras.still_scenes import CAMERA_MIX, FRAMES

    clips = [clip_jpegs(name) for name in CAMERA_MIX]
    ids = camera_ids(cameras)
    frames = []
    for seq in range(seconds):
        for i, camera_id in enumerate(ids):
            phase = (i * FRAMES) // cameras
            capture_ts_ns = start_ns + seq * 10**9 + i * 10**9 // cameras
            jpeg = clips[i % len(clips)][(phase + seq) % FRAMES]
            frames.append((camera_id, seq, jpeg, capture_ts_ns))
    return frames


def stage_costs(repeats: int = 3) -> dict[str, float]:
    """One core's milliseconds per frame of the per-record stages, fast preset, 640x480:
    a frame analysed (motion gate off) and a frame gated (a still scene, gate on)."""
    settings = RecordSettings(detection=DETECTION_PRESETS["fast"])
    still = clip_records("empty-corridor", "cam-still") + clip_records("empty-brick", "cam-b")
    gated_settings = dataclasses.replace(settings, motion=MotionSettings(enabled=True))
    analysed_ms, gated_ms = [], []
    for _ in range(repeats):  # interleaved, medians: these machines are shared
        started = time.perf_counter()
        process_batch(still, settings)
        analysed_ms.append((time.perf_counter() - started) * 1000 / len(still))
        gate = MotionGate(MotionSettings(enabled=True, keyframe_s=1e9))
        process_batch(still[:1] + still[60:61], gated_settings, gate)  # the models
        started = time.perf_counter()
        results = process_batch(still, gated_settings, gate)
        gated_ms.append((time.perf_counter() - started) * 1000 / len(still))
        assert sum(r.carried for r in results) >= len(still) - 4
    return {"analysed_ms": statistics.median(analysed_ms), "gated_ms": statistics.median(gated_ms)}


# ---- Frigate's next step, measured: the detector on the moving regions only -------------
def evaluate_regions(preset: str, repeats: int = 3) -> dict[str, Any]:
    """On the frames the gate analyses because something moved: the cascade's time on the
    whole frame against on the moving regions, and the recall of each (boxes of the last
    analysed frame outside the regions carried, as Frigate keeps its tracked objects)."""
    detection = DETECTION_PRESETS[preset]
    motion = MotionSettings(enabled=True, regions=True)
    whole_ms: list[float] = []
    region_ms: list[float] = []
    faces = found_whole = found_regions = frames = 0
    for clip in CLIPS:
        truth = labels(clip)
        gate = MotionGate(motion)  # regions on: a motion decision says where it moved
        last_boxes = np.zeros((0, 4), np.int32)
        for seq, jpeg in enumerate(clip_jpegs(clip.name)):
            info = check_jpeg(jpeg)
            thumb = motion_thumbnail(jpeg, info, motion.thumb_width)
            decision = gate.decide(clip.name, seq, int(seq * 1e9 / FPS), (640, 480), thumb)
            if not decision.analyse:
                continue
            if not decision.regions:
                last_boxes = detect_in_jpeg(jpeg, info, detection)
                decision.reference.boxes_xyxy = last_boxes
                continue
            timings_whole, timings_regions = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                whole = detect_in_jpeg(jpeg, info, detection)
                middle = time.perf_counter()
                in_regions = detect_in_regions(jpeg, info, detection, decision.regions)
                timings_whole.append(middle - started)
                timings_regions.append(time.perf_counter() - middle)
            whole_ms.append(statistics.median(timings_whole) * 1000)
            region_ms.append(statistics.median(timings_regions) * 1000)
            kept = [b for b in last_boxes.tolist() if not overlaps(b, decision.regions)]
            combined = in_regions.tolist() + kept
            frames += 1
            for face in truth[seq]["faces"]:
                faces += 1
                found_whole += any(iou(face, b) >= IOU_MATCH for b in whole.tolist())
                found_regions += any(iou(face, b) >= IOU_MATCH for b in combined)
            last_boxes = whole  # the whole-frame gate's boxes carry on from here
            decision.reference.boxes_xyxy = whole
    return {
        "preset": preset,
        "motion_frames": frames,
        "faces": faces,
        "recall_whole_frame": round(found_whole / max(1, faces), 4),
        "recall_regions": round(found_regions / max(1, faces), 4),
        "cascade_ms_whole_frame": round(statistics.median(whole_ms), 2),
        "cascade_ms_regions": round(statistics.median(region_ms), 2),
        "cascade_ms_total_whole_frame": round(sum(whole_ms), 1),
        "cascade_ms_total_regions": round(sum(region_ms), 1),
    }


# ---- the gate scored: recall, precision, stale boxes, per scene kind ---------------------
IOU_TRUE = 0.3  # an output box on a labelled face (precision), a face under a carried box

# What the scenes are: the still scenes with a person (the cameras' mix), those without,
# and the scenes with a person plus change that is no person moving (`distractors.py`).
SCENE_KINDS = ("still", "empty", *KINDS)
SCENE_KIND_HELP = {
    "still": "the still scenes with a person (every camera of the mix)",
    "empty": "the still scenes without a person (one dims slowly)",
    "exposure": "auto-exposure: a global gain step every 5 s",
    "branch": "a dark leafy branch swaying over the top right (faces it covers: partly in view)",
    "rain": "heavy rain: 800 bright streaks, new each frame",
    "headlights": "a headlight sweep across the frame, 8 of every 20 frames",
    "ir": "an IR switch at frame 30: monochrome, more contrast, brighter, for good",
}
GATE_MODES: dict[str, MotionSettings | None] = {
    "ungated": None,
    "gated, whole frame": MotionSettings(enabled=True, regions=False),
    "gated, regions": MotionSettings(enabled=True, regions=True),
}


@dataclasses.dataclass
class Score:
    """Counts over frames; `figures` turns them into the rates."""

    frames: int = 0
    faces: int = 0  # labelled faces fully in view
    found: int = 0  # of them, found (IoU >= IOU_MATCH)
    boxes: int = 0  # output boxes, detected or carried
    true_boxes: int = 0  # on a face fully in view (IoU >= IOU_TRUE)
    false_boxes: int = 0  # on no face, in view or partly (IoU >= IOU_TRUE)
    carried: int = 0  # boxes the gate carried instead of detecting
    stale: int = 0  # carried boxes with no face (in view or partly) under them
    gated: int = 0  # frames not analysed at all (every box carried)
    analysed: int = 0  # frames analysed (whole or on their moving regions)
    moved: int = 0  # frames where a person moved (the labels)
    analysed_no_person_moved: int = 0  # analysed as "motion" though no person moved
    ms: float = 0.0  # wall clock of the per-record stages

    def __iadd__(self, other: Score) -> Score:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def counts(self) -> dict[str, Any]:
        counts = dataclasses.asdict(self)
        counts["ms"] = round(self.ms, 1)
        return counts

    def figures(self) -> dict[str, Any]:
        """Rates (None where there is nothing to rate) and the counts they come from."""
        scored = self.true_boxes + self.false_boxes
        frames = max(1, self.frames)
        return {
            "recall": _ratio(self.found, self.faces),
            "precision": _ratio(self.true_boxes, scored),
            "stale_rate": _ratio(self.stale, self.carried),
            "share_gated": round(self.gated / frames, 4),
            "share_analysed": round(self.analysed / frames, 4),
            "share_moved": round(self.moved / frames, 4),
            "share_analysed_no_person_moved": round(self.analysed_no_person_moved / frames, 4),
            "ms_per_frame": round(self.ms / frames, 2),
            "counts": self.counts(),
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def score_frame(
    boxes: Sequence[Sequence[float]],
    carried: Sequence[bool],
    faces: Sequence[Sequence[float]],
    partial: Sequence[Sequence[float]] = (),
) -> Score:
    """One frame's output boxes (and which of them were carried) against its labels: the
    faces fully in view and those partly in view (the module's docstring has the rules)."""
    score = Score(frames=1, faces=len(faces))
    score.found = sum(any(iou(face, box) >= IOU_MATCH for box in boxes) for face in faces)
    for box, was_carried in zip(boxes, carried, strict=True):
        on_face = any(iou(face, box) >= IOU_TRUE for face in faces)
        on_partial = any(iou(face, box) >= IOU_TRUE for face in partial)
        score.boxes += 1
        score.true_boxes += on_face
        score.false_boxes += not (on_face or on_partial)
        if was_carried:
            score.carried += 1
            score.stale += not (on_face or on_partial)
    return score


class RecordingGate(MotionGate):
    """The gate, keeping its decision for each frame (by seq: one camera per gate here),
    so that a frame analysed on its moving regions tells its kept boxes from its new ones."""

    def __init__(self, settings: MotionSettings) -> None:
        super().__init__(settings)
        self.decisions: dict[int, GateDecision] = {}

    def decide(
        self,
        camera_id: str,
        seq: int,
        capture_ts_ns: int,
        frame_size: tuple[int, int],
        thumb: np.ndarray,
    ) -> GateDecision:
        decision = super().decide(camera_id, seq, capture_ts_ns, frame_size, thumb)
        self.decisions[seq] = decision
        return decision


def run_frames(
    jpegs: Sequence[bytes],
    settings: RecordSettings,
    gate: RecordingGate | None,
    batch: int = 10,
    camera_id: str = "cam-scored",
) -> list[dict[str, Any]]:
    """Per frame, through the job's per-record stages: its output boxes, which of them the
    gate carried, whether the whole frame was gated, and the gate's reason."""
    records = jpeg_records(jpegs, camera_id)
    out = []
    for first in range(0, len(records), batch):
        results = process_batch(
            records[first : first + batch], settings, gate, clock=lambda: 10**18
        )
        for seq, result in enumerate(results, first):
            assert result.ok, result.error
            boxes = json.loads(headers_to_dict(result.headers)["boxes_xyxy"])
            decision = gate.decisions.get(seq) if gate is not None else None
            if result.carried:
                carried = [True] * len(boxes)
            elif decision is not None and decision.regions:  # the boxes kept outside them
                carried = [not overlaps(box, decision.regions) for box in boxes]
            else:
                carried = [False] * len(boxes)
            out.append(
                {
                    "boxes": boxes,
                    "carried": carried,
                    "gated": result.carried,
                    "reason": decision.reason if decision is not None else "ungated",
                }
            )
    return out


def score_run(frames: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]) -> Score:
    """A clip's frames (`run_frames`) against its labels."""
    total = Score()
    for frame, label in zip(frames, truth, strict=True):
        score = score_frame(frame["boxes"], frame["carried"], label["faces"], label["partial"])
        score.gated = int(frame["gated"])
        score.analysed = int(not frame["gated"])
        score.moved = int(label["moved"])
        score.analysed_no_person_moved = int(frame["reason"] == "motion" and not label["moved"])
        total += score
    return total


def kind_clips(kind: str) -> tuple[str, ...]:
    """The clips a scene kind plays: the empty scenes for "empty", else those with a person."""
    return EMPTY_CLIPS if kind == "empty" else PERSON_CLIPS


def kind_frames(kind: str, clip_name: str) -> tuple[tuple[bytes, ...], list[dict[str, Any]]]:
    """A clip of a scene kind: its JPEGs and its labels."""
    variant = "still" if kind in ("still", "empty") else kind
    return variant_jpegs(clip_name, variant), variant_labels(clip_name, variant)


def evaluate_scenes(
    preset: str,
    kinds: Sequence[str] = SCENE_KINDS,
    modes: Sequence[str] = tuple(GATE_MODES),
    clips: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Per scene kind and gate mode (ungated, gated whole frame, gated regions): recall,
    precision, stale-box rate, share gated and analysed, with their counts and per clip.
    `clips`: only these (of each kind's clips)."""
    settings = RecordSettings(detection=DETECTION_PRESETS[preset])
    result: dict[str, Any] = {}
    for kind in kinds:
        names = [name for name in kind_clips(kind) if clips is None or name in clips]
        totals = {mode: Score() for mode in modes}
        per_clip: dict[str, dict[str, Any]] = {}
        for name in names:
            jpegs, truth = kind_frames(kind, name)
            for mode in modes:
                motion = GATE_MODES[mode]
                gate = RecordingGate(motion) if motion is not None else None
                run_settings = settings if motion is None else dataclasses.replace(
                    settings, motion=motion
                )  # fmt: skip
                started = time.perf_counter()
                frames = run_frames(jpegs, run_settings, gate)
                score = score_run(frames, truth)
                score.ms = (time.perf_counter() - started) * 1000
                totals[mode] += score
                per_clip.setdefault(name, {})[mode] = score.counts()
        result[kind] = {
            "clips": names,
            "modes": {mode: score.figures() for mode, score in totals.items()},
            "per_clip": per_clip,
        }
    return result


def recall_rows(scores: dict[str, Any]) -> dict[str, Any]:
    """The figures the report and the capacity plan read (`recall`, as before), from the
    scores of the still scenes with a person (the cameras' mix): per preset and gate mode."""
    rows = {}
    for preset, kinds in scores.items():
        modes = kinds["still"]["modes"]
        ungated = modes["ungated"]
        for mode in (m for m in modes if m != "ungated"):
            gated = modes[mode]
            name = f"{preset}, {mode.removeprefix('gated, ')}"
            rows[name] = {
                "preset": preset,
                "recall_ungated": ungated["recall"],
                "recall_gated": gated["recall"],
                "recall_ratio": (
                    round(gated["recall"] / ungated["recall"], 4) if ungated["recall"] else None
                ),
                "precision_ungated": ungated["precision"],
                "precision_gated": gated["precision"],
                "stale_rate_gated": gated["stale_rate"],
                "share_gated": gated["share_gated"],
                "share_moved": gated["share_moved"],
            }
    return rows


# ---- the job with and without the gate: drains and live loads ---------------------------
# The job alone draining the same frames gated and ungated, in one Spark session of the
# gate's shape (one task at a time holding every core, as `camstream analyze` runs the
# gate), the two interleaved over the rounds, the order flipped each round.
DRAIN_SHAPE = {"full": (100, 20), "quick": (10, 10)}  # (cameras, seconds of frames)
DRAIN_MODES = {
    "ungated": {"motion_gate": False},
    "gated, regions": {"motion_gate": True, "motion_regions": True},
}
# Still-scene cameras at 1 frame/s through the running job: (gate mode, cameras).
LIVE_LOADS = {
    "full": (),  # from the drains: LIVE_SHARE of what the job drained, gated and not
    "quick": (("gated, regions", 10),),  # runs the path; the other modes run the same code
}
LIVE_SHARE = 0.75
LIVE_MODES = {
    "ungated": {"motion_gate": False},
    "gated, whole frame": {"motion_gate": True, "motion_regions": False},
    "gated, regions": {"motion_gate": True, "motion_regions": True},
}
# (warm-up, measured) seconds of a live load; the same for every load, gated or not.
LIVE_SECONDS = {"full": (20.0, 25.0), "quick": (4.0, 12.0)}
# A live load keeps pace when, from its results: it delivered at least this share of what
# the cameras offered, the delay's median in its last 10 s is at most this much above the
# first 10 s (not growing), and the delay's median is under this.
KEEPS_PACE = {"delivered_share_min": 0.95, "delay_growth_ms_max": 500.0, "delay_ms_p50_max": 2000.0}
# `faithful` detects five times slower: scored on the still scenes and the two kinds of
# change that the gate's regions see most (a sweep of light, a swaying branch).
SLOW_PRESET_KINDS = ("still", "empty", "headlights", "branch")
QUICK_CLIPS = ("lobby", "empty-corridor")  # quick scores: one clip with a person, one without
QUICK_MODES = ("ungated", "gated, regions")


def keeps_pace(row: dict[str, Any]) -> tuple[bool, dict[str, float]]:
    """Whether a live load kept pace (`KEEPS_PACE`), and the figures it was judged on."""
    checks = {
        "delivered_share": round(row["delivered_fps"] / max(1e-9, row["offered_fps"]), 3),
        "delay_growth_ms": round(row["delay_ms_p50_last_10s"] - row["delay_ms_p50_first_10s"], 1),
        "delay_ms_p50": row["delay_ms_p50"],
    }
    kept = (
        checks["delivered_share"] >= KEEPS_PACE["delivered_share_min"]
        and checks["delay_growth_ms"] <= KEEPS_PACE["delay_growth_ms_max"]
        and checks["delay_ms_p50"] <= KEEPS_PACE["delay_ms_p50_max"]
    )  # NaN (no frames came) fails every comparison
    return bool(kept), checks


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median and min-max of a figure over rounds (registry.spread), and the rounds."""
    from registry import spread as median_and_range

    return {**median_and_range(list(values), 2), "runs": [round(v, 2) for v in values]}


def drain_comparison(
    stack: Any, cameras: int, seconds: int, rounds: int, partitions: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job alone draining the same `cameras` x `seconds` still-scene frames without and
    with the gate, interleaved over `rounds`: frames/s from the query's start to the last
    output (`wall_fps`), median and min-max; and the rows of every drain."""
    from registry import say
    from stack import drain_frames

    frames = still_mix_frames(cameras, seconds, time.time_ns())
    # Not counted: the first query of a session pays for Spark's and the Python workers'
    # start (tens of seconds here), which would fall on whichever mode drained first.
    say("gating: a warm-up drain, not counted (the session's first query starts the workers)")
    warmup = drain_frames(stack, "fast", frames[: 2 * cameras], partitions)
    rows: list[dict[str, Any]] = []
    for index in range(rounds):
        order = list(DRAIN_MODES) if index % 2 == 0 else list(reversed(DRAIN_MODES))
        for label in order:
            say(
                f"gating: the job alone draining {seconds} s of {cameras} still-scene cameras,"
                f" {label}, round {index + 1}/{rounds}"
            )
            row = drain_frames(stack, "fast", frames, partitions, **DRAIN_MODES[label])
            row.update({"label": label, "cameras": cameras, "seconds": seconds, "round": index})
            say(
                f"  {row['wall_fps']} frames/s start to end ({row['wall_s']} s),"
                f" {row['received']}/{row['frames']} out, in order: {row['in_order']}"
            )
            rows.append(row)
    by_label = {label: [r for r in rows if r["label"] == label] for label in DRAIN_MODES}
    comparison: dict[str, Any] = {
        "cameras": cameras,
        "seconds": seconds,
        "frames": len(frames),
        "rounds": rounds,
        "preset": "fast",
        "rate": "frames out / seconds from the query's start to the last output record",
        "all_out_in_order": all(r["received"] == r["frames"] and r["in_order"] for r in rows),
        "warmup_drain": {"frames": warmup["frames"], "wall_s": warmup["wall_s"]},
    }
    for label, runs in by_label.items():
        comparison[label] = spread([r["wall_fps"] for r in runs])
        comparison[label]["steady_fps_median"] = statistics.median(r["steady_fps"] for r in runs)
    ungated, gated = by_label["ungated"], by_label["gated, regions"]
    ratios = [g["wall_fps"] / u["wall_fps"] for u, g in zip(ungated, gated, strict=True)]
    comparison["ratio"] = {
        "of_medians": round(
            comparison["gated, regions"]["median"] / comparison["ungated"]["median"], 2
        ),
        "per_round": spread(ratios),
    }
    return comparison, rows


def live_load(
    stack: Any, label: str, cameras: int, warmup_s: float, measured_s: float
) -> dict[str, Any]:
    """Still-scene cameras at 1 frame/s through the job for warm-up + measured seconds."""
    from registry import say
    from stack import run_load

    say(f"gating: {cameras} still-scene cameras at 1 frame/s, {label}")
    shaped = dataclasses.replace(stack, base=stack.base.replace(**LIVE_MODES[label]))
    row = run_load(
        shaped,
        preset="fast",
        total_fps=cameras,
        cameras=cameras,
        seconds=warmup_s + measured_s,
        scene="still",
        warmup_s=warmup_s,
    )
    row["label"] = label
    row["keeps_pace"], row["keeps_pace_checks"] = keeps_pace(row)
    row["keeps_up"] = row["keeps_pace"]  # the name the report and capacity plan read
    say(
        f"  delivered {row['delivered_fps']} of {row['offered_fps']} frames/s, delay p50"
        f" {row['delay_ms_p50']} ms (first 10 s {row['delay_ms_p50_first_10s']}, last"
        f" {row['delay_ms_p50_last_10s']}), analysed {row['frames_analysed']} gated"
        f" {row['frames_gated']}; keeps pace: {row['keeps_pace']}"
    )
    return row


def session_shape(stack: Any, cores: int) -> dict[str, Any]:
    conf = stack.spark.sparkContext.getConf()
    return {
        "master": conf.get("spark.master"),
        "spark.task.cpus": int(conf.get("spark.task.cpus", "1")),
        "partitions": 2 * cores,
        "frame_threads": stack.base.frame_threads,
        "note": "one Spark session of the gate's shape (one task at a time holding every"
        " core) for every drain and live load, gated or not; only the gate differs",
    }


def gating_section(ctx: Any) -> dict[str, Any]:
    """The gating scenario: the gate scored on the labelled scenes (per preset, scene kind
    and gate mode), the job draining the same frames with and without it, and live loads.

    Keys: quick, rounds, rules, scene_kinds, camera_mix, scores[preset][kind] (clips,
    modes[mode] -> figures with counts, per_clip), recall (per "preset, mode", for the
    report and the capacity plan), regions and ms_per_frame (full runs), session, drain
    (the comparison), drains (every drain's row), loads (every live load's row)."""
    from registry import say
    from stack import Stack

    from camstream.cameras.still_scenes import CAMERA_MIX

    size = "quick" if ctx.quick else "full"
    rounds = 3 if ctx.quick else max(5, ctx.repeats)
    live_rounds = 1 if ctx.quick else max(5, ctx.repeats)
    presets = ("fast",) if ctx.quick else ("fast", "faithful")
    section: dict[str, Any] = {
        "quick": ctx.quick,
        "rounds": rounds,
        "rules": {
            "recall_iou": IOU_MATCH,
            "true_box_iou": IOU_TRUE,
            "stale_box_iou": IOU_TRUE,
            "partly_in_view": "counts neither way (recall, precision); a face under a"
            " carried box all the same (stale)",
            "keeps_pace": KEEPS_PACE,
        },
        "scene_kinds": {
            kind: {"help": SCENE_KIND_HELP[kind], "clips": list(kind_clips(kind))}
            for kind in SCENE_KINDS
        },
        "camera_mix": list(CAMERA_MIX),
        "scores": {},
    }
    for preset in presets:
        say(f"gating: scoring the gate on the labelled scenes, {preset}")
        scores = section["scores"][preset] = evaluate_scenes(
            preset,
            kinds=SCENE_KINDS if preset == "fast" else SLOW_PRESET_KINDS,
            modes=QUICK_MODES if ctx.quick else tuple(GATE_MODES),
            clips=QUICK_CLIPS if ctx.quick else None,
        )
        for kind, row in scores.items():
            say(
                f"  {kind}: "
                + "; ".join(
                    f"{mode} recall {f['recall']} precision {f['precision']}"
                    f" stale {f['stale_rate']} gated {f['share_gated']:.0%}"
                    for mode, f in row["modes"].items()
                )
            )
    section["recall"] = recall_rows(section["scores"])
    if not ctx.quick:
        section["regions"] = {preset: evaluate_regions(preset) for preset in presets}
        section["ms_per_frame"] = stage_costs()

    # One Spark session, of the gate's shape, for every run with Spark below.
    ctx.close()
    stack = Stack.start(ctx.cores, motion_gate=True, motion_regions=True)
    try:
        section["session"] = session_shape(stack, ctx.cores)
        cameras, seconds = DRAIN_SHAPE[size]
        section["drain"], section["drains"] = drain_comparison(
            stack, cameras, seconds, rounds, 2 * ctx.cores
        )
        warmup_s, measured_s = LIVE_SECONDS[size]
        section["live_seconds"] = {"warmup": warmup_s, "measured": measured_s}
        # Every live load in every round, the order rotated: its figures are medians.
        # Full runs: cameras at 1 frame/s at LIVE_SHARE of what the job drained alone of
        # this mix, gated and not (the cameras and the station take the rest of the cores).
        loads = list(LIVE_LOADS[size]) or [
            (label, max(1, round(LIVE_SHARE * section["drain"][label]["median"])))
            for label in ("ungated", "gated, regions")
        ]
        section["loads"] = [
            {**live_load(stack, label, count, warmup_s, measured_s), "round": round_}
            for round_ in range(live_rounds)
            for label, count in loads[round_ % len(loads) :] + loads[: round_ % len(loads)]
        ]
    finally:
        stack.close()
    return section


# ---- the docs' tables ---------------------------------------------------------------------
def _spread_of(values: list[float], digits: int) -> str:
    """Median (min-max) of rounds, or the value of one."""
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return (
        f"{statistics.median(values):,.{digits}f}"
        f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    )


def _rate(value: float | None, part: int, whole: int) -> str:
    return "-" if value is None else f"{value:.3f} ({part}/{whole})"


def _gate_name(mode: str) -> str:
    return "off" if mode == "ungated" else f"on, {mode.removeprefix('gated, ')}"


def _spread_text(row: dict[str, Any]) -> str:
    return f"{row['median']:.1f} ({row['min']:.1f}-{row['max']:.1f})"


def gate_tables(section: dict[str, Any], machine: dict[str, Any], commit: str, date: str) -> str:
    """The gate's figures as Markdown for the docs: a line naming where and when they were
    measured, then per preset the scores per scene kind and gate mode, the drains (the
    same frames without and with the gate), and the live loads with "keeps pace" as the
    results judged it (`keeps_pace`)."""
    rules = section["rules"]
    quick = " A quick run: not figures to go by." if section.get("quick") else ""
    lines = [
        f"Measured on commit {commit}, {date}; {machine.get('cpus')} CPUs, "
        f"{machine.get('platform')}, Python {machine.get('python')}, OpenCV"
        f" {machine.get('opencv')}; the drains interleaved over {section['rounds']} rounds.{quick}",
        "",
        f"Recall: labelled faces fully in view found by an output box (detected or carried)"
        f" with IoU >= {rules['recall_iou']}. Precision: output boxes on a face in view (IoU >="
        f" {rules['true_box_iou']}) of all output boxes but those only on a face partly in"
        f" view. Stale: carried boxes with no face under them (IoU >= {rules['stale_box_iou']})"
        " of all carried boxes. Counts in brackets. Analysed, no person moved: frames the gate"
        " analysed because the picture changed while no person moved.",
    ]
    for preset, kinds in section["scores"].items():
        lines += [
            "",
            f"Preset {preset}:",
            "",
            "| scenes | clips | gate | recall | precision | stale-box rate | frames gated"
            " | analysed, no person moved |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for kind, row in kinds.items():
            for mode, f in row["modes"].items():
                c = f["counts"]
                scored = c["true_boxes"] + c["false_boxes"]
                lines.append(
                    f"| {kind} | {len(row['clips'])} | {_gate_name(mode)}"
                    f" | {_rate(f['recall'], c['found'], c['faces'])}"
                    f" | {_rate(f['precision'], c['true_boxes'], scored)}"
                    f" | {_rate(f['stale_rate'], c['stale'], c['carried'])}"
                    f" | {f['share_gated']:.0%} | {f['share_analysed_no_person_moved']:.0%} |"
                )
    drain = section.get("drain")
    if drain:
        session = section.get("session", {})
        ratio = drain["ratio"]
        lines += [
            "",
            f"The job alone draining the same {drain['cameras']} cameras x {drain['seconds']} s"
            f" ({drain['frames']} frames, {drain['preset']} preset), in one Spark session"
            f" ({session.get('master')}, spark.task.cpus {session.get('spark.task.cpus')},"
            f" {session.get('partitions')} partitions), without and with the gate interleaved"
            f" over {drain['rounds']} rounds; frames/s from the query's start to the last output,"
            " median (min-max):",
            "",
            "| gate | frames/s |",
            "| --- | --- |",
            f"| off | {_spread_text(drain['ungated'])} |",
            f"| on, regions | {_spread_text(drain['gated, regions'])} |",
            f"| ratio on / off | {ratio['of_medians']:.2f} of the medians; per round"
            f" {ratio['per_round']['min']:.2f}-{ratio['per_round']['max']:.2f} |",
        ]
        if not drain["all_out_in_order"]:
            lines.append("\nNot every frame came out, or a camera's order broke.")
    loads = section.get("loads") or []
    if loads:
        pace = rules["keeps_pace"]
        live = section.get("live_seconds", {})
        lines += [
            "",
            f"Still-scene cameras at 1 frame/s through the job (fast preset, the same session;"
            f" {live.get('warmup', 0):g} s of warm-up, then {live.get('measured', 0):g} s"
            f" measured). Keeps pace: delivered >= {pace['delivered_share_min']:.0%} of what"
            f" was offered, the delay's median in the last 10 s at most"
            f" {pace['delay_growth_ms_max']:.0f} ms above the first 10 s', and under"
            f" {pace['delay_ms_p50_max']:.0f} ms:",
            "",
            "| cameras | gate | offered frames/s | delivered frames/s | delay p50 ms (first /"
            " last 10 s) | frames gated | kept pace in |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for row in loads:
            groups.setdefault((row["cameras"], row["label"]), []).append(row)
        for (cameras, label), rows in groups.items():
            analysed = sum(r["frames_analysed"] for r in rows)
            gated_frames = sum(r["frames_gated"] for r in rows)
            total = analysed + gated_frames
            gated = f"{gated_frames / total:.0%}" if total else "-"
            kept = sum(1 for r in rows if r["keeps_pace"])

            def median(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return statistics.median(r[key] for r in rows)

            lines.append(
                f"| {cameras} | {label} | {rows[0]['offered_fps']:g}"
                f" | {_spread_of([r['delivered_fps'] for r in rows], 1)}"
                f" | {_spread_of([r['delay_ms_p50'] for r in rows], 0)}"
                f" ({median('delay_ms_p50_first_10s'):.0f} / {median('delay_ms_p50_last_10s'):.0f})"
                f" | {gated} | {kept} of {len(rows)} rounds |"
            )
    return "\n".join(lines) + "\n"
