"""Promoting, or rolling back, a model on an endpoint variant: a recorded change of the variant's model pointer.

    mlops promote --environment dev --endpoint churn --variant Champion \\
        --model-package arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-churn-xgboost/3 [--dry-run]
    mlops promote-challenger --environment dev --endpoint churn [--dry-run]
    mlops rollback --environment dev --endpoint churn --variant Challenger [--dry-run]

What the three commands share (mlops_platform/cli/promote.py, promote_challenger.py, rollback.py): the
configuration read (it names the endpoint's tenant, model and variants), the deployment lock, the
ledger record and the report. The change itself is ``mlops_platform.registry.promotion``'s.

Every change is recorded in the run ledger (``PROMOTION#<endpoint>``, beside the approval path's records):
``--ledger-table <name>``, else the ``RunLedgerTableName`` output of ``<env>-Foundation``.

**The deployment lock.** A write takes the environment's deployment lock first, the one the approval
path's deployment workflow holds from before it writes a pointer until its deploy is judged
(``mlops_platform/registry/deploy_lock.py``: ``LOCK#<env>-Serving`` in the run ledger). While a workflow holds
it, a promotion refuses and says who holds it until when; while a promotion holds it (seconds), a
workflow waits. So a person's promotion never lands between a workflow's write and its judgement.
A dry run takes no lock.

Each endpoint variant reads its model at deploy time from its model pointer, the SSM String
parameter ``/<project>/<env>/models/<endpoint>/<variant>``: the model artifact's S3 URI (or the
sentinel ``example``, the shipped example model), with ``model package <ARN>`` as its description
for lineage. CloudFormation creates it once and never writes it again; the approval path
(docs/approval-path.md) and these commands write it afterwards, and SSM keeps every version. The endpoint
picks the new model up at the next deploy of the environment's Serving stack (``make deploy
ENV=<env>``, or the delivery pipeline), which never reverts it.

* ``mlops promote``: points the variant at an approved package after every check of
  ``mlops_platform/registry/checks.py`` passes (the approval path runs the same module): Approved,
  the endpoint's tenant, one of the environment's groups and the endpoint's model, an algorithm the
  variant's flavour serves, the feature schema (sha256 and features), the artifact under the tenant's
  runs, the drift baseline beside it, and the pointer exists. A package older than the one the pointer
  names (a lower version of the same group) is refused: approvals may arrive in any order, and an
  older package never overwrites a newer one; ``--allow-older`` says you mean it (``mlops rollback``
  returns to the model served before).
* ``mlops promote-challenger``: the Champion's pointer takes the Challenger's model, after the same checks
  of the package the Challenger's pointer names, against the Champion's flavour. Prints the weights to
  apply with context or config.
* ``mlops rollback``: the variant's pointer returns to its newest earlier version with another value
  (``GetParameterHistory``), description included, so the lineage names the package it serves again.
  Refused when there is none.

The ``example`` endpoint serves the shipped example model and is never promoted.

Exit status: 0 done (or, with ``--dry-run``, would be), 1 refused or AWS failed, 2 a bad command line
or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_platform.cli import CommandError
from mlops_platform.registry.packages import EXAMPLE, PromotionRefused

if TYPE_CHECKING:
    from config.naming import Names
    from config.schema import PlatformConfig
    from config.tenants import PipelineConfig
    from mlops_platform.registry.promotion import Promotion, Rollback

ROOT = Path(__file__).resolve().parents[2]
CHAMPION, CHALLENGER = "Champion", "Challenger"
PROMOTE, PROMOTE_CHALLENGER, ROLLBACK = "promote", "promote-challenger", "rollback"
DECISIONS = {PROMOTE: "promoted", PROMOTE_CHALLENGER: "promoted-challenger", ROLLBACK: "rolled-back"}


def weights_lines(environment: str, endpoint: str, weights: Mapping[str, float]) -> list[str]:
    """The weights as ``-c variantWeights`` context and as the variants' ``weight`` lines of the config."""
    context = json.dumps({environment: {endpoint: {name: _number(weight) for name, weight in weights.items()}}})
    lines = [
        f'  with context:  npx cdk deploy "{environment}/*" -c environments={environment} '
        f"-c variantWeights='{context}'",
        f"  or in config/environments/{environment}.yaml, serving.endpoints.{endpoint}.variants:",
    ]
    lines.extend(f"    - name: {name} ... weight: {_number(weight)}" for name, weight in weights.items())
    return lines


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Clients:
    sagemaker: Any
    s3: Any
    ssm: Any
    sts: Any
    dynamodb: Any = None
    cloudformation: Any = None

    @classmethod
    def in_region(cls, region: str) -> Clients:
        import boto3  # the command's only: promote() takes any clients

        session = boto3.Session(region_name=region)
        names = ("sagemaker", "s3", "ssm", "sts", "dynamodb", "cloudformation")
        return cls(*(session.client(name) for name in names))


def configure(parser: argparse.ArgumentParser, *, variant: bool) -> None:
    """The arguments the three commands share; ``variant``: the command names the variant it writes."""
    from config.schema import ENVIRONMENT_NAMES

    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES, help="the environment")
    parser.add_argument("--endpoint", required=True, help="an endpoint of the environment's serving.endpoints")
    if variant:
        parser.add_argument("--variant", required=True, help="one of the endpoint's variants, such as Champion")
    parser.add_argument(
        "--ledger-table", help="the run ledger (default: the RunLedgerTableName output of <env>-Foundation)"
    )
    parser.add_argument("--dry-run", action="store_true", help="check everything, write nothing (and take no lock)")


def platform_config(environment: str) -> PlatformConfig:
    """The repository's configuration of one environment (the command runs from a checkout)."""
    # The operator command reads config/ like synth does; the rest of mlops_platform never imports it.
    from config.loader import load_config

    return load_config(ROOT / "config", selected_environments=environment)


def ledger_table(named: str | None, cloudformation: Any, environment: str) -> str:
    """The run ledger: ``--ledger-table``, else the ``RunLedgerTableName`` output of ``<env>-Foundation``."""
    if named:
        return named
    from mlops_platform.reports.progress import NothingToShow
    from mlops_platform.reports.run_report import ledger_table_from_stack

    try:
        return ledger_table_from_stack(cloudformation, f"{environment}-Foundation")
    except NothingToShow as missing:
        raise PromotionRefused(f"{missing}; name the run ledger with --ledger-table") from None


def change(
    action: str,
    args: argparse.Namespace,
    clients: Clients,
    names: Names,
    pointer: str,
    tenant: PipelineConfig,
    flavour: str,
    model: str,
) -> Promotion | Rollback:
    """The command's one change of ``pointer``: a rollback, the Challenger's package, or the named one."""
    from mlops_platform.registry.promotion import challenger_package, promote, rollback

    if action == ROLLBACK:
        return rollback(ssm=clients.ssm, pointer=pointer, dry_run=args.dry_run)
    package_arn, expected = str(getattr(args, "model_package", "")), None
    if action == PROMOTE_CHALLENGER:
        package_arn, expected = challenger_package(clients.ssm, names.parameter("models", args.endpoint, CHALLENGER))
    return promote(
        sagemaker=clients.sagemaker,
        s3=clients.s3,
        ssm=clients.ssm,
        package_arn=package_arn,
        pointer=pointer,
        tenant_config=tenant.published(),
        flavour=flavour,
        group_prefix=names.prefix,
        model=model,
        dry_run=args.dry_run,
        expected_model_data=expected,
        allow_older=getattr(args, "allow_older", False),
    )


def resolve(action: str, args: argparse.Namespace, config: PlatformConfig | None) -> tuple[Any, ...]:
    """The environment, endpoint, variant and tenant the command changes; CommandError for any other."""
    from config.files import ConfigError

    variant_name = CHAMPION if action == PROMOTE_CHALLENGER else args.variant
    if args.endpoint == EXAMPLE:
        raise CommandError(
            "the example endpoint serves the example model shipped with the repository and is never promoted; "
            "allowed: a tenant's own endpoint"
        )
    try:
        config = config or platform_config(args.environment)
    except ConfigError as error:
        raise CommandError(str(error)) from None
    environment = config.environment(args.environment)
    endpoints = environment.serving.endpoints
    endpoint = endpoints.get(args.endpoint)
    if endpoint is None:
        raise CommandError(
            f"environment {args.environment} has no endpoint {args.endpoint!r}; "
            f"allowed: {', '.join(sorted(set(endpoints) - {EXAMPLE})) or 'none declared'}"
        )
    if endpoint.tenant == EXAMPLE:
        raise CommandError(f"endpoint {args.endpoint!r} serves the example tenant, which is never promoted")
    variant = next((v for v in endpoint.variants if v.name == variant_name), None)
    if variant is None:
        raise CommandError(
            f"endpoint {args.endpoint!r} has no variant {variant_name!r}; "
            f"allowed: {', '.join(v.name for v in endpoint.variants)}"
        )
    if action == PROMOTE_CHALLENGER and not any(v.name == CHALLENGER for v in endpoint.variants):
        raise CommandError(f"endpoint {args.endpoint!r} has no {CHALLENGER} variant to promote")
    tenant = next((p for p in config.pipelines if p.tenant == endpoint.tenant), None)
    if tenant is None:
        raise CommandError(
            f"endpoint {args.endpoint!r} serves tenant {endpoint.tenant!r}, "
            f"which has no config/pipelines/{endpoint.tenant}.yaml"
        )
    return config, environment, endpoint, variant, tenant


def execute(
    action: str, args: argparse.Namespace, *, config: PlatformConfig | None = None, clients: Clients | None = None
) -> int:
    """Run ``mlops <action>``: resolve, check and write under the deployment lock, record, and report."""
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    from config.naming import Names, serving_stack_name
    from mlops_platform.registry.promotion import Rollback, deployment_lock, record

    config, environment, endpoint, variant, tenant = resolve(action, args, config)
    names = Names(project=config.project.name, environment=environment.name)
    pointer = names.parameter("models", args.endpoint, variant.name)
    weights = {v.name: float(getattr(v, "weight", 0)) for v in endpoint.variants}
    try:
        clients = clients or Clients.in_region(environment.region)
        identity = clients.sts.get_caller_identity()
        account = identity["Account"]
        if account != environment.account:
            raise PromotionRefused(
                f"the AWS credentials are for account {account}; {environment.name} deploys to {environment.account}"
            )
        table = None if args.dry_run else ledger_table(args.ledger_table, clients.cloudformation, environment.name)
        stack = serving_stack_name(environment.name)
        with deployment_lock(clients.dynamodb, table, stack, identity.get("Arn"), pointer, args.endpoint):
            outcome = change(action, args, clients, names, pointer, tenant, variant.flavour, endpoint.model)
            if table is not None:
                decision = DECISIONS[action]
                value = outcome.value if isinstance(outcome, Rollback) else outcome.model_data
                record(
                    clients.dynamodb,
                    table,
                    endpoint=args.endpoint,
                    variant=variant.name,
                    decision=decision,
                    reason=f"{decision} by a person with mlops {action}",
                    tenant=endpoint.tenant,
                    pointer=pointer,
                    value=value,
                    previous=outcome.previous,
                    package_arn=outcome.package_arn,
                    by=identity.get("Arn"),
                )
    except PromotionRefused as refusal:
        print(f"mlops {action}: refused: {refusal}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"mlops {action}: AWS failed: {error}", file=sys.stderr)
        return 1
    report(action, args, environment.name, variant, outcome, table, weights)
    return 0


def report(
    action: str,
    args: argparse.Namespace,
    environment: str,
    variant: Any,
    outcome: Promotion | Rollback,
    table: str | None,
    weights: Mapping[str, float],
) -> None:
    """What changed (or would), where it is recorded, the weights to apply, and when the endpoint takes it."""
    from mlops_platform.registry.promotion import Rollback

    where = f"{args.endpoint}/{variant.name} ({variant.flavour}) in {environment}"
    if isinstance(outcome, Rollback):
        verb = "would roll back" if args.dry_run else "rolled back"
        print(f"{verb} {where} to version {outcome.version}: {outcome.value}")
        print(f"  pointer:       {outcome.pointer}")
        print(f"  model package: {outcome.package_arn or 'none named'} ({outcome.description})")
        print(f"  previous:      {outcome.previous}")
    else:
        verb = "would point" if args.dry_run else "pointed"
        print(f"{verb} {where} at {outcome.model_data}")
        print(f"  pointer:       {outcome.pointer}")
        print(f"  model package: {outcome.package_arn} ({outcome.algorithm}, tenant {outcome.tenant})")
        print(f"  previous:      {outcome.previous}" + (" (unchanged)" if outcome.unchanged else ""))
    if table is not None:
        print(f"  recorded in:   {table} (PROMOTION#{args.endpoint})")
    if action == PROMOTE_CHALLENGER:
        print(
            "weights: both variants now serve this model. The configured split stays right for the next challenger; "
            "if traffic was shifted during the test, return to it:"
        )
        for line in weights_lines(environment, args.endpoint, weights):
            print(line)
    elif action == ROLLBACK and variant.name == CHALLENGER:
        print("weights: to take the Challenger out of traffic until its next model, apply:")
        for line in weights_lines(environment, args.endpoint, {**weights, CHALLENGER: 0.0}):
            print(line)
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(
            f"the endpoint picks the new model up at the next deploy of {environment}'s Serving stack: "
            f"make deploy ENV={environment}, or the delivery pipeline"
        )
