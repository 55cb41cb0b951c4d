"""Serving: endpoints from config, weights in place, retained variant properties, scaling, alarms, the scoring API."""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import jsonschema
import pytest
from aws_cdk.assertions import Annotations, Match

from config import load_config
from config.naming import Names
from tests.conftest import ROOT
from tests.infra.test_training import HASH_TAG, function_environment, of_type, rendered
from tests.live_endpoints import record_as_deployed
from tests.synth import synthesize
from tests.unit.test_serving_config import with_challenger

STACK = "serving"


def the(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    [resource] = of_type(resources, kind).values()
    return resource["Properties"]


def endpoint_name(settings, key: str = "example") -> str:
    return Names(project="mlops", environment=settings.name).resource(key)


# -- the endpoint, as each environment's config declares it ---------------------------------------


def test_each_variant_is_declared_with_a_fixed_initial_weight(resources, settings):
    config = the(resources, "AWS::SageMaker::EndpointConfig")
    declared = settings.serving.endpoints["example"].variants

    variants = config["ProductionVariants"]
    assert [v["VariantName"] for v in variants] == [v.name for v in declared]
    assert [v["InstanceType"] for v in variants] == [v.instance_type for v in declared]
    assert [v["InitialInstanceCount"] for v in variants] == [v.initial_instance_count for v in declared]
    # Weights come from the weights resource; the config never changes with them.
    assert {v["InitialVariantWeight"] for v in variants} == {1}
    assert "EndpointConfigName" not in config  # a fixed name would block replacement


def test_the_endpoint_has_a_stable_name_and_retains_weights_and_counts(resources, settings):
    endpoint = the(resources, "AWS::SageMaker::Endpoint")

    assert endpoint["EndpointName"] == endpoint_name(settings)
    assert endpoint["RetainAllVariantProperties"] is True
    assert endpoint["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DataCaptureConfig"}]
    assert endpoint["EndpointConfigName"] == {
        "Fn::GetAtt": [next(iter(of_type(resources, "AWS::SageMaker::EndpointConfig"))), "EndpointConfigName"]
    }


def test_a_new_endpoint_deploys_all_at_once(resources):
    # The committed record says nothing is deployed yet: no live variant names to keep.
    assert "DeploymentConfig" not in the(resources, "AWS::SageMaker::Endpoint")


def test_data_capture_goes_to_the_capture_zone_encrypted(resources, settings):
    capture = the(resources, "AWS::SageMaker::EndpointConfig")["DataCaptureConfig"]

    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == settings.serving.data_capture_percentage
    assert "CaptureZoneBucket" in json.dumps(capture["DestinationS3Uri"])
    assert rendered(capture["DestinationS3Uri"]).endswith("/capture/example/example")
    assert {option["CaptureMode"] for option in capture["CaptureOptions"]} == {"Input", "Output"}
    assert "PlatformKey" in json.dumps(capture["KmsKeyId"])


def test_volumes_are_encrypted_with_the_platform_key_on_types_without_local_storage(resources):
    assert "PlatformKey" in json.dumps(the(resources, "AWS::SageMaker::EndpointConfig")["KmsKeyId"])


def variant_of(logical_id: str) -> str:
    """``ExampleEndpointChallengerModel1A2B3C4D`` -> ``Challenger``."""
    return logical_id.removeprefix("ExampleEndpoint").split("Model")[0]


def test_each_variant_reads_its_model_from_its_pointer_at_deploy_time(synthesized, environment, settings):
    template = synthesized.template_json(environment, STACK)
    parameters = {k: v for k, v in template["Parameters"].items() if k != "BootstrapVersion"}
    models = {
        variant_of(k): m["Properties"] for k, m in of_type(template["Resources"], "AWS::SageMaker::Model").items()
    }
    declared = settings.serving.endpoints["example"].variants

    assert sorted(models) == sorted(v.name for v in declared)
    for variant in declared:
        [(parameter_id, parameter)] = [
            (k, v) for k, v in parameters.items() if k.startswith(f"ExampleEndpoint{variant.name}")
        ]
        model_data = models[variant.name]["PrimaryContainer"]["ModelDataUrl"]
        condition_id = model_data["Fn::If"][0]
        assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert parameter["Default"] == f"/mlops/{settings.name}/models/example/{variant.name}"
        assert template["Conditions"][condition_id] == {"Fn::Equals": [{"Ref": parameter_id}, "example"]}
        assert model_data["Fn::If"][2] == {"Ref": parameter_id}
        assert rendered(model_data["Fn::If"][1]).startswith("s3://cdk-")  # the example model's file asset
        assert models[variant.name]["EnableNetworkIsolation"] is True


def example_asset_hashes(synthesized, environment: str, stack: str) -> dict[str, str]:
    """File asset display name -> hash, from the stack's asset manifest."""
    stage = synthesized.stages[environment]
    manifest = synthesized.outdir / f"assembly-{environment}" / f"{getattr(stage, stack).artifact_id}.assets.json"
    return {a["displayName"]: h for h, a in json.loads(manifest.read_text())["files"].items()}


@pytest.mark.parametrize("environment", ["dev", "staging"], indirect=True)
def test_the_a_b_endpoint_serves_two_different_shipped_models(synthesized, environment, resources):
    """Champion on the XGBoost example model, Challenger on the linear one: two models, not one twice."""
    from config.example_models import archive_path

    hashes = example_asset_hashes(synthesized, environment, STACK)
    models = {variant_of(k): m["Properties"] for k, m in of_type(resources, "AWS::SageMaker::Model").items()}
    example = {name: rendered(m["PrimaryContainer"]["ModelDataUrl"]["Fn::If"][1]) for name, m in models.items()}

    assert example["Champion"].endswith(f"/{hashes['ExampleModels/Xgboost']}.gz")
    assert example["Challenger"].endswith(f"/{hashes['ExampleModels/Linear']}.gz")
    assert archive_path("xgboost").read_bytes() != archive_path("linear").read_bytes()


def test_models_run_the_inference_image_by_content_hash(resources):
    for model in of_type(resources, "AWS::SageMaker::Model").values():
        assert HASH_TAG.search(rendered(model["Properties"]["PrimaryContainer"]["Image"]))


def test_the_model_role_reads_only_its_tenant_and_the_example_models_it_serves(resources, settings):
    [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith("ExampleEndpointModelRole")]
    role = resources[role_id]["Properties"]
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in of_type(resources, "AWS::IAM::Policy").values()
        if r["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = {s.get("Sid"): s for s in policy["Statement"]}
    served = {v.example_model for v in settings.serving.endpoints["example"].variants}

    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    artifacts, *examples = sorted(rendered(r) for r in statements["ReadModelArtifacts"]["Resource"])
    assert artifacts == "<token>/artifacts/runs/example/*"  # the artifacts zone, this tenant's runs only
    assert len(examples) == len(served)  # each example model asset's object, exactly
    assert all(e.startswith("arn:aws:s3:::cdk-") and e.endswith(".gz") for e in examples)
    assert rendered(statements["WriteDataCapture"]["Resource"]).endswith("/capture/example/example/*")


def test_no_role_anywhere_gets_sagemaker_full_access(synthesized, environment):
    for stack in ("foundation", "training", "serving"):
        assert "AmazonSageMakerFullAccess" not in json.dumps(synthesized.template_json(environment, stack))


# -- weights in place, scaling, alarms -----------------------------------------------------------


def test_the_weights_resource_applies_config_weights_after_every_config_replacement(resources, settings):
    weights = the(resources, "Custom::VariantWeights")
    [config_id] = of_type(resources, "AWS::SageMaker::EndpointConfig")
    [endpoint_id] = of_type(resources, "AWS::SageMaker::Endpoint")
    [weights_id] = of_type(resources, "Custom::VariantWeights")

    assert weights["EndpointName"] == endpoint_name(settings)
    assert weights["EndpointConfigName"] == {"Fn::GetAtt": [config_id, "EndpointConfigName"]}
    assert weights["Weights"] == {v.name: str(v.weight) for v in settings.serving.endpoints["example"].variants}
    assert endpoint_id in resources[weights_id]["DependsOn"]


def test_the_weights_handler_may_touch_only_this_environments_endpoints(resources, settings):
    policies = [
        s
        for r in of_type(resources, "AWS::IAM::Policy").values()
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "ApplyWeights"
    ]

    [statement] = policies
    assert statement["Action"] == ["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"]
    assert rendered(statement["Resource"]).endswith(f":endpoint/{endpoint_name(settings)}")


def test_each_variant_scales_on_invocations_per_instance(resources, settings):
    targets = {
        lid: t["Properties"] for lid, t in of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget").items()
    }
    policies = of_type(resources, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    scaling = settings.serving.scaling
    [weights_id] = of_type(resources, "Custom::VariantWeights")
    by_variant = {t["ResourceId"].rsplit("/", 1)[1]: (lid, t) for lid, t in targets.items()}

    assert sorted(by_variant) == sorted(v.name for v in settings.serving.endpoints["example"].variants)
    for variant in settings.serving.endpoints["example"].variants:
        target_id, target = by_variant[variant.name]
        assert target["ResourceId"] == f"endpoint/{endpoint_name(settings)}/variant/{variant.name}"
        assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
        assert (target["MinCapacity"], target["MaxCapacity"]) == (variant.min_capacity, variant.max_capacity)
        assert weights_id in resources[target_id]["DependsOn"]
    for policy in policies:
        tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["PredefinedMetricSpecification"] == {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
        }
        assert tracking["TargetValue"] == scaling.target_invocations_per_instance
        assert tracking["ScaleInCooldown"] == scaling.scale_in_cooldown_seconds
        assert tracking["ScaleOutCooldown"] == scaling.scale_out_cooldown_seconds


def rollback_alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The endpoint alarms on SageMaker's metrics, by alarm name."""
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if any(
            m.get("MetricStat", {}).get("Metric", {}).get("Namespace") == "AWS/SageMaker"
            for m in a["Properties"].get("Metrics", [])
        )
    }


def metric_stats(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}


def test_the_endpoint_has_two_alarms_over_every_variant_to_the_topic(resources, settings):
    name = endpoint_name(settings)
    alarms = rollback_alarms(resources)
    variants = {v.name for v in settings.serving.endpoints["example"].variants}

    assert set(alarms) == {f"{name}-5xx", f"{name}-p99-latency"}
    errors, latency = alarms[f"{name}-5xx"], alarms[f"{name}-p99-latency"]
    for alarm, metric_name, statistic in ((errors, "Invocation5XXErrors", "Sum"), (latency, "ModelLatency", "p99")):
        stats = metric_stats(alarm).values()
        assert {s["Metric"]["MetricName"] for s in stats} == {metric_name}
        assert {s["Stat"] for s in stats} == {statistic}
        assert {s["Period"] for s in stats} == {60}
        dimensions = [{d["Name"]: d["Value"] for d in s["Metric"]["Dimensions"]} for s in stats]
        assert sorted(d["VariantName"] for d in dimensions) == sorted(variants)  # each variant once
        assert {d["EndpointName"] for d in dimensions} == {name}
        assert "NotificationTopic" in json.dumps(alarm["AlarmActions"])
        assert alarm["TreatMissingData"] == "notBreaching"
    assert latency["Threshold"] == settings.serving.alarms.latency_p99_milliseconds * 1000  # microseconds
    assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (3, 2)


def errors_alarm_fires(alarm: dict[str, Any], errors_per_variant: dict[str, float]) -> bool:
    """The 5XX alarm's verdict on one minute, its metric math worked by hand: SUM([FILL(e0, 0), ...]) >= threshold.

    Each FILL'd id is looked up by its variant's dimension, so the test breaks if the expression leaves a
    variant out or the comparison changes."""
    [expression] = [m["Expression"] for m in alarm["Metrics"] if m.get("ReturnData")]
    ids = re.fullmatch(r"SUM\(\[(.*)\]\)", expression).group(1)  # type: ignore[union-attr]
    filled = re.findall(r"FILL\((\w+), 0\)", ids)
    variant = {
        id_: {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}["VariantName"]
        for id_, stat in metric_stats(alarm).items()
    }
    assert sorted(filled) == sorted(variant)
    total = sum(errors_per_variant.get(variant[id_], 0) for id_ in filled)  # a variant without data counts 0
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    return total >= alarm["Threshold"]


def test_a_single_5xx_of_either_fleet_never_rolls_back_and_a_burst_does(resources, settings):
    """During blue/green both fleets report under the same variant names: one old-fleet error must not roll back."""
    [errors] = [a for name, a in rollback_alarms(resources).items() if name.endswith("-5xx")]
    threshold = settings.serving.alarms.errors_5xx_per_minute
    first = settings.serving.endpoints["example"].variants[0].name

    assert threshold >= 2
    assert errors["Threshold"] == threshold
    assert errors["EvaluationPeriods"] == 1
    assert not errors_alarm_fires(errors, {first: 1})
    assert not errors_alarm_fires(errors, {})
    assert errors_alarm_fires(errors, {first: threshold})
    if len(settings.serving.endpoints["example"].variants) > 1:
        second = settings.serving.endpoints["example"].variants[1].name
        assert not errors_alarm_fires(errors, {first: 1, second: 0})
        assert errors_alarm_fires(errors, {first: threshold - 1, second: 1})  # the endpoint's errors, together


def test_the_execution_role_may_describe_exactly_the_rollback_alarms(resources, settings):
    """Deployment guardrails: "your IAM execution role has permission to perform the cloudwatch:DescribeAlarms
    action on the auto-rollback alarms" (SageMaker guide, Auto-Rollback Configuration and Monitoring)."""
    [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith("ExampleEndpointModelRole")]
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in of_type(resources, "AWS::IAM::Policy").values()
        if r["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    [statement] = [s for s in policy["Statement"] if "cloudwatch:DescribeAlarms" in json.dumps(s["Action"])]
    models = of_type(resources, "AWS::SageMaker::Model").values()

    assert statement["Action"] == "cloudwatch:DescribeAlarms"
    assert sorted(rendered(r) for r in statement["Resource"]) == sorted(
        f"arn:aws:cloudwatch:{settings.region}:{settings.account}:alarm:{name}" for name in rollback_alarms(resources)
    )
    assert {json.dumps(m["Properties"]["ExecutionRoleArn"]) for m in models} == {
        json.dumps({"Fn::GetAtt": [role_id, "Arn"]})
    }


def test_the_effective_traffic_shares_are_stack_outputs(synthesized, environment):
    outputs = synthesized.template_json(environment, STACK)["Outputs"]
    shares = {
        k.removeprefix("Example").removesuffix("TrafficPercent"): v["Value"]
        for k, v in outputs.items()
        if k.endswith("TrafficPercent")
    }

    assert shares == ({"Champion": "100"} if environment == "prod" else {"Champion": "90", "Challenger": "10"})


# -- the scoring API -----------------------------------------------------------------------------


def test_each_tenant_with_an_endpoint_gets_its_scoring_policy_as_an_output(
    synthesized, environment, resources, settings
):
    outputs = synthesized.template_json(environment, STACK)["Outputs"]
    policies = {k: v["Value"]["Ref"] for k, v in outputs.items() if k.startswith("ScoringPolicyArn")}

    assert set(policies) == {"ScoringPolicyArnExample"}  # every endpoint of the shipped config is the example's
    [statement] = resources[policies["ScoringPolicyArnExample"]]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "execute-api:Invoke"
    paths = sorted(resource["Fn::Join"][1][-1] for resource in statement["Resource"])
    assert paths == [
        "/v1/GET/endpoints/example/results/*",
        "/v1/POST/endpoints/example/score",
        "/v1/POST/endpoints/example/score/async",
    ]


def test_every_method_is_iam_authenticated_and_validated(resources, settings):
    methods = [r["Properties"] for r in of_type(resources, "AWS::ApiGateway::Method").values()]
    [validator_id] = of_type(resources, "AWS::ApiGateway::RequestValidator")

    assert sorted(m["HttpMethod"] for m in methods) == ["GET", "POST", "POST"] * len(settings.serving.endpoints)
    for method in methods:
        assert method["AuthorizationType"] == "AWS_IAM"
        assert method["RequestValidatorId"] == {"Ref": validator_id}
    validator = resources[validator_id]["Properties"]
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True


def test_the_request_schema_takes_the_endpoint_from_the_path_and_its_variants_from_config(resources, settings):
    [endpoint] = settings.serving.endpoints.values()
    schema = the(resources, "AWS::ApiGateway::Model")["Schema"]

    assert schema["required"] == ["instances"]
    assert "endpoint" not in schema["properties"]  # additionalProperties false: a body naming one is refused
    assert schema["properties"]["variant"]["enum"] == sorted(v.name for v in endpoint.variants)
    assert schema["properties"]["instances"]["maxItems"] == settings.serving.api.max_instances
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[17.99, None, "north", True]], "explain": True},  # null: missing; a string: a category
        {"instances": [{"mean radius": 17.99, "worst texture": None, "carrier": "never-seen"}, {"carrier": "x"}]},
    ],
)
def test_api_gateway_s_model_takes_rows_of_numbers_strings_booleans_and_nulls(resources, body):
    # API Gateway models are JSON Schema draft 4:
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-create-model.html
    schema = the(resources, "AWS::ApiGateway::Model")["Schema"]

    jsonschema.Draft4Validator(schema).validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1, [2]]]},  # rows are flat: a body nests three levels at most
        {"instances": [{"carrier": {"name": "x"}}]},
        {"instances": [[]]},
        {"instances": [{}]},
        {"instances": ["north"]},
        {"instances": []},
    ],
)
def test_api_gateway_s_model_refuses_nested_or_empty_rows(resources, body):
    schema = the(resources, "AWS::ApiGateway::Model")["Schema"]

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(body)


def test_the_stage_is_throttled_per_endpoint_method_and_access_logged(resources, settings):
    stage = the(resources, "AWS::ApiGateway::Stage")
    by_path = {(m["ResourcePath"], m["HttpMethod"]): m for m in stage["MethodSettings"]}

    expected = {("/*", "*")} | {
        ("/" + path.replace("/", "~1"), method)  # /~1endpoints~1<key>~1score: each slash after the first as ~1
        for key in settings.serving.endpoints
        for path, method in (
            (f"/endpoints/{key}/score", "POST"),
            (f"/endpoints/{key}/score/async", "POST"),
            (f"/endpoints/{key}/results/{{id}}", "GET"),
        )
    }
    assert set(by_path) == expected
    for method in by_path.values():
        assert method["ThrottlingRateLimit"] == settings.serving.api.throttle_rate_limit
        assert method["ThrottlingBurstLimit"] == settings.serving.api.throttle_burst_limit
        assert (method["LoggingLevel"], method["MetricsEnabled"], method["DataTraceEnabled"]) == ("ERROR", True, False)
    assert "AccessLogSetting" in stage
    assert stage["TracingEnabled"] is True


def test_async_requests_go_through_an_encrypted_queue_with_a_dead_letter_queue(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    [main] = [q["Properties"] for q in queues.values() if "RedrivePolicy" in q["Properties"]]

    assert main["RedrivePolicy"]["maxReceiveCount"] >= 1
    for queue in queues.values():
        assert "PlatformKey" in json.dumps(queue["Properties"]["KmsMasterKeyId"])
    mapping = the(resources, "AWS::Lambda::EventSourceMapping")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_handlers_know_the_endpoints_by_key(resources, settings):
    api = function_environment(resources, "ScoringApi")
    worker = function_environment(resources, "ScoringWorker")

    assert json.loads(api["ENDPOINTS"]) == {"example": endpoint_name(settings)}
    assert worker["ENDPOINTS"] == api["ENDPOINTS"]
    assert "AsyncResultsTable" in json.dumps(api["RESULTS_TABLE"])


# -- Foundation: pointers and the async-results table ---------------------------------------------


def test_foundation_creates_each_pointer_once_without_overwriting(synthesized, environment, settings):
    resources = synthesized.template_json(environment, "foundation")["Resources"]
    pointers = of_type(resources, "Custom::ModelPointer").values()
    variants = [v.name for v in settings.serving.endpoints["example"].variants]

    names = []
    for pointer in pointers:
        create = json.loads(rendered(pointer["Properties"]["Create"]))
        names.append(create["parameters"]["Name"])
        assert create["action"] == "putParameter"
        assert create["parameters"]["Value"] == "example"
        assert create["parameters"]["Overwrite"] is False
        assert create["ignoreErrorCodesMatching"] == "ParameterAlreadyExists"
        assert "Update" not in pointer["Properties"]
        assert "Delete" not in pointer["Properties"]
        assert pointer["DeletionPolicy"] == "Retain"
    assert sorted(names) == sorted(f"/mlops/{settings.name}/models/example/{v}" for v in variants)


def test_foundation_keeps_async_results_encrypted_with_expiry(synthesized, environment):
    resources = synthesized.template_json(environment, "foundation")["Resources"]
    table = resources["AsyncResultsTable"]["Properties"]

    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


# -- shifting the shipped A/B endpoint's weights ---------------------------------------------------

SHIFT = '{"dev": {"example": {"Champion": 50, "Challenger": 50}}}'


def template_diff(before, after, environment: str) -> dict[str, list[str]]:
    """``stack/section`` -> the logical ids that differ between two synths of every stack of an environment."""
    changed: dict[str, list[str]] = {}
    for stack in ("foundation", "ingestion", "training", "serving", "monitoring"):
        one, two = before.template_json(environment, stack), after.template_json(environment, stack)
        for section in ("Resources", "Outputs", "Parameters", "Conditions", "Mappings"):
            a, b = one.get(section, {}), two.get(section, {})
            if differing := sorted(key for key in {*a, *b} if a.get(key) != b.get(key)):
                changed[f"{stack}/{section}"] = differing
    return changed


@pytest.fixture(scope="module")
def shifted_shipped(tmp_path_factory):
    return synthesize(
        load_config(ROOT / "config", selected_environments="dev", variant_weights=SHIFT),
        tmp_path_factory.mktemp("shifted-shipped"),
    )


def test_shifting_the_shipped_weights_changes_the_weights_resource_and_nothing_that_serves(
    synthesized, shifted_shipped
):
    """``-c variantWeights`` on dev's Champion/Challenger: every template diffed. In Serving only the weights
    resource (UpdateEndpointWeightsAndCapacities, in place) and the traffic outputs change; no model, endpoint
    config, endpoint, alarm or scaling target. Elsewhere, one reader of the weights: the approval function's copy of
    the endpoints (updated in place); the dashboard reads the weights the weights resource publishes."""
    changed = template_diff(synthesized, shifted_shipped, "dev")
    resources = synthesized.template_json("dev", STACK)["Resources"]
    [weights_id] = of_type(resources, "Custom::VariantWeights")
    monitoring = synthesized.template_json("dev", "monitoring")["Resources"]

    assert changed == {
        "serving/Resources": [weights_id],
        "serving/Outputs": ["ExampleChallengerTrafficPercent", "ExampleChampionTrafficPercent"],
        "monitoring/Resources": [approval_function_id(monitoring)],
    }
    shifted = shifted_shipped.template_json("dev", STACK)["Resources"][weights_id]["Properties"]["Weights"]
    assert shifted == {"Champion": "50.0", "Challenger": "50.0"}


def approval_function_id(resources: dict[str, Any]) -> str:
    [found] = [
        lid for lid in of_type(resources, "AWS::Lambda::Function") if lid.startswith("ApprovalPathApprovalFunction")
    ]
    return found


# -- A/B scenarios: a GPU challenger and a GPU tenant, weights from context ---------------------------

WEIGHTS = '{"dev": {"example": {"Champion": 0, "Challenger": 100}}}'


def with_gpu_tenant(config_dir) -> None:
    """The example tenant trains on a GPU instance type: the environment needs the GPU training image."""
    path = config_dir / "pipelines" / "example.yaml"
    path.write_text(path.read_text().replace("  instance_type: ml.m5.large\n", "  instance_type: ml.g5.xlarge\n", 1))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """dev with a GPU challenger (local NVMe storage) and a GPU tenant, deployed as recorded, synthesized with and
    without context."""
    config_dir = tmp_path_factory.mktemp("config") / "config"
    shutil.copytree(ROOT / "config", config_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with_challenger(config_dir)
    with_gpu_tenant(config_dir)
    record_as_deployed(config_dir, "dev")  # make record-variants' code, on endpoints deployed as config says
    plain = synthesize(load_config(config_dir, selected_environments="dev"), tmp_path_factory.mktemp("plain"))
    shifted = synthesize(
        load_config(config_dir, selected_environments="dev", variant_weights=WEIGHTS),
        tmp_path_factory.mktemp("shifted"),
    )
    return plain, shifted


def by_type(synthesized, kind: str, environment: str = "dev") -> dict[str, Any]:
    return of_type(synthesized.template_json(environment, STACK)["Resources"], kind)


def test_context_weights_change_only_the_weights_resource(scenario):
    plain, shifted = scenario

    assert set(template_diff(plain, shifted, "dev")) == {"serving/Resources", "serving/Outputs", "monitoring/Resources"}
    assert [*template_diff(plain, shifted, "dev")["serving/Resources"]] == [*by_type(plain, "Custom::VariantWeights")]
    [before] = by_type(plain, "Custom::VariantWeights").values()
    [after] = by_type(shifted, "Custom::VariantWeights").values()
    assert before["Properties"]["Weights"] == {"Champion": "90.0", "Challenger": "10.0"}
    assert after["Properties"]["Weights"] == {"Champion": "0.0", "Challenger": "100.0"}
    outputs = shifted.template_json("dev", STACK)["Outputs"]
    assert outputs["ExampleChampionTrafficPercent"]["Value"] == "0"
    assert outputs["ExampleChallengerTrafficPercent"]["Value"] == "100"


def test_a_weight_of_zero_warns_that_the_variant_still_costs_money(scenario):
    plain, shifted = scenario
    warning = Match.string_like_regexp("variant Champion has weight 0.*still cost money")

    Annotations.from_stack(shifted.stages["dev"].serving).has_warning("*", warning)
    Annotations.from_stack(plain.stages["dev"].serving).has_no_warning("*", warning)


def test_the_gpu_challenger_runs_the_gpu_image_and_leaves_the_kms_key_off_with_a_warning(scenario):
    plain, _ = scenario
    config = next(iter(by_type(plain, "AWS::SageMaker::EndpointConfig").values()))["Properties"]
    models = by_type(plain, "AWS::SageMaker::Model")

    assert "KmsKeyId" not in config
    assert "PlatformKey" in json.dumps(config["DataCaptureConfig"]["KmsKeyId"])  # capture is still encrypted
    images = {variant_of(lid): rendered(m["Properties"]["PrimaryContainer"]["Image"]) for lid, m in models.items()}
    assert images["Champion"] != images["Challenger"]
    Annotations.from_stack(plain.stages["dev"].serving).has_warning(
        "*", Match.string_like_regexp("no KMS key.*ml.g5.xlarge has local NVMe storage")
    )


def test_an_update_that_keeps_the_live_names_rolls_out_all_at_once_in_dev_with_a_bake_and_rollback(scenario):
    """dev's variants run one instance each, so no canary: all at once, then the final baking period."""
    plain, _ = scenario
    endpoint = next(iter(by_type(plain, "AWS::SageMaker::Endpoint").values()))["Properties"]
    rollout = plain.config.environment("dev").serving.rollout

    policy = endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy == {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"},
        "TerminationWaitInSeconds": rollout.termination_wait_seconds,
        "MaximumExecutionTimeoutInSeconds": rollout.maximum_execution_timeout_seconds,
    }
    resources = plain.template_json("dev", STACK)["Resources"]
    alarms = {
        resources[a["AlarmName"]["Ref"]]["Properties"]["AlarmName"]
        for a in endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    }
    assert alarms == {"mlops-dev-example-5xx", "mlops-dev-example-p99-latency"}


def test_each_variant_gets_its_own_scaling_target(scenario):
    plain, _ = scenario
    targets = sorted(
        r["Properties"]["ResourceId"] for r in by_type(plain, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    )

    assert targets == ["endpoint/mlops-dev-example/variant/Challenger", "endpoint/mlops-dev-example/variant/Champion"]


# -- images only where used --------------------------------------------------------------------------


def docker_images(synthesized, environment: str, stack: str) -> dict[str, dict[str, Any]]:
    """Docker image assets of a stack: display name -> asset, as cdk-assets builds and pushes them."""
    stage = synthesized.stages[environment]
    manifest = synthesized.outdir / f"assembly-{environment}" / f"{getattr(stage, stack).artifact_id}.assets.json"
    return {a["displayName"]: a for a in json.loads(manifest.read_text()).get("dockerImages", {}).values()}


def test_no_gpu_image_is_built_where_nothing_runs_one(synthesized, environment):
    """The shipped config: CPU variants only, and the example tenant trains on ml.m5.large."""
    assert sorted(docker_images(synthesized, environment, "serving")) == ["Images/Cpu"]
    assert sorted(docker_images(synthesized, environment, "training")) == ["Images/Cpu"]
    assert "GpuInferenceImageUri" not in synthesized.template_json(environment, STACK)["Outputs"]
    training = synthesized.template_json(environment, "training")
    assert "GpuTrainingImageUri" not in training["Outputs"]
    plan = function_environment(training["Resources"], "PipelinePlanFunction")
    assert plan["GPU_TRAINING_IMAGE_URI"] == ""  # the plan refuses a GPU tenant here in one sentence


def test_the_gpu_images_are_built_where_a_gpu_variant_and_a_gpu_tenant_are_declared(scenario):
    plain, _ = scenario
    serving, training = docker_images(plain, "dev", "serving"), docker_images(plain, "dev", "training")

    assert sorted(serving) == ["Images/Cpu", "Images/Gpu"]
    assert sorted(training) == ["Images/Cpu", "Images/Gpu"]
    for images in (serving, training):
        assert images["Images/Gpu"]["source"]["dockerBuildArgs"]["BASE_IMAGE"].startswith("nvidia/cuda:")
    plan = function_environment(plain.template_json("dev", "training")["Resources"], "PipelinePlanFunction")
    assert HASH_TAG.search(rendered(plan["GPU_TRAINING_IMAGE_URI"]))


# -- the largest endpoint config allows, and instance counts -----------------------------------------

CANDIDATES = [f"Candidate{i}" for i in range(2, 10)]


def prod_variant(name: str, count: int, weight: int, *, autoscaling: bool = True) -> str:
    text = (
        f"        - name: {name}\n          flavour: cpu\n          instance_type: ml.c5.large\n"
        f"          min_capacity: 2\n          max_capacity: 4\n          initial_instance_count: {count}\n"
        f"          weight: {weight}\n"
    )
    return text if autoscaling else text + "          autoscaling: false\n"


def largest_prod(config_dir, count: int) -> None:
    """prod's example endpoint with the 10 variants config allows, and a second endpoint of fixed size."""
    path = config_dir / "environments" / "prod.yaml"
    text = path.read_text()
    start = text.index("      variants:\n", text.index("    example:\n")) + len("      variants:\n")
    end = text.index("    # A tenant's endpoint")
    variants = "".join(prod_variant(n, count, 10) for n in ["Champion", "Challenger", *CANDIDATES])
    fixed = "".join(prod_variant(n, count, 50, autoscaling=False) for n in ["Champion", "Challenger"])
    fixed_endpoint = f"    fixed:\n      tenant: example\n      model: xgboost\n      variants:\n{fixed}"
    path.write_text(text[:start] + variants + fixed_endpoint + text[end:])


@pytest.fixture(scope="module")
def largest(tmp_path_factory):
    """prod at the largest variant count, deployed as recorded (so guardrails apply), then again with every
    variant's initial_instance_count raised from 2 to 3."""
    synths = []
    for count in (2, 3):
        config_dir = tmp_path_factory.mktemp(f"largest-{count}") / "config"
        shutil.copytree(ROOT / "config", config_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        largest_prod(config_dir, count)
        record_as_deployed(config_dir, "prod")
        synths.append(synthesize(load_config(config_dir, selected_environments="prod"), tmp_path_factory.mktemp("o")))
    return synths


def endpoint_resource(synthesized, key: str) -> dict[str, Any]:
    prefix = "".join(part.capitalize() for part in key.split("-")) + "Endpoint"
    [found] = [
        r for lid, r in by_type(synthesized, "AWS::SageMaker::Endpoint", "prod").items() if lid.startswith(prefix)
    ]
    return found["Properties"]


def test_ten_variants_roll_back_on_two_alarms_within_sagemakers_and_cloudwatchs_limits(largest):
    """AutoRollbackConfig takes at most 10 alarms and a metric math alarm reads at most 10 metrics: the largest
    endpoint config allows has 2 alarms of 10 metrics each (the old two per variant would have been 20)."""
    synthesized, _ = largest
    resources = synthesized.template_json("prod", STACK)["Resources"]
    endpoint = endpoint_resource(synthesized, "example")
    listed = [a["AlarmName"]["Ref"] for a in endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]

    assert len(synthesized.config.environment("prod").serving.endpoints["example"].variants) == 10
    assert len(listed) == 2
    for alarm_id in listed:
        alarm = resources[alarm_id]["Properties"]
        stats = metric_stats(alarm)
        assert len(stats) == 10
        assert len(alarm["Metrics"]) <= 20  # PutMetricAlarm: at most 10 MetricStat and 10 Expression entries
        names = {{d["Name"]: d["Value"] for d in s["Metric"]["Dimensions"]}["VariantName"] for s in stats.values()}
        assert names == {"Champion", "Challenger", *CANDIDATES}


def test_prod_rolls_out_a_canary_of_each_variant_s_new_fleet(largest):
    synthesized, _ = largest
    rollout = synthesized.config.environment("prod").serving.rollout
    policy = endpoint_resource(synthesized, "example")["DeploymentConfig"]["BlueGreenUpdatePolicy"]

    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": rollout.canary_percentage},
        "WaitIntervalInSeconds": rollout.canary_wait_seconds,
    }
    assert policy["TerminationWaitInSeconds"] == rollout.termination_wait_seconds


def test_a_count_change_replaces_the_config_and_applies_only_where_nothing_is_autoscaled(largest):
    """With RetainAllVariantProperties an autoscaled endpoint keeps its live counts through an update, so a new
    initial_instance_count only shows in a new endpoint config; an endpoint with no scaling target excludes
    DesiredInstanceCount from retention, so the configured count is what runs after the update."""
    before, after = largest
    autoscaled, fixed = endpoint_resource(after, "example"), endpoint_resource(after, "fixed")
    configs_before, configs_after = (
        {lid: c["Properties"] for lid, c in by_type(synth, "AWS::SageMaker::EndpointConfig", "prod").items()}
        for synth in (before, after)
    )
    changed = template_diff(before, after, "prod")

    # The count is in the endpoint configs only (immutable: CloudFormation replaces them, a new fleet), and in
    # the approval function's copy of the endpoints.
    monitoring = after.template_json("prod", "monitoring")["Resources"]
    assert changed == {
        "serving/Resources": sorted(configs_before),
        "monitoring/Resources": [approval_function_id(monitoring)],
    }
    for lid, config in configs_after.items():
        assert {v["InitialInstanceCount"] for v in config["ProductionVariants"]} == {3}
        assert {v["InitialInstanceCount"] for v in configs_before[lid]["ProductionVariants"]} == {2}
    assert autoscaled["RetainAllVariantProperties"] is True
    assert autoscaled["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DataCaptureConfig"}]
    assert fixed["RetainAllVariantProperties"] is True
    assert fixed["ExcludeRetainedVariantProperties"] == [
        {"VariantPropertyType": "DataCaptureConfig"},
        {"VariantPropertyType": "DesiredInstanceCount"},
    ]
    Annotations.from_stack(after.stages["prod"].serving).has_info(
        "*", Match.string_like_regexp("Endpoint example: .*initial_instance_count applies only when it is created")
    )


def test_the_app_reads_variant_weights_from_cdk_context():
    import aws_cdk as cdk

    from app import read_config

    app = cdk.App(context={"variantWeights": '{"dev": {"example": {"Champion": 7}}}', "environments": "dev"})

    assert read_config(app).environment("dev").serving.endpoints["example"].variants[0].weight == 7.0
