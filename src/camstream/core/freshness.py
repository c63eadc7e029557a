"""Which frames a job past its capacity analyses: the newest ones, and every camera now and then.

Under the `live` freshness policy (the default), a valid frame that is older than
`max_age_ms` when its turn for detection comes is not run through the detector: it goes out
validated, unannotated, with a `skipped` header, so that a job that fell behind its cameras
catches up with the present instead of lagging ever more. Two rules keep that fair:

- in a batch, the newest frame of each starving camera goes first, the longest starved
  first, then a round robin over the cameras, each camera's newest frames first
  (`detection_order`), so the time the batch has goes to the pictures the wall will show,
  spread over every camera when it cannot do all;
- a camera starves (`FreshnessGuard`) when it had no frame analysed for
  `min_analysis_interval_ms` of its own capture time (or this worker has not analysed it
  yet); its frame is analysed however old it is;
- a micro-batch spends at most `batch_budget_ms` analysing, shared by the cameras: a task
  gets its cameras' part of all the live cameras, times the tasks that run at once; past
  it, its frames go out unanalysed as well (`shedding.BatchBudget`), its first excepted.

Under capacity nothing is skipped and the output is that of the `all` policy: the worker's
guard keeps a `LoadMeter`, and its batches shed only while the meter judges the job past
capacity (its cameras' frames need more CPU than the job has, or a frame waited past
`max_lag_ms`); a job seconds behind but keeping pace analyses every frame. Ages use the
cameras' capture clocks: a camera whose clock runs behind looks late and is analysed at
the guard's interval only; the interval itself is measured in the camera's own clock, so
skew cannot starve it.

Plain Python: the worker keeps one guard (`worker_guard`); the per-record function takes it.
Spark hands a partition's next batch to whichever Python worker is idle, so the workers of
one machine share what they analysed through a small SQLite file (`AnalysedStore`): a guard
that knew only its own batches would take a camera another worker just analysed for
starving, and put it before one that really is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from camstream.core.load import LoadMeter

T = TypeVar("T")
log = logging.getLogger(__name__)

# Cameras remembered per worker at most; the least recently analysed are forgotten first
# (a forgotten camera counts as starving: it is analysed, never skipped, by forgetting).
MAX_CAMERAS = 20_000
# A camera that sent nothing for this long no longer counts among the live ones.
SEEN_WINDOW_S = 10.0


class FreshnessGuard:
    """Per camera, the capture time of its newest analysed frame; thread-safe."""

    def __init__(
        self,
        min_interval_ms: int,
        max_cameras: int = MAX_CAMERAS,
        store: AnalysedStore | None = None,
        meter: LoadMeter | None = None,
    ) -> None:
        self.min_interval_ns = int(min_interval_ms) * 1_000_000
        self.max_cameras = max_cameras
        self.store = store
        # Sheds only past capacity, as the meter judges it (None: every batch is judged as
        # past capacity, frame by frame: a guard made for one batch has no history).
        self.meter = meter
        self._analysed: OrderedDict[str, int] = OrderedDict()
        self._claimed: dict[str, int] = {}  # since the last `share`
        self._seen: OrderedDict[str, float] = OrderedDict()  # camera id -> monotonic time
        self._lock = threading.Lock()

    def live_cameras(self, camera_ids: set[str], window_s: float = SEEN_WINDOW_S) -> int:
        """Note that `camera_ids` sent frames now; how many cameras this worker saw lately.

        A task sees only its partition's cameras; the worker sees every partition's over a
        few batches, which is how a task knows its cameras' part of all of them.
        """
        now = time.monotonic()
        with self._lock:
            for camera_id in camera_ids:
                self._seen.pop(camera_id, None)
                self._seen[camera_id] = now
            while self._seen and (
                len(self._seen) > self.max_cameras
                or now - next(iter(self._seen.values())) > window_s
            ):
                self._seen.popitem(last=False)
            return len(self._seen)

    def learn(self, camera_ids: set[str]) -> None:
        """Before a batch: what the other workers analysed of these cameras."""
        if self.store is None or not camera_ids:
            return
        known = self.store.read(camera_ids)
        with self._lock:
            for camera_id, capture_ts_ns in known.items():
                last = self._analysed.get(camera_id)
                if last is None or capture_ts_ns > last:
                    self._remember(camera_id, capture_ts_ns)

    def share(self) -> None:
        """After a batch: tell the other workers what this one analysed."""
        with self._lock:
            claimed, self._claimed = self._claimed, {}
        if self.store is not None and claimed:
            self.store.write(claimed)

    def starving(self, camera_id: str, capture_ts_ns: int, lookahead_ns: int = 0) -> bool:
        """True if this frame's camera had nothing analysed for the interval before it, or
        will have had by its next chance, `lookahead_ns` later."""
        with self._lock:
            return self._starving(camera_id, capture_ts_ns, lookahead_ns)

    def _starving(self, camera_id: str, capture_ts_ns: int, lookahead_ns: int = 0) -> bool:
        last = self._analysed.get(camera_id)
        return last is None or capture_ts_ns + max(0, lookahead_ns) - last >= self.min_interval_ns

    def last_analysed(self, camera_id: str) -> int | None:
        """The capture time of the camera's newest analysed frame, if this worker knows it."""
        with self._lock:
            return self._analysed.get(camera_id)

    def claim(self, camera_id: str, capture_ts_ns: int, fresh: bool, lookahead_ns: int = 0) -> bool:
        """Whether to analyse this frame: fresh ones, and those of a starving camera.

        Answered and recorded at once (under the lock), so that frames of one camera that
        threads take at the same moment cannot both claim the camera's starvation.
        """
        with self._lock:
            if not fresh and not self._starving(camera_id, capture_ts_ns, lookahead_ns):
                return False
            last = self._analysed.get(camera_id)
            newest = capture_ts_ns if last is None else max(last, capture_ts_ns)
            self._remember(camera_id, newest)
            self._claimed[camera_id] = newest
            return True

    def _remember(self, camera_id: str, capture_ts_ns: int) -> None:
        self._analysed.pop(camera_id, None)
        self._analysed[camera_id] = capture_ts_ns
        while len(self._analysed) > self.max_cameras:
            self._analysed.popitem(last=False)

    def cameras(self) -> int:
        with self._lock:
            return len(self._analysed)


class AnalysedStore:
    """Per camera, the capture time of its newest analysed frame, shared by the processes of
    one machine through a SQLite file (WAL: readers never wait for the writer).

    Only what was written in the last `valid_s` counts, and older rows are deleted: the
    file is for workers running now, not a memory of earlier runs (whose cameras' clocks
    may have been ahead). Best effort: a file that cannot be used is logged once and then
    left alone, and the guard goes on with what its own worker knows.
    """

    def __init__(self, path: str, valid_s: float = 60.0) -> None:
        self.path = path
        self.valid_s = valid_s
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._pruned = 0.0

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                _private_folder(os.path.dirname(self.path))
                db = sqlite3.connect(self.path, timeout=0.5, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")  # a lost write only means one more look
                db.execute(
                    "CREATE TABLE IF NOT EXISTS analysed (camera_id TEXT PRIMARY KEY,"
                    " capture_ts_ns INTEGER NOT NULL, written_s REAL NOT NULL)"
                )
                self._db = db
            except Exception as exc:  # best effort: never the batch's failure
                self._give_up(exc)
        return self._db

    def _give_up(self, exc: Exception) -> None:
        self._broken, self._db = True, None
        log.warning(
            "freshness: cannot share analysed frames through %s (%s); each worker goes on"
            " with what it analysed itself",
            self.path,
            exc,
        )

    def read(self, camera_ids: set[str]) -> dict[str, int]:
        db = self._connection()
        if db is None:
            return {}
        ids = sorted(camera_ids)[:MAX_CAMERAS]
        try:
            found: dict[str, int] = {}
            for start in range(0, len(ids), 500):  # SQLite's bound on parameters
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT camera_id, capture_ts_ns FROM analysed"
                    f" WHERE written_s >= ? AND camera_id IN ({marks})"
                )
                found.update(db.execute(query, [time.time() - self.valid_s, *chunk]).fetchall())
            return found
        except Exception as exc:  # best effort: never the batch's failure
            self._give_up(exc)
            return {}

    def write(self, analysed: dict[str, int]) -> None:
        db = self._connection()
        if db is None:
            return
        now = time.time()
        try:
            # A row older than valid_s is replaced whole, else the newest capture wins.
            db.executemany(
                "INSERT INTO analysed VALUES (?, ?, ?) ON CONFLICT(camera_id) DO UPDATE SET"
                " capture_ts_ns = CASE WHEN written_s < ? THEN excluded.capture_ts_ns"
                " ELSE max(capture_ts_ns, excluded.capture_ts_ns) END, written_s = ?",
                [(camera, ts, now, now - self.valid_s, now) for camera, ts in analysed.items()],
            )
            if now - self._pruned > self.valid_s / 4:
                self._pruned = now
                db.execute("DELETE FROM analysed WHERE written_s < ?", (now - self.valid_s,))
        except Exception as exc:  # best effort: never the batch's failure
            self._give_up(exc)


def store_path(scope: str) -> str:
    """The shared file of one job (`scope`: its output topic) for this machine's user, in a
    folder of the user's own under the temporary folder (`_private_folder`)."""
    digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = os.path.join(tempfile.gettempdir(), f"camstream-{uid}")
    return os.path.join(folder, f"freshness-v1-{digest}.sqlite3")


def _private_folder(folder: str) -> None:
    """Make `folder` (mode 0700) or accept it only if it is this user's own and closed to
    others: in a shared temporary folder, another user could have made it first, to feed
    the job false records or to point the file somewhere else."""
    import stat

    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a folder of this user's alone (mode 0700)")


_worker_guards: dict[tuple[int, str], FreshnessGuard] = {}


def worker_guard(min_interval_ms: int, scope: str = "") -> FreshnessGuard:
    """This process's guard (a Spark Python worker keeps it between batches), one per
    `scope` (the job's output topic); with a scope, it shares what it analysed with the
    other workers of this machine (`AnalysedStore`)."""
    guard = _worker_guards.get((min_interval_ms, scope))
    if guard is None:
        store = AnalysedStore(store_path(scope)) if scope else None
        guard = _worker_guards[(min_interval_ms, scope)] = FreshnessGuard(
            min_interval_ms, store=store, meter=LoadMeter()
        )
    return guard


def lookaheads(captures: Sequence[tuple[str, int]]) -> list[int]:
    """Per frame of a batch (camera id, capture time), how much later its camera's next
    chance comes: for each camera's newest frame, the capture time the batch spans for that
    camera (its frames' spacing times their number), which the next batch will span again;
    0 for the others. A camera then is analysed in the last batch before its interval runs
    out, not in the first one after it (which made its gaps the interval plus a batch)."""
    by_camera: dict[str, list[int]] = {}
    for camera_id, capture_ts_ns in captures:
        by_camera.setdefault(camera_id, []).append(capture_ts_ns)
    span = {
        camera_id: (max(times) - min(times)) * len(times) // (len(times) - 1)
        for camera_id, times in by_camera.items()
        if len(times) > 1
    }
    newest = {camera_id: max(times) for camera_id, times in by_camera.items()}
    return [
        span.get(camera_id, 0) if capture_ts_ns == newest[camera_id] else 0
        for camera_id, capture_ts_ns in captures
    ]


def detection_order(
    items: Sequence[T],
    camera_and_capture: Callable[[T], tuple[str, int]],
    guard: FreshnessGuard | None,
    lookahead: Callable[[T], int] = lambda item: 0,
) -> list[T]:
    """`items` in the order to analyse them, a round robin over the cameras: first the
    newest frame of each starving camera, then the newest of each other camera, then each
    camera's second newest, and so on; within a round, the camera analysed longest ago
    first. A batch that cannot analyse all its frames so spreads its time over the cameras
    instead of spending it on the few that sent the newest frames. Python's sort is
    stable: frames captured at the same moment keep the batch's order."""
    by_camera: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_camera.setdefault(camera_and_capture(item)[0], []).append(index)
    # (round, last analysed, newest first, index): round 0 holds the starving cameras'
    # newest frames, round r + 1 every other camera's r-th newest.
    keyed: list[tuple[int, int, int, int]] = []
    for camera_id, indices in by_camera.items():
        indices.sort(key=lambda index: -camera_and_capture(items[index])[1])
        last = -1 if guard is None else guard.last_analysed(camera_id) or -1
        newest = camera_and_capture(items[indices[0]])[1]
        ahead = lookahead(items[indices[0]])
        starving = guard is not None and guard.starving(camera_id, newest, ahead)
        for rank, index in enumerate(indices):
            round_ = 0 if rank == 0 and starving else rank + 1
            keyed.append((round_, last, -camera_and_capture(items[index])[1], index))
    keyed.sort()
    return [items[key[-1]] for key in keyed]
