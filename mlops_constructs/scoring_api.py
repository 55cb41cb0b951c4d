"""The scoring API: synchronous and asynchronous scoring of the environment's endpoints (seed 001).

* ``POST /score`` scores at once through the endpoint and names the variant that served.
* ``POST /score/async`` answers 202 with a tracking id; the request goes through an SQS queue
  (with a dead-letter queue) to a worker that scores it and stores the result in the async-results
  table (Foundation).
* ``GET /score/{id}`` returns the status or the result; an unknown id gets 404.

Every method is authenticated with IAM (SigV4): callers need ``execute-api:Invoke`` on it. Bodies
are validated against a JSON schema before a Lambda runs, the stage is throttled, and access logs
go to an encrypted log group. API keys could meter clients with a usage plan, but they are not
authentication, so none are issued here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from config.naming import Names
from config.serving import ScoringApi as ScoringApiSettings
from mlops_constructs.alarms import alarm_above_zero
from mlops_constructs.encryption import key_used_through
from mlops_constructs.endpoint import endpoint_arn
from mlops_constructs.functions import PlatformFunction, platform_function
from mlops_constructs.log_retention import encrypted_log_group
from mlops_constructs.nag import acknowledge
from mlops_constructs.queues import dead_letter_queue, encrypted_queue

# One message can take ~70 s (two endpoint attempts); a batch of one keeps a timeout from losing others.
WORKER_TIMEOUT_SECONDS = 90
MAX_RECEIVE_COUNT = 3


def request_schema(endpoints: list[str], max_instances: int, variants: list[str]) -> apigateway.JsonSchema:
    """The body of both scoring methods; API Gateway refuses anything else with 400 before a Lambda runs."""
    return apigateway.JsonSchema(
        schema=apigateway.JsonSchemaVersion.DRAFT4,
        title="ScoreRequest",
        type=apigateway.JsonSchemaType.OBJECT,
        required=["endpoint", "instances"],
        additional_properties=False,
        properties={
            "endpoint": apigateway.JsonSchema(type=apigateway.JsonSchemaType.STRING, enum=list(endpoints)),
            "instances": apigateway.JsonSchema(
                type=apigateway.JsonSchemaType.ARRAY,
                min_items=1,
                max_items=max_instances,
                items=apigateway.JsonSchema(
                    type=apigateway.JsonSchemaType.ARRAY,
                    min_items=1,
                    items=apigateway.JsonSchema(type=apigateway.JsonSchemaType.NUMBER),
                ),
            ),
            "explain": apigateway.JsonSchema(type=apigateway.JsonSchemaType.BOOLEAN),
            # One variant only, whatever the weights (TargetVariant); the handler checks it is the endpoint's.
            "variant": apigateway.JsonSchema(type=apigateway.JsonSchemaType.STRING, enum=list(variants)),
        },
    )


class ScoringApi(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        names: Names,
        settings: ScoringApiSettings,
        endpoint_names: Mapping[str, str],
        variant_names: Mapping[str, Sequence[str]],
        results: dynamodb.ITableV2,
        key: kms.IKey,
        topic: sns.ITopic,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        endpoint_arns = [endpoint_arn(self, name) for name in endpoint_names.values()]
        self.dead_letter_queue = dead_letter_queue(self, "DeadLetterQueue", key=key)
        self.queue = encrypted_queue(
            self,
            "Requests",
            key=key,
            # Lambda's guidance: at least six times the function timeout, so retries do not overlap.
            visibility_timeout=Duration.seconds(6 * WORKER_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
        )
        common = {
            "names": names,
            "key": key,
            "log_retention_days": log_retention_days,
            "removal_policy": removal_policy,
        }
        endpoints_json = json.dumps(dict(endpoint_names), sort_keys=True, separators=(",", ":"))
        variants_json = json.dumps(
            {key: list(names) for key, names in variant_names.items()}, sort_keys=True, separators=(",", ":")
        )
        self.api_function = platform_function(
            self,
            "Api",
            folder="scoring",
            description="Scoring API: synchronous scores, asynchronous submissions and their results",
            role_description="Scoring API: invoke the environment's endpoints, queue requests, read results",
            environment={
                "ENDPOINTS": endpoints_json,
                "VARIANTS": variants_json,
                "RESULTS_TABLE": results.table_name,
                "REQUESTS_QUEUE_URL": self.queue.queue_url,
                "RESULT_TTL_DAYS": str(settings.result_ttl_days),
                "MAX_INSTANCES": str(settings.max_instances),
            },
            timeout_seconds=30,
            **common,  # type: ignore[arg-type]
        )
        self.worker = platform_function(
            self,
            "Worker",
            folder="scoring",
            handler="worker.handler",
            description="Scores queued asynchronous requests and stores their results",
            role_description="Scoring worker: invoke the environment's endpoints, store results, quarantine",
            environment={
                "ENDPOINTS": endpoints_json,
                "VARIANTS": variants_json,
                "RESULTS_TABLE": results.table_name,
                "MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
                "MAX_INSTANCES": str(settings.max_instances),
                "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue.queue_url,
            },
            timeout_seconds=WORKER_TIMEOUT_SECONDS,
            **common,  # type: ignore[arg-type]
        )
        for function in (self.api_function, self.worker):
            self._invoke(function, endpoint_arns)
        self._allow(self.api_function, "Results", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                    results.table_arn, key, "dynamodb")  # fmt: skip
        self._allow(
            self.worker, "Results", ["dynamodb:GetItem", "dynamodb:UpdateItem"], results.table_arn, key, "dynamodb"
        )
        self._allow(self.api_function, "Queue", ["sqs:SendMessage"], self.queue.queue_arn, key, "sqs")
        self._allow(self.worker, "Quarantine", ["sqs:SendMessage"], self.dead_letter_queue.queue_arn, key, "sqs")
        self.worker.function.add_event_source(
            event_sources.SqsEventSource(self.queue, batch_size=1, report_batch_item_failures=True)
        )
        alarm_above_zero(
            self,
            topic,
            {
                "DeadLetterAlarm": (
                    "Asynchronous scoring requests were quarantined or gave up: read their reason attribute",
                    self.dead_letter_queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                ),
                "ApiErrorsAlarm": (
                    "The scoring API function failed",
                    self.api_function.function.metric_errors(period=Duration.minutes(5)),
                ),
                "WorkerErrorsAlarm": (
                    "The scoring worker failed",
                    self.worker.function.metric_errors(period=Duration.minutes(5)),
                ),
            },
        )

        access_logs = encrypted_log_group(
            self, "AccessLogs", key=key, log_retention_days=log_retention_days, removal_policy=removal_policy
        )
        self.api = apigateway.RestApi(
            self,
            "RestApi",
            rest_api_name=names.resource("scoring"),
            description=f"ML platform {names.environment}: scoring API (IAM-authenticated)",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # API Gateway logs (access and execution) through one CloudWatch Logs role per account and
            # region, an account-wide setting: one environment owns it, and keeps it if its stack goes.
            cloud_watch_role=settings.owns_account_logging_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name="v1",
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                throttling_rate_limit=settings.throttle_rate_limit,
                throttling_burst_limit=settings.throttle_burst_limit,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies are customers' data
            ),
            default_method_options=apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM),
        )
        body = self.api.add_model(
            "ScoreRequest",
            content_type="application/json",
            schema=request_schema(
                sorted(endpoint_names),
                settings.max_instances,
                sorted({name for names in variant_names.values() for name in names}),
            ),
        )
        validator = self.api.add_request_validator(
            "Validate", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigateway.LambdaIntegration(self.api_function.function)
        score = self.api.root.add_resource("score")
        body_options = {"request_models": {"application/json": body}, "request_validator": validator}
        score.add_method("POST", integration, **body_options)  # type: ignore[arg-type]
        score.add_resource("async").add_method("POST", integration, **body_options)  # type: ignore[arg-type]
        score.add_resource("{id}").add_method(
            "GET",
            integration,
            request_parameters={"method.request.path.id": True},
            request_validator=validator,
        )
        self._acknowledge()

    @staticmethod
    def _allow(
        function: PlatformFunction, sid: str, actions: list[str], resource: str, key: kms.IKey, service: str
    ) -> None:
        """``actions`` on one resource, and the platform key only through that resource's service."""
        function.role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=[resource]))
        key_actions = ["kms:Decrypt", "kms:GenerateDataKey"]
        function.role.add_to_policy(key_used_through(function.role, key, service, key_actions, sid=f"{sid}Key"))

    def _invoke(self, function: PlatformFunction, endpoint_arns: list[str]) -> None:
        if endpoint_arns:
            function.role.add_to_policy(
                iam.PolicyStatement(
                    sid="InvokeEndpoints", actions=["sagemaker:InvokeEndpoint"], resources=endpoint_arns
                )
            )

    def _acknowledge(self) -> None:
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "Callers are authenticated with IAM and throttled per stage; a WAF web ACL is an account-level "
            "choice of the platform team (README, Scoring API).",
        )
        if self.api.node.try_find_child("CloudWatchRole"):
            acknowledge(
                self.api.node.find_child("CloudWatchRole"),
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-wide logging role uses the AWS-managed policy made for it (logs only).",
            )
        for method in self.api.methods:
            acknowledge(
                method,
                "AwsSolutions-COG4",
                "The API uses IAM (SigV4) authorization: callers are AWS principals, not Cognito users.",
            )
