"""The `live` freshness policy: past capacity the newest frames are analysed, no camera starves,
and under capacity nothing is skipped (camstream.core.freshness, through process_batch)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camstream.config import Config
from camstream.core.batch import process_batch, process_batch_parts
from camstream.core.contract import FrameMeta, headers_to_dict
from camstream.core.freshness import AnalysedStore, FreshnessGuard, detection_order, lookaheads
from camstream.core.jpeg import encode_jpeg
from camstream.core.load import HOLD_S, WARMUP_S, LoadMeter
from camstream.core.settings import DETECTION_PRESETS, RecordSettings

MS = 1_000_000
LIVE = RecordSettings(
    detection=DETECTION_PRESETS["fast"], max_age_ms=1000, min_analysis_interval_ms=1500
)
JPEG = encode_jpeg(np.full((48, 64, 3), 128, np.uint8), 80)


def frame(camera_id: str, seq: int, capture_ts_ns: int) -> tuple[bytes, bytes, list]:
    meta = FrameMeta(camera_id, seq, capture_ts_ns, 64, 48)
    return camera_id.encode(), JPEG, meta.to_headers()


def test_the_default_is_live_and_all_analyses_every_frame() -> None:
    live = Config().record_settings()
    assert Config().freshness == "live" and live.max_age_ms == 1000
    assert live.min_analysis_interval_ms == 1500
    every = Config(freshness="all").record_settings()
    assert every.max_age_ms is None and every.min_analysis_interval_ms is None
    # The name before 0.5 still means the same policy.
    assert Config(freshness="latest").record_settings() == live


def test_a_starving_camera_is_analysed_however_old_and_goes_first() -> None:
    guard = FreshnessGuard(1500)
    now = 100_000 * MS
    # Both cameras' frames are all 5 s old by their turn: only the guard lets any through.
    batch = [
        frame(cam, seq, now - 5000 * MS - (3 - seq) * 250 * MS)
        for seq in range(4)
        for cam in ("a", "b")
    ]
    results = process_batch(batch, LIVE, None, map, lambda: now, guard=guard)
    analysed = [(r.key, headers_to_dict(r.headers)["seq"]) for r in results if not r.skipped]
    # Each camera's newest frame, and only it: the others are within the interval of it.
    assert sorted(analysed) == [(b"a", "3"), (b"b", "3")]
    assert all(r.ok for r in results)
    # The next batch, 1 s of capture later: not starving yet, all skipped.
    later = [frame(cam, 4, now - 4000 * MS) for cam in ("a", "b")]
    assert all(r.skipped for r in process_batch(later, LIVE, None, map, lambda: now, guard=guard))
    # 1.5 s after the last analysed frame: starving again, analysed.
    again = [frame(cam, 5, now - 5000 * MS + 1500 * MS) for cam in ("a", "b")]
    results = process_batch(again, LIVE, None, map, lambda: now, guard=guard)
    assert not any(r.skipped for r in results)


def test_the_guard_forgets_the_least_recently_analysed_camera_first() -> None:
    guard = FreshnessGuard(1500, max_cameras=2)
    for camera_id in ("a", "b", "c"):
        assert guard.claim(camera_id, 0, fresh=True)
    assert guard.cameras() == 2
    assert guard.starving("a", 1)  # forgotten: starving, so analysed, never skipped by it
    assert not guard.starving("c", 1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 4000)), min_size=1, max_size=12),
        min_size=1,
        max_size=6,
    ),
    batch_gap_ms=st.integers(0, 3000),
)
def test_fresh_frames_are_never_skipped_and_no_camera_starves(
    batches: list[list[tuple[str, int]]], batch_gap_ms: int
) -> None:
    """Batches of frames of three cameras, each frame `age` ms old by its turn (batches
    `batch_gap_ms` apart): a frame no older than max_age_ms is always analysed; in every
    batch, a camera whose newest frame comes `min_analysis_interval_ms` or more after its
    last analysed one (or that was never analysed) has that frame analysed; and without
    the policy nothing is skipped."""
    guard = FreshnessGuard(LIVE.min_analysis_interval_ms or 0)
    interval_ns = (LIVE.min_analysis_interval_ms or 0) * MS
    seqs: dict[str, int] = {}
    last_analysed: dict[str, int] = {}
    for number, specs in enumerate(batches):
        now = 10**15 + number * batch_gap_ms * MS
        batch = []
        for camera_id, age_ms in specs:
            seqs[camera_id] = seqs.get(camera_id, -1) + 1
            batch.append(frame(camera_id, seqs[camera_id], now - age_ms * MS))
        results = process_batch(batch, LIVE, None, map, lambda now=now: now, guard)
        newest: dict[str, int] = {}
        for (camera_id, age_ms), result in zip(specs, results, strict=True):
            assert result.ok
            if age_ms <= (LIVE.max_age_ms or 0):
                assert not result.skipped, "a fresh frame was skipped"
            newest[camera_id] = max(newest.get(camera_id, 0), now - age_ms * MS)
        for camera_id, capture in newest.items():
            before = last_analysed.get(camera_id)
            if before is None or capture - before >= interval_ns:
                # Its newest frame (one of them, if several were captured at that moment).
                analysed_newest = [
                    not r.skipped
                    for (c, age_ms), r in zip(specs, results, strict=True)
                    if c == camera_id and now - age_ms * MS == capture
                ]
                assert any(analysed_newest), f"camera {camera_id} starved"
        for (camera_id, age_ms), result in zip(specs, results, strict=True):
            if not result.skipped:
                capture = now - age_ms * MS
                last_analysed[camera_id] = max(last_analysed.get(camera_id, capture), capture)
        every = replace(LIVE, max_age_ms=None)
        assert not any(
            r.skipped for r in process_batch(batch, every, None, map, lambda now=now: now)
        )


def test_a_batch_past_its_budget_analyses_only_starving_cameras_newest_first() -> None:
    """Past capacity the batch's time runs out before its frames do: the frames left when
    its budget is spent go out unanalysed ("shed"), but a starving camera's frame does not."""
    budget = replace(LIVE, batch_budget_ms=150)  # its 2 cameras are all the live ones
    guard = FreshnessGuard(1500)
    now = [10**15]

    def clock() -> int:  # each reading 60 ms after the one before
        now[0] += 60 * MS
        return now[0]

    start = now[0]
    known = [frame("known", seq, start + seq * MS) for seq in range(4)]
    guard.claim("known", start, fresh=True)  # analysed a moment ago: not starving
    fresh_camera = frame("new", 0, start)  # never analysed: starving
    results = process_batch([*known, fresh_camera], budget, None, map, clock, guard)
    reasons = [headers_to_dict(r.headers).get("skipped") for r in results]
    assert reasons[4] is None  # the starving camera, first, however late
    # Then the newest frame of the known camera inside the budget; the others shed.
    assert reasons[3] is None
    assert all(reason and reason.startswith("shed: ") for reason in reasons[:3]), reasons


def test_a_batch_gets_its_cameras_part_of_the_budget() -> None:
    """Cameras hash unevenly to partitions: a task's part of the micro-batch's budget is its
    cameras' part of the live cameras (times the tasks that run at once), so each camera
    gets the same time whichever partition it is on."""
    cfg = Config(analysis_budget_ms=400)
    assert cfg.record_settings(task_slots=2).batch_budget_ms == 400
    assert cfg.record_settings(task_slots=2).task_slots == 2
    assert Config(freshness="all").record_settings(task_slots=2).batch_budget_ms is None
    guard = FreshnessGuard(1500)
    assert guard.live_cameras({"a", "b", "c", "d"}) == 4
    now = [10**15]

    def clock() -> int:  # each reading 60 ms after the one before
        now[0] += 60 * MS
        return now[0]

    settings = replace(LIVE, batch_budget_ms=400, task_slots=2)
    for camera_id in "abcd":  # each has had a frame analysed: none starving
        guard.claim(camera_id, now[0], fresh=True)
    batch = [frame("a", seq, now[0] + seq * MS) for seq in range(6)]
    results = process_batch(batch, settings, None, map, clock, guard)
    reasons = [headers_to_dict(r.headers).get("skipped") or "" for r in results]
    # 400 ms x 2 tasks at once x 1 camera of 4 = 200 ms for this batch.
    assert any(r.endswith("of 200 ms analysing") for r in reasons), reasons


def test_a_batch_spreads_its_time_over_the_cameras_newest_first() -> None:
    """Past its budget a batch has analysed one frame of each camera before a second of any:
    a camera whose frames came in a moment later does not take the batch's time alone."""
    guard = FreshnessGuard(1500)
    now = 10**15
    for camera_id in "ab":  # both analysed a moment ago: neither starving
        guard.claim(camera_id, now - 100 * MS, fresh=True)
    frames = [("a", now + seq * MS) for seq in range(3)] + [
        ("b", now - 50 * MS + seq * MS) for seq in range(3)
    ]
    order = detection_order(frames, lambda item: item, guard)
    assert [camera for camera, _ in order] == ["a", "b", "a", "b", "a", "b"]
    assert order[0] == ("a", now + 2 * MS) and order[1] == ("b", now - 48 * MS)


def test_a_camera_is_analysed_in_the_last_batch_before_its_interval_runs_out() -> None:
    """A batch spans about as much capture time as the next one will: a camera whose next
    chance would come after its interval ran out is starving now (its gaps stay within the
    interval instead of the interval plus a batch)."""
    guard = FreshnessGuard(1500)
    start = 10**15
    guard.claim("a", start, fresh=True)
    # 1 s of frames, the newest 1.1 s after the last analysed: the next batch's would be 2.1 s.
    captures = [("a", start + (100 + 250 * n) * MS) for n in range(5)]
    ahead = lookaheads(captures)
    assert ahead == [0, 0, 0, 0, 1250 * MS]  # 4 gaps of 250 ms, times 5 frames
    assert guard.starving("a", captures[-1][1], ahead[-1])
    assert not guard.starving("a", captures[-1][1])
    # Batches longer than the interval: each camera's newest frame, in each of them.
    assert guard.starving("a", start + 1 * MS, 3600 * 10**9)
    results = process_batch(
        [frame("a", n, capture) for n, (_, capture) in enumerate(captures)],
        replace(LIVE, max_age_ms=1),  # every frame too old: only starvation analyses
        None,
        map,
        lambda: start + 5000 * MS,
        guard,
    )
    assert [r.skipped for r in results] == [True, True, True, True, False]


def test_the_workers_of_a_machine_share_what_they_analysed(tmp_path: Path, caplog) -> None:
    """Spark gives a partition's next batch to any idle Python worker: what one analysed,
    the others know before their next batch (`AnalysedStore`)."""
    path = str(tmp_path / "private" / "analysed.sqlite3")  # the folder is made, mode 0700
    one, other = (FreshnessGuard(1500, store=AnalysedStore(path)) for _ in range(2))
    start = 10**15
    assert one.claim("a", start, fresh=True)
    assert other.starving("a", start + 500 * MS)  # not told yet
    one.share()
    other.learn({"a", "b"})
    assert not other.starving("a", start + 500 * MS)
    assert other.starving("a", start + 1500 * MS) and other.starving("b", start)
    # Only what was written lately counts: an earlier run's cameras are not remembered.
    late = FreshnessGuard(1500, store=AnalysedStore(path, valid_s=0.0))
    late.learn({"a"})
    assert late.starving("a", start + 500 * MS)
    # A file that cannot be used is said once; the guard goes on alone.
    # (here a folder open to other users, which another user could have made first)
    shared = tmp_path / "open"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    broken = FreshnessGuard(1500, store=AnalysedStore(str(shared / "x.db")))
    broken.claim("a", start, fresh=True)
    broken.share()
    broken.learn({"a"})
    assert not broken.starving("a", start + 500 * MS)
    assert "cannot share analysed frames" in caplog.text and "0700" in caplog.text
    assert not (shared / "x.db").exists()


# ---- shedding only past capacity (camstream.core.load) ------------------------------------
def _camera_frames(cameras: int, fps: float, seconds: float, start_ns: int) -> list[tuple]:
    """(camera id, seq, capture time) of `cameras` cameras at `fps` for `seconds`."""
    step = int(1e9 / fps)
    return [
        (f"cam-{c}", seq, start_ns + seq * step)
        for seq in range(int(seconds * fps))
        for c in range(cameras)
    ]


def test_the_meter_weighs_the_cameras_rates_by_a_frames_cost_against_the_cores() -> None:
    meter = LoadMeter(window_s=10.0)
    assert meter.utilisation(2) is None and not meter.past_capacity(2)  # nothing known yet
    # 3 cameras x 4 frames/s, seen by this meter one batch in two (another worker has the
    # rest): the seq numbers still give each camera's rate.
    frames = _camera_frames(3, 4.0, 10.0, 0)
    for start in range(0, len(frames), 24):
        if start // 24 % 2 == 0:
            meter.frames(frames[start : start + 12], now=1.0)
    meter.cost(150 * MS)  # 150 ms of CPU a frame: 12 frames/s need 1.8 cores
    assert meter.utilisation(2) == pytest.approx(0.9, rel=0.01)
    assert meter.utilisation(4) == pytest.approx(0.45, rel=0.01)
    assert not meter.past_capacity(4)
    # Hysteresis: past capacity above 0.9, and until back under 0.9 x 0.85.
    meter.cost(200 * MS)  # the average moves by a fifth: 160 ms, 0.96
    assert meter.past_capacity(2)
    for _ in range(3):
        meter.cost(135 * MS)  # toward 135 ms: 0.86 > 0.765, still past capacity
    assert 0.765 < (meter.utilisation(2) or 0) < 0.9 and meter.past_capacity(2)
    for _ in range(20):
        meter.cost(100 * MS)
    assert not meter.past_capacity(2)
    # A camera silent for the window no longer counts.
    meter.frames([("cam-0", 1000, 10**12), ("cam-0", 1001, 10**12 + 250 * MS)], now=30.0)
    assert meter.utilisation(2) == pytest.approx(4 * 0.1 / 2, rel=0.01)


def test_a_lag_past_the_limit_brings_the_threshold_down_to_the_load_it_had() -> None:
    meter = LoadMeter()
    meter.frames(_camera_frames(2, 4.0, 2.0, 0), now=1.0)
    meter.cost(100 * MS, now=1.0)  # 8 frames/s x 100 ms over 2 cores: 0.4, under the threshold
    assert not meter.past_capacity(2, now=1.0)
    # A lag in the first WARMUP_S is the job's start: past capacity for HOLD_S, no more.
    meter.lagging(2, now=2.0)
    assert meter.past_capacity(2, now=2.0 + HOLD_S - 1) and meter.threshold == 0.9
    assert not meter.past_capacity(2, now=2.0 + HOLD_S + 1)
    # Yet a frame waited past the lag limit: something else takes the cores.
    meter.lagging(2, now=WARMUP_S + 100.0)
    assert meter.threshold == pytest.approx(0.4 * 0.85)
    assert meter.past_capacity(2, now=WARMUP_S + 100.0 + HOLD_S + 1)  # and stays so at this load
    for _ in range(20):
        meter.cost(50 * MS)  # half the load: 0.2, under 0.34 x 0.85
    assert meter.past_capacity(
        2, now=WARMUP_S + 100.0 + HOLD_S - 1
    )  # held for HOLD_S whatever the load
    assert not meter.past_capacity(2, now=WARMUP_S + 100.0 + HOLD_S + 1)
    meter.lagging(2, now=WARMUP_S + 200.0)
    assert meter.threshold >= 0.3  # never below MIN_THRESHOLD


def _live_guard() -> FreshnessGuard:
    return FreshnessGuard(LIVE.min_analysis_interval_ms or 0, meter=LoadMeter())


def test_under_capacity_a_job_seconds_behind_analyses_every_frame() -> None:
    """A job that runs 3 s behind its cameras but keeps pace (the fast preset on tiny frames
    costs next to nothing) skips nothing: its output is that of `all`. A frame that waited
    past the lag limit shows it past capacity after all, and from then on it sheds."""
    settings_ = replace(LIVE, max_lag_ms=5000)
    guard = _live_guard()
    now = 10**15
    for number in range(4):
        now += 1000 * MS
        batch = [
            frame(cam, number * 4 + i, now - 3000 * MS - (3 - i) * 250 * MS)
            for i in range(4)
            for cam in ("a", "b", "c")
        ]
        results = process_batch(batch, settings_, None, map, lambda now=now: now, guard=guard)
        assert all(r.ok for r in results) and not any(r.skipped for r in results)
    assert not (guard.meter and guard.meter.past_capacity(1))
    # 6 s behind: past the lag limit. The first such frame trips the meter; frames then go
    # by the live rules (each camera's newest analysed, as it is starving).
    now += 1000 * MS
    batch = [
        frame(cam, 16 + i, now - 6000 * MS - (3 - i) * 250 * MS)
        for i in range(4)
        for cam in ("a", "b", "c")
    ]
    results = process_batch(batch, settings_, None, map, lambda: now, guard=guard)
    assert any(r.skipped for r in results) and all(r.ok for r in results)
    assert guard.meter is not None and guard.meter.past_capacity(1)


def test_past_capacity_frames_that_skip_detection_anyway_go_out_first_in_order() -> None:
    """Frames that would skip detection however soon their turn came (older than max_age,
    of a camera not starving, not its newest) go out in a first part, before the others
    are analysed; each camera's frames stay in order across the parts."""
    guard = FreshnessGuard(1500)  # no meter: every batch is past capacity
    now = 10**15
    for camera_id in ("a", "b"):  # analysed lately: not starving
        guard.claim(camera_id, now - 1100 * MS, fresh=True)
    # c was never analysed: it starves, and its newest frame is analysed however old.
    batch = [
        frame(cam, seq, now - (2000 - seq * 200) * MS)
        for seq in range(6)
        for cam in ("a", "b", "c")
    ]
    parts = list(process_batch_parts(batch, LIVE, None, map, lambda: now, guard))
    assert len(parts) == 2
    first, rest = ([index for index, _ in part] for part in parts)
    assert sorted(first + rest) == list(range(len(batch)))
    assert first == sorted(first) and rest == sorted(rest)
    early = {(batch[i][0], headers_to_dict(batch[i][2])["seq"]) for i in first}
    # seq 0-4 are 2000-1200 ms old (> 1000); seq 5, 1000 ms, is each camera's newest.
    assert early == {(cam, str(seq)) for cam in (b"a", b"b", b"c") for seq in range(5)}
    assert all(result.skipped and result.ok for part in parts[:1] for _, result in part)
    newest_of_c = next(
        r for _, r in parts[1] if r.key == b"c" and headers_to_dict(r.headers)["seq"] == "5"
    )
    assert not newest_of_c.skipped and newest_of_c.analysed  # starving: analysed, 1000 ms old
    # Each camera's frames in order across the parts: the first part's are its oldest.
    for camera_id in (b"a", b"b", b"c"):
        seqs = [
            int(headers_to_dict(r.headers)["seq"])
            for part in parts
            for _, r in part
            if r.key == camera_id
        ]
        assert seqs == sorted(seqs), camera_id
    # The same outcomes as the whole batch at once (a fresh guard in the same state).
    again = FreshnessGuard(1500)
    for camera_id in ("a", "b"):
        again.claim(camera_id, now - 1100 * MS, fresh=True)
    whole = process_batch(batch, LIVE, None, map, lambda: now, again)
    by_index = dict(pair for part in parts for pair in part)
    assert [r.skipped for r in whole] == [by_index[i].skipped for i in range(len(batch))]
    # Under `all`, or with nothing to skip early, one part.
    every = replace(LIVE, max_age_ms=None)
    assert len(list(process_batch_parts(batch, every, None, map, lambda: now, guard))) == 1


def test_past_capacity_frames_beyond_what_a_batch_analyses_go_out_first() -> None:
    """Past capacity, a batch expects to analyse about what its predecessors did in as much
    budget (with a margin); frames beyond that in the detection order, however young, go
    out before the analysis, each camera's oldest first."""
    meter = LoadMeter()
    assert meter.forecast(400) is None  # nothing known yet
    meter.analysed(10, 400)
    assert meter.forecast(400) == 16 and meter.forecast(200) == 9  # 1.5 x, plus one
    meter.analysed(0, 400)
    assert meter.forecast(400) == 13  # a moving average: 8 per 400 ms

    guard = FreshnessGuard(1500, meter=LoadMeter())
    assert guard.meter is not None
    guard.meter.lagging(1)  # past capacity (a lag proves it)
    settings_ = replace(LIVE, batch_budget_ms=400)
    guard.meter.analysed(1, 400)  # a batch analyses one frame: the candidates are 3
    now = 10**15
    for camera_id in ("a", "b", "c"):
        guard.claim(camera_id, now - 500 * MS, fresh=True)  # not starving
    # 3 cameras x 4 frames, all younger than max_age (1000 ms).
    batch = [
        frame(cam, seq, now - (400 - seq * 100) * MS) for seq in range(4) for cam in ("a", "b", "c")
    ]
    parts = list(process_batch_parts(batch, settings_, None, map, lambda: now, guard))
    assert len(parts) == 2
    first = [index for index, _ in parts[0]]
    # Candidates: each camera's newest (seq 3); the rest are shed at once, oldest first.
    assert {(batch[i][0], headers_to_dict(batch[i][2])["seq"]) for i in first} == {
        (cam, str(seq)) for cam in (b"a", b"b", b"c") for seq in range(3)
    }
    reasons = {headers_to_dict(r.headers)["skipped"] for _, r in parts[0]}
    assert reasons == {"shed: past capacity, its camera's newer frames go first"}
    assert all(r.analysed and not r.skipped for _, r in parts[1])
