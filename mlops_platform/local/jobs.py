"""SageMaker training, processing and transform jobs as local processes of the training image's entry points.

moto records a Create*Job and marks it Completed at once, running nothing. While a :class:`Runner` is
active, each job created in the emulator is ``InProgress`` until its process ends: the job's S3 inputs
are downloaded into a folder laid out as SageMaker lays out ``/opt/ml`` (``SM_ROOT``) or
``/opt/ml/processing`` (``SM_PROCESSING_ROOT``), ``python -m mlops_platform.training <entry point>``
runs on it (the image's ENTRYPOINT), its outputs are uploaded where SageMaker puts them, and the job
becomes ``Completed`` or ``Failed`` with the reason the container wrote. At most one job runs per core.
What waits on a job (``.sync`` in the state machine) reads that status (:mod:`.interpreter`).

A training job's metrics are its own log lines matched by the request's ``MetricDefinitions``, as
SageMaker does (https://docs.aws.amazon.com/sagemaker/latest/dg/training-metrics.html); the last
value of each is its ``FinalMetricDataList`` entry.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENTRY_POINT = [sys.executable, "-m", "mlops_platform.training"]  # the training image's ENTRYPOINT
PROCESSING_ROOT = "/opt/ml/processing"
JOB_TIMEOUT_SECONDS = 900


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass
class Runner:
    """Runs the emulator's jobs in ``workdir``, at most ``workers`` at a time, with ``environment``."""

    workdir: Path
    environment: Mapping[str, str]
    project_root: Path
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    ran: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, job name, final status)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _futures: list[Future[None]] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def submit(self, kind: str, job: Any) -> None:
        if self._pool is None:
            raise RuntimeError("the job runner is not started")
        with self._lock:
            self._futures.append(self._pool.submit(self._run, kind, job))

    def _run(self, kind: str, job: Any) -> None:
        name = _name(kind, job)
        try:
            status, reason = {"training": self._train, "processing": self._process, "transform": self._transform}[kind](
                job, self.workdir / name
            )
        except Exception as error:  # the job fails with the reason, as SageMaker reports an internal error
            status, reason = "Failed", f"{type(error).__name__}: {error}"
        _finish(kind, job, status, reason)
        with self._lock:
            self.ran.append((kind, name, status))

    # --- the three kinds ---------------------------------------------------------------------------

    def _train(self, job: Any, root: Path) -> tuple[str, str]:
        from moto.core.utils import utcnow

        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}), encoding="utf-8")
        for channel in job.input_data_config or []:
            source = channel["DataSource"]["S3DataSource"]
            _download(source["S3Uri"], root / "input" / "data" / channel["ChannelName"])
        checkpoints = (job.checkpoint_config or {}).get("S3Uri")
        if checkpoints:
            _download(checkpoints, root / "checkpoints")
        done, log = self._entry_point(
            ["train"], root, {"SM_ROOT": str(root), "TRAINING_JOB_NAME": job.training_job_name}
        )
        definitions = getattr(job, "local_metric_definitions", [])
        job.final_metric_data_list = _metrics(log, definitions, utcnow())
        if checkpoints and (root / "checkpoints").is_dir():
            _upload(root / "checkpoints", checkpoints)
        if done.returncode != 0:
            return "Failed", _reason(root / "output" / "failure", done.returncode)
        bucket, key = split(job.model_artifacts["S3ModelArtifacts"])
        _s3().put_object(Bucket=bucket, Key=key, Body=_tar(root / "model"))
        return "Completed", ""

    def _process(self, job: Any, root: Path) -> tuple[str, str]:
        processing = root / "processing"
        for item in job.processing_inputs or []:
            source = item["S3Input"]
            _download(source["S3Uri"], processing / source["LocalPath"].removeprefix(PROCESSING_ROOT + "/"))
        arguments = [a.replace(PROCESSING_ROOT, str(processing)) for a in job.app_specification["ContainerArguments"]]
        done, _ = self._entry_point(
            arguments, root, {"SM_ROOT": str(root / "ml"), "SM_PROCESSING_ROOT": str(processing)}
        )
        if done.returncode != 0:
            return "Failed", _reason(root / "ml" / "output" / "message", done.returncode)
        for output in job.processing_output_config["Outputs"]:
            local = processing / output["S3Output"]["LocalPath"].removeprefix(PROCESSING_ROOT + "/")
            _upload(local, output["S3Output"]["S3Uri"])
        return "Completed", ""

    def _transform(self, job: Any, root: Path) -> tuple[str, str]:
        """The model's container serves (``serve``); each input object's lines are posted to it in payloads of
        at most MaxPayloadInMB, and the answers joined by lines into ``<input name>.out`` under S3OutputPath
        (https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform.html)."""
        model_data = _model_data(str(job.model_name))
        bucket, key = split(model_data)
        (root / "model").mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(_s3().get_object(Bucket=bucket, Key=key)["Body"].read())) as archive:
            archive.extractall(root / "model", filter="data")
        port = _free_port()
        environment = {**self.environment, "SM_ROOT": str(root), "SAGEMAKER_BIND_TO_PORT": str(port),
                       "PYTHONPATH": str(self.project_root)}  # fmt: skip
        with (root / "job.log").open("w", encoding="utf-8") as log:
            server = subprocess.Popen(  # noqa: S603 - the image's entry point, argv built here
                [*ENTRY_POINT, "serve"], cwd=root, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                if not _ready(f"http://127.0.0.1:{port}/ping", server):
                    return "Failed", f"ClientError: the container did not answer /ping (exit {server.poll()})"
                return self._score(job, f"http://127.0.0.1:{port}/invocations")
            finally:
                server.terminate()
                server.wait(timeout=30)

    def _score(self, job: Any, url: str) -> tuple[str, str]:
        import urllib.error
        import urllib.request

        s3 = _s3()
        source = job.transform_input["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = split(source)
        folder = prefix.rpartition("/")[0]
        limit = int(job.max_payload_in_mb or 6) * 1024 * 1024
        out_bucket, out_prefix = split(job.transform_output["S3OutputPath"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for listed in page.get("Contents", []):
                lines = s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read().decode("utf-8").splitlines()
                answers: list[str] = []
                for payload in _payloads([line for line in lines if line.strip()], limit):
                    request = urllib.request.Request(  # noqa: S310 - the local container on 127.0.0.1
                        url, data=payload.encode("utf-8"), headers={"Content-Type": "text/csv"}, method="POST"
                    )
                    try:
                        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310
                            answers.extend(response.read().decode("utf-8").splitlines())
                    except urllib.error.HTTPError as error:
                        detail = error.read().decode("utf-8", "replace").strip()
                        return "Failed", f"ClientError: {listed['Key']}: the container answered {error.code}: {detail}"
                name = listed["Key"].removeprefix(folder).lstrip("/")
                key = f"{out_prefix.rstrip('/')}/{name}.out".lstrip("/")
                s3.put_object(Bucket=out_bucket, Key=key, Body=("\n".join(answers) + "\n").encode("utf-8"))
        return "Completed", ""

    def _entry_point(self, arguments: list[str], root: Path, extra: Mapping[str, str]) -> tuple[Any, str]:
        root.mkdir(parents=True, exist_ok=True)
        environment = {**self.environment, **extra, "PYTHONPATH": str(self.project_root)}
        done = subprocess.run(  # noqa: S603 - the image's entry point, argv built here
            [*ENTRY_POINT, *arguments], cwd=root, env=environment, capture_output=True, text=True,
            timeout=JOB_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
        log = done.stdout + done.stderr
        (root / "job.log").write_text(log, encoding="utf-8")  # what SageMaker sends to CloudWatch Logs
        return done, log

    def wait(self) -> None:
        """Every job submitted so far (and any they lead to) has ended."""
        while True:
            with self._lock:
                pending = [future for future in self._futures if not future.done()]
            if not pending:
                return
            for future in pending:
                future.result()


_runner: Runner | None = None


@contextlib.contextmanager
def running(workdir: Path, environment: Mapping[str, str], project_root: Path) -> Iterator[Runner]:
    """Jobs created in the emulator while this is open run as local processes; all have ended after it."""
    global _runner
    runner = Runner(workdir=workdir, environment=dict(environment), project_root=project_root)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with ThreadPoolExecutor(max_workers=runner.workers, thread_name_prefix="sagemaker-job") as pool:
        runner._pool = pool
        _runner = runner
        try:
            yield runner
        finally:
            _runner = None
            runner.wait()
            runner._pool = None


def install() -> None:
    """Create*Job in the emulator starts the job's process (while a runner is active); see the module."""
    from moto.sagemaker.models import SageMakerModelBackend

    from mlops_platform.local.compat import _patch

    for kind, action in (
        ("training", "create_training_job"),
        ("processing", "create_processing_job"),
        ("transform", "create_transform_job"),
    ):
        _patch(SageMakerModelBackend, action, _runs_locally(kind, getattr(SageMakerModelBackend, action)))


def _runs_locally(kind: str, create: Any) -> Any:
    def create_and_run(backend: Any, **request: Any) -> Any:
        runner = _runner
        definitions = list((request.get("algorithm_specification") or {}).get("MetricDefinitions") or [])
        job = create(backend, **request)
        if runner is None:
            return job  # moto's own behaviour: Completed at once, nothing ran
        if kind == "training":
            # moto replaces the request's MetricDefinitions with its own sample; SageMaker keeps them.
            job.algorithm_specification["MetricDefinitions"] = definitions
            job.local_metric_definitions = definitions
            job.secondary_status = "Starting"
        setattr(job, f"{kind}_job_status", "InProgress")
        runner.submit(kind, job)
        return job

    return create_and_run


def _name(kind: str, job: Any) -> str:
    return str(getattr(job, f"{kind}_job_name"))


def _finish(kind: str, job: Any, status: str, reason: str) -> None:
    from moto.core.utils import utcnow

    now = utcnow()
    if reason:
        job.failure_reason = reason
        if kind == "processing":
            job.exit_message = reason
    if kind == "training":
        job.secondary_status = status
        job.training_end_time = now
    elif kind == "processing":
        job.processing_end_time = now
    else:
        job.transform_end_time = now
    job.last_modified_time = now
    setattr(job, f"{kind}_job_status", status)


def _reason(path: Path, status: int) -> str:
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip()[:1024]
    return f"AlgorithmError: the container exited with status {status} and wrote no reason"


def _metrics(log: str, definitions: list[dict[str, str]], now: Any) -> list[dict[str, Any]]:
    final = []
    for definition in definitions:
        values = re.findall(definition["Regex"], log)
        if values:
            last = values[-1] if isinstance(values[-1], str) else values[-1][0]
            with contextlib.suppress(ValueError):
                final.append({"MetricName": definition["Name"], "Value": float(last), "Timestamp": now})
    return final


def _model_data(model_name: str) -> str:
    """The model's artifact: its container's ModelDataUrl, or its model package's."""
    import boto3

    sagemaker = boto3.client("sagemaker")
    model = sagemaker.describe_model(ModelName=model_name)
    container = (model.get("Containers") or [model.get("PrimaryContainer") or {}])[0]
    if container.get("ModelDataUrl"):
        return str(container["ModelDataUrl"])
    package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
    return str(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"])


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str, server: Any, seconds: float = 60) -> bool:
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local
            if response.status == 200:
                return True
        time.sleep(0.2)
    return False


def _payloads(lines: list[str], limit: int) -> Iterator[str]:
    """MultiRecord: as many whole lines as fit in one payload."""
    batch: list[str] = []
    size = 0
    for line in lines:
        if batch and size + len(line) + 1 > limit:
            yield "\n".join(batch) + "\n"
            batch, size = [], 0
        batch.append(line)
        size += len(line.encode("utf-8")) + 1
    if batch:
        yield "\n".join(batch) + "\n"


def _s3() -> Any:
    import boto3

    return boto3.client("s3")


def _download(uri: str, local: Path) -> None:
    """S3Prefix: every object under the prefix, placed relative to the prefix (SageMaker's File mode)."""
    s3 = _s3()
    bucket, prefix = split(uri)
    folder = prefix if prefix.endswith("/") else prefix.rpartition("/")[0] + "/"
    local.mkdir(parents=True, exist_ok=True)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for listed in page.get("Contents", []):
            relative = listed["Key"].removeprefix(folder).lstrip("/") if folder != "/" else listed["Key"]
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())


def _upload(local: Path, uri: str) -> None:
    s3 = _s3()
    bucket, prefix = split(uri)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = (
            f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
            if prefix
            else path.relative_to(local).as_posix()
        )
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())


def _tar(folder: Path) -> bytes:
    """model.tar.gz: the model folder's files at the archive's root, as SageMaker packs /opt/ml/model."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buffer.getvalue()
