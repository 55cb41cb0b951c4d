"""The promote command: every check runs before the pointer is written, and a refusal writes nothing.

``promote`` and ``rollback`` are mlops_platform/registry/promotion.py's, the checks registry/checks.py's;
``main`` is their command line: ``mlops promote``, ``promote-challenger`` and ``rollback``.

S3 and SSM are moto's; SageMaker is botocore's Stubber, since moto's model packages lack the fields
promote reads (approval status, metadata, inference specification). The feature schema document a
package points to is built by the evaluate Lambda's own code, so both ends of that contract meet here.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from config.tenants import PipelineConfig
from mlops_platform.cli.promotion import Clients
from mlops_platform.evaluation import documents
from mlops_platform.registry import checks
from mlops_platform.registry.checks import feature_schema, first_difference
from mlops_platform.registry.packages import PromotionRefused
from mlops_platform.registry.promotion import promote, rollback
from mlops_platform.schema.columns import restricted_name
from tests.conftest import create_ledger_table, load_handler, mlops

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
ARTIFACTS = "artifacts-zone"
GROUP = "mlops-dev-acme-xgboost"
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"
POINTER = "/mlops/dev/models/churn/Champion"
LEDGER = "promote-ledger"  # the run ledger; its deployment lock is the workflow's (registry/deploy_lock.py)
RUN = "artifacts/runs/acme/run-1"
SCHEMA_KEY = f"{RUN}/evaluation/feature-schema.json"
EVALUATION_KEY = f"{RUN}/evaluation/xgboost.json"
MODEL_DATA = f"s3://{ARTIFACTS}/{RUN}/models/mlops-dev-acme-run-1-xgboost-0-a0/output/model.tar.gz"
BASELINE_KEY = f"{RUN}/models/mlops-dev-acme-run-1-xgboost-0-a0/output/baseline.json"
MODEL_KEY = MODEL_DATA.removeprefix(f"s3://{ARTIFACTS}/")
# The archive training left; registration recorded its sha256 (artifact_sha256), promotion compares.
MODEL_ARCHIVE = b"model.tar.gz of acme/xgboost, trial 0"
# The baseline job's document, as much of it as promotion reads: the schema's features in its order.
BASELINE = json.dumps({"schema_version": 1, "feature_order": ["tenure", "plan", "active"], "features": {}}).encode()
TENANT = PipelineConfig.model_validate(
    {
        "tenant": "acme",
        "dataset": {
            "name": "churn",
            "target": "churned",
            "problem_type": "binary",
            "features": {"tenure": "double", "plan": "bigint", "active": "boolean"},
        },
        "models": [
            {"name": "xgboost", "algorithm": "xgboost", "grid": {"eta": [0.1, 0.3]}},
            {"name": "linear", "algorithm": "linear"},
        ],
        "objective": {"metric": "validation:auc", "direction": "maximize", "approval_threshold": 0.9},
        "training": {"instance_type": "ml.m5.large"},
        "batch_prediction": {"dataset": "churn"},
    }
)
# What the evaluate Lambda reads at import (tests/unit/test_evaluate.py has the full set).
EVALUATE_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "evaluate",
    "CONFIG_BUCKET": ARTIFACTS,
    "ARTIFACTS_BUCKET": ARTIFACTS,
    "FEATURES_BUCKET": "features-zone",
    "LEDGER_TABLE": "ledger",
    "JOB_PREFIX": "mlops-dev",
    "AUTO_APPROVE": "true",
    "SERVING_IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/serving:1",
    "INFERENCE_INSTANCE_TYPE": "ml.c5.large",
    "BATCH_TRANSFORM_INSTANCE_TYPE": "ml.m5.large",
    "KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000",
    "BASELINE_IMAGE_URI": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/training:cpu",
    "PROCESSING_INSTANCE_TYPE": "ml.m5.large",
    "PROCESSING_LOCAL_STORAGE": "false",
    "TOLERATED_FAILURE_PERCENTAGE": "50",
}


@pytest.fixture(scope="module")
def evaluate():
    """The evaluate Lambda's module: it writes the feature schema documents promote reads."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in EVALUATE_ENVIRONMENT.items():
            patch.setenv(name, value)
        return load_handler("evaluate")


def schema_body(evaluate, features: dict[str, str] | None = None, problem_type: str | None = None) -> bytes:
    """The feature schema document as evaluate writes it for a config with these features (published as the
    stacks publish them: the mapping, and the columns in declared order, which the schema follows)."""
    config = TENANT.published()
    columns = [
        {"name": name, "column": restricted_name(name), "type": kind, "required": False}
        for name, kind in (features or {}).items()
    ]
    config["dataset"] = {
        **config["dataset"],
        **({"features": features, "columns": columns} if features is not None else {}),
        **({"problem_type": problem_type} if problem_type is not None else {}),
    }
    return documents.encode(documents.feature_schema(config))


def package(body: bytes, **changes: Any) -> dict[str, Any]:
    """DescribeModelPackage's answer for a package evaluate registered, with ``changes`` on top."""
    response: dict[str, Any] = {
        "ModelPackageName": GROUP,
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 3,
        "ModelPackageArn": PACKAGE_ARN,
        "CreationTime": datetime(2026, 1, 2, tzinfo=UTC),
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [{"Image": EVALUATE_ENVIRONMENT["SERVING_IMAGE_URI"], "ModelDataUrl": MODEL_DATA}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{ARTIFACTS}/{EVALUATION_KEY}"}
            }
        },
        # As evaluate registers them: no algorithm among them (the evaluation document names it).
        "CustomerMetadataProperties": {
            "run_id": "run-1",
            "tenant": "acme",
            "model": "xgboost",
            "trial": "0",
            "training_job_name": "mlops-dev-acme-run-1-xgboost-0-a0",
            "objective_metric": "validation:auc",
            "objective_value": "0.97",
            "training_data": "s3://features-zone/features/acme/churn/dt=2026-01-02/run-1-train.parquet",
            "feature_schema": f"s3://{ARTIFACTS}/{SCHEMA_KEY}",
            "feature_schema_sha256": hashlib.sha256(body).hexdigest(),
            "baseline": f"s3://{ARTIFACTS}/{BASELINE_KEY}",
            "baseline_sha256": hashlib.sha256(BASELINE).hexdigest(),
            "artifact_sha256": hashlib.sha256(MODEL_ARCHIVE).hexdigest(),
        },
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = response
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return response


class World:
    """Moto's S3 and SSM with what evaluate and Foundation leave there, and a stubbed SageMaker."""

    def __init__(self, evaluate, clients: dict[str, Any]) -> None:
        self.evaluate = evaluate
        self.s3, self.ssm, self.sts, self.sagemaker = (clients[name] for name in ("s3", "ssm", "sts", "sagemaker"))
        self.dynamodb = clients["dynamodb"]
        self.stub = Stubber(self.sagemaker)
        self.s3.create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.schema = schema_body(evaluate)
        self.put(SCHEMA_KEY, self.schema)
        self.put(BASELINE_KEY, BASELINE)
        self.put(MODEL_KEY, MODEL_ARCHIVE)
        self.evaluation("xgboost")
        # Foundation creates each pointer once, with the sentinel, and the run ledger.
        self.ssm.put_parameter(Name=POINTER, Value="example", Type="String", Description="the example model")
        create_ledger_table(LEDGER, REGION)

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=ARTIFACTS, Key=key, Body=body)

    def evaluation(self, algorithm: str) -> None:
        self.put(EVALUATION_KEY, json.dumps({"schema_version": 1, "model": "xgboost", "algorithm": algorithm}).encode())

    def describes(self, response: dict[str, Any]) -> None:
        self.stub.add_response("describe_model_package", response, {"ModelPackageName": response["ModelPackageArn"]})

    def promote(self, *, arn: str = PACKAGE_ARN, flavour: str = "cpu", dry_run: bool = False):
        with self.stub:
            result = promote(
                sagemaker=self.sagemaker,
                s3=self.s3,
                ssm=self.ssm,
                package_arn=arn,
                pointer=POINTER,
                tenant_config=TENANT.published(),
                flavour=flavour,
                group_prefix="mlops-dev",
                dry_run=dry_run,
            )
        self.stub.assert_no_pending_responses()
        return result

    def pointer(self) -> tuple[str, int, str | None]:
        """The pointer's value, version and description."""
        parameter = self.ssm.get_parameter(Name=POINTER)["Parameter"]
        [described] = self.ssm.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [POINTER]}]
        )["Parameters"]
        return parameter["Value"], parameter["Version"], described.get("Description")

    def clients(self) -> Clients:
        return Clients(sagemaker=self.sagemaker, s3=self.s3, ssm=self.ssm, sts=self.sts, dynamodb=self.dynamodb)

    def parameter(self, name: str) -> tuple[str, int, str | None]:
        """Any pointer's value, version and description."""
        [entry, *_] = reversed(self.ssm.get_parameter_history(Name=name)["Parameters"])
        return entry["Value"], entry["Version"], entry.get("Description")


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[Any, dict[str, Any]]]:
    """One moto for the module, its clients made once (making a client reads its service model: 0.1 s)."""
    with mock_aws() as mock:
        names = ("s3", "ssm", "sts", "sagemaker", "dynamodb")
        yield mock, {name: boto3.client(name, region_name=REGION) for name in names}


@pytest.fixture
def world(evaluate, aws) -> World:
    mock, clients = aws
    mock.reset()  # every test starts from empty S3 and SSM
    return World(evaluate, clients)


UNTOUCHED = ("example", 1, "the example model")


# ---------------------------------------------------------------------------------------------
# promote()


def test_an_approved_package_of_the_tenant_is_written_to_the_pointer_with_its_lineage(world):
    world.describes(package(world.schema))

    promotion = world.promote()

    assert world.pointer() == (MODEL_DATA, 2, f"model package {PACKAGE_ARN}")
    assert (promotion.pointer, promotion.model_data, promotion.previous) == (POINTER, MODEL_DATA, "example")
    assert (promotion.algorithm, promotion.model, promotion.tenant, promotion.written) == (
        "xgboost",
        "xgboost",
        "acme",
        True,
    )
    assert not promotion.unchanged


def test_a_dry_run_checks_everything_and_writes_nothing(world):
    world.describes(package(world.schema))

    promotion = world.promote(dry_run=True)

    assert world.pointer() == UNTOUCHED
    assert (promotion.written, promotion.model_data, promotion.previous) == (False, MODEL_DATA, "example")


@pytest.mark.parametrize(
    ("algorithm", "flavour"), [("xgboost", "cpu"), ("linear", "cpu"), ("xgboost", "gpu")], ids=lambda v: v
)
def test_each_flavour_serves_its_algorithms(world, algorithm, flavour):
    world.evaluation(algorithm)
    world.describes(package(world.schema))

    assert world.promote(flavour=flavour).algorithm == algorithm
    assert world.pointer()[0] == MODEL_DATA


def test_the_algorithm_in_the_package_s_metadata_wins_over_its_evaluation_document(world):
    world.evaluation("xgboost")
    world.describes(package(world.schema, CustomerMetadataProperties__algorithm="linear"))

    with pytest.raises(PromotionRefused, match="holds a linear model, which a gpu variant does not serve"):
        world.promote(flavour="gpu")


def _refusal(message: str, flavour: str = "cpu", arn: str = PACKAGE_ARN, **changes: Any):
    def arrange(world: World) -> tuple[str, str, str]:
        world.describes(package(world.schema, **changes))
        return message, flavour, arn

    return arrange


def _with(setup: Callable[[World], None], message: str, flavour: str = "cpu", **changes: Any):
    def arrange(world: World) -> tuple[str, str, str]:
        setup(world)
        world.describes(package(world.schema, **changes))
        return message, flavour, PACKAGE_ARN

    return arrange


def _schema(message: str, features: dict[str, str] | None = None, problem_type: str | None = None):
    """The package was registered for another schema (its sha256 is the other document's)."""

    def arrange(world: World) -> tuple[str, str, str]:
        body = schema_body(world.evaluate, features, problem_type)
        world.put(SCHEMA_KEY, body)
        world.describes(package(body))
        return message, "cpu", PACKAGE_ARN

    return arrange


def _not_found(world: World) -> tuple[str, str, str]:
    world.stub.add_client_error(
        "describe_model_package",
        service_error_code="ValidationException",
        service_message=f"Model Package {PACKAGE_ARN} does not exist.",
        expected_params={"ModelPackageName": PACKAGE_ARN},
    )
    return f"model package {PACKAGE_ARN} does not exist", "cpu", PACKAGE_ARN


def _no_pointer(world: World) -> tuple[str, str, str]:
    world.ssm.delete_parameter(Name=POINTER)
    world.describes(package(world.schema))
    return f"the model pointer {POINTER} does not exist", "cpu", PACKAGE_ARN


STAGING_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlops-staging-acme-xgboost/1"
REFUSALS = {
    "not an ARN": _refusal("is not a model package version ARN", arn=GROUP),
    "no such package": _not_found,
    "pending approval": _refusal("is PendingManualApproval, not Approved", ModelApprovalStatus="PendingManualApproval"),
    "rejected": _refusal("is Rejected, not Approved", ModelApprovalStatus="Rejected"),
    "no approval status": _refusal("without an approval status, not Approved", ModelApprovalStatus=None),
    "another tenant": _refusal("belongs to tenant 'globex', not 'acme'", CustomerMetadataProperties__tenant="globex"),
    "no tenant": _refusal("belongs to tenant None, not 'acme'", CustomerMetadataProperties__tenant=None),
    "another environment": _refusal(
        "is in group 'mlops-staging-acme-xgboost', not one of this environment's groups",
        arn=STAGING_ARN,
        ModelPackageArn=STAGING_ARN,
        ModelPackageGroupName="mlops-staging-acme-xgboost",
    ),
    # Metadata and group disagree: a package of tenant acme's model xgboost in another group that starts
    # with mlops-dev-acme- (tenant acme-x's, say) is not acme's xgboost package.
    "group of another tenant with the same prefix": _refusal(
        "is in group 'mlops-dev-acme-x-xgboost', not one of this environment's groups for tenant 'acme' and its "
        "model 'xgboost' (mlops-dev-acme-xgboost)",
        ModelPackageGroupName="mlops-dev-acme-x-xgboost",
    ),
    "linear on a GPU": _with(
        lambda world: world.evaluation("linear"), "holds a linear model, which a gpu variant does not serve", "gpu"
    ),
    "unknown algorithm": _with(
        lambda world: world.evaluation("catboost"), "holds a catboost model, which a cpu variant does not serve"
    ),
    "no algorithm anywhere": _refusal("names no algorithm", ModelMetrics=None),
    "features reordered": _schema(
        "feature 1 is plan (bigint) in the model, tenure (double) in the endpoint's schema",
        {"plan": "bigint", "tenure": "double", "active": "boolean"},
    ),
    "a feature's type changed": _schema(
        "feature 2 is plan (double) in the model, plan (bigint) in the endpoint's schema",
        {"tenure": "double", "plan": "double", "active": "boolean"},
    ),
    "a feature renamed": _schema(
        "feature 3 is is_active (boolean) in the model, active (boolean) in the endpoint's schema",
        {"tenure": "double", "plan": "bigint", "is_active": "boolean"},
    ),
    "a feature fewer": _schema(
        "feature 3, active (boolean), is in the endpoint's schema but not in the model",
        {"tenure": "double", "plan": "bigint"},
    ),
    "a feature more": _schema(
        "feature 4, region (bigint), is in the model but not in the endpoint's schema",
        {"tenure": "double", "plan": "bigint", "active": "boolean", "region": "bigint"},
    ),
    "another problem type": _schema(
        "is a regression model; tenant 'acme' declares a binary problem", None, "regression"
    ),
    "schema changed after registration": _refusal(
        "has sha256 ", CustomerMetadataProperties__feature_schema_sha256="0" * 64
    ),
    "schema missing": _with(
        lambda world: world.s3.delete_object(Bucket=ARTIFACTS, Key=SCHEMA_KEY), "cannot read the feature schema"
    ),
    "no schema metadata": _refusal("has no feature_schema", CustomerMetadataProperties__feature_schema=None),
    "artifact not on S3": _refusal(
        "allowed: an s3:// URI ending in model.tar.gz",
        InferenceSpecification__Containers=[{"Image": "serving:1", "ModelDataUrl": "https://example.com/model.tar.gz"}],
    ),
    "artifact not a model.tar.gz": _refusal(
        "has the artifact 's3://artifacts-zone/model.joblib'",
        InferenceSpecification__Containers=[{"Image": "serving:1", "ModelDataUrl": "s3://artifacts-zone/model.joblib"}],
    ),
    "no artifact": _refusal("has the artifact None", InferenceSpecification__Containers=[{"Image": "serving:1"}]),
    "artifact outside the tenant's runs": _refusal(
        "outside the tenant's training runs",
        InferenceSpecification__Containers=[
            {"Image": "serving:1", "ModelDataUrl": f"s3://{ARTIFACTS}/artifacts/runs/other/run-1/model.tar.gz"}
        ],
    ),
    "no pointer": _no_pointer,
    "no baseline metadata": _refusal(
        "has no baseline and baseline_sha256 metadata", CustomerMetadataProperties__baseline=None
    ),
    "baseline elsewhere than beside the artifact": _refusal(
        f"names the baseline s3://{ARTIFACTS}/{RUN}/baseline.json, not s3://{ARTIFACTS}/{BASELINE_KEY} beside",
        CustomerMetadataProperties__baseline=f"s3://{ARTIFACTS}/{RUN}/baseline.json",
    ),
    "baseline changed after registration": _refusal(
        "not " + "0" * 64 + " as the package records", CustomerMetadataProperties__baseline_sha256="0" * 64
    ),
    "no artifact digest": _refusal("has no artifact_sha256 metadata", CustomerMetadataProperties__artifact_sha256=None),
    "artifact replaced after registration": _with(
        lambda world: world.put(MODEL_KEY, b"a model.tar.gz someone put there later"),
        "has sha256 "
        + hashlib.sha256(b"a model.tar.gz someone put there later").hexdigest()
        + ", not "
        + hashlib.sha256(MODEL_ARCHIVE).hexdigest()
        + " as the package records",
    ),
    "artifact missing": _with(
        lambda world: world.s3.delete_object(Bucket=ARTIFACTS, Key=MODEL_KEY), "cannot read the artifact"
    ),
    "baseline missing": _with(
        lambda world: world.s3.delete_object(Bucket=ARTIFACTS, Key=BASELINE_KEY), "cannot read the baseline"
    ),
    "baseline of other features": _with(
        lambda world: world.put(BASELINE_KEY, json.dumps({"feature_order": ["plan", "tenure", "active"]}).encode()),
        "describes the features ['plan', 'tenure', 'active'], not the schema's ['tenure', 'plan', 'active']",
        CustomerMetadataProperties__baseline_sha256=hashlib.sha256(
            json.dumps({"feature_order": ["plan", "tenure", "active"]}).encode()
        ).hexdigest(),
    ),
}


@pytest.mark.parametrize("arrange", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refusal_is_one_sentence_and_writes_nothing(world, arrange):
    message, flavour, arn = arrange(world)
    before = world.ssm.describe_parameters()["Parameters"]

    with pytest.raises(PromotionRefused) as refused:
        world.promote(arn=arn, flavour=flavour)

    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert world.ssm.describe_parameters()["Parameters"] == before  # nothing written, nothing created


def test_the_schema_promote_expects_is_the_one_evaluate_registers(evaluate):
    # One definition (its schema_version included): promote compares with the function evaluate writes with.
    assert feature_schema is documents.feature_schema


def test_the_first_difference_is_none_for_equal_schemas():
    features = [("tenure", "double"), ("plan", "bigint")]

    assert first_difference(features, list(features)) is None


# ---------------------------------------------------------------------------------------------
# The command


def configuration(account: str = ACCOUNT) -> SimpleNamespace:
    """The parts of PlatformConfig the command reads: environments[].serving.endpoints, pipelines."""
    endpoints = {
        "example": SimpleNamespace(
            tenant="example", model="xgboost", variants=(SimpleNamespace(name="Champion", flavour="cpu"),)
        ),
        "churn": SimpleNamespace(
            tenant="acme",
            model="xgboost",
            variants=(
                SimpleNamespace(name="Champion", flavour="cpu", weight=90),
                SimpleNamespace(name="Challenger", flavour="gpu", weight=10),
            ),
        ),
        "demo": SimpleNamespace(
            tenant="example", model="xgboost", variants=(SimpleNamespace(name="Champion", flavour="cpu"),)
        ),
        "orphan": SimpleNamespace(
            tenant="nobody", model="xgboost", variants=(SimpleNamespace(name="Champion", flavour="cpu"),)
        ),
    }
    dev = SimpleNamespace(name="dev", account=account, region=REGION, serving=SimpleNamespace(endpoints=endpoints))
    return SimpleNamespace(
        project=SimpleNamespace(name="mlops"),
        environment=lambda name: {"dev": dev}[name],
        pipelines=(TENANT,),
    )


def main(argv: list[str], **seams: Any) -> int:
    """``mlops <argv>`` (promote, promote-challenger or rollback) with the test's configuration and clients."""
    return mlops(argv, **seams)


def arguments(endpoint: str = "churn", variant: str = "Champion", *extra: str) -> list[str]:
    return [
        "promote",
        "--environment",
        "dev",
        "--endpoint",
        endpoint,
        "--variant",
        variant,
        "--model-package",
        PACKAGE_ARN,
        "--ledger-table",
        LEDGER,
        *extra,
    ]


def test_the_command_promotes_and_says_when_the_endpoint_takes_the_model(world, capsys):
    world.describes(package(world.schema))

    with world.stub:
        code = main(arguments(), config=configuration(), clients=world.clients())

    out = capsys.readouterr().out
    assert code == 0, out
    assert world.pointer() == (MODEL_DATA, 2, f"model package {PACKAGE_ARN}")
    assert f"pointed churn/Champion (cpu) in dev at {MODEL_DATA}" in out
    assert POINTER in out
    assert "previous:      example" in out
    assert "make deploy ENV=dev" in out
    assert "note:" not in out  # the package is of the endpoint's model


def test_the_command_refuses_a_package_of_another_model_than_the_endpoint_s(world, capsys):
    world.describes(package(world.schema, CustomerMetadataProperties__model="linear"))

    with world.stub:
        code = main(arguments(), config=configuration(), clients=world.clients())

    assert code == 1
    assert "holds model 'linear', not 'xgboost', the endpoint's declared model" in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED


def test_the_command_s_dry_run_writes_nothing(world, capsys):
    world.describes(package(world.schema))

    with world.stub:
        code = main(arguments("churn", "Champion", "--dry-run"), config=configuration(), clients=world.clients())

    assert code == 0
    assert world.pointer() == UNTOUCHED
    assert "dry run: nothing written" in capsys.readouterr().out


def test_the_command_checks_the_variant_s_flavour(world, capsys):
    world.evaluation("linear")
    world.describes(package(world.schema))

    with world.stub:
        code = main(arguments("churn", "Challenger"), config=configuration(), clients=world.clients())

    assert code == 1
    assert "refused: " in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED
    assert [p["Name"] for p in world.ssm.describe_parameters()["Parameters"]] == [POINTER]  # no Challenger pointer made


def test_the_command_refuses_credentials_of_another_account(world, capsys):
    with world.stub:  # no SageMaker call expected
        code = main(arguments(), config=configuration(account="111111111111"), clients=world.clients())

    assert code == 1
    assert f"the AWS credentials are for account {ACCOUNT}; dev deploys to 111111111111" in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED


def test_the_command_refuses_the_example_endpoint_before_reading_anything(capsys):
    code = main(arguments("example"))  # no config, no clients: it must not reach them

    assert code == 2
    assert "the example endpoint serves the example model shipped with the repository and is never promoted" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("endpoint", "variant", "message"),
    [
        ("demo", "Champion", "endpoint 'demo' serves the example tenant, which is never promoted"),
        ("billing", "Champion", "environment dev has no endpoint 'billing'; allowed: churn, demo, orphan"),
        ("churn", "Shadow", "endpoint 'churn' has no variant 'Shadow'; allowed: Champion, Challenger"),
        ("orphan", "Champion", "serves tenant 'nobody', which has no config/pipelines/nobody.yaml"),
    ],
)
def test_the_command_names_what_the_configuration_allows(capsys, endpoint, variant, message):
    clients = SimpleNamespace()  # any AWS call would fail on it

    assert main(arguments(endpoint, variant), config=configuration(), clients=clients) == 2
    assert message in capsys.readouterr().err


def test_the_checks_are_one_module_shared_with_the_approval_lambda():
    from tests.conftest import ROOT

    module = sys.modules["mlops_platform.registry.checks"]

    assert module.__file__ == str(ROOT / "mlops_platform" / "registry" / "checks.py")
    assert module is checks
    assert PromotionRefused is module.PromotionRefused
    assert feature_schema is module.feature_schema
    # No second copy of a check anywhere the command, the Lambdas or the package could pick one up.
    sources = [
        ROOT / "mlops_platform" / "cli" / "promotion.py",
        *(ROOT / "lambda").rglob("*.py"),
        *(ROOT / "mlops_platform").rglob("*.py"),
    ]
    defining = [path.relative_to(ROOT).as_posix() for path in sources if "def check_package(" in path.read_text()]
    assert defining == ["mlops_platform/registry/checks.py"]


# ---------------------------------------------------------------------------------------------
# promote-challenger, rollback and the ledger record

CHALLENGER_POINTER = "/mlops/dev/models/churn/Challenger"


def challenger_names(world: World, value: str = MODEL_DATA, arn: str = PACKAGE_ARN) -> None:
    """The approval path promoted the package to the Challenger (gpu in configuration())."""
    world.ssm.put_parameter(Name=CHALLENGER_POINTER, Value="example", Type="String", Description="the example model")
    world.ssm.put_parameter(
        Name=CHALLENGER_POINTER, Value=value, Type="String", Overwrite=True, Description=f"model package {arn}"
    )


def promote_challenger(world: World) -> int:
    """``mlops promote-challenger`` for the churn endpoint in dev, within the world's SageMaker stub."""
    with world.stub:
        return main(
            ["promote-challenger", "--environment", "dev", "--endpoint", "churn", "--ledger-table", LEDGER],
            config=configuration(),
            clients=world.clients(),
        )


def test_promote_challenger_gives_the_champion_the_challenger_s_model_after_the_checks(world, capsys):
    challenger_names(world)
    world.describes(package(world.schema))

    code = promote_challenger(world)

    out = capsys.readouterr().out
    assert code == 0, out
    assert world.pointer() == (MODEL_DATA, 2, f"model package {PACKAGE_ARN}")
    assert world.parameter(CHALLENGER_POINTER)[0] == MODEL_DATA  # the Challenger keeps it
    assert "pointed churn/Champion (cpu) in dev" in out
    assert """-c variantWeights='{"dev": {"churn": {"Champion": 90, "Challenger": 10}}}'""" in out
    assert "- name: Champion ... weight: 90" in out


def test_promote_challenger_refuses_a_challenger_that_serves_the_example_model(world, capsys):
    world.ssm.put_parameter(Name=CHALLENGER_POINTER, Value="example", Type="String", Description="the example model")

    code = promote_challenger(world)  # no SageMaker call expected

    assert code == 1
    assert "there is no challenger model to promote" in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED


def test_promote_challenger_refuses_a_pointer_whose_value_is_not_its_package_s_artifact(world, capsys):
    challenger_names(world, value=f"s3://{ARTIFACTS}/{RUN}/models/other/output/model.tar.gz")
    world.describes(package(world.schema))

    code = promote_challenger(world)

    assert code == 1
    assert "as the pointer that names it holds" in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED


def test_promote_challenger_checks_the_package_against_the_champion_s_flavour(world, capsys):
    # A linear model may be the Challenger only on a CPU variant; here the Champion is cpu and the
    # check passes, while the same package as a gpu Champion would not (test_each_flavour_serves…).
    world.evaluation("linear")
    challenger_names(world)
    world.describes(package(world.schema))

    code = promote_challenger(world)

    assert code == 0
    assert "(linear, tenant acme)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "arguments",
    [
        ["promote-challenger", "--variant", "Challenger"],
        ["rollback"],
        ["promote", "--model-package", PACKAGE_ARN, "--rollback", "--variant", "Champion"],
    ],
    ids=["challenger with a variant", "rollback without a variant", "two actions"],
)
def test_the_command_line_refuses_an_unclear_action(arguments):
    with pytest.raises(SystemExit) as exited:
        mlops([arguments[0], "--environment", "dev", "--endpoint", "churn", *arguments[1:]])

    assert exited.value.code == 2


def test_rollback_returns_the_pointer_to_its_previous_model_with_its_lineage(world, capsys):
    world.describes(package(world.schema))
    with world.stub:
        assert main(arguments(), config=configuration(), clients=world.clients()) == 0

    code = main(
        ["rollback", *arguments()[1:7], "--ledger-table", LEDGER], config=configuration(), clients=world.clients()
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert world.pointer() == ("example", 3, "the example model")  # a new version, the old value and description
    assert "rolled back churn/Champion (cpu) in dev to version 1: example" in out
    assert f"previous:      {MODEL_DATA}" in out


def test_rollback_skips_versions_with_the_same_value(world):
    for _ in range(2):
        world.ssm.put_parameter(Name=POINTER, Value=MODEL_DATA, Type="String", Overwrite=True, Description="v")

    rolled = rollback(ssm=world.ssm, pointer=POINTER)

    assert (rolled.value, rolled.version, rolled.previous) == ("example", 1, MODEL_DATA)


def test_rollback_refuses_a_pointer_without_an_earlier_model(world, capsys):
    code = main(
        ["rollback", *arguments()[1:7], "--ledger-table", LEDGER], config=configuration(), clients=world.clients()
    )

    assert code == 1
    assert "there is nothing to roll back to" in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED


def test_a_dry_run_rollback_writes_nothing(world):
    world.ssm.put_parameter(Name=POINTER, Value=MODEL_DATA, Type="String", Overwrite=True, Description="promoted")

    rolled = rollback(ssm=world.ssm, pointer=POINTER, dry_run=True)

    assert (rolled.value, rolled.written) == ("example", False)
    assert world.pointer() == (MODEL_DATA, 2, "promoted")


def test_rolling_back_the_challenger_prints_the_weights_that_take_it_out_of_traffic(world, capsys):
    challenger_names(world)

    code = main(
        ["rollback", *arguments("churn", "Challenger")[1:7], "--ledger-table", LEDGER],
        config=configuration(),
        clients=world.clients(),
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert world.parameter(CHALLENGER_POINTER) == ("example", 3, "the example model")
    assert """{"dev": {"churn": {"Champion": 90, "Challenger": 0}}}""" in out


def test_the_change_is_recorded_in_the_ledger(world, capsys):
    world.describes(package(world.schema))

    with world.stub:
        code = main(arguments(), config=configuration(), clients=world.clients())

    assert code == 0, capsys.readouterr().err
    [item] = boto3.resource("dynamodb", region_name=REGION).Table(LEDGER).scan()["Items"]
    assert item["pk"] == "PROMOTION#churn"
    assert (item["decision"], item["variant"], item["pointer"]) == ("promoted", "Champion", POINTER)
    assert (item["model_data"], item["previous"], item["package_arn"]) == (MODEL_DATA, "example", PACKAGE_ARN)
    assert item["by"].startswith("arn:aws:")  # who, from STS
    assert (item["gsi1pk"], item["gsi1sk"].split("#")[0]) == ("TENANT#acme", "PROMOTION")
    assert f"recorded in:   {LEDGER} (PROMOTION#churn)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Order and the deployment lock (tests/unit/test_approval_order.py races the command with the workflow)

NEWER_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/4"
NEWER_DATA = f"s3://{ARTIFACTS}/artifacts/runs/acme/run-4/models/job/output/model.tar.gz"


def newer_promoted(world: World) -> None:
    world.ssm.put_parameter(
        Name=POINTER, Value=NEWER_DATA, Type="String", Overwrite=True, Description=f"model package {NEWER_ARN}"
    )


def test_an_older_package_than_the_pointer_names_is_refused(world, capsys):
    newer_promoted(world)
    world.describes(package(world.schema))

    with world.stub:
        code = main(arguments(), config=configuration(), clients=world.clients())

    assert code == 1
    error = capsys.readouterr().err
    assert f"names {NEWER_ARN}, a newer version than {PACKAGE_ARN}" in error
    assert "--allow-older" in error
    assert world.pointer() == (NEWER_DATA, 2, f"model package {NEWER_ARN}")


def test_an_older_package_is_written_when_the_person_means_it(world):
    newer_promoted(world)
    world.describes(package(world.schema))

    with world.stub:
        code = main(arguments("churn", "Champion", "--allow-older"), config=configuration(), clients=world.clients())

    assert code == 0
    assert world.pointer() == (MODEL_DATA, 3, f"model package {PACKAGE_ARN}")


def lock_item(world: World) -> dict[str, Any] | None:
    key = {"pk": {"S": "LOCK#dev-Serving"}, "sk": {"S": "LOCK"}}
    return world.dynamodb.get_item(TableName=LEDGER, Key=key).get("Item")


def test_the_lock_is_released_whether_the_promotion_is_written_or_refused(world):
    world.describes(package(world.schema, ModelApprovalStatus="Rejected"))
    with world.stub:
        assert main(arguments(), config=configuration(), clients=world.clients()) == 1
    assert lock_item(world) is None

    world.describes(package(world.schema))
    with world.stub:
        assert main(arguments(), config=configuration(), clients=world.clients()) == 0
    assert lock_item(world) is None


def test_a_lock_held_by_another_writer_refuses_the_promotion(world, capsys):
    world.dynamodb.put_item(
        TableName=LEDGER,
        Item={
            "pk": {"S": "LOCK#dev-Serving"},
            "sk": {"S": "LOCK"},
            "owner": {"S": "churn-v4-0123456789ab"},
            "expires_at": {"N": str(int(datetime.now(UTC).timestamp()) + 600)},
        },
    )

    with world.stub:  # refused before any check: no SageMaker call
        code = main(arguments(), config=configuration(), clients=world.clients())

    assert code == 1
    assert "the deployment lock of dev-Serving is held by churn-v4-0123456789ab (until " in capsys.readouterr().err
    assert world.pointer() == UNTOUCHED
    assert lock_item(world)["owner"] == {"S": "churn-v4-0123456789ab"}


def test_without_a_table_the_ledger_is_the_foundation_stack_s(world, capsys):
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubbed = Stubber(cloudformation)
    stubbed.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "dev-Foundation",
                    "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "RunLedgerTableName", "OutputValue": LEDGER}],
                }
            ]
        },
        {"StackName": "dev-Foundation"},
    )
    world.describes(package(world.schema))
    clients = Clients(
        sagemaker=world.sagemaker,
        s3=world.s3,
        ssm=world.ssm,
        sts=world.sts,
        dynamodb=world.dynamodb,
        cloudformation=cloudformation,
    )

    with world.stub, stubbed:
        code = main(arguments()[:9], config=configuration(), clients=clients)

    assert code == 0, capsys.readouterr().err
    assert f"recorded in:   {LEDGER} (PROMOTION#churn)" in capsys.readouterr().out
    stubbed.assert_no_pending_responses()
