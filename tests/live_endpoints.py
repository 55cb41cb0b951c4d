"""Endpoints as a deploy leaves them, in moto: what ``make record-variants`` and the deploy check read.

``deploy_endpoint`` makes what CloudFormation makes for one endpoint (a model per variant, an endpoint
config, the endpoint on it, a scaling target per autoscaled variant). moto 5.2.5 has no ``UpdateEndpoint``,
so an update replaces the endpoint on the new config; a rollback is an endpoint left on its old one.
``record_as_deployed`` deploys an environment's endpoints as its config declares them, then runs the
real ``mlops record-variants``: the record synth reads in a test is the one the command writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.sagemaker.models import FakeEndpointConfig

from config import load_config
from config.deployed import DeployedVariants
from config.naming import Names
from mlops_platform.cli import record_variants

ROLE = "arn:aws:iam::123456789012:role/model"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/inference:cpu"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


@contextmanager
def current_instance_types() -> Iterator[None]:
    """moto 5.2.5's list of endpoint instance types predates ml.g5 (which SageMaker hosts): accept any ml.* type."""

    def validate(self: Any, instance_type: str) -> None:
        assert instance_type.startswith("ml."), instance_type

    with mock.patch.object(FakeEndpointConfig, "validate_instance_type", validate):
        yield


def deploy_endpoint(
    sagemaker: Any,
    autoscaling: Any,
    name: str,
    variants: Sequence[tuple[str, str, bool]],
    *,
    release: str = "1",
    serve: bool = True,
) -> tuple[str, dict[str, str]]:
    """Models and an endpoint config for ``variants`` (name, instance type, autoscaled); the endpoint on the
    config unless ``serve`` is False (a guardrail rolled it back). The config's and the models' names."""
    models = {}
    for variant, _, _ in variants:
        models[variant] = f"{name}-{variant}-{release}"
        sagemaker.create_model(
            ModelName=models[variant],
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://artifacts/{variant}/{release}/model.tar.gz"},
        )
    config = f"{name}-config-{release}"
    sagemaker.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": models[variant],
                "InstanceType": instance_type,
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1.0,
            }
            for variant, instance_type, _ in variants
        ],
    )
    if serve:
        if any(e["EndpointName"] == name for e in sagemaker.list_endpoints()["Endpoints"]):
            sagemaker.delete_endpoint(EndpointName=name)
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
        for variant, _, autoscaled in variants:
            resource = f"endpoint/{name}/variant/{variant}"
            if autoscaled:
                autoscaling.register_scalable_target(
                    ServiceNamespace="sagemaker",
                    ResourceId=resource,
                    ScalableDimension=DIMENSION,
                    MinCapacity=1,
                    MaxCapacity=2,
                )
            else:
                registered = autoscaling.describe_scalable_targets(
                    ServiceNamespace="sagemaker", ResourceIds=[resource]
                )["ScalableTargets"]
                if registered:
                    autoscaling.deregister_scalable_target(
                        ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION
                    )
    return config, models


def record_as_deployed(config_dir: Path, environment: str) -> DeployedVariants:
    """Deploy ``environment``'s endpoints as config declares them (in a fresh moto), then record them from AWS."""
    config = load_config(config_dir, selected_environments=environment, check_record=False)
    settings = config.environment(environment)
    names = Names(project=config.project.name, environment=environment)
    with mock.patch.dict(os.environ, {"MOTO_ACCOUNT_ID": settings.account}), mock_aws(), current_instance_types():
        sagemaker, autoscaling, sts = (
            boto3.client(service, region_name=settings.region)
            for service in ("sagemaker", "application-autoscaling", "sts")
        )
        for key, endpoint in settings.serving.endpoints.items():
            deploy_endpoint(
                sagemaker,
                autoscaling,
                names.resource(key),
                [(v.name, v.instance_type, v.autoscaling) for v in endpoint.variants],
            )
        return record_variants.record(
            config_dir, environment, record_variants.Clients(sagemaker=sagemaker, autoscaling=autoscaling, sts=sts)
        )
