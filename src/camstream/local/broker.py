"""Real Apache Kafka brokers (KRaft mode) run from the official jars: one node or a cluster.

Everything a broker writes (configuration, data, logs, pid file) lives under one folder,
`<CAMSTREAM_HOME>/kafka` by default; a cluster keeps one such folder per broker below it.
Listeners bind to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from camstream.errors import BrokerError, KafkaUnavailableError
from camstream.jvm import java_executable
from camstream.kafka.security import quoted
from camstream.local.jars import kafka_jars_dir
from camstream.local.layout import load_layout, save_layout
from camstream.local.ports import port_is_free
from camstream.local.supervisor import Supervisor

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

LOG4J2_PROPERTIES = """\
# Broker logs go to files under the broker folder, not to the terminal.
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
"""


@dataclass(frozen=True)
class LocalBroker:
    """One KRaft node acting as broker and controller (alone, or one voter of a cluster)."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    node_id: int = 1
    heap: str = "1g"
    # The controller quorum ("1@host:port,2@host:port,..."); empty: this node alone.
    quorum_voters: str = ""
    # Shared by every node of a cluster; empty: a new one when the storage is formatted.
    cluster_id: str = ""
    # Replicas of Kafka's internal topics, and the default min.insync.replicas (RF - 1).
    cluster_size: int = 1
    # An extra SASL_SSL listener (TLS + SCRAM-SHA-512 or PLAIN) for clients, beside the
    # loopback PLAINTEXT one that the broker uses internally: its port, a PEM file holding
    # the broker's private key and certificate chain, and the users (name, password) who
    # may log in with either mechanism.
    sasl_ssl_port: int | None = None
    tls_keystore_pem: str = ""
    sasl_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # Kafka's own quickstart configuration (config/server.properties) instead of camstream's:
    # 1,048,588-byte messages, topics created on first use with 1 partition. What an
    # operator's broker looks like when nobody tuned it for video.
    stock: bool = False
    process: Supervisor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        supervisor = Supervisor(
            f"Kafka broker {self.node_id}",
            self.logs_dir / "stdout.log",
            pid_file=self.pid_file,
            marker=MAIN_CLASS,
            logs=[self.logs_dir / "server.log"],
            error=BrokerError,
        )
        object.__setattr__(self, "process", supervisor)

    @property
    def secure_bootstrap(self) -> str:
        if self.sasl_ssl_port is None:
            raise BrokerError("this broker has no SASL_SSL listener (sasl_ssl_port)")
        return f"{self.host}:{self.sasl_ssl_port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    # ---- state ----------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The broker's pid if it runs (our pid file naming a live Kafka process)."""
        return self.process.pid()

    def is_running(self) -> bool:
        return self.pid() is not None

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"stopped (folder {self.directory})"
        return f"running: pid {pid}, bootstrap {self.bootstrap}, folder {self.directory}"

    # ---- start / stop ---------------------------------------------------------------------
    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        properties = self.properties()
        # Owner-only: with PLAIN users it holds their passwords.
        write_private(self.properties_file, "".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.directory / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def properties(self) -> dict[str, str]:
        """The broker's server.properties (docker-compose.yml mirrors the shared ones)."""
        if self.stock:
            return self.stock_properties()
        replicas = str(min(3, self.cluster_size))
        min_insync = str(max(1, min(3, self.cluster_size) - 1))
        voters = self.quorum_voters or f"{self.node_id}@{self.host}:{self.controller_port}"
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics are created explicitly, with the partitions the cameras need.
            "auto.create.topics.enable": "false",
            "num.partitions": "4",
            # On a cluster: every partition on three brokers, writes acknowledged by two.
            "default.replication.factor": replicas,
            "min.insync.replicas": min_insync,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_insync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_insync,
            # Room for large frames; topics set their own limit below this.
            "message.max.bytes": str(8 * 1024 * 1024),
            "replica.fetch.max.bytes": str(8 * 1024 * 1024),
            # A local broker serves consumers at once instead of waiting for more members.
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "1",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        if self.sasl_ssl_port is not None:
            properties.update(self._sasl_ssl_properties(properties))
        return properties

    def stock_properties(self) -> dict[str, str]:
        """Kafka 4's config/server.properties as it ships (KRaft, one node), on our ports.

        Everything else is the broker's default: message.max.bytes 1,048,588, automatic
        topic creation on, 1 partition, a week's retention.
        """
        controller = f"{self.host}:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{controller}",
            "inter.broker.listener.name": "PLAINTEXT",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{controller}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                "SASL_SSL:SASL_SSL"
            ),
            "num.network.threads": "3",
            "num.io.threads": "8",
            "socket.send.buffer.bytes": "102400",
            "socket.receive.buffer.bytes": "102400",
            "socket.request.max.bytes": "104857600",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "num.recovery.threads.per.data.dir": "1",
            "offsets.topic.replication.factor": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "log.retention.hours": "168",
            "log.segment.bytes": "1073741824",
            "log.retention.check.interval.ms": "300000",
        }

    def _sasl_ssl_properties(self, base: dict[str, str]) -> dict[str, str]:
        if not self.tls_keystore_pem or not Path(self.tls_keystore_pem).is_file():
            raise BrokerError(
                f"a SASL_SSL listener needs a PEM key and certificate file (got"
                f" {self.tls_keystore_pem!r})"
            )
        listener = f"SASL_SSL://{self.host}:{self.sasl_ssl_port}"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        # PLAIN checks passwords against the JAAS line's user_<name> entries.
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        plain += "".join(f" user_{name}={quoted(password)}" for name, password in self.sasl_users)
        prefix = "listener.name.sasl_ssl."
        return {
            "listeners": f"{base['listeners']},{listener}",
            "advertised.listeners": f"{base['advertised.listeners']},{listener}",
            "listener.security.protocol.map": (
                f"{base['listener.security.protocol.map']},SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            f"{prefix}scram-sha-512.sasl.jaas.config": scram,
            f"{prefix}plain.sasl.jaas.config": plain + ";",
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(Path(self.tls_keystore_pem).resolve()),
            f"{prefix}ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        }

    def _java_command(self, java: str, jars: Path, main: str, *args: str) -> list[str]:
        return [
            java,
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp",
            f"{jars}/*",
            main,
            *args,
        ]

    def format_storage(self, java: str, jars: Path) -> None:
        """Format the KRaft metadata folder once; later starts reuse the data."""
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or _kafka_uuid()
        # SCRAM credentials live in the cluster metadata (salted and hashed), set at format.
        scram = [
            f"--add-scram=SCRAM-SHA-512=[name={name},password={password}]"
            for name, password in self.sasl_users
        ]
        # The stock configuration has a dynamic quorum, which a single node formats alone.
        standalone = ["--standalone"] if self.stock else []
        cmd = self._java_command(
            java, jars, STORAGE_TOOL, "format", f"--cluster-id={cluster_id}",
            "-c", str(self.properties_file), *standalone, *scram,
        )  # fmt: skip
        # The tool takes passwords only as arguments, and a command line shows in `ps` and
        # /proc: the JVM reads its arguments from an owner-only file instead, deleted after.
        argfile = self.directory / "format.args"
        write_private(argfile, "".join(f"{quoted(arg)}\n" for arg in cmd[1:]))
        try:
            out = subprocess.run([java, f"@{argfile}"], capture_output=True, text=True, check=False)
        finally:
            argfile.unlink(missing_ok=True)
        if out.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{out.stdout}{out.stderr}")

    def start(self, timeout_s: float = 90.0) -> str:
        """Start in the background and wait until it serves requests; returns the bootstrap."""
        if not self.is_running():
            self.spawn()
        try:
            self.wait_ready(timeout_s)
        except BrokerError:
            self.stop()
            raise
        return self.bootstrap

    def check_ports(self) -> None:
        for port in (self.port, self.controller_port, self.sasl_ssl_port):
            if port is None:
                continue
            if not port_is_free(self.host, port):
                raise BrokerError(
                    f"port {self.host}:{port} is already taken by another process: stop it, or"
                    " choose other ports with --port / --controller-port"
                )

    def spawn(self) -> subprocess.Popen[bytes]:
        """Launch the broker JVM (configured and formatted first) without waiting for it."""
        self.check_ports()
        java = java_executable()
        jar_dir = kafka_jars_dir()
        self.write_config()
        self.format_storage(java, jar_dir)
        command = self._java_command(java, jar_dir, MAIN_CLASS, str(self.properties_file))
        return self.process.spawn(command, cwd=self.directory)

    def wait_ready(self, timeout_s: float) -> None:
        """Until the broker listens and answers a metadata request."""
        from camstream.config import Config
        from camstream.kafka.topics import wait_for_broker

        deadline = time.monotonic() + timeout_s
        self.process.wait_ready(
            lambda: not port_is_free(self.host, self.port), timeout_s, "listening"
        )
        remaining = max(1.0, deadline - time.monotonic())
        try:
            wait_for_broker(Config(kafka_bootstrap=self.bootstrap), timeout_s=remaining)
        except KafkaUnavailableError as exc:
            raise BrokerError(f"{exc}\nLast log lines:\n{self.log_tail()}") from None

    def stop(self, timeout_s: float = 30.0, kill: bool = False) -> bool:
        """SIGTERM (SIGKILL if `kill`), then SIGKILL after the timeout; False if not running."""
        return self.process.stop(timeout_s, kill=kill)

    def log_tail(self, lines: int = 25) -> str:
        return self.process.log_tail(lines)


CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True)
class LocalCluster:
    """`size` KRaft nodes, each its own JVM and folder, every one a broker and a voter.

    Node i (from 1) listens on `base_port + 2(i-1)` for clients and the next port for the
    controller quorum, all on loopback by default. The layout is saved in `cluster.json`
    so that `stop` and `status` find the same nodes later.
    """

    directory: Path
    size: int = 3
    host: str = "127.0.0.1"
    base_port: int = 9092
    heap: str = "512m"
    cluster_id: str = ""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise BrokerError(f"a cluster needs at least one broker (got {self.size})")
        if not self.cluster_id:
            object.__setattr__(self, "cluster_id", _kafka_uuid())

    @classmethod
    def load(cls, directory: Path) -> LocalCluster | None:
        """The cluster saved in `directory`, or None if there is none."""
        return load_layout(cls, directory, CLUSTER_FILE)

    def save(self) -> None:
        save_layout(self, CLUSTER_FILE)

    @property
    def nodes(self) -> list[LocalBroker]:
        ports = [(self.base_port + 2 * i, self.base_port + 2 * i + 1) for i in range(self.size)]
        voters = ",".join(f"{i + 1}@{self.host}:{c}" for i, (_, c) in enumerate(ports))
        return [
            LocalBroker(
                self.directory / f"broker-{i + 1}",
                host=self.host,
                port=port,
                controller_port=controller_port,
                node_id=i + 1,
                heap=self.heap,
                quorum_voters=voters,
                cluster_id=self.cluster_id,
                cluster_size=self.size,
            )
            for i, (port, controller_port) in enumerate(ports)
        ]

    def node(self, node_id: int) -> LocalBroker:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def is_running(self) -> bool:
        return all(node.is_running() for node in self.nodes)

    def status(self) -> str:
        lines = [f"cluster of {self.size} brokers, bootstrap {self.bootstrap}"]
        lines += [f"  broker {n.node_id}: {n.status()}" for n in self.nodes]
        return "\n".join(lines)

    def start(self, timeout_s: float = 120.0) -> str:
        """Start every node that is not running, then wait until all serve requests.

        The nodes are launched together: none can finish starting before a majority of
        the controller quorum is up.
        """
        existing = LocalCluster.load(self.directory)
        if existing is not None and existing.cluster_id != self.cluster_id:
            if (existing.size, existing.base_port) != (self.size, self.base_port):
                raise BrokerError(
                    f"{self.directory} holds a cluster of {existing.size} brokers from port"
                    f" {existing.base_port}: stop it and delete the folder, or use another --dir"
                )
            object.__setattr__(self, "cluster_id", existing.cluster_id)
        self.save()
        nodes = self.nodes
        for node in nodes:
            if not node.is_running():
                node.spawn()
        try:
            deadline = time.monotonic() + timeout_s
            for node in nodes:
                node.wait_ready(max(1.0, deadline - time.monotonic()))
        except BrokerError:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node at once (one by one, the last ones would wait for a lost quorum)."""
        running = [node for node in self.nodes if node.is_running()]
        for node in running:
            node.process.signal()
        for node in running:
            node.stop(timeout_s=timeout_s)
        return bool(running)

    def log_tail(self, lines: int = 10) -> str:
        return "\n".join(f"broker {n.node_id}:\n{n.log_tail(lines)}" for n in self.nodes)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (created so: never readable by others)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(text)


def _kafka_uuid() -> str:
    """A cluster id in Kafka's format: a random UUID as unpadded URL-safe base64.

    Like Kafka's own `Uuid.randomUuid()`, never one starting with '-': command-line tools
    would read it as an option.
    """
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
