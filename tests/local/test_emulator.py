"""The embedded AWS and its compatibility layer, without the CDK CLI: change sets through boto3.

Each template below holds what moto 5.2.5 alone fails on (AWS-FACTS.md, "An embedded AWS"); the
assertions are what CloudFormation does with it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import boto3
import pytest

from mlops_platform.cli import main
from mlops_platform.local import compat, deploy, deviations
from mlops_platform.local.emulator import Emulator

pytestmark = pytest.mark.enable_socket  # the emulator listens on 127.0.0.1

PRODUCER = {
    "Resources": {
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {}, "Tags": [{"Key": "Project", "Value": "x"}]}},
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "progress"}},
        "Catalog": {"Type": "AWS::Glue::Database", "Properties": {"CatalogId": "1", "DatabaseInput": {"Name": "lake"}}},
        "NotAType": {"Type": "AWS::Made::Up", "Properties": {}},
        "Table": {
            "Type": "AWS::DynamoDB::GlobalTable",
            "Properties": {
                "TableName": "progress",
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS"},
                "Replicas": [{"Region": "eu-west-1"}],
            },
        },
    },
    "Outputs": {
        "BusName": {"Value": {"Ref": "Bus"}},
        "TableArn": {"Value": {"Fn::GetAtt": ["Table", "Arn"]}},
        "CatalogName": {"Value": {"Ref": "Catalog"}},
    },
}
CONSUMER = {
    "Resources": {
        "Rule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventBusName": {"Fn::GetStackOutput": {"StackName": "producer", "OutputName": "BusName"}},
                "EventPattern": {"source": ["mlops"]},
            },
        },
        "Queue": {"Type": "AWS::SQS::Queue", "DependsOn": "Rule", "Properties": {}},
    },
    "Outputs": {"TableArn": {"Value": {"Fn::GetStackOutput": {"StackName": "producer", "OutputName": "TableArn"}}}},
}


def _deploy(cloudformation, name: str, template: dict) -> dict:
    """What `cdk deploy` does: a change set under the CLI's fixed name, then its execution."""
    change_set = cloudformation.create_change_set(
        StackName=name, ChangeSetName="cdk-deploy-change-set", ChangeSetType="CREATE", TemplateBody=json.dumps(template)
    )
    cloudformation.describe_change_set(StackName=name, ChangeSetName="cdk-deploy-change-set")
    cloudformation.execute_change_set(StackName=name, ChangeSetName="cdk-deploy-change-set")
    assert change_set["StackId"]
    return cloudformation.describe_stacks(StackName=name)["Stacks"][0]


def test_change_sets_deploy_what_moto_alone_cannot_and_stub_only_what_moto_lacks():
    with Emulator(account="111111111111", region="eu-west-1"):
        cloudformation = boto3.client("cloudformation")
        producer = _deploy(cloudformation, "producer", PRODUCER)
        consumer = _deploy(cloudformation, "consumer", CONSUMER)

        assert producer["StackStatus"] == consumer["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in producer["Outputs"]}
        assert outputs["BusName"] == "progress"  # Ref of an EventBus is its name
        assert outputs["TableArn"].endswith(":table/progress")  # GlobalTable as a Table, named as given
        # Fn::GetStackOutput resolved from the producer's outputs:
        assert consumer["Outputs"] == [{"OutputKey": "TableArn", "OutputValue": outputs["TableArn"]}]
        assert boto3.client("events").list_rules(EventBusName="progress")["Rules"]
        # Only what moto's own model map lacks is stubbed, however the type is spelled:
        assert deviations.stubbed() == ["AWS::Glue::Database", "AWS::Made::Up"]
        assert boto3.client("kms").list_resource_tags(KeyId=boto3.client("kms").list_keys()["Keys"][0]["KeyId"])[
            "Tags"
        ] == [{"TagKey": "Project", "TagValue": "x"}]


def test_stopping_the_emulator_closes_the_port_joins_the_thread_and_removes_the_layer():
    threads_before = set(threading.enumerate())
    with Emulator(account="111111111111", region="eu-west-1") as emulator:
        port = int(emulator.endpoint.rsplit(":", 1)[1])
        assert compat._patches
    assert not compat._patches
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_each_emulator_starts_empty():
    for _ in range(2):
        with Emulator(account="111111111111", region="eu-west-1"):
            s3 = boto3.client("s3")
            assert s3.list_buckets()["Buckets"] == []
            s3.create_bucket(Bucket="left-behind", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})


def test_every_deviation_gives_a_reason():
    assert all(d.name and len(d.reason) > 40 for d in deviations.DEVIATIONS)


@pytest.mark.parametrize("command", ["login", "inspect", "tag", "push"])
def test_docker_standin_does_nothing_for_the_publish_steps_and_says_so(command):
    done = subprocess.run(
        [sys.executable, str(deploy.DOCKER_STANDIN), command, "x"], input="password", capture_output=True, text=True
    )
    assert done.returncode == 0
    assert f"`docker {command}` does nothing" in done.stderr


def test_docker_standin_refuses_a_build():
    done = subprocess.run([sys.executable, str(deploy.DOCKER_STANDIN), "build", "."], capture_output=True, text=True)
    assert done.returncode == 1
    assert "is not emulated" in done.stderr


def test_mlops_local_refuses_an_assembly_that_is_not_there(tmp_path, capsys):
    assert main(["local", "--assembly", str(tmp_path / "nothing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mlops local: ")
    assert error.count("\n") == 1
    assert "no cloud assembly" in error
    assert "make local" in error


def test_mlops_local_refuses_data_that_is_not_a_file(tmp_path, capsys):
    assert main(["local", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "is not a file" in capsys.readouterr().err
