"""Training progress events: one per round, rate-limited and batched, never in training's way.

Rate: the first round; then every ``every_rounds``-th round, and any round that comes
``interval_seconds`` after the last one sent; then the last round. A trial that runs its rounds
in seconds still draws a curve (train.py sets ``every_rounds`` to about 50 points a trial), and a
slow one still reports while it runs; 10,000 boosting rounds cost at most about 50 events plus one
per interval, whatever the account's PutEvents quota. Sending happens on a background thread in
PutEvents calls of up to 10 entries; a failed call is logged and training goes on. ``report`` never
blocks: when the sender falls behind, rounds are dropped and counted (the first and the last are
kept).

Each event carries the job's identity (``identity``: run, tenant, model, trial, training job and
the *attempt*, which tells a retried trial's curve from the first one's), the round's metrics, and
``kept``: the round the model would keep if training ended now, with its metrics (objective.py).
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
# The round a model would keep if training ended now, and its metrics (objective.KeptRound.kept).
Kept = tuple[int, Mapping[str, float]]
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
        every_rounds: int = 0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._bus = bus
        self._source = source
        self._identity = dict(identity)
        self._interval = interval_seconds
        self._every_rounds = every_rounds
        self._clock = clock
        self._now = now
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._last_sent_at: float | None = None
        self._last_round: tuple[int, dict[str, float], Kept | None] | None = None
        self._last_round_sent = False
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self._sender = threading.Thread(target=self._send_forever, name="progress-events", daemon=True)
        self._sender.start()

    def report(self, epoch: int, metrics: Mapping[str, float], kept: Kept | None = None) -> None:
        self._last_round = (epoch, dict(metrics), kept)
        moment = self._clock()
        due_by_time = self._last_sent_at is None or moment - self._last_sent_at >= self._interval
        due_by_round = self._every_rounds > 0 and epoch % self._every_rounds == 0
        if due_by_time or due_by_round:
            self._last_sent_at = moment
            self._last_round_sent = self._enqueue(epoch, metrics, kept)
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

    def _enqueue(
        self, epoch: int, metrics: Mapping[str, float], kept: Kept | None = None, *, block: bool = False
    ) -> bool:
        detail: dict[str, Any] = {**self._identity, "epoch": epoch, "metrics": _finite(metrics)}
        if kept is not None:
            detail["kept"] = {"epoch": kept[0], "metrics": _finite(kept[1])}
        detail["time"] = self._now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entry = {
            "Source": self._source,
            "DetailType": DETAIL_TYPE,
            "EventBusName": self._bus,
            "Detail": json.dumps(detail),
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


def _finite(metrics: Mapping[str, float]) -> dict[str, float | None]:
    """JSON has no NaN or infinity: a round where a metric was not finite sends null."""
    return {name: (value if math.isfinite(value) else None) for name, value in metrics.items()}


class NullReporter:
    """No bus configured (a laptop run): progress goes to the log only."""

    def report(self, epoch: int, metrics: Mapping[str, float], kept: Kept | None = None) -> None:
        pass

    def close(self, timeout_seconds: float = 10.0) -> None:
        pass
