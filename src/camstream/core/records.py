"""A record in, and the dead letter out: the contract's checks on a Kafka record, and the
dead letter that carries a record that failed any stage, with the reason.

Plain Python over bytes: Spark (or anything else) only hands over a record's key, value and
headers. Every dead letter fits its topic, however large the record came (compression lets
in records far over a topic's limit). A broken environment is no record's fault
(`camstream.errors.ENVIRONMENT_FAILURES`): it goes through, and fails the task. The stages in
between are `camstream.core.batch`; the output record, `camstream.core.output`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from camstream.core.contract import (
    H_VALUE_DROPPED,
    FrameMeta,
    Headers,
    RecordSource,
    bounded_key,
    contract_first_ranks,
    cut_headers,
    dead_letter_headers,
    header_bytes,
    headers_dropped_note,
    record_bytes,
)
from camstream.core.jpeg import JpegInfo, check_jpeg
from camstream.core.settings import RecordSettings
from camstream.errors import ENVIRONMENT_FAILURES, FrameError

Clock = Callable[[], int]


@dataclass(frozen=True)
class ProcessedRecord:
    """What the job writes for one input record: to the output or to the dead-letter topic."""

    ok: bool
    key: bytes | None
    value: bytes | None
    headers: Headers
    error: str | None = None
    faces: int = 0
    skipped: bool = False
    fitted: bool = False
    # The motion gate: boxes carried from an earlier frame, or detected on this one.
    carried: bool = False
    analysed: bool = False
    # The detection event (JSON) of an output frame with faces, when events are written.
    event: bytes | None = None


def reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def record_failures(failed: Callable[[Exception], object]) -> Iterator[None]:
    """The per-record guarantee: a record's failure goes to `failed` (for its dead letter),
    and one bad record never stops the job; an environment failure goes through."""
    try:
        yield
    except ENVIRONMENT_FAILURES:
        raise  # not this record's fault: every record would fail alike
    except Exception as exc:
        failed(exc)


@dataclass(frozen=True)
class CheckedFrame:
    """A record that passed the frame contract: its trimmed JPEG, parsed headers and size."""

    key: bytes
    jpeg: bytes
    info: JpegInfo
    meta: FrameMeta
    headers: Headers


def check_record(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    settings: RecordSettings,
) -> CheckedFrame:
    """The contract's checks; raises FrameError naming what is wrong."""
    if value is None:
        raise FrameError("frame value is null")
    if settings.max_frame_bytes is not None and len(value) > settings.max_frame_bytes:
        raise FrameError(
            f"frame value is {len(value)} bytes, over the {settings.max_frame_bytes}-byte limit"
            " (CAMSTREAM_MAX_FRAME_BYTES)"
        )
    meta = FrameMeta.from_headers(headers)
    if key is None:
        raise FrameError(
            f"record key is null: it must be the camera id ({meta.camera_id!r}), which keeps"
            " a camera's frames on one partition and in order"
        )
    if key != meta.camera_id.encode():
        raise FrameError(f"record key {key[:40]!r} differs from camera_id {meta.camera_id!r}")
    info = check_jpeg(value)
    if (info.width, info.height) != (meta.width, meta.height):
        raise FrameError(
            f"width/height headers say {meta.width}x{meta.height}"
            f" but the JPEG is {info.width}x{info.height}"
        )
    jpeg = value[: info.end]  # a trailer after the image is not passed on
    return CheckedFrame(key, jpeg, info, meta, headers)


def dead_letter(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    error: str,
    settings: RecordSettings,
    clock: Clock = time.time_ns,
    source: RecordSource | None = None,
) -> ProcessedRecord:
    """The record as it came, plus the reason, the time and where it came from; it fits the
    dead-letter topic, however large the record came.

    - A key longer than any camera id (MAX_KEY_BYTES) is replaced by its SHA-256, and
      `key_hashed` gives its length.
    - A dead-letter topic smaller than the input topic (someone else made it, with the
      broker's default limit) cannot take the largest records whole: then the value is left
      out, with a header that says so, and the key, headers, reason, source coordinates and
      the value's size still arrive.
    - Headers that even without the value would not fit are cut, the largest first, the
      contract's own last (`headers_dropped` says how many); the value stays if it fits
      beside those kept. The dead letter's own headers always stay.
    """
    failed_ts_ns = safe_clock(clock)
    size = None if value is None else len(value)
    key, hashed = bounded_key(key)
    own = [*dead_letter_headers([], error, failed_ts_ns, source, size), *hashed]
    limit = settings.dead_letter_max_bytes
    if record_bytes(key, value, [*headers, *own]) <= limit:
        return ProcessedRecord(False, key, value, [*headers, *own], error=error)
    note = (
        f"{size or 0} bytes left out: the dead letter would exceed the dead-letter"
        f" topic's max.message.bytes of {limit}"
    )
    value_dropped = (H_VALUE_DROPPED, note.encode())
    if record_bytes(key, None, [*headers, *own, value_dropped]) <= limit:
        return ProcessedRecord(False, key, None, [*headers, *own, value_dropped], error=error)
    # The note at its longest (every original header gone), so that it fits too.
    longest = headers_dropped_note(len(headers), sum(header_bytes(*h) for h in headers))
    room = limit - record_bytes(key, None, [*own, value_dropped, longest])
    kept, count, cut_size = cut_headers(headers, contract_first_ranks(headers), room)
    cut = headers_dropped_note(count, cut_size)
    if record_bytes(key, value, [*kept, *own, cut]) <= limit:
        return ProcessedRecord(False, key, value, [*kept, *own, cut], error=error)
    return ProcessedRecord(False, key, None, [*kept, *own, value_dropped, cut], error=error)


def safe_clock(clock: Clock) -> int:
    try:
        return int(clock())
    except Exception:  # a broken injected clock must not break the guarantee
        return time.time_ns()


def _as_bytes(raw: Any) -> bytes | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    raise TypeError(f"{type(raw).__name__} where bytes were expected")


def normalise(
    key: Any, value: Any, headers: Any
) -> tuple[bytes | None, bytes | None, Headers, str]:
    """Key, value and headers as bytes and (name, bytes | None) pairs, whatever came.

    Spark hands over bytes and a list of {key, value} structs; anything else that cannot
    be read as such is kept as far as possible and named in the returned problem.
    """
    problems: list[str] = []
    try:
        key = _as_bytes(key)
    except TypeError as exc:
        problems.append(f"key: {exc}")
        key = None
    try:
        value = _as_bytes(value)
    except TypeError as exc:
        problems.append(f"value: {exc}")
        value = None
    pairs: Headers = []
    try:
        for header in headers or ():
            name, raw = (header["key"], header["value"]) if isinstance(header, dict) else header
            if isinstance(name, bytes | bytearray):
                name = bytes(name).decode("utf-8", "replace")
            pairs.append((str(name), _as_bytes(raw)))
    except Exception as exc:  # whatever the headers are, the record still gets an outcome
        problems.append(f"headers: {type(exc).__name__}: {exc}")
    return key, value, pairs, "; ".join(problems)
