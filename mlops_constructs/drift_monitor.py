"""The drift monitor: per endpoint with data capture, a schedule that compares captured traffic with baselines.

Per endpoint, an EventBridge schedule rule starts the environment's one small state machine with the
endpoint's static arguments and the event's time. The state machine runs ``python -m mlops_platform.training
monitor`` from the training image as a Processing job (``createProcessingJob.sync``) on a small CPU
instance. Its settings (the thresholds, however many features they name) are one JSON document per
environment, an asset of this stack, passed by URI: SageMaker caps each job argument at 256
characters. The window ends ``monitoring.window_lag_minutes`` before the scheduled time, so capture
files SageMaker writes minutes after their requests are in place. The job reads the window's capture
files, compares them with each variant's baseline (the sibling ``baseline.json`` of the model
pointer's ``model.tar.gz``, or the example model's baseline, an asset of this stack), writes a JSON
and HTML report to the artifacts zone, publishes ``<project>/<env>/Drift`` metrics and a ``Drift
Summary`` event on the default bus. The job's name is derived from the endpoint and the event's time,
so a redelivered event finds its name taken (``ResourceInUse``) and counts as done instead of starting
a second job. Each endpoint's job has a role of its own: its capture prefix, its pointers, its report
prefix, the example baseline, the settings, and nothing of another tenant. With
``monitoring.labels_dataset`` the job also gets ``--labels-uri s3://<raw zone>/raw/<tenant>/<dataset>/``
(model quality from the labels the tenant sends through ingestion as that dataset) and may list and
read that prefix only.

Alarms: per endpoint ``<project>-<env>-drift-<endpoint key>`` on ``DriftDetected >= 1`` with the
dimensions Endpoint, Tenant and Model (the retrain trigger reads Tenant and Model from them). A run
that fails, times out or cannot start notifies the environment's topic.

SageMaker Model Monitor is not an engine here: README.md (Monitoring and retraining) says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.instance_types import has_local_storage
from config.monitoring import Monitoring
from config.naming import Names
from config.schema import EnvironmentConfig
from config.serving import EndpointConfig
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.ingestion import RAW_PREFIX
from mlops_constructs.log_retention import retention_days
from mlops_constructs.model_pointers import construct_id, pointer_name
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource, ignore_redundant_dependency
from mlops_constructs.sagemaker_roles import grant_logs_and_metrics
from mlops_constructs.sagemaker_sync import grant_run_job

# Contracts with the job (mlops_platform/monitoring/job.py), the dashboard and
# the retrain trigger.
DRIFT_DETECTED = "DriftDetected"
SUMMARY_DETAIL_TYPE = "Drift Summary"
MONITORING_PREFIX = "artifacts/monitoring/"
RUNS_PREFIX = "artifacts/runs/"
BASELINE_FILE = "baseline.json"

SETTINGS_FILE = "settings.json"

SAGEMAKER_NAME_MAX = 63
# CreateProcessingJob's AppSpecification.ContainerArguments: at most 100 items of at most 256 characters
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html).
MAX_ARGUMENTS = 100
MAX_ARGUMENT_LENGTH = 256
# A token in an argument is a bucket name (at most 63 characters) or the event's time (20): count it as 63.
TOKEN_ROOM = 63
STRING_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
# ``-YYYYMMDDHHMM``, the event time the state machine appends to an endpoint's job-name stem.
TIME_SUFFIX_LENGTH = 13
VOLUME_SIZE_GB = 20
# Step Functions waits for the job, plus time to start it and to stop it on its runtime limit.
STATE_MACHINE_MARGIN_SECONDS = 900
SAGEMAKER_ERROR = "SageMaker.AmazonSageMakerException"


def bounded_name(stem: str, key: str, room: int = SAGEMAKER_NAME_MAX) -> str:
    """``<stem>-<key>`` when it fits in ``room`` characters, else ``<stem>-<8 hex digits of sha256(key)>``."""
    name = f"{stem}-{key}"
    return name if len(name) <= room else f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def job_stem(names: Names, key: str) -> str:
    """``<project>-<env>-drift-<key>`` (hashed when long): the job name without its ``-YYYYMMDDHHMM``."""
    return bounded_name(names.resource("drift"), key, SAGEMAKER_NAME_MAX - TIME_SUFFIX_LENGTH)


def settings_file(monitoring: Monitoring) -> Path:
    """The job's settings document (``Monitoring.settings_document``) as a file, for an asset of the stack.

    SageMaker caps each ContainerArguments item at 256 characters
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_AppSpecification.html); thresholds
    of a few named features pass that, so they travel as an S3 object whose URI is the argument. The
    same settings give the same bytes, file name and asset hash, whichever machine synthesizes.
    """
    body = (json.dumps(monitoring.settings_document(), sort_keys=True, indent=2) + "\n").encode()
    folder = Path(tempfile.gettempdir()) / "mlops-drift-settings" / hashlib.sha256(body).hexdigest()
    target = folder / SETTINGS_FILE
    if not target.is_file() or target.read_bytes() != body:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{SETTINGS_FILE}.{os.getpid()}"
        partial.write_bytes(body)
        partial.replace(target)  # whole or not at all, should two synths write it at once
    return target


def check_arguments(arguments: list[str], where: str) -> None:
    """Refuse, at synth, arguments SageMaker would refuse at every run: more than 100, or one over 256 characters.

    A token (a bucket name, the event's time) counts as ``TOKEN_ROOM`` characters, its longest value.
    """
    if len(arguments) > MAX_ARGUMENTS:
        raise ValueError(f"{where}: {len(arguments)} job arguments; SageMaker allows at most {MAX_ARGUMENTS}")
    for argument in arguments:
        length = len(STRING_TOKEN.sub("t" * TOKEN_ROOM, argument))
        if length > MAX_ARGUMENT_LENGTH:
            raise ValueError(
                f"{where}: job argument {argument[:60]!r}... can be {length} characters; SageMaker allows "
                f"{MAX_ARGUMENT_LENGTH} (shorten the names it is built from)"
            )


@dataclass(frozen=True)
class DriftMonitorZones:
    capture: s3.IBucket
    artifacts: s3.IBucket
    # Where labels are ingested; needed only with monitoring.labels_dataset.
    raw: s3.IBucket | None = None


class DriftMonitor(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        environment: EnvironmentConfig,
        key: kms.IKey,
        topic: sns.ITopic,
        zones: DriftMonitorZones,
        image: ecr_assets.DockerImageAsset,
        example_baselines: Mapping[str, s3_assets.Asset],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self._names = names
        self._environment = environment
        self._monitoring = environment.monitoring
        self._key = key
        self._topic = topic
        self._zones = zones
        stack = Stack.of(self)
        self._partition, self._region, self._account = stack.partition, stack.region, stack.account
        self.instance_type = self._monitoring.instance_type or environment.instance_types.processing
        serving = environment.serving
        # Only captured traffic can be compared; without capture there is nothing to schedule.
        self.endpoints: dict[str, EndpointConfig] = dict(serving.endpoints) if serving.data_capture_percentage else {}
        self.job_roles: dict[str, iam.Role] = {}
        self.rules: dict[str, events.Rule] = {}
        self.drift_alarms: dict[str, cloudwatch.Alarm] = {}
        self.state_machine: sfn.StateMachine | None = None
        self.settings: s3_assets.Asset | None = None
        if not self.endpoints:
            return
        if self._monitoring.labels_dataset is not None and zones.raw is None:
            raise ValueError(
                f"monitoring.labels_dataset {self._monitoring.labels_dataset!r} needs the raw zone: "
                "pass DriftMonitorZones(raw=...)"
            )
        self._platform(image, example_baselines, removal_policy)

    # -- schedules, state machine and jobs ----------------------------------------------------------

    def _platform(
        self,
        image: ecr_assets.DockerImageAsset,
        example_baselines: Mapping[str, s3_assets.Asset],
        removal_policy: RemovalPolicy,
    ) -> None:
        # One document per environment: the thresholds are the environment's.
        self.settings = s3_assets.Asset(self, "Settings", path=str(settings_file(self._monitoring)))
        for endpoint_key, endpoint in self.endpoints.items():
            self.job_roles[endpoint_key] = self._job_role(endpoint_key, endpoint, image, example_baselines)
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=retention_days(self._environment.retention.log_retention_days),
            encryption_key=self._key,
            removal_policy=removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=(
                f"Runs one drift monitoring job for an endpoint of {self._names.environment}: input from its "
                "schedule rule (endpoint, job_stem, role_arn, time, arguments)"
            ),
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(image)),
            timeout=Duration.seconds(self._monitoring.max_runtime_seconds + STATE_MACHINE_MARGIN_SECONDS),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        ignore_redundant_dependency(self.state_machine)
        self._grant_state_machine()
        for endpoint_key, endpoint in self.endpoints.items():
            self.rules[endpoint_key] = self._schedule_rule(endpoint_key, endpoint, example_baselines)
            self.drift_alarms[endpoint_key] = self._drift_alarm(endpoint_key, endpoint)
        self._failure_alarm()

    def _definition(self, image: ecr_assets.DockerImageAsset) -> sfn.IChainable:
        window = sfn.Pass(
            self,
            "SplitEventTime",
            comment="2026-11-24T23:00:00Z -> [2026, 11, 24, 23, 00, 00]",
            parameters={"parts": sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.time"), "-:TZ")},
            result_path="$.window",
        )
        parts = [sfn.JsonPath.array_get_item(sfn.JsonPath.list_at("$.window.parts"), index) for index in range(5)]
        name = sfn.Pass(
            self,
            "NameJob",
            comment="<job_stem>-YYYYMMDDHHMM: one name per endpoint and window, so a redelivered event starts nothing",
            parameters={"name": sfn.JsonPath.format("{}-{}{}{}{}{}", sfn.JsonPath.string_at("$.job_stem"), *parts)},
            result_path="$.job",
        )
        cluster: dict[str, Any] = {
            "InstanceCount": 1,
            "InstanceType": self.instance_type,
            "VolumeSizeInGB": VOLUME_SIZE_GB,
        }
        if not has_local_storage(self.instance_type):
            # Instance types with local NVMe storage reject a volume key (their disks are hardware-encrypted).
            cluster["VolumeKmsKeyId"] = self._key.key_arn
        monitor = sfn.CustomState(
            self,
            "Monitor",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{self._partition}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": {
                    "ProcessingJobName.$": "$.job.name",
                    "RoleArn.$": "$.role_arn",
                    "AppSpecification": {"ImageUri": image.image_uri, "ContainerArguments.$": "$.arguments"},
                    "ProcessingResources": {"ClusterConfig": cluster},
                    "StoppingCondition": {"MaxRuntimeInSeconds": self._monitoring.max_runtime_seconds},
                    "Environment": {"AWS_DEFAULT_REGION": self._region},
                },
                "ResultPath": sfn.JsonPath.DISCARD,
            },
        )
        done = sfn.Succeed(self, "Monitored")
        why_not_started = (
            sfn.Choice(self, "WhyNotStarted")
            .when(
                sfn.Condition.string_matches("$.error.Cause", "*ResourceInUse*"),
                sfn.Succeed(
                    self, "AlreadyStarted", comment="This endpoint's job for this window exists: a redelivered event"
                ),
            )
            .otherwise(
                sfn.Fail(self, "MonitoringJobRejected", error="MonitoringJobRejected", cause_path="$.error.Cause")
            )
        )
        monitor.add_catch(why_not_started, errors=[SAGEMAKER_ERROR], result_path="$.error")
        monitor.add_catch(
            sfn.Fail(self, "MonitoringJobFailed", error="MonitoringJobFailed", cause_path="$.error.Cause"),
            errors=["States.ALL"],
            result_path="$.error",
        )
        return window.next(name).next(monitor).next(done)

    def _schedule_rule(
        self, key: str, endpoint: EndpointConfig, example_baselines: Mapping[str, s3_assets.Asset]
    ) -> events.Rule:
        names, monitoring, zones = self._names, self._monitoring, self._zones
        endpoint_name = names.resource(key)
        time = events.EventField.time
        arguments: list[str] = [
            "monitor",
            *("--environment", names.environment),
            *("--tenant", endpoint.tenant),
            *("--model", endpoint.model),
            *("--endpoint-name", endpoint_name),
            *("--capture-uri", zones.capture.s3_url_for_object(capture_prefix(endpoint, key))),
            *("--scheduled-time", time),
            *("--window-minutes", str(monitoring.window_minutes)),
            *("--lag-minutes", str(monitoring.window_lag_minutes)),
        ]
        for variant in endpoint.variants:
            arguments += ["--pointer", f"{variant.name}={pointer_name(names, key, variant.name)}"]
        # Each variant's own example model: while its pointer holds the sentinel, its traffic is that model's.
        for variant in endpoint.variants:
            baseline = example_baselines[variant.example_model]
            arguments += ["--example-baseline", f"{variant.name}={baseline.s3_object_url}"]
        arguments += [
            *("--settings", self._settings.s3_object_url),
            *("--report-uri", zones.artifacts.s3_url_for_object(report_prefix(endpoint, endpoint_name))),
            *("--metrics-namespace", names.drift_namespace),
            *("--event-source", names.monitoring_source),
        ]
        if (labels := self._labels_prefix(endpoint)) is not None:
            arguments += ["--labels-uri", self._raw.s3_url_for_object(labels)]
        check_arguments(arguments, f"endpoint {key}")
        return events.Rule(
            self,
            construct_id(key, "Schedule"),
            description=f"Runs the drift monitor of endpoint {endpoint_name} on {monitoring.schedule}",
            schedule=events.Schedule.expression(monitoring.schedule),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,  # type: ignore[arg-type]
                    input=events.RuleTargetInput.from_object(
                        {
                            "endpoint": key,
                            "job_stem": job_stem(names, key),
                            "role_arn": self.job_roles[key].role_arn,
                            "time": time,
                            "arguments": arguments,
                        }
                    ),
                )
            ],
        )

    def _job_role(
        self,
        key: str,
        endpoint: EndpointConfig,
        image: ecr_assets.DockerImageAsset,
        example_baselines: Mapping[str, s3_assets.Asset],
    ) -> iam.Role:
        """The job of one endpoint: its capture, its pointers and baselines, its reports, its metrics and events."""
        names, zones = self._names, self._zones
        endpoint_name = names.resource(key)
        tenant = endpoint.tenant
        role = iam.Role(
            self,
            construct_id(key, "JobRole"),
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Drift monitor jobs of endpoint {endpoint_name}: read capture and baselines, write reports",
        )
        image.repository.grant_pull(role)
        capture = capture_prefix(endpoint, key)
        baselines = f"{RUNS_PREFIX}{tenant}/"
        reports = report_prefix(endpoint, endpoint_name)
        self._read(role, "ReadCapture", zones.capture, capture)
        # ListBucket makes a missing baseline.json a NoSuchKey (a variant without baseline), not AccessDenied.
        self._read(role, "ReadBaselines", zones.artifacts, baselines, objects=f"{baselines}*/{BASELINE_FILE}")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadExampleBaseline",
                actions=["s3:GetObject"],
                resources=[
                    example_baselines[name].bucket.arn_for_objects(example_baselines[name].s3_object_key)
                    for name in sorted({variant.example_model for variant in endpoint.variants})
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadSettings",
                actions=["s3:GetObject"],
                resources=[self._settings.bucket.arn_for_objects(self._settings.s3_object_key)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteReports", actions=["s3:PutObject"], resources=[zones.artifacts.arn_for_objects(f"{reports}*")]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="UsePlatformKeyThroughS3",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self._key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self._region}.amazonaws.com"}},
            )
        )
        if (labels := self._labels_prefix(endpoint)) is not None:
            self._read(role, "ReadLabels", self._raw, labels)
            acknowledge_wildcard_resource(
                role.node.find_child("DefaultPolicy"),
                self._raw.arn_for_objects(f"{labels}*"),
                "Labels are ingested as objects named per upload; the grant stops at the tenant's labels dataset.",
            )
        self._encrypt_volumes(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelPointers",
                actions=["ssm:GetParameter"],
                resources=[self._parameter_arn(pointer_name(names, key, v.name)) for v in endpoint.variants],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutDriftMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource-level permissions: the namespace condition limits it
                conditions={"StringEquals": {"cloudwatch:namespace": names.drift_namespace}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutDriftSummaries",
                actions=["events:PutEvents"],
                resources=[f"arn:{self._partition}:events:{self._region}:{self._account}:event-bus/default"],
                conditions={
                    "StringEquals": {
                        "events:source": names.monitoring_source,
                        "events:detail-type": SUMMARY_DETAIL_TYPE,
                    }
                },
            )
        )
        log_group = grant_logs_and_metrics(
            role,
            log_group_name="/aws/sagemaker/ProcessingJobs",
            namespaces=["/aws/sagemaker/ProcessingJobs"],
            sids=("WriteJobLogs", "PutJobMetrics"),
        )
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy,
            zones.capture.arn_for_objects(f"{capture}*"),
            "SageMaker names capture files by endpoint, variant and hour; the grant stops at this endpoint's prefix.",
        )
        acknowledge_wildcard_resource(
            policy,
            zones.artifacts.arn_for_objects(f"{baselines}*/{BASELINE_FILE}"),
            f"Baselines sit beside model artifacts named per training run; the grant stops at tenant {tenant}'s "
            "baseline.json objects.",
        )
        acknowledge_wildcard_resource(
            policy,
            zones.artifacts.arn_for_objects(f"{reports}*"),
            "Reports are named per window; the grant stops at this endpoint's report prefix.",
        )
        acknowledge_wildcard_resource(
            policy,
            f"{log_group}:*",
            "SageMaker writes job logs to streams of its own log group /aws/sagemaker/ProcessingJobs, named per job.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions; "
            "metrics are limited to the drift and Processing job namespaces by condition.",
        )
        return role

    def _grant_state_machine(self) -> None:
        """What the hand-written ``.sync`` state needs: AWS's policy for it, on this environment's drift jobs.

        CDK has no Processing job task; mlops_constructs/sagemaker_sync.py holds the documented statements
        (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html).
        """
        assert self.state_machine is not None
        role = self.state_machine.role
        jobs = self._sagemaker_arn("processing-job", f"{self._names.resource('drift')}-*")
        grant_run_job(self, role, job="ProcessingJob", jobs=[jobs], job_roles=list(self.job_roles.values()))
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy, jobs, "Drift job names are derived per endpoint and window; the grant stops at their prefix."
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing and CloudWatch Logs delivery of the state machine support no resource-level permissions; "
            "sagemaker:ListTags on * is AWS's policy for the SageMaker .sync integration.",
        )

    def _drift_alarm(self, key: str, endpoint: EndpointConfig) -> cloudwatch.Alarm:
        endpoint_name = self._names.resource(key)
        alarm = cloudwatch.Alarm(
            self,
            construct_id(key, "DriftAlarm"),
            alarm_name=self._names.drift_alarm(key),
            alarm_description=(
                f"The drift monitor found drift on endpoint {endpoint_name} (tenant {endpoint.tenant}, model "
                f"{endpoint.model}); reports: the artifacts zone's {report_prefix(endpoint, endpoint_name)}"
            ),
            metric=cloudwatch.Metric(
                namespace=self._names.drift_namespace,
                metric_name=DRIFT_DETECTED,
                dimensions_map={"Endpoint": endpoint_name, "Tenant": endpoint.tenant, "Model": endpoint.model},
                statistic="Maximum",
                # One data point per run: the period is the interval between runs.
                period=Duration.minutes(self._monitoring.window_minutes),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            # A run publishes DriftDetected 0 or 1, empty windows included; no data means no run (its failure alarms).
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self._topic))
        return alarm

    def _failure_alarm(self) -> None:
        """Runs that fail, time out or are aborted, and schedules that could not start a run."""
        assert self.state_machine is not None
        period = Duration.minutes(5)
        metrics: dict[str, cloudwatch.IMetric] = {
            "failed": self.state_machine.metric_failed(period=period, statistic="Sum"),
            "timedOut": self.state_machine.metric_timed_out(period=period, statistic="Sum"),
            "aborted": self.state_machine.metric_aborted(period=period, statistic="Sum"),
        }
        for index, rule in enumerate(self.rules.values()):
            metrics[f"notStarted{index}"] = cloudwatch.Metric(
                namespace="AWS/Events",
                metric_name="FailedInvocations",
                dimensions_map={"RuleName": rule.rule_name},
                statistic="Sum",
                period=period,
            )
        alarm_above_zero(
            self,
            self._topic,
            {
                "RunFailedAlarm": (
                    f"A drift monitoring run of {self._names.environment} failed, timed out, was aborted or could not "
                    "start (see the drift monitor state machine's executions)",
                    cloudwatch.MathExpression(
                        expression=" + ".join(f"FILL({id}, 0)" for id in metrics),
                        using_metrics=metrics,
                        period=period,
                        label="Failed drift monitoring runs",
                    ),
                )
            },
        )

    # -- helpers --------------------------------------------------------------------------------------

    @property
    def _settings(self) -> s3_assets.Asset:
        assert self.settings is not None  # made first in _platform
        return self.settings

    @property
    def _raw(self) -> s3.IBucket:
        assert self._zones.raw is not None  # checked in __init__ whenever labels are configured
        return self._zones.raw

    def _labels_prefix(self, endpoint: EndpointConfig) -> str | None:
        """``raw/<tenant>/<labels dataset>/``, where the tenant's labels are ingested, or None without labels."""
        dataset = self._monitoring.labels_dataset
        return None if dataset is None else f"{RAW_PREFIX}{endpoint.tenant}/{dataset}/"

    def _read(self, role: iam.Role, sid: str, bucket: s3.IBucket, prefix: str, objects: str | None = None) -> None:
        """GetObject on ``objects`` (default: everything under ``prefix``) and ListBucket under ``prefix`` only."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid=sid, actions=["s3:GetObject"], resources=[bucket.arn_for_objects(objects or f"{prefix}*")]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid=f"List{sid.removeprefix('Read')}",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )

    def _encrypt_volumes(self, role: iam.Role) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptVolumes",
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[self._key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )

    def _parameter_arn(self, name: str) -> str:
        return f"arn:{self._partition}:ssm:{self._region}:{self._account}:parameter{name}"

    def _sagemaker_arn(self, resource: str, name: str) -> str:
        return f"arn:{self._partition}:sagemaker:{self._region}:{self._account}:{resource}/{name}"


def capture_prefix(endpoint: EndpointConfig, key: str) -> str:
    """``capture/<tenant>/<endpoint key>/``: where the endpoint captures (mlops_constructs/endpoint.py)."""
    return f"capture/{endpoint.tenant}/{key}/"


def report_prefix(endpoint: EndpointConfig, endpoint_name: str) -> str:
    """``artifacts/monitoring/<tenant>/<endpoint name>/``: the monitor's reports."""
    return f"{MONITORING_PREFIX}{endpoint.tenant}/{endpoint_name}/"
