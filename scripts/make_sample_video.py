#!/usr/bin/env python3
"""Generate the bundled sample video used by simulated cameras.

Builds a deterministic 640x480, 10 fps, 80-frame MJPG clip: a synthetic background with the
public-domain NASA astronaut portrait (``skimage.data.astronaut()``) sliding across it during
"face" stretches, and no face at all in between. Writes ``sample.avi`` plus ground-truth
``sample_labels.json``, then reads the clip back and verifies Haar detection on every frame
(both as decoded and after a JPEG re-encode, which the pipeline does).

Usage: python scripts/make_sample_video.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skdata

WIDTH, HEIGHT = 640, 480
FPS = 10
N_FRAMES = 80
# (start, end_exclusive) frame ranges that contain the face; everything else is face-free.
FACE_SEGMENTS: tuple[tuple[int, int], ...] = ((0, 30), (45, 70))
# Head-and-shoulders region of the 512x512 astronaut image (x1, y1, x2, y2).
CROP_BOX = (110, 0, 360, 260)
# 95 px source face * 1.35 ~= 128 px face in the video: inside the 110-150 px target.
CROP_SCALE = 1.35
JPEG_QUALITY = 80
MARGIN = 16  # keep the crop this far from the frame edges while sliding
CASCADE = "haarcascade_frontalface_alt.xml"
DETECT_KW = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (30, 30)}
IOU_MIN = 0.3

Box = tuple[int, int, int, int]  # x1, y1, x2, y2


def load_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if cascade.empty():
        raise SystemExit(f"error: could not load Haar cascade {CASCADE}")
    return cascade


def detect(cascade: cv2.CascadeClassifier, bgr: np.ndarray) -> list[Box]:
    """Same detection settings as the camstream pipeline (equalized grayscale)."""
    gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    found = cascade.detectMultiScale(gray, **DETECT_KW)
    return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def make_background() -> np.ndarray:
    """Smooth gradient plus a few flat shapes: textured enough to look like a scene, but with
    nothing face-like for the cascade to fire on. Fully deterministic (no RNG)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    bg = np.empty((HEIGHT, WIDTH, 3), np.float32)
    bg[..., 0] = 150 + 70 * xs / WIDTH  # B
    bg[..., 1] = 110 + 60 * ys / HEIGHT  # G
    bg[..., 2] = 70 + 40 * (1 - xs / WIDTH)  # R
    img = np.clip(bg, 0, 255).astype(np.uint8)
    cv2.rectangle(img, (0, 400), (WIDTH, HEIGHT), (70, 95, 110), -1)  # "floor"
    cv2.rectangle(img, (470, 60), (600, 200), (200, 215, 225), -1)  # "window"
    cv2.line(img, (535, 60), (535, 200), (120, 120, 120), 4)
    cv2.circle(img, (90, 90), 40, (60, 200, 240), -1)  # "lamp"
    cv2.rectangle(img, (40, 300), (200, 400), (60, 70, 140), -1)  # "box"
    return img


def make_crop(cascade: cv2.CascadeClassifier) -> tuple[np.ndarray, Box]:
    """Resized head-and-shoulders crop and the face box within it (detected once)."""
    bgr = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    x1, y1, x2, y2 = CROP_BOX
    crop = bgr[y1:y2, x1:x2]
    size = (round(crop.shape[1] * CROP_SCALE), round(crop.shape[0] * CROP_SCALE))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    faces = detect(cascade, crop)
    if not faces:
        raise SystemExit("error: no face detected in the astronaut crop")
    # The biggest box is the face; anything else would be a spurious hit.
    face = max(faces, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return crop, face


def crop_position(index: int, crop_w: int, crop_h: int) -> tuple[int, int] | None:
    """Top-left of the crop for a frame, or None for face-free frames.

    Within each face stretch the crop eases (cosine) from one side to the other, alternating
    direction, with a small vertical bob so the box is not static on either axis."""
    for seg_no, (start, end) in enumerate(FACE_SEGMENTS):
        if start <= index < end:
            t = (index - start) / max(1, end - start - 1)
            s = 0.5 - 0.5 * float(np.cos(np.pi * t))
            if seg_no % 2:
                s = 1.0 - s
            x = MARGIN + s * (WIDTH - crop_w - 2 * MARGIN)
            bob = float(np.sin(2 * np.pi * t))
            y = (HEIGHT - crop_h) / 2 + 0.35 * ((HEIGHT - crop_h) / 2 - MARGIN) * bob
            return round(x), round(y)
    return None


def clip_box(box: Box) -> Box:
    return (
        max(0, min(WIDTH, box[0])),
        max(0, min(HEIGHT, box[1])),
        max(0, min(WIDTH, box[2])),
        max(0, min(HEIGHT, box[3])),
    )


def render(crop: np.ndarray, face: Box) -> tuple[list[np.ndarray], list[list[Box]]]:
    background = make_background()
    ch, cw = crop.shape[:2]
    frames: list[np.ndarray] = []
    labels: list[list[Box]] = []
    for i in range(N_FRAMES):
        frame = background.copy()
        pos = crop_position(i, cw, ch)
        if pos is None:
            labels.append([])
        else:
            x, y = pos
            frame[y : y + ch, x : x + cw] = crop
            labels.append([clip_box((face[0] + x, face[1] + y, face[2] + x, face[3] + y))])
        frames.append(frame)
    return frames, labels


def write_video(path: Path, frames: list[np.ndarray]) -> str:
    """Write the clip; return a note on which backend wrote it and whether quality applied."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"error: cv2.VideoWriter could not open {path} with MJPG")
    # Ask for quality 80 to keep the file small. The FFMPEG backend (default in the pip wheels)
    # ignores this and uses its own default, which is already smaller (~1.5 MB for this clip)
    # than OpenCV's built-in MJPEG writer at q80, so we report rather than force a backend.
    applied = writer.set(cv2.VIDEOWRITER_PROP_QUALITY, JPEG_QUALITY)
    backend = writer.getBackendName()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return f"writer backend {backend}, quality {JPEG_QUALITY} {'applied' if applied else 'ignored'}"


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"error: cv2.VideoCapture could not open {path}")
    frames: list[np.ndarray] = []
    for i in range(N_FRAMES):
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            raise SystemExit(f"error: read() failed at frame {i} of {N_FRAMES} in {path}")
        if frame.shape != (HEIGHT, WIDTH, 3):
            cap.release()
            raise SystemExit(f"error: frame {i} has shape {frame.shape}")
        frames.append(frame)
    extra_ok, _ = cap.read()
    cap.release()
    if extra_ok:
        raise SystemExit(f"error: {path} has more than {N_FRAMES} frames")
    return frames


def jpeg_roundtrip(frame: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SystemExit("error: cv2.imencode failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def verify(
    name: str,
    cascade: cv2.CascadeClassifier,
    frames: list[np.ndarray],
    labels: list[list[Box]],
) -> list[str]:
    """Return failure messages; print a one-line summary for this pass."""
    failures: list[str] = []
    hits = false_pos = extra = 0
    for i, (frame, truth) in enumerate(zip(frames, labels, strict=True)):
        boxes = detect(cascade, frame)
        if truth:
            best = max((iou(b, truth[0]) for b in boxes), default=0.0)
            if best >= IOU_MIN:
                hits += 1
                extra += sum(1 for b in boxes if iou(b, truth[0]) < IOU_MIN)
            else:
                failures.append(f"[{name}] frame {i}: face missed (best IoU {best:.2f}, {boxes})")
        elif boxes:
            false_pos += 1
            failures.append(f"[{name}] frame {i}: {len(boxes)} box(es) in face-free frame {boxes}")
    n_face = sum(1 for t in labels if t)
    print(
        f"  {name}: face hits {hits}/{n_face}, face-free frames with boxes "
        f"{false_pos}/{len(labels) - n_face}, extra boxes in face frames {extra}"
    )
    return failures


def main(argv: list[str] | None = None) -> int:
    repo_root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=repo_root / "src" / "camstream" / "cameras" / "data",
        help="output directory (default: src/camstream/cameras/data under the repo root)",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    cascade = load_cascade()
    crop, face = make_crop(cascade)
    frames, labels = render(crop, face)

    video_path = out_dir / "sample.avi"
    labels_path = out_dir / "sample_labels.json"
    writer_note = write_video(video_path, frames)
    doc = {
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": [
            {"index": i, "faces": [list(b) for b in boxes]} for i, boxes in enumerate(labels)
        ],
    }
    labels_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")

    decoded = read_video(video_path)
    n_face = sum(1 for t in labels if t)
    print(
        f"wrote {video_path} ({video_path.stat().st_size} bytes), "
        f"{labels_path} ({labels_path.stat().st_size} bytes); {writer_note}"
    )
    print(
        f"frames {len(decoded)} @ {FPS} fps {WIDTH}x{HEIGHT}: {n_face} face, "
        f"{len(labels) - n_face} face-free; face in crop {face} "
        f"({face[2] - face[0]} px wide)"
    )
    failures = verify("decoded", cascade, decoded, labels)
    failures += verify("jpeg-q80", cascade, [jpeg_roundtrip(f) for f in decoded], labels)
    if failures:
        print("VERIFICATION FAILED:", file=sys.stderr)
        for msg in failures:
            print("  " + msg, file=sys.stderr)
        return 1
    print("verification OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
