"""The scoring API per tenant, from the synthesized template of the construct with endpoints of two tenants:
each tenant's managed policy invokes exactly its endpoints' methods, and each endpoint is throttled on its own.

The shipped configuration serves one tenant; isolation needs two, so the construct is synthesized alone (fast).
The handler's side (a record read back only by its principal) is tests/unit/test_scoring_api.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from config.naming import Names
from mlops_constructs.scoring_api import ScoringApi
from tests.iam_policy import allows

# Tenant A (example) has one endpoint; tenant B (acme) has two, one named so that A's would be a prefix of it.
TENANTS = {"example": "example", "example-eu": "acme", "churn": "acme"}
API = "arn:aws:execute-api:eu-west-1:111111111111:a1b2c3d4e5"
RESULT_ID = "0b7e8f52-3c1d-4e5f-9a6b-7c8d9e0f1a2b"


@pytest.fixture(scope="module")
def synthesized_api(platform_config) -> dict[str, Any]:
    dev = platform_config.environment("dev")
    stack = Stack(App(), "Tenants", env={"account": dev.account, "region": dev.region})
    names = Names(project="mlops", environment="dev")
    ScoringApi(
        stack,
        "Scoring",
        names=names,
        settings=dev.serving.api,
        endpoint_names={key: names.resource(key) for key in TENANTS},
        endpoint_tenants=TENANTS,
        variant_names={key: ["Champion", "Challenger"] for key in TENANTS},
        results=dynamodb.TableV2(
            stack, "Results", partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING)
        ),
        key=kms.Key(stack, "Key"),
        topic=sns.Topic(stack, "Topic"),
        log_retention_days=7,
        removal_policy=RemovalPolicy.DESTROY,
    )
    return Template.from_stack(stack).to_json()["Resources"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {logical_id: r for logical_id, r in resources.items() if r["Type"] == kind}


def concrete(value: Any) -> str:
    """An execute-api ARN of the template with the partition, region, account and API id filled in."""
    if isinstance(value, str):
        return value
    [(function, argument)] = value.items()
    if function == "Fn::Join":
        return argument[0].join(concrete(part) for part in argument[1])
    if function == "Ref":
        return {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "111111111111"}.get(
            argument, "a1b2c3d4e5"
        )
    raise ValueError(value)


def tenant_policies(resources: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each tenant's policy statements (by the tenant its description names), resources made concrete."""
    found = {}
    for policy in of_type(resources, "AWS::IAM::ManagedPolicy").values():
        tenant = policy["Properties"]["Description"].split("tenant ", 1)[1].split(" ", 1)[0]
        found[tenant] = [
            {**statement, "Resource": [concrete(r) for r in statement["Resource"]]}
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
    return found


def api_paths(resources: dict[str, Any]) -> set[tuple[str, str]]:
    """(HTTP method, path) of every method of the synthesized API, from its resource tree."""
    parts = {
        logical_id: (r["Properties"]["PathPart"], r["Properties"]["ParentId"])
        for logical_id, r in of_type(resources, "AWS::ApiGateway::Resource").items()
    }

    def path(logical_id: str) -> str:
        if logical_id not in parts:
            return ""
        part, parent = parts[logical_id]
        return path(parent.get("Ref", "")) + "/" + part

    return {
        (m["Properties"]["HttpMethod"], path(m["Properties"]["ResourceId"]["Ref"]))
        for m in of_type(resources, "AWS::ApiGateway::Method").values()
    }


def request_arn(method: str, path: str) -> str:
    """The ARN IAM evaluates for a call: the request's own path (a result's id filled in)."""
    return f"{API}/v1/{method}{path.replace('{id}', RESULT_ID)}"


def test_every_endpoint_has_its_score_async_and_result_methods_in_its_own_path(synthesized_api):
    assert api_paths(synthesized_api) == {
        (method, f"/endpoints/{key}{suffix}")
        for key in TENANTS
        for method, suffix in (("POST", "/score"), ("POST", "/score/async"), ("GET", "/results/{id}"))
    }


def test_each_tenant_s_policy_invokes_exactly_its_own_endpoints(synthesized_api):
    """Issue 17: permission to call POST /score covered every tenant's endpoint."""
    policies = tenant_policies(synthesized_api)

    assert set(policies) == {"example", "acme"}
    for tenant, statements in policies.items():
        for method, path in api_paths(synthesized_api):
            endpoint = path.split("/")[2]
            assert allows(statements, "execute-api:Invoke", request_arn(method, path)) == (
                TENANTS[endpoint] == tenant
            ), (tenant, method, path)


def test_tenant_a_cannot_score_b_s_endpoint_or_read_b_s_results(synthesized_api):
    a = tenant_policies(synthesized_api)["example"]

    assert allows(a, "execute-api:Invoke", request_arn("POST", "/endpoints/example/score"))
    assert not allows(a, "execute-api:Invoke", request_arn("POST", "/endpoints/churn/score"))
    assert not allows(a, "execute-api:Invoke", request_arn("POST", "/endpoints/example-eu/score/async"))
    assert not allows(a, "execute-api:Invoke", request_arn("GET", "/endpoints/churn/results/{id}"))
    # Nothing beyond its methods: not another method on its paths, not another stage, not the API's root.
    assert not allows(a, "execute-api:Invoke", request_arn("DELETE", "/endpoints/example/score"))
    assert not allows(a, "execute-api:Invoke", f"{API}/test/POST/endpoints/example/score")
    assert not allows(a, "execute-api:Invoke", f"{API}/v1/POST/endpoints/example")
    assert not allows(a, "execute-api:Manage", f"{API}/v1/POST/endpoints/example/score")


def test_each_endpoint_method_is_throttled_on_its_own(synthesized_api, platform_config):
    api = platform_config.environment("dev").serving.api
    [stage] = of_type(synthesized_api, "AWS::ApiGateway::Stage").values()
    # A method setting's ResourcePath is its path with each slash after the first as ~1 (/~1endpoints~1example~1score):
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-apigateway-stage-methodsetting.html
    settings = {
        (m["HttpMethod"], m["ResourcePath"].replace("~1", "/")[1:]): (
            m["ThrottlingRateLimit"],
            m["ThrottlingBurstLimit"],
        )
        for m in stage["Properties"]["MethodSettings"]
    }

    for method, path in api_paths(synthesized_api):
        assert settings[(method, path)] == (api.throttle_rate_limit, api.throttle_burst_limit)


def test_the_api_invokes_its_function_through_one_permission_scoped_to_this_api(synthesized_api):
    [permission] = of_type(synthesized_api, "AWS::Lambda::Permission").values()

    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert concrete(permission["Properties"]["SourceArn"]) == f"{API}/*/*/*"
    assert "RestApi" in json.dumps(permission["Properties"]["SourceArn"])
