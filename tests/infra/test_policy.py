"""Policy gates: cdk-nag (AwsSolutions) and cfn-lint report nothing unacknowledged, and a planted violation fails."""

from __future__ import annotations

import json
import re
import sys

import aws_cdk as cdk
import pytest

from mlops_constructs.nag import acknowledge, render_for_nag
from scripts import policy_gate
from tests.conftest import make_synth
from tests.infra.conftest import ENVIRONMENTS, STACKS


def test_cdk_nag_reports_no_unacknowledged_finding_on_any_stage(synthesized):
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())

    assert policy_gate.nag_findings(synthesized.outdir) == []
    assert all(plugin["conclusion"] == "success" for plugin in report["pluginReports"])


def test_cfn_lint_reports_nothing_on_any_template(synthesized):
    templates = list(policy_gate.stack_templates(synthesized.outdir))

    # Every environment's stacks, and the delivery pipeline's stack (config/pipeline.yaml).
    assert len(templates) == len(ENVIRONMENTS) * len(STACKS) + 1
    assert policy_gate.lint_findings(synthesized.outdir) == []


@pytest.mark.slow
def test_a_planted_violation_makes_make_synth_fail(tmp_path):
    outdir = tmp_path / "cdk.out"
    result = make_synth(f"CDK_OUT={outdir}", f"CDK_APP={sys.executable} tests/infra/planted_violation_app.py")

    assert result.returncode != 0, result.stdout + result.stderr
    # `cdk synth` itself succeeded (the assembly is there); the gate is what failed.
    assert (outdir / "manifest.json").is_file()
    assert "AwsSolutions-S1 at dev/Foundation/PlantedBucket/Resource" in result.stderr
    assert "AwsSolutions-S10 at dev/Foundation/PlantedBucket/Resource" in result.stderr
    assert "policy gate: 2 unacknowledged finding(s)" in result.stderr


def test_the_gate_fails_when_no_validation_report_was_written(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": {}}))

    assert policy_gate.main([str(tmp_path)]) == 1


def test_the_gate_fails_on_a_cfn_lint_error(tmp_path):
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "a while"}},
        }
    }
    (tmp_path / "Broken.template.json").write_text(json.dumps(template))
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            "Broken": {
                "type": "aws:cloudformation:stack",
                "environment": "aws://111111111111/eu-west-1",
                "properties": {"templateFile": "Broken.template.json"},
            }
        },
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "validation-report.json").write_text(json.dumps({"pluginReports": []}))

    findings = policy_gate.lint_findings(tmp_path)

    assert findings
    assert all(finding.startswith("cfn-lint: E") for finding in findings)
    assert policy_gate.main([str(tmp_path)]) == 1


def acknowledgments(synthesized) -> dict[str, dict[str, str]]:
    """Construct path -> {acknowledged finding: reason}, for the whole app."""
    app = synthesized.stages["dev"].node.root
    found: dict[str, dict[str, str]] = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                assert not isinstance(construct, cdk.Stack | cdk.Stage | cdk.App), construct.node.path
                found.setdefault(construct.node.path, {}).update(entry.data)
    return found


# Every acknowledgment of one environment, as cdk-nag names the finding: a new one fails this test
# until someone adds it here with its reason reviewed. Cross-stack bucket references read
# <ZoneBucket>, the account {account}, the environment's job-name prefix mlops-{env}-.
EXPECTED_ACKNOWLEDGMENTS = {
    "Foundation/DataLake/AccessLogsBucket": {
        "AwsSolutions-S1",
    },
    "Ingestion/Ingest/DeadLetterQueue": {
        "AwsSolutions-SQS3",
    },
    "Ingestion/Ingest/FunctionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<IngestFunctionLogs3AD22061.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<RawZoneBucket>/quarantine/*]",
        "AwsSolutions-IAM5[Resource::<RawZoneBucket>/raw/*]",
    },
    "Training/Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C256MiB": {
        "AwsSolutions-L1",
    },
    "Training/Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C256MiB/ServiceRole": {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    },
    "Training/Custom::CDKBucketDeployment8693BB64968944B69AAFB0CC9EB8756C256MiB/ServiceRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
        "AwsSolutions-IAM5[Action::s3:Abort*]",
        "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
        "AwsSolutions-IAM5[Action::s3:GetBucket*]",
        "AwsSolutions-IAM5[Action::s3:GetObject*]",
        "AwsSolutions-IAM5[Action::s3:List*]",
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::cdk-hnb659fds-assets-{account}-eu-west-1/*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/*]",
        "AwsSolutions-IAM5[Resource::<RawZoneBucket>/*]",
    },
    "Training/Pipeline/EvaluateFunctionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<PipelineEvaluateFunctionLogs7514D5B6.Arn>:*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model-package-group/mlops-{env}-*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model-package/mlops-{env}-*/*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/config/pipelines/*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/map-results/*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:training-job/mlops-{env}-*]",
    },
    "Training/Pipeline/PlanFunctionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<PipelinePlanFunctionLogs03E3C02C.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/config/pipelines/*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/*]",
    },
    "Training/Pipeline/TenantJobRoles/example/PrepareRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/sagemaker/ProcessingJobs:*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*]",
        "AwsSolutions-IAM5[Resource::<CuratedZoneBucket>/curated/example/*]",
        "AwsSolutions-IAM5[Resource::<FeaturesZoneBucket>/batch-input/example/*]",
        "AwsSolutions-IAM5[Resource::<FeaturesZoneBucket>/features/example/*]",
        "AwsSolutions-IAM5[Resource::<RawZoneBucket>/raw/example/*]",
    },
    "Training/Pipeline/StateMachine/DistributedMapPolicy": {
        'AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:{account}:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"PipelineStateMachine1814BD05"}]}]}/Trials:*]',
        'AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:{account}:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"PipelineStateMachine1814BD05"}]}]}:*]',
    },
    "Training/Pipeline/StateMachine/Role/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<PipelineEvaluateFunction0886DCF1.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<PipelinePlanFunction365D7064.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<PipelineTrainingJobFunction1EF5665B.Arn>:*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<ArtifactsZoneBucket>/*]",
        # The running tenant's job roles: the mapping it reads, the roles it may pass (tenant_job_roles.py).
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/config/job-roles/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:iam::{account}:role/{env}-Training-PipelineTenantJobRoles*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model-package/mlops-{env}-*/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model/mlops-{env}-*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:processing-job/mlops-{env}-*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:training-job/mlops-{env}-*]",
        # CDK's SageMakerCreateTransformJob grants the account's transform jobs when the name is a path.
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:transform-job/*]",
    },
    "Training/Pipeline/Outcomes/DeadLetterQueue": {
        "AwsSolutions-SQS3",
    },
    "Training/Pipeline/Outcomes/FunctionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<PipelineOutcomesFunctionLogs3E3D3CD8.Arn>:*]",
        'AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:{account}:execution:{"Fn::Select":[6,{"Fn::Split":[":",{"Ref":"PipelineStateMachine1814BD05"}]}]}:*]',
    },
    "Training/Pipeline/TenantJobRoles/example/TrainRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/sagemaker/TrainingJobs:*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*/checkpoints/*]",
        "AwsSolutions-IAM5[Resource::<FeaturesZoneBucket>/features/example/*]",
    },
    "Training/Pipeline/TrainingJobFunctionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<PipelineTrainingJobFunctionLogsC6B50529.Arn>:*]",
        "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:training-job/mlops-{env}-*]",
    },
    "Training/Pipeline/TenantJobRoles/example/TransformRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/sagemaker/TransformJobs:*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*]",
        "AwsSolutions-IAM5[Resource::<FeaturesZoneBucket>/batch-input/example/*]",
        "AwsSolutions-IAM5[Resource::<PredictionsZoneBucket>/predictions/example/*]",
    },
    "Training/Progress/DeadLetterQueue": {
        "AwsSolutions-SQS3",
    },
    "Training/Progress/FunctionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<ProgressFunctionLogs1774FE40.Arn>:*]",
    },
    "Foundation/AWS679f53fac002430cb0da5b7982bd2287": {
        "AwsSolutions-L1",
    },
    "Foundation/AWS679f53fac002430cb0da5b7982bd2287/ServiceRole": {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    },
    "Serving/ExampleEndpoint/ChampionModel": {
        "AwsSolutions-SM1",
        "F3031",
    },
    "Serving/ExampleEndpoint/ModelRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*]",
        "AwsSolutions-IAM5[Resource::<CaptureZoneBucket>/capture/example/example/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/sagemaker/Endpoints/mlops-{env}-example:*]",
    },
    "Serving/Scoring/ApiRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<ScoringApiLogsFF8977B6.Arn>:*]",
    },
    "Serving/Scoring/RestApi/Default/endpoints/example/score/POST": {
        "AwsSolutions-COG4",
    },
    "Serving/Scoring/RestApi/Default/endpoints/example/score/async/POST": {
        "AwsSolutions-COG4",
    },
    "Serving/Scoring/RestApi/Default/endpoints/example/results/{id}/GET": {
        "AwsSolutions-COG4",
    },
    # Each tenant's scoring policy: the wildcard is a result's tracking id, on the tenant's own endpoint only.
    "Serving/Scoring/CallersExample": {
        "AwsSolutions-IAM5[Resource::arn:aws:execute-api:eu-west-1:{account}:<ScoringRestApi8DA2AEB1>/v1/GET/endpoints/example/results/*]",
    },
    "Serving/Scoring/RestApi/CloudWatchRole": {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
    },
    "Serving/Scoring/RestApi/DeploymentStage.v1": {
        "AwsSolutions-APIG3",
    },
    "Serving/Scoring/WorkerRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<ScoringWorkerLogs60AEBED4.Arn>:*]",
    },
    "Serving/Weights/FrameworkCompletionRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::<WeightsFrameworkLogsF7FAAD48.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<WeightsIsCompleteE3D9A672.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<WeightsOnEventFBCE0E19.Arn>:*]",
    },
    "Serving/Weights/FrameworkOnEventRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::<WeightsFrameworkLogsF7FAAD48.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<WeightsIsCompleteE3D9A672.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<WeightsOnEventFBCE0E19.Arn>:*]",
    },
    "Serving/Weights/IsCompleteRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<WeightsIsCompleteLogsED070EE4.Arn>:*]",
    },
    "Serving/Weights/OnEventRole/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<WeightsOnEventLogs3B330307.Arn>:*]",
    },
    "Serving/Weights/Provider/framework-isComplete": {
        "AwsSolutions-L1",
    },
    "Serving/Weights/Provider/framework-onEvent": {
        "AwsSolutions-L1",
    },
    "Serving/Weights/Provider/framework-onTimeout": {
        "AwsSolutions-L1",
    },
    "Serving/Weights/Provider/waiter-state-machine": {
        "AwsSolutions-SF2",
    },
    "Serving/Weights/Provider/waiter-state-machine/Role/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::<WeightsProviderframeworkisCompleteD33F3838.Arn>:*]",
        "AwsSolutions-IAM5[Resource::<WeightsProviderframeworkonTimeout7D454427.Arn>:*]",
    },
}

# The training state machine's baseline step: its jobs read a run's training split, model artifacts
# and feature schema, and write only baseline.json objects.
EXPECTED_ACKNOWLEDGMENTS["Training/Pipeline/TenantJobRoles/example/BaselineRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/sagemaker/ProcessingJobs:*]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*/baseline.json]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*/feature-schema.json]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*/model.tar.gz]",
    "AwsSolutions-IAM5[Resource::<FeaturesZoneBucket>/features/example/*]",
}

# Each tenant's analytics policy (Foundation): its data prefixes and its query results, nothing else.
EXPECTED_ACKNOWLEDGMENTS["Foundation/TenantAnalytics/example/Policy"] = {
    "AwsSolutions-IAM5[Resource::<CuratedZoneBucket.Arn>/curated/example/*]",
    "AwsSolutions-IAM5[Resource::<FeaturesZoneBucket.Arn>/features/example/*]",
    "AwsSolutions-IAM5[Resource::<QueryResultsBucket.Arn>/tenants/example/*]",
}

# Retraining triggers (Monitoring): the trigger's two dead-letter queues, and its function's log
# streams and X-Ray calls.
EXPECTED_ACKNOWLEDGMENTS["Monitoring/RetrainTrigger/DeadLetterQueue"] = {
    "AwsSolutions-SQS3",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/RetrainTrigger/NewDataDeadLetterQueue"] = {
    "AwsSolutions-SQS3",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/RetrainTrigger/FunctionRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::<RetrainTriggerFunctionLogs072E4EC7.Arn>:*]",
    # The training runs it follows, the candidates it awaits, the tenant configs it reads.
    "AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:{account}:execution:<PipelineStateMachine1814BD05Name>:*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model-package/mlops-{env}-*/*]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/config/pipelines/*]",
}

# The approval path (Monitoring): the approval and deployment functions' log streams, X-Ray calls,
# this environment's model packages and the artifacts they read; the deploy project's logs and key;
# the workflow's function versions; the Serving stack it reads and the pointers of endpoints not
# declared yet (the served ones are denied to it).
EXPECTED_ACKNOWLEDGMENTS["Monitoring/ApprovalPath/DeadLetterQueue"] = {
    "AwsSolutions-SQS3",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/ApprovalPath/ApprovalFunctionRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::<ApprovalPathApprovalFunctionLogsD750FCCA.Arn>:*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model-package/mlops-{env}-*/*]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/config/pipelines/*]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:ssm:eu-west-1:{account}:parameter/mlops/{env}/models/*]",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/ApprovalPath/DeploymentFunctionRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::<ApprovalPathDeploymentFunctionLogsF510F2F8.Arn>:*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model-package/mlops-{env}-*/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:eu-west-1:{account}:stack/{env}-Serving/*]",
    # The endpoint check (mlops_constructs/deploy_check.py): CloudFormation names the endpoint configs.
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:endpoint-config/*]",
}
# The delivery pipeline's deploy check (mlops_constructs/deploy_check.py), in every environment: the
# Serving stack's ARN ends in an id, CloudFormation names the endpoint configs, and
# DescribeScalableTargets has no resource-level permissions.
EXPECTED_ACKNOWLEDGMENTS["Serving/DeployCheckAccess/Role/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:eu-west-1:{account}:stack/{env}-Serving/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:endpoint-config/*]",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/ApprovalPath/DeployRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
    "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
    "AwsSolutions-IAM5[Resource::<ApprovalPathDeployLogs1E6DB856.Arn>:*]",
    "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/codebuild/<ApprovalPathDeployProject54D793CF>:*]",
    # Its own stack's change sets and the model pointers (mlops_constructs/approval_deploy.py).
    "AwsSolutions-IAM5[Resource::arn:aws:ssm:eu-west-1:{account}:parameter/mlops/{env}/models/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:eu-west-1:{account}:changeSet/promotion-*/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:eu-west-1:{account}:stack/{env}-Serving/*]",
}
# The promotion's CloudFormation execution role (mlops_constructs/approval_deploy.py): the Serving stack's generated
# names, this environment's endpoints and pointers, and the stacks whose outputs Serving reads.
EXPECTED_ACKNOWLEDGMENTS["Monitoring/ApprovalPath/ServingExecutionRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:eu-west-1:{account}:stack/{env}-Foundation/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:cloudformation:eu-west-1:{account}:stack/{env}-Training/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:iam::{account}:role/{env}-Serving-*]",
    "AwsSolutions-IAM5[Resource::arn:aws:lambda:eu-west-1:{account}:function:{env}-Serving-*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:endpoint-config/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:endpoint/mlops-{env}-*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:model/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:ssm:eu-west-1:{account}:parameter/mlops/{env}/models/*]",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/ApprovalPath/Workflow/Role/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::<ApprovalPathDeploymentFunctionE18139D0.Arn>:*]",
}

# The drift monitor (Monitoring, platform engine): each endpoint's job reads its capture prefix and
# its tenant's baseline.json objects and writes its report prefix; the state machine runs this
# environment's drift jobs only.
EXPECTED_ACKNOWLEDGMENTS["Monitoring/DriftMonitor/ExampleJobRole/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/monitoring/example/mlops-{env}-example/*]",
    "AwsSolutions-IAM5[Resource::<ArtifactsZoneBucket>/artifacts/runs/example/*/baseline.json]",
    "AwsSolutions-IAM5[Resource::<CaptureZoneBucket>/capture/example/example/*]",
    "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:{account}:log-group:/aws/sagemaker/ProcessingJobs:*]",
}
EXPECTED_ACKNOWLEDGMENTS["Monitoring/DriftMonitor/StateMachine/Role/DefaultPolicy"] = {
    "AwsSolutions-IAM5[Resource::*]",
    "AwsSolutions-IAM5[Resource::arn:aws:sagemaker:eu-west-1:{account}:processing-job/mlops-{env}-drift-*]",
}

# The delivery pipeline (stacks/pipeline.py, tooling account 000000000000 in the shipped config), by
# full construct path: the wildcards of the grants CDK Pipelines writes for its own roles (the artifact
# bucket and its key, CodeBuild's logs and report groups, the bootstrap roles self-mutation assumes),
# the artifact bucket's access-log bucket, and the staging smoke-test role's watch over its runs.
PIPELINE_ARTIFACT_GRANTS = {
    "AwsSolutions-IAM5[Action::s3:GetBucket*]",
    "AwsSolutions-IAM5[Action::s3:GetObject*]",
    "AwsSolutions-IAM5[Action::s3:List*]",
    "AwsSolutions-IAM5[Resource::<DeliveryPipelineArtifactsBucketA07FB7E4.Arn>/*]",
}
PIPELINE_ARTIFACT_WRITES = {
    "AwsSolutions-IAM5[Action::s3:Abort*]",
    "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
}
PIPELINE_ARTIFACT_KEY = {
    "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
    "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
}
PIPELINE_CODEBUILD = "arn:aws:codebuild:eu-west-1:000000000000:report-group/"
PIPELINE_LOGS = "arn:aws:logs:eu-west-1:000000000000:log-group:/aws/codebuild/"
PIPELINE_ASSET_PUBLISHING = PIPELINE_ARTIFACT_GRANTS | {
    "AwsSolutions-IAM5[Resource::*]",
    f"AwsSolutions-IAM5[Resource::{PIPELINE_LOGS}*]",
    f"AwsSolutions-IAM5[Resource::{PIPELINE_CODEBUILD}*]",
}


def pipeline_project_grants(project: str) -> set[str]:
    return {
        f"AwsSolutions-IAM5[Resource::{PIPELINE_LOGS}<{project}>:*]",
        f"AwsSolutions-IAM5[Resource::{PIPELINE_CODEBUILD}<{project}>-*]",
    }


EXPECTED_PIPELINE_ACKNOWLEDGMENTS = {
    "Pipeline/Delivery/AccessLogsBucket": {
        "AwsSolutions-S1",
    },
    "Pipeline/Delivery/Pipeline/Pipeline/Role/DefaultPolicy": (
        PIPELINE_ARTIFACT_GRANTS | PIPELINE_ARTIFACT_WRITES | PIPELINE_ARTIFACT_KEY
    ),
    "Pipeline/Delivery/Pipeline/Pipeline/Source/example-org_mlops-platform/CodePipelineActionRole/DefaultPolicy": (
        PIPELINE_ARTIFACT_GRANTS | PIPELINE_ARTIFACT_WRITES | PIPELINE_ARTIFACT_KEY
    ),
    "Pipeline/Delivery/Pipeline/Pipeline/Build/Synth/CdkBuildProject/Role/DefaultPolicy": (
        PIPELINE_ARTIFACT_GRANTS
        | PIPELINE_ARTIFACT_WRITES
        | PIPELINE_ARTIFACT_KEY
        | pipeline_project_grants("DeliveryPipelineBuildSynthCdkBuildProject793F903C")
    ),
    "Pipeline/Delivery/Pipeline/UpdatePipeline/SelfMutation/Role/DefaultPolicy": (
        PIPELINE_ARTIFACT_GRANTS
        | PIPELINE_ARTIFACT_KEY
        | pipeline_project_grants("DeliveryPipelineUpdatePipelineSelfMutationAD4D4227")
        | {"AwsSolutions-IAM5[Resource::*]", "AwsSolutions-IAM5[Resource::arn:*:iam::000000000000:role/*]"}
    ),
    "Pipeline/Delivery/Pipeline/Assets/DockerRole/DefaultPolicy": PIPELINE_ASSET_PUBLISHING,
    "Pipeline/Delivery/Pipeline/Assets/FileRole/DefaultPolicy": PIPELINE_ASSET_PUBLISHING,
    "Pipeline/Delivery/SmokeTestRole/DefaultPolicy": (
        PIPELINE_ARTIFACT_GRANTS
        | PIPELINE_ARTIFACT_KEY
        | pipeline_project_grants("DeliveryPipelinestagingSmokeTestC1292500")
    ),
    **{
        f"Pipeline/Delivery/DeployCheckRole{environment.capitalize()}/DefaultPolicy": (
            PIPELINE_ARTIFACT_GRANTS | PIPELINE_ARTIFACT_KEY | pipeline_project_grants(project)
        )
        for environment, project in (
            ("dev", "DeliveryPipelinedevDeployCheck4AC062E5"),
            ("staging", "DeliveryPipelinestagingDeployCheck38814CB8"),
            ("prod", "DeliveryPipelineprodDeployCheck81F44835"),
        )
    },
    "staging/Serving/SmokeTestAccess/Role/DefaultPolicy": {
        "AwsSolutions-IAM5[Resource::arn:aws:states:eu-west-1:222222222222:execution:"
        '{"Fn::GetStackOutput":{"StackName":"staging-Training","Region":"eu-west-1",'
        '"OutputName":"PublishOutputFnGetAttPipelineStateMachine1814BD05Name066C186C"}}:*]',
    },
}

STACK_OUTPUT = re.compile(
    r'\{"Fn::GetStackOutput":\{"StackName":"\w+-(?:Foundation|Training)","Region":"[\w-]+",'
    r'"OutputName":"PublishOutput(?:FnGetAtt|Ref)(\w+?)(?:Arn)?[0-9A-F]{8}"\}\}'
)


def normalized(finding: str, environment: str, account: str) -> str:
    finding = STACK_OUTPUT.sub(lambda match: f"<{match.group(1)}>", finding.split("::", 1)[1])
    finding = finding.replace(account, "{account}").replace(f"mlops-{environment}-", "mlops-{env}-")
    # Contract names with the environment in other places: pointer paths, stack names.
    finding = finding.replace(f"/mlops/{environment}/", "/mlops/{env}/").replace(
        f":stack/{environment}-", ":stack/{env}-"
    )
    return finding.replace(f":role/{environment}-", ":role/{env}-").replace(
        f":function:{environment}-", ":function:{env}-"
    )


# dev and staging serve the example endpoint's A/B pair: the Challenger's model is acknowledged as the Champion's.
A_B_ACKNOWLEDGMENTS = {
    "Serving/ExampleEndpoint/ChallengerModel": EXPECTED_ACKNOWLEDGMENTS["Serving/ExampleEndpoint/ChampionModel"]
}


def test_every_acknowledgment_sits_on_one_resource_with_a_reason_and_is_known(synthesized):
    found = acknowledgments(synthesized)

    for environment, stage in synthesized.stages.items():
        expected = {**EXPECTED_ACKNOWLEDGMENTS, **(A_B_ACKNOWLEDGMENTS if environment != "prod" else {})}
        for path, findings in expected.items():
            acknowledged = found.pop(f"{environment}/{path}")
            assert {normalized(finding, environment, stage.account) for finding in acknowledged} == findings, path
            assert all(len(reason) >= 20 for reason in acknowledged.values())
    for path, findings in EXPECTED_PIPELINE_ACKNOWLEDGMENTS.items():
        acknowledged = found.pop(path)
        assert {finding.split("::", 1)[1] for finding in acknowledged} == findings, path
        assert all(len(reason) >= 20 for reason in acknowledged.values())
    assert found == {}, "an acknowledgment this test does not know: add it here, with its reason reviewed"


def test_an_acknowledgment_needs_a_real_reason(synthesized):
    with pytest.raises(ValueError, match="needs a reason"):
        acknowledge(synthesized.stages["dev"].foundation, "AwsSolutions-S1", "ok")


@pytest.mark.parametrize(
    ("resolved", "rendered"),
    [
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Logs", "Arn"]}, ":*"]]}, "<Logs.Arn>:*"),
        ({"Fn::Join": ["", [{"Fn::ImportValue": "dev-A:Export"}, "/raw/*"]]}, "dev-A:Export/raw/*"),
        ({"Ref": "Bucket"}, "<Bucket>"),
        (
            {"Fn::GetStackOutput": {"StackName": "s", "Region": "r", "OutputName": "o"}},
            '{"Fn::GetStackOutput":{"StackName":"s","Region":"r","OutputName":"o"}}',
        ),
    ],
)
def test_wildcard_findings_are_named_as_cdk_nag_renders_them(resolved, rendered):
    assert render_for_nag(resolved) == rendered
