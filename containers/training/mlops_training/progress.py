"""Training progress events: one per round, rate-limited and batched, never in training's way.

Rate: the first round, then at most one round per interval, then the last round, so 10,000
boosting rounds cost a handful of events whatever the account's PutEvents quota. Sending happens
on a background thread in PutEvents calls of up to 10 entries; a failed call is logged and
training goes on. ``report`` never blocks: when the sender falls behind, rounds are dropped and
counted (the first and the last are kept).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

DETAIL_TYPE = "Training Progress"
MAX_ENTRIES_PER_CALL = 10  # PutEvents' limit
MAX_QUEUED = 1000

log = logging.getLogger(__name__)


class ProgressReporter:
    def __init__(
        self,
        client: Any,
        *,
        bus: str,
        source: str,
        identity: Mapping[str, str],
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._bus = bus
        self._source = source
        self._identity = dict(identity)
        self._interval = interval_seconds
        self._clock = clock
        self._now = now
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._last_sent_at: float | None = None
        self._last_round: tuple[int, dict[str, float]] | None = None
        self._last_round_sent = False
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self._sender = threading.Thread(target=self._send_forever, name="progress-events", daemon=True)
        self._sender.start()

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._last_round = (epoch, dict(metrics))
        moment = self._clock()
        if self._last_sent_at is None or moment - self._last_sent_at >= self._interval:
            self._last_sent_at = moment
            self._last_round_sent = self._enqueue(epoch, metrics)
        else:
            self._last_round_sent = False

    def close(self, timeout_seconds: float = 10.0) -> None:
        """Send the last round if it was held back, then wait (bounded) for the sender to finish."""
        if self._last_round and not self._last_round_sent:
            self._enqueue(*self._last_round, block=True)
        self._queue.put(None)
        self._sender.join(timeout_seconds)
        if self.dropped or self.failed:
            log.warning("progress events: %d dropped, %d failed to send", self.dropped, self.failed)

    def _enqueue(self, epoch: int, metrics: Mapping[str, float], *, block: bool = False) -> bool:
        entry = {
            "Source": self._source,
            "DetailType": DETAIL_TYPE,
            "EventBusName": self._bus,
            "Detail": json.dumps(
                {
                    **self._identity,
                    "epoch": epoch,
                    "metrics": {name: (value if math.isfinite(value) else None) for name, value in metrics.items()},
                    "time": self._now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                }
            ),
        }
        try:
            self._queue.put(entry, block=block, timeout=1.0 if block else None)
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _send_forever(self) -> None:
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            item = self._queue.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                if len(batch) == MAX_ENTRIES_PER_CALL:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            response = self._client.put_events(Entries=batch)
        except Exception as error:
            self.failed += len(batch)
            log.warning("progress events not sent: %s", error)
            return
        failed = int(response.get("FailedEntryCount", 0))
        self.failed += failed
        self.sent += len(batch) - failed
        if failed:
            log.warning("progress events: %d of %d rejected by EventBridge", failed, len(batch))


class NullReporter:
    """No bus configured (a laptop run): progress goes to the log only."""

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def close(self, timeout_seconds: float = 10.0) -> None:
        pass
