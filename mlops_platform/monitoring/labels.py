"""Model quality: labels, as the platform's ingestion lands them, joined to a capture window by inference id.

Labels are a dataset of the tenant, sent through the ingestion queue like any other
(``{"tenant", "dataset": <monitoring.labels_dataset>, "records": [{"inference_id": "...", "label": 1}]}``).
The ingest function (lambda/ingest/handler.py) writes each record inside its envelope, one JSON object
a line, under ``raw/<tenant>/<dataset>/dt=<day SQS accepted the message>/<message id>.jsonl``::

    {"record_id": "<message id>-<index>", "message_id": "...", "received_at": "2026-11-24T23:59:30.000Z",
     "record": {"inference_id": "...", "label": 0 | 1}}

A label is sent after the request it labels, so a window's labels lie in the ``dt=`` days from the
window's start to the run: ``label_days`` names them and the job reads those folders only, not the
label history. Where one inference id is labelled twice, the label received last wins (ties broken by
record id, so the answer does not depend on the order objects are listed in).

A line that is not an envelope holding a string ``inference_id`` and a 0/1 (or boolean) ``label`` is
counted as malformed, never raised. Rows of a request of several rows share one inference id; they
are left out of the join (``ambiguous_rows``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from mlops_platform.monitoring.capture import CaptureWindow

DECIMALS = 6


@dataclass(frozen=True)
class VariantQuality:
    variant: str
    labelled: int
    auc: float | None
    accuracy: float | None


@dataclass(frozen=True)
class ModelQuality:
    labels_uri: str
    days: list[str]
    label_lines: int
    malformed_labels: int
    ambiguous_rows: int
    variants: list[VariantQuality] = field(default_factory=list)


def label_days(window_start: datetime, run_time: datetime) -> list[date]:
    """The ``dt=`` days that can hold labels of requests made from ``window_start``: up to the run's own day."""
    first, last = window_start.date(), max(run_time, window_start).date()
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def read_label(line: bytes | str) -> tuple[str, int, tuple[str, str]] | None:
    """(inference id, label, (received_at, record_id)) of one ingested line, or None where it is malformed."""
    try:
        envelope = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("record"), dict):
        return None
    record = envelope["record"]
    inference_id, label = record.get("inference_id"), record.get("label")
    if not isinstance(inference_id, str) or not inference_id:
        return None
    if isinstance(label, bool):
        label = int(label)
    elif not (isinstance(label, int) and label in (0, 1)):
        return None
    order = (str(envelope.get("received_at", "")), str(envelope.get("record_id", "")))
    return inference_id, label, order


def model_quality(labels_uri: str, days: list[date], lines: Iterable[bytes], window: CaptureWindow) -> ModelQuality:
    """AUC and accuracy per variant of the window's rows whose inference id has a label among ``lines``."""
    counts = Counter(i for i in window.inference_ids if i is not None)
    wanted = {i for i, n in counts.items() if n == 1}
    found: dict[str, tuple[tuple[str, str], int]] = {}
    read = malformed = 0
    for line in lines:
        if not line.strip():
            continue
        read += 1
        label = read_label(line)
        if label is None:
            malformed += 1
            continue
        inference_id, value, order = label
        if inference_id in wanted and (inference_id not in found or order >= found[inference_id][0]):
            found[inference_id] = (order, value)
    qualities = []
    for variant in sorted({str(v) for v in window.variants}):
        rows = [
            (found[i][1], score)
            for i, v, score in zip(window.inference_ids, window.variants, window.predictions, strict=True)
            if v == variant and i in found and math.isfinite(score)
        ]
        truth = np.array([label for label, _ in rows], dtype=int)
        scores = np.array([score for _, score in rows], dtype=float)
        both_classes = len(set(truth.tolist())) == 2
        qualities.append(
            VariantQuality(
                variant=variant,
                labelled=len(rows),
                auc=_round(float(roc_auc_score(truth, scores))) if both_classes else None,
                accuracy=_round(float(accuracy_score(truth, scores >= 0.5))) if rows else None,
            )
        )
    return ModelQuality(
        labels_uri=labels_uri,
        days=[f"{day:%Y-%m-%d}" for day in days],
        label_lines=read,
        malformed_labels=malformed,
        ambiguous_rows=sum(n for n in counts.values() if n > 1),
        variants=qualities,
    )


def _round(value: float) -> float:
    return round(value, DECIMALS)
