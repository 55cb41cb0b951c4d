"""Is a deploy done? Each endpoint must run the endpoint config and models its stack deployed. Which variants are live?

A stack that reaches ``UPDATE_COMPLETE`` is not proof that its endpoints serve the new models: when a
deployment guardrail's alarm fires, SageMaker "initiates a complete rollback to the old endpoint"
(https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html) and the
endpoint returns to ``InService`` on its previous endpoint config. So after every deploy the live
endpoint is compared with what CloudFormation recorded:

* ``deployed_endpoints``: from the stack's template (``GetTemplate``), each ``AWS::SageMaker::Endpoint``,
  the ``AWS::SageMaker::EndpointConfig`` its ``EndpointConfigName`` refers to, and the
  ``AWS::SageMaker::Model`` each production variant's ``ModelName`` refers to; their names are the
  stack's physical ids (``ListStackResources``; an ARN or a name, compared by name);
* ``endpoint_problems``: ``DescribeEndpoint``'s ``EndpointConfigName`` must be the deployed config, and
  that config's variants (``DescribeEndpointConfig``) must be the deployed variants, each on its
  deployed model. Each difference is one sentence.

``live_record`` is the deployed-variants record (``config/deployed-variants.yaml``, config/deployed.py)
as AWS has it: each endpoint the stack deploys, its live variant names (``DescribeEndpoint``), their
instance types (the live endpoint config's: ``DescribeEndpoint`` has none) and whether each is an
Application Auto Scaling target (``DescribeScalableTargets``).

The same module runs in the approval path's deployment function (``deployment``), after the delivery
pipeline's deploy stages and after ``make deploy`` (``mlops check-deploy``), and in
``make record-variants`` (``mlops record-variants``): one comparison for every deploy path. It needs
boto3 only and takes its clients as arguments. The IAM actions it calls are ``CHECK_ACTIONS`` and
``RECORD_ACTIONS``; the roles that run it are granted exactly those (tests compare both ends).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry.packages import error_code

ENDPOINT = "AWS::SageMaker::Endpoint"
ENDPOINT_CONFIG = "AWS::SageMaker::EndpointConfig"
MODEL = "AWS::SageMaker::Model"
# Statuses in which an endpoint serves its endpoint config: autoscaling and in-place weight changes
# (UpdateEndpointWeightsAndCapacities) pass through Updating without changing the config.
SERVING = frozenset({"InService", "Updating", "SystemUpdating"})
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
# Service authorization reference: CloudFormation (list_awscloudformation.html: GetTemplate and
# ListStackResources on stack*), SageMaker (list_amazonsagemaker.html: DescribeEndpoint on endpoint*,
# DescribeEndpointConfig on endpoint-config*), Application Auto Scaling (list_awsapplicationautoscaling.html:
# DescribeScalableTargets has no resource type, so "*"), all under
# https://docs.aws.amazon.com/service-authorization/latest/reference/.
CHECK_ACTIONS = frozenset(
    {
        "cloudformation:GetTemplate",
        "cloudformation:ListStackResources",
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
    }
)
RECORD_ACTIONS = CHECK_ACTIONS | {"application-autoscaling:DescribeScalableTargets"}
NOT_FOUND = "ValidationException"  # SageMaker's answer for an endpoint or config that does not exist


class StackMissing(Exception):
    """The stack does not exist (never deployed, or deleted)."""


class Unsettled(Exception):
    """An endpoint in the middle of a change: what it runs is about to change, so it cannot be recorded."""


@dataclass(frozen=True)
class DeployedEndpoint:
    """An endpoint as its stack deployed it: the endpoint config and each variant's model, by name."""

    name: str
    config: str
    models: Mapping[str, str]


def resource_name(physical_id: str) -> str:
    """A SageMaker physical id as a name: ``arn:…:endpoint-config/<name>`` -> ``<name>``; a name stays."""
    if physical_id.startswith("arn:"):
        return physical_id.split(":", 5)[-1].split("/", 1)[-1]
    return physical_id


def same_name(one: str, other: str) -> bool:
    """SageMaker names in ARNs are lowercase: compare names without case."""
    return one.casefold() == other.casefold()


def _referenced(value: Any) -> str | None:
    """The logical id a ``Fn::GetAtt`` (list or dotted form) or a ``Ref`` points at."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0]) if isinstance(target, list) else str(target).split(".", 1)[0]
        if "Ref" in value:
            return str(value["Ref"])
    return None


def is_stack_missing(error: ClientError) -> bool:
    """CloudFormation's answer for a stack that does not exist: ``ValidationError``, "... does not exist"."""
    return error_code(error) == "ValidationError" and "does not exist" in error.response.get("Error", {}).get(
        "Message", ""
    )


def _template(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    try:
        body = cloudformation.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    except ClientError as error:
        if is_stack_missing(error):
            raise StackMissing(f"stack {stack_name} does not exist") from None
        raise
    # botocore decodes a JSON template into a mapping; a string is the body as uploaded.
    template: dict[str, Any] = json.loads(body) if isinstance(body, str) else dict(body)
    return template


def _physical_ids(cloudformation: Any, stack_name: str) -> dict[str, str]:
    paginator = cloudformation.get_paginator("list_stack_resources")
    return {
        summary["LogicalResourceId"]: summary.get("PhysicalResourceId", "")
        for page in paginator.paginate(StackName=stack_name)
        for summary in page.get("StackResourceSummaries", [])
    }


def deployed_endpoints(cloudformation: Any, stack_name: str) -> dict[str, DeployedEndpoint]:
    """Each endpoint the stack deploys, by endpoint name; ``StackMissing`` when there is no stack."""
    resources: dict[str, Any] = _template(cloudformation, stack_name).get("Resources", {})
    physical = _physical_ids(cloudformation, stack_name)
    found: dict[str, DeployedEndpoint] = {}
    for logical_id, resource in sorted(resources.items()):
        if resource.get("Type") != ENDPOINT:
            continue
        properties = resource.get("Properties", {})
        name = properties.get("EndpointName")
        if not isinstance(name, str):
            name = resource_name(physical.get(logical_id, logical_id))
        config_id = _referenced(properties.get("EndpointConfigName"))
        config = resources.get(config_id or "", {})
        models: dict[str, str] = {}
        for variant in config.get("Properties", {}).get("ProductionVariants", []):
            model_id = _referenced(variant.get("ModelName"))
            models[str(variant.get("VariantName"))] = resource_name(physical.get(model_id or "", ""))
        found[name] = DeployedEndpoint(
            name=name, config=resource_name(physical.get(config_id or "", "")), models=models
        )
    return found


def _describe_endpoint(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        endpoint: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if error_code(error) == NOT_FOUND:
            return None
        raise
    return endpoint


def _config_variants(sagemaker: Any, config_name: str) -> list[dict[str, Any]]:
    variants: list[dict[str, Any]] = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)[
        "ProductionVariants"
    ]
    return variants


def endpoint_problems(sagemaker: Any, deployed: DeployedEndpoint) -> list[str]:
    """How the live endpoint differs from what its stack deployed, one sentence each; empty when it runs it."""
    endpoint = _describe_endpoint(sagemaker, deployed.name)
    if endpoint is None:
        return [f"endpoint {deployed.name} does not exist"]
    problems: list[str] = []
    status = endpoint.get("EndpointStatus")
    if status not in SERVING:
        reason = endpoint.get("FailureReason")
        problems.append(f"endpoint {deployed.name} is {status}" + (f" ({reason})" if reason else ""))
    live_config = str(endpoint.get("EndpointConfigName"))
    if not same_name(live_config, deployed.config):
        problems.append(
            f"endpoint {deployed.name} runs endpoint config {live_config}, not {deployed.config} that the stack "
            "deployed (SageMaker rolled the update back, or something changed the endpoint outside CloudFormation)"
        )
    live = {str(v["VariantName"]): str(v["ModelName"]) for v in _config_variants(sagemaker, live_config)}
    missing = sorted(set(deployed.models) - set(live))
    extra = sorted(set(live) - set(deployed.models))
    if missing or extra:
        problems.append(
            f"endpoint {deployed.name} serves the variants {', '.join(sorted(live)) or 'none'}, not "
            f"{', '.join(sorted(deployed.models)) or 'none'} as deployed"
        )
    for variant in sorted(set(live) & set(deployed.models)):
        if not same_name(live[variant], deployed.models[variant]):
            problems.append(
                f"variant {variant} of endpoint {deployed.name} runs model {live[variant]}, not "
                f"{deployed.models[variant]} that the stack deployed"
            )
    return problems


def check_stack(
    cloudformation: Any, sagemaker: Any, stack_name: str, endpoint_names: Iterable[str] | None = None
) -> dict[str, list[str]]:
    """The problems of each endpoint (all the stack deploys, or only ``endpoint_names``) that does not run
    what the stack deployed; empty when every one does. An endpoint named but not in the stack is a problem."""
    deployed = deployed_endpoints(cloudformation, stack_name)
    names = sorted(deployed) if endpoint_names is None else list(endpoint_names)
    found: dict[str, list[str]] = {}
    for name in names:
        endpoint = deployed.get(name)
        problems = (
            endpoint_problems(sagemaker, endpoint)
            if endpoint is not None
            else [f"stack {stack_name} deploys no endpoint {name}"]
        )
        if problems:
            found[name] = problems
    return found


def variant_resource_id(endpoint_name: str, variant: str) -> str:
    """Application Auto Scaling's id of a variant's instance count (mlops_constructs/endpoint.py)."""
    return f"endpoint/{endpoint_name}/variant/{variant}"


def live_variants(sagemaker: Any, autoscaling: Any, endpoint_name: str) -> dict[str, dict[str, Any]] | None:
    """``{variant: {"instance_type", "autoscaling"}}`` of a live endpoint; None when it does not exist.

    ``Unsettled`` while a deployment is pending (``PendingDeploymentSummary``), or the endpoint is in a
    state other than the serving ones: what it runs is about to change.
    """
    endpoint = _describe_endpoint(sagemaker, endpoint_name)
    if endpoint is None:
        return None
    status = endpoint.get("EndpointStatus")
    if status not in SERVING or endpoint.get("PendingDeploymentSummary"):
        pending = " with a deployment pending" if endpoint.get("PendingDeploymentSummary") else ""
        raise Unsettled(f"endpoint {endpoint_name} is {status}{pending}; run this again once it is InService")
    names = [str(summary["VariantName"]) for summary in endpoint.get("ProductionVariants", [])]
    types = {
        str(v["VariantName"]): v.get("InstanceType")
        for v in _config_variants(sagemaker, str(endpoint["EndpointConfigName"]))
    }
    if set(names) - set(types):
        raise Unsettled(
            f"endpoint {endpoint_name} serves the variants {', '.join(sorted(names))}, which its endpoint config "
            f"{endpoint['EndpointConfigName']} does not all declare; run this again once it is InService"
        )
    ids = {variant_resource_id(endpoint_name, name): name for name in names}
    registered: set[str] = set()
    if ids:
        paginator = autoscaling.get_paginator("describe_scalable_targets")
        for page in paginator.paginate(
            ServiceNamespace="sagemaker", ResourceIds=sorted(ids), ScalableDimension=SCALABLE_DIMENSION
        ):
            registered.update(ids[t["ResourceId"]] for t in page.get("ScalableTargets", []) if t["ResourceId"] in ids)
    return {name: {"instance_type": types.get(name), "autoscaling": name in registered} for name in sorted(names)}


def endpoint_key(endpoint_name: str, prefix: str) -> str | None:
    """``mlops-dev-churn`` -> ``churn`` under the prefix ``mlops-dev``; None for another environment's name."""
    head = f"{prefix}-"
    return endpoint_name[len(head) :] if endpoint_name.startswith(head) else None


def live_record(
    cloudformation: Any, sagemaker: Any, autoscaling: Any, stack_name: str, prefix: str
) -> dict[str, dict[str, dict[str, Any]]]:
    """One environment's entry of the deployed-variants record as AWS has it: endpoint key -> variant ->
    ``{"instance_type", "autoscaling"}``, for each endpoint the stack deploys that exists. Empty when the
    stack does not exist yet (nothing is deployed)."""
    try:
        deployed = deployed_endpoints(cloudformation, stack_name)
    except StackMissing:
        return {}
    record: dict[str, dict[str, dict[str, Any]]] = {}
    for name in sorted(deployed):
        key = endpoint_key(name, prefix)
        variants = live_variants(sagemaker, autoscaling, name) if key is not None else None
        if key is not None and variants is not None:
            record[key] = variants
    return record
