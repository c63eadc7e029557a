"""Every error camstream raises on purpose, under one base class, with its exit code.

The command line turns a `CamstreamError` into one line on stderr and `exit_code`; any
other exception is a bug and keeps its traceback. The codes:

| code | meaning |
| --- | --- |
| 0 | done |
| 1 | a failure not listed below (a camera that cannot be opened, frames Kafka refused, ...) |
| 2 | the command line or the configuration is wrong |
| 3 | `status`: the local broker or cluster is not running |
| 4 | Kafka cannot be reached, or refused the connection |
| 5 | a prerequisite is missing (Java, Maven, a Haar cascade) or a download failed |
| 6 | the streaming query, or a consumer-group worker, stopped with an error |
| 130 | interrupted (Ctrl-C) |
"""

from __future__ import annotations


class CamstreamError(Exception):
    """An expected failure: the message says what went wrong and what to do."""

    exit_code = 1


class ConfigError(CamstreamError, ValueError):
    """A configuration value is missing or invalid; the message says which and how to fix it."""

    exit_code = 2


class KafkaUnavailableError(CamstreamError, ConnectionError):
    """No Kafka broker answered at the configured address, or it refused the connection."""

    exit_code = 4


class DependencyError(CamstreamError):
    """A required tool (Java, Maven) is missing or a download failed; says what to do."""

    exit_code = 5


class QueryFailedError(CamstreamError):
    """The streaming query stopped with an error; the message is its root cause."""

    exit_code = 6


class WorkerFailedError(CamstreamError):
    """A consumer-group worker stopped with an error (`camstream.workers`): the group stops
    with the worker's own exit code (4 Kafka unreachable, 5 a broken machine, ...)."""

    exit_code = 6

    def __init__(self, message: str, exit_code: int = 6) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class FrameError(CamstreamError, ValueError):
    """A record does not follow the frame contract; the message says what is wrong.

    Raised per record and turned into a dead letter by the per-record function: it never
    reaches the command line.
    """


class EnvironmentFailure(CamstreamError):
    """Not a record's fault: the machine cannot analyse frames at all (a missing cascade, a
    native library that does not load). Every record would fail alike, so the per-record
    code lets it through: the task fails, and Spark retries it or the query stops with it,
    instead of dead-lettering every frame while the job looks healthy."""

    exit_code = 5


class DetectorUnavailableError(EnvironmentFailure):
    """The Haar cascade file is missing or cannot be loaded."""


class FrameTooLargeError(CamstreamError, ValueError):
    """A frame does not fit the size limit even at the lowest allowed quality and size."""


class CaptureError(CamstreamError):
    """The camera, file or stream cannot be opened or stopped delivering frames."""


class DeliveryError(CamstreamError):
    """The broker did not acknowledge some frames."""


class ClipError(CamstreamError, ValueError):
    """An event clip cannot be written: an unknown file type, or no frame that decodes."""


class BrokerError(CamstreamError):
    """The local broker could not be started or stopped; the message says why."""


class NotRecordedError(CamstreamError):
    """Kafka keeps no frames of the camera for the span asked (older than its retention, or
    none were written then); the message says what is kept."""


class SparkClusterError(CamstreamError):
    """The local Spark cluster could not be started; the message says why and where the logs are."""


# What per-record code lets through instead of dead-lettering the record (the rule):
# - EnvironmentFailure: camstream's own (a missing cascade);
# - MemoryError: the contract bounds a frame (MAX_FRAME_PIXELS), so a worker that runs out
#   of memory is too small for the frames it was given, not given a bad one;
# - ImportError: a module or native library that does not load (cv2, numpy);
# - OSError: nothing per record reads or writes files or sockets, so it is the machine's.
# Anything else, RecursionError included, is the record's fault and makes a dead letter.
ENVIRONMENT_FAILURES: tuple[type[BaseException], ...] = (
    EnvironmentFailure,
    MemoryError,
    ImportError,
    OSError,
)
