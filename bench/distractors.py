"""The labelled still scenes with change that is not a person moving: what fools a motion gate.

Each variant takes a clip of `camstream.cameras.still_scenes` frame by frame (its people, its
sensor noise) and changes the whole picture or part of it, the way outdoor and night
cameras change without anyone moving. The people stay where they were drawn, so the clip's
labels still apply, with one exception: the swaying branch hides what it covers, and a
labelled face that the branch covers by a single pixel counts as partly in view for that
frame (neither found nor missed, like a face at the frame's edge). Every variant is
deterministic: seeded by the clip's name and the variant (not Python's salted `hash`).

- `exposure`: auto-exposure steps. Every `EXPOSURE_STEP_FRAMES` frames the global gain jumps
  to another of `EXPOSURE_GAINS` (at least 0.2 from the one before).
- `branch`: a dark leafy branch hanging from the top right, swaying (a 5-frame period and
  a seeded gust each frame); over the middle-right of the frame, so some faces pass under it.
- `rain`: `RAIN_STREAKS` short bright slanted streaks per frame, anywhere, new each frame.
- `headlights`: a bright warm gradient (a car's lights) sweeping left to right across the
  lower middle of the frame over `SWEEP_FRAMES` frames, every `SWEEP_EVERY` frames.
- `ir`: from frame `IR_SWITCH_FRAME` on, the camera's infrared mode: monochrome, with more
  contrast and a brighter mean (`IR_CONTRAST`, `IR_OFFSET`), for the rest of the clip.
"""

from __future__ import annotations

import copy
import math
import zlib
from functools import cache

import cv2
import numpy as np

from camstream.cameras.still_scenes import (
    CLIPS,
    FRAMES,
    HEIGHT,
    WIDTH,
    clip_named,
    labels,
    render,
)
from camstream.core.jpeg import encode_jpeg

KINDS = ("exposure", "branch", "rain", "headlights", "ir")

EXPOSURE_STEP_FRAMES = 5
EXPOSURE_GAINS = (0.6, 0.75, 0.9, 1.0, 1.15, 1.3, 1.45)
BRANCH_PIVOT = (600, -10)  # where it hangs from (x, y), above the frame's top edge
BRANCH_LENGTH = 300
BRANCH_ANGLE_DEG = 40.0  # from the vertical, leaning left (towards the frame's middle)
BRANCH_SWAY_DEG = 12.0
BRANCH_PERIOD_FRAMES = 5.0
RAIN_STREAKS = 800
SWEEP_EVERY = 20
SWEEP_FRAMES = 8
SWEEP_FIRST = 4  # the first sweep starts at this frame
IR_SWITCH_FRAME = 30
IR_CONTRAST = 1.3
IR_OFFSET = 25.0

# The clips with a person (every camera of the mix shows one) and those without.
PERSON_CLIPS = tuple(clip.name for clip in CLIPS if clip.walks)
EMPTY_CLIPS = tuple(clip.name for clip in CLIPS if not clip.walks)


def _seed(clip_name: str, kind: str, index: int = 0) -> int:
    return zlib.crc32(f"{clip_name}/{kind}/{index}".encode())


# ---- exposure ------------------------------------------------------------------------------
@cache
def exposure_gains(clip_name: str) -> tuple[float, ...]:
    """The gain of each frame: a step every EXPOSURE_STEP_FRAMES, each >= 0.2 from the last."""
    rng = np.random.default_rng(_seed(clip_name, "exposure"))
    gains: list[float] = []
    gain = 1.0
    for index in range(FRAMES):
        if index and index % EXPOSURE_STEP_FRAMES == 0:
            choices = [g for g in EXPOSURE_GAINS if abs(g - gain) >= 0.2]
            gain = float(rng.choice(choices))
        gains.append(gain)
    return tuple(gains)


def _exposure(frame: np.ndarray, clip_name: str, index: int) -> np.ndarray:
    gain = exposure_gains(clip_name)[index]
    return np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8)


# ---- the swaying branch --------------------------------------------------------------------
@cache
def _leaves(clip_name: str) -> tuple[tuple[float, float, int, int, float, int], ...]:
    """The branch's leaves in its own frame: (distance along, offset across, half axes,
    angle, shade), the same in every frame of the clip."""
    rng = np.random.default_rng(_seed(clip_name, "branch"))
    leaves = []
    for _ in range(70):
        along = float(rng.uniform(0.25, 1.0)) * BRANCH_LENGTH
        across = float(rng.normal(0.0, 28.0))
        leaves.append(
            (
                along,
                across,
                int(rng.integers(10, 22)),
                int(rng.integers(5, 11)),
                float(rng.uniform(0, 180)),
                int(rng.integers(0, 25)),
            )
        )
    return tuple(leaves)


def branch_angle(clip_name: str, index: int) -> float:
    """The branch's angle from the vertical (degrees) at frame `index`: a sway and a gust."""
    gust = float(np.random.default_rng(_seed(clip_name, "branch", index)).normal(0.0, 3.0))
    sway = BRANCH_SWAY_DEG * math.sin(2 * math.pi * index / BRANCH_PERIOD_FRAMES)
    return BRANCH_ANGLE_DEG + sway + gust


@cache
def branch_mask(clip_name: str, index: int) -> np.ndarray:
    """Where the branch is at frame `index` (255), HEIGHTxWIDTH."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    angle = math.radians(branch_angle(clip_name, index))
    along = np.array([-math.sin(angle), math.cos(angle)])  # hangs down, leaning left
    across = np.array([along[1], -along[0]])
    pivot = np.array(BRANCH_PIVOT, np.float64)
    tip = pivot + BRANCH_LENGTH * along
    cv2.line(mask, _point(pivot), _point(tip), 255, 7)
    for distance, offset, ax1, ax2, leaf_angle, _ in _leaves(clip_name):
        centre = pivot + distance * along + offset * across
        twig = pivot + distance * along
        cv2.line(mask, _point(twig), _point(centre), 255, 2)
        tilt = leaf_angle + math.degrees(angle)
        cv2.ellipse(mask, _point(centre), (ax1, ax2), tilt, 0, 360, 255, -1)
    return mask


def _point(xy: np.ndarray) -> tuple[int, int]:
    return round(float(xy[0])), round(float(xy[1]))


def _branch(frame: np.ndarray, clip_name: str, index: int) -> np.ndarray:
    mask = branch_mask(clip_name, index) > 0
    out = frame.copy()
    rng = np.random.default_rng(_seed(clip_name, "branch-shade", index))
    leaf = np.array([28, 52, 22], np.float32)  # dark green (BGR)
    shade = rng.normal(0.0, 6.0, (int(mask.sum()), 1)).astype(np.float32)
    out[mask] = np.clip(leaf + shade, 0, 255).astype(np.uint8)
    return out


def covered_by_branch(clip_name: str, index: int, box: list[int]) -> bool:
    """Whether the branch covers any pixel of `box` (x1, y1, x2, y2) at frame `index`."""
    x1, y1, x2, y2 = (max(0, v) for v in box)
    return bool(branch_mask(clip_name, index)[y1:y2, x1:x2].any())


# ---- rain ----------------------------------------------------------------------------------
def _rain(frame: np.ndarray, clip_name: str, index: int) -> np.ndarray:
    rng = np.random.default_rng(_seed(clip_name, "rain", index))
    layer = np.zeros((HEIGHT, WIDTH), np.uint8)
    xs = rng.integers(-40, WIDTH, RAIN_STREAKS)
    ys = rng.integers(-30, HEIGHT, RAIN_STREAKS)
    lengths = rng.integers(15, 40, RAIN_STREAKS)
    levels = rng.integers(60, 120, RAIN_STREAKS)
    slant = math.radians(15)  # from the vertical
    for x, y, length, level in zip(xs, ys, lengths, levels, strict=True):
        end = (int(x + length * math.sin(slant)), int(y + length * math.cos(slant)))
        cv2.line(layer, (int(x), int(y)), end, int(level), 1)
    out = frame.astype(np.int16) + layer[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


# ---- headlights ----------------------------------------------------------------------------
def headlight_centre(index: int) -> tuple[float, float] | None:
    """The sweep's centre (x, y) at frame `index`, None between sweeps."""
    step = (index - SWEEP_FIRST) % SWEEP_EVERY
    if index < SWEEP_FIRST or step >= SWEEP_FRAMES:
        return None
    x = -150 + step * (WIDTH + 300) / (SWEEP_FRAMES - 1)
    return x, 330.0


@cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return xs, ys


def _headlights(frame: np.ndarray, clip_name: str, index: int) -> np.ndarray:
    centre = headlight_centre(index)
    if centre is None:
        return frame
    xs, ys = _grid()
    glow = np.exp(-(((xs - centre[0]) / 150) ** 2 + ((ys - centre[1]) / 100) ** 2))
    tint = np.array([0.85, 0.95, 1.0], np.float32)  # warm (BGR)
    out = frame.astype(np.float32) + 150.0 * glow[..., None] * tint
    return np.clip(out, 0, 255).astype(np.uint8)


# ---- the IR switch -------------------------------------------------------------------------
def _ir(frame: np.ndarray, clip_name: str, index: int) -> np.ndarray:
    if index < IR_SWITCH_FRAME:
        return frame
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    mono = np.clip((grey - 128.0) * IR_CONTRAST + 128.0 + IR_OFFSET, 0, 255).astype(np.uint8)
    return cv2.cvtColor(mono, cv2.COLOR_GRAY2BGR)


_APPLY = {
    "exposure": _exposure,
    "branch": _branch,
    "rain": _rain,
    "headlights": _headlights,
    "ir": _ir,
}


def render_variant(clip_name: str, kind: str, index: int) -> np.ndarray:
    """Frame `index` of the clip with the change `kind` (BGR), the same on every run."""
    frame = render(clip_named(clip_name), index)
    if kind == "still":
        return frame
    return _APPLY[kind](frame, clip_name, index)


@cache
def variant_jpegs(clip_name: str, kind: str, quality: int = 80) -> tuple[bytes, ...]:
    """The variant's frames as its camera would send them ("still": the clip itself)."""
    return tuple(encode_jpeg(render_variant(clip_name, kind, i), quality) for i in range(FRAMES))


def variant_labels(clip_name: str, kind: str) -> list[dict]:
    """The clip's labels for the variant: the same, but that a face the branch covers (any
    pixel of its box) is partly in view in that frame."""
    out = copy.deepcopy(labels(clip_named(clip_name)))
    if kind != "branch":
        return out
    for frame in out:
        hidden = [f for f in frame["faces"] if covered_by_branch(clip_name, frame["index"], f)]
        frame["faces"] = [f for f in frame["faces"] if f not in hidden]
        frame["partial"] = frame["partial"] + hidden
    return out
