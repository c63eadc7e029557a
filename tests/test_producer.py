"""The camera producer over a real broker, from a real video file."""

from __future__ import annotations

import numpy as np
import pytest

from camstream.cameras.capture import produce
from camstream.cameras.encoding import encode_frame as fit_jpeg
from camstream.cameras.simulate import CameraSimulator, sample_video_path
from camstream.config import Config
from camstream.core.contract import INPUT_HEADERS, FrameMeta
from camstream.errors import CaptureError, FrameTooLargeError
from camstream.kafka.publish import FramePublisher
from helpers import consume, jpeg_size


def test_produce_from_a_video_file(cfg: Config) -> None:
    stats = produce(cfg, str(sample_video_path()), "door-1", fps=50, resize_width=320, max_frames=6)
    assert (stats.sent, stats.acked, stats.failed) == (6, 6, 0)
    records = consume(cfg, cfg.input_topic, 6)
    assert len(records) == 6
    for seq, record in enumerate(records):
        assert record.key == b"door-1"
        assert [name for name, _ in record.headers] == list(INPUT_HEADERS)
        meta = FrameMeta.from_headers(record.headers)
        assert (meta.camera_id, meta.seq, meta.width, meta.height) == ("door-1", seq, 320, 240)
        assert jpeg_size(record.value) == (320, 240)


def test_missing_source_is_a_clear_error(cfg: Config) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        produce(cfg, "/no/such/video.mp4", "cam-x", max_frames=1)


def test_oversized_frame_lowers_quality_then_resolution_then_fails_loudly() -> None:
    noise = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    cfg = Config(max_frame_bytes=200_000, jpeg_quality=95, min_jpeg_quality=10)
    fitted = fit_jpeg(noise, cfg)
    assert len(fitted.jpeg) <= 200_000 and fitted.quality < 95
    assert (fitted.width, fitted.height) == (640, 480)  # quality was enough
    # Quality alone is not enough: the frame shrinks, within the width bound.
    smaller = Config(max_frame_bytes=60_000, jpeg_quality=80, min_jpeg_quality=60)
    fitted = fit_jpeg(noise, smaller)
    assert len(fitted.jpeg) <= 60_000 and fitted.quality == 60
    assert 320 <= fitted.width < 640 and jpeg_size(fitted.jpeg) == (fitted.width, fitted.height)
    assert abs(fitted.width / fitted.height - 640 / 480) < 0.02
    strict = Config(max_frame_bytes=20_000, jpeg_quality=80, min_jpeg_quality=60)
    with pytest.raises(
        FrameTooLargeError, match=r"over the 20000-byte limit.*CAMSTREAM_MIN_FRAME_WIDTH"
    ):
        fit_jpeg(noise, strict)


def test_simulated_cameras_have_their_own_ids_phases_and_seq(cfg: Config) -> None:
    simulator = CameraSimulator(cfg, cameras=3, fps=20)
    stats = simulator.run(max_frames=4)
    assert (stats.sent, stats.failed) == (12, 0)
    records = consume(cfg, cfg.input_topic, 12)
    by_camera: dict[str, list[int]] = {}
    for record in records:
        meta = FrameMeta.from_headers(record.headers)
        assert record.key == meta.camera_id.encode()
        by_camera.setdefault(meta.camera_id, []).append(meta.seq)
    assert by_camera == {"cam-01": [0, 1, 2, 3], "cam-02": [0, 1, 2, 3], "cam-03": [0, 1, 2, 3]}
    assert len({camera.phase for camera in simulator.cameras}) == 3


def test_publisher_memory_is_bounded_by_what_awaits_the_broker(cfg: Config) -> None:
    """kafka-python queues without limit; the publisher waits for acks past its cap."""
    jpeg = bytes(30_000)  # the publisher does not look inside; only the size matters here
    cap = 100_000
    publisher = FramePublisher(cfg, max_in_flight_bytes=cap)
    peak = 0
    for seq in range(150):
        publisher.publish(FrameMeta("cam-mem", seq, seq, 640, 480), jpeg)
        peak = max(peak, publisher.stats.bytes_in_flight)
        assert publisher.stats.bytes_in_flight <= cap + len(jpeg)
    stats = publisher.close()
    assert (stats.sent, stats.acked, stats.failed, stats.bytes_in_flight) == (150, 150, 0, 0)
    assert peak > cap // 2, "the cap was never approached: the test did not test it"


def test_crc32c_in_c_is_installed() -> None:
    """Without it kafka-python checksums each frame in pure Python (~5 ms per 50 KB)."""
    from kafka.record import util

    assert util.crc32c_c is not None
