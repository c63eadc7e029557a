"""A labelled set of mostly still scenes: what security cameras mostly see.

Eight one-minute clips at 1 frame/s, 640x480, built from public-domain images: the NASA
astronaut portrait (`skimage.data.astronaut`, the sample video's person) as the people,
and as scenes a drawn room, NASA's rocket photo (`skimage.data.rocket`) and the CC0
textures brick, gravel and grass (`skimage.data`). Every frame carries its own sensor
noise, so no two frames of a still scene are equal. People enter, stand still, move and
leave; one scene only dims slowly (no person), two never change. The true face boxes
follow from where each person is drawn; `still_scenes_labels.json` holds them (committed,
and regenerated and compared by the tests): per frame the faces fully in view, the faces
partly in view (counted neither way), and whether anything moved since the frame before.

Used by the bench (recall and capacity with and without the motion gate) and the tests.
`scripts/still_scene_labels.py` rewrites the labels after a change to the scenes.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import cv2
import numpy as np

from camstream.core.jpeg import resize_area

WIDTH, HEIGHT = 640, 480
FPS = 1.0
FRAMES = 60
LABELS_FILE = "still_scenes_labels.json"
# The astronaut's head and shoulders (x1, y1, x2, y2) in the 512x512 image, and the face
# within that crop: OpenCV's frontal-face cascade finds it there at every scale used here.
CROP_BOX = (110, 0, 360, 260)
FACE_IN_CROP = (64, 64, 164, 164)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Walk:
    """A person over a stretch of frames: position (x, y of the crop's top left) by frame."""

    start: int
    end: int  # exclusive
    scale: float
    keyframes: tuple[tuple[int, int, int], ...]  # (frame, x, y); linear in between, held after

    def position(self, index: int) -> tuple[int, int] | None:
        if not self.start <= index < self.end:
            return None
        frames = self.keyframes
        if index <= frames[0][0]:
            return frames[0][1], frames[0][2]
        for (f0, x0, y0), (f1, x1, y1) in itertools.pairwise(frames):
            if f0 <= index <= f1:
                t = (index - f0) / max(1, f1 - f0)
                return round(x0 + t * (x1 - x0)), round(y0 + t * (y1 - y0))
        return frames[-1][1], frames[-1][2]


@dataclass(frozen=True)
class Clip:
    name: str
    scene: str  # room, rocket, brick, gravel, grass, corridor
    walks: tuple[Walk, ...] = ()
    noise: float = 2.5  # sensor noise, grey levels (standard deviation)
    brightness: float = 1.0
    dim_to: float | None = None  # a slow dimming over frames 10-50 to this brightness


def _enter_stand_leave(
    start: int, end: int, y: int, scale: float, stand_x: int, enter_from: int, leave_to: int,
    move_to: int | None = None,
) -> Walk:  # fmt: skip
    """In from `enter_from` over 4 frames, still, (a move to `move_to` half way), out over 4."""
    middle = (start + end) // 2
    keys = [(start, enter_from, y), (start + 4, stand_x, y)]
    if move_to is not None:
        keys += [(middle - 2, stand_x, y), (middle + 2, move_to, y)]
        stand_x = move_to
    keys += [(end - 5, stand_x, y), (end - 1, leave_to, y)]
    return Walk(start, end, scale, tuple(keys))


CLIPS: tuple[Clip, ...] = (
    Clip("lobby", "room", (_enter_stand_leave(20, 54, 110, 1.0, 120, -250, 660, 380),)),
    Clip("brick-visitor", "brick", (_enter_stand_leave(40, 58, 150, 1.0, 300, 660, -260),)),
    Clip("hall-dimming", "rocket", (), dim_to=0.7),
    Clip(
        "gravel-guard",
        "gravel",
        (
            Walk(0, FRAMES, 1.0, ((0, 30, 180),)),  # stands the whole minute
            _enter_stand_leave(25, 33, 120, 0.8, 400, 660, -210),  # a smaller one passes by
        ),
    ),
    Clip(
        "grass-stroll",
        "grass",
        (
            Walk(20, 40, 1.0, ((20, 40, 170), (39, 360, 200))),  # slow: 17 px a frame
        ),
        noise=5.0,
    ),
    Clip(
        "dim-lobby",
        "room",
        (_enter_stand_leave(30, 50, 120, 1.0, 250, -250, 660),),
        brightness=0.45,
    ),
    Clip("empty-corridor", "corridor"),
    Clip("empty-brick", "brick", noise=4.0),
)


# What simulated still-scene cameras play, one clip per camera in turn: the clips with a
# person, so that every camera shows someone within its minute (a camera that never does
# cannot tell whether the gate still finds people). About 1 frame in 5 shows someone moving.
CAMERA_MIX = (
    *("lobby", "brick-visitor", "gravel-guard", "grass-stroll", "dim-lobby"),
    *("lobby", "brick-visitor", "gravel-guard", "grass-stroll", "dim-lobby"),
)


@cache
def _astronaut_crop(scale: float) -> np.ndarray:
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    x1, y1, x2, y2 = CROP_BOX
    height, width = _crop_size(scale)
    return resize_area(image[y1:y2, x1:x2], (width, height))


def _room() -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    room = np.empty((HEIGHT, WIDTH, 3), np.float32)
    room[..., 0] = 150 + 70 * xs / WIDTH
    room[..., 1] = 110 + 60 * ys / HEIGHT
    room[..., 2] = 70 + 40 * (1 - xs / WIDTH)
    image = np.clip(room, 0, 255).astype(np.uint8)
    cv2.rectangle(image, (0, 400), (WIDTH, HEIGHT), (70, 95, 110), -1)  # floor
    cv2.rectangle(image, (470, 60), (600, 200), (200, 215, 225), -1)  # window
    cv2.circle(image, (90, 90), 40, (60, 200, 240), -1)  # lamp
    return image


@cache
def _scene(name: str) -> np.ndarray:
    from skimage import data

    if name == "room":
        return _room()
    if name == "corridor":
        ramp = np.linspace(60, 200, WIDTH, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp, (HEIGHT, WIDTH, 3)).astype(np.uint8).copy()
        cv2.rectangle(image, (200, 120), (440, 480), (90, 90, 100), -1)  # a door
        return image
    source = {
        "rocket": data.rocket,
        "brick": data.brick,
        "gravel": data.gravel,
        "grass": data.grass,
    }[name]()
    if source.ndim == 2:
        source = cv2.cvtColor(source, cv2.COLOR_GRAY2BGR)
    else:
        source = cv2.cvtColor(source, cv2.COLOR_RGB2BGR)
    return resize_area(source, (WIDTH, HEIGHT))


def _face_box(x: int, y: int, scale: float) -> Box:
    fx1, fy1, fx2, fy2 = FACE_IN_CROP
    return (
        x + round(fx1 * scale),
        y + round(fy1 * scale),
        x + round(fx2 * scale),
        y + round(fy2 * scale),
    )


def _in_view(box: Box) -> str:
    x1, y1, x2, y2 = box
    if x1 >= 0 and y1 >= 0 and x2 <= WIDTH and y2 <= HEIGHT:
        return "full"
    if x2 <= 0 or y2 <= 0 or x1 >= WIDTH or y1 >= HEIGHT:
        return "out"
    return "partial"


def _visible(walk: Walk, position: tuple[int, int] | None) -> tuple[int, int] | None:
    """The person's position if any of them is in view."""
    if position is None:
        return None
    h, w = _crop_size(walk.scale)
    x, y = position
    return position if x < WIDTH and y < HEIGHT and x + w > 0 and y + h > 0 else None


def _crop_size(scale: float) -> tuple[int, int]:
    x1, y1, x2, y2 = CROP_BOX
    return round((y2 - y1) * scale), round((x2 - x1) * scale)


def _brightness(clip: Clip, index: int) -> float:
    if clip.dim_to is None:
        return clip.brightness
    t = min(1.0, max(0.0, (index - 10) / 40))
    return clip.brightness + t * (clip.dim_to - clip.brightness)


def render(clip: Clip, index: int) -> np.ndarray:
    """Frame `index` of a clip (BGR), the same on every run."""
    frame = _scene(clip.scene).copy()
    for walk in clip.walks:
        position = walk.position(index)
        if position is None:
            continue
        crop = _astronaut_crop(walk.scale)
        x, y = position
        h, w = crop.shape[:2]
        fx1, fy1, fx2, fy2 = max(0, x), max(0, y), min(WIDTH, x + w), min(HEIGHT, y + h)
        if fx1 < fx2 and fy1 < fy2:
            frame[fy1:fy2, fx1:fx2] = crop[fy1 - y : fy2 - y, fx1 - x : fx2 - x]
    rng = np.random.default_rng(1_000 * CLIPS.index(clip) + index)
    noisy = frame.astype(np.float32) * _brightness(clip, index)
    noisy += rng.normal(0.0, clip.noise, frame.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def labels(clip: Clip) -> list[dict]:
    """Per frame: faces fully in view, faces partly in view, and whether anything moved."""
    out = []
    previous: list[tuple[int, int] | None] = [None] * len(clip.walks)
    for index in range(FRAMES):
        full, partial = [], []
        positions = [_visible(walk, walk.position(index)) for walk in clip.walks]
        for walk, position in zip(clip.walks, positions, strict=True):
            if position is None:
                continue
            box = _face_box(*position, walk.scale)
            seen = _in_view(box)
            if seen == "full":
                full.append(list(box))
            elif seen == "partial":
                partial.append(
                    [max(0, box[0]), max(0, box[1]), min(WIDTH, box[2]), min(HEIGHT, box[3])]
                )
        moved = index > 0 and positions != previous  # people; the light is not motion
        previous = positions
        out.append({"index": index, "faces": full, "partial": partial, "moved": bool(moved)})
    return out


@cache
def clip_jpegs(name: str, quality: int = 80) -> tuple[bytes, ...]:
    """A clip's frames as JPEG bytes, as its camera would send them."""
    from camstream.core.jpeg import encode_jpeg

    clip = clip_named(name)
    return tuple(encode_jpeg(render(clip, i), quality) for i in range(FRAMES))


def clip_named(name: str) -> Clip:
    for clip in CLIPS:
        if clip.name == name:
            return clip
    raise KeyError(f"no still-scene clip {name!r}; there are {[c.name for c in CLIPS]}")


def all_labels() -> dict:
    return {
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "frames_per_clip": FRAMES,
        "clips": {clip.name: labels(clip) for clip in CLIPS},
    }


def committed_labels() -> dict:
    """The labels as committed with the package."""
    path = resources.files("camstream.cameras").joinpath("data", LABELS_FILE)
    return json.loads(path.read_text())
