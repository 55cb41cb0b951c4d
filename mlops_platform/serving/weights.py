"""Variant weights: apply an endpoint's effective A/B weights in place, as a CloudFormation custom resource.

Changing a weight through a new endpoint config is an ``UpdateEndpoint``, which provisions a whole new
fleet (twice the instances for a while, GPU quota included). ``UpdateEndpointWeightsAndCapacities``
changes weights on the running fleet. And since the endpoint retains its variant properties across
config replacements (``RetainAllVariantProperties``, so autoscaled instance counts survive a deploy),
weights written into a new config would not take effect anyway: this resource is where they do.

It runs under the CDK custom-resource Provider framework (lambda/variant_weights/handler.py adapts it),
with two entry points:

* ``handler.on_event``: Create and Update check the properties and return the stable physical id
  ``<EndpointName>-weights``; Delete has nothing to undo (the endpoint goes with its stack).
* ``handler.is_complete``: polled by the Provider until it returns complete or raises. It waits while
  the endpoint is being created or updated, fails with SageMaker's ``FailureReason`` when the endpoint
  cannot take weights, calls ``UpdateEndpointWeightsAndCapacities`` (weights only, never
  ``DesiredInstanceCount``, so autoscaled counts are kept) when a weight differs, and completes once
  every named variant serves its weight, with ``Data.Applied`` the applied weights as JSON.

SageMaker publishes no weight metric, so on completion ``is_complete`` publishes the weights now live,
every variant of the endpoint, to ``METRICS_NAMESPACE`` (the dashboard graphs them): ``VariantWeight``
and ``VariantTrafficShare`` (the percent of requests the variant gets, weight / sum of weights), with
the dimensions ``EndpointName`` and ``VariantName`` as in ``AWS/SageMaker``. Every deploy that
replaces the endpoint config runs it, changed weights or not, so the dashboard's latest value is the
weight in place since the last deploy.

Properties: ``EndpointName``; ``EndpointConfigName``, unused here but part of the properties so that
CloudFormation updates this resource (and re-applies the weights) after every config replacement;
``Weights``, variant name to weight (CloudFormation passes numbers as strings). Variants the endpoint
has but ``Weights`` does not name keep their weights.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, Protocol

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

TOLERANCE = 1e-6
WAIT_STATUSES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
# UpdateRollbackFailed: "both the rolling deployment and auto-rollback failed"; waiting does not fix
# it, a person does. OutOfService and Deleting cannot take weights either.
FAILED_STATUSES = frozenset({"Failed", "OutOfService", "Deleting", "UpdateRollbackFailed"})
# What SageMaker says when a weights update meets an update already in flight: wait and try again.
IN_FLIGHT = re.compile(r"in[- ]progress|being updated|is (currently )?updating|status (is )?\S*updating", re.IGNORECASE)
THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling"})
# The metrics of the weights in place (mlops_constructs/dashboard.py graphs them).
WEIGHT_METRIC = "VariantWeight"
SHARE_METRIC = "VariantTrafficShare"


class Log(Protocol):
    """What the applier logs with: the standard library's Logger and Powertools' Logger both fit."""

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


class WeightsError(Exception):
    """A resource that cannot be completed, in one sentence (CloudFormation shows it as the reason)."""


def parse_weights(value: Any) -> dict[str, float]:
    """``Weights`` as floats. CloudFormation sends every number as a string, so ``"0.9"`` is 0.9."""
    if not isinstance(value, dict) or not value:
        raise WeightsError(f"Weights must be a non-empty object of variant name to weight, not {value!r}")
    weights: dict[str, float] = {}
    for name, raw in value.items():
        if isinstance(raw, bool):
            raise WeightsError(f"the weight of variant {name!r} must be a number, not {raw!r}")
        try:
            weight = float(raw)
        except (TypeError, ValueError):
            raise WeightsError(f"the weight of variant {name!r} must be a number, not {raw!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise WeightsError(f"the weight of variant {name!r} must be a finite number >= 0, not {raw!r}")
        weights[str(name)] = weight
    return weights


def endpoint_name(properties: dict[str, Any]) -> str:
    name = properties.get("EndpointName")
    if not isinstance(name, str) or not name:
        raise WeightsError(f"EndpointName must be the endpoint's name, not {name!r}")
    return name


def weight_metrics(name: str, weights: dict[str, float]) -> list[dict[str, Any]]:
    """PutMetricData's ``MetricData``: each variant's weight and share of traffic (percent), by endpoint and variant."""
    total = sum(weights.values())
    data = []
    for variant, weight in sorted(weights.items()):
        dimensions = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": variant}]
        share = round(100 * weight / total, 6) if total else 0.0
        data.append({"MetricName": WEIGHT_METRIC, "Dimensions": dimensions, "Value": weight, "Unit": "None"})
        data.append({"MetricName": SHARE_METRIC, "Dimensions": dimensions, "Value": share, "Unit": "Percent"})
    return data


class WeightsApplier:
    """The custom resource's two entry points, with the clients and namespace they use."""

    def __init__(self, sagemaker: Any, cloudwatch: Any, namespace: str, log: Log | None = None):
        self.sagemaker = sagemaker
        self.cloudwatch = cloudwatch
        self.namespace = namespace
        self.log = log or logging.getLogger(__name__)

    def on_event(self, event: dict[str, Any]) -> dict[str, Any] | None:
        request_type = event["RequestType"]
        if request_type == "Delete":
            self.log.info("nothing to undo", extra={"physical_id": event.get("PhysicalResourceId")})
            return None
        properties = event["ResourceProperties"]
        name = endpoint_name(properties)
        parse_weights(properties.get("Weights"))  # fail the deploy now, not after the first poll
        # Stable: an update of the weights is the same resource, so CloudFormation deletes nothing.
        return {"PhysicalResourceId": f"{name}-weights"}

    def is_complete(self, event: dict[str, Any]) -> dict[str, Any]:
        if event["RequestType"] == "Delete":
            return {"IsComplete": True}
        properties = event["ResourceProperties"]
        name = endpoint_name(properties)
        desired = parse_weights(properties.get("Weights"))
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
                return self.waiting(name, "throttled")
            raise
        status = endpoint["EndpointStatus"]
        if status in FAILED_STATUSES:
            reason = endpoint.get("FailureReason") or "no failure reason given"
            raise WeightsError(f"endpoint {name!r} is {status} and cannot take weights: {reason}")
        if status != "InService":
            # WAIT_STATUSES, or a status newer than this code: the Provider polls again.
            return self.waiting(name, status)
        current = {variant["VariantName"]: variant.get("CurrentWeight") for variant in endpoint["ProductionVariants"]}
        missing = sorted(set(desired) - set(current))
        if missing:
            raise WeightsError(f"endpoint {name!r} has no variant {missing}; its variants are {sorted(current)}")
        effective = {**{variant: weight or 0.0 for variant, weight in current.items()}, **desired}
        if not any(weight > 0 for weight in effective.values()):
            raise WeightsError(f"the weights {desired} would leave endpoint {name!r} no variant to serve traffic")
        differing = sorted(
            variant
            for variant, weight in desired.items()
            if current[variant] is None or abs(float(current[variant]) - weight) > TOLERANCE
        )
        if not differing:
            try:
                self.cloudwatch.put_metric_data(Namespace=self.namespace, MetricData=weight_metrics(name, effective))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
                    return self.waiting(name, "metrics throttled")
                raise
            self.log.info("weights applied", extra={"endpoint": name, "weights": desired, "live": effective})
            return {"IsComplete": True, "Data": {"Applied": json.dumps(desired, sort_keys=True)}}
        self.log.info(
            "applying weights",
            extra={"endpoint": name, "differing": differing, "current": current, "desired": desired},
        )
        try:
            self.sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=name,
                DesiredWeightsAndCapacities=[
                    {"VariantName": variant, "DesiredWeight": weight} for variant, weight in sorted(desired.items())
                ],
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            message = error.response.get("Error", {}).get("Message", "")
            if code in THROTTLING_CODES or (code == "ValidationException" and IN_FLIGHT.search(message)):
                return self.waiting(name, f"{code}: {message}")
            raise
        # The endpoint now goes through Updating; a later poll sees the weights in place.
        return {"IsComplete": False}

    def waiting(self, name: str, why: str) -> dict[str, Any]:
        self.log.info("waiting for the endpoint", extra={"endpoint": name, "why": why})
        return {"IsComplete": False}
