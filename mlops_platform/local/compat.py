"""The compatibility layer over moto 5.2.5's own classes: how each item of ``DEVIATIONS`` is done.

Why each patch exists is written in :mod:`mlops_platform.local.deviations` (one place, with reasons);
this module only implements them. ``install`` patches, ``uninstall`` restores moto as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

# Types CloudFormation itself treats as no-ops: not reported as stubbed.
NO_OP_TYPES = frozenset({"AWS::CDK::Metadata"})

_lock = threading.RLock()
_stubbed: set[str] = set()
_patches: list[tuple[Any, str, Any]] = []
# Set by mlops_platform.local.functions (kept apart: it runs handler code): answers custom resources,
# and records what a handler sends to its ResponseURL (the emulator's /cfnresponse).
custom_resource_answerer: Callable[..., dict[str, Any]] | None = None
response_recorder: Callable[[dict[str, Any]], None] | None = None


def stubbed() -> list[str]:
    with _lock:
        return sorted(_stubbed)


_ABSENT = object()


def _patch(owner: Any, name: str, value: Any) -> None:
    _patches.append(
        (owner, name, owner.__dict__.get(name, _ABSENT) if isinstance(owner, type) else getattr(owner, name))
    )
    setattr(owner, name, value)


def uninstall() -> None:
    with _lock:
        while _patches:
            owner, name, original = _patches.pop()
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def install() -> None:
    """Patch moto's classes (idempotent: a second install first removes the first)."""
    from moto.cloudformation import models, parsing, responses

    with _lock:
        uninstall()
        _stubbed.clear()
        _patch(parsing, "clean_json", _clean_json(parsing.clean_json))
        _patch(parsing, "resource_class_from_type", _resource_class_from_type(parsing.resource_class_from_type))
        _patch(models.Stack, "stack_parameters", property(_input_parameters))
        _patch(models.CloudFormationBackend, "execute_change_set", _execute_change_set)
        _patch(models.CustomModel, "create_from_cloudformation_json", classmethod(_create_custom_resource))
        for action in ("describe_change_set", "execute_change_set", "delete_change_set"):
            _patch(
                responses.CloudFormationResponse, action, _by_stack(getattr(responses.CloudFormationResponse, action))
            )
        _patch(responses, "get_stack_from_s3_url", _template_from_url(responses.get_stack_from_s3_url))
        _patch(responses.CloudFormationResponse, "process_cfn_response", _record_cfn_response)
        _install_service_fixes()


# --- Fn::GetStackOutput ------------------------------------------------------------------------


def _clean_json(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def clean_json(value: Any, resources_map: Any) -> Any:
        if isinstance(value, dict) and "Fn::GetStackOutput" in value:
            return _stack_output(value["Fn::GetStackOutput"], resources_map)
        if isinstance(value, dict) and isinstance(value.get("Ref"), str):
            resource = resources_map[value["Ref"]]
            plain = resource is None or isinstance(resource, str | int | float | list | dict)
            if not plain and not hasattr(resource, "physical_resource_id"):
                return _ref_value(resource)
        return original(value, resources_map)

    return clean_json


def _ref_value(resource: Any) -> Any:
    """A Ref to a moto model without a physical id (moto returns the object, and its users crash).

    What CloudFormation's Ref returns: the name for an AWS::Events::EventBus, the ARN for an
    AWS::Lambda::LayerVersion; other such models give their ARN, else their name.
    """
    if getattr(resource, "cf_resource_type", "") == "AWS::Events::EventBus":
        return resource.name
    return getattr(resource, "arn", None) or getattr(resource, "name", None) or resource


def _stack_output(reference: dict[str, Any], resources_map: Any) -> Any:
    """The producer's output, as AWS reads it (docs: intrinsic-function-reference-getstackoutput)."""
    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import cloudformation_backends

    stack_name = parsing.clean_json(reference["StackName"], resources_map)
    region = parsing.clean_json(reference.get("Region"), resources_map) or resources_map._region_name
    output_name = parsing.clean_json(reference["OutputName"], resources_map)
    producer = cloudformation_backends[resources_map._account_id][region].get_stack(stack_name)
    for output in producer.output_map.values():
        if output is not None and output.key == output_name:
            return output.value
    raise ValidationError(message=f"Stack {stack_name} has no output {output_name} (Fn::GetStackOutput)")


# --- resource types moto lacks ------------------------------------------------------------------


def _resource_class_from_type(original: Callable[[str], Any]) -> Callable[[str], Any]:
    def resource_class_from_type(resource_type: str) -> Any:
        from moto.cloudformation import parsing

        if resource_type == "AWS::DynamoDB::GlobalTable":
            return GlobalTableAsTable
        if resource_type.startswith("Custom::") or resource_type in parsing.NULL_MODELS:
            return original(resource_type)
        if resource_type in parsing.get_model_map():
            return original(resource_type)
        if resource_type not in NO_OP_TYPES:
            with _lock:
                _stubbed.add(resource_type)
        return Stub

    return resource_class_from_type


class Stub:
    """A resource of a type moto cannot create: a physical id, ARN-shaped attributes, nothing behind them."""

    def __init__(self, resource_type: str, logical_id: str, physical_id: str, account: str, region: str) -> None:
        self.cf_resource_type = resource_type
        self.logical_resource_id = logical_id
        self.physical_resource_id = physical_id
        self._account = account
        self._region = region

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Stub:
        return cls(kwargs["ResourceType"], kwargs["LogicalId"], resource_name, account_id, region_name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Stub,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Stub:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, *args: Any) -> None:
        return None

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute: str) -> str:
        if attribute.endswith("Arn"):
            service, kind = self.cf_resource_type.split("::")[1:3]
            return (
                f"arn:aws:{service.lower()}:{self._region}:{self._account}:{kind.lower()}/{self.physical_resource_id}"
            )
        return self.physical_resource_id

    def is_created(self) -> bool:
        return True

    def delete(self, account_id: str, region_name: str) -> None:
        return None


class GlobalTableAsTable:
    """``AWS::DynamoDB::GlobalTable`` in one region: moto's ``AWS::DynamoDB::Table`` with the same keys."""

    TABLE_PROPERTIES = (
        "TableName", "KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
        "StreamSpecification", "BillingMode", "SSESpecification",
    )  # fmt: skip

    @classmethod
    def _table(cls) -> Any:
        from moto.dynamodb.models.table import Table

        return Table

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        properties = cloudformation_json["Properties"]
        table = {key: copy.deepcopy(properties[key]) for key in cls.TABLE_PROPERTIES if key in properties}
        table.get("SSESpecification", {}).pop("SSEType", None)  # a replica's key; the table's default is KMS
        name = table.pop("TableName", resource_name)  # moto only knows Table's name property
        return cls._table().create_from_cloudformation_json(
            name, {"Properties": table}, account_id, region_name, **kwargs
        )

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, *args: Any, **kwargs: Any) -> Any:
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(cls, *args: Any) -> None:
        return cls._table().delete_from_cloudformation_json(*args)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return bool(cls._table().has_cfn_attr(attr))


# --- change sets --------------------------------------------------------------------------------


def _input_parameters(stack: Any) -> dict[str, Any]:
    """A stack's parameters as given (an SSM-typed one keeps the parameter's name, as in AWS)."""
    declared = stack.template_dict.get("Parameters", {}) if stack.template_dict else {}
    values = {name: slot.get("Default") for name, slot in declared.items()}
    values.update(stack.parameters or {})
    return values


def _by_stack(action: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Resolve a change-set name to its ARN within the named stack before moto looks it up by name."""

    def by_stack(self: Any) -> Any:
        name = self._get_param("ChangeSetName")
        stack_name = self._get_param("StackName")
        if name and stack_name and not name.startswith("arn:"):
            backend = self.cloudformation_backend
            for arn, change_set in reversed(backend.change_sets.items()):
                if change_set.change_set_name == name and stack_name in (change_set.stack_name, change_set.stack_id):
                    self.querystring["ChangeSetName"] = [arn]
                    if self.automated_parameter_parsing:
                        self.params["ChangeSetName"] = arn
                    break
        return action(self)

    return by_stack


def _template_from_url(original: Callable[..., str]) -> Callable[..., str]:
    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        parts = urlparse(template_url)
        if parts.hostname == "127.0.0.1":
            return original(parts._replace(netloc=f"localhost:{parts.port}").geturl(), account_id, partition)
        return original(template_url, account_id, partition)

    return get_stack_from_s3_url


def _execute_change_set(backend: Any, change_set_name: str, stack_name: str | None = None) -> None:
    from moto.cloudformation.exceptions import ValidationError

    change_set = backend.change_sets.get(change_set_name) or next(
        (cs for cs in reversed(backend.change_sets.values()) if cs.change_set_name == change_set_name), None
    )
    if change_set is None:
        raise ValidationError(stack_name or change_set_name)
    stack = backend.stacks[change_set.stack_id]
    operation = change_set.change_set_type  # CREATE or UPDATE
    stack._add_stack_event(f"{operation}_IN_PROGRESS", resource_status_reason="User Initiated")
    try:
        with _lock:
            if operation == "CREATE":
                stack.template = change_set.template
                stack._parse_template()
                stack.parameters = change_set.parameters
                stack.resource_map = stack._create_resource_map()
                stack.resource_map.create(stack.template_dict)  # moto's create honours DependsOn
                stack.output_map = stack._create_output_map()
            else:
                template = change_set.template_dict
                stack.resource_map.update(template, change_set.parameters)
                stack.template, stack.template_dict = change_set.template, template
                stack.parameters = change_set.parameters or stack.parameters
                stack.output_map = stack._create_output_map()
            backend._validate_export_uniqueness(stack)
            for export in stack.exports:
                backend.exports[export.name] = export
    except Exception as error:  # reported like CloudFormation: the stack fails with the reason
        logger.exception("stack %s failed", stack.name)
        reason = f"{type(error).__name__}: {error}"
        stack.status = "ROLLBACK_COMPLETE" if operation == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
        stack._add_stack_event(f"{operation}_FAILED", resource_status_reason=reason)
        stack._add_stack_event(stack.status, resource_status_reason=reason)
        change_set.execution_status = "EXECUTE_FAILED"
        return
    stack.status = f"{operation}_COMPLETE"
    stack._add_stack_event(stack.status)
    change_set.execution_status = "EXECUTE_COMPLETE"


# --- custom resources ---------------------------------------------------------------------------


def _create_custom_resource(
    cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
) -> Any:
    """Send the Create event to the resource's handler and wait for its answer (synchronously)."""
    from moto.cloudformation.exceptions import ValidationError

    properties = cloudformation_json["Properties"]
    resource = cls(region_name, f"local-{kwargs['LogicalId']}", kwargs["LogicalId"], resource_name)
    event = {
        "RequestType": "Create",
        "ServiceToken": properties["ServiceToken"],
        "StackId": kwargs["StackId"],
        "RequestId": resource.request_id,
        "LogicalResourceId": kwargs["LogicalId"],
        "ResourceType": kwargs["ResourceType"],
        "ResourceProperties": properties,
    }
    if custom_resource_answerer is None:
        raise ValidationError(message="no custom resource answerer installed")
    answer = custom_resource_answerer(event, account_id, region_name)
    if answer.get("Status") != "SUCCESS":
        raise ValidationError(message=f"{kwargs['LogicalId']} failed: {answer.get('Reason')}")
    resource.resource_name = answer.get("PhysicalResourceId") or resource_name
    resource.set_data(answer.get("Data") or {})
    return resource


def _record_cfn_response(self: Any) -> tuple[int, dict[str, int], str]:
    body = self.raw_body.decode("utf-8") if isinstance(self.raw_body, bytes) else str(self.raw_body)
    if response_recorder is not None:
        response_recorder(json.loads(body))
    return 200, {"status": 200}, "{}"


# --- crashes in moto's service models -----------------------------------------------------------


def _install_service_fixes() -> None:
    from moto.awslambda.models import LambdaFunction
    from moto.kms.models import Key
    from moto.sagemaker import models as sagemaker
    from moto.sqs.models import Queue

    # moto names these SageMaker resources by the logical id, ignoring the name the template gives,
    # so the endpoint the platform looks up by name (mlops-<env>-<endpoint>) was not found.
    for model, name_property in (
        (sagemaker.FakeEndpoint, "EndpointName"),
        (sagemaker.FakeEndpointConfig, "EndpointConfigName"),
        (sagemaker.Model, "ModelName"),
    ):
        _patch(model, "cloudformation_name_type", staticmethod(lambda name=name_property: name))

    create_key = Key.create_from_cloudformation_json

    def create_kms_key(cls: Any, name: str, cloudformation_json: Any, account: str, region: str, **kwargs: Any) -> Any:
        # CloudFormation's Tags are Key/Value; moto's create_key reads KMS API tags (TagKey/TagValue).
        properties = dict(cloudformation_json["Properties"])
        properties["Tags"] = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])]
        return create_key(name, {**cloudformation_json, "Properties": properties}, account, region, **kwargs)

    _patch(Key, "create_from_cloudformation_json", classmethod(create_kms_key))

    # moto delivers a queue's messages to its mapped function itself, through Docker, on every send;
    # without Docker each try fails and counts as a receive, until the redrive policy moves the
    # messages to the dead-letter queue. The local poller (mlops_platform.local.ingestion) delivers.
    _patch(Queue, "lambda_event_source_mappings", property(lambda queue: {}, lambda queue, value: None))

    create_function = LambdaFunction.create_from_cloudformation_json

    def create_lambda_function(
        cls: Any, name: str, cloudformation_json: Any, account: str, region: str, **kwargs: Any
    ) -> Any:
        from moto.awslambda.utils import get_backend

        function = create_function(name, cloudformation_json, account, region, **kwargs)
        backend = get_backend(account, region)
        # Layers published by AWS in its own accounts (Powertools) are not in the emulator: their
        # libraries come from the local virtual environment (requirements-dev.txt) instead.
        layers = [
            arn for arn in cloudformation_json["Properties"].get("Layers", []) if backend.layers_versions_by_arn(arn)
        ]
        function.layers = function._get_layers_data(layers)
        return function

    _patch(LambdaFunction, "create_from_cloudformation_json", classmethod(create_lambda_function))
