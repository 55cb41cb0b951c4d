"""The environment's CloudWatch dashboard, ``<project>-<env>``: serving, training, drift and queues on one page.

* Serving, per endpoint and variant: invocations, 4XX/5XX invocation errors and model latency (p50,
  p99) from ``AWS/SageMaker``; and the share of traffic each variant gets now. SageMaker publishes
  no weight metric, so the weights resource publishes the weights it finds in place after every
  deploy (``VariantTrafficShare`` in ``<project>/<env>``, lambda/variant_weights); the widget shows
  each variant's latest value, looked up as far back as CloudWatch keeps hourly data.
* Training: the state machine's executions and their outcome (``AWS/States``), the retrain trigger's
  decisions, and the best objective metric of each tenant's runs over time (``BestObjective``, see
  ``BEST_OBJECTIVE``).
* Drift, per endpoint: per-feature PSI and KS (search expressions, so new features appear by
  themselves), ``DriftDetected`` and the prediction PSI per variant, with the configured thresholds.
* Queues: the visible messages of every queue and dead-letter queue of the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from config.monitoring import Monitoring
from config.naming import Names
from config.serving import EndpointConfig, Serving
from config.tenants import PipelineConfig
from mlops_constructs.retrain_trigger import DECISION_METRICS, SERVICE

# The evaluate function's metric of a run's best trial (namespace ``<project>/<env>``, dimensions
# Tenant, Model, Metric; Powertools adds ``service``). Searched without a dimension schema, so the
# graph holds whatever other dimensions it is published with.
BEST_OBJECTIVE = "BestObjective"
# The drift monitor's metrics (namespace ``<project>/<env>/Drift``), every one with the dimensions
# Endpoint, Tenant and Model; per feature also Feature, per variant also Variant.
DRIFT_DETECTED = "DriftDetected"
FEATURE_METRICS = ("FeaturePSI", "FeatureKS")
PREDICTION_PSI = "PredictionPSI"
SAGEMAKER = "AWS/SageMaker"
# The weights resource's metric of each variant's share of traffic, in percent (dimensions EndpointName,
# VariantName), published on every deploy: weeks can pass between two points.
TRAFFIC_SHARE = "VariantTrafficShare"
# CloudWatch keeps hourly data points for 455 days: the latest weights are found if any deploy published them.
WEIGHTS_RANGE = "-P455D"
FULL_WIDTH = 24
HEIGHT = 6
LONG_RANGE = "-P30D"  # training and objective graphs: runs are days apart


@dataclass(frozen=True)
class QueueDepth:
    """A queue shown on the dashboard, under a label people recognise."""

    label: str
    queue: sqs.IQueue
    dead_letter: bool = False


def search(term: str, statistic: str, period: Duration, label: str = "") -> cloudwatch.MathExpression:
    """A SEARCH expression: one line per metric found, labelled by CloudWatch (``label`` prefixes it)."""
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{term}', '{statistic}', {int(period.to_seconds())})", label=label, period=period
    )


class PlatformDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        serving: Serving,
        monitoring: Monitoring,
        pipelines: Sequence[PipelineConfig],
        state_machine: sfn.IStateMachine,
        queues: Sequence[QueueDepth],
    ) -> None:
        super().__init__(scope, id)
        self._names = names
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            # A contract name: runbooks and alarm descriptions point people at it.
            dashboard_name=names.prefix,
            default_interval=Duration.days(1),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# ML platform {names.environment}\n"
                    "Serving per endpoint and variant, training and its triggers, drift per feature, queues. "
                    "Retraining decisions are in the run ledger (`TRIGGER#<tenant>` items)."
                ),
                width=FULL_WIDTH,
                height=2,
            )
        )
        for key, endpoint in serving.endpoints.items():
            self._serving_row(key, endpoint)
        self._training_rows(pipelines, state_machine)
        for key, endpoint in serving.endpoints.items():
            self._drift_row(key, endpoint, monitoring)
        self._queue_row(queues)

    def _serving_row(self, key: str, endpoint: EndpointConfig) -> None:
        name = self._names.resource(key)
        period = Duration.minutes(1)

        def metric(metric_name: str, variant: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=SAGEMAKER,
                metric_name=metric_name,
                dimensions_map={"EndpointName": name, "VariantName": variant},
                statistic=statistic,
                period=period,
                label=label,
            )

        variants = [variant.name for variant in endpoint.variants]
        shares = [
            cloudwatch.Metric(
                namespace=self._names.metrics_namespace,
                metric_name=TRAFFIC_SHARE,
                dimensions_map={"EndpointName": name, "VariantName": variant},
                # Hourly: data older than 63 days is only kept per hour. Two deploys in one hour show their
                # average until the next deploy; CloudWatch has no "last value" statistic.
                statistic="Average",
                period=Duration.hours(1),
                label=f"{variant} (% of traffic)",
            )
            for variant in variants
        ]
        self.dashboard.add_widgets(
            cloudwatch.SingleValueWidget(
                title=f"{name}: traffic share per variant, as last applied",
                metrics=shares,
                start=WEIGHTS_RANGE,
                width=6,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: invocations per variant",
                left=[metric("Invocations", v, "Sum", v) for v in variants],
                width=6,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: invocation errors per variant",
                left=[
                    *(metric("Invocation5XXErrors", v, "Sum", f"{v} 5XX") for v in variants),
                    *(metric("Invocation4XXErrors", v, "Sum", f"{v} 4XX") for v in variants),
                ],
                width=6,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: model latency per variant (microseconds)",
                left=[metric("ModelLatency", v, p, f"{v} {p}") for v in variants for p in ("p50", "p99")],
                width=6,
                height=HEIGHT,
            ),
        )

    def _training_rows(self, pipelines: Sequence[PipelineConfig], state_machine: sfn.IStateMachine) -> None:
        hour = Duration.hours(1)
        executions = [
            state_machine.metric_started(period=hour, statistic="Sum", label="Started"),
            state_machine.metric_succeeded(period=hour, statistic="Sum", label="Succeeded"),
            state_machine.metric_failed(period=hour, statistic="Sum", label="Failed"),
            state_machine.metric_timed_out(period=hour, statistic="Sum", label="Timed out"),
            state_machine.metric_aborted(period=hour, statistic="Sum", label="Aborted"),
        ]
        decisions = [
            cloudwatch.Metric(
                namespace=self._names.metrics_namespace,
                metric_name=metric_name,
                dimensions_map={"service": SERVICE},
                statistic="Sum",
                period=hour,
                label=metric_name,
            )
            for metric_name in DECISION_METRICS
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Training executions and their outcome",
                left=executions,
                start=LONG_RANGE,
                width=12,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Retrain trigger decisions (the run ledger has their evidence)",
                left=decisions,
                start=LONG_RANGE,
                width=12,
                height=HEIGHT,
            ),
        )
        day = Duration.days(1)
        objectives = [
            search(
                f'Namespace="{self._names.metrics_namespace}" MetricName="{BEST_OBJECTIVE}" Tenant="{pipeline.tenant}"',
                # The best value of a day's runs, in the objective's own direction.
                "Maximum" if pipeline.objective.direction == "maximize" else "Minimum",
                day,
                label=f"{pipeline.tenant} ({pipeline.objective.metric}, {pipeline.objective.direction})",
            )
            for pipeline in sorted(pipelines, key=lambda pipeline: pipeline.tenant)
        ]
        if objectives:
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title="Best objective metric per tenant",
                    left=objectives,
                    start=LONG_RANGE,
                    width=FULL_WIDTH,
                    height=HEIGHT,
                )
            )

    def _drift_row(self, key: str, endpoint: EndpointConfig, monitoring: Monitoring) -> None:
        name = self._names.resource(key)
        namespace = self._names.drift_namespace
        # One data point per monitoring run.
        period = Duration.minutes(monitoring.window_minutes)
        thresholds = monitoring.thresholds
        feature_schema = f"{{{namespace},Endpoint,Feature,Model,Tenant}}"
        variant_schema = f"{{{namespace},Endpoint,Model,Tenant,Variant}}"
        widgets: list[cloudwatch.IWidget] = []
        for metric_name, threshold in zip(
            FEATURE_METRICS, (thresholds.default.psi, thresholds.default.ks_statistic), strict=True
        ):
            widgets.append(
                cloudwatch.GraphWidget(
                    title=f"{name}: {metric_name} per feature",
                    left=[search(f'{feature_schema} MetricName="{metric_name}" Endpoint="{name}"', "Maximum", period)],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(value=float(threshold), label="default threshold")
                    ],
                    width=8,
                    height=HEIGHT,
                )
            )
        widgets.append(
            cloudwatch.GraphWidget(
                title=f"{name}: drift detected and prediction PSI per variant",
                left=[
                    cloudwatch.Metric(
                        namespace=namespace,
                        metric_name=DRIFT_DETECTED,
                        dimensions_map={"Endpoint": name, "Tenant": endpoint.tenant, "Model": endpoint.model},
                        statistic="Maximum",
                        period=period,
                        label=DRIFT_DETECTED,
                    )
                ],
                right=[search(f'{variant_schema} MetricName="{PREDICTION_PSI}" Endpoint="{name}"', "Maximum", period)],
                right_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=float(thresholds.prediction_psi), label="prediction PSI threshold"
                    )
                ],
                width=8,
                height=HEIGHT,
            )
        )
        self.dashboard.add_widgets(*widgets)

    def _queue_row(self, queues: Sequence[QueueDepth]) -> None:
        def depth(queue: QueueDepth) -> cloudwatch.Metric:
            return queue.queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum", label=queue.label
            )

        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queue depths (messages visible)",
                left=[depth(queue) for queue in queues if not queue.dead_letter],
                width=12,
                height=HEIGHT,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue depths (anything above 0 waits for a person)",
                left=[depth(queue) for queue in queues if queue.dead_letter],
                width=12,
                height=HEIGHT,
            ),
        )
