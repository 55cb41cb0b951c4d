"""The plan handler against moto S3 and DynamoDB, in-process: one training request per trial, in S3, once."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from moto import mock_aws

from mlops_platform.data.prepare import SCORING_FILE as PREPARE_SCORING_FILE
from mlops_platform.data.prepare import main as prepare_job
from mlops_platform.runs.names import run_hash
from mlops_platform.sagemaker_paths import ProcessingPaths
from mlops_platform.training.plan import (
    InvalidConfig,
    InvalidName,
    InvalidRunRequest,
    PlanConflict,
    UnknownModel,
    UnknownTenant,
)
from mlops_platform.training.plan.config import expand
from mlops_platform.training.plan.jobs import PROCESSING_ROOT, SCORING_FILE
from tests.conftest import ROOT, create_ledger_table, load_handler
from tests.lambda_context import LambdaContext
from tests.published_config import published_config
from tests.unit.training.test_prepare import line

REGION = "eu-west-1"
ARTIFACTS = "artifacts-zone"
RAW = "raw-zone"
CURATED = "curated-zone"
FEATURES = "features-zone"
PREDICTIONS = "predictions-zone"
LEDGER = "ledger"
KMS_KEY = "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000000"
ROLE = "arn:aws:iam::111111111111:role/training"
ENVIRONMENT = {
    "CONFIG_BUCKET": ARTIFACTS,
    "ARTIFACTS_BUCKET": ARTIFACTS,
    "RAW_BUCKET": RAW,
    "CURATED_BUCKET": CURATED,
    "FEATURES_BUCKET": FEATURES,
    "PREDICTIONS_BUCKET": PREDICTIONS,
    "LEDGER_TABLE": LEDGER,
    "JOB_PREFIX": "mlops-dev",
    "PROGRESS_BUS_NAME": "mlops-dev-progress",
    "EVENT_SOURCE": "mlops.training",
    "TRAINING_IMAGE_URI": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/training:cpu",
    "GPU_TRAINING_IMAGE_URI": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/training:gpu",
    "KMS_KEY_ARN": KMS_KEY,
    "PROCESSING_INSTANCE_TYPE": "ml.m5.large",
    "PROCESSING_LOCAL_STORAGE": "false",
    "BATCH_TRANSFORM_INSTANCE_TYPE": "ml.m5.large",
    "BATCH_TRANSFORM_LOCAL_STORAGE": "false",
    "PROGRESS_INTERVAL_SECONDS": "10",
    "POWERTOOLS_SERVICE_NAME": "plan",
}
# docs/training-pipeline.md, "Platform hyperparameters".
PLATFORM_HYPERPARAMETERS = {
    "mlops_algorithm",
    "mlops_problem_type",
    "mlops_target",
    "mlops_objective",
    "mlops_tenant",
    "mlops_model",
    "mlops_run_id",
    "mlops_trial",
    "mlops_event_bus",
    "mlops_event_source",
    "mlops_region",
    "mlops_progress_interval_seconds",
    "mlops_device",
}


CONTEXT = LambdaContext("plan", memory_limit_in_mb=1024)


def published(**changes: Any) -> dict[str, Any]:
    """A published tenant config as synth writes it (docs/training-pipeline.md), with top-level changes."""
    config = published_config(
        {
            "name": "churn",
            "target": "churned",
            "problem_type": "binary",
            "features": {"tenure": "double", "plan": "bigint"},
        },
        [
            {"name": "xgboost", "algorithm": "xgboost", "grid": {"max_depth": [3, 6], "eta": [0.1, 0.3]}},
            {
                "name": "linear",
                "algorithm": "linear",
                "grid": None,
                "combinations": [{"alpha": 0.0001}, {"alpha": 0.001, "eta0": 0.05}],
            },
            {"name": "plain", "algorithm": "xgboost", "grid": None, "combinations": None},
        ],
    )
    config.update(changes)
    return config


def with_training(**changes: Any) -> dict[str, Any]:
    config = published()
    config["training"].update(changes)
    return config


@pytest.fixture
def aws():
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (ARTIFACTS, RAW, CURATED, FEATURES, PREDICTIONS):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=ARTIFACTS, VersioningConfiguration={"Status": "Enabled"})
        create_ledger_table(LEDGER, REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        yield s3, dynamodb


@pytest.fixture
def environment(monkeypatch):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def plan(aws, environment):
    return load_handler("plan")


def publish(s3, config: dict[str, Any], tenant: str = "acme") -> None:
    s3.put_object(Bucket=ARTIFACTS, Key=f"artifacts/config/pipelines/{tenant}.json", Body=json.dumps(config))


def run(plan, **event: Any) -> dict[str, Any]:
    return plan.handler({"tenant": "acme", "run_id": "run-1", "day": "2026-11-24", **event}, CONTEXT)


def items_of(s3, result: dict[str, Any]) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=result["plan"]["Bucket"], Key=result["plan"]["Key"])["Body"].read()
    return json.loads(body)


def validation_errors(operation: str, params: dict[str, Any]) -> str:
    """botocore's own check of a request against the SageMaker API model (names, types, required fields)."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


# -- the grid


def test_trials_expand_in_contract_order_and_are_numbered_across_the_run(plan, aws):
    s3, _ = aws
    publish(s3, published())
    items = items_of(s3, run(plan))

    assert [(item["trial"], item["model"], item["hyperparameters"]) for item in items] == [
        # Grid names sorted (eta, max_depth), then itertools.product of their values.
        ("00000", "xgboost", {"eta": 0.1, "max_depth": 3}),
        ("00001", "xgboost", {"eta": 0.1, "max_depth": 6}),
        ("00002", "xgboost", {"eta": 0.3, "max_depth": 3}),
        ("00003", "xgboost", {"eta": 0.3, "max_depth": 6}),
        # Combinations as given.
        ("00004", "linear", {"alpha": 0.0001}),
        ("00005", "linear", {"alpha": 0.001, "eta0": 0.05}),
        # Neither: once, with the image's defaults.
        ("00006", "plain", {}),
    ]
    assert {item["attempt"] for item in items} == {0}
    assert {(item["run_id"], item["tenant"]) for item in items} == {("run-1", "acme")}
    assert [item["algorithm"] for item in items] == ["xgboost"] * 4 + ["linear"] * 2 + ["xgboost"]


def test_the_example_tenants_published_config_plans_the_trials_synth_counted(plan, aws):
    """The contract end to end: config/pipelines/example.yaml, published as synth publishes it."""
    from config.loader import load_pipelines

    (example,) = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    s3, _ = aws
    publish(s3, example.published(), tenant="example")
    result = run(plan, tenant="example")
    items = items_of(s3, result)

    assert result["trial_count"] == example.trial_count == len(items)
    assert [item["hyperparameters"] for item in items] == [
        trial for model in example.models for trial in model.trials()
    ]


def test_a_subset_of_models_trains_only_those_in_config_order_numbered_from_zero(plan, aws):
    s3, _ = aws
    publish(s3, published())
    result = run(plan, models=["plain", "linear"])
    items = items_of(s3, result)

    assert result["models"] == ["linear", "plain"]
    assert [(item["trial"], item["model"]) for item in items] == [
        ("00000", "linear"),
        ("00001", "linear"),
        ("00002", "plain"),
    ]


def test_an_unknown_model_is_an_error_naming_it_and_the_allowed_ones(plan, aws):
    s3, _ = aws
    publish(s3, published())
    with pytest.raises(UnknownModel, match=r"no model 'forest'; allowed: a subset of xgboost, linear, plain"):
        run(plan, models=["xgboost", "forest"])


def test_an_unknown_tenant_is_an_error_naming_the_tenant(plan):
    with pytest.raises(UnknownTenant, match=r"tenant 'nobody' has no published pipeline config"):
        run(plan, tenant="nobody")


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"tenant": "Acme Corp", "run_id": "r", "day": "2026-11-24"}, "tenant 'Acme Corp'"),
        ({"tenant": "acme", "run_id": "a/b", "day": "2026-11-24"}, "run_id 'a/b'"),
        ({"tenant": "acme", "run_id": "r", "day": "2026-02-30"}, "day '2026-02-30'"),
        ({"tenant": "acme", "run_id": "r"}, "day None"),
        ({"tenant": "acme", "run_id": "r", "day": "2026-11-24", "models": []}, "models []"),
        ({"tenant": "acme", "run_id": "r", "day": "2026-11-24", "models": ["a", "a"]}, "models ['a', 'a']"),
        ({"tenant": "acme", "run_id": "r", "day": "2026-11-24", "model": ["a"]}, "unexpected keys ['model']"),
        ({"tenant": "acme", "run_id": "r", "started_at": "yesterday"}, "started_at 'yesterday'"),
    ],
)
def test_a_malformed_request_is_an_invalid_run_request_in_one_sentence(plan, aws, event, fragment):
    s3, _ = aws
    publish(s3, published())
    with pytest.raises(InvalidRunRequest) as raised:
        plan.handler(event, CONTEXT)
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_config_of_another_schema_version_is_invalid(plan, aws):
    s3, _ = aws
    publish(s3, published(schema_version=2))
    with pytest.raises(InvalidConfig, match="schema_version 2"):
        run(plan)


def test_more_than_10000_trials_is_invalid(plan, aws):
    s3, _ = aws
    grid = {"max_depth": list(range(1, 11)), "eta": [i / 1000 for i in range(1001)]}
    publish(s3, published(models=[{"name": "xgboost", "algorithm": "xgboost", "grid": grid, "combinations": None}]))
    with pytest.raises(InvalidConfig, match="10010 trials; allowed: at most 10000"):
        run(plan)


# -- the training requests


def test_every_request_is_a_valid_create_training_job_call_once_named_and_given_a_role(plan, aws):
    s3, _ = aws
    publish(s3, published())
    for item in items_of(s3, run(plan)):
        params = {**item["request"], "TrainingJobName": item["job_name"], "RoleArn": ROLE}
        assert validation_errors("CreateTrainingJob", params) == ""
        assert "TrainingJobName" not in item["request"]
        assert "RoleArn" not in item["request"]


def test_a_request_reads_the_runs_splits_and_writes_models_under_the_run(plan, aws):
    s3, _ = aws
    publish(s3, published())
    request = items_of(s3, run(plan))[0]["request"]

    assert request["AlgorithmSpecification"]["TrainingImage"] == ENVIRONMENT["TRAINING_IMAGE_URI"]
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert request["InputDataConfig"] == [
        {
            "ChannelName": split,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{FEATURES}/features/acme/churn/dt=2026-11-24/run-1-{split}.parquet",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "application/x-parquet",
        }
        for split in ("train", "validation")
    ]
    assert request["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/models",
        "KmsKeyId": KMS_KEY,
    }
    assert request["EnableNetworkIsolation"] is False
    assert "Environment" not in request


def test_metric_definitions_parse_the_lines_the_training_image_prints(plan, aws):
    from mlops_platform.training.train import metric_line

    s3, _ = aws
    publish(s3, published())
    definitions = items_of(s3, run(plan))[0]["request"]["AlgorithmSpecification"]["MetricDefinitions"]
    log = "\n".join(
        [
            metric_line("round 1", {"validation:auc": 0.91, "validation:logloss": 0.3, "validation:accuracy": 0.9}),
            metric_line("round 2", {"validation:auc": 0.97, "validation:logloss": 1.5e-05, "validation:accuracy": 1}),
            metric_line(
                "best round 2", {"validation:auc": 0.97, "validation:logloss": 1.5e-05, "validation:accuracy": 1}
            ),
        ]
    )

    assert [d["Name"] for d in definitions] == ["validation:auc", "validation:accuracy", "validation:logloss"]
    last = {d["Name"]: float(re.findall(d["Regex"], log)[-1]) for d in definitions}
    assert last == {"validation:auc": 0.97, "validation:accuracy": 1.0, "validation:logloss": 1.5e-05}


def test_hyperparameters_are_strings_with_every_platform_setting_the_image_accepts(plan, aws):
    from mlops_platform.training.settings import parse

    s3, _ = aws
    publish(s3, published())
    items = items_of(s3, run(plan))
    item = items[5]
    hyperparameters = item["request"]["HyperParameters"]

    assert all(isinstance(value, str) for i in items for value in i["request"]["HyperParameters"].values())
    assert {name for name in hyperparameters if name.startswith("mlops_")} == PLATFORM_HYPERPARAMETERS
    assert hyperparameters == {
        "alpha": "0.001",
        "eta0": "0.05",
        "mlops_algorithm": "linear",
        "mlops_problem_type": "binary",
        "mlops_target": "churned",
        "mlops_objective": "validation:auc",
        "mlops_tenant": "acme",
        "mlops_model": "linear",
        "mlops_run_id": "run-1",
        "mlops_trial": "00005",
        "mlops_event_bus": "mlops-dev-progress",
        "mlops_event_source": "mlops.training",
        "mlops_region": REGION,
        "mlops_progress_interval_seconds": "10",
        "mlops_device": "auto",
    }
    # The training image reads them back: the model's own values, the platform's identity.
    settings = parse(hyperparameters)
    assert settings.model["alpha"] == 0.001
    assert settings.model["eta0"] == 0.05
    assert (settings.platform.run_id, settings.platform.trial, settings.platform.event_bus) == (
        "run-1",
        "00005",
        "mlops-dev-progress",
    )
    # Each trial keeps its best round by the tenant's objective, the metric evaluate ranks trials by.
    assert settings.platform.objective == "validation:auc"


def test_a_trial_keeps_the_round_its_tenants_objective_chooses(plan, aws, tmp_path, capsys):
    """The plan's hyperparameters, verbatim, run the training image: its kept round is the best by validation:auc."""
    from mlops_platform.sagemaker_paths import SageMakerPaths
    from mlops_platform.training.train import main as train
    from tests.unit.training.conftest import small_dataset

    s3, _ = aws
    publish(s3, published())
    [item, *_] = items_of(s3, run(plan))
    hyperparameters = {**item["request"]["HyperParameters"], "mlops_event_bus": ""}  # no bus: nothing to send
    paths = SageMakerPaths(root=tmp_path / "ml", checkpoints=tmp_path / "ml" / "checkpoints")
    frame = small_dataset("binary").rename(columns={"target": "churned"})
    for channel, part in (("train", frame.iloc[::2]), ("validation", frame.iloc[1::2])):
        paths.channel(channel).mkdir(parents=True)
        part.to_csv(paths.channel(channel) / "part.csv", index=False)
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(hyperparameters))

    assert train(paths) == 0

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    auc = {
        int(line.split("]")[0].split()[-1]): float(line.split("validation:auc=")[1].split(";")[0])
        for line in lines
        if line.startswith("[round ")
    }
    metadata = json.loads((paths.model / "metadata.json").read_text())
    assert metadata["objective"] == "validation:auc"
    assert metadata["round"] == min(number for number, value in auc.items() if value == max(auc.values()))
    assert lines[-1].startswith(f"[kept round {metadata['round']}]")


def test_the_volume_key_is_set_only_where_the_instance_has_no_local_storage(plan, aws):
    s3, _ = aws
    publish(s3, with_training(local_storage=False))
    with_key = items_of(s3, run(plan, run_id="run-1"))[0]["request"]["ResourceConfig"]
    publish(s3, with_training(instance_type="ml.m5d.large", local_storage=True))
    without_key = items_of(s3, run(plan, run_id="run-2"))[0]["request"]["ResourceConfig"]

    assert with_key == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
        "VolumeKmsKeyId": KMS_KEY,
    }
    assert without_key == {"InstanceType": "ml.m5d.large", "InstanceCount": 1, "VolumeSizeInGB": 30}


def test_spot_training_waits_and_checkpoints_per_trial(plan, aws):
    s3, _ = aws
    publish(s3, with_training(spot=True))
    items = items_of(s3, run(plan))

    for item in items:
        request = item["request"]
        assert request["EnableManagedSpotTraining"] is True
        assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600}
        assert request["CheckpointConfig"] == {
            "S3Uri": f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/checkpoints/{item['trial']}/"
        }


@pytest.mark.parametrize("runtime", [60, 3600, 10_000, 2_419_200])
def test_a_spot_tenant_that_sets_only_its_runtime_waits_at_least_that_long(plan, aws, platform_config, runtime):
    """The published config comes from the tenant model itself: pydantic does not validate defaults."""
    s3, _ = aws
    [example] = platform_config.pipelines
    training = example.training.model_dump(exclude={"max_wait_seconds"}) | {"max_runtime_seconds": runtime}
    tenant = example.model_validate(example.model_dump() | {"training": training})
    publish(s3, tenant.published() | {"tenant": "acme"}, tenant="acme")

    for item in items_of(s3, run(plan)):
        stopping = item["request"]["StoppingCondition"]
        assert item["request"]["EnableManagedSpotTraining"] is True
        # CreateTrainingJob rejects a spot job whose wait is shorter than its runtime.
        assert stopping["MaxRuntimeInSeconds"] == runtime
        assert runtime <= stopping["MaxWaitTimeInSeconds"] <= 2_419_200


def test_a_published_spot_wait_shorter_than_the_runtime_is_refused_before_any_trial(plan, aws):
    s3, _ = aws
    publish(s3, with_training(spot=True, max_runtime_seconds=10_000, max_wait_seconds=7200))

    with pytest.raises(InvalidConfig, match=r"max_wait_seconds 7200 below training.max_runtime_seconds 10000"):
        run(plan)


def test_on_demand_training_has_no_wait_time_but_still_checkpoints(plan, aws):
    s3, _ = aws
    publish(s3, with_training(spot=False))
    request = items_of(s3, run(plan))[0]["request"]

    assert request["EnableManagedSpotTraining"] is False
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}
    # The state machine copies CheckpointConfig unconditionally; a retried attempt resumes from it.
    assert request["CheckpointConfig"] == {"S3Uri": f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/checkpoints/00000/"}


def test_every_field_the_state_machine_copies_is_in_every_request(plan, aws):
    """mlops_constructs/training_trial.py copies these from ``$.item.request``; a missing path fails the trial."""
    s3, _ = aws
    copied = (
        "AlgorithmSpecification",
        "HyperParameters",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "StoppingCondition",
        "EnableManagedSpotTraining",
        "CheckpointConfig",
    )
    for spot in (True, False):
        publish(s3, with_training(spot=spot))
        for item in items_of(s3, run(plan, run_id=f"run-{spot}")):
            assert set(copied) <= set(item["request"]), item["request"].keys()
            assert set(item["request"]) <= {*copied, "EnableNetworkIsolation"}


def test_a_gpu_instance_trains_with_the_gpu_image(plan, aws):
    s3, _ = aws
    publish(s3, with_training(instance_type="ml.g4dn.xlarge", gpu=True, local_storage=True))
    request = items_of(s3, run(plan))[0]["request"]

    assert request["AlgorithmSpecification"]["TrainingImage"] == ENVIRONMENT["GPU_TRAINING_IMAGE_URI"]
    assert "VolumeKmsKeyId" not in request["ResourceConfig"]


@pytest.mark.parametrize("image", ["", None])
def test_a_gpu_tenant_where_no_gpu_image_was_built_is_refused_in_one_sentence(aws, environment, image):
    """Synth builds the GPU training image only where a tenant asks for a GPU instance (training_images.py)."""
    if image is None:
        environment.delenv("GPU_TRAINING_IMAGE_URI")
    else:
        environment.setenv("GPU_TRAINING_IMAGE_URI", image)
    plan = load_handler("plan")
    s3, _ = aws
    publish(s3, with_training(instance_type="ml.g4dn.xlarge", gpu=True, local_storage=True))

    refusal = r"trains on ml\.g4dn\.xlarge, a GPU instance, .* no GPU training image"
    with pytest.raises(InvalidConfig, match=refusal):
        run(plan)


# -- names


def test_job_names_follow_the_contract_and_are_deterministic(plan, aws, environment):
    s3, _ = aws
    publish(s3, published())
    first = [item["job_name"] for item in items_of(s3, run(plan, run_id="run-1"))]
    again = [item["job_name"] for item in items_of(s3, run(load_handler("plan"), run_id="run-1"))]

    digest = run_hash("run-1")
    assert re.fullmatch(r"[0-9a-f]{10}", digest)
    assert first == again == [f"mlops-dev-{digest}-{trial:05d}-a0" for trial in range(7)]
    assert all(len(name) <= 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name) for name in first)


def test_a_prefix_too_long_for_sagemaker_names_is_a_clear_error(plan, aws, environment):
    s3, _ = aws
    publish(s3, published())
    environment.setenv("JOB_PREFIX", "x" * 44)  # 44 + len("-<10 hex>-00000-a0") = 64
    handler = load_handler("plan")
    with pytest.raises(InvalidName, match=r"has 64 characters; SageMaker allows at most 63"):
        run(handler)


# -- the plan object and the ledger


def test_the_plan_is_one_json_array_written_once_with_the_kms_key(plan, aws):
    s3, _ = aws
    publish(s3, published())
    result = run(plan)
    again = run(plan)

    assert again == result
    key = "artifacts/runs/acme/run-1/plan.json"
    assert result["plan"] == {"Bucket": ARTIFACTS, "Key": key}
    assert isinstance(items_of(s3, result), list)
    assert len(s3.list_object_versions(Bucket=ARTIFACTS, Prefix=key)["Versions"]) == 1
    head = s3.head_object(Bucket=ARTIFACTS, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == KMS_KEY


def test_a_run_whose_config_changed_since_it_was_planned_is_a_conflict(plan, aws):
    s3, _ = aws
    publish(s3, published())
    first = run(plan)
    changed = published()
    changed["models"] = changed["models"][:1]
    publish(s3, changed)
    with pytest.raises(PlanConflict, match="already planned differently"):
        run(plan)
    assert len(items_of(s3, first)) == 7  # the plan the run started with stays


def test_a_retry_reads_nothing_but_the_config(plan, aws):
    """The function may read configs and write runs and ledger items, nothing else (its IAM grants)."""
    s3, _ = aws
    publish(s3, published())
    calls: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params.get("Key") or params.get("TableName")))

    for client in (plan.planner.s3, plan.planner.dynamodb):
        client.meta.events.register("provide-client-params.*.*", record)
    run(plan)
    run(plan)

    assert set(calls) == {
        ("GetObject", "artifacts/config/pipelines/acme.json"),
        ("PutItem", LEDGER),
        ("PutObject", "artifacts/runs/acme/run-1/plan.json"),
    }


def test_the_run_is_recorded_once_in_the_ledger_and_listed_under_its_tenant(plan, aws):
    s3, dynamodb = aws
    publish(s3, published())
    run(plan, started_at="2026-11-24T10:00:00.123Z", day="2026-11-24")
    key = {"pk": {"S": "RUN#run-1"}, "sk": {"S": "RUN"}}
    dynamodb.update_item(
        TableName=LEDGER,
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "evaluated"}},
    )
    first = dynamodb.get_item(TableName=LEDGER, Key=key)["Item"]
    run(plan, started_at="2026-11-24T10:00:00.123Z", day="2026-11-24")  # a retry does not rewrite it

    assert dynamodb.get_item(TableName=LEDGER, Key=key)["Item"] == first
    assert first["status"] == {"S": "evaluated"}
    assert first["kind"] == {"S": "run"}
    assert first["tenant"] == {"S": "acme"}
    assert first["models"] == {"L": [{"S": "xgboost"}, {"S": "linear"}, {"S": "plain"}]}
    assert first["trial_count"] == {"N": "7"}
    assert first["plan_key"] == {"S": "artifacts/runs/acme/run-1/plan.json"}
    assert first["started_at"] == {"S": "2026-11-24T10:00:00.123Z"}
    listed = dynamodb.query(
        TableName=LEDGER,
        IndexName="ByTenant",
        KeyConditionExpression="gsi1pk = :t AND begins_with(gsi1sk, :r)",
        ExpressionAttributeValues={":t": {"S": "TENANT#acme"}, ":r": {"S": "RUN#"}},
    )["Items"]
    assert [item["gsi1sk"]["S"] for item in listed] == ["RUN#2026-11-24T10:00:00.123Z#run-1"]


def test_the_state_machines_payload_plans_the_executions_day(plan, aws):
    """The Plan state passes the execution's input, its name and its start time (UTC)."""
    s3, dynamodb = aws
    publish(s3, published())
    event = {
        "request": {"tenant": "acme", "models": ["linear"]},
        "run_id": "exec-1",
        "started_at": "2026-11-24T23:59:59.5Z",
    }
    result = plan.handler(event, CONTEXT)

    assert (result["run_id"], result["day"], result["models"], result["trial_count"]) == (
        "exec-1",
        "2026-11-24",
        ["linear"],
        2,
    )
    assert items_of(s3, result)[0]["request"]["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{FEATURES}/features/acme/churn/dt=2026-11-24/exec-1-train.parquet"
    )
    record = dynamodb.get_item(TableName=LEDGER, Key={"pk": {"S": "RUN#exec-1"}, "sk": {"S": "RUN"}})["Item"]
    assert record["started_at"] == {"S": "2026-11-24T23:59:59.5Z"}


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        (
            {"request": {"tenant": "acme", "day": "2026-11-24"}, "run_id": "r"},
            "unexpected keys ['day'] in the execution's",
        ),
        ({"request": ["acme"], "run_id": "r", "started_at": "2026-11-24T00:00:00Z"}, "must be a JSON object such as"),
        ({"request": {"tenant": "acme"}, "run_id": "r"}, "day None"),
        ({"request": {"tenant": "acme"}, "run_id": "r", "started_at": "2026-11-24T00:00:00Z", "x": 1}, "['x']"),
    ],
)
def test_a_malformed_execution_input_is_an_invalid_run_request(plan, aws, event, fragment):
    with pytest.raises(InvalidRunRequest) as raised:
        plan.handler(event, CONTEXT)
    assert fragment in str(raised.value)


def test_started_at_defaults_to_the_day(plan, aws):
    s3, dynamodb = aws
    publish(s3, published())
    run(plan)
    record = dynamodb.get_item(TableName=LEDGER, Key={"pk": {"S": "RUN#run-1"}, "sk": {"S": "RUN"}})["Item"]
    assert record["started_at"] == {"S": "2026-11-24"}
    assert record["gsi1sk"] == {"S": "RUN#2026-11-24#run-1"}


def test_a_run_id_recorded_for_another_tenant_is_a_conflict(plan, aws):
    s3, _ = aws
    publish(s3, published())
    publish(s3, {**published(), "tenant": "other"}, tenant="other")
    run(plan)
    with pytest.raises(PlanConflict, match="already recorded for tenant 'acme'"):
        run(plan, tenant="other")


def test_the_output_is_small_even_for_10000_trials(plan, aws):
    s3, _ = aws
    grid = {"max_depth": list(range(1, 11)), "eta": [i / 1000 for i in range(1, 11)], "gamma": list(range(100))}
    publish(s3, published(models=[{"name": "xgboost", "algorithm": "xgboost", "grid": grid, "combinations": None}]))
    result = run(plan)
    items = items_of(s3, result)

    assert result["trial_count"] == len(items) == 10_000
    assert items[-1]["trial"] == "09999"
    assert len(json.dumps(result)) < 10_000


# -- prepare and predict


def test_the_output_says_where_the_plan_and_results_are(plan, aws):
    s3, _ = aws
    publish(s3, published())
    result = run(plan)

    assert {key: result[key] for key in ("run_id", "tenant", "day", "trial_count", "models", "results")} == {
        "run_id": "run-1",
        "tenant": "acme",
        "day": "2026-11-24",
        "trial_count": 7,
        "models": ["xgboost", "linear", "plain"],
        "results": {"Bucket": ARTIFACTS, "Prefix": "artifacts/runs/acme/run-1/results"},
    }


def test_prepare_is_a_valid_processing_job_over_the_contracts_keys(plan, aws):
    s3, _ = aws
    publish(s3, published())
    prepare = run(plan)["prepare"]
    digest = run_hash("run-1")

    assert validation_errors("CreateProcessingJob", {**prepare, "RoleArn": ROLE}) == ""
    assert prepare["ProcessingJobName"] == f"mlops-dev-{digest}-prep"
    assert prepare["AppSpecification"] == {
        "ImageUri": ENVIRONMENT["TRAINING_IMAGE_URI"],
        "ContainerArguments": [
            "prepare",
            "--config",
            "/opt/ml/processing/input/config/acme.json",
            "--run-id",
            "run-1",
            "--day",
            "2026-11-24",
        ],
    }
    inputs = {i["InputName"]: (i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in prepare["ProcessingInputs"]}
    assert inputs == {
        "config": (f"s3://{ARTIFACTS}/artifacts/config/pipelines/acme.json", "/opt/ml/processing/input/config"),
        "raw": (f"s3://{RAW}/raw/acme/churn/", "/opt/ml/processing/input/raw"),
    }
    outputs = {
        o["OutputName"]: (o["S3Output"]["LocalPath"], o["S3Output"]["S3Uri"], o["S3Output"]["S3UploadMode"])
        for o in prepare["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs == {
        "curated": ("/opt/ml/processing/output/curated", f"s3://{CURATED}/curated/acme/churn/", "EndOfJob"),
        "features": (
            "/opt/ml/processing/output/features",
            f"s3://{FEATURES}/features/acme/churn/dt=2026-11-24/",
            "EndOfJob",
        ),
        "batch": ("/opt/ml/processing/output/batch", f"s3://{FEATURES}/batch-input/acme/churn/run-1/", "EndOfJob"),
        "report": (
            "/opt/ml/processing/output/report",
            f"s3://{ARTIFACTS}/artifacts/runs/acme/run-1/prepare/",
            "EndOfJob",
        ),
    }
    assert prepare["ProcessingOutputConfig"]["KmsKeyId"] == KMS_KEY
    assert prepare["ProcessingResources"] == {
        "ClusterConfig": {
            "InstanceCount": 1,
            "InstanceType": "ml.m5.large",
            "VolumeSizeInGB": 30,
            "VolumeKmsKeyId": KMS_KEY,
        }
    }
    assert prepare["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_predict_is_a_valid_transform_job_and_model_name_over_the_batch_input(plan, aws):
    s3, _ = aws
    publish(s3, published())
    predict = run(plan)["predict"]
    digest = run_hash("run-1")

    assert validation_errors("CreateTransformJob", predict) == ""
    model = {
        "ModelName": predict["ModelName"],
        "PrimaryContainer": {"ModelPackageName": "arn"},
        "ExecutionRoleArn": ROLE,
    }
    assert validation_errors("CreateModel", model) == ""
    assert predict["ModelName"] == predict["TransformJobName"] == f"mlops-dev-{digest}-pred"
    assert predict["TransformInput"] == {
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": f"s3://{FEATURES}/batch-input/acme/churn/run-1/test.csv",
            }
        },
        "ContentType": "text/csv",
        "SplitType": "Line",
    }
    assert predict["TransformOutput"] == {
        "S3OutputPath": f"s3://{PREDICTIONS}/predictions/acme/churn/run-1/",
        "KmsKeyId": KMS_KEY,
        "Accept": "text/csv",
        "AssembleWith": "Line",
    }
    assert predict["TransformResources"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeKmsKeyId": KMS_KEY,
    }
    assert (predict["BatchStrategy"], predict["MaxPayloadInMB"]) == ("MultiRecord", 6)


def test_a_dataset_named_for_scoring_is_read_by_prepare_and_its_rows_are_what_the_transform_scores(plan, aws, tmp_path):
    """The plan's own requests, run as SageMaker runs them: each input's objects copied to its LocalPath, the
    real prepare job, each output's folder uploaded to its S3Uri; the transform's input is then what prepare
    wrote from the scoring dataset's raw prefix."""
    s3, _ = aws
    publish(s3, published(batch_prediction={"dataset": "churn-new", "split": "test"}))
    records = [line(f"r-{i}", {"tenure": i / 2, "plan": i % 3, "churned": i % 2}) for i in range(60)]
    s3.put_object(Bucket=RAW, Key="raw/acme/churn/dt=2026-11-24/a.jsonl", Body=b"\n".join(records) + b"\n")
    new_rows = [line(f"new-{i}", {"tenure": i, "plan": 1}) for i in range(7)]
    s3.put_object(Bucket=RAW, Key="raw/acme/churn-new/dt=2026-11-24/b.jsonl", Body=b"\n".join(new_rows) + b"\n")
    result = run(plan)
    prepare, predict = result["prepare"], result["predict"]
    assert validation_errors("CreateProcessingJob", {**prepare, "RoleArn": ROLE}) == ""
    assert validation_errors("CreateTransformJob", predict) == ""

    root = tmp_path / "processing"
    local = lambda path: root / Path(path).relative_to(PROCESSING_ROOT)  # noqa: E731
    for entry in prepare["ProcessingInputs"]:
        bucket, _, prefix = entry["S3Input"]["S3Uri"].removeprefix("s3://").partition("/")
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            target = local(entry["S3Input"]["LocalPath"]) / (item["Key"][len(prefix) :] or Path(item["Key"]).name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    arguments = [
        str(local(a)) if a.startswith(PROCESSING_ROOT) else a for a in prepare["AppSpecification"]["ContainerArguments"]
    ]
    paths = ProcessingPaths(root=root, message=tmp_path / "message")
    assert (
        local(next(i for i in prepare["ProcessingInputs"] if i["InputName"] == "score")["S3Input"]["LocalPath"])
        == paths.score
    )
    assert prepare_job(arguments[1:], paths) == 0, paths.message.read_text()
    for entry in prepare["ProcessingOutputConfig"]["Outputs"]:
        bucket, _, prefix = entry["S3Output"]["S3Uri"].removeprefix("s3://").partition("/")
        folder = local(entry["S3Output"]["LocalPath"])
        for file in (f for f in folder.rglob("*") if f.is_file()):
            s3.put_object(Bucket=bucket, Key=prefix + file.relative_to(folder).as_posix(), Body=file.read_bytes())

    scored = predict["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, _, key = scored.removeprefix("s3://").partition("/")
    assert len(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()) == 7  # the new rows
    assert predict["TransformOutput"]["S3OutputPath"] == f"s3://{PREDICTIONS}/predictions/acme/churn-new/run-1/"
    assert SCORING_FILE == PREPARE_SCORING_FILE


def test_without_a_dataset_named_for_scoring_prepare_reads_no_score_input(plan, aws):
    s3, _ = aws
    publish(s3, published())
    assert [i["InputName"] for i in run(plan)["prepare"]["ProcessingInputs"]] == ["config", "raw"]


def test_processing_and_transform_volume_keys_follow_their_local_storage(aws, environment):
    s3, _ = aws
    publish(s3, published())
    environment.setenv("PROCESSING_LOCAL_STORAGE", "true")
    environment.setenv("BATCH_TRANSFORM_LOCAL_STORAGE", "true")
    result = run(load_handler("plan"))

    assert "VolumeKmsKeyId" not in result["prepare"]["ProcessingResources"]["ClusterConfig"]
    assert "VolumeKmsKeyId" not in result["predict"]["TransformResources"]


def test_expansion_matches_the_synth_side_reference_for_odd_grids(plan):
    from config.tenants import ModelSpec

    for spec in (
        {"name": "m", "algorithm": "xgboost", "grid": {"max_depth": [3], "eta": [0.1, 0.2], "gamma": [0, 1, 2]}},
        {"name": "m", "algorithm": "xgboost", "grid": {}},
        {"name": "m", "algorithm": "linear", "combinations": []},
        {"name": "m", "algorithm": "linear", "combinations": [{"alpha": 1}, {}]},
    ):
        assert expand(copy.deepcopy(spec)) == ModelSpec.model_validate(spec).trials()
