"""The environment's dashboard: serving per endpoint and variant, training, objectives, drift and queue depths.

The DashboardBody is an ``Fn::Join`` of JSON text and CloudFormation tokens; ``body`` renders the tokens
as ``<name>`` strings and parses the widgets, so each test reads the metrics as CloudWatch will.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from config.naming import Names
from config.serving import EndpointConfig
from mlops_constructs.dashboard import PlatformDashboard, QueueDepth
from mlops_constructs.retrain_trigger import DECISION_METRICS

# The drift job's code: its report names the metrics it publishes.
from mlops_platform.monitoring.drift import DriftReport, FeatureDrift, PredictionDrift
from tests.infra.test_training import of_type

STACK = "monitoring"
# Distinct values, so each metric the job publishes is found by what it carries, not by its name.
PSI, KS, PREDICTION_PSI = 0.123, 0.456, 0.789


def published_drift_metrics() -> dict[str, tuple[str, str]]:
    """The drift job's metric names and dimension schemas, from a small report of its own
    (mlops_platform/monitoring/drift.py, ``DriftReport.metrics``): a renamed metric or
    dimension there fails the dashboard's tests."""
    feature = FeatureDrift(
        name="tenure", type="bigint", rows=40, psi=PSI, ks_statistic=KS, ks_p_value=0.001, missing_rate=0.0,
        baseline_missing_rate=0.0, out_of_range_share=0.0, type_mismatch_share=0.0, drifted=True, reasons=["psi"],
    )  # fmt: skip
    prediction = PredictionDrift(variant="Champion", rows=40, psi=PREDICTION_PSI, mean=0.4, drifted=True)
    report = DriftReport(
        lines=40, rows=40, malformed={}, drift=True, drifted_share=0.5, max_psi=None,
        features=[feature], predictions=[prediction],
    )  # fmt: skip
    endpoint = {"Endpoint": "e", "Tenant": "t", "Model": "m"}
    metrics = report.metrics(endpoint)

    def one(value: float, extra: str | None) -> tuple[str, str]:
        wanted = set(endpoint) | ({extra} if extra else set())
        [(name, schema)] = [
            (m.name, ",".join(sorted(m.dimensions)))
            for m in metrics
            if m.value == value and set(m.dimensions) == wanted
        ]
        return name, schema

    return {
        "detected": one(1.0, None),
        "feature_psi": one(PSI, "Feature"),
        "feature_ks": one(KS, "Feature"),
        "prediction_psi": one(PREDICTION_PSI, "Variant"),
    }


def published_weight_metric() -> tuple[str, list[str]]:
    """The weights resource's share-of-traffic metric and its dimension names, from the resource's own data
    (mlops_platform/serving/weights.py, ``weight_metrics``): a renamed metric or dimension there fails these tests."""
    from mlops_platform.serving.weights import weight_metrics

    [share] = [d for d in weight_metrics("e", {"v": 1.0}) if d["Unit"] == "Percent"]
    return share["MetricName"], [d["Name"] for d in share["Dimensions"]]


def token(value: dict[str, Any]) -> str:
    (function, argument), *_ = value.items()
    if function == "Fn::GetStackOutput":
        return f"<{argument['StackName']}:{argument['OutputName']}>"
    if function == "Fn::GetAtt":
        return f"<{argument[0]}.{argument[1]}>"
    if function == "Ref":
        return f"<{argument}>"
    raise AssertionError(f"unexpected token {value}")


def body(dashboard: dict[str, Any]) -> dict[str, Any]:
    value = dashboard["Properties"]["DashboardBody"]
    if isinstance(value, str):
        return json.loads(value)
    delimiter, parts = value["Fn::Join"]
    return json.loads(delimiter.join(part if isinstance(part, str) else token(part) for part in parts))


def metric_rows(widgets: list[dict[str, Any]]) -> list[list[Any]]:
    return [row for widget in widgets for row in widget.get("properties", {}).get("metrics", [])]


def expressions(widgets: list[dict[str, Any]]) -> list[str]:
    return [row[-1]["expression"] for row in metric_rows(widgets) if "expression" in row[-1]]


def texts(widgets: list[dict[str, Any]]) -> list[str]:
    return [widget["properties"]["markdown"] for widget in widgets if widget["type"] == "text"]


def has_metric(widgets: list[dict[str, Any]], namespace: str, name: str, dimensions: dict[str, str], **options) -> bool:
    """Whether a graph shows the metric with exactly these dimensions (and these rendering options)."""
    for row in metric_rows(widgets):
        if "expression" in row[-1] or row[:2] != [namespace, name]:
            continue
        pairs = row[2:-1] if isinstance(row[-1], dict) else row[2:]
        rendered = dict(zip(pairs[::2], pairs[1::2], strict=True))
        extra = row[-1] if isinstance(row[-1], dict) else {}
        if rendered == dimensions and all(extra.get(key) == value for key, value in options.items()):
            return True
    return False


@pytest.fixture(scope="module")
def dashboard(resources) -> tuple[str, list[dict[str, Any]]]:
    [resource] = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    return resource["Properties"]["DashboardName"], body(resource)["widgets"]


def test_one_dashboard_per_environment_under_its_contract_name(dashboard, environment):
    name, _ = dashboard

    assert name == f"mlops-{environment}"


def check_serving(widgets: list[dict[str, Any]], names: Names, endpoints: dict[str, EndpointConfig]) -> None:
    share, dimension_names = published_weight_metric()
    assert dimension_names == ["EndpointName", "VariantName"]
    for key, endpoint in endpoints.items():
        endpoint_name = names.resource(key)
        [weights] = [
            w
            for w in widgets
            if w["properties"].get("view") == "singleValue" and endpoint_name in w["properties"]["title"]
        ]
        # Weights change on deploys, weeks apart: the widget looks back as far as CloudWatch keeps hourly data.
        assert weights["properties"]["start"] == "-P455D"
        assert not any(endpoint_name in text for text in texts(widgets))  # no weights fixed at synth
        for variant in endpoint.variants:
            dimensions = {"EndpointName": endpoint_name, "VariantName": variant.name}
            assert has_metric(widgets, "AWS/SageMaker", "Invocations", dimensions, stat="Sum")
            assert has_metric(widgets, "AWS/SageMaker", "Invocation5XXErrors", dimensions, stat="Sum")
            assert has_metric(widgets, "AWS/SageMaker", "Invocation4XXErrors", dimensions, stat="Sum")
            assert has_metric(widgets, "AWS/SageMaker", "ModelLatency", dimensions, stat="p50")
            assert has_metric(widgets, "AWS/SageMaker", "ModelLatency", dimensions, stat="p99")
            assert has_metric([weights], names.metrics_namespace, share, dimensions, period=3600)


def check_drift(widgets: list[dict[str, Any]], names: Names, endpoints: dict[str, EndpointConfig]) -> None:
    namespace = f"{names.metrics_namespace}/Drift"
    searches = expressions(widgets)
    published = published_drift_metrics()
    detected, _ = published.pop("detected")
    for key, endpoint in endpoints.items():
        endpoint_name = names.resource(key)
        dimensions = {"Endpoint": endpoint_name, "Model": endpoint.model, "Tenant": endpoint.tenant}
        assert has_metric(widgets, namespace, detected, dimensions)
        for metric, schema in published.values():
            assert any(
                f"{{{namespace},{schema}}}" in search
                and f'MetricName="{metric}"' in search
                and f'Endpoint="{endpoint_name}"' in search
                for search in searches
            ), (metric, endpoint_name)


def test_every_variant_shows_invocations_errors_latency_and_its_weight(dashboard, settings):
    _, widgets = dashboard

    check_serving(widgets, Names("mlops", settings.name), settings.serving.endpoints)


def test_the_weights_resource_publishes_where_the_dashboard_reads(synthesized, environment):
    """The function that applies the weights publishes them in the dashboard's namespace, and nowhere else."""
    serving = synthesized.template_json(environment, "serving")["Resources"]
    [(function_id, function)] = [
        (lid, r)
        for lid, r in of_type(serving, "AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "handler.is_complete"
    ]
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    [statements] = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in of_type(serving, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    [publish] = [st for st in statements if st.get("Sid") == "PublishWeights"]

    assert function["Properties"]["Environment"]["Variables"]["METRICS_NAMESPACE"] == f"mlops/{environment}"
    assert publish["Action"] == "cloudwatch:PutMetricData"
    assert publish["Condition"] == {"StringEquals": {"cloudwatch:namespace": f"mlops/{environment}"}}
    assert function_id.startswith("Weights")


def test_training_executions_and_their_outcomes_and_the_trigger_decisions(dashboard, environment):
    _, widgets = dashboard
    machine = {"StateMachineArn": f"<{environment}-Training:PublishOutputRefPipelineStateMachine1814BD05AAFBEF8B>"}

    for metric in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"):
        assert has_metric(widgets, "AWS/States", metric, machine, stat="Sum"), metric
    for metric in DECISION_METRICS:
        assert has_metric(widgets, f"mlops/{environment}", metric, {"service": "retrain-trigger"}), metric


def test_the_best_objective_of_every_tenant_over_time(dashboard, platform_config, environment):
    _, widgets = dashboard
    searches = expressions(widgets)

    assert platform_config.pipelines
    for pipeline in platform_config.pipelines:
        [search] = [s for s in searches if f'Tenant="{pipeline.tenant}"' in s]
        assert f'Namespace="mlops/{environment}"' in search
        assert 'MetricName="BestObjective"' in search


def test_drift_per_feature_and_detected_per_endpoint(dashboard, settings):
    _, widgets = dashboard

    check_drift(widgets, Names("mlops", settings.name), settings.serving.endpoints)


def test_queue_and_dead_letter_queue_depths(dashboard, environment):
    _, widgets = dashboard
    queues = {
        row[3]
        for row in metric_rows(widgets)
        if row[:3] == ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"]
    }

    expected = [
        f"{environment}-Ingestion:PublishOutputFnGetAttIngestQueueExampleQueueName",  # a queue per tenant
        f"{environment}-Ingestion:PublishOutputFnGetAttIngestDeadLetterQueueQueueName",
        f"{environment}-Serving:PublishOutputFnGetAttScoringRequests",
        f"{environment}-Serving:PublishOutputFnGetAttScoringDeadLetterQueue",
        f"{environment}-Training:PublishOutputFnGetAttProgressDeadLetterQueue",
        "<ApprovalPathDeadLetterQueue",
        "<RetrainTriggerNewDataQueue",
        "<RetrainTriggerNewDataDeadLetterQueue",
        "<RetrainTriggerDeadLetterQueue",
    ]
    for name in expected:
        assert any(name in queue for queue in queues), name
    assert len(queues) == len(expected)


# -- more endpoints, variants and tenants than the shipped config has, on a bare stack -------------------


def test_a_dashboard_of_several_endpoints_variants_and_tenants(platform_config):
    settings = platform_config.environment("dev")
    example = settings.serving.endpoints["example"]
    champion = example.variants[0]
    challenger = champion.model_copy(update={"name": "Challenger", "weight": 20.0})
    endpoints = {
        "example": example,
        "acme-churn": EndpointConfig(tenant="acme", model="churn", variants=(champion, challenger)),
    }
    [pipeline] = platform_config.pipelines
    objective = pipeline.objective.model_copy(update={"metric": "validation:rmse", "direction": "minimize"})
    pipelines = (pipeline, pipeline.model_copy(update={"tenant": "acme", "objective": objective}))
    names = Names("mlops", "dev")
    stack = cdk.Stack(cdk.App(), "Bare", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    PlatformDashboard(
        stack,
        "Dashboard",
        names=names,
        serving=settings.serving.model_copy(update={"endpoints": endpoints}),
        monitoring=settings.monitoring,
        pipelines=pipelines,
        state_machine=sfn.StateMachine(
            stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "Pass"))
        ),
        queues=[QueueDepth("Queue", sqs.Queue(stack, "Queue")), QueueDepth("DLQ", sqs.Queue(stack, "Dlq"), True)],
    )

    [resource] = Template.from_stack(stack).find_resources("AWS::CloudWatch::Dashboard").values()
    widgets = body(resource)["widgets"]

    check_serving(widgets, names, endpoints)
    check_drift(widgets, names, endpoints)
    searches = expressions(widgets)
    [acme] = [s for s in searches if 'Tenant="acme"' in s]
    [example_tenant] = [s for s in searches if 'Tenant="example"' in s]
    # The best of a period is the objective's own direction.
    assert "'Minimum'" in acme
    assert "'Maximum'" in example_tenant
    assert all(widget["x"] + widget["width"] <= 24 for widget in widgets)
