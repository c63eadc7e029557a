"""Serving the station: Kafka consumer threads feeding the store, and uvicorn serving the app.

One consumer keeps only the latest annotated frame per camera, another feeds the detections
list from the events topic; each reconnects by itself when the broker goes away, and
/healthz says so meanwhile.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from camstream.config import Config
from camstream.kafka.consume import (
    MonitorStats,
    RecordReader,
    parse_annotated_frame,
    parse_detection_event,
    poll_records,
)
from camstream.viewers.station.app import create_app
from camstream.viewers.station.guard import check_exposure, exposed_bind_host
from camstream.viewers.station.store import FrameStore

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

# The largest message the page sends is its subscription: the ids of one page of tiles (at
# most 200) and of the one shown large, JSON-encoded; 201 ids of the contract's longest
# (255 characters of ASCII) take 52 KB. (app.js subscribes to "*" instead of sending more.)
WS_MAX_MESSAGE_BYTES = 64 * 1024


class StationConsumer(threading.Thread):
    """Feeds the store from the output topic (or, with `events=True`, its detections list
    from the events topic); reconnects when the broker goes away."""

    def __init__(
        self,
        cfg: Config,
        store: FrameStore,
        topic: str | None = None,
        from_beginning: bool = False,
        events: bool = False,
    ) -> None:
        super().__init__(name=f"station-{'events' if events else 'frames'}", daemon=True)
        self.from_beginning = from_beginning
        self.cfg = cfg
        self.store = store
        self.events = events
        self.topic = topic or (cfg.events_topic if events else cfg.output_topic)
        self.stop_event = threading.Event()
        self.connected = False
        self.last_error: str | None = None
        # Once for the thread, not per connection: its deduplicator and counts are tables of
        # the store's cameras, forgotten with them.
        self.stats = MonitorStats(cameras=store.cameras)
        parse = parse_detection_event if events else parse_annotated_frame
        self.reader: RecordReader[Any] = RecordReader(self.topic, parse, stats=self.stats)

    def ingest(self, record: Any) -> None:
        """One record into the store; a bad or repeated one is counted and skipped."""
        item = self.reader.read(record)
        if item is None:
            return
        if self.events:
            self.store.add_detection(item)
        else:
            self.store.update(item)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.connected = True
                for records in poll_records(
                    self.cfg, self.topic, self.from_beginning, self.stop_event
                ):
                    for record in records:
                        self.ingest(record)
            except Exception as exc:  # keep serving the page; report in /healthz and retry
                self.connected = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("station consumer: %s; retrying", self.last_error)
                self.stop_event.wait(2.0)
        self.connected = False


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """How the station is served (tests serve it the same way)."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        server_header=False,
    )


def run_station(cfg: Config, topic: str | None = None, stop: threading.Event | None = None) -> None:
    """Serve the station on cfg.station_host:cfg.station_port until Ctrl-C or `stop`."""
    import uvicorn

    host, port, token = cfg.station_host, cfg.station_port, cfg.station_token
    check_exposure(cfg)
    store = FrameStore(
        stale_after_s=cfg.station_stale_s,
        forget_after_s=cfg.station_forget_after_s,
        max_cameras=cfg.station_max_cameras,
        max_frame_memory=cfg.station_max_frame_memory,
        clip_before_s=cfg.clip_before_s,
        clip_after_s=cfg.clip_after_s,
    )
    consumer = StationConsumer(cfg, store, topic)
    consumer.start()
    detections = StationConsumer(cfg, store, events=True)
    detections.start()
    allowed_hosts = cfg.station_allowed_host_names
    bind_host = exposed_bind_host(host)
    if bind_host is not None:
        allowed_hosts = (*allowed_hosts, bind_host)  # the address it was told to serve
    app = create_app(
        store,
        token=token,
        consumer=consumer,
        allowed_hosts=allowed_hosts,
        allowed_origins=cfg.station_allowed_origin_list,
        max_clients=cfg.station_max_clients,
        # Replay and clips read back the topic the wall shows.
        cfg=cfg if topic is None else cfg.replace(output_topic=topic),
    )
    server = uvicorn.Server(uvicorn_config(app, host, port))
    if stop is not None:

        def watch() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=watch, daemon=True).start()
    url = f"http://{host}:{port}/" + ("?token=..." if token else "")
    print(f"station: serving the camera wall on {url}", flush=True)
    try:
        server.run()
    finally:
        for thread in (consumer, detections):
            thread.stop_event.set()
        for thread in (consumer, detections):
            thread.join(timeout=10)
