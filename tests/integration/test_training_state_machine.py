"""The deployed training state machine, executed by moto's Step Functions interpreter.

The definition is the one `make synth` renders for dev, with its CloudFormation tokens replaced by
the moto resources created here. The Lambda tasks run the real handlers in-process (moto runs
Lambda code only in Docker), against moto S3, DynamoDB and SageMaker. The only difference between
the deployed definition and the one executed here is ``for_moto`` below.

moto records SageMaker jobs without running them. Where a later step reads what a job writes, the
job's work is done here, by the real code where the platform has it (``SageMakerJobs``):

* a Processing job (prepare, and each model's baseline) runs its container code in-process, as the
  image would: its inputs downloaded from moto S3 into a folder laid out like /opt/ml/processing,
  its ``ContainerArguments`` given to the entry point, its outputs uploaded where SageMaker would
  put them. A job that exits non-zero is marked Failed and its create call fails with the job's
  exit message, standing in for what ``.sync`` reports;
* a training job leaves a ``model.tar.gz`` at its artifact's URI: a model of its algorithm, trained
  once per module by the real train entry point on the shipped dataset (moto's jobs train nothing).

What moto 5.2.5's interpreter lacks is added here (``aws_fidelity``), each as AWS documents it:

* ``$$.Execution.RedriveCount`` in the context object (0, or the redrive being emulated);
* the optimized SageMaker integration's error names: a refused create call is
  ``SageMaker.AmazonSageMakerException`` with the SDK's message as the cause ("... (Service:
  AmazonSageMaker; Status Code: 400; Error Code: ResourceLimitExceeded; ...)"), a job that failed is
  ``States.TaskFailed`` with the job's description as the cause (moto names both ``States.Runtime``);
* a Distributed Map fails with ``States.ExceedToleratedFailureThreshold`` when more children failed
  than it tolerates (moto counts failures but never stops);
* SageMaker refuses a job name already taken (``ResourceInUse``), which moto does not;
* a ResultWriter's ``Prefix.$`` is read from the Map state's input (moto reads the Map's output);
* a Map iteration that failed with a ``States.`` error passes it on (moto refuses the name);
* Wait states and retries do not sleep;
* a Task's ``"RoleArn.$"`` parameter is a path, as for any other field: moto's grammar takes the key
  for the ``Credentials`` field's keyword and sends the path itself as a literal;
* an AWS SDK integration's ``GetObject`` returns its ``Body`` as a string, as Step Functions does
  (https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html); moto passes the
  stream on (localstack/localstack#10787, the interpreter moto's is taken from).

How the execution ended reaches the ledger through the run-outcome function (EventBridge status
events, which moto does not deliver): ``record_outcome`` calls the real handler with the documented
event, built from moto's own ``DescribeExecution``, and the handler reads moto's execution history.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.awslambda.models import LambdaBackend
from moto.sagemaker.exceptions import ResourceInUseException, SagemakerClientError, ValidationError
from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent, FailureEventException
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.result_writer_decl import ResultWriter
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
    StateTaskServiceUnsupported,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from mlops_constructs.publishing import EXAMPLE_DATA, config_key, example_seed_prefix
from mlops_constructs.tenant_job_roles import JOB_KINDS, job_roles_document, job_roles_key
from mlops_platform.local import interpreter
from mlops_platform.reports import run_report
from tests.conftest import ROOT, create_ledger_table, load_handler
from tests.unit.training.conftest import EXAMPLE_ALGORITHMS, prepare_example, train_example

# isort: split
# After tests.unit.training.conftest, which puts the training image's code on the path.
from mlops_platform.data import prepare
from mlops_platform.monitoring import baseline_job
from mlops_platform.sagemaker_paths import ProcessingPaths

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # JobFailed stands for a job .sync reports failed; moto notes that SageMaker's model has no such error.
    pytest.mark.filterwarnings(r"ignore:Exception\(JobFailed\):UserWarning"),
]

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
FUNCTIONS = {
    "PipelinePlanFunction": "plan",
    "PipelineEvaluateFunction": "evaluate",
    "PipelineTrainingJobFunction": "training_job",
    "PipelineOutcomesFunction": "run_outcome",
}
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}
ZONES = ("Raw", "Curated", "Features", "Artifacts", "Predictions")
SYNC = re.compile(r"(arn:aws:states:::sagemaker:\w+)\.sync")
TOLERATED = re.compile(r'"ToleratedFailurePercentage":(\d+)([,}])')


def for_moto(definition: str) -> str:
    """The deployed definition, as moto 5.2.5 can execute it; the only difference from what deploys.

    * ``.sync`` SageMaker tasks become plain calls: moto does not wait for jobs (its jobs start
      Completed), so a task returns the Create* response;
    * ``ToleratedFailurePercentage`` becomes a float: moto's ASL parser rejects the integer that
      CDK renders (``50`` fails, ``50.0`` parses).
    """
    return TOLERATED.sub(r'"ToleratedFailurePercentage":\1.0\2', SYNC.sub(r"\1", definition))


def bucket_name(zone: str) -> str:
    return f"{zone.lower()}-zone-test"


def resolve(value: Any) -> str:
    """A CloudFormation value of the Training template, as the moto resources of this test name it."""
    if isinstance(value, str):
        return value
    (function, argument), *_ = value.items()
    if function == "Fn::Join":
        return argument[0].join(resolve(part) for part in argument[1])
    if function == "Fn::Sub":
        return argument.replace("${AWS::URLSuffix}", "amazonaws.com")
    if function == "Ref":
        return PSEUDO_PARAMETERS.get(argument, argument)
    if function == "Fn::GetAtt":
        logical_id, attribute = argument
        for prefix in FUNCTIONS:
            if logical_id.startswith(prefix):
                return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
        if attribute == "Arn" and "Role" in logical_id:
            return f"arn:aws:iam::{ACCOUNT}:role/{logical_id}"
        return f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{logical_id}" if "Bus" in logical_id else logical_id
    if function == "Fn::GetStackOutput":
        output = argument["OutputName"]
        for zone in ZONES:
            if f"{zone}ZoneBucket" in output:
                return f"arn:aws:s3:::{bucket_name(zone)}" if "Arn" in output else bucket_name(zone)
        if "Ledger" in output:
            return "ledger-test"
        if "PlatformKey" in output:
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/test"
        raise AssertionError(f"unexpected stack output {output}")
    raise AssertionError(f"unexpected token {value}")


@pytest.fixture(scope="module")
def training_template(synthesized) -> dict[str, Any]:
    return synthesized.template_json("dev", "training")


@pytest.fixture(scope="module")
def deployed_definition(training_template) -> str:
    [machine] = [r for r in training_template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    return resolve(machine["Properties"]["DefinitionString"])


@pytest.fixture
def handlers(training_template, monkeypatch):
    """The three handlers, with the environment variables CloudFormation would give them."""
    loaded = {}
    for logical_id, resource in training_template["Resources"].items():
        folder = next((f for prefix, f in FUNCTIONS.items() if logical_id.startswith(prefix)), None)
        if resource["Type"] != "AWS::Lambda::Function" or folder is None:
            continue
        for name, value in resource["Properties"]["Environment"]["Variables"].items():
            monkeypatch.setenv(name, resolve(value))
        loaded[logical_id] = load_handler(folder)
    return loaded


class Context:
    function_name = "test"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test"
    aws_request_id = "request-1"


class Calls(list[tuple[str, dict[str, Any]]]):
    """(function, event) of every invocation; ``outputs``: (function, output) of those that returned."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[tuple[str, Any]] = []


@pytest.fixture
def lambdas_in_process(handlers, monkeypatch):
    """moto's Lambda invoke, answered by the handler module the function ARN names."""
    calls = Calls()

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        logical_id = function_name.rsplit(":", 1)[-1]
        event = json.loads(body)
        calls.append((logical_id, event))
        try:
            output = handlers[logical_id].handler(event, Context())
            calls.outputs.append((logical_id, output))
            return json.dumps(output).encode()
        except Exception as error:  # what Lambda reports for an unhandled exception
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()

    monkeypatch.setattr(LambdaBackend, "invoke", invoke)
    return calls


def reports_metrics(monkeypatch, value_of) -> None:
    """moto's training jobs report only train:progress; give each the objective metric SageMaker would parse."""
    original = FakeTrainingJob.__init__

    def init(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.final_metric_data_list = [
            {"MetricName": "validation:auc", "Value": value_of(self.training_job_name), "Timestamp": self.creation_time}
        ]

    monkeypatch.setattr(FakeTrainingJob, "__init__", init)


PROCESSING_ROOT = "/opt/ml/processing"
# The training image's Processing entry points (mlops_platform/training/__main__.py), with their folders passed in.
PROCESSING_ENTRY_POINTS = {"prepare": prepare.main, "baseline": baseline_job.main}


@pytest.fixture(scope="module")
def model_archives(tmp_path_factory) -> dict[str, bytes]:
    """model.tar.gz of each example algorithm, trained by the real train entry point on the shipped dataset."""
    root = tmp_path_factory.mktemp("models")
    prepared = prepare_example(root / "prepare")
    return {
        algorithm: train_example(prepared.features, algorithm, root / algorithm).read_bytes()
        for algorithm in EXAMPLE_ALGORITHMS
    }


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class ResourceLimitExceeded(SagemakerClientError):
    code = "ResourceLimitExceeded"

    def __init__(self, message: str):
        super().__init__(message)


class JobFailed(SagemakerClientError):
    """A job that ended Failed: what .sync reports as States.TaskFailed, with the job's description as the cause."""

    code = "JobFailed"

    def __init__(self, description: dict[str, Any]):
        super().__init__(json.dumps(description))


def sagemaker_failure(env: Any, error: ClientError) -> FailureEvent:
    """A SageMaker error as the optimized integration names it (moto names every one States.Runtime)."""
    code, message = error.response["Error"]["Code"], error.response["Error"]["Message"]
    if code == "JobFailed":
        name: Any = StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed)
        text, cause = "States.TaskFailed", message
    else:
        name = CustomErrorName("SageMaker.AmazonSageMakerException")
        text = "SageMaker.AmazonSageMakerException"
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        request_id = error.response["ResponseMetadata"].get("RequestId", "")
        cause = (
            f"{message} (Service: AmazonSageMaker; Status Code: {status}; Error Code: {code}; "
            f"Request ID: {request_id}; Proxy: null)"
        )
    return FailureEvent(
        env=env,
        error_name=name,
        event_type=HistoryEventType.TaskFailed,
        event_details=EventDetails(
            taskFailedEventDetails=TaskFailedEventDetails(error=text, cause=cause, resourceType="sagemaker")
        ),
    )


@pytest.fixture(autouse=True)
def aws_fidelity(monkeypatch) -> dict[str, int]:
    """What moto 5.2.5's interpreter lacks, as AWS documents it (see the module's docstring)."""
    execution: dict[str, int] = {"RedriveCount": 0}
    evaluation_environment = ExecutionWorker._get_evaluation_environment

    def with_redrive_count(worker: Any) -> Any:
        environment = evaluation_environment(worker)
        environment.states.context_object.context_object_data["Execution"]["RedriveCount"] = execution["RedriveCount"]
        return environment

    unsupported_error = StateTaskServiceUnsupported._from_error

    def named_like_aws(task: Any, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError) and task._get_boto_service_name() == "sagemaker":
            return sagemaker_failure(env, ex)
        return unsupported_error(task, env, ex)

    map_run = DistributedIterationComponent._map_run

    def stop_beyond_tolerance(component: Any, env: Any, eval_input: Any) -> None:
        map_run(component, env, eval_input)
        record = eval_input.map_run_record
        failed, total = record.item_counter.failed.get(), record.item_counter.total.get()
        if total and 100 * failed > (record.tolerated_failure_percentage or 0) * total:
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(
                        executionFailedEventDetails={
                            "error": "States.ExceedToleratedFailureThreshold",
                            "cause": "The specified tolerated failure threshold was exceeded",
                        }
                    ),
                )
            )

    # The interpreter fixes `mlops local` applies too (mlops_platform/local/interpreter.py, one place).
    body_as_text = interpreter._body_as_text(StateTaskServiceAwsSdk._eval_service_task)
    writer_reads_the_state_input = interpreter._writer_reads_the_state_input
    error_name = interpreter._error_name

    role_arn_path = interpreter._role_arn_path(Preprocessor.visitPayload_binding_value)

    monkeypatch.setattr(StateTaskServiceAwsSdk, "_eval_service_task", body_as_text)
    monkeypatch.setattr(Preprocessor, "visitPayload_binding_value", role_arn_path)
    monkeypatch.setattr(ResultWriter, "_eval_body", writer_reads_the_state_input)
    monkeypatch.setattr(iteration_worker, "CustomErrorName", error_name)
    monkeypatch.setattr(ExecutionWorker, "_get_evaluation_environment", with_redrive_count)
    monkeypatch.setattr(StateTaskServiceUnsupported, "_from_error", named_like_aws)
    monkeypatch.setattr(DistributedIterationComponent, "_map_run", stop_beyond_tolerance)
    monkeypatch.setattr(WaitFunction, "_wait_interval", lambda self, env, wait_seconds: None)
    monkeypatch.setattr(retrier_decl, "time", SimpleNamespace(sleep=lambda seconds: None))
    return execution


class SageMakerJobs:
    """What SageMaker's jobs would leave behind, done in-process (see the module's docstring)."""

    def __init__(self, root, archives: dict[str, bytes]) -> None:
        self.root = root
        self.archives = archives
        self.broken_models: set[str] = set()
        self.ran: list[tuple[str, int]] = []  # (processing job name, exit status)
        self.failures: dict[str, str] = {}  # processing job name: FailureReason, for jobs that fail at once

    def install(self, monkeypatch) -> None:
        create_processing_job = SageMakerModelBackend.create_processing_job
        training_job_init = FakeTrainingJob.__init__
        jobs = self

        def create_and_run(backend: Any, **request: Any) -> Any:
            if request["processing_job_name"] in backend.processing_jobs:
                # SageMaker keeps job names forever; moto would overwrite the job.
                raise ResourceInUseException(f"Job name {request['processing_job_name']} must be unique")
            job = create_processing_job(backend, **request)
            jobs.process(job)
            return job

        def train(job: Any, *args: Any, **kwargs: Any) -> None:
            training_job_init(job, *args, **kwargs)
            jobs.leave_model(job)

        monkeypatch.setattr(SageMakerModelBackend, "create_processing_job", create_and_run)
        monkeypatch.setattr(FakeTrainingJob, "__init__", train)

    def leave_model(self, job: Any) -> None:
        """The model.tar.gz a training job of this algorithm writes, or garbage for a model named broken."""
        algorithm = job.hyper_parameters["mlops_algorithm"]
        model = job.hyper_parameters["mlops_model"]
        body = b"not a model" if model in self.broken_models else self.archives[algorithm]
        bucket, key = split(job.model_artifacts["S3ModelArtifacts"])
        boto3.client("s3", region_name=REGION).put_object(Bucket=bucket, Key=key, Body=body)

    def process(self, job: Any) -> None:
        """Run a Processing job's container code on its inputs; upload its outputs, or fail as .sync would."""
        for name, reason in self.failures.items():
            if job.processing_job_name == name:
                job.processing_job_status = "Failed"
                self.ran.append((job.processing_job_name, 1))
                raise JobFailed({"ProcessingJobName": name, "ProcessingJobStatus": "Failed", "FailureReason": reason})
        s3 = boto3.client("s3", region_name=REGION)
        root = self.root / job.processing_job_name
        for processing_input in job.processing_inputs:
            self.download(s3, processing_input["S3Input"], root)
        command, *arguments = (
            argument.replace(PROCESSING_ROOT, str(root)) for argument in job.app_specification["ContainerArguments"]
        )
        paths = ProcessingPaths(root=root, message=root / "ml-output" / "message")
        status = PROCESSING_ENTRY_POINTS[command](arguments, paths)
        self.ran.append((job.processing_job_name, status))
        if status != 0:
            job.processing_job_status = "Failed"
            job.failure_reason = paths.message.read_text().strip()
            raise JobFailed({"ProcessingJobName": job.processing_job_name, "ProcessingJobStatus": "Failed",
                             "FailureReason": job.failure_reason})  # fmt: skip
        for output in job.processing_output_config["Outputs"]:
            local = root / output["S3Output"]["LocalPath"].removeprefix(PROCESSING_ROOT + "/")
            bucket, prefix = split(output["S3Output"]["S3Uri"])
            for path in sorted(p for p in local.rglob("*") if p.is_file()):
                key = f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
                s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    @staticmethod
    def download(s3: Any, source: dict[str, Any], root) -> None:
        """S3Prefix: every object under the prefix, placed relative to the prefix's last folder."""
        bucket, prefix = split(source["S3Uri"])
        folder = prefix.rpartition("/")[0]
        local = root / source["LocalPath"].removeprefix(PROCESSING_ROOT + "/")
        for listed in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            target = local / listed["Key"].removeprefix(folder).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read())


@pytest.fixture
def sagemaker_jobs(tmp_path, model_archives, monkeypatch) -> SageMakerJobs:
    jobs = SageMakerJobs(tmp_path, model_archives)
    jobs.install(monkeypatch)
    return jobs


EXAMPLE_JOB_ROLES = {
    kind: f"arn:aws:iam::{ACCOUNT}:role/dev-Training-PipelineTenantJobRolesexample-{kind}" for kind in JOB_KINDS
}


def create_platform(published: dict[str, Any]) -> None:
    """The zones, the published config and the example's seeded records, as Foundation and Training deploy them."""
    s3 = boto3.client("s3", region_name=REGION)
    for zone in ZONES:
        s3.create_bucket(Bucket=bucket_name(zone), CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket_name("Artifacts"), Key=config_key("example"), Body=json.dumps(published))
    # The tenant's job roles, as Training publishes them (mlops_constructs/tenant_job_roles.py).
    s3.put_object(
        Bucket=bucket_name("Artifacts"),
        Key=job_roles_key("example"),
        Body=json.dumps(job_roles_document(EXAMPLE_JOB_ROLES)),
    )
    for path in EXAMPLE_DATA.glob("*.jsonl"):
        key = example_seed_prefix(published["dataset"]["name"]) + path.name
        s3.put_object(Bucket=bucket_name("Raw"), Key=key, Body=path.read_bytes())
    create_ledger_table("ledger-test", REGION)


def execute(definition: str, execution_input: dict[str, Any], name: str = "run-1") -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="training", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/StateMachineRole"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(execution_input))
    return wait_for(execution["executionArn"])


def wait_for(execution_arn: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    raise AssertionError("the execution did not finish within 120 seconds")


def split_rows(s3: Any, run_id: str) -> dict[str, int]:
    """Rows of each split file the prepare job left in the features zone."""
    rows = {}
    for listed in s3.list_objects_v2(Bucket=bucket_name("Features"), Prefix="features/")["Contents"]:
        name = listed["Key"].rpartition("/")[2]
        if name.startswith(f"{run_id}-") and name.endswith(".parquet"):
            body = s3.get_object(Bucket=bucket_name("Features"), Key=listed["Key"])["Body"].read()
            rows[name.removeprefix(f"{run_id}-").removesuffix(".parquet")] = len(pd.read_parquet(io.BytesIO(body)))
    return rows


def ledger_rows(run_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=REGION).Table("ledger-test")
    return table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"RUN#{run_id}"})["Items"]


STATUS_EVENT = json.loads(
    (ROOT / "tests" / "unit" / "events" / "stepfunctions_execution_status_change.json").read_text()
)


def status_event(described: dict[str, Any]) -> dict[str, Any]:
    """The documented ``Step Functions Execution Status Change`` event, for an execution moto ran."""

    def milliseconds(moment: Any) -> int | None:
        return int(moment.timestamp() * 1000) if moment is not None else None

    return {
        **STATUS_EVENT,
        "resources": [described["executionArn"]],
        "detail": {
            **STATUS_EVENT["detail"],
            "executionArn": described["executionArn"],
            "stateMachineArn": described["stateMachineArn"],
            "name": described["name"],
            "status": described["status"],
            "startDate": milliseconds(described["startDate"]),
            "stopDate": milliseconds(described.get("stopDate")),
            "input": described["input"],
            "output": described.get("output"),
            "error": described.get("error"),
            "cause": described.get("cause"),
            "redriveCount": described.get("redriveCount", 0),
        },
    }


def record_outcome(handlers: dict[str, Any], described: dict[str, Any]) -> dict[str, Any]:
    """What EventBridge does when the execution ends: the run-outcome function records it. The run's report."""
    [outcome] = [module for logical_id, module in handlers.items() if logical_id.startswith("PipelineOutcomes")]
    outcome.recorder.machine = described["stateMachineArn"]
    outcome.recorder.queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="outcomes")["QueueUrl"]
    assert outcome.handler(status_event(described), Context())["outcome"] == "recorded"
    return run_report.report(described["name"], "ledger-test", ledger_rows(described["name"]))


MOTO = {"stepfunctions": {"execute_state_machine": True}}


def test_for_moto_changes_only_sync_suffixes_and_the_tolerated_percentage(deployed_definition):
    executed = for_moto(deployed_definition)

    assert ".sync" in deployed_definition
    assert ".sync" not in executed
    assert json.loads(executed)["States"]["Train"]["ToleratedFailurePercentage"] == 50.0
    restored = executed.replace('"ToleratedFailurePercentage":50.0', '"ToleratedFailurePercentage":50')
    assert SYNC.sub(r"\1", deployed_definition) == restored


@mock_aws(config=MOTO)
def test_a_run_plans_trains_every_trial_baselines_and_registers_the_best_and_predicts(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    # Trial 00003's job is the best; every trial reports the objective.
    reports_metrics(monkeypatch, lambda name: 0.99 if "-00003-" in name else 0.9)

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["run_id"] == "run-1"
    assert output["tenant"] == "example"
    assert output["trials"]["total"] == example.trial_count == 6
    best = {entry["model"]: entry for entry in output["best"]}
    assert set(best) == {"xgboost", "linear"}
    assert best["xgboost"]["trial"] == "00003"
    assert best["xgboost"]["approval_status"] == "Approved"  # 0.99 >= 0.95 and dev auto-approves
    assert best["linear"]["approval_status"] == "PendingManualApproval"  # 0.9 < 0.95
    assert output["predictions"].startswith(f"s3://{bucket_name('Predictions')}/predictions/example/")

    sagemaker = boto3.client("sagemaker", region_name=REGION)
    jobs = sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    assert len(jobs) == 6
    assert all(re.fullmatch(r"mlops-dev-[0-9a-f]{10}-0000[0-5]-a0", job["TrainingJobName"]) for job in jobs)
    # prepare, then one baseline job per chosen model, named after its trial; every one exited 0. Jobs a
    # redrive would rerun carry the redrive count (0: the first attempt).
    prepare_job, *baseline_jobs = [name for name, _ in sagemaker_jobs.ran]
    assert prepare_job.endswith("-prep-r0")
    assert sorted(baseline_jobs) == sorted(best[m]["job_name"].removesuffix("-a0") + "-bl-r0" for m in best)
    assert {status for _, status in sagemaker_jobs.ran} == {0}
    # Every job ran as the example tenant's role of its kind, read from the published mapping.
    for job in jobs:
        described = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
        assert described["RoleArn"] == EXAMPLE_JOB_ROLES["train"]
    assert sagemaker.describe_processing_job(ProcessingJobName=prepare_job)["RoleArn"] == EXAMPLE_JOB_ROLES["prepare"]
    for name in baseline_jobs:
        assert sagemaker.describe_processing_job(ProcessingJobName=name)["RoleArn"] == EXAMPLE_JOB_ROLES["baseline"]
    groups = {g["ModelPackageGroupName"] for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]}
    assert groups == {"mlops-dev-example-xgboost", "mlops-dev-example-linear"}

    # The transform job SageMaker received is the plan's request (CDK's task builds it), named per redrive.
    [summary] = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    transform = sagemaker.describe_transform_job(TransformJobName=summary["TransformJobName"])
    [predict] = [output["predict"] for logical_id, output in lambdas_in_process.outputs if "Plan" in logical_id]
    assert transform["TransformJobName"] == predict["TransformJobName"] + "-r0"
    assert transform["ModelName"] == predict["ModelName"] + "-r0"
    model = sagemaker.describe_model(ModelName=transform["ModelName"])
    assert model["ExecutionRoleArn"] == EXAMPLE_JOB_ROLES["transform"]
    for field in ("TransformInput", "TransformOutput", "TransformResources", "BatchStrategy", "MaxPayloadInMB"):
        assert transform[field] == predict[field], field

    s3 = boto3.client("s3", region_name=REGION)
    prepared = split_rows(s3, "run-1")
    for model, entry in best.items():
        package = sagemaker.describe_model_package(ModelPackageName=entry["model_package_arn"])
        model_data = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        baseline_uri = model_data.removesuffix("model.tar.gz") + "baseline.json"  # the drift monitor's rule
        assert entry["baseline"] == baseline_uri
        metadata = package["CustomerMetadataProperties"]
        assert metadata["baseline"] == baseline_uri
        body = s3.get_object(Bucket=bucket_name("Artifacts"), Key=split(baseline_uri)[1])["Body"].read()
        assert metadata["baseline_sha256"] == hashlib.sha256(body).hexdigest()
        assert package["DriftCheckBaselines"]["ModelDataQuality"]["Statistics"]["S3Uri"] == baseline_uri
        baseline = json.loads(body)
        assert baseline["model"]["algorithm"] == model
        assert baseline["feature_order"] == list(example.dataset.features)
        # Features from the training rows; predictions from the rows prepare held out, which the model never saw.
        assert baseline["rows"] == prepared["train"] > 0
        assert baseline["predictions"]["count"] == prepared["validation"] + prepared["test"] > 0

    rows = ledger_rows("run-1")
    assert {row["sk"].split("#")[0] for row in rows} == {"RUN", "TRIAL", "PACKAGE"}
    packages = {row["model"]: row for row in rows if row["sk"].startswith("PACKAGE#")}
    assert {model: row["baseline"] for model, row in packages.items()} == {m: e["baseline"] for m, e in best.items()}
    assert [(logical_id.split("Function")[0], event["action"]) for logical_id, event in lambdas_in_process[1:]] == [
        ("PipelineEvaluate", "evaluate"),
        ("PipelineEvaluate", "register"),
    ]
    [run_record] = [row for row in rows if row["sk"] == "RUN"]
    assert run_record["execution_arn"] == result["executionArn"]  # the plan step records it ($$.Execution.Id)
    report = record_outcome(handlers, result)
    assert (report["run"]["status"], report["run"]["failed_state"]) == ("succeeded", None)
    assert report["run"]["finished_at"].startswith("20")


@mock_aws(config=MOTO)
def test_a_failed_baseline_fails_the_run_in_its_state_registers_nothing_and_the_ledger_says_why(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.99)
    sagemaker_jobs.broken_models.add("linear")  # its training jobs leave an artifact that is not a model

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    # Not caught: the execution fails where it failed, so a redrive reruns that baseline job.
    assert result["status"] == "FAILED"
    assert result["error"] == "States.TaskFailed"
    assert "not a readable model.tar.gz" in result["cause"]
    assert [status for name, status in sagemaker_jobs.ran if name.endswith("-bl-r0")].count(1) == 1
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert sagemaker.list_transform_jobs()["TransformJobSummaries"] == []
    assert {row["sk"].split("#")[0] for row in ledger_rows("run-1")} == {"RUN", "TRIAL"}
    assert [event["action"] for _, event in lambdas_in_process[1:]] == ["evaluate"]  # register never ran
    run = record_outcome(handlers, result)["run"]
    assert (run["status"], run["failed_state"], run["error"]) == ("failed", "StartBaseline", "States.TaskFailed")
    assert "not a readable model.tar.gz" in run["cause"]


@mock_aws(config=MOTO)
def test_a_failed_prepare_job_fails_in_prepare_and_a_redrive_starts_it_under_a_new_name(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs, monkeypatch, aws_fidelity
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.99)
    digest = hashlib.sha256(b"run-1").hexdigest()[:10]
    sagemaker_jobs.failures[f"mlops-dev-{digest}-prep-r0"] = "ClientError: the raw zone had no records for the day"

    failed = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert (failed["status"], failed["error"]) == ("FAILED", "States.TaskFailed")
    report = record_outcome(handlers, failed)
    assert (report["run"]["status"], report["run"]["failed_state"]) == ("failed", "Prepare")
    assert report["run"]["cause"] == "ClientError: the raw zone had no records for the day"
    text = run_report.text(report)
    assert "run run-1 of tenant example: failed" in text
    assert "  failed in  Prepare: States.TaskFailed: ClientError: the raw zone had no records for the day" in text

    # A redrive reruns Prepare. moto cannot redrive; the redriven Prepare is the same state with
    # $$.Execution.RedriveCount 1, and the failed job's name is still taken (SageMaker keeps names).
    aws_fidelity["RedriveCount"] = 1
    sfn = boto3.client("stepfunctions", region_name=REGION)
    redriven = sfn.start_execution(
        stateMachineArn=failed["stateMachineArn"], name="run-1-redrive", input=json.dumps({"tenant": "example"})
    )
    assert wait_for(redriven["executionArn"])["status"] == "SUCCEEDED"
    assert [name for name, _ in sagemaker_jobs.ran if "-prep-" in name] == [
        f"mlops-dev-{digest}-prep-r0",
        f"mlops-dev-{hashlib.sha256(b'run-1-redrive').hexdigest()[:10]}-prep-r1",
    ]


@mock_aws(config=MOTO)
def test_a_run_with_one_model_trains_only_that_models_trials(
    deployed_definition, platform_config, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.97)

    result = execute(for_moto(deployed_definition), {"tenant": "example", "models": ["linear"]})

    assert result["status"] == "SUCCEEDED", result
    assert [entry["model"] for entry in json.loads(result["output"])["best"]] == ["linear"]
    assert len(boto3.client("sagemaker", region_name=REGION).list_training_jobs()["TrainingJobSummaries"]) == 2


@mock_aws(config=MOTO)
def test_without_an_approved_model_the_run_succeeds_without_predictions(
    deployed_definition, platform_config, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.5)

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["predictions"] is None
    assert {entry["approval_status"] for entry in output["best"]} == {"PendingManualApproval"}
    assert boto3.client("sagemaker", region_name=REGION).list_transform_jobs()["TransformJobSummaries"] == []


@mock_aws(config=MOTO)
def test_trials_without_metrics_end_the_run_in_its_no_usable_trial_state(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs
):
    [example] = platform_config.pipelines
    create_platform(example.published())  # moto's jobs report train:progress only, no objective

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "FAILED"
    assert result["error"] == "NoUsableTrial"
    assert "validation:auc" in result["cause"]
    assert {row["sk"].split("#")[0] for row in ledger_rows("run-1")} == {"RUN", "TRIAL"}
    run = record_outcome(handlers, result)["run"]
    assert (run["status"], run["failed_state"], run["error"]) == ("failed", "NoUsableTrial", "NoUsableTrial")
    assert run["cause"] == json.loads(result["cause"])["errorMessage"]  # the Lambda's message, not its envelope


def reject_trials(monkeypatch, rejected: Callable[[str], str | None]) -> None:
    """CreateTrainingJob refuses the trials ``rejected`` names a reason for (ValidationException)."""
    create = SageMakerModelBackend.create_training_job

    def create_or_refuse(backend: Any, **request: Any) -> Any:
        reason = rejected(request["training_job_name"])
        if reason:
            raise ValidationError(message=reason)
        return create(backend, **request)

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_or_refuse)


@mock_aws(config=MOTO)
def test_when_more_trials_fail_than_tolerated_the_models_with_a_usable_trial_are_chosen_for_a_person(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.99)
    # Every xgboost trial (00000-00003) is refused: 4 of 6 failed, beyond dev's 50%.
    xgboost = re.compile(r"-0000[0-3]-a\d+$")
    reject_trials(monkeypatch, lambda name: "Invalid instance type for xgboost" if xgboost.search(name) else None)

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert [(entry["model"], entry["approval_status"]) for entry in output["best"]] == [
        ("linear", "PendingManualApproval")  # 0.99 meets the threshold; a person looks at a partial run
    ]
    run = record_outcome(handlers, result)["run"]
    assert run["status"] == "succeeded"
    assert run["tolerance_exceeded"] is True
    # moto's ResultWriter writes no result files, so the refused trials are known only as without a result.
    assert run["reason"] == (
        "more than 50% of the trials failed and the Map stopped: 0 of 6 failed, "
        "4 without a result (refused by SageMaker or never started)"
    )


@mock_aws(config=MOTO)
def test_when_every_trial_is_refused_the_run_ends_saying_how_many_failed_and_why(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reject_trials(monkeypatch, lambda name: "The hyperparameter eta0 is not a number")

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert (result["status"], result["error"]) == ("FAILED", "NoUsableTrial")
    cause = json.loads(result["cause"])["errorMessage"]
    assert cause.startswith("run 'run-1' has no trial with a finite validation:auc: more than 50% of the trials")
    assert "6 without a result (refused by SageMaker or never started)" in cause
    run = record_outcome(handlers, result)["run"]
    assert (run["status"], run["failed_state"], run["cause"]) == ("failed", "NoUsableTrial", cause)


@mock_aws(config=MOTO)
def test_a_quota_that_never_clears_makes_the_trial_give_up_after_the_configured_wait_and_say_so(
    deployed_definition, platform_config, handlers, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.99)
    attempts: list[str] = []

    def quota(name: str) -> str | None:
        if name.endswith("-00005-a0"):
            attempts.append(name)
            return "The account-level service limit 'ml.m5.large for training job usage' is 0 Instances"
        return None

    create = SageMakerModelBackend.create_training_job

    def create_or_limit(backend: Any, **request: Any) -> Any:
        if (reason := quota(request["training_job_name"])) is not None:
            raise ResourceLimitExceeded(reason)
        return create(backend, **request)

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_or_limit)

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "SUCCEEDED", result  # 1 of 6 trials lost is within the tolerance
    limit = platform_config.environment("dev").training.capacity_wait_limit_seconds
    waits = [60, 120, 240, 480, 960] + [1800] * ((limit - 1860 + 1799) // 1800)
    assert len(attempts) == len(waits) + 1  # a create after every wait, until the waits reach the limit
    # The child failed with CapacityUnavailable; moto's ResultWriter writes no result files to say so, and
    # SageMaker has no job of it: evaluation counts it without a result (tests/unit/test_evaluate.py reads causes).
    trial = next(row for row in ledger_rows("run-1") if row["sk"] == "TRIAL#00005")
    assert trial["status"] == "no-result"
    [metric] = boto3.client("cloudwatch", region_name=REGION).list_metrics(MetricName="TrialsGaveUpOnCapacity")[
        "Metrics"
    ]
    assert metric["Namespace"] == "mlops/dev"  # what the capacity alarm watches (tests/infra/test_training.py)


@mock_aws(config=MOTO)
def test_a_trials_history_grows_by_the_events_the_budget_counts_per_wait(deployed_definition, lambdas_in_process):
    """The per-state event counts tests/infra/test_training.py budgets with, checked on an executed trial."""
    from tests.infra.test_training import events_of, loop_through

    definition = json.loads(for_moto(deployed_definition))
    trial = definition["States"]["Train"]["ItemProcessor"]
    states = trial["States"]
    refusals = iter([True, True, False])

    create = SageMakerModelBackend.create_training_job

    def create_after_two_refusals(backend: Any, **request: Any) -> Any:
        if next(refusals):
            raise ResourceLimitExceeded("The account-level service limit is 0 Instances")
        return create(backend, **request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SageMakerModelBackend, "create_training_job", create_after_two_refusals)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="trial",
            definition=json.dumps({"StartAt": trial["StartAt"], "States": states}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/StateMachineRole",
        )["stateMachineArn"]
        item = {"trial": "00000", "run_id": "run-1", "job_name": "mlops-dev-0123456789-00000-a0", "attempt": 0,
                "request": {"AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
                            "HyperParameters": {}, "InputDataConfig": [],
                            "OutputDataConfig": {"S3OutputPath": "s3://artifacts/models"},
                            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
                            "StoppingCondition": {"MaxRuntimeInSeconds": 60}, "EnableManagedSpotTraining": False,
                            "CheckpointConfig": {"S3Uri": "s3://artifacts/checkpoints/00000/"}}}  # fmt: skip
        child_input = {
            "item": item,
            "current": {"job_name": item["job_name"], "attempt": 0},
            "wait": {"seconds": 60, "waited": 0},
            "poll": {"seconds": 60},
            "role_arn": EXAMPLE_JOB_ROLES["train"],
        }
        execution = sfn.start_execution(stateMachineArn=machine, name="trial-1", input=json.dumps(child_input))
        assert wait_for(execution["executionArn"])["status"] == "SUCCEEDED"
        events = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]

    loop = [name for name in loop_through(states, "WaitForCapacity") if name != "UseLongestWait"]  # not capped yet
    once = ["StartTraining", "TrialDone"]
    expected = 2 + 2 * sum(events_of(states[name]) for name in loop) + sum(events_of(states[name]) for name in once)
    assert len(events) == expected, [event["type"] for event in events]


@mock_aws(config=MOTO)
def test_an_unknown_tenant_fails_in_the_plan_state_with_a_clear_cause(
    deployed_definition, platform_config, handlers, lambdas_in_process
):
    [example] = platform_config.pipelines
    create_platform(example.published())

    result = execute(for_moto(deployed_definition), {"tenant": "nobody"})

    assert result["status"] == "FAILED"
    assert result["error"] == "PlanFailed"
    assert "nobody" in result["cause"]
    assert boto3.client("sagemaker", region_name=REGION).list_processing_jobs()["ProcessingJobSummaries"] == []
    # The plan never recorded the run; its end is recorded all the same, with the tenant it named.
    run = record_outcome(handlers, result)["run"]
    assert (run["status"], run["failed_state"], run["tenant"]) == ("failed", "PlanFailed", "nobody")


def test_the_rendered_definition_names_no_tenant(deployed_definition):
    assert "example" not in deployed_definition
