"""Tenants apart in the lake and the jobs (issue 17 point 4), read from the synthesized policies.

Three tenants, ``alpha``, ``alpha-b`` (a name that ``alpha`` is a prefix of) and ``beta``: each job
role and each analytics policy of one tenant is evaluated (tests/iam_policy.py) against the keys
of the others, and against its own as a control.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_constructs.tenant_analytics import workgroup_name
from mlops_constructs.tenant_job_roles import JOB_KINDS, JOB_ROLES_PREFIX
from tests.iam_policy import allows
from tests.infra.test_training import of_type
from tests.synth import synthesize

TENANTS = ("alpha", "alpha-b", "beta")
ACCOUNT = "111111111111"
REGION = "eu-west-1"
ZONES = ("Raw", "Curated", "Features", "Artifacts", "Predictions", "Capture", "QueryResults")
ROLE_NAMES = {"prepare": "PrepareRole", "train": "TrainRole", "transform": "TransformRole", "baseline": "BaselineRole"}


def bucket(zone: str) -> str:
    return f"{zone.lower()}-bucket"


def resolve(value: Any) -> Any:
    """A policy's value with CloudFormation's functions replaced by the names of this test."""
    if isinstance(value, list):
        return [resolve(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
        return {key: resolve(item) for key, item in value.items()}
    (function, argument), *_ = value.items()
    if function == "Fn::Join":
        return argument[0].join(resolve(part) for part in argument[1])
    if function == "Ref":
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
        zone = _zone_of(argument)
        return pseudo.get(argument, bucket(zone) if zone else argument)
    if function == "Fn::GetStackOutput":  # Foundation's buckets, seen from Training
        output = argument["OutputName"]
        zone = _zone_of(output)
        if zone is None:
            return output
        return f"arn:aws:s3:::{bucket(zone)}" if "Arn" in output else bucket(zone)
    if function == "Fn::GetAtt":
        zone = _zone_of(argument[0])
        if zone is not None and argument[1] == "Arn":
            return f"arn:aws:s3:::{bucket(zone)}"
        return f"<{argument[0]}.{argument[1]}>"
    raise AssertionError(f"unexpected function {function}")


def _zone_of(name: str) -> str | None:
    return next((zone for zone in ZONES if f"{zone}Bucket" in name or f"{zone}ZoneBucket" in name), None)


@pytest.fixture(scope="module")
def templates(platform_config, tmp_path_factory) -> dict[str, dict[str, Any]]:
    [example] = platform_config.pipelines
    pipelines = tuple(example.model_copy(update={"tenant": tenant}) for tenant in TENANTS)
    dev = platform_config.model_copy(update={"environments": (platform_config.environment("dev"),)})
    synthesized = synthesize(dev.model_copy(update={"pipelines": pipelines}), tmp_path_factory.mktemp("three-tenants"))
    return {stack: synthesized.template_json("dev", stack)["Resources"] for stack in ("foundation", "training")}


def role_statements(resources: dict[str, Any], tenant: str, kind: str) -> list[dict[str, Any]]:
    prefix = f"PipelineTenantJobRoles{tenant.replace('-', '')}{ROLE_NAMES[kind]}"
    [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith(prefix)]
    return [
        statement
        for policy in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in resolve(policy["Properties"]["PolicyDocument"]["Statement"])
    ]


def tenant_keys(tenant: str) -> dict[str, str]:
    """An object of each prefix a tenant's jobs use, as S3 object ARNs."""
    return {
        "raw": f"arn:aws:s3:::{bucket('Raw')}/raw/{tenant}/records/dt=2026-01-01/part-0.jsonl",
        "config": f"arn:aws:s3:::{bucket('Artifacts')}/artifacts/config/pipelines/{tenant}.json",
        "curated": f"arn:aws:s3:::{bucket('Curated')}/curated/{tenant}/records/dt=2026-01-01/part-0.parquet",
        "features": f"arn:aws:s3:::{bucket('Features')}/features/{tenant}/records/dt=2026-01-01/train.csv",
        "batch": f"arn:aws:s3:::{bucket('Features')}/batch-input/{tenant}/records/run-1/test.csv",
        "model": f"arn:aws:s3:::{bucket('Artifacts')}/artifacts/runs/{tenant}/run-1/models/job/output/model.tar.gz",
        "checkpoint": f"arn:aws:s3:::{bucket('Artifacts')}/artifacts/runs/{tenant}/run-1/checkpoints/00001/c.json",
        "baseline": f"arn:aws:s3:::{bucket('Artifacts')}/artifacts/runs/{tenant}/run-1/models/job/output/baseline.json",
        "predictions": f"arn:aws:s3:::{bucket('Predictions')}/predictions/{tenant}/records/run-1/test.csv.out",
    }


# What each job kind may do to its own tenant's objects: the control that the evaluation can say yes.
OWN_ACCESS = {
    "prepare": [("s3:GetObject", "raw"), ("s3:GetObject", "config"), ("s3:PutObject", "curated")],
    "train": [("s3:GetObject", "features"), ("s3:PutObject", "model"), ("s3:DeleteObject", "checkpoint")],
    "transform": [("s3:GetObject", "model"), ("s3:GetObject", "batch"), ("s3:PutObject", "predictions")],
    "baseline": [("s3:GetObject", "features"), ("s3:PutObject", "baseline")],
}
S3_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")


@pytest.mark.parametrize("kind", JOB_KINDS)
@pytest.mark.parametrize("tenant", TENANTS)
def test_a_tenants_job_role_reaches_its_own_prefixes_and_no_other_tenants(templates, tenant, kind):
    statements = role_statements(templates["training"], tenant, kind)
    own = tenant_keys(tenant)

    for action, key in OWN_ACCESS[kind]:
        assert allows(statements, action, own[key]), (action, key)
    for other in (t for t in TENANTS if t != tenant):
        for key, arn in tenant_keys(other).items():
            for action in S3_ACTIONS:
                assert not allows(statements, action, arn), f"{tenant} {kind} role: {action} on {other}'s {key}"
        for zone, prefix in [("Raw", "raw"), ("Curated", "curated"), ("Features", "features"),
                             ("Artifacts", "artifacts/runs"), ("Predictions", "predictions")]:  # fmt: skip
            listed = {"s3:prefix": f"{prefix}/{other}/"}
            assert not allows(statements, "s3:ListBucket", f"arn:aws:s3:::{bucket(zone)}", listed), (other, zone)


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_tenants_job_roles_use_the_platform_key_only_through_s3_and_sagemaker_grants(templates, tenant):
    for kind in JOB_KINDS:
        for statement in role_statements(templates["training"], tenant, kind):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action in ("kms:Decrypt", "kms:GenerateDataKey") for action in actions):
                assert statement["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
            elif "kms:CreateGrant" in actions:
                assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_the_state_machine_may_pass_exactly_the_tenant_job_roles(templates):
    """The grant is the roles' generated names: ``<stack>-<logical ID prefix>*`` (tenant_job_roles.py)."""
    prefix = "PipelineTenantJobRoles"
    roles = [lid for resources in templates.values() for lid in of_type(resources, "AWS::IAM::Role")]
    job_roles = [lid for lid in roles if lid.startswith(prefix)]
    # Only the tenants' job roles start with the prefix, and none of them sets a name of its own.
    assert len(job_roles) == len(TENANTS) * len(JOB_KINDS)
    assert all(lid in templates["training"] for lid in job_roles)
    assert not [lid for lid in job_roles if "RoleName" in templates["training"][lid]["Properties"]]
    passes = [
        statement
        for lid, policy in of_type(templates["training"], "AWS::IAM::Policy").items()
        if lid.startswith("PipelineStateMachineRole")
        for statement in resolve(policy["Properties"]["PolicyDocument"]["Statement"])
        if "iam:PassRole" in statement["Action"]
    ]
    assert [s["Resource"] for s in passes] == [f"arn:aws:iam::{ACCOUNT}:role/dev-Training-{prefix}*"]
    assert all(s["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}} for s in passes)
    # The generated names CloudFormation gives them match the grant; another stack's roles do not.
    for lid in job_roles:
        generated = f"arn:aws:iam::{ACCOUNT}:role/dev-Training-{lid[:30]}-1A2B3C4D5E6F"
        assert allows(passes, "iam:PassRole", generated, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    for other in ("dev-Training-PipelineStateMachineRole-1A2B", "dev-Monitoring-PipelineTenantJobRoles-1A2B"):
        assert not allows(passes, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{other}", {})


def test_each_tenants_role_arns_are_published_for_the_state_machine(templates):
    resources = templates["training"]
    [deployment] = [
        r["Properties"]
        for r in of_type(resources, "Custom::CDKBucketDeployment").values()
        if r["Properties"]["DestinationBucketKeyPrefix"] == JOB_ROLES_PREFIX
    ]

    assert deployment["Prune"] is True  # a removed tenant's mapping goes with it
    markers = json.dumps(deployment["SourceMarkers"])
    for tenant in TENANTS:
        for kind in JOB_KINDS:
            prefix = f"PipelineTenantJobRoles{tenant.replace('-', '')}{ROLE_NAMES[kind]}"
            [role_id] = [lid for lid in of_type(resources, "AWS::IAM::Role") if lid.startswith(prefix)]
            assert f'"Fn::GetAtt": ["{role_id}", "Arn"]' in markers, (tenant, kind)


# -- Athena --------------------------------------------------------------------------------------


def analytics_statements(resources: dict[str, Any], tenant: str) -> list[dict[str, Any]]:
    prefix = f"TenantAnalytics{tenant.replace('-', '')}Policy"
    [policy] = [r for lid, r in of_type(resources, "AWS::IAM::ManagedPolicy").items() if lid.startswith(prefix)]
    return resolve(policy["Properties"]["PolicyDocument"]["Statement"])


def workgroup_arn(name: str) -> str:
    return f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{name}"


@pytest.mark.parametrize("tenant", TENANTS)
def test_each_tenant_queries_in_its_own_workgroup_with_its_own_results_prefix(templates, tenant, platform_config):
    from config.naming import Names

    names = Names(project=platform_config.project.name, environment="dev")
    workgroups = {
        r["Properties"]["Name"]: r["Properties"]
        for r in of_type(templates["foundation"], "AWS::Athena::WorkGroup").values()
    }
    configuration = workgroups[workgroup_name(names, tenant)]["WorkGroupConfiguration"]

    assert configuration["EnforceWorkGroupConfiguration"] is True
    location = resolve(configuration["ResultConfiguration"]["OutputLocation"])
    assert location == f"s3://{bucket('QueryResults')}/tenants/{tenant}/"
    statements = analytics_statements(templates["foundation"], tenant)
    assert allows(statements, "athena:StartQueryExecution", workgroup_arn(workgroup_name(names, tenant)))
    for other in workgroups:
        if other != workgroup_name(names, tenant):
            assert not allows(statements, "athena:StartQueryExecution", workgroup_arn(other)), other
            assert not allows(statements, "athena:GetQueryResults", workgroup_arn(other)), other


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_tenants_query_can_read_its_own_data_and_results_and_no_other_tenants(templates, tenant):
    """Athena reads S3 as the caller: ``WHERE tenant IN ('alpha', 'beta')`` fails on the other tenant's objects."""
    statements = analytics_statements(templates["foundation"], tenant)

    def objects(owner: str) -> list[str]:
        keys = tenant_keys(owner)
        results = f"arn:aws:s3:::{bucket('QueryResults')}/tenants/{owner}/query-1.csv"
        return [keys["curated"], keys["features"], results]

    for arn in objects(tenant):
        assert allows(statements, "s3:GetObject", arn), arn
    assert allows(statements, "s3:ListBucket", f"arn:aws:s3:::{bucket('Curated')}", {"s3:prefix": f"curated/{tenant}/"})
    for other in (t for t in TENANTS if t != tenant):
        for arn in [*objects(other), tenant_keys(other)["raw"], tenant_keys(other)["model"]]:
            assert not allows(statements, "s3:GetObject", arn), arn
        for zone, prefix in (("Curated", "curated"), ("Features", "features"), ("QueryResults", "tenants")):
            listed = {"s3:prefix": f"{prefix}/{other}/"}
            assert not allows(statements, "s3:ListBucket", f"arn:aws:s3:::{bucket(zone)}", listed), (other, zone)
    # The environment's own workgroup writes under athena/: not the tenant's.
    assert not allows(statements, "s3:GetObject", f"arn:aws:s3:::{bucket('QueryResults')}/athena/query-1.csv")


def glue_tables(resources: dict[str, Any]) -> dict[str, str]:
    """Each Glue table the template declares: its name, and the ARN a query's catalog call names it by."""
    found = {}
    for table in of_type(resources, "AWS::Glue::Table").values():
        database = resolve(table["Properties"]["DatabaseName"])
        name = table["Properties"]["TableInput"]["Name"]
        found[name] = f"arn:aws:glue:{REGION}:{ACCOUNT}:table/{database}/{name}"
    return found


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_tenants_analysts_read_the_catalog_of_its_own_dataset_tables_and_no_other_tenants(templates, tenant):
    """Athena calls glue:GetTable and glue:GetPartitions on the table a query names, before reading S3."""
    from mlops_constructs.lake_datasets import DatasetColumns

    [dataset] = {table.split("__", 1)[1] for table in glue_tables(templates["foundation"]) if "__" in table}
    tables = glue_tables(templates["foundation"])
    statements = analytics_statements(templates["foundation"], tenant)

    own = tables[DatasetColumns(tenant, dataset, ()).table_name]
    for action in ("glue:GetTable", "glue:GetPartitions"):
        assert allows(statements, action, own), (action, own)
        for other in (t for t in TENANTS if t != tenant):
            arn = tables[DatasetColumns(other, dataset, ()).table_name]
            assert not allows(statements, action, arn), (action, arn)
    # The zone-wide envelope tables stay readable: S3 keeps their other tenants' rows out.
    for zone in ("curated", "features"):
        assert allows(statements, "glue:GetTable", tables[zone]), zone


@pytest.mark.parametrize("tenant", TENANTS)
def test_a_tenants_analysts_reach_the_default_database_athena_needs_and_no_other_database(templates, tenant):
    """Athena needs glue:GetDatabase and glue:CreateDatabase on the catalog and the `default` database of the
    Region whatever a query names (https://docs.aws.amazon.com/athena/latest/ug/fine-grained-access-to-glue-resources.html)."""
    statements = analytics_statements(templates["foundation"], tenant)
    glue = f"arn:aws:glue:{REGION}:{ACCOUNT}"

    for action in ("glue:GetDatabase", "glue:CreateDatabase"):
        assert allows(statements, action, f"{glue}:catalog"), action
        assert allows(statements, action, f"{glue}:database/default"), action
    assert not allows(statements, "glue:CreateDatabase", f"{glue}:database/another")
