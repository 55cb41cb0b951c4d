"""The training state machine's definition: plan, prepare, train, evaluate, baselines, register, predict.

How failures end is described in mlops_constructs/training_states.py; one trial's states are in
mlops_constructs/training_trial.py.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from config.instance_types import has_local_storage
from config.naming import Names
from config.schema import EnvironmentConfig
from mlops_constructs.tenant_job_roles import JOB_ROLES_PREFIX
from mlops_constructs.training_functions import TrainingFunctions, sagemaker_arn
from mlops_constructs.training_roles import Zones
from mlops_constructs.training_states import (
    SDK_SAGEMAKER_ERROR,
    attempt_name,
    attempt_name_token,
    copied,
    fail,
    retry_lambda_throttling,
    retry_sagemaker,
    sagemaker_sync,
)
from mlops_constructs.training_trial import FIRST_CAPACITY_WAIT_SECONDS, FIRST_POLL_SECONDS, trial

# Baseline jobs of one run at a time: a run chooses one model per tenant model, and Processing
# quotas per instance type are small.
BASELINE_MAX_CONCURRENCY = 2
# The plan's typed errors (lambda/plan/handler.py): the request or the config is wrong; a redrive cannot help.
PLAN_ERRORS = ("InvalidRunRequest", "UnknownTenant", "UnknownModel", "InvalidConfig", "InvalidName", "PlanConflict")


def definition(
    scope: Construct,
    *,
    names: Names,
    environment: EnvironmentConfig,
    key: kms.IKey,
    zones: Zones,
    job_roles: iam.IRole,
    functions: TrainingFunctions,
) -> sfn.IChainable:
    """Every state of the training state machine, made in ``scope``.

    Each job runs as its tenant's role of its kind, read from the published mapping after the plan
    (``$.roles.arns.<kind>``, mlops_constructs/tenant_job_roles.py); ``job_roles`` stands for every such
    role, for the grants of CDK's transform task.
    """
    plan = tasks.LambdaInvoke(
        scope,
        "Plan",
        lambda_function=functions.plan.function,
        payload=sfn.TaskInput.from_object(
            {
                "request": sfn.JsonPath.entire_payload,
                "run_id": sfn.JsonPath.execution_name,
                "started_at": sfn.JsonPath.execution_start_time,
                "execution_arn": sfn.JsonPath.execution_id,
            }
        ),
        payload_response_only=True,
        result_path="$.plan",
    )
    read_roles = tasks.CallAwsService(
        scope,
        "ReadJobRoles",
        comment="The tenant's job roles, one per job kind (mlops_constructs/tenant_job_roles.py)",
        service="s3",
        action="getObject",
        iam_action="s3:GetObject",
        iam_resources=[zones.artifacts.arn_for_objects(f"{JOB_ROLES_PREFIX}*")],
        parameters={
            "Bucket": zones.artifacts.bucket_name,
            "Key": sfn.JsonPath.format(f"{JOB_ROLES_PREFIX}{{}}.json", sfn.JsonPath.string_at("$.plan.tenant")),
        },
        result_selector={"arns": sfn.JsonPath.string_to_json(sfn.JsonPath.string_at("$.Body"))},
        result_path="$.roles",
    )
    prepare = sagemaker_sync(
        scope,
        "Prepare",
        "createProcessingJob",
        {
            "ProcessingJobName.$": attempt_name("$.plan.prepare.ProcessingJobName"),
            "RoleArn.$": "$.roles.arns.prepare",
            **copied("$.plan.prepare", "AppSpecification", "ProcessingInputs", "ProcessingOutputConfig"),
            **copied("$.plan.prepare", "ProcessingResources", "StoppingCondition"),
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    train = sfn.DistributedMap(
        scope,
        "Train",
        item_reader=sfn.S3JsonItemReader(bucket=zones.artifacts, key=sfn.JsonPath.string_at("$.plan.plan.Key")),
        item_selector={
            "item": sfn.JsonPath.string_at("$$.Map.Item.Value"),
            "current": {
                "job_name": sfn.JsonPath.string_at("$$.Map.Item.Value.job_name"),
                "attempt": sfn.JsonPath.number_at("$$.Map.Item.Value.attempt"),
            },
            # The next wait for capacity and the seconds waited so far; the next poll of a job in use.
            "wait": {"seconds": FIRST_CAPACITY_WAIT_SECONDS, "waited": 0},
            "poll": {"seconds": FIRST_POLL_SECONDS},
            "role_arn": sfn.JsonPath.string_at("$.roles.arns.train"),
        },
        # Per run (the plan's results prefix), so evaluation finds them even when the Map failed.
        result_writer_v2=sfn.ResultWriterV2(
            bucket=zones.artifacts, prefix=sfn.JsonPath.string_at("$.plan.results.Prefix")
        ),
        max_concurrency=environment.capacities.training_max_concurrency,
        tolerated_failure_percentage=environment.training.tolerated_failure_percentage,
        label="Trials",
        result_path="$.training",
    )
    train.item_processor(
        trial(
            scope,
            names=names,
            job_function=functions.job,
            capacity_wait_limit_seconds=environment.training.capacity_wait_limit_seconds,
        )
    )
    evaluate = _evaluate_action(
        scope,
        functions,
        "evaluate",
        # The Map's output, or its error when more trials failed than it tolerates.
        {"plan": sfn.JsonPath.object_at("$.plan"), "results": sfn.JsonPath.object_at("$.training")},
        result_path="$.evaluation",
    )
    baselines = sfn.Map(
        scope,
        "Baselines",
        items_path="$.evaluation.selected",
        item_selector={
            "model": sfn.JsonPath.string_at("$$.Map.Item.Value.model"),
            "job": sfn.JsonPath.object_at("$$.Map.Item.Value.baseline_job"),
            "role_arn": sfn.JsonPath.string_at("$.roles.arns.baseline"),
        },
        max_concurrency=BASELINE_MAX_CONCURRENCY,
        result_path=sfn.JsonPath.DISCARD,
    )
    baselines.item_processor(_baseline(scope))
    register = _evaluate_action(
        scope,
        functions,
        "register",
        {"evaluation": sfn.JsonPath.object_at("$.evaluation")},
        result_path="$.registration",
    )
    create_model = tasks.CallAwsService(
        scope,
        "CreatePredictionModel",
        service="sagemaker",
        action="createModel",
        iam_action="sagemaker:CreateModel",
        parameters={
            "ModelName": attempt_name_token("$.plan.predict.ModelName"),
            "ExecutionRoleArn": sfn.JsonPath.string_at("$.roles.arns.transform"),
            "Containers": [{"ModelPackageName": sfn.JsonPath.string_at("$.registration.predict.model_package_arn")}],
        },
        iam_resources=[sagemaker_arn(scope, names, "model")],
        additional_iam_statements=[
            # A model made from a package reads the package.
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage"],
                resources=[sagemaker_arn(scope, names, "model-package", "/*")],
            )
        ],
        # Predict names the model it created, even after a redrive of Predict alone.
        result_selector={
            "model_name": sfn.JsonPath.array_get_item(
                sfn.JsonPath.string_split(sfn.JsonPath.string_at("$.ModelArn"), "/"), 1
            )
        },
        result_path="$.prediction",
    )
    predict = _predict(scope, environment, key, job_roles)
    report = {
        "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
        "tenant": sfn.JsonPath.string_at("$.plan.tenant"),
        "trials": sfn.JsonPath.object_at("$.evaluation.trials"),
        "best": sfn.JsonPath.list_at("$.registration.best"),
    }
    with_predictions = sfn.Pass(
        scope,
        "Report",
        parameters={**report, "predictions": sfn.JsonPath.string_at("$.plan.predict.TransformOutput.S3OutputPath")},
    )
    without_predictions = sfn.Pass(
        scope,
        "ReportWithoutPredictions",
        # $.registration.predict is null on this path: the output keeps its shape, predictions null.
        parameters={**report, "predictions": sfn.JsonPath.string_at("$.registration.predict")},
    )
    done = sfn.Succeed(scope, "Done")

    # Only failures no redrive can fix end in Fail states (mlops_constructs/training_states.py).
    plan.add_catch(fail(scope, "PlanFailed"), errors=list(PLAN_ERRORS), result_path="$.error")
    evaluate.add_catch(fail(scope, "NoUsableTrial"), errors=["NoUsableTrial"], result_path="$.error")
    register.add_catch(fail(scope, "BaselineFailed"), errors=["BaselineMissing"], result_path="$.error")
    # More failed trials than tolerated stops the Map; evaluation decides whether what succeeded is enough.
    train.add_catch(evaluate, errors=["States.ExceedToleratedFailureThreshold"], result_path="$.training")
    for lambda_task in (plan, evaluate, register):
        retry_lambda_throttling(lambda_task)
    for sagemaker_task in (prepare, predict):
        retry_sagemaker(sagemaker_task)
    retry_sagemaker(create_model, SDK_SAGEMAKER_ERROR)

    anything_approved = (
        sfn.Choice(scope, "AnythingApproved")
        .when(sfn.Condition.is_null("$.registration.predict"), without_predictions.next(done))
        .otherwise(create_model.next(predict).next(with_predictions).next(done))
    )
    chain = plan.next(read_roles).next(prepare).next(train).next(evaluate).next(baselines).next(register)
    return chain.next(anything_approved)


def _predict(
    scope: Construct, environment: EnvironmentConfig, key: kms.IKey, role: iam.IRole
) -> tasks.SageMakerCreateTransformJob:
    """Batch transform with CDK's task (it grants what the integration needs); the plan names the job and paths.

    The fixed fields are the plan's (lambda/plan/handler.py ``predict_request``); the integration test
    compares the job SageMaker receives with the plan's request.
    """
    volume_key = None if has_local_storage(environment.instance_types.batch_transform) else key
    return tasks.SageMakerCreateTransformJob(
        scope,
        "Predict",
        integration_pattern=sfn.IntegrationPattern.RUN_JOB,
        transform_job_name=attempt_name_token("$.plan.predict.TransformJobName"),
        model_name=sfn.JsonPath.string_at("$.prediction.model_name"),
        role=role,
        transform_input=tasks.TransformInput(
            transform_data_source=tasks.TransformDataSource(
                s3_data_source=tasks.TransformS3DataSource(
                    s3_uri=sfn.JsonPath.string_at("$.plan.predict.TransformInput.DataSource.S3DataSource.S3Uri"),
                    s3_data_type=tasks.S3DataType.S3_PREFIX,
                )
            ),
            content_type="text/csv",
            split_type=tasks.SplitType.LINE,
        ),
        transform_output=tasks.TransformOutput(
            s3_output_path=sfn.JsonPath.string_at("$.plan.predict.TransformOutput.S3OutputPath"),
            encryption_key=key,
            accept="text/csv",
            assemble_with=tasks.AssembleWith.LINE,
        ),
        transform_resources=tasks.TransformResources(
            instance_count=1,
            instance_type=ec2.InstanceType(sfn.JsonPath.string_at("$.plan.predict.TransformResources.InstanceType")),
            volume_encryption_key=volume_key,
        ),
        batch_strategy=tasks.BatchStrategy.MULTI_RECORD,
        max_payload=Size.mebibytes(6),
        result_path=sfn.JsonPath.DISCARD,
    )


def _evaluate_action(
    scope: Construct, functions: TrainingFunctions, action: str, fields: dict[str, Any], *, result_path: str
) -> tasks.LambdaInvoke:
    """The evaluate function's ``action`` (``evaluate``, then ``register``) for the planned run: the state
    is named after the action, and the run's id and tenant lead its payload."""
    return tasks.LambdaInvoke(
        scope,
        action.capitalize(),
        lambda_function=functions.evaluate.function,
        payload=sfn.TaskInput.from_object(
            {
                "action": action,
                "run_id": sfn.JsonPath.string_at("$.plan.run_id"),
                "tenant": sfn.JsonPath.string_at("$.plan.tenant"),
                **fields,
            }
        ),
        payload_response_only=True,
        result_path=result_path,
    )


def _baseline(scope: Construct) -> sfn.IChainable:
    """One chosen model's baseline job (.sync); a redrive reruns a failed one under the next name."""
    start = sagemaker_sync(
        scope,
        "StartBaseline",
        "createProcessingJob",
        {
            "ProcessingJobName.$": attempt_name("$.job.ProcessingJobName"),
            "RoleArn.$": "$.role_arn",
            **copied("$.job", "AppSpecification", "ProcessingInputs", "ProcessingOutputConfig"),
            **copied("$.job", "ProcessingResources", "StoppingCondition"),
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    retry_sagemaker(start)
    return start.next(sfn.Pass(scope, "BaselineDone", parameters={"model": sfn.JsonPath.string_at("$.model")}))
