"""The consumer-group workers: the per-record path in N plain Python processes.

The alternative to the Spark job (`camstream analyze`): each worker is one process with a
kafka-python consumer in one consumer group (`CAMSTREAM_WORKER_GROUP`) on the input topic,
running the same per-record path (`camstream.core.batch`, through `camstream.core.runtime`)
and writing to the same topics by the same rules (`camstream.core.routing`). Kafka shares
the partitions among the workers, so a camera's frames (one partition) go through one
worker at a time, in order.

- `loop.py`: one worker: poll a batch, process it, write it, then commit its offsets;
- `progress.py`: each worker's counts, shared with the group and printed every few seconds;
- `group.py`: N workers as processes (`start_workers` -> `WorkerGroup`), stopped cleanly.
"""

from camstream.workers.group import WorkerGroup, start_workers
from camstream.workers.progress import WorkerTotals

__all__ = ["WorkerGroup", "WorkerTotals", "start_workers"]
