"""One SageMaker endpoint with weighted A/B variants, built from L1 resources (README, "Serving").

Why each piece is the way it is (../shared/AWS-FACTS.md, "SageMaker hosting"):

* **Models from pointers.** Each variant's artifact is its model pointer's value, read by
  CloudFormation at deploy time (an SSM-typed parameter); the sentinel ``example`` selects the
  asset of the shipped example model that the variant's ``example_model`` names. Synth never reads
  the value, so templates stay deterministic, and a promotion reaches the endpoint at the next
  deploy as a new model and endpoint config.
* **Weights in place.** The endpoint config carries fixed initial weights, so a weight change never
  replaces it (every ``UpdateEndpoint`` provisions a whole new fleet, GPU quota included). A
  ``Custom::VariantWeights`` resource applies the effective weights with
  ``UpdateEndpointWeightsAndCapacities``; its properties include the endpoint config's name, so it
  re-applies them after every replacement.
* **Retained properties.** ``RetainAllVariantProperties`` keeps the live ``DesiredWeight`` and the
  ``DesiredInstanceCount`` that autoscaling chose (aws/aws-cdk#23151); ``DataCaptureConfig`` is
  excluded, so capture changes from config apply. The exclusion list belongs to the whole endpoint,
  so the instance count is excluded too, and config's ``initial_instance_count`` applies at every
  update, only where no variant is autoscaled: with a scaling target, autoscaling owns the count.
* **Safe rollout.** An update that keeps the live variant names deploys blue/green (a canary, or
  all at once, then a baking period) and rolls back automatically on the endpoint's two rollback
  alarms; one that adds or removes a variant cannot use guardrails and deploys all at once
  (config/deployed.py decides from the record). Two alarms per endpoint, whatever its variant count,
  stay within ``AutoRollbackConfiguration``'s 10: each is metric math over every variant (at most
  10 metrics, the limit of a math alarm; config allows 10 variants).
* **Stable name.** The endpoint is named ``<project>-<env>-<endpoint>``: the alarms, scaling targets
  and rollback configuration refer to it, and a generated name would make a cycle with the alarms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import (
    Annotations,
    CfnCondition,
    CfnOutput,
    CfnParameter,
    CustomResource,
    Duration,
    Fn,
    Stack,
)
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from config.instance_types import has_local_storage
from config.naming import Names
from config.serving import EndpointConfig, Serving, VariantConfig
from mlops_constructs.endpoint_rollout import (
    deployment_config,
    grant_describe_alarms,
    rollback_alarm_names,
    rollback_alarms,
)
from mlops_constructs.model_pointers import EXAMPLE, construct_id, pointer_name
from mlops_constructs.nag import acknowledge, acknowledge_wildcard_resource
from mlops_constructs.sagemaker_roles import grant_logs_and_metrics
from mlops_constructs.training_images import FlavouredImages

# Fixed, so that a weight change never changes (and replaces) the endpoint config: the effective
# weights are applied in place by the weights resource right after the endpoint is in service.
INITIAL_VARIANT_WEIGHT = 1.0
CAPTURE_CONTENT_TYPES = {"csv": ["text/csv"], "json": ["application/json", "application/jsonlines"]}


def endpoint_arn(scope: Construct, endpoint_name: str) -> str:
    """An endpoint's ARN from its contract name (SageMaker's ARNs carry the name in lowercase)."""
    return Stack.of(scope).format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint_name.lower())


def variant_resource_id(endpoint_name: str, variant: str) -> str:
    """Application Auto Scaling's id of a variant's instance count."""
    return f"endpoint/{endpoint_name}/variant/{variant}"


def traffic_percentages(endpoint: EndpointConfig) -> dict[str, float]:
    """The share of traffic each variant gets: SageMaker routes weight / sum(weights) to it."""
    total = sum(variant.weight for variant in endpoint.variants)
    return {variant.name: round(100 * variant.weight / total, 2) for variant in endpoint.variants}


@dataclass(frozen=True)
class EndpointDependencies:
    """What every endpoint of an environment shares."""

    names: Names
    serving: Serving
    images: FlavouredImages
    example_models: Mapping[str, s3_assets.Asset]  # example model name -> its model.tar.gz asset
    artifacts_bucket: s3.IBucket
    capture_bucket: s3.IBucket
    key: kms.IKey
    topic: sns.ITopic
    weights_service_token: str


class ServedEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        key: str,
        endpoint: EndpointConfig,
        shared: EndpointDependencies,
        guardrails: bool,
    ) -> None:
        super().__init__(scope, id)
        self._key = key
        self._endpoint = endpoint
        self._shared = shared
        names = shared.names
        self.endpoint_name = names.resource(key)
        self.role = self._model_role()
        models = {variant.name: self._model(variant) for variant in endpoint.variants}

        local_storage = [v.instance_type for v in endpoint.variants if has_local_storage(v.instance_type)]
        self.config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=variant.name,
                    model_name=models[variant.name].attr_model_name,
                    instance_type=variant.instance_type,
                    initial_instance_count=variant.initial_instance_count,
                    initial_variant_weight=INITIAL_VARIANT_WEIGHT,
                )
                for variant in endpoint.variants
            ],
            data_capture_config=self._data_capture(),
            # KmsKeyId belongs to the whole config, and instance types with local NVMe storage reject it.
            kms_key_id=None if local_storage else shared.key.key_arn,
        )
        if local_storage:
            reason = (
                f"{', '.join(sorted(set(local_storage)))} has local NVMe storage, which SageMaker encrypts in "
                "hardware and which rejects a KMS volume key; KmsKeyId applies to the whole endpoint config"
            )
            Annotations.of(self).add_warning_v2(
                "mlops:endpoint-config-without-kms-key",
                f"Endpoint {key}: no KMS key on the endpoint config's volumes because {reason}.",
            )
            acknowledge(self.config, "AwsSolutions-SM2", f"Endpoint {key}: {reason}.")

        self.rollback_alarms = self._rollback_alarms()
        self._grant_rollback_alarms()
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.config.attr_endpoint_config_name,
            retain_all_variant_properties=True,
            exclude_retained_variant_properties=[
                sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type=kind)
                for kind in self.excluded_variant_properties
            ],
            deployment_config=self._deployment_config(self.rollback_alarms) if guardrails else None,
        )
        if "DesiredInstanceCount" in self.excluded_variant_properties:
            Annotations.of(self).add_info(
                f"Endpoint {key}: no variant is autoscaled, so every update deploys each variant's "
                "initial_instance_count (DesiredInstanceCount is not retained): resize by changing it and deploying "
                "(a blue/green update to a fleet of that size)."
            )
        else:
            Annotations.of(self).add_info(
                f"Endpoint {key}: autoscaling owns the live instance counts, which every update keeps "
                "(RetainAllVariantProperties), so initial_instance_count applies only when it is created; changing "
                "it later replaces the endpoint config (a new fleet) at the same counts: resize with min_capacity "
                "and max_capacity instead (in place)."
            )
        if not guardrails:
            Annotations.of(self).add_info(
                f"Endpoint {key}: its variant names differ from config/deployed-variants.yaml (or it is new), "
                "so an update deploys all at once, without canary or automatic rollback."
            )
        self.weights = CustomResource(
            self,
            "Weights",
            service_token=shared.weights_service_token,
            resource_type="Custom::VariantWeights",
            properties={
                "EndpointName": self.endpoint_name,
                "EndpointConfigName": self.config.attr_endpoint_config_name,
                "Weights": {variant.name: str(variant.weight) for variant in endpoint.variants},
            },
        )
        self.weights.node.add_dependency(self.endpoint)
        for variant in endpoint.variants:
            if variant.weight == 0:
                Annotations.of(self).add_warning_v2(
                    "mlops:variant-at-zero-weight",
                    f"Endpoint {key}: variant {variant.name} has weight 0, so it serves no traffic but its "
                    f"{variant.initial_instance_count}+ instance(s) still cost money; remove it from config instead.",
                )
            if variant.autoscaling:
                self._autoscaling(variant)
        stack = Stack.of(self)
        for name, percentage in traffic_percentages(endpoint).items():
            CfnOutput(
                stack,
                f"{construct_id(key, name)}TrafficPercent",
                value=f"{percentage:g}",
                description=f"Share of endpoint {self.endpoint_name}'s traffic that variant {name} serves (%)",
            )
        CfnOutput(stack, f"{construct_id(key, '')}EndpointName", value=self.endpoint_name)

    @property
    def excluded_variant_properties(self) -> list[str]:
        """What an update takes from the new endpoint config rather than from the live endpoint.

        ``DataCaptureConfig`` always: capture follows config. ``DesiredInstanceCount`` only where no
        variant is autoscaled: the list is per endpoint, not per variant
        (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-sagemaker-endpoint-variantproperty.html),
        and a retained count would keep a fixed-size endpoint at its old size while its config says
        otherwise. Where a variant is autoscaled, the live counts are kept: autoscaling owns them.
        """
        if any(variant.autoscaling for variant in self._endpoint.variants):
            return ["DataCaptureConfig"]
        return ["DataCaptureConfig", "DesiredInstanceCount"]

    def _model_role(self) -> iam.Role:
        """The models' execution role: their artifacts, images, capture zone, logs and metrics only."""
        shared, stack = self._shared, Stack.of(self)
        role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Models of endpoint {self.endpoint_name}: read their artifacts, write data capture",
        )
        artifacts = shared.artifacts_bucket.arn_for_objects(f"artifacts/runs/{self._endpoint.tenant}/*")
        capture = shared.capture_bucket.arn_for_objects(f"{self._capture_prefix()}*")
        examples = sorted({variant.example_model for variant in self._endpoint.variants})
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadModelArtifacts",
                actions=["s3:GetObject"],
                resources=[
                    artifacts,
                    *(
                        shared.example_models[name].bucket.arn_for_objects(shared.example_models[name].s3_object_key)
                        for name in examples
                    ),
                ],
            )
        )
        role.add_to_policy(iam.PolicyStatement(sid="WriteDataCapture", actions=["s3:PutObject"], resources=[capture]))
        role.add_to_policy(
            iam.PolicyStatement(
                sid="UsePlatformKeyThroughS3",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[shared.key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}},
            )
        )
        for flavour in sorted({variant.flavour for variant in self._endpoint.variants}):
            shared.images.of(flavour).repository.grant_pull(role)
        log_group = grant_logs_and_metrics(
            role,
            log_group_name=f"/aws/sagemaker/Endpoints/{self.endpoint_name}",
            namespaces=["/aws/sagemaker/Endpoints", "AWS/SageMaker"],
            sids=("WriteEndpointLogs", "PutEndpointMetrics"),
        )
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resource(
            policy,
            artifacts,
            f"Model artifacts are named per training run; the grant stops at tenant {self._endpoint.tenant}'s runs.",
        )
        acknowledge_wildcard_resource(
            policy,
            capture,
            "SageMaker names capture files by endpoint, variant and hour; the grant stops at its prefix.",
        )
        acknowledge_wildcard_resource(
            policy, f"{log_group}:*", "SageMaker writes one log stream per instance of this endpoint's log group."
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level permissions; "
            "metrics are limited to SageMaker's endpoint namespaces by condition.",
        )
        return role

    def _model(self, variant: VariantConfig) -> sagemaker.CfnModel:
        shared = self._shared
        pointer = CfnParameter(
            self,
            f"{variant.name}ModelPointer",
            type="AWS::SSM::Parameter::Value<String>",
            default=pointer_name(shared.names, self._key, variant.name),
            description=(
                f"Model pointer of endpoint {self._key}, variant {variant.name}: the model artifact's S3 URI, "
                f"or '{EXAMPLE}' for the {variant.example_model} example model (written by mlops promote, read at "
                "deploy time)"
            ),
        )
        serves_example = CfnCondition(
            self, f"{variant.name}ServesExample", expression=Fn.condition_equals(pointer.value_as_string, EXAMPLE)
        )
        example = shared.example_models[variant.example_model]
        model = sagemaker.CfnModel(
            self,
            f"{variant.name}Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=shared.images.of(variant.flavour).image_uri,
                model_data_url=Fn.condition_if(
                    serves_example.logical_id, example.s3_object_url, pointer.value_as_string
                ).to_string(),
            ),
            # The container needs no network: SageMaker downloads the artifact and captures data itself.
            enable_network_isolation=True,
        )
        # SageMaker checks the role's access to the image and the artifact when it creates the model.
        model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        acknowledge(
            model,
            "CloudFormation-Validate::F3031",
            "CDK's CloudFormation validation reads the pointer parameter's default, its SSM name; at deploy time "
            "CloudFormation resolves it to the artifact's S3 URI, and the condition picks the example asset for "
            "the sentinel.",
        )
        acknowledge(
            model,
            "AwsSolutions-SM1",
            "The platform has no VPC of its own; the model runs with network isolation, so its container "
            "has no network access at all.",
        )
        return model

    def _capture_prefix(self) -> str:
        """``capture/<tenant>/<endpoint>/``: the capture zone's layout; SageMaker appends endpoint, variant and hour."""
        return f"capture/{self._endpoint.tenant}/{self._key}/"

    def _data_capture(self) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty:
        shared = self._shared
        percentage = shared.serving.data_capture_percentage
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=percentage > 0,
            initial_sampling_percentage=percentage,
            destination_s3_uri=shared.capture_bucket.s3_url_for_object(self._capture_prefix().rstrip("/")),
            kms_key_id=shared.key.key_arn,
            capture_options=[
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
            ],
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                csv_content_types=CAPTURE_CONTENT_TYPES["csv"], json_content_types=CAPTURE_CONTENT_TYPES["json"]
            ),
        )

    def _rollback_alarms(self) -> list[cloudwatch.Alarm]:
        return rollback_alarms(
            self, self._key, self.endpoint_name, self._endpoint, self._shared.serving.alarms, self._shared.topic
        )

    def _grant_rollback_alarms(self) -> None:
        grant_describe_alarms(self.role, Stack.of(self), rollback_alarm_names(self.endpoint_name))

    @property
    def rollback_alarm_names(self) -> tuple[str, str]:
        return rollback_alarm_names(self.endpoint_name)

    def _deployment_config(self, alarms: list[cloudwatch.Alarm]) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
        return deployment_config(self._key, self._shared.serving.rollout, alarms)

    def _autoscaling(self, variant: VariantConfig) -> None:
        scaling = self._shared.serving.scaling
        target = appscaling.ScalableTarget(
            self,
            f"{variant.name}Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=variant_resource_id(self.endpoint_name, variant.name),
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=variant.min_capacity,
            max_capacity=variant.max_capacity,
        )
        # Registered once the weights are applied: the endpoint is in service and not updating then.
        target.node.add_dependency(self.weights)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=scaling.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.seconds(scaling.scale_in_cooldown_seconds),
            scale_out_cooldown=Duration.seconds(scaling.scale_out_cooldown_seconds),
        )
