"""What a state machine's role needs to run a SageMaker job with Step Functions' ``.sync`` integration.

CDK's ``aws_stepfunctions_tasks`` has no Processing job task, and its ``SageMakerCreateTrainingJob``
cannot send managed spot training, checkpoints or a whole request taken from the state (the plan
builds each trial's request), so those states are written by hand and their grants come from here.
They are the statements of AWS's policy for the integration,
https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html ("Run a Job (.sync)"):
Create, Describe and Stop on the job, ``sagemaker:ListTags`` on ``*``, ``iam:PassRole`` of the job's
role to SageMaker only, and the managed EventBridge rule through which Step Functions learns that
the job ended; plus ``sagemaker:AddTags`` on the job, because in ``.sync`` mode Step Functions tags
every job it starts (``MANAGED_BY_AWS=STARTED_BY_STEP_FUNCTIONS``) and the create call is denied
without it (aws/aws-cdk#26012 and #32294; CDK's own SageMaker tasks grant it since).
tests/infra/test_state_machine_iam.py compares every state machine role with these lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

SageMakerJob = Literal["TrainingJob", "ProcessingJob", "TransformJob"]
SAGEMAKER_IAM_DOCUMENTATION = "https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html"


def managed_rule_arn(scope: Construct, job: SageMakerJob) -> str:
    """The EventBridge rule Step Functions creates in the account to wait for jobs of this kind."""
    stack = Stack.of(scope)
    return (
        f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/StepFunctionsGetEventsForSageMaker{job}sRule"
    )


def grant_run_job(
    scope: Construct, role: iam.IRole, *, job: SageMakerJob, jobs: Sequence[str], job_roles: Sequence[iam.IRole]
) -> None:
    """Let ``role`` run ``create<job>.sync`` on the job ARNs ``jobs``, passing only ``job_roles``."""
    # No Sids: CDK's policy minimization merges these with the same statements of other job kinds.
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=[f"sagemaker:Create{job}", f"sagemaker:Describe{job}", f"sagemaker:Stop{job}"],
            resources=list(jobs),
        )
    )
    role.add_to_principal_policy(iam.PolicyStatement(actions=["sagemaker:AddTags"], resources=list(jobs)))
    role.add_to_principal_policy(iam.PolicyStatement(actions=["sagemaker:ListTags"], resources=["*"]))
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[managed_rule_arn(scope, job)],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[job_role.role_arn for job_role in job_roles],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
    )
