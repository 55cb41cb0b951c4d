"""Serving: the inference images, the endpoints with their A/B variants, autoscaling, alarms and the scoring API.

Stateless: the model pointers, the capture zone and the async-results table live in Foundation.
Which model each variant serves is read at deploy time from its pointer, so promoting a model
changes a parameter value, not this stack's template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from config.deployed import EnvironmentRecord, keeps_variant_names
from mlops_constructs.endpoint import EndpointDependencies, ServedEndpoint, endpoint_arn
from mlops_constructs.model_pointers import construct_id
from mlops_constructs.scoring_api import ScoringApi
from mlops_constructs.training_images import InferenceImages
from mlops_constructs.variant_weights import VariantWeightsProvider
from stacks.inputs import StackInputs

EXAMPLE_MODEL = Path(__file__).resolve().parent.parent / "models" / "example" / "model.tar.gz"


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        inputs: StackInputs,
        deployed: EnvironmentRecord,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        names, foundation, removal_policy = inputs.names, inputs.foundation, inputs.removal_policy
        serving = inputs.environment.serving
        endpoint_names = {key: names.resource(key) for key in serving.endpoints}
        endpoint_arns = [endpoint_arn(self, name) for name in endpoint_names.values()]
        self.images = InferenceImages(self, "Images")
        self.example_model = s3_assets.Asset(self, "ExampleModel", path=str(EXAMPLE_MODEL))

        self.weights = VariantWeightsProvider(
            self,
            "Weights",
            names=names,
            key=foundation.key,
            endpoint_arns=endpoint_arns,
            log_retention_days=inputs.log_retention_days,
            removal_policy=removal_policy,
        )

        shared = EndpointDependencies(
            names=names,
            serving=serving,
            images=self.images,
            example_model=self.example_model,
            artifacts_bucket=foundation.lake.zones["artifacts"],
            capture_bucket=foundation.lake.zones["capture"],
            key=foundation.key,
            topic=foundation.topic,
            weights_service_token=self.weights.service_token,
        )
        self.endpoints = {
            key: ServedEndpoint(
                self,
                construct_id(key, "Endpoint"),
                key=key,
                endpoint=endpoint,
                shared=shared,
                guardrails=keeps_variant_names(key, [v.name for v in endpoint.variants], deployed),
            )
            for key, endpoint in serving.endpoints.items()
        }
        self.scoring = ScoringApi(
            self,
            "Scoring",
            names=names,
            settings=serving.api,
            endpoint_names=endpoint_names,
            results=foundation.async_results_table,
            key=foundation.key,
            topic=foundation.topic,
            log_retention_days=inputs.log_retention_days,
            removal_policy=removal_policy,
        )
        CfnOutput(self, "ScoringApiUrl", value=self.scoring.api.url)
        CfnOutput(self, "InferenceImageUri", value=self.images.cpu.image_uri)
        CfnOutput(self, "GpuInferenceImageUri", value=self.images.gpu.image_uri)
