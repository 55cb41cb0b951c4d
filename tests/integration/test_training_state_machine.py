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
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from typing import Any

import boto3
import pandas as pd
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaBackend
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend

from mlops_constructs.publishing import EXAMPLE_DATA, config_key, example_seed_prefix
from tests.conftest import create_ledger_table, load_handler
from tests.unit.training.conftest import EXAMPLE_ALGORITHMS, prepare_example, train_example

# isort: split
# After tests.unit.training.conftest, which puts the training image's code on the path.
from mlops_platform.data import prepare
from mlops_platform.monitoring import baseline_job
from mlops_platform.sagemaker_paths import ProcessingPaths

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
FUNCTIONS = {
    "PipelinePlanFunction": "plan",
    "PipelineEvaluateFunction": "evaluate",
    "PipelineTrainingJobFunction": "training_job",
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


@pytest.fixture
def lambdas_in_process(handlers, monkeypatch):
    """moto's Lambda invoke, answered by the handler module the function ARN names."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        logical_id = function_name.rsplit(":", 1)[-1]
        event = json.loads(body)
        calls.append((logical_id, event))
        try:
            return json.dumps(handlers[logical_id].handler(event, Context())).encode()
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


class SageMakerJobs:
    """What SageMaker's jobs would leave behind, done in-process (see the module's docstring)."""

    def __init__(self, root, archives: dict[str, bytes]) -> None:
        self.root = root
        self.archives = archives
        self.broken_models: set[str] = set()
        self.ran: list[tuple[str, int]] = []  # (processing job name, exit status)

    def install(self, monkeypatch) -> None:
        create_processing_job = SageMakerModelBackend.create_processing_job
        training_job_init = FakeTrainingJob.__init__
        jobs = self

        def create_and_run(backend: Any, **request: Any) -> Any:
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
            raise ValidationError(message=f"Processing job failed: {paths.message.read_text().strip()}")
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


def create_platform(published: dict[str, Any]) -> None:
    """The zones, the published config and the example's seeded records, as Foundation and Training deploy them."""
    s3 = boto3.client("s3", region_name=REGION)
    for zone in ZONES:
        s3.create_bucket(Bucket=bucket_name(zone), CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=bucket_name("Artifacts"), Key=config_key("example"), Body=json.dumps(published))
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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
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
    deployed_definition, platform_config, lambdas_in_process, sagemaker_jobs, monkeypatch
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
    # prepare, then one baseline job per chosen model, named after its trial; every one exited 0.
    prepare_job, *baseline_jobs = [name for name, _ in sagemaker_jobs.ran]
    assert prepare_job.endswith("-prep")
    assert sorted(baseline_jobs) == sorted(best[m]["job_name"].removesuffix("-a0") + "-bl" for m in best)
    assert {status for _, status in sagemaker_jobs.ran} == {0}
    [transform] = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    assert transform["TransformJobName"].endswith("-pred")
    groups = {g["ModelPackageGroupName"] for g in sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]}
    assert groups == {"mlops-dev-example-xgboost", "mlops-dev-example-linear"}

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


@mock_aws(config=MOTO)
def test_a_failed_baseline_fails_the_run_in_baseline_failed_and_registers_nothing(
    deployed_definition, platform_config, lambdas_in_process, sagemaker_jobs, monkeypatch
):
    [example] = platform_config.pipelines
    create_platform(example.published())
    reports_metrics(monkeypatch, lambda name: 0.99)
    sagemaker_jobs.broken_models.add("linear")  # its training jobs leave an artifact that is not a model

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "FAILED"
    assert result["error"] == "BaselineFailed"
    assert "not a readable model.tar.gz" in result["cause"]
    assert [status for name, status in sagemaker_jobs.ran if name.endswith("-bl")].count(1) == 1
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert sagemaker.list_transform_jobs()["TransformJobSummaries"] == []
    assert {row["sk"].split("#")[0] for row in ledger_rows("run-1")} == {"RUN", "TRIAL"}
    assert [event["action"] for _, event in lambdas_in_process[1:]] == ["evaluate"]  # register never ran


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
    deployed_definition, platform_config, lambdas_in_process, sagemaker_jobs
):
    [example] = platform_config.pipelines
    create_platform(example.published())  # moto's jobs report train:progress only, no objective

    result = execute(for_moto(deployed_definition), {"tenant": "example"})

    assert result["status"] == "FAILED"
    assert result["error"] == "NoUsableTrial"
    assert "validation:auc" in result["cause"]
    assert {row["sk"].split("#")[0] for row in ledger_rows("run-1")} == {"RUN", "TRIAL"}


@mock_aws(config=MOTO)
def test_an_unknown_tenant_fails_in_the_plan_state_with_a_clear_cause(
    deployed_definition, platform_config, lambdas_in_process
):
    [example] = platform_config.pipelines
    create_platform(example.published())

    result = execute(for_moto(deployed_definition), {"tenant": "nobody"})

    assert result["status"] == "FAILED"
    assert result["error"] == "PlanFailed"
    assert "nobody" in result["cause"]
    assert boto3.client("sagemaker", region_name=REGION).list_processing_jobs()["ProcessingJobSummaries"] == []


def test_the_rendered_definition_names_no_tenant(deployed_definition):
    assert "example" not in deployed_definition
