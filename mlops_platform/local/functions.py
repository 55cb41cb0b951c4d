"""Run a deployed Lambda function's own handler code in this process, as the emulator deployed it.

The code is the zip the CDK CLI published to the emulated bootstrap bucket and CloudFormation gave to
Lambda (moto keeps its bytes); the handler path, the environment and the layers are the function's
deployed configuration. Each function is imported once per emulator (a warm start), with its own
environment set while it is imported and while it runs. Custom resources are answered from here too
(``answer_custom_resource``): the three ways are listed in :mod:`.deviations`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mlops_platform.local import compat

PROVIDER_WAIT_SECONDS = 120
# Lambda runs one request per environment; here one function at a time (they share os.environ).
_running = threading.RLock()
_modules: dict[tuple[str, str], ModuleType] = {}
_responses: dict[str, dict[str, Any]] = {}
_unpacked = Path(tempfile.gettempdir()) / "mlops-local-functions"


@dataclass(frozen=True)
class Context:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str = "local"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def reset() -> None:
    """Forget imported handlers and answers (a new emulator deploys new functions)."""
    with _running:
        _modules.clear()
        _responses.clear()


def _function(name_or_arn: str, account: str, region: str) -> Any:
    from moto.awslambda.utils import get_backend

    return get_backend(account, region).get_function(name_or_arn)


def _unpack(code: bytes) -> Path:
    """The zip's files in a folder named by its digest (unpacked once per content)."""
    folder = _unpacked / hashlib.sha256(code).hexdigest()[:32]
    if not folder.is_dir():
        partial = folder.with_suffix(f".{uuid.uuid4().hex}")
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(partial)
        with contextlib.suppress(OSError):  # another run unpacked the same content meanwhile
            partial.rename(folder)
    return folder


def _layers(function: Any, account: str, region: str) -> list[Path]:
    from moto.awslambda.utils import get_backend

    backend = get_backend(account, region)
    versions = [backend.layers_versions_by_arn(layer["Arn"]) for layer in function.layers]
    return [_unpack(version.code_bytes) for version in versions if version is not None]


@contextlib.contextmanager
def _environment(function: Any, code: Path) -> Iterator[None]:
    values = {
        **{key: str(value) for key, value in function.environment_vars.items()},
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "LAMBDA_TASK_ROOT": str(code),
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally (mlops_platform.local.deviations)
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    sys.path.insert(0, str(code))
    try:
        yield
    finally:
        sys.path.remove(str(code))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _load(function: Any, code: Path, module_name: str) -> ModuleType:
    key = (function.function_arn, module_name)
    if key not in _modules:
        # The asset's own top-level modules (handler, worker, index...) shadow any of another asset.
        for path in code.iterdir():
            if path.suffix == ".py" and path.stem != "mlops_platform":
                sys.modules.pop(path.stem, None)
        unique = f"mlops_local_{re.sub(r'[^0-9A-Za-z_]', '_', function.function_name)}_{module_name}"
        spec = importlib.util.spec_from_file_location(unique, code / f"{module_name.replace('.', '/')}.py")
        if spec is None or spec.loader is None:
            raise RuntimeError(f"{function.function_name}: no module {module_name} in its code")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
        _modules[key] = module
    return _modules[key]


def invoke(name_or_arn: str, event: Any, *, account: str, region: str) -> Any:
    """Call the deployed function's handler with ``event`` and return what it returns."""
    function = _function(name_or_arn, account, region)
    if not str(function.run_time).startswith("python"):
        raise RuntimeError(f"{function.function_name} runs {function.run_time}; only Python handlers run locally")
    code = _unpack(function.code_bytes)
    module_name, handler_name = function.handler.rsplit(".", 1)
    context = Context(
        function_name=function.function_name,
        invoked_function_arn=function.function_arn,
        memory_limit_in_mb=int(function.memory_size),
        aws_request_id=str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{function.function_name}",
    )
    with _running, _environment(function, code):
        module = _load(function, code, module_name)
        _run_layer_tools(module, function, account, region)
        return getattr(module, handler_name)(event, context)


def _run_layer_tools(module: Any, function: Any, account: str, region: str) -> None:
    """BucketDeployment's handler runs the AWS CLI at /opt/awscli/aws: run the deployed layer's copy."""
    if not callable(getattr(module, "aws_command", None)):
        return
    clis = [layer / "awscli" / "aws" for layer in _layers(function, account, region)]
    if clis and clis[0].is_file():
        cli = clis[0]

        def aws_command(*args: str) -> None:
            done = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True, check=False)  # noqa: S603 - the deployed layer's CLI
            print(done.stdout + done.stderr)  # into the run's log, as Lambda's would go to its log group
            done.check_returncode()

        module.aws_command = aws_command


# --- custom resources ---------------------------------------------------------------------------


def record_response(body: dict[str, Any]) -> None:
    """What a handler sent to its ResponseURL (the emulator's /cfnresponse answers here)."""
    _responses[str(body.get("RequestId"))] = body


def answer_custom_resource(event: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """The handler's answer to a custom resource event: Status, PhysicalResourceId, Data, Reason."""
    function = _function(event["ServiceToken"], account, region)
    event = {**event, "ResourceProperties": _as_strings(event["ResourceProperties"])}
    try:
        if "USER_ON_EVENT_FUNCTION_ARN" in function.environment_vars:
            return _provider(function.environment_vars, event, account, region)
        if str(function.run_time).startswith("nodejs") and "Create" in event["ResourceProperties"]:
            return _sdk_call(event)
        response_url = f"{os.environ['AWS_ENDPOINT_URL']}/cloudformation_{region}/cfnresponse?stack={event['StackId']}"
        event = {**event, "ResponseURL": response_url}
        invoke(function.function_arn, event, account=account, region=region)
        return _responses.pop(event["RequestId"], {"Status": "FAILED", "Reason": "the handler sent no response"})
    except Exception as error:  # the stack fails with the reason, as CloudFormation reports a handler's failure
        return {"Status": "FAILED", "Reason": f"{type(error).__name__}: {error}"}


def _as_strings(value: Any) -> Any:
    """CloudFormation hands a custom resource its properties' numbers and booleans as strings."""
    if isinstance(value, dict):
        return {key: _as_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_strings(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _provider(environment: dict[str, str], event: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """The provider framework's loop: onEvent once, then isComplete until complete."""
    answer = invoke(environment["USER_ON_EVENT_FUNCTION_ARN"], event, account=account, region=region) or {}
    physical_id = answer.get("PhysicalResourceId") or event["RequestId"]
    data = dict(answer.get("Data") or {})
    if "USER_IS_COMPLETE_FUNCTION_ARN" in environment:
        deadline = time.monotonic() + PROVIDER_WAIT_SECONDS
        while True:
            request = {**event, **answer, "PhysicalResourceId": physical_id}
            status = invoke(environment["USER_IS_COMPLETE_FUNCTION_ARN"], request, account=account, region=region)
            if status.get("IsComplete"):
                data.update(status.get("Data") or {})
                break
            if time.monotonic() > deadline:
                return {"Status": "FAILED", "Reason": f"not complete after {PROVIDER_WAIT_SECONDS} s"}
            time.sleep(1)
    return {"Status": "SUCCESS", "PhysicalResourceId": physical_id, "Data": data}


def _sdk_call(event: dict[str, Any]) -> dict[str, Any]:
    """AwsCustomResource's Create: the SDK call it describes, made with boto3 against the emulator."""
    import boto3
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    call = json.loads(event["ResourceProperties"]["Create"])
    service = call["service"].removeprefix("@aws-sdk/client-").replace("-", "").lower()
    action = re.sub(r"(?<!^)(?=[A-Z])", "_", call["action"][0].lower() + call["action"][1:]).lower()
    client: Any = boto3.client(service)
    try:
        response = getattr(client, action)(**call.get("parameters", {}))
    except ClientError as error:
        ignored = call.get("ignoreErrorCodesMatching")
        if not ignored or not re.search(ignored, error.response["Error"]["Code"]):
            raise
        response = {}
    physical = call.get("physicalResourceId", {})
    physical_id = physical.get("id") or _flatten(response).get(physical.get("responsePath", ""), event["RequestId"])
    return {"Status": "SUCCESS", "PhysicalResourceId": str(physical_id), "Data": _flatten(response)}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """AwsCustomResource's Data: the response flattened to dotted paths."""
    items: Any
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return {prefix: str(value)} if prefix else {}
    flat: dict[str, Any] = {}
    for key, item in items:
        if key != "ResponseMetadata":
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
    return flat


compat.custom_resource_answerer = answer_custom_resource
compat.response_recorder = record_response
