"""Pipeline: the delivery pipeline in the tooling account, deploying every environment's Stage in order.

Stateless: its artifacts are rebuilt by each run. It deploys the same ``PlatformStage`` objects
that app.py builds for direct deploys (``cdk deploy "dev/*"``), not copies nested under this
stack, so both paths deploy one set of templates and synth builds each environment once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from config.naming import Names
from config.schema import SMOKE_TESTED_ENVIRONMENT, DeliveryPipelineConfig, ProjectConfig
from mlops_constructs.delivery_pipeline import DeliveryPipeline, DeployCheckTarget, SmokeTestTarget
from mlops_constructs.deploy_check import DeployCheckAccess, deploy_check_role_name, pipeline_deploy_check_role_name
from mlops_constructs.encryption import PipelineKey
from mlops_constructs.notifications import NotificationTopic
from mlops_constructs.pipeline_access import SmokeTestAccess, pipeline_smoke_test_role_name
from stacks.stage import PlatformStage


def _output(stack: Stack, output_id: str) -> CfnOutput:
    output = stack.node.find_child(output_id)
    if not isinstance(output, CfnOutput):
        raise TypeError(f"{output.node.path} is not a CfnOutput")
    return output


def add_smoke_test_access(stage: PlatformStage, *, project: ProjectConfig, settings: DeliveryPipelineConfig) -> None:
    """The role the pipeline's smoke test assumes, in the tested environment's Serving stack.

    app.py calls this on the one staging Stage that both deploy paths use, so a direct deploy of
    staging keeps the role the pipeline needs. Serving holds it: it may refer to Training's state
    machine and holds the scoring API itself.
    """
    access = SmokeTestAccess(
        stage.serving,
        "SmokeTestAccess",
        names=Names(project=project.name, environment=stage.stage_name),
        api=stage.serving.scoring.api,
        state_machine=stage.training.pipeline.state_machine,
        tooling_account=settings.account,
        tooling_role_name=pipeline_smoke_test_role_name(project.name),
    )
    CfnOutput(stage.serving, "SmokeTestRoleArn", value=access.role.role_arn)


def add_deploy_check_access(stage: PlatformStage, *, project: ProjectConfig, settings: DeliveryPipelineConfig) -> None:
    """The role the pipeline's deploy check assumes, in each environment's Serving stack.

    app.py calls this on every Stage that both deploy paths use, so a direct deploy keeps the role
    the pipeline needs. Serving holds it: it reads Serving's own stack and endpoints.
    """
    names = Names(project=project.name, environment=stage.stage_name)
    DeployCheckAccess(
        stage.serving,
        "DeployCheckAccess",
        names=names,
        stack_name=stage.serving.stack_name,
        endpoint_names=sorted(names.resource(key) for key in stage.serving.endpoints),
        tooling_account=settings.account,
        tooling_role_name=pipeline_deploy_check_role_name(project.name, stage.stage_name),
    )


def deploy_check_target(stage: PlatformStage, project: ProjectConfig) -> DeployCheckTarget:
    names = Names(project=project.name, environment=stage.stage_name)
    return DeployCheckTarget(
        stack_name=stage.serving.stack_name,
        prefix=names.prefix,
        role_name=deploy_check_role_name(names),
    )


class PipelineStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project: ProjectConfig,
        settings: DeliveryPipelineConfig,
        stages: Sequence[PlatformStage],
        cli_version: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        key = PipelineKey(self, "PipelineKey", alias=f"alias/{project.name}/delivery/pipeline").key
        topic = NotificationTopic(
            self,
            "Notifications",
            key=key,
            display_name=f"ML platform {project.name}: delivery pipeline",
            emails=settings.notifications.emails,
        ).topic
        tested = next(stage for stage in stages if stage.stage_name == SMOKE_TESTED_ENVIRONMENT)
        self.delivery = DeliveryPipeline(
            self,
            "Delivery",
            project=project.name,
            settings=settings,
            stages=stages,
            smoke_test=SmokeTestTarget(
                stage=tested,
                scoring_api_url=_output(tested.serving, "ScoringApiUrl"),
                state_machine_arn=_output(tested.training, "StateMachineArn"),
            ),
            deploy_checks={stage.stage_name: deploy_check_target(stage, project) for stage in stages},
            cli_version=cli_version,
            key=key,
            topic=topic,
        )
        CfnOutput(self, "PipelineName", value=self.delivery.pipeline_name)
        CfnOutput(self, "NotificationTopicArn", value=topic.topic_arn)
