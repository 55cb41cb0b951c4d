"""Training: images by content hash, tenants as data, the state machine's shape, rules and least privilege."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from config.tenants import PipelineConfig
from mlops_constructs.publishing import CONFIG_PREFIX
from tests.synth import synthesize

STACK = "training"
EVENTS = Path(__file__).resolve().parent.parent / "unit" / "events"
HASH_TAG = re.compile(r":([0-9a-f]{64})$")


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {logical_id: r for logical_id, r in resources.items() if r["Type"] == kind}


def function_environment(resources: dict[str, Any], name: str) -> dict[str, Any]:
    [function] = [r for lid, r in of_type(resources, "AWS::Lambda::Function").items() if lid.startswith(name)]
    return function["Properties"]["Environment"]["Variables"]


def rendered(value: Any) -> str:
    """A template string value with its tokens shown as <…>, for matching."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"]
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(part if isinstance(part, str) else "<token>" for part in value["Fn::Join"][1])
    return json.dumps(value)


def definition(resources: dict[str, Any]) -> dict[str, Any]:
    [machine] = of_type(resources, "AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else "TOKEN" for part in parts)
    return json.loads(text)


def states_of(definition: dict[str, Any]) -> dict[str, Any]:
    """Every state, the Distributed Map's child states included, by name."""
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        if "ItemProcessor" in state:
            found.update(states_of(state["ItemProcessor"]))
    return found


# -- images --------------------------------------------------------------------------------------


def test_training_images_are_referenced_by_their_immutable_content_hash_tag(synthesized, environment, resources):
    assets = json.loads(
        synthesized.template_path(environment, STACK).with_suffix("").with_suffix(".assets.json").read_text()
    )
    plan = function_environment(resources, "PipelinePlanFunction")

    tag = HASH_TAG.search(rendered(plan["TRAINING_IMAGE_URI"]))

    assert tag, plan
    cpu = tag.group(1)
    # No shipped tenant trains on a GPU instance type, so no GPU image is built (test_serving.py builds one where
    # a tenant asks for it).
    assert plan["GPU_TRAINING_IMAGE_URI"] == ""
    assert set(assets["dockerImages"]) == {cpu}
    assert "dockerBuildArgs" not in assets["dockerImages"][cpu]["source"]
    # The evaluate Lambda registers packages that batch transform serves with the CPU image, and
    # describes baseline jobs that run on it.
    evaluate = function_environment(resources, "PipelineEvaluateFunction")
    assert HASH_TAG.search(rendered(evaluate["SERVING_IMAGE_URI"])).group(1) == cpu  # type: ignore[union-attr]
    assert HASH_TAG.search(rendered(evaluate["BASELINE_IMAGE_URI"])).group(1) == cpu  # type: ignore[union-attr]


# -- tenants are data ----------------------------------------------------------------------------


def test_each_tenant_is_published_as_json_for_the_plan_lambda(synthesized, environment, resources):
    [deployment] = [
        r["Properties"]
        for r in of_type(resources, "Custom::CDKBucketDeployment").values()
        if r["Properties"]["DestinationBucketKeyPrefix"] == CONFIG_PREFIX
    ]
    [key] = deployment["SourceObjectKeys"]
    asset = synthesized.outdir / f"asset.{key.removesuffix('.zip')}"

    published = {path.name: json.loads(path.read_text()) for path in asset.glob("*.json")}

    assert published == {f"{p.tenant}.json": p.published() for p in synthesized.config.pipelines}
    assert deployment["Prune"] is True  # a deleted tenant file unpublishes the tenant


def test_the_example_tenants_records_are_seeded_into_the_raw_zone(resources):
    prefixes = [
        r["Properties"]["DestinationBucketKeyPrefix"]
        for r in of_type(resources, "Custom::CDKBucketDeployment").values()
    ]

    assert "raw/example/breast-cancer/dt=2026-01-01/" in prefixes


def tenants(count: int, example: PipelineConfig) -> tuple[PipelineConfig, ...]:
    return tuple(example.model_copy(update={"tenant": f"tenant-{index:03d}"}) for index in range(count))


def test_the_state_machine_does_not_change_with_the_number_of_tenants(platform_config, tmp_path_factory):
    [example] = platform_config.pipelines
    dev = platform_config.model_copy(update={"environments": (platform_config.environment("dev"),)})
    definitions = {}
    for count in (1, 50):
        config = dev.model_copy(update={"pipelines": tenants(count, example)})
        synthesized = synthesize(config, tmp_path_factory.mktemp(f"tenants-{count}"))
        resources = synthesized.template_json("dev", STACK)["Resources"]
        # The definition, and what the state machine may do: which roles it may pass included.
        definitions[count] = (
            of_type(resources, "AWS::StepFunctions::StateMachine"),
            {lid: r for lid, r in of_type(resources, "AWS::IAM::Policy").items() if "StateMachine" in lid},
        )
        assert len(of_type(resources, "AWS::Lambda::Function")) == 6  # no per-tenant functions
        # A role per tenant and job kind (test_tenant_isolation.py).
        job_roles = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith("PipelineTenantJobRoles")]
        assert len(job_roles) == 4 * count

    assert definitions[1] == definitions[50]


# -- the state machine ---------------------------------------------------------------------------


def test_trials_run_in_a_distributed_map_reading_the_plan_from_s3(resources, settings):
    train = definition(resources)["States"]["Train"]

    assert train["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert train["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert train["ItemReader"]["Parameters"]["Key.$"] == "$.plan.plan.Key"
    assert train["MaxConcurrency"] == settings.capacities.training_max_concurrency
    assert train["ToleratedFailurePercentage"] == settings.training.tolerated_failure_percentage
    assert "ResultWriter" in train


def test_each_trial_is_one_synchronous_training_job_with_the_plans_request(resources):
    start = states_of(definition(resources))["StartTraining"]

    assert start["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    parameters = start["Parameters"]
    assert parameters["TrainingJobName.$"] == "$.current.job_name"
    assert parameters["EnableNetworkIsolation"] is False  # jobs must reach EventBridge
    for field in ("AlgorithmSpecification", "HyperParameters", "ResourceConfig", "StoppingCondition"):
        assert parameters[f"{field}.$"] == f"$.item.request.{field}"
    assert parameters["EnableManagedSpotTraining.$"] == "$.item.request.EnableManagedSpotTraining"


def test_quota_throttling_and_5xx_wait_while_validation_errors_fail_the_trial(resources, settings):
    states = states_of(definition(resources))
    catches = {tuple(c["ErrorEquals"]): c for c in states["StartTraining"]["Catch"]}

    # Only the create call's refusals are caught: a job that failed fails the trial where it failed.
    assert set(catches) == {("SageMaker.AmazonSageMakerException",)}
    sagemaker = catches[("SageMaker.AmazonSageMakerException",)]
    assert sagemaker["ResultPath"] == "$.error"
    choice = states[sagemaker["Next"]]
    routes = {}
    for rule in choice["Choices"]:
        conditions = rule.get("Or", [rule])
        routes.update({c["StringMatches"]: rule["Next"] for c in conditions})
    transient = {"*ResourceLimitExceeded*", "*ThrottlingException*", "*Rate exceeded*", "*Status Code: 5*"}
    assert {routes[pattern] for pattern in transient} == {"WaitedTooLong"}
    waited = states["WaitedTooLong"]
    [limit] = waited["Choices"]
    assert limit["Variable"] == "$.wait.waited"
    assert limit["NumericGreaterThanEquals"] == settings.training.capacity_wait_limit_seconds
    # Giving up puts the data point the capacity alarm watches, then fails the trial with a cause.
    report = states[limit["Next"]]
    assert report["Resource"].endswith(":states:::aws-sdk:cloudwatch:putMetricData")
    assert report["Parameters"]["MetricData"] == [{"MetricName": "TrialsGaveUpOnCapacity", "Value": 1, "Unit": "Count"}]
    assert report["Parameters"]["Namespace"] == f"mlops/{settings.name}"
    gave_up = states[report["Next"]]
    assert (gave_up["Type"], gave_up["Error"]) == ("Fail", "CapacityUnavailable")
    assert states[waited["Default"]]["Type"] == "Wait"
    resolve = states[routes["*ResourceInUse*"]]
    assert resolve["Type"] == "Task"
    assert resolve["Parameters"] == {"item.$": "$.item", "current.$": "$.current"}  # the function, invoked directly
    assert states[choice["Default"]] == {
        "Type": "Fail",
        "Error": "TrainingRequestRejected",
        "CausePath": "$.error.Cause",
    }


# A state's history events (GetExecutionHistory's HistoryEvent types): a state is entered and exited;
# a Task adds Scheduled, Started and Succeeded or Failed; a .sync one also Submitted.
EVENTS_PER_STATE = {"Pass": 2, "Choice": 2, "Wait": 2, "Task": 5, "Fail": 1}
CHILD_HISTORY_LIMIT = 25_000  # events in one execution's history, child executions of a Distributed Map too
MAX_ATTEMPTS = 3  # lambda/training_job: attempts a0 … a2


def events_of(state: dict[str, Any]) -> int:
    return EVENTS_PER_STATE[state["Type"]] + (1 if state.get("Resource", "").endswith(".sync") else 0)


def loop_through(states: dict[str, Any], wait: str) -> list[str]:
    """The longest cycle from the Wait state ``wait`` back to it, as state names."""
    longest: list[str] = []

    def walk(name: str, path: list[str]) -> None:
        nonlocal longest
        if name == wait and path:
            longest = max(longest, path, key=lambda p: sum(events_of(states[n]) for n in p))
            return
        if name in path:
            return
        state = states[name]
        catches = [c["Next"] for c in state.get("Catch", [])]
        targets = [state.get("Next"), state.get("Default"), *(c["Next"] for c in state.get("Choices", [])), *catches]
        for target in filter(None, targets):
            walk(target, [*path, name])

    walk(wait, [])
    return longest


def test_a_trials_longest_waits_and_polls_stay_inside_a_child_executions_history(resources):
    """The configuration's longest wait for capacity and SageMaker's longest job, in events."""
    from config.schema import MAX_CAPACITY_WAIT_LIMIT_SECONDS
    from config.tenants import MAX_JOB_SECONDS
    from mlops_constructs.training_trial import (
        FIRST_CAPACITY_WAIT_SECONDS,
        FIRST_POLL_SECONDS,
        MAX_CAPACITY_WAIT_SECONDS,
        MAX_POLL_SECONDS,
    )

    states = definition(resources)["States"]["Train"]["ItemProcessor"]["States"]

    def iterations(total_seconds: int, first: int, cap: int) -> int:
        count, waited, wait = 0, 0, first
        while waited < total_seconds:
            waited, wait, count = waited + wait, min(2 * wait, cap), count + 1
        return count

    capacity_loop = loop_through(states, "WaitForCapacity")
    poll_loop = loop_through(states, "WaitForExistingJob")
    assert "StartTraining" in capacity_loop
    assert "FindExistingJob" in poll_loop
    capacity_events = sum(events_of(states[name]) for name in capacity_loop)
    poll_events = sum(events_of(states[name]) for name in poll_loop)
    # A job SageMaker runs for at most its stopping condition (28 days); a day more for starting and uploading.
    longest_job = MAX_JOB_SECONDS + 86_400
    capacity = iterations(MAX_CAPACITY_WAIT_LIMIT_SECONDS, FIRST_CAPACITY_WAIT_SECONDS, MAX_CAPACITY_WAIT_SECONDS)
    polls = MAX_ATTEMPTS * iterations(longest_job, FIRST_POLL_SECONDS, MAX_POLL_SECONDS)
    every_state_once = sum(events_of(state) for state in states.values()) + 2  # and the execution's start and end
    worst = every_state_once + capacity * capacity_events + polls * poll_events

    assert worst < CHILD_HISTORY_LIMIT, worst
    # Polling every two minutes, as before the back-off, would not fit.
    assert MAX_ATTEMPTS * (longest_job // 120) * poll_events > CHILD_HISTORY_LIMIT


# Failures a redrive can fix are not caught (a redrive restarts the state that failed); those it cannot
# fix end in these Fail states, with the error's cause.
TERMINAL = {
    "PlanFailed",
    "NoUsableTrial",
    "BaselineFailed",
    "TrainingRequestRejected",
    "CapacityUnavailable",
    "GaveUp",
    "ExistingJobUnresolved",
}


def test_only_failures_no_redrive_can_fix_end_in_fail_states(resources):
    states = states_of(definition(resources))
    fails = {name: state for name, state in states.items() if state["Type"] == "Fail"}

    assert set(fails) == TERMINAL
    assert all(state.get("CausePath") == "$.error.Cause" or state.get("Cause") for state in fails.values())
    caught = {name: {e for c in state.get("Catch", []) for e in c["ErrorEquals"]} for name, state in states.items()}
    # The jobs, the Baselines Map and the prediction fail where they failed, so a redrive reruns them.
    for name in ("Prepare", "Baselines", "StartBaseline", "CreatePredictionModel", "Predict"):
        assert caught[name] == set(), name
    assert caught["Plan"] == {
        "InvalidRunRequest", "UnknownTenant", "UnknownModel", "InvalidConfig", "InvalidName", "PlanConflict"
    }  # fmt: skip
    assert caught["Evaluate"] == {"NoUsableTrial"}
    assert caught["Register"] == {"BaselineMissing"}
    assert caught["Train"] == {"States.ExceedToleratedFailureThreshold"}
    assert "States.ALL" not in set().union(*caught.values())


def test_jobs_a_redrive_reruns_are_named_after_the_redrive(resources):
    states = states_of(definition(resources))
    redrive = "$$.Execution.RedriveCount"

    assert states["Prepare"]["Parameters"]["ProcessingJobName.$"] == (
        f"States.Format('{{}}-r{{}}', $.plan.prepare.ProcessingJobName, {redrive})"
    )
    assert states["StartBaseline"]["Parameters"]["ProcessingJobName.$"] == (
        f"States.Format('{{}}-r{{}}', $.job.ProcessingJobName, {redrive})"
    )
    assert states["CreatePredictionModel"]["Parameters"]["ModelName.$"] == (
        f"States.Format('{{}}-r{{}}', $.plan.predict.ModelName, {redrive})"
    )
    assert states["Predict"]["Parameters"]["TransformJobName.$"] == (
        f"States.Format('{{}}-r{{}}', $.plan.predict.TransformJobName, {redrive})"
    )
    # Predict uses the model its run created, even when a redrive reruns Predict alone.
    assert states["CreatePredictionModel"]["ResultPath"] == "$.prediction"
    assert states["Predict"]["Parameters"]["ModelName.$"] == "$.prediction.model_name"


def test_sagemaker_and_lambda_throttling_and_service_errors_are_retried(resources):
    states = states_of(definition(resources))

    def retried(name: str) -> set[str]:
        return {error for retry in states[name].get("Retry", []) for error in retry["ErrorEquals"]}

    for name in ("Prepare", "StartBaseline", "Predict"):
        assert retried(name) == {"SageMaker.AmazonSageMakerException"}, name
        [retry] = states[name]["Retry"]
        assert retry["MaxAttempts"] >= 3
        assert retry["BackoffRate"] == 2
    # AWS SDK integrations name SageMaker's unmodelled errors (throttling, 5xx) so.
    assert retried("CreatePredictionModel") == {"SageMaker.SageMakerException"}
    for name in ("Plan", "Evaluate", "Register", "FindExistingJob"):
        assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= retried(name), name


def test_more_failed_trials_than_tolerated_go_to_evaluation_with_the_maps_error(resources):
    states = definition(resources)["States"]

    [catch] = states["Train"]["Catch"]
    assert catch == {
        "ErrorEquals": ["States.ExceedToleratedFailureThreshold"],
        "ResultPath": "$.training",
        "Next": "Evaluate",
    }
    assert states["Evaluate"]["Parameters"]["results.$"] == "$.training"
    # The results of a stopped Map lie under the run's prefix, where evaluation looks for them.
    assert states["Train"]["ResultWriter"]["Parameters"]["Prefix.$"] == "$.plan.results.Prefix"


def test_predictions_run_only_when_a_model_was_approved(resources):
    states = definition(resources)["States"]

    [rule] = states["AnythingApproved"]["Choices"]
    assert rule == {"Variable": "$.registration.predict", "IsNull": True, "Next": "ReportWithoutPredictions"}
    assert states["AnythingApproved"]["Default"] == "CreatePredictionModel"
    assert states["Predict"]["Resource"].endswith(":states:::sagemaker:createTransformJob.sync")


# -- baselines before registration ---------------------------------------------------------------


def test_evaluation_is_followed_by_one_baseline_job_per_chosen_model_then_registration(resources, settings):
    states = definition(resources)["States"]

    assert states["Evaluate"]["Next"] == "Baselines"
    assert states["Evaluate"]["Parameters"]["action"] == "evaluate"
    baselines = states["Baselines"]
    assert baselines["Type"] == "Map"
    assert baselines["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert baselines["ItemsPath"] == "$.evaluation.selected"
    assert baselines["ItemSelector"] == {
        "model.$": "$$.Map.Item.Value.model",
        "job.$": "$$.Map.Item.Value.baseline_job",
        "role_arn.$": "$.roles.arns.baseline",  # the tenant's baseline role (test_tenant_isolation.py)
    }
    assert baselines["ResultPath"] is None  # the state keeps evaluate's output for register
    assert baselines["Next"] == "Register"
    register = states["Register"]
    assert register["Resource"] == states["Evaluate"]["Resource"]  # the evaluate λ's second entry
    assert register["Parameters"] == {
        "action": "register",
        "run_id.$": "$.plan.run_id",
        "tenant.$": "$.plan.tenant",
        "evaluation.$": "$.evaluation",
    }
    assert register["ResultPath"] == "$.registration"
    assert register["Next"] == "AnythingApproved"
    # The baseline request comes from the evaluate λ, with the environment's processing instance type.
    evaluate = function_environment(resources, "PipelineEvaluateFunction")
    assert evaluate["PROCESSING_INSTANCE_TYPE"] == settings.instance_types.processing


def test_each_baseline_is_a_synchronous_processing_job_with_the_evaluations_request(resources):
    processor = definition(resources)["States"]["Baselines"]["ItemProcessor"]
    start = processor["States"][processor["StartAt"]]

    assert start["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
    parameters = start["Parameters"]
    assert "$.job.ProcessingJobName" in parameters["ProcessingJobName.$"]  # and the redrive count
    # The tenant's baseline role, from the Map's item selector (see the role tests).
    assert parameters["RoleArn.$"] == "$.role_arn"
    assert "RoleArn" not in parameters
    for field in ("AppSpecification", "ProcessingInputs", "ProcessingOutputConfig", "ProcessingResources"):
        assert parameters[f"{field}.$"] == f"$.job.{field}"


def test_a_failed_baseline_fails_the_run_in_its_state_and_nothing_is_registered(resources):
    states = definition(resources)["States"]
    processor = states["Baselines"]["ItemProcessor"]["States"]

    assert "Catch" not in states["Baselines"]
    assert "Catch" not in processor["StartBaseline"]
    # Register is reached only through the Map's success; a baseline it cannot find ends the run.
    assert [state for state in states.values() if state.get("Next") == "Register"] == [states["Baselines"]]
    register_catches = {tuple(c["ErrorEquals"]): c["Next"] for c in states["Register"]["Catch"]}
    assert register_catches == {("BaselineMissing",): "BaselineFailed"}
    assert states["BaselineFailed"] == {"Type": "Fail", "Error": "BaselineFailed", "CausePath": "$.error.Cause"}


# -- least privilege -----------------------------------------------------------------------------


# The example tenant's job roles (mlops_constructs/tenant_job_roles.py): one per job kind.
EXAMPLE_JOBS = "PipelineTenantJobRolesexample"


def policy_statements(resources: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith(role_prefix)]
    return [
        statement
        for policy in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_state_machine_passes_exactly_the_tenant_job_roles_and_only_to_sagemaker(resources, settings):
    statements = policy_statements(resources, "PipelineStateMachineRole")
    passes = [s for s in statements if "iam:PassRole" in s["Action"]]

    roles = set()
    for statement in passes:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        roles |= set(targets)
    # The generated names of the stack's tenant job roles (test_tenant_isolation.py: only those roles match).
    assert roles == {f"arn:aws:iam::{settings.account}:role/{settings.name}-Training-PipelineTenantJobRoles*"}


@pytest.mark.parametrize(
    ("role", "encrypts"),
    [(f"{EXAMPLE_JOBS}TrainRole", True), (f"{EXAMPLE_JOBS}TransformRole", True), (f"{EXAMPLE_JOBS}PrepareRole", False),
     (f"{EXAMPLE_JOBS}BaselineRole", False)],
)  # fmt: skip
def test_roles_of_jobs_whose_output_key_requires_it_may_encrypt_with_the_platform_key(resources, role, encrypts):
    """OutputDataConfig.KmsKeyId and TransformOutput.KmsKeyId: the execution role must be allowed kms:Encrypt."""
    statements = [s for s in policy_statements(resources, role) if "kms:Encrypt" in s["Action"]]

    assert bool(statements) is encrypts
    for statement in statements:
        assert "PlatformKey" in json.dumps(statement["Resource"])


@pytest.mark.parametrize(
    "role",
    [
        f"{EXAMPLE_JOBS}PrepareRole",
        f"{EXAMPLE_JOBS}TrainRole",
        f"{EXAMPLE_JOBS}TransformRole",
        f"{EXAMPLE_JOBS}BaselineRole",
    ],
)
def test_job_roles_are_assumed_by_sagemaker_and_use_no_managed_policy(resources, role):
    [(_, definition_)] = [(lid, r) for lid, r in of_type(resources, "AWS::IAM::Role").items() if lid.startswith(role)]

    [trust] = definition_["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "ManagedPolicyArns" not in definition_["Properties"]


def test_only_the_train_role_puts_events_and_only_on_the_progress_bus(resources):
    for role in (
        f"{EXAMPLE_JOBS}PrepareRole",
        f"{EXAMPLE_JOBS}TransformRole",
        f"{EXAMPLE_JOBS}BaselineRole",
        "PipelineStateMachineRole",
    ):
        assert not [s for s in policy_statements(resources, role) if "events:PutEvents" in s["Action"]]
    [statement] = [
        s for s in policy_statements(resources, f"{EXAMPLE_JOBS}TrainRole") if "events:PutEvents" in s["Action"]
    ]
    [bus_id] = of_type(resources, "AWS::Events::EventBus")
    assert statement["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}


def s3_grants(statements: list[dict[str, Any]], action: str) -> set[str]:
    """The object-key patterns (or ``prefix=`` list conditions) an action is allowed on, buckets as <Zone>."""
    found = set()
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action not in actions:
            continue
        targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for target in targets:
            bucket = re.search(r"([A-Z][a-z]+)ZoneBucket", json.dumps(target)).group(1)  # type: ignore[union-attr]
            if action == "s3:ListBucket":
                [prefix] = statement["Condition"]["StringLike"]["s3:prefix"]
                found.add(f"<{bucket}> prefix={prefix}")
            else:
                found.add(f"<{bucket}>{target['Fn::Join'][1][1]}")
    return found


def test_the_train_role_deletes_only_checkpoints(resources):
    """Jobs keep their latest two checkpoints; SageMaker mirrors the deletions to S3 with the job's role."""
    for role in (f"{EXAMPLE_JOBS}PrepareRole", f"{EXAMPLE_JOBS}TransformRole", f"{EXAMPLE_JOBS}BaselineRole"):
        assert s3_grants(policy_statements(resources, role), "s3:DeleteObject") == set()

    assert s3_grants(policy_statements(resources, f"{EXAMPLE_JOBS}TrainRole"), "s3:DeleteObject") == {
        "<Artifacts>/artifacts/runs/example/*/checkpoints/*"
    }


def test_the_baseline_role_reads_splits_models_and_schemas_and_writes_only_baselines(resources):
    statements = policy_statements(resources, f"{EXAMPLE_JOBS}BaselineRole")

    assert s3_grants(statements, "s3:PutObject") == {"<Artifacts>/artifacts/runs/example/*/baseline.json"}
    assert s3_grants(statements, "s3:GetObject") == {
        "<Features>/features/example/*",
        "<Artifacts>/artifacts/runs/example/*/model.tar.gz",
        "<Artifacts>/artifacts/runs/example/*/feature-schema.json",
    }
    assert s3_grants(statements, "s3:ListBucket") == {
        "<Features> prefix=features/example/*",
        "<Artifacts> prefix=artifacts/runs/example/*",
    }
    allowed = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert not {a for a in allowed if a.startswith(("s3:Delete", "sagemaker:", "iam:", "events:", "dynamodb:"))}


def test_nothing_in_the_platform_uses_sagemaker_full_access(synthesized, environment):
    for stack in ("foundation", "ingestion", "training"):
        assert "AmazonSageMakerFullAccess" not in json.dumps(synthesized.template_json(environment, stack))


# -- progress events -----------------------------------------------------------------------------


def progress_rules(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in of_type(resources, "AWS::Events::Rule").items() if lid.startswith("Progress")}


def rule_patterns(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {lid: r["Properties"]["EventPattern"] for lid, r in progress_rules(resources).items()}


def test_both_progress_rules_deliver_to_the_progress_function_with_a_dead_letter_queue(resources):
    rules = progress_rules(resources)

    assert len(rules) == 2
    for rule in rules.values():
        [target] = rule["Properties"]["Targets"]
        assert target["Arn"]["Fn::GetAtt"][0].startswith("ProgressFunction")
        assert "DeadLetterConfig" in target
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    [on_bus] = [r for r in rules.values() if "EventBusName" in r["Properties"]]
    [on_default] = [r for r in rules.values() if "EventBusName" not in r["Properties"]]
    assert on_bus["Properties"]["EventPattern"]["detail-type"] == ["Training Progress"]
    assert on_default["Properties"]["EventPattern"]["detail-type"] == ["SageMaker Training Job State Change"]


def test_the_rules_match_real_events_and_only_this_environments_jobs(resources, environment):
    state_change = json.loads((EVENTS / "sagemaker_training_job_state_change.json").read_text())
    progress = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Training Progress",
        "source": "mlops.training",
        "account": "111111111111",
        "time": "2026-11-24T12:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"run_id": "r", "tenant": "example", "model": "xgboost", "trial": "00000", "epoch": 3},
    }

    def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
        # moto 5.2.5's TestEventPattern API answers nothing; this is the matcher its buses route with.
        return EventPattern.load(json.dumps(pattern)).matches_event(event)

    ours = {
        **state_change,
        "detail": {**state_change["detail"], "TrainingJobName": f"mlops-{environment}-0a1b2c3d4e-00000-a0"},
    }
    other_environment = "prod" if environment != "prod" else "dev"
    theirs = {
        **state_change,
        "detail": {**state_change["detail"], "TrainingJobName": f"mlops-{other_environment}-0a1b-00000-a0"},
    }
    patterns = list(rule_patterns(resources).values())
    [progress_pattern] = [p for p in patterns if p["detail-type"] == ["Training Progress"]]
    [status_pattern] = [p for p in patterns if p["detail-type"] != ["Training Progress"]]

    assert matches(progress_pattern, progress)
    assert not matches(progress_pattern, state_change)
    assert matches(status_pattern, ours)
    assert not matches(status_pattern, theirs)
    assert not matches(status_pattern, state_change)  # the documented sample's job is not the platform's


# -- how runs end ---------------------------------------------------------------------------------


def test_every_training_executions_status_change_reaches_the_run_outcome_function(resources):
    sample = json.loads((EVENTS / "stepfunctions_execution_status_change.json").read_text())
    [(machine_id, _)] = of_type(resources, "AWS::StepFunctions::StateMachine").items()
    [rule] = [r for lid, r in of_type(resources, "AWS::Events::Rule").items() if lid.startswith("PipelineOutcomes")]
    pattern = rule["Properties"]["EventPattern"]
    [target] = rule["Properties"]["Targets"]

    assert "EventBusName" not in rule["Properties"]  # Step Functions sends to the default bus only
    assert target["Arn"]["Fn::GetAtt"][0].startswith("PipelineOutcomesFunction")
    assert "DeadLetterConfig" in target
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": machine_id}]
    machine = "arn:aws:states:eu-west-1:111111111111:stateMachine:training"
    concrete = json.loads(json.dumps(pattern).replace(json.dumps({"Ref": machine_id}), json.dumps(machine)))
    for status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "RUNNING"):
        event = {**sample, "detail": {**sample["detail"], "stateMachineArn": machine, "status": status}}
        assert EventPattern.load(json.dumps(concrete)).matches_event(event), status
    other = {**sample, "detail": {**sample["detail"], "stateMachineArn": machine + "-other", "status": "FAILED"}}
    assert not EventPattern.load(json.dumps(concrete)).matches_event(other)


def test_the_run_outcome_function_may_update_run_records_and_read_only_its_machines_histories(resources):
    statements = policy_statements(resources, "PipelineOutcomesFunctionRole")
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}

    assert {"dynamodb:UpdateItem", "states:GetExecutionHistory", "sqs:SendMessage"} <= actions
    assert not {a for a in actions if a.startswith(("dynamodb:Delete", "dynamodb:Put", "states:Start", "sagemaker:"))}
    [history] = [s for s in statements if s["Action"] == "states:GetExecutionHistory"]
    assert ":execution:" in json.dumps(history["Resource"])


def test_a_trial_that_gives_up_on_capacity_raises_an_alarm_on_the_environments_topic(resources, environment):
    [alarm] = [
        r["Properties"]
        for lid, r in of_type(resources, "AWS::CloudWatch::Alarm").items()
        if lid.startswith("PipelineCapacityAlarm")
    ]

    # The namespace and metric the trial's ReportCapacityWait state puts (see the trial loop's test).
    assert (alarm["MetricName"], alarm["Namespace"]) == ("TrialsGaveUpOnCapacity", f"mlops/{environment}")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    [action] = alarm["AlarmActions"]
    assert "Foundation" in json.dumps(action)
