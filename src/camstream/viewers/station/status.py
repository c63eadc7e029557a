"""Each browser's status messages: what changed since its last one, each message bounded.

A client is sent a camera's statistics when they change (a new frame, the camera going
quiet or stale), not every second; the cameras the station forgot since are named
(`removed`), so that the page drops their tiles. A message carries at most
STATUS_MAX_CAMERAS cameras and as many removals, the cameras the client shows first:
the rest follow in the next ones. What a client costs then follows what changes, and no
message grows with the number of cameras.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from camstream.viewers.station.store import FrameStore

STATUS_MAX_CAMERAS = 256


class ClientStatus:
    """The status messages of one client."""

    def __init__(self, store: FrameStore) -> None:
        self.store = store
        # Per camera, its mark (`FrameStore.stat_marks`) when last sent; least recently
        # sent first, so that no camera waits behind others that keep changing.
        self._sent: OrderedDict[str, tuple[int, bool, bool]] = OrderedDict()
        self._last_event_id = 0

    def announced(self, camera_id: str) -> bool:
        """Whether this client has been told of the camera: its page makes no tile for a
        camera it has not heard of, so its frames wait until then."""
        return camera_id in self._sent

    def next_message(
        self, shown: set[str] | None = None, now: float | None = None
    ) -> dict[str, Any]:
        """The next status message; `shown`: the cameras the client shows (None: all)."""
        now = time.time() if now is None else now
        marks = self.store.stat_marks(now)
        removed = [c for c in self._sent if c not in marks][:STATUS_MAX_CAMERAS]
        for camera_id in removed:
            del self._sent[camera_id]
        changed = [c for c in marks if c not in self._sent]  # new to this client first
        changed += [c for c, mark in self._sent.items() if c in marks and marks[c] != mark]
        if shown is not None:
            changed.sort(key=lambda c: c not in shown)  # stable: shown ones first
        cameras = self.store.camera_stats(now, changed[:STATUS_MAX_CAMERAS])
        for camera in cameras:
            self._sent[camera["camera_id"]] = marks[camera["camera_id"]]
            self._sent.move_to_end(camera["camera_id"])
        events = self.store.events(self._last_event_id, now)
        if events:
            self._last_event_id = events[-1].event_id
        return {
            "type": "status",
            "cameras": cameras,
            "removed": removed,
            "camera_count": len(marks),
            "shedding": self.store.shedding(now),
            "events": [e.to_json() for e in events],
        }
