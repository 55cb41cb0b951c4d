"""``mlops upload``: a file's columns checked against the tenant's published schema, then SSE-KMS into the raw zone."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from sklearn.datasets import load_breast_cancer

from config.loader import load_pipelines
from mlops_constructs.publishing import config_key
from mlops_platform.cli import COMMANDS, main
from mlops_platform.cli import upload as upload_command
from mlops_platform.data.prepare import main as prepare
from mlops_platform.monitoring.retraining.events import parse_object_created
from mlops_platform.monitoring.retraining.model import Arrival
from mlops_platform.sagemaker_paths import ProcessingPaths
from scripts.example_dataset import column_name
from tests.conftest import ROOT

RAW, ARTIFACTS = "mlops-dev-raw", "mlops-dev-artifacts"
DAY = "2026-03-04"


def example_config(required: tuple[str, ...] = ()) -> dict:
    """The example tenant's config as synth publishes it (mlops_constructs/publishing.py), these features required."""
    [example] = [p for p in load_pipelines(ROOT / "config" / "pipelines") if p.tenant == "example"]
    features = {
        name: spec.model_copy(update={"required": name in required}) for name, spec in example.dataset.features.items()
    }
    example = example.model_copy(update={"dataset": example.dataset.model_copy(update={"features": features})})
    return json.loads(json.dumps(example.published()))


def breast_cancer(rows: int = 120) -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.head(rows)
    return frame.set_axis([column_name(str(c)) for c in frame.columns], axis=1)


@pytest.fixture
def platform(monkeypatch):
    """dev's Foundation stack in moto: its outputs, the raw and artifacts buckets, the key, the published config."""
    with mock_aws():
        s3 = boto3.client("s3")
        for bucket in (RAW, ARTIFACTS):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
        key_arn = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
        s3.put_object(Bucket=ARTIFACTS, Key=config_key("example"), Body=json.dumps(example_config()).encode())
        outputs = {"RawZoneBucketName": RAW, "ArtifactsZoneBucketName": ARTIFACTS, "PlatformKeyArn": key_arn}
        stacks = {"dev-Foundation": {"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}}
        # moto's CloudFormation needs packages this project does not install; DescribeStacks's answer, as AWS gives it.
        monkeypatch.setattr(upload_command, "describe_stack", lambda session, name: stacks[name])
        yield s3, key_arn


def upload(path: Path, *extra: str) -> int:
    return main(["upload", str(path), "--tenant", "example", "--environment", "dev", "--day", DAY, *extra])


def raw_keys(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=RAW).get("Contents", [])]


def test_upload_is_a_command_of_mlops():
    assert COMMANDS["upload"] == "upload"


@pytest.mark.parametrize("name", ["cells.csv", "cells.parquet", "cells.jsonl"])
def test_a_file_that_matches_the_schema_lands_under_the_raw_layout_encrypted_with_the_platform_key(
    platform, tmp_path, name, capsys
):
    s3, key_arn = platform
    path = tmp_path / name
    frame = breast_cancer()
    {".csv": lambda: frame.to_csv(path, index=False), ".parquet": lambda: frame.to_parquet(path, index=False),
     ".jsonl": lambda: frame.to_json(path, orient="records", lines=True)}[path.suffix]()  # fmt: skip

    assert upload(path) == 0

    key = f"raw/example/breast-cancer/dt={DAY}/{name}"
    assert raw_keys(s3) == [key]
    head = s3.head_object(Bucket=RAW, Key=key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    assert f"s3://{RAW}/{key}" in capsys.readouterr().out


def test_what_upload_writes_is_what_the_trigger_counts_and_prepare_reads(platform, tmp_path):
    s3, _ = platform
    path = tmp_path / "delivery.csv"
    breast_cancer(200).to_csv(path, index=False)
    assert upload(path) == 0
    [key] = raw_keys(s3)

    event = {"source": "aws.s3", "detail-type": "Object Created", "id": "e-1",
             "detail": {"bucket": {"name": RAW}, "object": {"key": key}}}  # fmt: skip
    arrival = parse_object_created(json.dumps(event), bucket=RAW, raw_prefix="raw/", ignored_tenants=frozenset())
    assert isinstance(arrival, Arrival)
    assert (arrival.tenant, arrival.dataset) == ("example", "breast-cancer")

    # The Processing job's raw input is the dataset's prefix, copied as it is.
    report = prepared(s3, key, tmp_path)
    assert (report["rows_read"], report["valid"], report["rejected"]) == (200, 200, 0)


def prepared(s3, key: str, tmp_path) -> dict:
    """Prepare's report on the uploaded object, copied into the Processing job's raw input as SageMaker copies it."""
    processing = ProcessingPaths(root=tmp_path / "processing", message=tmp_path / "message")
    local = processing.raw / key.removeprefix("raw/example/breast-cancer/")
    local.parent.mkdir(parents=True)
    s3.download_file(RAW, key, str(local))
    config = tmp_path / "example.json"
    config.write_text(json.dumps(example_config()))
    assert prepare(["--config", str(config), "--run-id", "r-1", "--day", DAY], processing) == 0
    return json.loads((processing.report / "report.json").read_text())


def test_missing_required_columns_stop_the_upload_before_anything_is_written(platform, tmp_path, capsys):
    s3, _ = platform
    config = tmp_path / "required.json"
    config.write_text(json.dumps(example_config(required=("mean_radius", "worst_area"))))
    path = tmp_path / "partial.csv"
    breast_cancer().drop(columns=["mean_radius", "mean_texture", "target"]).rename(
        columns={"worst_area": "worst area"}
    ).to_csv(path, index=False)

    assert upload(path, "--config", str(config)) == 2

    assert raw_keys(s3) == []
    message = capsys.readouterr().err.strip()
    assert message == (
        "mlops upload: partial.csv lacks the columns 'mean_radius', 'worst_area', 'target' "
        "(tenant example, dataset breast-cancer)"
    )


def test_missing_optional_columns_are_noted_and_the_file_is_uploaded_for_prepare_to_read_as_missing(
    platform, tmp_path, capsys
):
    s3, _ = platform
    path = tmp_path / "gaps.csv"
    breast_cancer(50).drop(columns=["mean_texture", "worst_area"]).to_csv(path, index=False)

    assert upload(path) == 0

    [key] = raw_keys(s3)
    assert (
        "mlops upload: gaps.csv lacks the optional columns 'mean_texture', 'worst_area': "
        "prepare reads them as missing in every row"
    ) in capsys.readouterr().err
    # What upload lets through, prepare accepts: every row valid, the absent features missing.
    report = prepared(s3, key, tmp_path)
    assert (report["rows_read"], report["valid"], report["rejected"]) == (50, 50, 0)


def test_the_target_may_be_absent_only_from_the_dataset_named_for_scoring(platform, tmp_path, capsys):
    s3, _ = platform
    config = example_config()
    config["batch_prediction"]["dataset"] = "new-patients"
    (tmp_path / "scoring.json").write_text(json.dumps(config))
    path = tmp_path / "unlabelled.csv"
    breast_cancer(20).drop(columns=["target"]).to_csv(path, index=False)

    for dataset, status in (("new-patients", 0), ("breast-cancer", 2)):
        assert upload(path, "--config", str(tmp_path / "scoring.json"), "--dataset", dataset) == status
    assert "unlabelled.csv lacks the columns 'target'" in capsys.readouterr().err
    assert raw_keys(s3) == [f"raw/example/new-patients/dt={DAY}/unlabelled.csv"]


def test_unknown_columns_stop_the_upload_only_where_the_tenant_rejects_them(platform, tmp_path, capsys):
    s3, _ = platform
    path = tmp_path / "extra.parquet"
    breast_cancer().assign(carrier="x").to_parquet(path, index=False)

    assert upload(path) == 0
    assert "has columns the schema does not declare, 'carrier': prepare ignores them" in capsys.readouterr().err

    strict = example_config()
    strict["dataset"]["unknown_columns"] = "reject"
    (tmp_path / "strict.json").write_text(json.dumps(strict))
    path.rename(tmp_path / "extra2.parquet")
    assert upload(tmp_path / "extra2.parquet", "--config", str(tmp_path / "strict.json")) == 2
    assert "extra2.parquet has columns the schema does not declare, 'carrier'" in capsys.readouterr().err
    assert len(raw_keys(s3)) == 1


def test_an_existing_object_is_never_replaced(platform, tmp_path, capsys):
    s3, _ = platform
    path = tmp_path / "once.csv"
    breast_cancer().to_csv(path, index=False)
    assert upload(path) == 0
    version = s3.head_object(Bucket=RAW, Key=f"raw/example/breast-cancer/dt={DAY}/once.csv")["ETag"]

    assert upload(path) == 2

    assert "exists already" in capsys.readouterr().err
    assert s3.head_object(Bucket=RAW, Key=f"raw/example/breast-cancer/dt={DAY}/once.csv")["ETag"] == version


def test_a_dry_run_checks_and_writes_nothing(platform, tmp_path, capsys):
    s3, _ = platform
    path = tmp_path / "try.jsonl"
    breast_cancer().to_json(path, orient="records", lines=True)

    assert upload(path, "--dry-run") == 0

    assert raw_keys(s3) == []
    assert f"would upload {path} to s3://{RAW}/raw/example/breast-cancer/dt={DAY}/try.jsonl" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "content", "extra", "sentence"),
    [
        ("data.txt", "a\n", (), "data.txt must be named <name>.csv, <name>.parquet or <name>.jsonl"),
        ("my data.csv", "a\n", (), "'my data.csv' cannot name an object"),
        ("empty.csv", "", (), "empty.csv: the file has no header row"),
        ("dup.csv", "a,a\n1,2\n", (), "dup.csv: the columns 'a' appear more than once"),
        ("ok.csv", "a\n", ("--day", "2026-02-30"), "--day has value '2026-02-30'"),
        ("ok.csv", "a\n", ("--dataset", "other"), "--dataset has value 'other'; allowed: breast-cancer"),
    ],
)
def test_bad_input_is_refused_with_one_sentence(platform, tmp_path, capsys, name, content, extra, sentence):
    s3, _ = platform
    path = tmp_path / name
    path.write_text(content)

    assert upload(path, *extra) == 2

    err = capsys.readouterr().err
    assert sentence in err
    assert err.count("\n") == 1
    assert raw_keys(s3) == []


def test_an_environment_that_is_not_deployed_is_named(platform, tmp_path, capsys, monkeypatch):
    path = tmp_path / "x.csv"
    breast_cancer().to_csv(path, index=False)

    def missing(session, name):
        error = {"Error": {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}}
        raise ClientError(error, "DescribeStacks")

    monkeypatch.setattr(upload_command, "describe_stack", missing)

    assert main(["upload", str(path), "--tenant", "example", "--environment", "qa"]) == 2
    assert "the stack qa-Foundation cannot be read" in capsys.readouterr().err


def test_describe_stack_reads_cloudformation_s_answer():
    session = boto3.Session(region_name="eu-west-1")
    client = session.client("cloudformation")
    stubber = Stubber(client)
    answer = {"StackName": "dev-Foundation", "CreationTime": "2026-01-01T00:00:00Z", "StackStatus": "UPDATE_COMPLETE",
              "Outputs": [{"OutputKey": "RawZoneBucketName", "OutputValue": RAW}]}  # fmt: skip
    stubber.add_response("describe_stacks", {"Stacks": [answer]}, {"StackName": "dev-Foundation"})

    class Session:
        def client(self, name):
            assert name == "cloudformation"
            return client

    with stubber:
        assert upload_command.describe_stack(Session(), "dev-Foundation")["Outputs"][0]["OutputValue"] == RAW


def test_a_write_that_loses_the_race_to_another_upload_replaces_nothing(platform, tmp_path):
    """Two uploads can both pass the early existence check; the write itself is conditional."""
    from mlops_platform.cli.upload import write_once

    s3, _ = platform
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("a\n1\n")
    second.write_text("a\n2\n")
    key = f"raw/example/breast-cancer/dt={DAY}/race.csv"

    assert write_once(s3, RAW, key, first, {}) is True
    assert write_once(s3, RAW, key, second, {}) is False

    assert s3.get_object(Bucket=RAW, Key=key)["Body"].read() == b"a\n1\n"


def test_a_file_too_large_for_one_request_goes_in_parts_and_never_replaces_an_object(platform, tmp_path, monkeypatch):
    from mlops_platform.cli import upload as command

    s3, _ = platform
    monkeypatch.setattr(command, "SINGLE_PUT_BYTES", 1)  # every file is "large": the multipart path
    path = tmp_path / "large.csv"
    path.write_text("a\n1\n")
    key = f"raw/example/breast-cancer/dt={DAY}/large.csv"

    assert command.write_once(s3, RAW, key, path, {}) is True
    assert command.write_once(s3, RAW, key, path, {}) is False

    assert s3.get_object(Bucket=RAW, Key=key)["Body"].read() == b"a\n1\n"
    assert s3.list_multipart_uploads(Bucket=RAW).get("Uploads", []) == []  # the refused one was aborted
