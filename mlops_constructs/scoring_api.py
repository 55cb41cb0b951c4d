"""The scoring API: synchronous and asynchronous scoring of the environment's endpoints (seed 001).

Every endpoint has its own resources, named by its key, so that IAM can scope a caller to a tenant's endpoints:

* ``POST /endpoints/<endpoint>/score`` scores at once through the endpoint and names the variant that served.
* ``POST /endpoints/<endpoint>/score/async`` answers 202 with a tracking id; the request goes through an SQS
  queue (with a dead-letter queue) to a worker that scores it and stores the result, with the caller's
  principal, in the async-results table (Foundation).
* ``GET /endpoints/<endpoint>/results/{id}`` returns the status or the result to the principal that submitted
  it; any other id, or another principal's, gets 404.

Every method is authenticated with IAM (SigV4): callers need ``execute-api:Invoke`` on it, and each tenant has
a managed policy (``policies``) that allows exactly its endpoints' methods: ``arn:<partition>:execute-api:
<region>:<account>:<api-id>/v1/<METHOD>/endpoints/<endpoint>/...`` (API Gateway developer guide, "Control
access for invoking an API": https://docs.aws.amazon.com/apigateway/latest/developerguide/
api-gateway-control-access-using-iam-policies-to-invoke-api.html).

Throttling is per endpoint: each endpoint's methods carry their own rate and burst in the stage's method
settings, so one tenant's burst spends its own endpoint's tokens and leaves the others' alone (API Gateway
developer guide, "Throttle requests to your REST APIs": https://docs.aws.amazon.com/apigateway/latest/
developerguide/api-gateway-request-throttling.html). Literal resources per endpoint, rather than one
``{endpoint}`` path parameter, are what make that possible: method settings are keyed by resource path, and
one parameterized resource would be one bucket for every tenant. A usage plan per tenant would throttle per
API key instead: callers would carry a key besides their SigV4 signature, keys are not authentication, and a
tenant's limit would follow whoever holds its key rather than the endpoint it scores.

Bodies are validated against a JSON schema (per endpoint: its variants) before a Lambda runs, and access logs
go to an encrypted log group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
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
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.queues import dead_letter_queue, encrypted_queue
from mlops_constructs.tenant_ids import tenant_id

# One message can take ~70 s (two endpoint attempts); a batch of one keeps a timeout from losing others.
WORKER_TIMEOUT_SECONDS = 90
MAX_RECEIVE_COUNT = 3
STAGE = "v1"


ROW_VALUE_TYPES = (
    apigateway.JsonSchemaType.NUMBER,
    apigateway.JsonSchemaType.STRING,
    apigateway.JsonSchemaType.BOOLEAN,
    apigateway.JsonSchemaType.NULL,
)


def endpoint_paths(endpoint: str) -> dict[str, tuple[str, str]]:
    """Each method of an endpoint: name -> (HTTP method, resource path). The IAM resource of a call is the
    request's own path, so ``results/*`` stands for every ``{id}`` of that endpoint and nothing else."""
    return {
        "score": ("POST", f"/endpoints/{endpoint}/score"),
        "submit": ("POST", f"/endpoints/{endpoint}/score/async"),
        "result": ("GET", f"/endpoints/{endpoint}/results/{{id}}"),
    }


def request_schema(max_instances: int, variants: list[str]) -> apigateway.JsonSchema:
    """The body of an endpoint's scoring methods; API Gateway refuses anything else with 400 before a Lambda runs.
    No ``endpoint`` key: the endpoint is the path's, and a body naming one is refused.

    A row is what the inference server reads: an array of values in feature order, or an object of feature
    name to value; a value is a number, a string (a category), a boolean or null (missing), never an array
    or an object, so a body nests three levels at most. The handler checks what a draft-4 schema cannot
    (rows of one kind and one length, finite numbers): mlops_platform/serving/api/request.py. API Gateway
    models are JSON Schema draft 4 (https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-create-model.html),
    where ``type`` may list several types and ``items`` applies to arrays only, ``additionalProperties``
    to objects only (https://datatracker.ietf.org/doc/html/draft-fge-json-schema-validation-00, 5.5.2).
    """
    value = apigateway.JsonSchema(type=list(ROW_VALUE_TYPES))
    return apigateway.JsonSchema(
        schema=apigateway.JsonSchemaVersion.DRAFT4,
        title="ScoreRequest",
        type=apigateway.JsonSchemaType.OBJECT,
        required=["instances"],
        additional_properties=False,
        properties={
            "instances": apigateway.JsonSchema(
                type=apigateway.JsonSchemaType.ARRAY,
                min_items=1,
                max_items=max_instances,
                items=apigateway.JsonSchema(
                    type=[apigateway.JsonSchemaType.ARRAY, apigateway.JsonSchemaType.OBJECT],
                    min_items=1,
                    items=value,
                    min_properties=1,
                    additional_properties=value,
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
        endpoint_tenants: Mapping[str, str],
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
        # Not SqsEventSource: its grant adds kms:Decrypt on the platform key with no condition. The worker reads
        # the queue with the actions of Lambda's SQS execution role and the key only through SQS
        # (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions); Lambda checks
        # them when it creates the mapping, hence the dependency on the role's policy.
        consume = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
        self._allow(self.worker, "ConsumeRequests", consume, self.queue.queue_arn, key, "sqs")
        mapping = lambda_.EventSourceMapping(
            self,
            "WorkerQueueMapping",
            target=self.worker.function,
            event_source_arn=self.queue.queue_arn,
            batch_size=1,
            report_batch_item_failures=True,
        )
        mapping.node.add_dependency(self.worker.role.node.find_child("DefaultPolicy"))
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
        # Each endpoint's methods get the limits of their own; with the stage's defaults (the same values)
        # for anything else. Logging and metrics are repeated on each: a method's settings replace the stage's.
        per_endpoint = apigateway.MethodDeploymentOptions(
            throttling_rate_limit=settings.throttle_rate_limit,
            throttling_burst_limit=settings.throttle_burst_limit,
            metrics_enabled=True,
            logging_level=apigateway.MethodLoggingLevel.ERROR,
            data_trace_enabled=False,
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
                stage_name=STAGE,
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
                # Keyed "<resource path>/<METHOD>": https://docs.aws.amazon.com/AWSCloudFormation/latest/
                # TemplateReference/aws-properties-apigateway-stage-methodsetting.html
                method_options={
                    f"{path}/{method}": per_endpoint
                    for endpoint_key in sorted(endpoint_names)
                    for method, path in endpoint_paths(endpoint_key).values()
                },
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies are customers' data
            ),
            default_method_options=apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM),
        )
        validator = self.api.add_request_validator(
            "Validate", validate_request_body=True, validate_request_parameters=True
        )
        # One permission for the whole API rather than two per method: the function's resource policy
        # (20 KB) would otherwise cap the number of endpoints. It names this API's ARN only.
        integration = apigateway.LambdaIntegration(self.api_function.function, scope_permission_to_method=False)
        endpoints = self.api.root.add_resource("endpoints")
        for endpoint_key in sorted(endpoint_names):
            body = self.api.add_model(
                f"ScoreRequest{tenant_id(endpoint_key)}",  # letters and digits only, like a tenant's ID part
                content_type="application/json",
                schema=request_schema(settings.max_instances, sorted(variant_names.get(endpoint_key, ()))),
            )
            body_options = {"request_models": {"application/json": body}, "request_validator": validator}
            resource = endpoints.add_resource(endpoint_key)
            score = resource.add_resource("score")
            score.add_method("POST", integration, **body_options)  # type: ignore[arg-type]
            score.add_resource("async").add_method("POST", integration, **body_options)  # type: ignore[arg-type]
            resource.add_resource("results").add_resource("{id}").add_method(
                "GET",
                integration,
                request_parameters={"method.request.path.id": True},
                request_validator=validator,
            )
        self.policies = self._tenant_policies(endpoint_tenants)
        self._acknowledge()

    def _tenant_policies(self, endpoint_tenants: Mapping[str, str]) -> dict[str, iam.ManagedPolicy]:
        """A managed policy per tenant: ``execute-api:Invoke`` on exactly its endpoints' methods, for its callers."""
        tenants: dict[str, list[str]] = {}
        for key, tenant in sorted(endpoint_tenants.items()):
            tenants.setdefault(tenant, []).append(key)
        policies = {}
        for tenant, keys in sorted(tenants.items()):
            resources = [
                self.api.arn_for_execute_api(method, path.replace("{id}", "*"), STAGE)
                for key in keys
                for method, path in endpoint_paths(key).values()
            ]
            policy = iam.ManagedPolicy(
                self,
                f"Callers{tenant_id(tenant)}",
                description=f"Lets a caller of tenant {tenant} score its endpoints ({', '.join(keys)}) and read "
                "the results it submitted; no other tenant's",
                statements=[
                    iam.PolicyStatement(sid="ScoreOwnEndpoints", actions=["execute-api:Invoke"], resources=resources)
                ],
            )
            for key in keys:
                acknowledge_wildcard_resource(
                    policy,
                    self.api.arn_for_execute_api("GET", f"/endpoints/{key}/results/*", STAGE),
                    "The wildcard is the tracking id of a result of this one endpoint; the API answers only the "
                    "principal that submitted it.",
                )
            policies[tenant] = policy
        return policies

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
