"""The producer reads network cameras as IP cameras serve them: MJPEG over HTTP, and RTSP.

The MJPEG camera is an HTTP server of the test's own (`multipart/x-mixed-replace`, one JPEG
per part, as IP cameras stream it). The RTSP camera is GStreamer's RTSP server (Debian's
packages, installed by `make test`), streaming RTP/JPEG: a real server the project did not
write.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from camstream.cameras.simulate import load_sample_frames
from camstream.config import Config
from camstream.core.contract import INPUT_HEADERS, FrameMeta
from camstream.core.jpeg import encode_jpeg
from camstream.local.ports import free_port
from helpers import consume, jpeg_size, running

RTSP_SERVER = Path(__file__).resolve().parent / "servers" / "rtsp_camera.py"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"


@contextmanager
def mjpeg_camera() -> Iterator[str]:
    """An MJPEG-over-HTTP camera at 20 frames/s; yields its URL."""
    jpegs = [encode_jpeg(frame, 80) for frame in load_sample_frames()[:20]]
    stop = threading.Event()

    class Camera(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            index = 0
            try:
                while not stop.is_set():
                    jpeg = jpegs[index % len(jpegs)]
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\n"
                        + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                        + jpeg
                        + b"\r\n"
                    )
                    index += 1
                    stop.wait(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the producer hung up: it has its frames

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg"
    finally:
        stop.set()
        server.shutdown()


def produce(cfg: Config, source: str, camera_id: str, frames: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "camstream", "produce", "--source", source,
         "--camera-id", camera_id, "--max-frames", str(frames),
         "--input-topic", cfg.input_topic, "--kafka-bootstrap", cfg.kafka_bootstrap],
        env={**os.environ, "CAMSTREAM_HOME": cfg.home},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def check_published(cfg: Config, camera_id: str, frames: int, size: tuple[int, int]) -> None:
    records = consume(cfg, cfg.input_topic, frames)
    assert len(records) == frames
    metas = [FrameMeta.from_headers(r.headers) for r in records]
    assert [m.seq for m in metas] == list(range(frames))
    assert {r.key for r in records} == {camera_id.encode()}
    assert all([n for n, _ in r.headers] == list(INPUT_HEADERS) for r in records)
    assert {jpeg_size(r.value) for r in records} == {size}
    # Capture times increase: frames were taken live, one after another.
    stamps = [m.capture_ts_ns for m in metas]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] > 0


def test_an_mjpeg_over_http_camera_is_published(cfg: Config) -> None:
    with mjpeg_camera() as url:
        done = produce(cfg, url, "ip-cam-http", 10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent 10 frames, 10 acknowledged" in done.stdout
    check_published(cfg, "ip-cam-http", 10, (640, 480))


def rtsp_available() -> bool:
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", 'import gi; gi.require_version("GstRtspServer", "1.0")'],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not rtsp_available(),
    reason="GStreamer's RTSP server is not installed (make test installs it: Debian's"
    " gir1.2-gst-rtsp-server-1.0 and python3-gi)",
)
def test_an_rtsp_camera_is_published(cfg: Config, tmp_path: Path) -> None:
    port = free_port()
    command = [SYSTEM_PYTHON, str(RTSP_SERVER), str(port)]
    with running(command, tmp_path / "rtsp.log", stop_timeout_s=10) as server:
        server.wait_ready(
            lambda: server.output().startswith("ready\n"), 30, "ready to serve the camera"
        )
        time.sleep(0.2)
        done = produce(cfg, f"rtsp://127.0.0.1:{port}/camera", "ip-cam-rtsp", 10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent 10 frames, 10 acknowledged" in done.stdout
    check_published(cfg, "ip-cam-rtsp", 10, (320, 240))


def test_an_unreachable_camera_is_a_clear_error(cfg: Config) -> None:
    done = produce(cfg, f"http://127.0.0.1:{free_port()}/video.mjpg", "gone", 1)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot open source" in done.stderr
