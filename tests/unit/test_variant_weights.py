"""The variant-weights custom resource, with botocore's Stubber: moto's SageMaker lacks endpoint updates.

The logic is mlops_platform/serving/weights.py's; the tests call it through the Lambda handler
(lambda/variant_weights/handler.py), as the Provider framework does.

The weights it publishes go to moto's CloudWatch and are read back from there.

Events are shaped as the CDK Provider framework hands them to ``on_event`` and ``is_complete``: a
CloudFormation request, with ``PhysicalResourceId`` added for ``is_complete`` from ``on_event``'s answer,
and every property value a string, as CloudFormation passes numbers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from mlops_platform.serving.weights import WeightsError
from tests.conftest import load_handler
from tests.lambda_context import LambdaContext

ENDPOINT = "mlops-dev-example"
ARN = f"arn:aws:sagemaker:eu-west-1:111111111111:endpoint/{ENDPOINT}"
WEIGHTS = {"Champion": "0.9", "Challenger": "0.1"}
NAMESPACE = "mlops/dev"


CONTEXT = LambdaContext("variant-weights")


def cfn_event(request_type: str = "Create", weights: Any = None, **properties: Any) -> dict[str, Any]:
    event = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:111111111111:function:provider-framework-onEvent",
        "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/response",
        "StackId": "arn:aws:cloudformation:eu-west-1:111111111111:stack/dev-Serving/1a2b3c4d",
        "RequestId": "5d6e7f80-0000-4000-8000-000000000001",
        "LogicalResourceId": "ExampleVariantWeights",
        "ResourceType": "Custom::VariantWeights",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:111111111111:function:provider-framework-onEvent",
            "EndpointName": ENDPOINT,
            "EndpointConfigName": "ExampleEndpointConfig-AbCdEf123456",
            "Weights": WEIGHTS if weights is None else weights,
            **properties,
        },
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = f"{ENDPOINT}-weights"
    return event


def described(status: str = "InService", failure: str | None = None, **weights: float) -> dict[str, Any]:
    moment = datetime(2026, 11, 24, 23, 59, tzinfo=UTC)
    current = weights or {"Champion": 0.9, "Challenger": 0.1}
    response: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": ARN,
        "EndpointConfigName": "ExampleEndpointConfig-AbCdEf123456",
        "EndpointStatus": status,
        "CreationTime": moment,
        "LastModifiedTime": moment,
        "ProductionVariants": [
            {
                "VariantName": name,
                "CurrentWeight": weight,
                "DesiredWeight": weight,
                "CurrentInstanceCount": 3,  # autoscaled: must survive
                "DesiredInstanceCount": 3,
            }
            for name, weight in current.items()
        ],
    }
    if failure:
        response["FailureReason"] = failure
    return response


def update(weights: dict[str, float]) -> dict[str, Any]:
    """The expected UpdateEndpointWeightsAndCapacities call: weights only, no DesiredInstanceCount."""
    return {
        "EndpointName": ENDPOINT,
        "DesiredWeightsAndCapacities": [
            {"VariantName": name, "DesiredWeight": weight} for name, weight in sorted(weights.items())
        ],
    }


@pytest.fixture
def weights(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "variant-weights")
    monkeypatch.setenv("METRICS_NAMESPACE", NAMESPACE)
    with mock_aws():
        yield load_handler("variant_weights")


def published() -> dict[tuple[str, str], list[float]]:
    """(metric, variant) -> the values the resource published for ENDPOINT, from moto's CloudWatch."""
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    found: dict[tuple[str, str], list[float]] = {}
    for metric in cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]:
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert set(dimensions) == {"EndpointName", "VariantName"}
        assert dimensions["EndpointName"] == ENDPOINT
        points = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric["MetricName"],
            Dimensions=metric["Dimensions"],
            StartTime=datetime(2000, 1, 1, tzinfo=UTC),
            EndTime=datetime(2100, 1, 1, tzinfo=UTC),
            Period=60,
            Statistics=["Maximum", "SampleCount"],
        )["Datapoints"]
        found[(metric["MetricName"], dimensions["VariantName"])] = [p["Maximum"] for p in points]
    return found


@pytest.fixture
def stub(weights):
    with Stubber(weights.applier.sagemaker) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def poll(weights, event: dict[str, Any]) -> dict[str, Any]:
    return weights.is_complete(event, CONTEXT)


def test_create_answers_a_stable_physical_id_without_calling_sagemaker(weights, stub):
    assert weights.on_event(cfn_event("Create"), CONTEXT) == {"PhysicalResourceId": f"{ENDPOINT}-weights"}
    assert weights.on_event(cfn_event("Update"), CONTEXT) == {"PhysicalResourceId": f"{ENDPOINT}-weights"}


def test_create_waits_while_the_endpoint_is_creating_then_applies_then_completes(weights, stub):
    event = {
        **cfn_event("Create", {"Champion": "0.5", "Challenger": "0.5"}),
        "PhysicalResourceId": f"{ENDPOINT}-weights",
    }
    stub.add_response("describe_endpoint", described("Creating"), {"EndpointName": ENDPOINT})
    stub.add_response("describe_endpoint", described(Champion=1.0, Challenger=0.0))
    stub.add_response(
        "update_endpoint_weights_and_capacities", {"EndpointArn": ARN}, update({"Champion": 0.5, "Challenger": 0.5})
    )
    stub.add_response("describe_endpoint", described("Updating", Champion=1.0, Challenger=0.0))
    stub.add_response("describe_endpoint", described(Champion=0.5, Challenger=0.5))

    answers = [poll(weights, event) for _ in range(4)]

    assert answers == [
        {"IsComplete": False},
        {"IsComplete": False},
        {"IsComplete": False},
        {"IsComplete": True, "Data": {"Applied": json.dumps({"Challenger": 0.5, "Champion": 0.5})}},
    ]


def test_the_weights_in_place_are_published_when_they_are_applied(weights, stub):
    event = {**cfn_event("Update", {"Champion": "3", "Challenger": "1"}), "PhysicalResourceId": f"{ENDPOINT}-weights"}
    stub.add_response("describe_endpoint", described(Champion=0.9, Challenger=0.1))
    stub.add_response(
        "update_endpoint_weights_and_capacities", {"EndpointArn": ARN}, update({"Champion": 3.0, "Challenger": 1.0})
    )
    stub.add_response("describe_endpoint", described("Updating", Champion=0.9, Challenger=0.1))

    assert [poll(weights, event) for _ in range(2)] == [{"IsComplete": False}] * 2
    assert published() == {}  # nothing while the old weights serve

    stub.add_response("describe_endpoint", described(Champion=3.0, Challenger=1.0))
    assert poll(weights, event)["IsComplete"] is True

    assert published() == {
        ("VariantWeight", "Champion"): [3.0],
        ("VariantWeight", "Challenger"): [1.0],
        ("VariantTrafficShare", "Champion"): [75.0],
        ("VariantTrafficShare", "Challenger"): [25.0],
    }


def test_every_variant_is_published_the_unnamed_ones_with_the_weight_they_keep(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=0.7, Challenger=0.1, Shadow=0.2))

    assert poll(weights, cfn_event("Update", {"Champion": "0.7", "Challenger": "0.1"}))["IsComplete"] is True

    shares = {variant: values for (metric, variant), values in published().items() if metric == "VariantTrafficShare"}
    assert shares == {"Champion": [70.0], "Challenger": [10.0], "Shadow": [20.0]}


def test_a_throttled_publish_waits_and_publishes_on_the_next_poll(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=0.9, Challenger=0.1))
    stub.add_response("describe_endpoint", described(Champion=0.9, Challenger=0.1))
    with Stubber(weights.applier.cloudwatch) as cloudwatch:
        cloudwatch.add_client_error("put_metric_data", service_error_code="Throttling", http_status_code=400)
        assert poll(weights, cfn_event("Update")) == {"IsComplete": False}
    assert poll(weights, cfn_event("Update"))["IsComplete"] is True
    assert published()[("VariantTrafficShare", "Champion")] == [90.0]


def test_weights_already_in_place_complete_without_an_update_call(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=0.9, Challenger=0.1000000001))

    assert poll(weights, cfn_event("Update"))["IsComplete"] is True


def test_an_update_waits_while_the_endpoint_is_updating(weights, stub):
    for status in ("Updating", "SystemUpdating", "RollingBack"):
        stub.add_response("describe_endpoint", described(status, Champion=1.0, Challenger=0.0))

        assert poll(weights, cfn_event("Update")) == {"IsComplete": False}


def test_string_weights_from_cloudformation_are_parsed_as_numbers(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=1.0, Challenger=0.0))
    stub.add_response(
        "update_endpoint_weights_and_capacities", {"EndpointArn": ARN}, update({"Champion": 3.0, "Challenger": 1.0})
    )

    assert poll(weights, cfn_event("Update", {"Champion": "3", "Challenger": "1.0"})) == {"IsComplete": False}


def test_only_the_named_variants_are_updated_the_others_keep_their_weights(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=0.8, Challenger=0.1, Shadow=0.1))
    stub.add_response("update_endpoint_weights_and_capacities", {"EndpointArn": ARN}, update({"Champion": 0.7}))

    assert poll(weights, cfn_event("Update", {"Champion": "0.7"})) == {"IsComplete": False}


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        ("Failed", "The primary container for production variant Champion did not pass the ping health check."),
        ("OutOfService", None),
        ("Deleting", None),
        ("UpdateRollbackFailed", "Rollback failed: capacity unavailable"),
    ],
)
def test_an_endpoint_that_cannot_take_weights_fails_the_resource_with_its_reason(weights, stub, status, failure):
    stub.add_response("describe_endpoint", described(status, failure))

    with pytest.raises(WeightsError, match=f"is {status} and cannot take weights") as raised:
        poll(weights, cfn_event("Update"))
    if failure:
        assert failure in str(raised.value)


def test_a_variant_the_endpoint_does_not_have_fails_the_resource_naming_it(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=1.0))

    with pytest.raises(WeightsError, match=r"has no variant \['Challenger'\]; its variants are \['Champion'\]"):
        poll(weights, cfn_event("Create"))


def test_an_update_already_in_flight_makes_it_wait_and_try_again(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=1.0, Challenger=0.0))
    stub.add_client_error(
        "update_endpoint_weights_and_capacities",
        service_error_code="ValidationException",
        service_message=f'Cannot update in-progress endpoint "{ARN}".',
    )

    assert poll(weights, cfn_event("Update")) == {"IsComplete": False}


def test_any_other_validation_error_fails_the_resource(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=1.0, Challenger=0.0))
    stub.add_client_error(
        "update_endpoint_weights_and_capacities",
        service_error_code="ValidationException",
        service_message="The variant name(s) [Challenger] is/are not present.",
    )

    with pytest.raises(ClientError):
        poll(weights, cfn_event("Update"))


def test_a_throttled_describe_waits(weights, stub):
    stub.add_client_error("describe_endpoint", service_error_code="ThrottlingException")

    assert poll(weights, cfn_event("Update")) == {"IsComplete": False}


def test_delete_undoes_nothing_and_calls_nothing(weights, stub):
    assert weights.on_event(cfn_event("Delete"), CONTEXT) is None
    assert poll(weights, cfn_event("Delete")) == {"IsComplete": True}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "Weights must be a non-empty object"),
        ("0.9", "Weights must be a non-empty object"),
        ({"Champion": "heavy"}, "the weight of variant 'Champion' must be a number"),
        ({"Champion": "-1"}, "must be a finite number >= 0"),
        ({"Champion": "NaN"}, "must be a finite number >= 0"),
        ({"Champion": True}, "must be a number"),
    ],
)
def test_bad_weights_fail_the_deploy_at_once_without_calling_sagemaker(weights, stub, value, message):
    with pytest.raises(WeightsError, match=message):
        weights.on_event(cfn_event("Create", value), CONTEXT)


def test_a_missing_endpoint_name_fails_the_deploy_at_once(weights, stub):
    with pytest.raises(WeightsError, match="EndpointName must be the endpoint's name"):
        weights.on_event(cfn_event("Update", EndpointName=""), CONTEXT)


def test_weights_that_would_leave_no_variant_serving_fail_the_resource(weights, stub):
    stub.add_response("describe_endpoint", described(Champion=1.0, Challenger=0.0))

    with pytest.raises(WeightsError, match="no variant to serve traffic"):
        poll(weights, cfn_event("Update", {"Champion": "0", "Challenger": "0"}))
