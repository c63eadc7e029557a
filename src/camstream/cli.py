"""The `camstream` command line: one console script, one subcommand per component.

Settings are options generated from `camstream.config`: each has one name, the same as its
environment variable's, and its help shows that variable and the value now in effect.
Every expected failure is a `CamstreamError`: one line on stderr and its exit code
(`camstream.errors` lists them).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camstream import __version__
from camstream.config import SETTINGS, Config, env_var, flag, parse, secret_values, setting_type
from camstream.errors import (
    CamstreamError,
    ConfigError,
    DependencyError,
    QueryFailedError,
)
from camstream.redaction import configure_logging

if TYPE_CHECKING:
    from camstream.core.contract import AnnotatedFrame

EXIT_NOT_RUNNING = 3


# ---- options generated from the settings ---------------------------------------------------
@functools.cache
def _current() -> Config | None:
    """The configuration in effect now (for the help text), or None if it is invalid."""
    try:
        return Config.from_env()
    except ConfigError:
        return None


def add_settings(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the options of these settings; they default to None (= the environment's)."""
    group = parser.add_argument_group("settings (each defaults to its environment variable)")
    for name in names:
        meta = SETTINGS[name]
        current = _current()
        now = f"invalid ${env_var(name)}" if current is None else getattr(current, name)
        text = f"{meta.help} (env {env_var(name)}; now: {now})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": name, "help": text, "default": None}
        if setting_type(name) is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _option_parser(name)
            kind = setting_type(name)
            kwargs["metavar"] = "N" if kind in (int, float, int | None) else "TEXT"
            if meta.choices:
                kwargs["choices"] = [c for c in meta.choices if c]
                kwargs["metavar"] = "{" + ",".join(kwargs["choices"]) + "}"
        group.add_argument(flag(name), **kwargs)
    parser.set_defaults(settings=(*parser.get_default("settings"), *names))


def _option_parser(name: str) -> Callable[[str], Any]:
    def parse_option(raw: str) -> Any:
        # Before argparse's choices: a removed value is told what to use instead.
        removed = SETTINGS[name].removed_problem(raw)
        if removed:
            raise argparse.ArgumentTypeError(removed)
        try:
            return parse(name, raw)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(env_var(name), flag(name))) from None

    parse_option.__name__ = name  # argparse names the type in its own messages
    return parse_option


def config_from(args: argparse.Namespace, **extra: Any) -> Config:
    """The environment's configuration with the options given on the command line."""
    overrides = {name: getattr(args, name, None) for name in args.settings}
    return Config.from_env(**overrides, **extra)


KAFKA = ("kafka_bootstrap",)
TOPICS = ("input_topic", "output_topic", "dead_letter_topic", "events_topic", "partitions",
          "replication_factor")  # fmt: skip


# ---- types of the other options: a bad value is a usage error (exit 2), never a traceback --
def whole(minimum: int = 1, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number in [minimum, maximum]."""
    span = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"

    def parse_whole(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be a whole number {span} (got {raw!r})")
        return value

    return parse_whole


def positive(raw: str) -> float:
    """A finite number above 0 (frames/s, seconds)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0 (got {raw!r})")
    return value


port = whole(1, 65535)


def host(raw: str) -> str:
    """A listen address: a name or IPv4 address that resolves (the port checks are IPv4)."""
    if not raw.strip() or any(c.isspace() for c in raw):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a host name or IPv4 address")
    try:
        socket.getaddrinfo(raw, None, socket.AF_INET)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise argparse.ArgumentTypeError(f"{raw!r} has no IPv4 address: {reason}") from None
    return raw


def camera_id(raw: str) -> str:
    """A camera id as the frame contract takes it: 1-255 characters of UTF-8 (the Kafka key)."""
    if not 1 <= len(raw) <= 255:
        raise argparse.ArgumentTypeError(f"must be 1 to 255 characters (got {len(raw)})")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        shown = raw.encode("utf-8", "surrogateescape")
        raise argparse.ArgumentTypeError(f"{shown!r} is not valid UTF-8") from None
    return raw


def source(raw: str) -> str:
    if not raw.strip():
        raise argparse.ArgumentTypeError("must name a webcam index (0), a video file or a URL")
    return raw


_MEMORY = re.compile(r"[1-9]\d*([kmgtp]b?|b)?", re.IGNORECASE)


def memory(raw: str) -> str:
    """A JVM memory size as Spark reads it: 512m, 2g, ..."""
    if not _MEMORY.fullmatch(raw.strip()):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a memory size such as 512m or 2g")
    return raw.strip()


# ---- helpers --------------------------------------------------------------------------------
def _stop_event() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM, so that loops end cleanly and flush."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set():  # a second Ctrl-C: give up waiting
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _broker(args: argparse.Namespace) -> Any:
    """The single broker or the cluster in the folder: as asked, or as started there before."""
    from camstream.local.broker import LocalBroker, LocalCluster

    cfg = Config.from_env()
    directory = _dir_option(args, cfg.home_path / "kafka", create=False)
    saved = LocalCluster.load(directory)
    if args.brokers is None and saved is not None:
        return saved
    if (args.brokers or 1) > 1:
        last = args.port + 2 * args.brokers - 1
        if last > 65535:
            raise ConfigError(
                f"--brokers {args.brokers} from --port {args.port} needs ports up to {last},"
                " past 65535: choose a lower --port"
            )
    elif args.port == args.controller_port:
        raise ConfigError(f"--port and --controller-port are both {args.port}: choose two ports")
    if args.action == "start":
        _dir_option(args, directory, create=True)
    if (args.brokers or 1) > 1:
        return LocalCluster(directory, size=args.brokers, host=args.host, base_port=args.port)
    return LocalBroker(
        directory, host=args.host, port=args.port, controller_port=args.controller_port
    )


def _dir_option(args: argparse.Namespace, default: Path, *, create: bool) -> Path:
    """--dir, or `default` (under CAMSTREAM_HOME): a folder, made if `create`."""
    if args.dir:
        return _folder(Path(args.dir), f"--dir {args.dir}", create=create)
    return _folder(default, f"{default} (under CAMSTREAM_HOME)", create=create)


def _folder(path: Path, named: str, *, create: bool) -> Path:
    """`path` if it is a folder or can be one (made if `create`); else a ConfigError."""
    try:
        # The first part of the path that exists must be a folder.
        found = next(p for p in (path, *path.absolute().parents) if p.exists())
        if not found.is_dir():
            raise ConfigError(f"{named}: {found} is a file, not a folder")
        if create:
            path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{named}: cannot use it as a folder ({exc.strerror or exc})") from None
    return path


# The distribution to install when its import name differs.
_DISTRIBUTIONS = {"skimage": "scikit-image"}


def _need(extra: str, what: str, *modules: str) -> None:
    """A clear error instead of an ImportError when an optional part is not installed.

    Imported, not only looked up: a package that is there but broken fails here too.
    """
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            name = _DISTRIBUTIONS.get(module.partition(".")[0], module.partition(".")[0])
            raise DependencyError(
                f"{what} needs {name} ({exc}): pip install 'camstream[{extra}]'"
            ) from None


def _check_spark_master(master: str) -> None:
    """What spark-submit takes, checked before a JVM starts only to say no."""
    if master != "yarn" and not master.startswith(("local", "spark://", "k8s://")):
        raise ConfigError(
            f"CAMSTREAM_SPARK_MASTER / --spark-master {master!r} is not a Spark master URL:"
            " local[*], local[N], spark://HOST:PORT, yarn or k8s://..."
        )


def _start_spark(cfg: Config, conf: dict[str, str]) -> Any:
    """The SparkSession; Spark refusing to start (a bad master or --conf) is one line, exit 2."""
    from camstream.jvm import java_executable
    from camstream.spark.session import spark_session

    java_executable()  # a missing Java is a missing prerequisite (5), not a bad setting
    try:
        return spark_session(cfg, extra_conf=conf)
    except Exception as exc:
        if not type(exc).__module__.startswith(("pyspark.", "py4j.")):
            raise
        try:  # a Py4JJavaError: the Java exception's own one-line summary
            # Only a Py4JJavaError has it (the module check above lets others by too).
            reason = str(exc.java_exception.toString())  # type: ignore[attr-defined]
        except Exception:  # the JVM never came up: it printed its reason above
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        given = " and the --conf given" if conf else ""
        raise ConfigError(
            f"Spark did not start with --spark-master {cfg.spark_master!r}{given}:"
            f" {reason or type(exc).__name__}"
        ) from None


def _spark_conf(pairs: list[str] | None) -> dict[str, str]:
    conf = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {pair!r} is not KEY=VALUE (e.g. spark.executor.memory=2g)")
        conf[key.strip()] = value
    return conf


# ---- subcommands ----------------------------------------------------------------------------
def cmd_setup(args: argparse.Namespace) -> int:
    from camstream.local import jars

    cfg = config_from(args)
    _need("spark", "setup", "pyspark")
    _folder(cfg.cache_path, f"the cache {cfg.cache_path} (CAMSTREAM_CACHE / --cache)", create=True)
    jars.ensure_all(cfg)
    print("camstream: setup complete")
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    broker = _broker(args)
    if args.action == "start":
        bootstrap = broker.start()
        print(f"Kafka is running; bootstrap servers: {bootstrap}")
        print(f"logs and data: {broker.directory}")
        if getattr(broker, "size", 1) > 1:
            print(
                f"topics: export KAFKA_BOOTSTRAP={bootstrap} CAMSTREAM_REPLICATION_FACTOR=3"
                " (min.insync.replicas 2 is set for you)"
            )
    elif args.action == "stop":
        print("Kafka stopped" if broker.stop() else "Kafka was not running")
    else:
        print(broker.status())
        return 0 if broker.is_running() else EXIT_NOT_RUNNING
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from camstream.kafka.topics import ensure_topics, list_topics

    cfg = config_from(args)
    if args.action == "create":
        topics = cfg.pipeline_topics
        created = ensure_topics(cfg, topics)
        for topic in topics:
            print(f"{topic}: {'created' if topic in created else 'exists'}")
    else:
        for topic in list_topics(cfg):
            print(topic)
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    if not args.verbose:
        # A source that cannot be opened is one line of ours, not OpenCV's and FFmpeg's
        # warnings too (`-v` shows them). Read by OpenCV when FFmpeg first opens a source.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    from camstream.cameras.capture import produce

    if not args.verbose:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    stats = produce(
        config_from(args),
        args.source,
        args.camera_id,
        fps=args.fps,
        resize_width=args.resize_width,
        loop=args.loop,
        max_frames=args.max_frames,
        stop=_stop_event(),
    )
    print(f"sent {stats.sent} frames, {stats.acked} acknowledged")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.scene == "still":
        # Its scenes are drawn from scikit-image's bundled images; only the dev extra has it.
        _need("dev", "--scene still", "skimage.data")
    from camstream.cameras.simulate import CameraSimulator

    simulator = CameraSimulator(
        config_from(args),
        args.cameras,
        fps=args.fps,
        resize_width=args.resize_width,
        scene=args.scene,
    )
    stats = simulator.run(max_frames=args.max_frames, duration_s=args.duration, stop=_stop_event())
    print(
        f"simulated {args.cameras} cameras: sent {stats.sent} frames, {stats.acked} acknowledged,"
        f" worst schedule lag {simulator.max_lag_s * 1000:.0f} ms"
    )
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    _need("spark", "the Spark job", "pyspark", "pyarrow")
    from camstream.spark.job import build_query, is_long_running, stop_gracefully
    from camstream.spark.progress import LossMonitor, describe_failure, follow_progress

    cfg = config_from(args)
    conf = _spark_conf(args.conf)
    _check_spark_master(cfg.spark_master)
    stop = _stop_event()
    spark = _start_spark(cfg, conf)
    try:
        query = build_query(spark, cfg)
        print(
            f"analyze: {cfg.input_topic} -> {cfg.output_topic} (dead letters:"
            f" {cfg.dead_letter_topic}) on {cfg.spark_master}, preset {cfg.detection_preset},"
            f" checkpoint {cfg.checkpoint_path}",
            flush=True,
        )
        losses = LossMonitor(cfg)
        try:
            follow_progress(query, lambda line: print(line, flush=True), stop=stop, losses=losses)
        finally:
            losses.close()
        error = query.exception()
        if query.isActive:
            stop_gracefully(spark, query, wait=not is_long_running(cfg))
        if error is not None:
            raise QueryFailedError(f"the query stopped: {describe_failure(error)}")
        print("analyze: stopped", flush=True)
        return 0
    finally:
        try:
            spark.stop()
        except Exception as exc:  # the JVM may already be gone (killed with its group)
            print(f"analyze: Spark was already down: {type(exc).__name__}", file=sys.stderr)


def cmd_workers(args: argparse.Namespace) -> int:
    from camstream.workers import start_workers

    cfg = config_from(args)
    processes = args.processes or os.cpu_count() or 1
    stop = _stop_event()
    group = start_workers(cfg, processes, verbose=args.verbose, wire_logs=args.wire_logs)
    try:
        print(
            f"workers: {cfg.input_topic} -> {cfg.output_topic} (dead letters:"
            f" {cfg.dead_letter_topic}) with {processes} processes in consumer group"
            f" {cfg.worker_group}, preset {cfg.detection_preset}; pids"
            f" {' '.join(map(str, group.pids))}",
            flush=True,
        )
        # Slept, not waited on the event: its handler sets the event, which must not happen
        # while this thread holds the event's lock inside `wait` (a deadlock).
        while not stop.is_set():
            time.sleep(0.25)
            failure = group.failure()
            if failure is not None:
                raise failure
    finally:
        group.stop()
    print("workers: stopped", flush=True)
    return 0


def cmd_spark_cluster(args: argparse.Namespace) -> int:
    from camstream.local.spark_cluster import LocalSparkCluster

    if args.action == "start":
        # Its daemons are pyspark's own Spark distribution.
        _need("spark", "the Spark cluster", "pyspark")
        if args.port == args.webui_port:
            raise ConfigError(f"--port and --webui-port are both {args.port}: choose two ports")
    default = Config.from_env().home_path / "spark-cluster"
    directory = _dir_option(args, default, create=args.action == "start")
    cluster = LocalSparkCluster.load(directory) if args.action != "start" else None
    if cluster is None:
        cluster = LocalSparkCluster(
            directory,
            workers=args.workers,
            cores_per_worker=args.cores_per_worker,
            worker_memory=args.worker_memory,
            host=args.host,
            port=args.port,
            webui_port=args.webui_port,
        )
    if args.action == "start":
        url = cluster.start()
        print(f"Spark standalone cluster is running: {url} (web UI {cluster.webui_url})")
        print(f"run the job on it: camstream analyze --spark-master {url}")
    elif args.action == "stop":
        print("Spark cluster stopped" if cluster.stop() else "Spark cluster was not running")
    else:
        print(cluster.status())
        return 0 if cluster.is_running() else EXIT_NOT_RUNNING
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from camstream.kafka.consume import ReadOptions
    from camstream.viewers.console import run_console_monitor

    options = ReadOptions(
        camera_id=args.camera_id,
        max_items=args.max_frames,
        from_beginning=args.from_beginning,
        idle_timeout_s=args.idle_timeout,
    )
    run_console_monitor(config_from(args), options, stop=_stop_event())
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from camstream.kafka.consume import ReadOptions
    from camstream.viewers.console import run_event_printer

    options = ReadOptions(
        camera_id=args.camera_id,
        max_items=args.max_events,
        from_beginning=args.from_beginning,
        idle_timeout_s=args.idle_timeout,
    )
    run_event_printer(config_from(args), options, as_json=args.json, stop=_stop_event())
    return 0


STATION_MODULES = ("starlette", "uvicorn", "websockets")
CLIP_PROGRESS_S = 2.0


def cmd_clip(args: argparse.Namespace) -> int:
    _need("station", "writing a clip", "av")
    from camstream.viewers.camera_clip import cut_clip
    from camstream.viewers.timespec import format_time, parse_time

    cfg = config_from(args)
    now_ns = time.time_ns()  # one "now" for both ends
    try:
        from_ns, to_ns = parse_time(args.from_time, now_ns), parse_time(args.to_time, now_ns)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if to_ns <= from_ns:
        raise ConfigError(
            f"--to ({format_time(to_ns)}) must be after --from ({format_time(from_ns)})"
        )
    started = time.monotonic()

    def progress(frames: Iterator[AnnotatedFrame]) -> Iterator[AnnotatedFrame]:
        shown = time.monotonic()
        for count, frame in enumerate(frames, 1):
            if time.monotonic() - shown >= CLIP_PROGRESS_S:
                shown = time.monotonic()
                print(
                    f"clip: {count} frames, up to {format_time(frame.capture_ts_ns)}",
                    file=sys.stderr,
                    flush=True,
                )
            yield frame

    landed, summary = cut_clip(
        cfg, args.camera_id, from_ns, to_ns, Path(args.output), _stop_event(), progress
    )
    if landed.before_retention and landed.oldest_ns is not None:
        print(
            f"camstream clip: {format_time(from_ns)} is older than anything kept of"
            f" {args.camera_id}; the clip starts at the oldest available frame,"
            f" {format_time(landed.oldest_ns)}",
            file=sys.stderr,
        )
    gaps = f", {len(summary.gaps)} gaps marked" if summary.gaps else ""
    unreadable = (
        f", {summary.frames_unreadable} unreadable left out" if summary.frames_unreadable else ""
    )
    print(
        f"wrote {args.output}: {summary.frames_written} frames of {args.camera_id} from"
        f" {format_time(summary.first_capture_ns)} to {format_time(summary.last_capture_ns)}"
        f"{gaps}{unreadable}, {summary.bytes / 1e6:.1f} MB in {time.monotonic() - started:.1f} s"
    )
    return 0


def cmd_station(args: argparse.Namespace) -> int:
    _need("station", "the station", *STATION_MODULES)
    from camstream.viewers.station.server import run_station

    # Our handlers: uvicorn shuts down gracefully on SIGTERM/Ctrl-C, then re-raises the
    # signal to them, so that the station exits with status 0 instead of dying by it.
    run_station(config_from(args), stop=_stop_event())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    _need("spark", "the demo's Spark job", "pyspark", "pyarrow")
    if not args.console:
        _need("station", "the station", *STATION_MODULES)
    from camstream.local.demo import run_demo

    return run_demo(
        config_from(args),
        cameras=args.cameras,
        fps=args.fps,
        duration_s=args.duration,
        console=args.console,
    )


# ---- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camstream",
        description="Real-time video analytics on Apache Kafka and Spark Structured Streaming.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad configuration or usage, 3 not running"
        " (status), 4 Kafka unreachable or refused, 5 missing prerequisite, 6 the streaming"
        " query stopped with an error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"camstream {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging (the libraries' from INFO)"
    )
    parser.add_argument(
        "--wire-logs",
        action="store_true",
        help="with -v, kafka-python's and py4j's debug logs too: each request and JVM call"
        " (secrets redacted)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str) -> Any:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func, settings=())
        return p

    def cameras(p: argparse.ArgumentParser, fps: float) -> None:
        p.add_argument("--cameras", type=whole(1), default=3, help="simulated cameras (default: 3)")
        p.add_argument(
            "--fps", type=positive, default=fps, help="frames/s per camera (default: %(default)s)"
        )

    p = add("setup", cmd_setup, "download the Kafka broker and Spark connector jars (once)")
    add_settings(p, "cache")

    p = add("broker", cmd_broker, "start, stop or inspect a local Kafka broker or cluster (KRaft)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--dir", help="broker folder (default: $CAMSTREAM_HOME/kafka)")
    p.add_argument(
        "--brokers",
        type=whole(1),
        help="brokers in the cluster, each its own JVM; node i uses ports PORT+2(i-1) and the"
        " next (default: 1, or what was started in --dir)",
    )
    p.add_argument(
        "--host", type=host, default="127.0.0.1", help="listen address (default: %(default)s)"
    )
    p.add_argument("--port", type=port, default=9092, help="client port (default: %(default)s)")
    p.add_argument(
        "--controller-port",
        type=port,
        default=9093,
        help="KRaft controller port (default: %(default)s)",
    )

    p = add(
        "topics",
        cmd_topics,
        "create the input, output, dead-letter and events topics, or list topics",
    )
    p.add_argument("action", choices=["create", "list"])
    add_settings(p, *KAFKA, *TOPICS, "max_frame_bytes")

    p = add("produce", cmd_produce, "publish a camera, video file or RTSP/HTTP stream")
    p.add_argument(
        "--source", type=source, required=True, help="webcam index (0), video file, or URL"
    )
    p.add_argument(
        "--camera-id", type=camera_id, required=True, help="camera id: the Kafka key (1-255 chars)"
    )
    p.add_argument("--fps", type=positive, help="frame rate cap (default: a file's own rate)")
    p.add_argument("--resize-width", type=whole(1), help="downscale frames wider than this")
    p.add_argument("--loop", action="store_true", help="restart a video file at its end")
    p.add_argument("--max-frames", type=whole(1), help="stop after this many frames")
    add_settings(p, *KAFKA, "input_topic", "partitions", "max_frame_bytes", "jpeg_quality",
                 "min_jpeg_quality", "min_frame_width")  # fmt: skip

    p = add("simulate", cmd_simulate, "simulate N cameras playing the bundled sample video")
    cameras(p, fps=5.0)
    p.add_argument(
        "--scene", choices=("sample", "still"), default="sample",
        help="sample: the sample video (a face moving); still: the labelled still scenes, one"
        " per camera in turn, mostly nothing moving (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--resize-width", type=whole(1), help="downscale the 640x480 sample")
    p.add_argument("--max-frames", type=whole(1), help="frames per camera, then stop")
    p.add_argument("--duration", type=positive, help="seconds, then stop")
    add_settings(p, *KAFKA, "input_topic", "partitions", "jpeg_quality")

    p = add("analyze", cmd_analyze, "run the Spark Structured Streaming face-detection job")
    p.add_argument(
        "--conf",
        action="append",
        metavar="KEY=VALUE",
        help="extra Spark setting, repeatable (e.g. spark.executor.memory=2g,"
        " spark.archives=env.tar.gz#env); $SPARK_CONF_DIR/spark-defaults.conf is read too",
    )
    add_settings(p, *KAFKA, *TOPICS, "spark_master", "checkpoint_location", "starting_offsets",
                 "detection_preset", "motion_gate", "motion_keyframe_s", "motion_pixel_threshold",
                 "motion_min_changed", "motion_regions", "motion_forget_s",
                 "trigger_interval", "max_offsets_per_trigger", "freshness",
                 "max_frame_age_ms", "analysis_budget_ms", "min_analysis_interval_ms",
                 "async_progress",
                 "opencv_threads", "frame_threads", "max_frame_bytes",
                 "jpeg_quality", "min_jpeg_quality", "min_frame_width", "spark_ui",
                 "spark_log_level")  # fmt: skip

    p = add(
        "workers",
        cmd_workers,
        "run the face-detection job as a Kafka consumer group of plain Python processes",
    )
    p.add_argument(
        "--processes",
        type=whole(1),
        help="worker processes (default: the machine's cores)",
    )
    add_settings(p, *KAFKA, *TOPICS, "worker_group", "worker_max_records", "starting_offsets",
                 "detection_preset", "motion_gate", "motion_keyframe_s", "motion_pixel_threshold",
                 "motion_min_changed", "motion_regions", "motion_forget_s", "freshness",
                 "max_frame_age_ms", "analysis_budget_ms", "min_analysis_interval_ms",
                 "opencv_threads", "frame_threads", "max_frame_bytes",
                 "jpeg_quality", "min_jpeg_quality", "min_frame_width")  # fmt: skip

    p = add(
        "spark-cluster",
        cmd_spark_cluster,
        "start, stop or inspect a local Spark standalone cluster (a master and workers)",
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--dir", help="cluster folder (default: $CAMSTREAM_HOME/spark-cluster)")
    p.add_argument("--workers", type=whole(1), default=2, help="worker JVMs (default: %(default)s)")
    p.add_argument(
        "--cores-per-worker", type=whole(1), default=1, help="cores each worker offers (default: 1)"
    )
    p.add_argument(
        "--worker-memory",
        type=memory,
        default="2g",
        help="memory each worker offers (default: %(default)s)",
    )
    p.add_argument(
        "--host", type=host, default="127.0.0.1", help="listen address (default: %(default)s)"
    )
    p.add_argument("--port", type=port, default=7077, help="master port (default: %(default)s)")
    p.add_argument(
        "--webui-port", type=port, default=8089, help="master web UI port (default: %(default)s)"
    )

    p = add("monitor", cmd_monitor, "print annotated frames: camera, seq, delay, faces")
    p.add_argument("--camera-id", type=camera_id, help="only this camera (default: all)")
    p.add_argument("--max-frames", type=whole(1), help="stop after this many frames")
    p.add_argument("--from-beginning", action="store_true", help="replay the topic from its start")
    p.add_argument(
        "--idle-timeout", type=positive, help="stop after this many seconds without frames"
    )
    add_settings(p, *KAFKA, "output_topic", "partitions")

    p = add("events", cmd_events, "print detection events: camera, seq, faces, boxes, carried")
    p.add_argument("--camera-id", type=camera_id, help="only this camera (default: all)")
    p.add_argument("--max-events", type=whole(1), help="stop after this many events")
    p.add_argument("--from-beginning", action="store_true", help="replay the topic from its start")
    p.add_argument(
        "--idle-timeout", type=positive, help="stop after this many seconds without events"
    )
    p.add_argument("--json", action="store_true", help="print each event as its JSON line")
    add_settings(p, *KAFKA, "events_topic", "partitions")

    p = add(
        "clip",
        cmd_clip,
        "write a video file of one camera's annotated frames between two times, read back"
        " from the output topic (Kafka's retention is the recorder)",
    )
    p.add_argument("--camera-id", type=camera_id, required=True, help="the camera")
    p.add_argument(
        "--from",
        dest="from_time",
        required=True,
        help='start: ISO time ("2026-12-05T14:03:00", local without a zone), "14:03" (today),'
        ' "now" or an offset from now ("-5m", "-90s", "-1h30m")',
    )
    p.add_argument("--to", dest="to_time", default="now", help="end, the same forms (default: now)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the video file: .webm (VP8: Chromium, Firefox, VLC) or .mp4 (H.264: also Safari)",
    )
    add_settings(p, *KAFKA, "output_topic", "clip_max_s")

    p = add("station", cmd_station, "serve the browser wall of all cameras (live, with alerts)")
    add_settings(p, *KAFKA, "output_topic", "events_topic", "partitions", "station_host",
                 "station_port", "station_stale_s", "station_forget_after_s",
                 "station_max_cameras", "station_max_frame_memory",
                 "station_allowed_hosts", "station_allowed_origins",
                 "station_max_clients", "insecure_no_token")  # fmt: skip

    p = add("demo", cmd_demo, "run the whole local stack: broker, Spark job, cameras, monitor")
    cameras(p, fps=4.0)
    p.add_argument(
        "--duration", type=positive, help="stop after this many seconds (default: Ctrl-C)"
    )
    p.add_argument(
        "--console", action="store_true", help="print frames in the terminal instead of the station"
    )
    add_settings(p, *KAFKA, "detection_preset", "station_port")
    return parser


def _environment_secrets() -> list[str]:
    """The secrets the environment holds (they come from nowhere else), for the logs to
    redact; none when it does not make a configuration (the command then fails on it)."""
    try:
        return secret_values(Config.from_env())
    except CamstreamError:
        return []


# Options whose values may start with "-" ("--from -5m"): argparse would take "-5m" for an
# option of its own, so "--from -5m" is read as "--from=-5m".
OFFSET_OPTIONS = ("--from", "--to")


def _attach_offsets(argv: Sequence[str]) -> list[str]:
    joined: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        if argument in OFFSET_OPTIONS:
            value = next(arguments, None)
            joined.append(argument if value is None else f"{argument}={value}")
        else:
            joined.append(argument)
    return joined


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_offsets(sys.argv[1:] if argv is None else argv))
    args.verbose = args.verbose or args.wire_logs
    configure_logging(args.verbose, args.wire_logs, _environment_secrets())
    try:
        return args.func(args)
    except CamstreamError as exc:
        kind = "configuration error" if isinstance(exc, ConfigError) else "error"
        print(f"camstream: {kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
