"""The training Map's results: what each child's entry says about its trial.

With a ``ResultWriter`` the Map's output is ``{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}``, the
key naming ``manifest.json``: ``{"DestinationBucket", "MapRunArn", "ResultFiles": {"SUCCEEDED": [{"Key",
"Size"}], "FAILED": [...], "PENDING": [...]}}``, each result file a JSON array (or JSON Lines) of ``{"Input",
"Output", "Status", "Error", "Cause", ...}`` with ``Input`` and ``Output`` as JSON strings. moto 5.2.5 writes
the manifest with empty lists and no result files; a Map without a ``ResultWriter`` returns the children's
outputs inline, as a list, which is accepted too (moto tests). A succeeded child's output is ``{"item": <plan
item>, "job": <DescribeTrainingJob output>}`` (the ``.sync`` task's, or the training-job λ's trimmed one on
reuse); a child's input is ``{"item", ...}``. The item keeps attempt 0, so a trial's job name and attempt are
the job's own (``...-a<n>``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import error_code
from mlops_platform.evaluation.errors import ResultsUnreadable
from mlops_platform.evaluation.services import Services

if TYPE_CHECKING:
    from mlops_platform.evaluation.request import Request

# Precedence when a trial appears more than once (a redriven Map run lists a child again).
STATUS_RANK = {"SUCCEEDED": 3, "FAILED": 2, "TIMED_OUT": 2, "ABORTED": 2, "PENDING": 1, "RUNNING": 1}
REASON_MAX = 1000


@dataclass
class Outcome:
    """What the Map's results say about one child."""

    status: str
    item: dict[str, Any]
    job: Any = None
    error: str | None = None
    cause: str | None = None


def parsed_json(value: Any) -> Any:
    """``Input``/``Output`` are JSON strings in result files; tolerate objects (and garbage)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def outcome_of(entry: Any, listed_status: str | None) -> Outcome | None:
    """One result entry as an ``Outcome``; ``None`` when it names no trial."""
    if isinstance(entry, dict) and any(key in entry for key in ("Status", "Input", "Output", "ExecutionArn")):
        # The default NONE transformation: execution metadata around the child's input and output.
        status = str(entry.get("Status") or listed_status or "SUCCEEDED")
        output, child_input = parsed_json(entry.get("Output")), parsed_json(entry.get("Input"))
        error, cause = entry.get("Error"), entry.get("Cause")
    else:
        # COMPACT or FLATTEN, or a Map without a ResultWriter: the child's output itself.
        output, child_input, error, cause = entry, None, None, None
        status = listed_status or "SUCCEEDED"
        if isinstance(entry, dict) and "Error" in entry and "item" not in entry:
            status, error, cause = "FAILED", entry.get("Error"), entry.get("Cause")
    item = output.get("item") if isinstance(output, dict) else None
    if not isinstance(item, dict) and isinstance(child_input, dict):
        item = child_input.get("item") if isinstance(child_input.get("item"), dict) else child_input
    if not isinstance(item, dict) or not isinstance(item.get("trial"), str):
        return None
    job = output.get("job") if isinstance(output, dict) else None
    return Outcome(status=status, item=item, job=job, error=as_text(error), cause=as_text(cause))


def is_open(outcome: Outcome | None) -> bool:
    """No outcome, a pending or running child, or a success whose ``job`` is only a create response
    (it has no status, so it is not a description)."""
    if outcome is None or STATUS_RANK.get(outcome.status, 0) <= 1:
        return True
    return outcome.status == "SUCCEEDED" and not (isinstance(outcome.job, dict) and "TrainingJobStatus" in outcome.job)


def jsonable(value: Any) -> Any:
    """A describe response as JSON would carry it: times as ISO strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def merge(outcomes: dict[str, Outcome], outcome: Outcome) -> None:
    trial = outcome.item["trial"]
    previous = outcomes.get(trial)
    if previous is None or STATUS_RANK.get(outcome.status, 0) >= STATUS_RANK.get(previous.status, 0):
        outcomes[trial] = outcome


def parse_result_file(text: str) -> list[Any]:
    """A result file: a JSON array (``OutputType: JSON``) or JSON Lines."""
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        entries = json.loads(stripped)
        if not isinstance(entries, list):
            raise ValueError("not a JSON array")
        return entries
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def failure_reason(error: str | None, cause: str | None) -> str:
    """``Error: cause``, with SageMaker's ``FailureReason`` pulled out of a describe-shaped cause."""
    detail = cause or ""
    parsed = parsed_json(cause)
    if isinstance(parsed, dict):
        detail = str(parsed.get("FailureReason") or parsed.get("errorMessage") or cause)
    text = f"{error or 'failed'}: {detail}" if detail else (error or "failed")
    return " ".join(text.split())[:REASON_MAX]


class ResultReading(Services):
    """Reads the Map's results from S3: its manifest and the result files it lists."""

    def read_text(self, bucket: str, key: str, what: str) -> str:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                raise ResultsUnreadable(f"{what} s3://{bucket}/{key} does not exist") from None
            raise

    def results_of(self, request: Request) -> Any:
        """The Map's results; when it stopped, the newest manifest its ResultWriter left under the run's prefix."""
        if request.results_location is None:
            return request.results
        bucket, prefix = request.results_location
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
        manifests = [o for o in listed.get("Contents", []) if o["Key"].endswith("/manifest.json")]
        if not manifests:
            self.log.warning("the stopped Map left no manifest; trials are looked up", extra={"prefix": prefix})
            return []
        newest = max(manifests, key=lambda listed_object: listed_object["LastModified"])
        return {"ResultWriterDetails": {"Bucket": bucket, "Key": newest["Key"]}}

    def read_outcomes(self, results: Any) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        unattributed = 0
        for listed_status, entry in self.result_entries(results):
            outcome = outcome_of(entry, listed_status)
            if outcome is None:
                unattributed += 1
            else:
                merge(outcomes, outcome)
        if unattributed:
            self.log.warning("result entries that name no trial", extra={"count": unattributed})
        return outcomes

    def result_entries(self, results: Any) -> Iterator[tuple[str | None, Any]]:
        if isinstance(results, list):
            for entry in results:
                yield None, entry
            return
        bucket, key = results["ResultWriterDetails"]["Bucket"], results["ResultWriterDetails"]["Key"]
        try:
            manifest = json.loads(self.read_text(bucket, key, "the Map's manifest"))
            files = manifest["ResultFiles"]
            listed = [(status, entry["Key"]) for status, entries in files.items() for entry in entries or []]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ResultsUnreadable(f"the Map's manifest s3://{bucket}/{key} has no ResultFiles") from None
        if not listed:
            self.log.warning("the Map's manifest lists no result files", extra={"key": key})
        for status, file_key in listed:
            # Keys are full object keys; a bare file name is taken as relative to the manifest.
            full_key = file_key if "/" in file_key else key.rsplit("/", 1)[0] + "/" + file_key
            try:
                entries = parse_result_file(self.read_text(bucket, full_key, "the result file"))
            except ValueError:
                raise ResultsUnreadable(f"the result file s3://{bucket}/{full_key} is not JSON") from None
            for entry in entries:
                yield status, entry
