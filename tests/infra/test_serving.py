"""Serving: endpoints from config, weights in place, retained variant properties, scaling, alarms, the scoring API."""

from __future__ import annotations

import json
import shutil
from typing import Any

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


def test_each_variant_reads_its_model_from_its_pointer_at_deploy_time(synthesized, environment, settings):
    template = synthesized.template_json(environment, STACK)
    [(parameter_id, parameter)] = [(k, v) for k, v in template["Parameters"].items() if k != "BootstrapVersion"]
    [(condition_id, condition)] = template["Conditions"].items()
    model = the(template["Resources"], "AWS::SageMaker::Model")

    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert parameter["Default"] == f"/mlops/{settings.name}/models/example/Champion"
    assert condition == {"Fn::Equals": [{"Ref": parameter_id}, "example"]}
    model_data = model["PrimaryContainer"]["ModelDataUrl"]
    assert model_data["Fn::If"][0] == condition_id
    assert model_data["Fn::If"][2] == {"Ref": parameter_id}
    assert rendered(model_data["Fn::If"][1]).startswith("s3://cdk-")  # the example model's file asset
    assert model["EnableNetworkIsolation"] is True


def test_models_run_the_inference_image_by_content_hash(resources):
    model = the(resources, "AWS::SageMaker::Model")

    image = rendered(model["PrimaryContainer"]["Image"])
    assert HASH_TAG.search(image)


def test_the_model_role_reads_only_its_tenant_and_the_example_model(resources):
    [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith("ExampleEndpointModelRole")]
    role = resources[role_id]["Properties"]
    [policy] = [
        r["Properties"]["PolicyDocument"]
        for r in of_type(resources, "AWS::IAM::Policy").values()
        if r["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = {s.get("Sid"): s for s in policy["Statement"]}

    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    artifacts, example = sorted(rendered(r) for r in statements["ReadModelArtifacts"]["Resource"])
    assert artifacts == "<token>/artifacts/runs/example/*"  # the artifacts zone, this tenant's runs only
    assert example.startswith("arn:aws:s3:::cdk-")  # the example model's asset object, exactly
    assert example.endswith(".gz")
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
    target = the(resources, "AWS::ApplicationAutoScaling::ScalableTarget")
    policy = the(resources, "AWS::ApplicationAutoScaling::ScalingPolicy")
    [variant] = settings.serving.endpoints["example"].variants
    scaling = settings.serving.scaling
    [target_id] = of_type(resources, "AWS::ApplicationAutoScaling::ScalableTarget")
    [weights_id] = of_type(resources, "Custom::VariantWeights")

    assert target["ResourceId"] == f"endpoint/{endpoint_name(settings)}/variant/Champion"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (variant.min_capacity, variant.max_capacity)
    assert weights_id in resources[target_id]["DependsOn"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == scaling.target_invocations_per_instance
    assert tracking["ScaleInCooldown"] == scaling.scale_in_cooldown_seconds
    assert tracking["ScaleOutCooldown"] == scaling.scale_out_cooldown_seconds


def test_each_variant_alarms_on_5xx_and_p99_latency_to_the_topic(resources, settings):
    alarms = {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if r["Properties"].get("Namespace") == "AWS/SageMaker"
    }
    name = endpoint_name(settings)

    errors, latency = alarms["Invocation5XXErrors"], alarms["ModelLatency"]
    assert errors["AlarmName"] == f"{name}-Champion-5xx"
    assert latency["AlarmName"] == f"{name}-Champion-p99-latency"
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == settings.serving.alarms.latency_p99_milliseconds * 1000  # microseconds
    for alarm in (errors, latency):
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {"EndpointName": name, "VariantName": "Champion"}
        assert "NotificationTopic" in json.dumps(alarm["AlarmActions"])


def test_the_effective_traffic_shares_are_stack_outputs(synthesized, environment):
    outputs = synthesized.template_json(environment, STACK)["Outputs"]

    assert outputs["ExampleChampionTrafficPercent"]["Value"] == "100"


# -- the scoring API -----------------------------------------------------------------------------


def test_every_method_is_iam_authenticated_and_validated(resources):
    methods = [r["Properties"] for r in of_type(resources, "AWS::ApiGateway::Method").values()]
    [validator_id] = of_type(resources, "AWS::ApiGateway::RequestValidator")

    assert sorted(m["HttpMethod"] for m in methods) == ["GET", "POST", "POST"]
    for method in methods:
        assert method["AuthorizationType"] == "AWS_IAM"
        assert method["RequestValidatorId"] == {"Ref": validator_id}
    validator = resources[validator_id]["Properties"]
    assert validator["ValidateRequestBody"] is True
    assert validator["ValidateRequestParameters"] is True


def test_the_request_schema_names_the_environments_endpoints(resources, settings):
    schema = the(resources, "AWS::ApiGateway::Model")["Schema"]

    assert schema["required"] == ["endpoint", "instances"]
    assert schema["properties"]["endpoint"]["enum"] == sorted(settings.serving.endpoints)
    assert schema["properties"]["instances"]["maxItems"] == settings.serving.api.max_instances
    assert schema["additionalProperties"] is False


def test_the_stage_is_throttled_and_access_logged(resources, settings):
    stage = the(resources, "AWS::ApiGateway::Stage")
    [settings_for_all] = stage["MethodSettings"]

    assert settings_for_all["ThrottlingRateLimit"] == settings.serving.api.throttle_rate_limit
    assert settings_for_all["ThrottlingBurstLimit"] == settings.serving.api.throttle_burst_limit
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
    [pointer] = of_type(resources, "Custom::ModelPointer").values()

    create = json.loads(rendered(pointer["Properties"]["Create"]))
    assert create["action"] == "putParameter"
    assert create["parameters"]["Name"] == f"/mlops/{settings.name}/models/example/Champion"
    assert create["parameters"]["Value"] == "example"
    assert create["parameters"]["Overwrite"] is False
    assert create["ignoreErrorCodesMatching"] == "ParameterAlreadyExists"
    assert "Update" not in pointer["Properties"]
    assert "Delete" not in pointer["Properties"]
    assert pointer["DeletionPolicy"] == "Retain"


def test_foundation_keeps_async_results_encrypted_with_expiry(synthesized, environment):
    resources = synthesized.template_json(environment, "foundation")["Resources"]
    table = resources["AsyncResultsTable"]["Properties"]

    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


# -- A/B scenarios: a GPU challenger, weights from context ---------------------------------------

WEIGHTS = '{"dev": {"example": {"Champion": 0, "Challenger": 100}}}'


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """dev with a GPU challenger (local NVMe storage), deployed as recorded, synthesized with and without context."""
    config_dir = tmp_path_factory.mktemp("config") / "config"
    shutil.copytree(ROOT / "config", config_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with_challenger(config_dir)
    record_as_deployed(config_dir, "dev")  # make record-variants' code, on endpoints deployed as config says
    plain = synthesize(load_config(config_dir, selected_environments="dev"), tmp_path_factory.mktemp("plain"))
    shifted = synthesize(
        load_config(config_dir, selected_environments="dev", variant_weights=WEIGHTS),
        tmp_path_factory.mktemp("shifted"),
    )
    return plain, shifted


def by_type(synthesized, kind: str) -> dict[str, Any]:
    return of_type(synthesized.template_json("dev", STACK)["Resources"], kind)


def test_context_weights_change_only_the_weights_resource(scenario):
    plain, shifted = scenario

    for kind in ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint"):
        assert by_type(plain, kind) == by_type(shifted, kind), kind
    [before] = by_type(plain, "Custom::VariantWeights").values()
    [after] = by_type(shifted, "Custom::VariantWeights").values()
    assert before["Properties"]["Weights"] == {"Champion": "100.0", "Challenger": "10.0"}
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
    images = {
        lid.removeprefix("ExampleEndpoint").split("Model")[0]: rendered(m["Properties"]["PrimaryContainer"]["Image"])
        for lid, m in models.items()
    }
    assert images["Champion"] != images["Challenger"]
    Annotations.from_stack(plain.stages["dev"].serving).has_warning(
        "*", Match.string_like_regexp("no KMS key.*ml.g5.xlarge has local NVMe storage")
    )


def test_an_update_that_keeps_the_live_variant_names_rolls_out_canary_with_automatic_rollback(scenario):
    plain, _ = scenario
    endpoint = next(iter(by_type(plain, "AWS::SageMaker::Endpoint").values()))["Properties"]
    settings = plain.config.environment("dev").serving.rollout

    policy = endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percentage},
        "WaitIntervalInSeconds": settings.canary_wait_seconds,
    }
    resources = plain.template_json("dev", STACK)["Resources"]
    alarms = {
        resources[a["AlarmName"]["Ref"]]["Properties"]["AlarmName"]
        for a in endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    }
    assert alarms == {
        f"mlops-dev-example-{variant}-{kind}"
        for variant in ("Champion", "Challenger")
        for kind in ("5xx", "p99-latency")
    }


def test_each_variant_gets_its_own_scaling_target(scenario):
    plain, _ = scenario
    targets = sorted(
        r["Properties"]["ResourceId"] for r in by_type(plain, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    )

    assert targets == ["endpoint/mlops-dev-example/variant/Challenger", "endpoint/mlops-dev-example/variant/Champion"]


def test_the_app_reads_variant_weights_from_cdk_context():
    import aws_cdk as cdk

    from app import read_config

    app = cdk.App(context={"variantWeights": '{"dev": {"example": {"Champion": 7}}}', "environments": "dev"})

    assert read_config(app).environment("dev").serving.endpoints["example"].variants[0].weight == 7.0
