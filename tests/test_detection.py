"""Detection and annotation on real face photos and on the labelled sample video."""

from __future__ import annotations

import numpy as np
import pytest

from camstream.cameras.simulate import load_sample_frames, sample_labels
from camstream.config import DETECTION_PRESETS
from camstream.core.annotation import BOX_COLOUR_BGR, annotate
from camstream.core.detection import load_cascade
from camstream.core.jpeg import decode_jpeg, encode_jpeg
from helpers import analyse_jpeg, astronaut_bgr, boxes_of, detect_faces, iou, jpeg_size

# Where the astronaut's face is in skimage's 512x512 portrait (checked by eye).
ASTRONAUT_FACE_XYXY = [176, 66, 274, 164]


@pytest.mark.parametrize("preset", sorted(DETECTION_PRESETS))
def test_finds_the_astronauts_face_in_the_right_place(preset: str) -> None:
    boxes = detect_faces(astronaut_bgr(), DETECTION_PRESETS[preset])
    assert boxes.shape == (1, 4)
    assert iou(boxes[0], ASTRONAUT_FACE_XYXY) > 0.6


def test_fast_preset_maps_boxes_back_to_full_size() -> None:
    image = astronaut_bgr()
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))  # 1024x1024
    boxes = detect_faces(big, DETECTION_PRESETS["fast"])
    assert len(boxes) == 1
    assert iou(boxes[0], [2 * v for v in ASTRONAUT_FACE_XYXY]) > 0.6


@pytest.mark.parametrize("preset", sorted(DETECTION_PRESETS))
def test_blank_and_noise_frames_have_no_faces(preset: str) -> None:
    blank = np.full((480, 640, 3), 128, dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert detect_faces(blank, DETECTION_PRESETS[preset]).shape == (0, 4)
    assert detect_faces(noise, DETECTION_PRESETS[preset]).shape == (0, 4)


def test_sample_video_matches_its_labels_with_the_default_preset() -> None:
    frames = load_sample_frames()
    labels = sample_labels()["frames"]
    assert len(frames) == len(labels)
    settings = DETECTION_PRESETS["faithful"]
    for frame, label in zip(frames, labels, strict=True):
        boxes = detect_faces(decode_jpeg(encode_jpeg(frame, 80)), settings)
        if label["faces"]:
            assert len(boxes) >= 1, f"frame {label['index']}: face missed"
            assert max(iou(b, label["faces"][0]) for b in boxes) > 0.3
        else:
            assert len(boxes) == 0, f"frame {label['index']}: false face"
    assert sum(1 for label in labels if not label["faces"]) >= 20


def test_boxes_stay_inside_the_frame() -> None:
    # A face cut by the frame edge: boxes must be clipped, never negative or past the size.
    image = astronaut_bgr()[40:300, 150:300]
    height, width = image.shape[:2]
    for settings in DETECTION_PRESETS.values():
        for x1, y1, x2, y2 in detect_faces(image, settings):
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_annotate_draws_boxes_on_a_copy() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    scene = annotate(image, np.array([[40, 40, 90, 90]]), label="cam-01")
    assert image.sum() == 0  # the input is untouched
    assert tuple(scene[40, 60]) == BOX_COLOUR_BGR  # top edge of the box
    assert tuple(scene[65, 65]) == (0, 0, 0)  # inside stays clear
    assert scene[5:20, 5:60].max() == 255  # the caption is drawn


def test_the_record_path_returns_an_annotated_jpeg_and_its_boxes() -> None:
    result = analyse_jpeg(encode_jpeg(astronaut_bgr(), 90), DETECTION_PRESETS["faithful"])
    assert result.ok and result.value is not None and jpeg_size(result.value) == (512, 512)
    annotated = decode_jpeg(result.value)
    x1, y1, x2, _ = boxes_of(result)[0]
    # The reference's green box edge (JPEG blurs colours a little).
    b, g, r = (int(v) for v in annotated[y1, (x1 + x2) // 2])
    assert g > 180 and r < 80 and b < 80


def test_classifier_is_loaded_once_per_process() -> None:
    settings = DETECTION_PRESETS["faithful"]
    assert load_cascade(settings.cascade) is load_cascade(settings.cascade)
