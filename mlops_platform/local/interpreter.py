"""moto's Step Functions interpreter runs the deployed state machines, as AWS would (each patch in :mod:`.deviations`).

* the state machines CloudFormation creates live in the interpreter's backend, so StartExecution runs
  the deployed definition (moto's default backend records executions without running them);
* its Lambda tasks run the deployed function's own handler code in this process (:mod:`.functions`);
* ``arn:aws:states:::sagemaker:create*Job.sync`` waits for the job as the optimized integration does:
  it polls Describe*Job until the job (a local process, :mod:`.jobs`) is Completed (the description is
  the task's output) or Failed/Stopped (``States.TaskFailed``, the description as its cause), per
  https://docs.aws.amazon.com/step-functions/latest/dg/connect-sagemaker.html;
* what moto 5.2.5's interpreter lacks or reads otherwise than AWS (tests/integration/test_training_state_machine.py
  shows each on the definition alone): ``$$.Execution.RedriveCount``, ``"RoleArn.$"`` read as a path,
  an SDK ``GetObject``'s ``Body`` as text, a ResultWriter's ``Prefix.$`` from the Map's input, the
  SageMaker integration's error names, and an integer ``ToleratedFailurePercentage``.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

TOLERATED = re.compile(r'"ToleratedFailurePercentage":(\d+)([,}])')
# Create action: (Describe action, its name parameter, its status field)
SAGEMAKER_JOBS = {
    "create_training_job": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "create_processing_job": ("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "create_transform_job": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}


def install() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.stepfunctions import models as sfn_models
    from moto.stepfunctions import responses as sfn_responses
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.result_writer_decl import (
        ResultWriter,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
        StateTaskServiceUnsupported,
    )
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    from mlops_platform.local.compat import _patch

    _patch(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)
    _patch(sfn_responses, "get_backend", lambda account, region: stepfunctions_parser_backends[account][region])
    parse = AmazonStateLanguageParser.parse
    _patch(AmazonStateLanguageParser, "parse", staticmethod(lambda definition: parse(_decimal_tolerance(definition))))
    _patch(LambdaBackend, "invoke", _invoke_in_process)

    evaluation_environment = ExecutionWorker._get_evaluation_environment

    def with_redrive_count(worker: Any) -> Any:
        environment = evaluation_environment(worker)
        execution: Any = environment.states.context_object.context_object_data["Execution"]
        execution.setdefault("RedriveCount", 0)  # a fresh execution; moto cannot redrive
        return environment

    _patch(ExecutionWorker, "_get_evaluation_environment", with_redrive_count)
    _patch(Preprocessor, "visitPayload_binding_value", _role_arn_path(Preprocessor.visitPayload_binding_value))
    _patch(StateTaskServiceAwsSdk, "_eval_service_task", _body_as_text(StateTaskServiceAwsSdk._eval_service_task))
    _patch(ResultWriter, "_eval_body", _writer_reads_the_state_input)
    _patch(iteration_worker, "CustomErrorName", _error_name)
    assert_supported = StateTaskServiceUnsupported._assert_integration_pattern_is_supported

    def sagemaker_sync_supported(task: Any) -> None:
        if not _is_sagemaker_sync(task):
            assert_supported(task)

    _patch(StateTaskServiceUnsupported, "_assert_integration_pattern_is_supported", sagemaker_sync_supported)
    _patch(StateTaskServiceUnsupported, "_build_sync_resolver", _sagemaker_sync_resolver)
    _patch(StateTaskServiceUnsupported, "_from_error", _named_like_aws(StateTaskServiceUnsupported._from_error))


def _decimal_tolerance(definition: str) -> str:
    """moto's ASL grammar reads ToleratedFailurePercentage only as a decimal (50.0), CDK renders 50."""
    return TOLERATED.sub(r'"ToleratedFailurePercentage":\1.0\2', definition)


def _invoke_in_process(
    backend: Any, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> bytes:
    """Lambda's Invoke, answered by the deployed function's handler (its errors as Lambda reports them)."""
    from mlops_platform.local import functions

    event = json.loads(body or b"{}")
    try:
        output = functions.invoke(function_name, event, account=backend.account_id, region=backend.region_name)
        payload = json.dumps(output).encode()
    except Exception as error:  # Lambda's unhandled-error response
        response_headers["x-amz-function-error"] = "Unhandled"
        payload = json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
    response_headers["Content-Length"] = str(len(payload))
    return payload


def _role_arn_path(binding_value: Any) -> Any:
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding import (
        PayloadBindingStringExpressionSimple,
    )
    from moto.stepfunctions.parser.asl.component.common.payload.payloadvalue.payloadvaluelit.payload_value_str import (
        PayloadValueStr,
    )
    from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringJsonPath

    def role_arn_path(preprocessor: Any, ctx: Any) -> Any:
        binding = binding_value(preprocessor, ctx)
        value = binding.payload_value
        if binding.field == "RoleArn.$" and isinstance(value, PayloadValueStr) and value.val.startswith("$."):
            return PayloadBindingStringExpressionSimple(
                field="RoleArn", string_expression_simple=StringJsonPath(value.val)
            )
        return binding

    return role_arn_path


def _body_as_text(sdk_task: Any) -> Any:
    from botocore.response import StreamingBody  # type: ignore[import-untyped]

    def body_as_text(task: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        sdk_task(task, env, *args, **kwargs)
        response = env.stack[-1]
        if isinstance(response, dict) and isinstance(response.get("Body"), StreamingBody):
            response["Body"] = response["Body"].read().decode()

    return body_as_text


def _writer_reads_the_state_input(writer: Any, env: Any) -> None:
    outputs = env.stack.pop()
    env.stack.append(env.states.get_input())
    writer.parargs.eval(env=env)
    parameters = env.stack.pop()
    env.stack.pop()
    env.stack.extend([outputs, parameters])
    writer.resource_eval.eval_resource(env=env)


def _error_name(error_name: str | None) -> Any:
    """A Map iteration that failed with a ``States.`` error passes it on (moto refuses the name)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType

    states = {error.to_name(): error for error in StatesErrorNameType}
    return StatesErrorName(typ=states[error_name]) if error_name in states else CustomErrorName(error_name)


def _is_sagemaker_sync(task: Any) -> bool:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition

    return (
        task._get_boto_service_name() == "sagemaker"
        and task.resource.condition == ResourceCondition.Sync
        and task._get_boto_service_action() in SAGEMAKER_JOBS
    )


def _jsonable(value: Any) -> Any:
    """Step Functions gives SageMaker's timestamps as epoch milliseconds."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return value


def _sagemaker_sync_resolver(
    task: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any], state_credentials: Any
) -> Any:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    if not _is_sagemaker_sync(task):
        raise RuntimeError(f"Unsupported .sync callback procedure in resource {task.resource.resource_arn}")
    describe, name_field, status_field = SAGEMAKER_JOBS[task._get_boto_service_action()]
    client = boto_client_for(
        service="sagemaker", region=resource_runtime_part.region, state_credentials=state_credentials
    )
    name = normalised_parameters[name_field]

    def resolve() -> Any:
        description = getattr(client, describe)(**{name_field: name})
        description.pop("ResponseMetadata", None)
        status = description[status_field]
        if status in ("InProgress", "Stopping"):
            return None
        description = _jsonable(description)
        if status == "Completed":
            return description
        raise FailureEventException(
            FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(  # type: ignore[typeddict-item]  # total=True in moto, one key in AWS
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error="States.TaskFailed",
                        cause=json.dumps(description),
                        resource=task._get_sfn_resource(),
                        resourceType=task._get_sfn_resource_type(),
                    )
                ),
            )
        )

    return resolve


def _named_like_aws(unsupported_error: Any) -> Any:
    """A refused SageMaker call is ``SageMaker.AmazonSageMakerException`` with the SDK's message as its cause."""

    def from_error(task: Any, env: Any, ex: Exception) -> Any:
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]
        from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        if not (isinstance(ex, ClientError) and task._get_boto_service_name() == "sagemaker"):
            return unsupported_error(task, env, ex)
        code, message = ex.response["Error"]["Code"], ex.response["Error"]["Message"]
        status = ex.response["ResponseMetadata"]["HTTPStatusCode"]
        request_id = ex.response["ResponseMetadata"].get("RequestId", "")
        cause = (
            f"{message} (Service: AmazonSageMaker; Status Code: {status}; Error Code: {code}; "
            f"Request ID: {request_id}; Proxy: null)"
        )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName("SageMaker.AmazonSageMakerException"),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]  # total=True in moto, one key in AWS
                taskFailedEventDetails=TaskFailedEventDetails(
                    error="SageMaker.AmazonSageMakerException", cause=cause, resourceType="sagemaker"
                )
            ),
        )

    return from_error
