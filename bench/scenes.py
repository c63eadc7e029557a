"""Cameras that are not alike: four scenes of unequal cost, and camera ids that hash as asked.

Real cameras differ: a crowd costs the detector more than an empty corridor, and camera ids
hash onto Kafka partitions unevenly. These make such loads on purpose, reproducibly.

  portrait  the sample video: one face moving over a background, stretches without it
  crowd     six faces of different sizes over a textured street
  corridor  an empty, smooth scene: the cheapest
  texture   busy high-contrast texture: many candidate windows, no face
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from kafka.partitioner.default import murmur2

from camstream.cameras.simulate import load_sample_frames
from camstream.core.jpeg import encode_jpeg

SCENES = ("portrait", "crowd", "corridor", "texture")
SIZE = (640, 480)


def _astronaut() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _scene(name: str, index: int) -> np.ndarray:
    rng = np.random.default_rng(1000 * SCENES.index(name) + index)
    width, height = SIZE
    if name == "portrait":
        frames = load_sample_frames()
        return frames[(index * 7) % len(frames)]
    if name == "corridor":
        ramp = np.linspace(60, 200, width, dtype=np.float32)[None, :, None]
        image = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
        cv2.rectangle(image, (200 + index % 5, 120), (440, 480), (90, 90, 100), -1)  # a door
        return image
    texture = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    street = cv2.resize(texture, SIZE, interpolation=cv2.INTER_NEAREST)
    if name == "texture":
        return street
    # crowd: six faces, 60-150 px, over the street
    face = _astronaut()[30:230, 150:350]  # the astronaut's head and shoulders
    for slot in range(6):
        side = int(60 + 18 * ((slot + index) % 6))
        x = 20 + (slot % 3) * 205 + (index * 3) % 20
        y = 30 + (slot // 3) * 220
        street[y : y + side, x : x + side] = cv2.resize(face, (side, side))
    return street


@cache
def scene_jpegs(name: str, frames: int = 12) -> tuple[bytes, ...]:
    """`frames` JPEG frames (640x480, quality 80) of a scene, slightly different each."""
    return tuple(encode_jpeg(_scene(name, i), 80) for i in range(frames))


def partition_of(camera_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client)."""
    return (murmur2(camera_id.encode()) & 0x7FFFFFFF) % partitions


def cameras_on(partition_counts: list[int], partitions: int, prefix: str = "cam") -> list[str]:
    """Camera ids such that partition p gets partition_counts[p] cameras."""
    wanted = list(partition_counts)
    found: list[str] = []
    candidate = 0
    while any(wanted):
        camera_id = f"{prefix}-{candidate:04d}"
        candidate += 1
        partition = partition_of(camera_id, partitions)
        if wanted[partition] > 0:
            wanted[partition] -= 1
            found.append(camera_id)
    return found
