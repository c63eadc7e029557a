"""Event clips (viewers/clips.py) and the times that choose them (viewers/timespec.py).

Clips are written from the sample video's annotated frames and read back with OpenCV: every
frame given is in the file, in order, at its capture time; gaps get one slate; odd sizes,
other sizes and undecodable JPEGs are handled. No Kafka.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from camstream.core.contract import AnnotatedFrame
from camstream.core.jpeg import encode_jpeg
from camstream.errors import ClipError, DependencyError
from camstream.viewers.clips import (
    CLIP_FORMATS,
    ClipSummary,
    clip_media_type,
    write_clip,
)
from camstream.viewers.gaps import GapFinder
from camstream.viewers.timespec import format_time, parse_time
from station_helpers import annotated_sample_frames

FORMATS = sorted(CLIP_FORMATS)  # [".mp4", ".webm"]
T0 = 1_796_479_380_000_000_000  # 2026-12-05T14:03:00Z
MS = 1_000_000


# ---- frames ---------------------------------------------------------------------------------


@cache
def distinct_jpegs() -> tuple[bytes, ...]:
    """Annotated sample frames that differ clearly from each other (the sample video holds
    still stretches of identical frames): every 7th, less those close to one already kept."""
    frames = annotated_sample_frames()
    kept: list[tuple[bytes, np.ndarray]] = []
    for i in range(len(frames)):
        jpeg = frames[i * 7 % len(frames)][0]
        # Compared at an eighth of the size: as telling, and 64 times fewer pixels.
        small = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_8)
        if all(mad(small, other) > 4 for _, other in kept):
            kept.append((jpeg, small))
    return tuple(jpeg for jpeg, _ in kept)


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two images of one size."""
    return float(np.mean(cv2.absdiff(a, b)))


def annotated(jpeg: bytes, capture_ns: int, seq: int = 0, camera: str = "cam-01") -> AnnotatedFrame:
    return AnnotatedFrame(camera, seq, capture_ns, capture_ns + 5 * MS, 640, 480, 0, [], jpeg)


def frames_at(
    times_ns: Iterable[int], jpegs: Iterable[bytes] | None = None
) -> list[AnnotatedFrame]:
    """One frame per capture time, each a different sample frame."""
    sources = distinct_jpegs() if jpegs is None else jpegs
    return [annotated(j, t, seq) for seq, (t, j) in enumerate(zip(times_ns, sources, strict=False))]


def steady_times(count: int, interval_ms: int = 250, start: int = T0) -> list[int]:
    # Irregular like a real camera's: the interval wobbles by up to 20 ms.
    return [start + i * interval_ms * MS + (i * 7919 % 21) * MS for i in range(count)]


def read_clip(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """The clip's frames as OpenCV decodes them, and each one's position in ms."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    images, positions = [], []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
        positions.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    capture.release()
    return images, positions


def assert_same_order(decoded: list[np.ndarray], sources: list[np.ndarray]) -> None:
    """Each decoded frame is nearest to the source frame of its own index."""
    assert len(decoded) == len(sources)
    for index, image in enumerate(decoded):
        distances = [mad(image, source) for source in sources]
        assert int(np.argmin(distances)) == index, (index, distances)


# ---- clips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", FORMATS)
def test_clip_has_every_frame_in_order_at_its_capture_time(tmp_path: Path, extension: str) -> None:
    times = steady_times(20)
    frames = frames_at(times)
    path = tmp_path / f"clip{extension}"

    summary = write_clip(path, iter(frames))

    images, positions = read_clip(path)
    assert_same_order(images, [decode(f.jpeg) for f in frames])
    expected_ms = [(t - times[0]) / MS for t in times]
    assert positions == pytest.approx(expected_ms, abs=1)
    assert summary == ClipSummary(
        path=path,
        format=CLIP_FORMATS[extension].name,
        frames_written=20,
        frames_unreadable=0,
        slates=0,
        gaps=(),
        first_capture_ns=times[0],
        last_capture_ns=times[-1],
        width=640,
        height=480,
        bytes=path.stat().st_size,
    )


@pytest.mark.parametrize("extension", FORMATS)
def test_a_gap_gets_one_darkened_slate(tmp_path: Path, extension: str) -> None:
    before = steady_times(10)
    after = steady_times(6, start=before[-1] + 12_300 * MS)
    frames = frames_at(before + after)
    path = tmp_path / f"gap{extension}"

    summary = write_clip(path, frames)

    assert (summary.frames_written, summary.slates) == (16, 1)
    assert summary.gaps == ((before[-1], after[0]),)
    images, positions = read_clip(path)
    assert len(images) == 17  # the camera's 16 frames and the slate after the 10th
    slate = images[10]
    sources = [decode(f.jpeg) for f in frames]
    assert_same_order(images[:10] + images[11:], sources)
    # Darkened, with white text across its middle.
    assert slate.mean() < 0.5 * images[9].mean()
    assert slate[200:280].max() > 200
    # Shown from one usual interval after the frame before it, until the frame after it.
    median_interval_ms = float(np.median(np.diff(before))) / MS
    assert positions[10] - positions[9] == pytest.approx(median_interval_ms, abs=1)
    assert positions[11] == pytest.approx((after[0] - before[0]) / MS, abs=1)


def test_the_gap_rule_is_one_second_or_four_usual_intervals() -> None:
    """`viewers.gaps`, the one rule for clips and replay."""
    finder = GapFinder()
    assert finder.gap_before(T0) is None
    # Before the usual interval is known, only FIRST_GAP_S is a gap: a slow camera's pace.
    assert finder.gap_before(T0 + 5_000 * MS) is None
    finder = GapFinder()
    times = [T0 + i * 250 * MS for i in range(6)]
    assert [finder.gap_before(t) for t in times] == [None] * 6
    assert finder.usual_interval_ns() == 250 * MS
    assert finder.gap_before(times[-1] + 900 * MS) is None  # under 1 s
    assert finder.gap_before(times[-1] + 900 * MS + 1_100 * MS) == 1_100 * MS


def test_a_slow_camera_pace_is_not_a_gap(tmp_path: Path) -> None:
    # Every 600 ms, then holes of 2 s (under 4 x 600 ms: its pace) and 3 s (a gap).
    times = steady_times(6, interval_ms=600)
    times += [times[-1] + 2_000 * MS, times[-1] + 5_000 * MS]
    summary = write_clip(tmp_path / "slow.webm", frames_at(times))
    assert summary.gaps == ((times[-2], times[-1]),)
    assert summary.slates == 1


@pytest.mark.parametrize("extension", FORMATS)
def test_frames_out_of_time_order_are_kept_in_the_order_given(
    tmp_path: Path, extension: str
) -> None:
    # A repeated capture time and one that goes back: each follows the one before by 1 ms.
    times = [T0, T0 + 250 * MS, T0 + 250 * MS, T0 + 100 * MS, T0 + 750 * MS, T0 + 1000 * MS]
    frames = frames_at(times)
    path = tmp_path / f"order{extension}"

    summary = write_clip(path, frames)

    images, positions = read_clip(path)
    assert_same_order(images, [decode(f.jpeg) for f in frames])
    assert positions == pytest.approx([0, 250, 251, 252, 750, 1000], abs=0.5)
    assert (summary.frames_written, summary.slates) == (6, 0)


@pytest.mark.parametrize("extension", FORMATS)
def test_frames_of_other_sizes_are_scaled_to_the_first(tmp_path: Path, extension: str) -> None:
    # As the job shrinks a frame to fit its topic.
    jpegs = list(distinct_jpegs()[:6])
    for index, size in ((2, (320, 240)), (4, (500, 375))):
        jpegs[index] = encode_jpeg(cv2.resize(decode(jpegs[index]), size), 80)
    frames = frames_at(steady_times(6), jpegs)
    path = tmp_path / f"sizes{extension}"

    summary = write_clip(path, frames)

    images, _ = read_clip(path)
    assert (summary.width, summary.height) == (640, 480)
    assert {image.shape for image in images} == {(480, 640, 3)}
    sources = [cv2.resize(decode(j), (640, 480)) for j in jpegs]
    assert_same_order(images, sources)


@pytest.mark.parametrize("extension", FORMATS)
def test_an_odd_size_loses_its_last_column_and_row(tmp_path: Path, extension: str) -> None:
    jpegs = [encode_jpeg(cv2.resize(decode(j), (641, 481)), 90) for j in distinct_jpegs()[:3]]
    path = tmp_path / f"odd{extension}"

    summary = write_clip(path, frames_at(steady_times(3), jpegs))

    images, _ = read_clip(path)
    assert (summary.width, summary.height) == (640, 480)
    assert {image.shape for image in images} == {(480, 640, 3)}
    assert_same_order(images, [decode(j)[:480, :640] for j in jpegs])


def test_undecodable_frames_are_left_out_and_counted(tmp_path: Path) -> None:
    jpegs = list(distinct_jpegs()[:8])
    jpegs[0] = jpegs[0][: len(jpegs[0]) // 2]  # cut short: the clip starts with the next
    jpegs[5] = b"not a jpeg"
    frames = frames_at(steady_times(8), jpegs)
    path = tmp_path / "bad.webm"

    summary = write_clip(path, frames)

    assert (summary.frames_written, summary.frames_unreadable) == (6, 2)
    assert summary.first_capture_ns == frames[1].capture_ts_ns
    images, _ = read_clip(path)
    good = [decode(j) for i, j in enumerate(jpegs) if i not in (0, 5)]
    assert_same_order(images, good)


@pytest.mark.parametrize("jpegs", [[b"\xff\xd8\xff", b"junk"], []], ids=["undecodable", "none"])
def test_no_frame_to_write_raises_and_leaves_no_file(tmp_path: Path, jpegs: list[bytes]) -> None:
    path = tmp_path / "empty.webm"
    with pytest.raises(ClipError, match="no clip written"):
        write_clip(path, frames_at(steady_times(len(jpegs)), jpegs))
    assert not path.exists()


@pytest.mark.parametrize("name", ["clip.avi", "clip.mkv", "clip", "clip.webm.tmp"])
def test_an_unknown_extension_raises_before_reading_frames(tmp_path: Path, name: str) -> None:
    def never() -> Iterator[AnnotatedFrame]:
        raise AssertionError("frames read for a file that cannot be written")
        yield

    with pytest.raises(ValueError, match=r"\.webm.*\.mp4|\.mp4.*\.webm"):
        write_clip(tmp_path / name, never())
    assert not (tmp_path / name).exists()


def test_frames_of_two_cameras_raise_and_leave_no_file(tmp_path: Path) -> None:
    jpeg = distinct_jpegs()[0]
    frames = [annotated(jpeg, T0), annotated(jpeg, T0 + 250 * MS, camera="cam-02")]
    with pytest.raises(ClipError, match="one camera"):
        write_clip(tmp_path / "two.webm", frames)
    assert not (tmp_path / "two.webm").exists()


def test_frames_are_written_as_they_come(tmp_path: Path) -> None:
    path = tmp_path / "stream.webm"
    sizes_seen = []

    def frames() -> Iterator[AnnotatedFrame]:
        jpegs = itertools.islice(itertools.cycle(distinct_jpegs()), 60)
        for frame in frames_at(steady_times(60), jpegs):
            yield frame
            sizes_seen.append(path.stat().st_size if path.exists() else 0)

    summary = write_clip(path, frames())
    # On disk long before the last frame came (WebM holds about 5 s in memory, a cluster).
    assert 0 < sizes_seen[40] < sizes_seen[-1] < summary.bytes


def test_without_pyav_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(DependencyError, match=r"pip install 'camstream\[station\]'"):
        write_clip(tmp_path / "clip.webm", frames_at(steady_times(2)))


@pytest.mark.parametrize(
    ("given_as", "media_type"),
    [
        ("clip.webm", "video/webm"),
        (Path("/tmp/cam-01.MP4"), "video/mp4"),
        (".mp4", "video/mp4"),
        ("webm", "video/webm"),
    ],
)
def test_clip_media_type(given_as: str | os.PathLike[str], media_type: str) -> None:
    assert clip_media_type(given_as) == media_type


def test_clip_media_type_of_an_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="webm"):
        clip_media_type("clip.gif")


# ---- times ----------------------------------------------------------------------------------

NOW = T0 + 123_456_789


@pytest.mark.parametrize(
    ("text", "offset_s"),
    [
        ("now", 0),
        ("-5m", -300),
        ("-90s", -90),
        ("-2h", -7200),
        ("-1d", -86400),
        ("-1h30m", -5400),
        ("+10s", 10),
        (" -5M ", -300),
    ],
)
def test_relative_times(text: str, offset_s: int) -> None:
    assert parse_time(text, NOW) == NOW + offset_s * 1_000_000_000


def test_now_is_the_clock_by_default() -> None:
    before = time.time_ns()
    assert before <= parse_time("now") <= time.time_ns()


@given(
    sign=st.sampled_from("+-"),
    parts=st.fixed_dictionaries(
        {},
        optional={unit: st.integers(0, 999) for unit in "dhms"},
    ).filter(bool),
)
def test_offsets_round_trip(sign: str, parts: dict[str, int]) -> None:
    text = sign + "".join(f"{parts[unit]}{unit}" for unit in "dhms" if unit in parts)
    seconds = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    offset_ns = sum(count * seconds[unit] for unit, count in parts.items()) * 1_000_000_000
    assert parse_time(text, NOW) == (NOW + offset_ns if sign == "+" else NOW - offset_ns)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-05T14:03:00Z", T0),
        ("2026-12-05T14:03Z", T0),
        ("2026-12-05 14:03:07.25Z", T0 + 7_250 * MS),
        ("2026-12-05T14:03:07.123456789+00:00", T0 + 7_123_456_789),
        ("2026-12-05T15:03:00+01:00", T0),
        ("2026-12-05T09:33:00-0430", T0),
    ],
)
def test_iso_times_with_a_zone(text: str, expected: int) -> None:
    assert parse_time(text) == expected


def _epoch_ns(moment: datetime) -> int:
    since = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (since.days * 86_400 + since.seconds) * 1_000_000_000 + since.microseconds * 1000


zones = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2261, 12, 31), timezones=zones
    )
)
def test_iso_with_a_zone_round_trips_through_datetime(moment: datetime) -> None:
    text = moment.isoformat()
    assert parse_time(text) == _epoch_ns(moment)
    assert parse_time(text.replace("+00:00", "Z")) == _epoch_ns(moment)


@pytest.fixture
def berlin_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is Central European, with summer time (a POSIX rule: no tz database)."""
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("berlin_time")
def test_times_without_a_zone_are_local() -> None:
    assert parse_time("2026-12-05T15:03") == T0  # winter: UTC+1
    assert parse_time("2026-07-01T12:00:00") == parse_time("2026-07-01T10:00:00Z")  # summer
    assert parse_time("2026-12-05") == parse_time("2026-12-04T23:00Z")  # local midnight
    # A time alone is today's, the day local at `now`: 00:30 local on the 6th is 23:30Z.
    just_after_midnight = parse_time("2026-12-05T23:30Z")
    assert parse_time("14:03", just_after_midnight) == parse_time("2026-12-06T13:03Z")
    assert parse_time("14:03:07", just_after_midnight) == parse_time("2026-12-06T13:03:07Z")
    assert format_time(T0) == "2026-12-05T15:03:00.000+01:00"


@given(ns=st.integers(0, 2**63 - 1))
def test_format_time_reads_back_to_the_millisecond(ns: int) -> None:
    assert parse_time(format_time(ns)) == ns - ns % MS


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "5m",  # no sign: ago or ahead?
        "-",
        "-5",
        "-5m5m",
        "-30m1h",
        "-1.5h",
        "-١m",  # Arabic-Indic digit
        "2026-13-01T00:00",
        "2026-02-30",
        "2026-12-05T24:00",
        "2026-12-05T14:60",
        "2026-12-05T14:03+24:00",
        "2026-12-05T14:03+01:60",
        "2026-12-05Z",
        "14",
        "14:3",
        "25:00",
        "1969-12-31T23:59Z",  # before the epoch
        "-99999999999d",  # before the epoch
        "2263-01-01T00:00Z",  # past the capture times' range
    ],
)
def test_anything_else_raises_listing_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_time(text, NOW)
    message = str(raised.value)
    assert repr(text) in message
    if "range" not in message:
        assert all(form in message for form in ("now", "-1h30m", "2026-12-05T14:03", "14:03"))


@given(text=st.text())
def test_garbage_never_raises_anything_but_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):  # any other exception fails the test
        parse_time(text, NOW)
