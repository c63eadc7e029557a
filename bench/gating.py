"""The motion gate on the labelled still scenes: recall with and without it, share gated.

Each clip plays as its camera would send it (1 frame/s capture times) through the job's own
per-record stages (`camstream.core.batch.process_batch`), in batches as a micro-batch would
hand them over, once with the gate and once without. A labelled face counts as found when
an output box (detected, or carried by the gate) overlaps it with IoU >= 0.5; faces only
partly in view count neither way. Recall is over every labelled face of every clip.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from typing import Any

import numpy as np
from boxes import iou

from camstream.cameras.still_scenes import CLIPS, FPS, clip_jpegs, labels
from camstream.core.analysis import detect_in_jpeg, detect_in_regions
from camstream.core.batch import process_batch
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.jpeg import check_jpeg
from camstream.core.motion import MotionGate, motion_thumbnail, overlaps
from camstream.core.settings import (
    DETECTION_PRESETS,
    MotionSettings,
    RecordSettings,
)

IOU_MATCH = 0.5


def clip_records(name: str, camera_id: str, start_ns: int = 10**18) -> list[tuple]:
    """The clip's frames as Kafka records of one camera (key, value, headers)."""
    records = []
    for seq, jpeg in enumerate(clip_jpegs(name)):
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
    totals = {"faces": 0, "found_ungated": 0, "found_gated": 0, "frames": 0, "gated": 0,
              "moved_frames": 0, "ms_ungated": 0.0, "ms_gated": 0.0}  # fmt: skip
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
        row = {"faces": 0, "found_ungated": 0, "found_gated": 0, "frames": len(truth),
               "gated": sum(f["carried"] for f in gated),
               "moved_frames": sum(t["moved"] for t in truth),
               "ms_ungated": (middle - started) * 1000,
               "ms_gated": (ended - middle) * 1000}  # fmt: skip
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
    (camera i plays clip i mod 10 of the mix from its own phase), in the order they are
    captured: (camera_id, seq, jpeg, capture_ts_ns)."""
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
