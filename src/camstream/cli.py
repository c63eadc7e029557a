"""The `camstream` command line: one console script, one subcommand per component."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from camstream.config import DETECTION_PRESETS, ENV_VARS, Config, ConfigError

EXIT_USAGE = 2


def _env_help(setting: str, text: str) -> str:
    """Help text that shows the environment variable and the value now in effect."""
    var = ENV_VARS[setting]
    try:
        current = getattr(Config.from_env(), setting)
    except ConfigError:
        current = f"invalid ${var}"
    return f"{text} (env {var}; now: {current})"


def _kafka_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help=_env_help("bootstrap_servers", "Kafka bootstrap servers"),
    )
    parser.add_argument(
        "--partitions",
        type=int,
        help=_env_help("partitions", "partitions for topics this command creates"),
    )


def _camera_options(parser: argparse.ArgumentParser, fps: float) -> None:
    parser.add_argument(
        "--cameras", type=int, default=3, help="simulated cameras (default: %(default)s)"
    )
    parser.add_argument(
        "--fps", type=float, default=fps, help="frames/s per camera (default: %(default)s)"
    )


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


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    overrides = {
        "bootstrap_servers": getattr(args, "bootstrap_servers", None),
        "partitions": getattr(args, "partitions", None),
        **extra,
    }
    return Config.from_env(**overrides)


def _broker(args: argparse.Namespace) -> Any:
    """The single broker or the cluster in the folder: as asked, or as started there before."""
    from camstream.broker import LocalBroker, LocalCluster

    cfg = Config.from_env()
    directory = Path(args.dir) if args.dir else cfg.home_path / "kafka"
    if args.brokers is not None and args.brokers < 1:
        raise ConfigError(f"--brokers must be 1 or more (got {args.brokers})")
    saved = LocalCluster.load(directory)
    if args.brokers is None and saved is not None:
        return saved
    if (args.brokers or 1) > 1:
        return LocalCluster(directory, size=args.brokers, host=args.host, base_port=args.port)
    return LocalBroker(
        directory, host=args.host, port=args.port, controller_port=args.controller_port
    )


# ---- subcommands ----------------------------------------------------------------------------
def cmd_setup(args: argparse.Namespace) -> int:
    from camstream import deps

    deps.ensure_all()
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
        return 0 if broker.is_running() else 3
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from camstream.kafka_io import ensure_topics, make_admin

    cfg = _config(args)
    if args.action == "create":
        topics = [cfg.input_topic, cfg.output_topic, cfg.dead_letter_topic]
        created = ensure_topics(cfg, topics)
        for topic in topics:
            print(f"{topic}: {'created' if topic in created else 'exists'}")
    else:
        admin = make_admin(cfg)
        try:
            for topic in sorted(admin.list_topics()):
                print(topic)
        finally:
            admin.close()
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from camstream.producer import produce

    cfg = _config(args, jpeg_quality=args.jpeg_quality, max_frame_bytes=args.max_frame_bytes)
    stats = produce(
        cfg,
        args.source,
        args.camera_id,
        topic=args.topic,
        fps=args.fps,
        resize_width=args.resize_width,
        loop=args.loop,
        max_frames=args.max_frames,
        stop=_stop_event(),
    )
    print(f"sent {stats.sent} frames, {stats.acked} acknowledged")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from camstream.simulate import CameraSimulator

    cfg = _config(args, jpeg_quality=args.jpeg_quality)
    simulator = CameraSimulator(
        cfg, args.cameras, fps=args.fps, topic=args.topic, resize_width=args.resize_width
    )
    stats = simulator.run(max_frames=args.max_frames, duration_s=args.duration, stop=_stop_event())
    print(
        f"simulated {args.cameras} cameras: sent {stats.sent} frames, {stats.acked} acknowledged,"
        f" worst schedule lag {simulator.max_lag_s * 1000:.0f} ms"
    )
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from camstream.spark_job import (
        LossMonitor,
        build_query,
        follow_progress,
        is_continuous,
        spark_session,
        stop_gracefully,
    )

    cfg = _config(
        args,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        dead_letter_topic=args.dlq_topic,
        checkpoint_location=args.checkpoint_location,
        starting_offsets=args.starting_offsets,
        master=args.master,
        detection_preset=args.preset,
        trigger_interval=args.trigger,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        freshness_policy=args.freshness,
        max_frame_age_ms=args.max_frame_age_ms,
    )
    stop = _stop_event()
    spark = spark_session(cfg, extra_conf=_spark_conf(args.conf))
    try:
        query = build_query(spark, cfg)
        print(
            f"analyze: {cfg.input_topic} -> {cfg.output_topic} (dead letters:"
            f" {cfg.dead_letter_topic}) on {cfg.master}, preset {cfg.detection_preset},"
            f" checkpoint {cfg.checkpoint_path}",
            flush=True,
        )
        # Continuous processing reports no per-batch offsets to check.
        losses = None if is_continuous(cfg) else LossMonitor(cfg)
        try:
            follow_progress(query, lambda line: print(line, flush=True), stop=stop, losses=losses)
        finally:
            if losses is not None:
                losses.close()
        error = query.exception()
        if query.isActive:
            stop_gracefully(spark, query)
        if error is not None:
            print(f"analyze: the query failed: {error}", file=sys.stderr)
            return 1
        print("analyze: stopped", flush=True)
        return 0
    finally:
        try:
            spark.stop()
        except Exception as exc:  # the JVM may already be gone (killed with its group)
            print(f"analyze: Spark was already down: {type(exc).__name__}", file=sys.stderr)


def _spark_conf(pairs: list[str] | None) -> dict[str, str]:
    conf = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {pair!r} is not KEY=VALUE (e.g. spark.executor.memory=2g)")
        conf[key.strip()] = value
    return conf


def cmd_spark_cluster(args: argparse.Namespace) -> int:
    from camstream.spark_cluster import LocalSparkCluster

    directory = Path(args.dir) if args.dir else Config.from_env().home_path / "spark-cluster"
    cluster = LocalSparkCluster.load(directory) if args.action != "start" else None
    if cluster is None:
        if args.workers < 1 or args.cores_per_worker < 1:
            raise ConfigError("--workers and --cores-per-worker must be 1 or more")
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
        print(f"run the job on it: camstream analyze --master {url}")
    elif args.action == "stop":
        print("Spark cluster stopped" if cluster.stop() else "Spark cluster was not running")
    else:
        print(cluster.status())
        return 0 if cluster.is_running() else 3
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from camstream.monitor import run_console_monitor

    cfg = _config(args)
    run_console_monitor(
        cfg,
        topic=args.topic,
        camera_id=args.camera_id,
        max_frames=args.max_frames,
        from_beginning=args.from_beginning,
        idle_timeout_s=args.idle_timeout,
        stop=_stop_event(),
    )
    return 0


def cmd_station(args: argparse.Namespace) -> int:
    from camstream.station import run_station

    cfg = _config(
        args,
        station_host=args.host,
        station_port=args.port,
        station_stale_s=args.stale_after,
        station_forget_after_s=args.forget_after,
        station_allowed_hosts=args.allowed_hosts,
        station_allowed_origins=args.allowed_origins,
        station_insecure_no_token=True if args.insecure_no_token else None,
    )
    # Our handlers: uvicorn shuts down gracefully on SIGTERM/Ctrl-C, then re-raises the
    # signal to them, so that the station exits with status 0 instead of dying by it.
    run_station(cfg, topic=args.topic, stop=_stop_event())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from camstream.stack import run_demo

    cfg = _config(args, detection_preset=args.preset)
    return run_demo(
        cfg, cameras=args.cameras, fps=args.fps, duration_s=args.duration, console=args.console
    )


# ---- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camstream",
        description="Real-time video analytics on Apache Kafka and Spark Structured Streaming.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str) -> Any:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        return p

    add("setup", cmd_setup, "download the Kafka broker and Spark connector jars (once)")

    p = add("broker", cmd_broker, "start, stop or inspect a local Kafka broker or cluster (KRaft)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--dir", help="broker folder (default: $CAMSTREAM_HOME/kafka)")
    p.add_argument(
        "--brokers",
        type=int,
        help="brokers in the cluster, each its own JVM; node i uses ports PORT+2(i-1) and the"
        " next (default: 1, or what was started in --dir)",
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    p.add_argument("--port", type=int, default=9092, help="client port (default: %(default)s)")
    p.add_argument(
        "--controller-port",
        type=int,
        default=9093,
        help="KRaft controller port (default: %(default)s)",
    )

    p = add("topics", cmd_topics, "create the input, output and dead-letter topics, or list topics")
    p.add_argument("action", choices=["create", "list"])
    _kafka_options(p)

    p = add("produce", cmd_produce, "publish a camera, video file or RTSP/HTTP stream")
    p.add_argument("--source", required=True, help="webcam index (0), video file, or URL")
    p.add_argument("--camera-id", required=True, help="camera id: the Kafka key")
    p.add_argument("--topic", help=_env_help("input_topic", "topic to publish to"))
    p.add_argument("--fps", type=float, help="frame rate cap (default: a file's own rate)")
    p.add_argument("--resize-width", type=int, help="downscale frames wider than this")
    p.add_argument("--jpeg-quality", type=int, help=_env_help("jpeg_quality", "JPEG quality"))
    p.add_argument(
        "--max-frame-bytes", type=int, help=_env_help("max_frame_bytes", "size limit per frame")
    )
    p.add_argument("--loop", action="store_true", help="restart a video file at its end")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    _kafka_options(p)

    p = add("simulate", cmd_simulate, "simulate N cameras playing the bundled sample video")
    _camera_options(p, fps=5.0)
    p.add_argument("--topic", help=_env_help("input_topic", "topic to publish to"))
    p.add_argument("--resize-width", type=int, help="downscale the 640x480 sample")
    p.add_argument("--jpeg-quality", type=int, help=_env_help("jpeg_quality", "JPEG quality"))
    p.add_argument("--max-frames", type=int, help="frames per camera, then stop")
    p.add_argument("--duration", type=float, help="seconds, then stop")
    _kafka_options(p)

    p = add("analyze", cmd_analyze, "run the Spark Structured Streaming face-detection job")
    p.add_argument("--input-topic", help=_env_help("input_topic", "topic to read frames from"))
    p.add_argument("--output-topic", help=_env_help("output_topic", "topic for annotated frames"))
    p.add_argument("--dlq-topic", help=_env_help("dead_letter_topic", "topic for bad records"))
    p.add_argument(
        "--checkpoint-location",
        help=_env_help(
            "checkpoint_location", "Spark checkpoint folder (empty: under CAMSTREAM_HOME)"
        ),
    )
    p.add_argument(
        "--starting-offsets",
        help=_env_help("starting_offsets", "where a new query starts: latest, earliest or JSON"),
    )
    p.add_argument("--master", help=_env_help("master", "Spark master URL"))
    p.add_argument(
        "--preset",
        choices=sorted(DETECTION_PRESETS),
        help=_env_help("detection_preset", "detection settings"),
    )
    p.add_argument(
        "--trigger",
        help=_env_help(
            "trigger_interval",
            "micro-batch trigger interval, or 'continuous' (250 ms epochs) for the"
            " lowest latency (needs a Spark core per Kafka partition)",
        ),
    )
    p.add_argument(
        "--max-offsets-per-trigger",
        type=int,
        help=_env_help("max_offsets_per_trigger", "frames per micro-batch at most"),
    )
    p.add_argument(
        "--freshness",
        choices=["all", "latest"],
        help=_env_help("freshness_policy", "all: analyse every frame; latest: skip frames too old"),
    )
    p.add_argument(
        "--max-frame-age-ms",
        type=int,
        help=_env_help("max_frame_age_ms", "with --freshness latest: older frames are skipped"),
    )
    p.add_argument(
        "--conf",
        action="append",
        metavar="KEY=VALUE",
        help="extra Spark setting, repeatable (e.g. spark.executor.memory=2g,"
        " spark.archives=env.tar.gz#env); $SPARK_CONF_DIR/spark-defaults.conf is read too",
    )
    _kafka_options(p)

    p = add(
        "spark-cluster",
        cmd_spark_cluster,
        "start, stop or inspect a local Spark standalone cluster (a master and workers)",
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--dir", help="cluster folder (default: $CAMSTREAM_HOME/spark-cluster)")
    p.add_argument("--workers", type=int, default=2, help="worker JVMs (default: %(default)s)")
    p.add_argument(
        "--cores-per-worker", type=int, default=1, help="cores each worker offers (default: 1)"
    )
    p.add_argument(
        "--worker-memory", default="2g", help="memory each worker offers (default: %(default)s)"
    )
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    p.add_argument("--port", type=int, default=7077, help="master port (default: %(default)s)")
    p.add_argument(
        "--webui-port", type=int, default=8089, help="master web UI port (default: %(default)s)"
    )

    p = add("monitor", cmd_monitor, "print annotated frames: camera, seq, delay, faces")
    p.add_argument("--topic", help=_env_help("output_topic", "topic to read annotated frames from"))
    p.add_argument("--camera-id", help="only this camera (default: all)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--from-beginning", action="store_true", help="replay the topic from its start")
    p.add_argument("--idle-timeout", type=float, help="stop after this many seconds without frames")
    _kafka_options(p)

    p = add("station", cmd_station, "serve the browser wall of all cameras (live, with alerts)")
    p.add_argument("--host", help=_env_help("station_host", "listen address"))
    p.add_argument("--port", type=int, help=_env_help("station_port", "listen port"))
    p.add_argument(
        "--stale-after",
        type=float,
        help=_env_help("station_stale_s", "seconds without frames before a camera is stale"),
    )
    p.add_argument(
        "--forget-after",
        type=float,
        help=_env_help(
            "station_forget_after_s", "seconds without frames before a camera is dropped"
        ),
    )
    p.add_argument(
        "--allowed-hosts",
        metavar="NAME[,NAME...]",
        help=_env_help(
            "station_allowed_hosts", "host names to answer to without a token, besides loopback"
        ),
    )
    p.add_argument(
        "--allowed-origins",
        metavar="URL[,URL...]",
        help=_env_help(
            "station_allowed_origins", "other origins whose pages may open the WebSocket"
        ),
    )
    p.add_argument(
        "--insecure-no-token",
        action="store_true",
        help=_env_help(
            "station_insecure_no_token",
            "serve a non-loopback address without a token (anyone who can reach it sees every"
            " camera)",
        ),
    )
    p.add_argument("--topic", help=_env_help("output_topic", "topic to read annotated frames from"))
    _kafka_options(p)

    p = add("demo", cmd_demo, "run the whole local stack: broker, Spark job, cameras, monitor")
    _camera_options(p, fps=4.0)
    p.add_argument(
        "--preset",
        choices=sorted(DETECTION_PRESETS),
        help=_env_help("detection_preset", "detection settings"),
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument(
        "--console", action="store_true", help="print frames in the terminal instead of the station"
    )
    _kafka_options(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kafka-python logs every refused connection; camstream reports a down broker itself
        # (kafka_io keeps the last authentication or TLS failure to say why).
        kafka_logger = logging.getLogger("kafka")
        kafka_logger.setLevel(logging.WARNING)
        kafka_logger.propagate = False
    from camstream.broker import BrokerError
    from camstream.deps import DependencyError
    from camstream.kafka_io import BrokerUnavailableError
    from camstream.producer import CaptureError, DeliveryError, FrameTooLargeError
    from camstream.spark_cluster import SparkClusterError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"camstream: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (
        BrokerError,
        BrokerUnavailableError,
        CaptureError,
        DeliveryError,
        DependencyError,
        FrameTooLargeError,
        SparkClusterError,
    ) as exc:
        print(f"camstream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
