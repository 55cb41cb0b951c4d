"""The delivery pipeline: stage order, self-mutation, the synth step, Docker, encryption, notifications,
the smoke test's cross-account access, account singletons, and its snapshot.

The pipeline stack comes from the session's one synth of the shipped config (tests/conftest.py),
whose config/pipeline.yaml holds a placeholder tooling account and connection ARN.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from cfnlint.api import ManualArgs, lint_file
from syrupy.extensions.json import JSONSnapshotExtension

from app import build_platform, pinned_cdk_cli_version, read_config
from config import load_config
from mlops_constructs.account_singletons import AccountSingletons
from mlops_constructs.delivery_pipeline import CDK_ASSETS_VERSION, SMOKE_TEST_REQUIREMENTS
from mlops_constructs.pipeline_access import pipeline_smoke_test_role_name
from scripts import policy_gate
from stacks.pipeline import PipelineStack
from tests.conftest import ROOT
from tests.infra.conftest import ENVIRONMENTS, STACKS
from tests.infra.test_snapshots import masked
from tests.synth import CDK_CONTEXT

STACK_ORDER = ("Foundation", "Ingestion", "Training", "Serving", "Monitoring")


@pytest.fixture(scope="module")
def pipeline_stack(synthesized) -> PipelineStack:
    stack = synthesized.stages["dev"].node.root.node.find_child("Pipeline")
    assert isinstance(stack, PipelineStack)
    return stack


@pytest.fixture(scope="module")
def pipeline_json(synthesized, pipeline_stack) -> dict[str, Any]:
    return json.loads((synthesized.outdir / pipeline_stack.template_file).read_text())


@pytest.fixture(scope="module")
def resources(pipeline_json) -> dict[str, Any]:
    return pipeline_json["Resources"]


@pytest.fixture(scope="module")
def template(pipeline_json) -> Template:
    return Template.from_json(pipeline_json)


@pytest.fixture(scope="module")
def delivery(platform_config):
    assert platform_config.delivery_pipeline is not None, "the shipped config has config/pipeline.yaml"
    return platform_config.delivery_pipeline


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {key: resource for key, resource in resources.items() if resource["Type"] == kind}


def stages(resources: dict[str, Any]) -> list[dict[str, Any]]:
    [pipeline] = of_type(resources, "AWS::CodePipeline::Pipeline").values()
    return pipeline["Properties"]["Stages"]


def stage(resources: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [item for item in stages(resources) if item["Name"] == name]
    return found


def action(resources: dict[str, Any], stage_name: str, action_name: str) -> dict[str, Any]:
    [found] = [item for item in stage(resources, stage_name)["Actions"] if item["Name"] == action_name]
    return found


def project_of(resources: dict[str, Any], pipeline_action: dict[str, Any]) -> dict[str, Any]:
    return resources[pipeline_action["Configuration"]["ProjectName"]["Ref"]]["Properties"]


def buildspec(resources: dict[str, Any], pipeline_action: dict[str, Any]) -> dict[str, Any]:
    return json.loads(project_of(resources, pipeline_action)["Source"]["BuildSpec"])


def stack_template(synthesized, environment: str, stack: str) -> dict[str, Any]:
    return synthesized.template_json(environment, stack)


# -- shape and order ---------------------------------------------------------------------------------


def test_the_pipeline_deploys_dev_then_staging_then_waits_for_approval_then_prod(resources):
    assert [item["Name"] for item in stages(resources)] == [
        "Source",
        "Build",
        "UpdatePipeline",
        "Assets",
        "dev",
        "staging",
        "Approval",
        "prod",
    ]
    [approval] = stage(resources, "Approval")["Actions"]
    assert approval["ActionTypeId"] == {"Category": "Approval", "Owner": "AWS", "Provider": "Manual", "Version": "1"}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_environment_stage_deploys_its_five_stacks_in_dependency_order(resources, environment):
    deploys = [item for item in stage(resources, environment)["Actions"] if item["Name"].endswith(".Deploy")]
    names = [item["Configuration"]["StackName"] for item in deploys]
    order = {item["Configuration"]["StackName"]: item["RunOrder"] for item in deploys}

    assert sorted(names) == sorted(f"{environment}-{stack}" for stack in STACK_ORDER)
    assert order[f"{environment}-Foundation"] < order[f"{environment}-Ingestion"]
    assert order[f"{environment}-Foundation"] < order[f"{environment}-Training"]
    assert order[f"{environment}-Training"] <= order[f"{environment}-Monitoring"]
    assert order[f"{environment}-Serving"] < order[f"{environment}-Monitoring"]


def test_it_deploys_the_very_stages_of_direct_deploys_not_copies(synthesized, pipeline_stack):
    """One assembly per environment: the pipeline's deploy actions and `cdk deploy "dev/*"` use the same templates."""
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text())
    assemblies = sorted(
        artifact["properties"]["directoryName"]
        for artifact in manifest["artifacts"].values()
        if artifact["type"] == "cdk:cloud-assembly"
    )
    assert assemblies == [f"assembly-{environment}" for environment in sorted(ENVIRONMENTS)]
    # Nothing is nested under the pipeline stack: its only children are constructs, never Stages.
    assert not [child for child in pipeline_stack.node.find_all() if isinstance(child, cdk.Stage)]
    deployed = {stack.stack_name for environment in ENVIRONMENTS for stack in synthesized.stages[environment].stacks}
    assert deployed == {f"{environment}-{stack}" for environment in ENVIRONMENTS for stack in STACK_ORDER}


def test_deploys_assume_each_target_accounts_bootstrap_roles(resources, platform_config):
    for environment in platform_config.environments:
        deploys = [item for item in stage(resources, environment.name)["Actions"] if item["Name"].endswith(".Deploy")]
        for item in deploys:
            role = json.dumps(item["RoleArn"])
            assert f":iam::{environment.account}:role/cdk-hnb659fds-deploy-role-{environment.account}-" in role


# -- source, synth, self-mutation, assets ------------------------------------------------------------


def test_the_source_is_the_configured_connection(resources, delivery):
    [source] = stage(resources, "Source")["Actions"]

    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == delivery.source.connection_arn
    assert source["Configuration"]["FullRepositoryId"] == delivery.source.repository
    assert source["Configuration"]["BranchName"] == delivery.source.branch
    assert source["Configuration"]["DetectChanges"] is True


def test_the_source_role_may_use_the_connection_under_its_own_arns_prefix(resources, delivery):
    """IAM matches an action's service prefix with the resource's: a codeconnections ARN needs
    codeconnections:UseConnection (https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html)."""
    arn = delivery.source.connection_arn
    prefix = arn.split(":")[2]
    [source] = stage(resources, "Source")["Actions"]
    role = source["RoleArn"]["Fn::GetAtt"][0]
    granted = {
        (action_name, json.dumps(resource))
        for policy in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action_name in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        for resource in (
            [statement["Resource"]] if not isinstance(statement["Resource"], list) else statement["Resource"]
        )
    }
    assert (f"{prefix}:UseConnection", json.dumps(arn)) in granted


def test_the_synth_step_runs_make_test_then_make_synth_without_docker(resources):
    synth = action(resources, "Build", "Synth")
    spec = buildspec(resources, synth)
    project = project_of(resources, synth)

    assert spec["phases"]["build"]["commands"] == ["make test", "make synth"]
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20"}
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    assert project["Environment"]["Image"] == "aws/codebuild/standard:7.0"
    assert project["Environment"]["PrivilegedMode"] is False
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make synth" in readme


def test_self_mutation_is_on_with_the_pinned_cdk_cli(resources):
    mutate = action(resources, "UpdatePipeline", "SelfMutate")
    spec = buildspec(resources, mutate)

    assert spec["phases"]["install"]["commands"] == [f"npm install -g aws-cdk@{pinned_cdk_cli_version()}"]
    assert spec["phases"]["build"]["commands"] == ["cdk -a . deploy Pipeline --require-approval=never --verbose"]
    assert project_of(resources, mutate)["Environment"]["PrivilegedMode"] is False


def image_assets(synthesized) -> set[tuple[str, str]]:
    """(asset hash, account) of every Docker image asset the environments' stacks need published."""
    found = set()
    for manifest in synthesized.outdir.glob("assembly-*/*.assets.json"):
        for asset_hash, asset in json.loads(manifest.read_text()).get("dockerImages", {}).items():
            for destination in asset["destinations"].values():
                account = re.search(r":iam::(\d{12}):role/", destination["assumeRoleArn"])
                assert account is not None, destination
                found.add((asset_hash, account.group(1)))
    return found


def test_docker_builds_and_pushes_every_image_in_a_privileged_project_only(synthesized, resources):
    docker = action(resources, "Assets", "DockerAssets")
    project = project_of(resources, docker)
    spec_file = synthesized.outdir / project["Source"]["BuildSpec"]
    commands = json.loads(spec_file.read_text())["phases"]["build"]["commands"]
    published = {
        (match.group(1), match.group(2))
        for match in (re.search(r'publish "([0-9a-f]{64}):(\d{12})-', command) for command in commands)
        if match
    }
    expected = image_assets(synthesized)

    assert project["Environment"]["PrivilegedMode"] is True
    # Training and inference, CPU only (the shipped config runs no GPU: tests/infra/test_serving.py), pushed to
    # every environment's account.
    assert len({asset_hash for asset_hash, _ in expected}) == 2
    assert {account for _, account in expected} == {"111111111111", "222222222222", "333333333333"}
    assert published == expected
    assert json.loads(spec_file.read_text())["phases"]["install"]["commands"] == [
        f"npm install -g cdk-assets@{CDK_ASSETS_VERSION}"
    ]
    privileged = {
        key
        for key, resource in of_type(resources, "AWS::CodeBuild::Project").items()
        if resource["Properties"]["Environment"]["PrivilegedMode"]
    }
    assert privileged == {docker["Configuration"]["ProjectName"]["Ref"]}


# -- encryption ----------------------------------------------------------------------------------------


def test_artifacts_builds_logs_and_messages_are_encrypted_with_customer_managed_keys(resources, template):
    keys = of_type(resources, "AWS::KMS::Key")
    assert keys
    assert all(key["Properties"]["EnableKeyRotation"] is True for key in keys.values())
    [pipeline] = of_type(resources, "AWS::CodePipeline::Pipeline").values()
    artifact_key = pipeline["Properties"]["ArtifactStore"]["EncryptionKey"]["Id"]["Fn::GetAtt"][0]
    assert artifact_key in keys
    for project in of_type(resources, "AWS::CodeBuild::Project").values():
        assert project["Properties"]["EncryptionKey"] == {"Fn::GetAtt": [artifact_key, "Arn"]}
        assert project["Properties"]["LogsConfig"]["CloudWatchLogs"]["Status"] == "ENABLED"
    [topic] = of_type(resources, "AWS::SNS::Topic").values()
    [group] = of_type(resources, "AWS::Logs::LogGroup").values()
    own_key = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    assert own_key in keys
    assert own_key != artifact_key
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [own_key, "Arn"]}
    for bucket in of_type(resources, "AWS::S3::Bucket").values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
        assert bucket["Properties"]["BucketEncryption"]
    for policy in of_type(resources, "AWS::S3::BucketPolicy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"]["Bool"] == {"aws:SecureTransport": "false"} for s in statements
        )


def test_the_artifact_bucket_logs_access_to_a_bucket_s3_can_deliver_to(resources):
    buckets = of_type(resources, "AWS::S3::Bucket")
    [artifacts] = [b for b in buckets.values() if "KMSMasterKeyID" in json.dumps(b["Properties"]["BucketEncryption"])]
    [logs_key] = [key for key, b in buckets.items() if "AES256" in json.dumps(b["Properties"]["BucketEncryption"])]

    assert artifacts["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_key}


# -- notifications ---------------------------------------------------------------------------------------


def test_failed_runs_and_waiting_approvals_notify_the_pipelines_own_topic(resources, delivery):
    [topic_key] = of_type(resources, "AWS::SNS::Topic")
    rules = [rule["Properties"] for rule in of_type(resources, "AWS::Events::Rule").values()]
    patterns = {json.dumps(rule["EventPattern"], sort_keys=True): rule for rule in rules}

    failed = {
        "detail": {"pipeline": ["mlops-delivery"], "state": ["FAILED"]},
        "detail-type": ["CodePipeline Pipeline Execution State Change"],
        "source": ["aws.codepipeline"],
    }
    approval = {
        "detail": {"pipeline": ["mlops-delivery"], "state": ["STARTED"], "type": {"category": ["Approval"]}},
        "detail-type": ["CodePipeline Action Execution State Change"],
        "source": ["aws.codepipeline"],
    }
    for pattern in (failed, approval):
        rule = patterns[json.dumps(pattern, sort_keys=True)]
        [target] = rule["Targets"]
        assert target["Arn"] == {"Ref": topic_key}
    [pipeline] = of_type(resources, "AWS::CodePipeline::Pipeline").values()
    assert pipeline["Properties"]["Name"] == "mlops-delivery"


def test_eventbridge_may_use_the_topics_key_and_publish_to_it(resources):
    [topic] = of_type(resources, "AWS::SNS::Topic").values()
    key = resources[topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]]
    statements = key["Properties"]["KeyPolicy"]["Statement"]

    # EventBridge for this account only: no grant without the condition (CDK's SnsTopic target adds one).
    [events] = [s for s in statements if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert set(events["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert events["Condition"] == {"StringEquals": {"aws:SourceAccount": "000000000000"}}
    services = {json.dumps(s.get("Principal")) for s in statements}
    assert '{"Service": "s3.amazonaws.com"}' not in services  # only what writes to it
    [policy] = of_type(resources, "AWS::SNS::TopicPolicy").values()
    publishers = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if isinstance(s.get("Principal"), dict) and "Service" in s["Principal"]
    ]
    assert {s["Principal"]["Service"] for s in publishers} >= {"events.amazonaws.com"}
    assert all(s["Condition"] == {"StringEquals": {"aws:SourceAccount": "000000000000"}} for s in publishers)


# -- the smoke test --------------------------------------------------------------------------------------


def test_the_smoke_test_runs_last_in_staging_with_the_stacks_outputs(resources, delivery):
    smoke = action(resources, "staging", "SmokeTest")
    others = [item["RunOrder"] for item in stage(resources, "staging")["Actions"] if item["Name"] != "SmokeTest"]
    variables = {v["name"]: v["value"] for v in json.loads(smoke["Configuration"]["EnvironmentVariables"])}
    project = project_of(resources, smoke)
    environment = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
    spec = buildspec(resources, smoke)

    assert smoke["RunOrder"] > max(others)
    assert re.fullmatch(r"#\{stagingServing\w+\.ScoringApiUrl\}", variables["SCORING_API_URL"])
    assert re.fullmatch(r"#\{stagingTraining\w+\.StateMachineArn\}", variables["STATE_MACHINE_ARN"])
    assert environment == {
        "SMOKE_TEST_ROLE_ARN": "arn:aws:iam::222222222222:role/mlops-staging-smoke-test",
        "SMOKE_TEST_ENDPOINT": "example",
        "SMOKE_TEST_TENANT": "example",
        "SMOKE_TEST_MODELS": ",".join(delivery.smoke_test.training_models),
        "SMOKE_TEST_TIMEOUT_SECONDS": str(delivery.smoke_test.timeout_minutes * 60 - 300),
    }
    assert project["TimeoutInMinutes"] == delivery.smoke_test.timeout_minutes
    assert spec["phases"]["build"]["commands"] == ["python -m mlops_platform.cli smoke-test"]
    # The smoke test reads the repository (config/pipelines, data/example): its input is the source.
    assert smoke["InputArtifacts"] == action(resources, "Build", "Synth")["InputArtifacts"]
    for dev_or_prod in ("dev", "prod"):
        names = [item["Name"] for item in stage(resources, dev_or_prod)["Actions"]]
        assert "SmokeTest" not in names
        assert all(name.endswith(".Prepare") or name.endswith(".Deploy") or name == "DeployCheck" for name in names)


def test_the_smoke_test_build_may_assume_only_stagings_smoke_test_role(resources):
    [role_key] = [
        key
        for key, role in of_type(resources, "AWS::IAM::Role").items()
        if role["Properties"].get("RoleName") == pipeline_smoke_test_role_name("mlops")
    ]
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_key} in p["Properties"]["Roles"]
    ]
    assume = [s for statements in policies for s in statements if "sts:AssumeRole" in json.dumps(s["Action"])]

    assert assume == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Resource": "arn:aws:iam::222222222222:role/mlops-staging-smoke-test",
        }
    ]


def test_staging_trusts_only_the_smoke_test_build_and_lets_it_score_and_train(synthesized):
    resources = stack_template(synthesized, "staging", "serving")["Resources"]
    [(role_key, role)] = [
        (key, r)
        for key, r in of_type(resources, "AWS::IAM::Role").items()
        if r["Properties"].get("RoleName") == "mlops-staging-smoke-test"
    ]
    [policy] = [
        p for p in of_type(resources, "AWS::IAM::Policy").values() if {"Ref": role_key} in p["Properties"]["Roles"]
    ]
    statements = {json.dumps(s["Action"]): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}

    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": "arn:aws:iam::000000000000:root"}
    assert trust["Condition"] == {
        "ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::000000000000:role/mlops-delivery-smoke-test"}
    }
    assert set(statements) == {
        '"execute-api:Invoke"',
        '"states:StartExecution"',
        '["states:DescribeExecution", "states:StopExecution"]',
    }
    invoke = json.dumps(statements['"execute-api:Invoke"']["Resource"])
    assert invoke.endswith('"/v1/POST/endpoints/example/score"]]}')
    assert "StateMachine" in json.dumps(statements['"states:StartExecution"']["Resource"])


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_other_environments_grant_the_pipeline_only_their_deploy_check(synthesized, environment):
    resources = stack_template(synthesized, environment, "serving")["Resources"]
    trusting = [
        role["Properties"]["RoleName"]
        for role in of_type(resources, "AWS::IAM::Role").values()
        if "000000000000" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]

    assert "smoke-test" not in json.dumps(resources)
    # Read-only access to its own endpoints (tests/infra/test_deploy_check.py checks what it may read).
    assert trusting == [f"mlops-{environment}-deploy-check"]


def test_a_subset_of_environments_builds_no_pipeline_but_staging_keeps_the_smoke_test_role(platform_config):
    """`make deploy ENV=staging` must not delete the role the pipeline's smoke test assumes."""
    app = cdk.App(context=CDK_CONTEXT)
    config = load_config(ROOT / "config", selected_environments="staging")
    stages = build_platform(app, config)

    assert app.node.try_find_child("Pipeline") is None
    assert stages["staging"].serving.node.try_find_child("SmokeTestAccess") is not None


def test_without_a_pipeline_file_there_is_no_pipeline_and_no_smoke_test_role(platform_config):
    app = cdk.App(context=CDK_CONTEXT)
    stages = build_platform(app, platform_config.model_copy(update={"delivery_pipeline": None}))

    assert app.node.try_find_child("Pipeline") is None
    assert stages["staging"].serving.node.try_find_child("SmokeTestAccess") is None


def test_committed_context_weights_are_what_the_pipeline_deploys():
    """`"variantWeights"` in cdk.json's context reaches the config as `-c variantWeights` does on a laptop."""
    committed = {"prod": {"example": {"Champion": 70}}}
    app = cdk.App(context={**CDK_CONTEXT, "variantWeights": committed})

    config = read_config(app)

    [variant] = config.environment("prod").serving.endpoints["example"].variants
    assert variant.weight == 70
    dev_weights = [v.weight for v in config.environment("dev").serving.endpoints["example"].variants]
    assert dev_weights == [90, 10]


def test_smoke_test_requirements_are_pinned_as_in_the_requirements_files():
    pins = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.split("==", 1)
                pins[package.strip().lower()] = version.strip()

    for requirement in SMOKE_TEST_REQUIREMENTS:
        package, version = requirement.split("==")
        assert pins[package.lower()] == version, requirement


# -- account singletons ----------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", [True, False])
def test_registry_scanning_exists_only_in_the_owning_environment(owner):
    stack = cdk.Stack(cdk.App(), "Bare")
    AccountSingletons(stack, "AccountSingletons", owner=owner)
    template = Template.from_stack(stack)

    template.resource_count_is("AWS::ECR::RegistryScanningConfiguration", 1 if owner else 0)
    if owner:
        template.has_resource_properties(
            "AWS::ECR::RegistryScanningConfiguration",
            {
                "ScanType": "BASIC",
                "Rules": [
                    {"ScanFrequency": "SCAN_ON_PUSH", "RepositoryFilters": [{"Filter": "*", "FilterType": "WILDCARD"}]}
                ],
            },
        )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_shipped_environment_owns_its_accounts_scanning(synthesized, platform_config, environment):
    settings = platform_config.environment(environment)
    template = Template.from_json(stack_template(synthesized, environment, "foundation"))

    assert settings.owns_account_singletons
    template.resource_count_is("AWS::ECR::RegistryScanningConfiguration", 1)


# -- policy gates and snapshot --------------------------------------------------------------------------


def test_the_pipeline_template_is_among_the_gated_templates_and_lints_clean(synthesized, pipeline_stack, delivery):
    path = synthesized.outdir / pipeline_stack.template_file
    gated = dict(policy_gate.stack_templates(synthesized.outdir))

    assert gated[path] == delivery.region
    assert len(gated) == len(ENVIRONMENTS) * len(STACKS) + 1
    assert list(lint_file(Path(path), config=ManualArgs(regions=[delivery.region]))) == []


def test_cdk_nag_checked_the_pipeline_and_found_nothing_unacknowledged(synthesized):
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    paths = [
        construct["constructPath"]
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]

    assert [path for path in paths if path.startswith("Pipeline/")] == []


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_pipeline_template_matches_its_snapshot(pipeline_json, snapshot_json):
    assert masked(pipeline_json) == snapshot_json
