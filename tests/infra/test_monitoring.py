"""The drift monitor: schedules from config, one Processing job per endpoint and window, least privilege, alarms.

The monitor is read from each environment's Monitoring template; the rule's input is checked against
the job's own argument parser (mlops_platform/monitoring/job.py) and settings
reader, and the drift alarm against the retrain trigger's rule and handler. Bare stacks try the
settings config allows at their largest, and labels.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from moto.events.models import EventPattern

from config import load_config
from config.example_models import EXAMPLE_MODEL_NAMES, baseline_path
from config.monitoring import MAX_NAMED_FEATURES, DriftThresholds, FeatureThresholds
from config.naming import Names
from mlops_constructs.drift_job import TIME_SUFFIX_LENGTH, bounded_name, check_arguments, job_stem, settings_file
from mlops_constructs.drift_monitor import DriftMonitor, DriftMonitorZones
from mlops_constructs.training_images import TrainingImages
from mlops_platform.monitoring import job as monitor_job
from mlops_platform.monitoring import settings as monitor_settings
from mlops_platform.monitoring.retraining import alarm_dimensions
from tests.conftest import ROOT
from tests.infra.test_training import of_type

STACK = "monitoring"
EVENTS = Path(__file__).resolve().parent.parent / "unit" / "events"
ALARM_EVENT = json.loads((EVENTS / "cloudwatch_alarm_state_change.json").read_text())
EVENT_TIME = "2026-11-24T23:00:00Z"
PREFIX = "DriftMonitor"

# -- reading the template -------------------------------------------------------------------------


def render(value: Any) -> str:
    """A template string with its tokens as ``<Name>``: ``<CaptureZoneBucket>``, ``<Role.Arn>``, ``<Ref>``."""
    if isinstance(value, str):
        return value
    (function, argument), *_ = value.items()
    if function == "Fn::Join":
        return argument[0].join(render(part) for part in argument[1])
    if function == "Fn::GetStackOutput":
        output = argument["OutputName"].removeprefix("PublishOutput")
        for kind in ("Ref", "FnGetAtt"):
            output = output.removeprefix(kind)
        return f"<{output[:-8]}>"
    if function == "Fn::GetAtt":
        return f"<{argument[0]}.{argument[1]}>"
    if function == "Ref":
        return f"<{argument}>"
    if function == "Fn::Sub":
        return argument.replace("${AWS::URLSuffix}", "amazonaws.com")
    raise AssertionError(f"unexpected token {value}")


def mine(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in of_type(resources, kind).items() if lid.startswith(PREFIX)}


def schedule_rules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"] for lid, r in mine(resources, "AWS::Events::Rule").items() if "Schedule" in lid}


def rule_input(rule: dict[str, Any], time: str = EVENT_TIME) -> dict[str, Any]:
    """The execution input EventBridge builds from a scheduled event at ``time``."""
    [target] = rule["Targets"]
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"time": "$.time"}
    return json.loads(render(transformer["InputTemplate"]).replace("<time>", json.dumps(time)))


def job_arguments(rule: dict[str, Any]) -> list[str]:
    """The arguments after ``monitor``, with the zone buckets' tokens as bucket names."""
    arguments = rule_input(rule)["arguments"]
    assert arguments[0] == "monitor"
    return [
        argument.replace("<CaptureZoneBucket>", "capture-zone").replace("<ArtifactsZoneBucket>", "artifacts-zone")
        for argument in arguments[1:]
    ]


def state_machine(resources: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, machine)] = mine(resources, "AWS::StepFunctions::StateMachine").items()
    return logical_id, machine["Properties"]


def definition(resources: dict[str, Any]) -> dict[str, Any]:
    return json.loads(render(state_machine(resources)[1]["DefinitionString"]))


def statements(resources: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    [policy] = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for lid, r in of_type(resources, "AWS::IAM::Policy").items()
        if lid.startswith(role_prefix)
    ]
    return policy


def by_sid(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in found if "Sid" in statement}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def endpoint_name(environment: str, key: str = "example") -> str:
    return Names(project="mlops", environment=environment).resource(key)


# -- the schedules ---------------------------------------------------------------------------------


def test_each_endpoint_with_capture_has_a_schedule_on_the_configured_cron(resources, settings):
    rules = schedule_rules(resources)
    [(machine_id, _)] = [state_machine(resources)]

    assert settings.serving.data_capture_percentage > 0
    assert len(rules) == len(settings.serving.endpoints)
    for key, rule in zip(settings.serving.endpoints, rules.values(), strict=True):
        assert rule["ScheduleExpression"] == settings.monitoring.schedule
        [target] = rule["Targets"]
        assert target["Arn"] == {"Ref": machine_id}
        assert rule_input(rule)["endpoint"] == key


def test_the_rule_gives_the_job_its_contract_arguments_with_the_event_time(resources, settings, environment):
    [rule] = schedule_rules(resources).values()
    execution_input = rule_input(rule)
    name = endpoint_name(environment)
    variants = [v.name for v in settings.serving.endpoints["example"].variants]
    arguments = execution_input["arguments"]
    # The assets' URIs: see test_each_variant_s_example_baseline_is_this_stacks_asset_of_its_example_model.
    example_baselines = [arguments[i + 1] for i, a in enumerate(arguments) if a == "--example-baseline"]
    settings_uri = arguments[arguments.index("--settings") + 1]

    assert execution_input["time"] == EVENT_TIME
    assert execution_input["arguments"] == [
        "monitor",
        *("--environment", environment),
        *("--tenant", "example"),
        *("--model", "xgboost"),
        *("--endpoint-name", name),
        *("--capture-uri", "s3://<CaptureZoneBucket>/capture/example/example/"),
        *("--scheduled-time", EVENT_TIME),
        *("--window-minutes", str(settings.monitoring.window_minutes)),
        *("--lag-minutes", str(settings.monitoring.window_lag_minutes)),
        *(item for v in variants for item in ("--pointer", f"{v}=/mlops/{environment}/models/example/{v}")),
        *(item for uri in example_baselines for item in ("--example-baseline", uri)),
        *("--settings", settings_uri),  # the asset's URI: see test_the_settings_are_this_stacks_asset_…
        *("--report-uri", f"s3://<ArtifactsZoneBucket>/artifacts/monitoring/example/{name}/"),
        *("--metrics-namespace", f"mlops/{environment}/Drift"),
        *("--event-source", "mlops.monitoring"),
    ]
    assert [uri.split("=", 1)[0] for uri in example_baselines] == variants


def test_the_jobs_own_parser_accepts_the_arguments_and_reads_the_window_from_the_event(resources):
    [rule] = schedule_rules(resources).values()

    # The job runs `python -m mlops_platform.training monitor <arguments>`.
    parsed = monitor_job.parse_arguments(job_arguments(rule))

    # Hourly, 15 minutes late: capture files written after their requests are in place.
    assert parsed.scheduled_time.isoformat() == "2026-11-24T23:00:00+00:00"
    assert parsed.window_end.isoformat() == "2026-11-24T22:45:00+00:00"
    assert parsed.window_start.isoformat() == "2026-11-24T21:45:00+00:00"
    assert parsed.capture.uri == "s3://capture-zone/capture/example/example/"


def test_the_capture_uri_is_where_the_endpoint_captures(synthesized, environment, resources):
    serving = synthesized.template_json(environment, "serving")["Resources"]
    [config] = of_type(serving, "AWS::SageMaker::EndpointConfig").values()
    destination = render(config["Properties"]["DataCaptureConfig"]["DestinationS3Uri"])
    [rule] = schedule_rules(resources).values()
    arguments = rule_input(rule)["arguments"]

    # SageMaker appends /<endpoint>/<variant>/yyyy/mm/dd/hh/ to the destination.
    assert arguments[arguments.index("--capture-uri") + 1] == destination + "/"


def staged_asset(synthesized, environment: str, display_name: str) -> tuple[str, Path]:
    """(hash, staged file) of the Monitoring stack's file asset ``display_name``, as cdk deploy uploads it."""
    stage = synthesized.stages[environment]
    manifest = synthesized.outdir / f"assembly-{environment}" / f"{stage.monitoring.artifact_id}.assets.json"
    [(asset_hash, asset)] = [
        (h, a) for h, a in json.loads(manifest.read_text())["files"].items() if a["displayName"] == display_name
    ]
    return asset_hash, (manifest.parent / asset["source"]["path"]).resolve()


def test_each_variant_s_example_baseline_is_this_stacks_asset_of_its_example_model(
    synthesized, environment, resources, settings
):
    """While a pointer holds the sentinel, its variant's traffic is compared with the baseline of the example
    model that variant serves (the A/B pair: XGBoost's for the Champion, the linear model's for the Challenger)."""
    stage = synthesized.stages[environment]
    manifest = synthesized.outdir / f"assembly-{environment}" / f"{stage.monitoring.artifact_id}.assets.json"
    files = json.loads(manifest.read_text())["files"]
    hashes = {a["displayName"]: h for h, a in files.items() if a["displayName"].startswith("ExampleBaselines/")}
    found = by_sid(statements(resources, f"{PREFIX}ExampleJobRole"))
    [rule] = schedule_rules(resources).values()
    arguments = rule_input(rule)["arguments"]
    given = dict(arguments[i + 1].split("=", 1) for i, a in enumerate(arguments) if a == "--example-baseline")
    variants = settings.serving.endpoints["example"].variants

    assert sorted(hashes) == sorted(f"ExampleBaselines/{m.capitalize()}" for m in {v.example_model for v in variants})
    for variant in variants:
        asset_hash = hashes[f"ExampleBaselines/{variant.example_model.capitalize()}"]
        staged = (manifest.parent / files[asset_hash]["source"]["path"]).resolve()
        assert staged.read_bytes() == baseline_path(variant.example_model).read_bytes()
        assert given[variant.name].endswith(f"/{asset_hash}.json")
    readable = found["ReadExampleBaseline"]["Resource"]
    assert sorted(
        render(r).rsplit("/", 1)[1] for r in (readable if isinstance(readable, list) else [readable])
    ) == sorted(f"{hashes[name]}.json" for name in hashes)


def test_the_settings_are_this_stacks_asset_the_job_reads_as_the_configured_thresholds(
    synthesized, environment, resources, settings
):
    asset_hash, staged = staged_asset(synthesized, environment, "DriftMonitor/Settings")
    found = by_sid(statements(resources, f"{PREFIX}ExampleJobRole"))
    [rule] = schedule_rules(resources).values()
    arguments = rule_input(rule)["arguments"]

    assert arguments[arguments.index("--settings") + 1].endswith(f"/{asset_hash}.json")
    assert render(found["ReadSettings"]["Resource"]).endswith(f"/{asset_hash}.json")
    assert found["ReadSettings"]["Action"] == "s3:GetObject"
    # What the job makes of the uploaded bytes is what config says.
    thresholds = monitor_settings.parse_settings(staged.read_bytes())
    configured = settings.monitoring.thresholds
    assert thresholds.default.psi == configured.default.psi
    assert (thresholds.drifted_share, thresholds.min_rows) == (configured.drifted_share, configured.min_rows)


def test_job_names_fit_sagemakers_limit_and_are_the_same_for_the_same_endpoint():
    names = Names(project="abcdefghijklmnop", environment="staging")
    long_key = "k" * 32

    assert job_stem(Names(project="mlops", environment="dev"), "example") == "mlops-dev-drift-example"
    assert len(job_stem(names, long_key)) + TIME_SUFFIX_LENGTH <= 63
    assert job_stem(names, long_key) == job_stem(names, long_key)
    assert job_stem(names, long_key) != job_stem(names, "k" * 31 + "j")
    assert bounded_name("mlops-dev-monitor", "example") == "mlops-dev-monitor-example"


# -- the state machine -----------------------------------------------------------------------------


def test_the_state_machine_names_the_job_from_the_endpoint_and_the_event_time(resources):
    states = definition(resources)["States"]

    assert definition(resources)["StartAt"] == "SplitEventTime"
    assert states["SplitEventTime"]["Parameters"] == {"parts.$": "States.StringSplit($.time, '-:TZ')"}
    items = ", ".join(f"States.ArrayGetItem($.window.parts, {index})" for index in range(5))
    assert states["NameJob"]["Parameters"] == {
        "name.$": f"States.Format('{{}}-{{}}{{}}{{}}{{}}{{}}', $.job_stem, {items})"
    }
    assert states["NameJob"]["Next"] == "Monitor"


def test_each_run_is_one_synchronous_processing_job_configured_from_config(
    synthesized, environment, resources, settings
):
    monitor = definition(resources)["States"]["Monitor"]
    training = synthesized.template_json(environment, "training")
    image = render(training["Outputs"]["TrainingImageUri"]["Value"])
    request = monitor["Parameters"]

    assert monitor["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    assert request["ProcessingJobName.$"] == "$.job.name"
    assert request["RoleArn.$"] == "$.role_arn"
    assert request["AppSpecification"] == {"ImageUri": image, "ContainerArguments.$": "$.arguments"}
    assert request["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": settings.monitoring.instance_type or settings.instance_types.processing,
        "VolumeSizeInGB": 20,
        "VolumeKmsKeyId": "<PlatformKeyArn>",
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": settings.monitoring.max_runtime_seconds}
    assert state_machine(resources)[1]["DefinitionString"]  # rendered, not a file reference


def test_a_job_name_in_use_counts_as_done_and_other_errors_fail_with_their_cause(resources):
    states = definition(resources)["States"]
    catches = {tuple(c["ErrorEquals"]): c for c in states["Monitor"]["Catch"]}
    choice = states["WhyNotStarted"]

    assert list(catches) == [("SageMaker.AmazonSageMakerException",), ("States.ALL",)]
    assert catches[("SageMaker.AmazonSageMakerException",)]["Next"] == "WhyNotStarted"
    assert choice["Choices"] == [
        {"Variable": "$.error.Cause", "StringMatches": "*ResourceInUse*", "Next": "AlreadyStarted"}
    ]
    assert states["AlreadyStarted"]["Type"] == "Succeed"
    assert states[choice["Default"]] == {"Type": "Fail", "Error": "MonitoringJobRejected", "CausePath": "$.error.Cause"}
    assert states[catches[("States.ALL",)]["Next"]]["Type"] == "Fail"
    assert states["Monitor"]["Next"] == "Monitored"


def test_the_state_machine_logs_everything_encrypted_traces_and_stops_after_the_job_could(resources, settings):
    _, machine = state_machine(resources)
    [log_group] = mine(resources, "AWS::Logs::LogGroup").values()

    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert "PlatformKey" in json.dumps(log_group["Properties"]["KmsKeyId"])
    assert definition(resources)["TimeoutSeconds"] > settings.monitoring.max_runtime_seconds


def test_the_state_machine_runs_only_drift_jobs_and_passes_only_the_job_roles_to_sagemaker(
    resources, environment, settings
):
    found = statements(resources, f"{PREFIX}StateMachineRole")
    job_roles = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith(f"{PREFIX}Example")]

    def granting(action: str) -> dict[str, Any]:
        [statement] = [s for s in found if action in as_list(s["Action"])]
        return statement

    # AWS's policy for createProcessingJob.sync (mlops_constructs/sagemaker_sync.py); all of it is
    # compared with the documentation in tests/infra/test_state_machine_iam.py.
    jobs = f"arn:aws:sagemaker:{settings.region}:{settings.account}:processing-job/mlops-{environment}-drift-*"
    for action in ("sagemaker:CreateProcessingJob", "sagemaker:StopProcessingJob", "sagemaker:AddTags"):
        assert render(granting(action)["Resource"]) == jobs, action
    passes = granting("iam:PassRole")
    assert [render(r) for r in as_list(passes["Resource"])] == [f"<{lid}.Arn>" for lid in job_roles]
    assert passes["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert "StepFunctionsGetEventsForSageMakerProcessingJobsRule" in render(granting("events:PutRule")["Resource"])


# -- the job's role --------------------------------------------------------------------------------


def test_the_job_reads_only_its_endpoints_capture_baselines_and_pointers(resources, environment, settings):
    found = by_sid(statements(resources, f"{PREFIX}ExampleJobRole"))
    name = endpoint_name(environment)

    assert render(found["ReadCapture"]["Resource"]) == "<CaptureZoneBucketArn>/capture/example/example/*"
    assert found["ListCapture"]["Condition"] == {"StringLike": {"s3:prefix": ["capture/example/example/*"]}}
    assert (
        render(found["ReadBaselines"]["Resource"]) == "<ArtifactsZoneBucketArn>/artifacts/runs/example/*/baseline.json"
    )
    assert found["ListBaselines"]["Condition"] == {"StringLike": {"s3:prefix": ["artifacts/runs/example/*"]}}
    examples = found["ReadExampleBaseline"]["Resource"]
    assert all(render(r).endswith(".json") for r in (examples if isinstance(examples, list) else [examples]))
    assert found["WriteReports"]["Action"] == "s3:PutObject"
    assert (
        render(found["WriteReports"]["Resource"]) == f"<ArtifactsZoneBucketArn>/artifacts/monitoring/example/{name}/*"
    )
    assert found["ReadModelPointers"]["Action"] == "ssm:GetParameter"
    assert sorted(render(r).split(":", 5)[5] for r in as_list(found["ReadModelPointers"]["Resource"])) == sorted(
        f"parameter/mlops/{environment}/models/example/{v.name}" for v in settings.serving.endpoints["example"].variants
    )


def test_the_job_puts_only_drift_metrics_and_drift_summaries_on_the_default_bus(resources, environment):
    found = by_sid(statements(resources, f"{PREFIX}ExampleJobRole"))

    assert found["PutDriftMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": f"mlops/{environment}/Drift"}
    }
    assert render(found["PutDriftSummaries"]["Resource"]).endswith(":event-bus/default")
    assert found["PutDriftSummaries"]["Condition"] == {
        "StringEquals": {"events:source": "mlops.monitoring", "events:detail-type": "Drift Summary"}
    }


def test_no_other_statement_of_the_job_role_touches_s3_ssm_or_events(resources):
    allowed = {
        "ReadCapture", "ListCapture", "ReadBaselines", "ListBaselines", "ReadExampleBaseline", "ReadSettings",
        "WriteReports",
    }  # fmt: skip
    for statement in statements(resources, f"{PREFIX}ExampleJobRole"):
        actions = as_list(statement["Action"])
        if any(action.startswith("s3:") for action in actions):
            assert statement.get("Sid") in allowed, statement
        if any(action.startswith(("ssm:", "events:")) for action in actions):
            assert statement.get("Sid") in {"ReadModelPointers", "PutDriftSummaries"}, statement


def test_job_roles_are_assumed_by_sagemaker_and_use_no_managed_policy(resources):
    for logical_id, role in of_type(resources, "AWS::IAM::Role").items():
        if logical_id.startswith(f"{PREFIX}Example"):
            statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
            assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
            assert "ManagedPolicyArns" not in role["Properties"]


# -- alarms ----------------------------------------------------------------------------------------


def drift_alarm(resources: dict[str, Any]) -> dict[str, Any]:
    [alarm] = [r["Properties"] for lid, r in mine(resources, "AWS::CloudWatch::Alarm").items() if "DriftAlarm" in lid]
    return alarm


def test_each_endpoint_has_its_drift_alarm_as_the_contract_says(resources, environment, settings):
    alarm = drift_alarm(resources)

    assert alarm["AlarmName"] == f"mlops-{environment}-drift-example"
    assert alarm["Namespace"] == f"mlops/{environment}/Drift"
    assert alarm["MetricName"] == "DriftDetected"
    assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": "Endpoint", "Value": endpoint_name(environment)},
        {"Name": "Model", "Value": "xgboost"},
        {"Name": "Tenant", "Value": "example"},
    ]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Period"] == settings.monitoring.window_minutes * 60
    assert alarm["Statistic"] == "Maximum"
    assert [render(action) for action in alarm["AlarmActions"]] == ["<NotificationTopic>"]


def test_the_alarm_has_the_dimensions_the_job_publishes(resources):
    [rule] = schedule_rules(resources).values()
    alarm = drift_alarm(resources)

    published = monitor_job.parse_arguments(job_arguments(rule)).dimensions

    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == published


def test_the_drift_alarm_going_off_starts_the_retrain_trigger_for_its_tenant_and_model(resources, settings):
    if not settings.monitoring.retraining.on_drift:
        pytest.skip("retraining on drift is off in this environment")
    alarm = drift_alarm(resources)
    event = copy.deepcopy(ALARM_EVENT)
    event["detail"]["alarmName"] = alarm["AlarmName"]
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"] = {
        "name": alarm["MetricName"],
        "namespace": alarm["Namespace"],
        "dimensions": {d["Name"]: d["Value"] for d in alarm["Dimensions"]},
    }
    [pattern] = [
        r["Properties"]["EventPattern"]
        for r in of_type(resources, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["CloudWatch Alarm State Change"]
    ]

    assert EventPattern.load(json.dumps(pattern)).matches_event(event)
    assert alarm_dimensions(event["detail"]) == ("example", "xgboost")


def test_failed_timed_out_aborted_or_unstarted_runs_notify_the_topic(resources):
    [alarm] = [r["Properties"] for lid, r in mine(resources, "AWS::CloudWatch::Alarm").items() if "RunFailed" in lid]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    machine_id, _ = state_machine(resources)
    [rule_id] = [lid for lid in mine(resources, "AWS::Events::Rule") if "Schedule" in lid]

    assert [render(action) for action in alarm["AlarmActions"]] == ["<NotificationTopic>"]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Threshold"] == 0
    assert {metrics[i]["MetricStat"]["Metric"]["MetricName"] for i in ("failed", "timedOut", "aborted")} == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    }
    for i in ("failed", "timedOut", "aborted"):
        assert metrics[i]["MetricStat"]["Metric"]["Dimensions"] == [
            {"Name": "StateMachineArn", "Value": {"Ref": machine_id}}
        ]
    assert metrics["notStarted0"]["MetricStat"]["Metric"]["MetricName"] == "FailedInvocations"
    assert metrics["notStarted0"]["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "RuleName", "Value": {"Ref": rule_id}}
    ]
    [expression] = [m for m in alarm["Metrics"] if "Expression" in m]
    assert all(f"FILL({i}, 0)" in expression["Expression"] for i in ("failed", "timedOut", "aborted", "notStarted0"))


def bare_monitor(
    region: str, labels_dataset: str | None = None, thresholds: DriftThresholds | None = None
) -> dict[str, Any]:
    """The construct alone, in ``region``, with the shipped dev settings and the given monitoring ones."""
    settings = load_config(ROOT / "config", selected_environments="dev").environment("dev")
    update: dict[str, Any] = {"labels_dataset": labels_dataset}
    if thresholds is not None:
        update["thresholds"] = thresholds
    monitoring = settings.monitoring.model_copy(update=update)
    settings = settings.model_copy(update={"region": region, "monitoring": monitoring})
    app = cdk.App()
    stack = cdk.Stack(app, "Bare", env=cdk.Environment(account="111111111111", region=region))
    DriftMonitor(
        stack,
        PREFIX,
        names=Names(project="mlops", environment="dev"),
        environment=settings,
        key=kms.Key(stack, "Key"),
        topic=sns.Topic(stack, "Topic"),
        zones=DriftMonitorZones(
            capture=s3.Bucket(stack, "Capture"), artifacts=s3.Bucket(stack, "Artifacts"), raw=s3.Bucket(stack, "Raw")
        ),
        image=TrainingImages(stack, "Images", gpu=False).cpu,
        example_baselines={
            name: s3_assets.Asset(stack, f"Baseline{name}", path=str(baseline_path(name)))
            for name in EXAMPLE_MODEL_NAMES
        },
        removal_policy=cdk.RemovalPolicy.DESTROY,
    )
    return app.synth().get_stack_by_name("Bare").template["Resources"]


def test_no_sagemaker_model_monitor_resource_is_deployed(synthesized, environment):
    """The option was removed (README, Monitoring and retraining): no template may carry its resources."""
    for stack in ("foundation", "ingestion", "training", "serving", STACK):
        resources = synthesized.template_json(environment, stack)["Resources"]
        kinds = {resource["Type"] for resource in resources.values()}
        assert not kinds & {
            "AWS::SageMaker::MonitoringSchedule",
            "AWS::SageMaker::DataQualityJobDefinition",
            "AWS::SageMaker::ModelQualityJobDefinition",
        }


# -- model quality from labels ----------------------------------------------------------------------


def labels_of(resources: dict[str, Any]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The example endpoint's job arguments and its role's statements by Sid."""
    [rule] = schedule_rules(resources).values()
    return rule_input(rule)["arguments"], by_sid(statements(resources, f"{PREFIX}ExampleJobRole"))


def test_a_labels_dataset_gives_the_job_its_labels_prefix_and_the_role_only_that_prefix():
    resources = bare_monitor("eu-west-1", labels_dataset="example-labels")
    arguments, found = labels_of(resources)
    [raw] = [logical_id for logical_id in of_type(resources, "AWS::S3::Bucket") if logical_id.startswith("Raw")]

    assert arguments[arguments.index("--labels-uri") + 1] == f"s3://<{raw}>/raw/example/example-labels/"
    assert found["ReadLabels"]["Action"] == "s3:GetObject"
    assert render(found["ReadLabels"]["Resource"]) == f"<{raw}.Arn>/raw/example/example-labels/*"
    assert found["ListLabels"]["Action"] == "s3:ListBucket"
    assert render(found["ListLabels"]["Resource"]) == f"<{raw}.Arn>"
    assert found["ListLabels"]["Condition"] == {"StringLike": {"s3:prefix": ["raw/example/example-labels/*"]}}
    # The job's own parser takes it as the prefix it reads labels from.
    concrete = [re.sub(r"<(\w+?)[0-9A-F]{8}>", lambda m: f"{m[1].lower()}-zone", a) for a in arguments[1:]]
    parsed = monitor_job.parse_arguments(concrete)
    assert parsed.labels is not None
    assert parsed.labels.uri == "s3://raw-zone/raw/example/example-labels/"


def test_without_a_labels_dataset_the_job_gets_no_labels_and_no_raw_zone(resources):
    for template in (resources, bare_monitor("eu-west-1")):
        arguments, found = labels_of(template)

        assert "--labels-uri" not in arguments
        assert not {"ReadLabels", "ListLabels"} & found.keys()
        assert "raw/" not in json.dumps(statements(template, f"{PREFIX}ExampleJobRole"))


def test_a_labels_dataset_without_the_raw_zone_is_refused_at_synth():
    settings = load_config(ROOT / "config", selected_environments="dev").environment("dev")
    settings = settings.model_copy(
        update={"monitoring": settings.monitoring.model_copy(update={"labels_dataset": "example-labels"})}
    )
    stack = cdk.Stack(cdk.App(), "Bare", env=cdk.Environment(account="111111111111", region="eu-west-1"))

    with pytest.raises(ValueError, match=r"monitoring\.labels_dataset 'example-labels' needs the raw zone"):
        DriftMonitor(
            stack,
            PREFIX,
            names=Names(project="mlops", environment="dev"),
            environment=settings,
            key=kms.Key(stack, "Key"),
            topic=sns.Topic(stack, "Topic"),
            zones=DriftMonitorZones(capture=s3.Bucket(stack, "Capture"), artifacts=s3.Bucket(stack, "Artifacts")),
            image=TrainingImages(stack, "Images", gpu=False).cpu,
            example_baselines={
                name: s3_assets.Asset(stack, f"Baseline{name}", path=str(baseline_path(name)))
                for name in EXAMPLE_MODEL_NAMES
            },
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )


# -- the largest settings the schema allows ---------------------------------------------------------


def largest_thresholds() -> DriftThresholds:
    """``MAX_NAMED_FEATURES`` features with the longest names allowed (64 characters), each with every threshold."""
    names = [f"f{i:02d}_" + "x" * 60 for i in range(MAX_NAMED_FEATURES)]
    return DriftThresholds(
        features={name: FeatureThresholds(psi=0.123456, ks_statistic=0.123456, ks_p_value=0.001234) for name in names}
    )


def test_the_largest_settings_fit_sagemakers_argument_limits_and_reach_the_job():
    thresholds = largest_thresholds()
    resources = bare_monitor("eu-west-1", labels_dataset="example-labels", thresholds=thresholds)
    [rule] = schedule_rules(resources).values()
    template = render(rule["Targets"][0]["InputTransformer"]["InputTemplate"])
    # Each bucket token at its longest (63 characters), the time as EventBridge writes it.
    arguments = [
        re.sub(r"<[^>]+>", "b" * 63, argument)
        for argument in json.loads(template.replace("<time>", json.dumps(EVENT_TIME)))["arguments"]
    ]
    monitoring = load_config(ROOT / "config", selected_environments="dev").environment("dev").monitoring
    document = settings_file(monitoring.model_copy(update={"thresholds": thresholds})).read_bytes()

    # CreateProcessingJob: at most 100 ContainerArguments of at most 256 characters each
    # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html).
    assert len(arguments) <= 100
    assert max(len(argument) for argument in arguments) <= 256
    assert len(template) <= 8192  # EventBridge's limit on an input template
    assert len(document) > 256 * 10  # what used to be one argument
    parsed = monitor_settings.parse_settings(document)
    assert sorted(parsed.features) == sorted(thresholds.features)
    assert {parsed.of(name).psi for name in thresholds.features} == {0.123456}


def test_an_argument_sagemaker_would_refuse_stops_synth_with_one_sentence():
    too_long = "s3://" + "k" * 260

    with pytest.raises(
        ValueError, match=r"^endpoint acme: job argument 's3://k+'... can be 265 characters; SageMaker allows 256"
    ):
        check_arguments(["monitor", "--capture-uri", too_long], "endpoint acme")
    with pytest.raises(ValueError, match=r"101 job arguments; SageMaker allows at most 100"):
        check_arguments(["x"] * 101, "endpoint acme")
    # A bucket-name token counts at its longest.
    check_arguments(["s3://${Token[TOKEN.1]}/" + "k" * 187], "endpoint acme")
    with pytest.raises(ValueError, match="can be 257 characters"):
        check_arguments(["s3://${Token[TOKEN.1]}/" + "k" * 188], "endpoint acme")
