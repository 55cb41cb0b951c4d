"""Promote, or roll back, a model on an endpoint variant: a recorded change of the variant's model pointer.

    python -m scripts.promote --environment dev --endpoint churn --variant Champion \\
        --model-package arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-churn-xgboost/3 [--dry-run]
    python -m scripts.promote --environment dev --endpoint churn --promote-challenger [--dry-run]
    python -m scripts.promote --environment dev --endpoint churn --variant Challenger --rollback [--dry-run]

Every change is recorded in the run ledger (``PROMOTION#<endpoint>``, beside the approval path's records):
``--ledger-table <name>``, else the ``RunLedgerTableName`` output of ``<env>-Foundation``.

**The deployment lock.** A write takes the environment's deployment lock first, the one the approval
path's deployment workflow holds from before it writes a pointer until its deploy is judged
(``lambda/approval/deploy_lock.py``: ``LOCK#<env>-Serving`` in the run ledger). While a workflow holds
it, this command refuses and says who holds it until when; while this command holds it (seconds), a
workflow waits. So a person's promotion never lands between a workflow's write and its judgement.
A dry run takes no lock.

Each endpoint variant reads its model at deploy time from its model pointer, the SSM String
parameter ``/<project>/<env>/models/<endpoint>/<variant>``: the model artifact's S3 URI (or the
sentinel ``example``, the shipped example model), with ``model package <ARN>`` as its description
for lineage. CloudFormation creates it once and never writes it again; the approval path
(docs/approval-path.md) and this command write it afterwards, and SSM keeps every version. The endpoint
picks the new model up at the next deploy of the environment's Serving stack (``make deploy
ENV=<env>``, or the delivery pipeline), which never reverts it.

* ``--model-package``: points the variant at an approved package after every check of
  ``lambda/approval/model_promotion.py`` passes (the approval path runs the same module): Approved,
  the endpoint's tenant, one of the environment's groups and the endpoint's model, an algorithm the
  variant's flavour serves, the feature schema (sha256 and features), the artifact under the tenant's
  runs, the drift baseline beside it, and the pointer exists. A package older than the one the pointer
  names (a lower version of the same group) is refused: approvals may arrive in any order, and an
  older package never overwrites a newer one; ``--allow-older`` says you mean it (``--rollback``
  returns to the model served before).
* ``--promote-challenger``: the Champion's pointer takes the Challenger's model, after the same checks
  of the package the Challenger's pointer names, against the Champion's flavour. Prints the weights to
  apply with context or config.
* ``--rollback``: the variant's pointer returns to its newest earlier version with another value
  (``GetParameterHistory``), description included, so the lineage names the package it serves again.
  Refused when there is none.

The ``example`` endpoint serves the shipped example model and is never promoted.

Exit status: 0 done (or, with ``--dry-run``, would be), 1 refused or AWS failed, 2 a bad command line
or configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from config.loader import ConfigError, load_config
from config.naming import Names, serving_stack_name
from config.schema import ENVIRONMENT_NAMES, PlatformConfig
from config.tenants import PipelineConfig
from scripts.approval_modules import load

ROOT = Path(__file__).resolve().parent.parent
Flavour = Literal["cpu", "gpu"]
CHAMPION, CHALLENGER = "Champion", "Challenger"
# Longer than a promotion takes (seconds), short enough that a killed command blocks the workflow
# only briefly: the lock expires, and the workflow waits and asks again meanwhile.
LOCK_SECONDS = 600

# lambda/approval/model_promotion.py, the one module of checks (the approval Lambda's), and the
# deployment lock the deployment workflow takes (lambda/approval/deploy_lock.py).
_checks = load("model_promotion")
deploy_lock = load("deploy_lock")
PromotionRefused: type[Exception] = _checks.PromotionRefused
SERVED_BY: dict[str, frozenset[str]] = _checks.SERVED_BY
EXAMPLE: str = _checks.EXAMPLE
FEATURE_SCHEMA_VERSION: int = _checks.FEATURE_SCHEMA_VERSION
feature_schema = _checks.feature_schema
first_difference = _checks.first_difference


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` wrote (or, on a dry run, would write)."""

    pointer: str
    package_arn: str
    model_data: str
    description: str
    previous: str
    tenant: str
    model: str | None
    algorithm: str
    flavour: Flavour
    written: bool

    @property
    def unchanged(self) -> bool:
        return self.previous == self.model_data


@dataclass(frozen=True)
class Rollback:
    """What ``rollback`` wrote (or would write): the pointer's earlier version."""

    pointer: str
    value: str
    description: str | None
    version: int
    previous: str
    package_arn: str | None
    written: bool


def promote(
    *,
    sagemaker: Any,
    s3: Any,
    ssm: Any,
    package_arn: str,
    pointer: str,
    tenant: PipelineConfig,
    flavour: Flavour,
    group_prefix: str | None = None,
    model: str | None = None,
    dry_run: bool = False,
    expected_model_data: str | None = None,
    allow_older: bool = False,
) -> Promotion:
    """Check the package against the variant, then point the variant at the package's artifact.

    ``group_prefix`` (``Names.prefix``, such as ``mlops-dev``) confines the package to the
    environment's own groups; ``model`` (the endpoint's declared model) to that model's group;
    ``expected_model_data`` to the artifact another pointer already names. A package older than the
    one the pointer names is refused unless ``allow_older``. Raises ``PromotionRefused`` before
    writing anything.
    """
    checked = _checks.check_package(
        sagemaker=sagemaker,
        s3=s3,
        package_arn=package_arn,
        tenant_config=tenant.published(),
        flavour=flavour,
        group_prefix=group_prefix,
        model=model,
    )
    if expected_model_data is not None and checked.model_data != expected_model_data:
        raise PromotionRefused(
            f"model package {package_arn} has the artifact {checked.model_data}, not {expected_model_data} "
            "as the pointer that names it holds; promote the package itself with --model-package"
        )
    current = _checks.read_pointer(ssm, pointer)
    newer = _checks.newer_package(current, package_arn)
    if newer is not None and not allow_older:
        raise PromotionRefused(
            f"the model pointer {pointer} names {newer}, a newer version than {package_arn}, and an older "
            "package never overwrites a newer one; allowed: a newer package, --rollback to return to the model "
            "served before, or --allow-older to mean it"
        )
    previous = current.value
    description = _checks.pointer_description(package_arn)
    if not dry_run:
        ssm.put_parameter(
            Name=pointer, Value=checked.model_data, Type="String", Overwrite=True, Description=description
        )
    return Promotion(
        pointer=pointer,
        package_arn=package_arn,
        model_data=checked.model_data,
        description=description,
        previous=previous,
        tenant=checked.tenant,
        model=checked.model,
        algorithm=checked.algorithm,
        flavour=flavour,
        written=not dry_run,
    )


def rollback(*, ssm: Any, pointer: str, dry_run: bool = False) -> Rollback:
    """Return a pointer to its newest earlier version with another value; ``PromotionRefused`` when none."""
    current = _checks.read_pointer(ssm, pointer)
    try:
        earlier = _checks.previous_version(ssm, pointer)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        raise PromotionRefused(f"cannot read the history of the model pointer {pointer} ({code})") from None
    if earlier is None:
        raise PromotionRefused(
            f"the model pointer {pointer} has no earlier version with another value than {current.value} "
            "(SSM keeps the last 100 versions): there is nothing to roll back to"
        )
    if not dry_run:
        ssm.put_parameter(
            Name=pointer,
            Value=earlier.value,
            Type="String",
            Overwrite=True,
            Description=earlier.description or f"rolled back to version {earlier.version}",
        )
    return Rollback(
        pointer=pointer,
        value=earlier.value,
        description=earlier.description,
        version=earlier.version,
        previous=current.value,
        package_arn=earlier.package_arn,
        written=not dry_run,
    )


def challenger_package(ssm: Any, pointer: str) -> tuple[str, str]:
    """(package ARN, artifact) the Challenger's pointer names; ``PromotionRefused`` when it names no package."""
    current = _checks.read_pointer(ssm, pointer)
    if current.value == EXAMPLE or current.package_arn is None:
        raise PromotionRefused(
            f"the Challenger's pointer {pointer} holds {current.value!r} and names no model package "
            f"(description {current.description!r}): there is no challenger model to promote"
        )
    return current.package_arn, current.value


def record(
    dynamodb: Any,
    table: str,
    *,
    endpoint: str,
    variant: str,
    decision: str,
    reason: str,
    tenant: str | None,
    pointer: str,
    value: str,
    previous: str,
    package_arn: str | None,
    by: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The pointer change as a run-ledger record ``PROMOTION#<endpoint>`` / ``<decided_at>#<decision>#<id>``."""
    decided_at = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    identity = hashlib.sha256(f"{pointer}\n{value}\n{decided_at}".encode()).hexdigest()[:12]
    item: dict[str, Any] = _checks.ledger_item(
        endpoint=endpoint,
        decision=decision,
        decided_at=decided_at,
        reason=reason,
        sort_key=f"{decided_at}#{decision}#{identity}",
        tenant=tenant,
        variant=variant,
        pointer=pointer,
        model_data=value,
        previous=previous,
        package_arn=package_arn,
        by=by,
        source="scripts/promote.py",
    )
    _checks.put_once(dynamodb, table, item)
    return item


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


# ---------------------------------------------------------------------------------------------
# The command


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


class UsageError(Exception):
    """A bad command line or configuration, in one sentence (exit 2)."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.promote",
        description="Point an endpoint variant at an approved model package, promote the Challenger, or roll back.",
    )
    parser.add_argument("--environment", required=True, choices=ENVIRONMENT_NAMES, help="the environment")
    parser.add_argument("--endpoint", required=True, help="an endpoint of the environment's serving.endpoints")
    parser.add_argument(
        "--variant", help="one of the endpoint's variants, such as Champion (not with --promote-challenger)"
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--model-package", help="the approved model package version's ARN")
    action.add_argument(
        "--promote-challenger", action="store_true", help="give the Champion the model the Challenger serves"
    )
    action.add_argument("--rollback", action="store_true", help="return the variant's pointer to its previous model")
    parser.add_argument(
        "--ledger-table", help="the run ledger (default: the RunLedgerTableName output of <env>-Foundation)"
    )
    parser.add_argument(
        "--allow-older", action="store_true", help="write a package older than the one the pointer names"
    )
    parser.add_argument("--dry-run", action="store_true", help="check everything, write nothing (and take no lock)")
    args = parser.parse_args(argv)
    if args.promote_challenger and args.variant not in (None, CHAMPION):
        parser.error("--promote-challenger writes the Champion's pointer; leave out --variant")
    if not args.promote_challenger and args.variant is None:
        parser.error("--variant is required with --model-package and --rollback")
    return args


def ledger_table(named: str | None, cloudformation: Any, environment: str) -> str:
    """The run ledger: ``--ledger-table``, else the ``RunLedgerTableName`` output of ``<env>-Foundation``."""
    if named:
        return named
    from scripts.run_report import ledger_table_from_stack  # matplotlib comes with it: only when needed
    from scripts.training_progress import NothingToShow

    try:
        return ledger_table_from_stack(cloudformation, f"{environment}-Foundation")
    except NothingToShow as missing:
        raise PromotionRefused(f"{missing}; name the run ledger with --ledger-table") from None


@contextmanager
def deployment_lock(
    dynamodb: Any, table: str | None, environment: str, caller: str | None, pointer: str, endpoint: str
) -> Iterator[None]:
    """Hold the environment's deployment lock (``deploy_lock.py``) for the block; no table (a dry run): no lock.

    ``PromotionRefused`` when someone holds it: a deployment workflow between its write and its judgement.
    """
    if table is None:
        yield
        return
    stack = serving_stack_name(environment)
    owner = f"scripts/promote.py by {caller or 'an unknown caller'} ({uuid.uuid4().hex[:8]})"
    holder = deploy_lock.take(
        dynamodb,
        table,
        stack,
        owner=owner,
        now=datetime.now(UTC),
        seconds=LOCK_SECONDS,
        fields={"pointer": pointer, "endpoint": endpoint},
    )
    if holder is not None:
        raise PromotionRefused(
            f"the deployment lock of {stack} is held by {deploy_lock.held_by(holder)}: a promotion is being "
            "deployed; nothing was written. Run this again once it ends (its outcome reaches the environment's "
            "topic and the run ledger)"
        )
    try:
        yield
    finally:
        deploy_lock.release(dynamodb, table, stack, owner)


def change(
    args: argparse.Namespace,
    clients: Clients,
    names: Names,
    pointer: str,
    tenant: PipelineConfig,
    flavour: Flavour,
    model: str,
) -> Promotion | Rollback:
    """The command's one change of ``pointer``: a rollback, the Challenger's package, or the named one."""
    if args.rollback:
        return rollback(ssm=clients.ssm, pointer=pointer, dry_run=args.dry_run)
    package_arn, expected = args.model_package, None
    if args.promote_challenger:
        package_arn, expected = challenger_package(clients.ssm, names.parameter("models", args.endpoint, CHALLENGER))
    return promote(
        sagemaker=clients.sagemaker,
        s3=clients.s3,
        ssm=clients.ssm,
        package_arn=package_arn,
        pointer=pointer,
        tenant=tenant,
        flavour=flavour,
        group_prefix=names.prefix,
        model=model,
        dry_run=args.dry_run,
        expected_model_data=expected,
        allow_older=args.allow_older,
    )


def main(argv: Sequence[str], *, config: PlatformConfig | None = None, clients: Clients | None = None) -> int:
    args = parse_args(argv)
    variant_name = CHAMPION if args.promote_challenger else args.variant
    try:
        if args.endpoint == EXAMPLE:
            raise UsageError(
                "the example endpoint serves the example model shipped with the repository and is never promoted; "
                "allowed: a tenant's own endpoint"
            )
        config = config or load_config(ROOT / "config", selected_environments=args.environment)
        environment = config.environment(args.environment)
        endpoints = environment.serving.endpoints
        endpoint = endpoints.get(args.endpoint)
        if endpoint is None:
            raise UsageError(
                f"environment {args.environment} has no endpoint {args.endpoint!r}; "
                f"allowed: {', '.join(sorted(set(endpoints) - {EXAMPLE})) or 'none declared'}"
            )
        if endpoint.tenant == EXAMPLE:
            raise UsageError(f"endpoint {args.endpoint!r} serves the example tenant, which is never promoted")
        variant = next((v for v in endpoint.variants if v.name == variant_name), None)
        if variant is None:
            raise UsageError(
                f"endpoint {args.endpoint!r} has no variant {variant_name!r}; "
                f"allowed: {', '.join(v.name for v in endpoint.variants)}"
            )
        if args.promote_challenger and not any(v.name == CHALLENGER for v in endpoint.variants):
            raise UsageError(f"endpoint {args.endpoint!r} has no {CHALLENGER} variant to promote")
        tenant = next((p for p in config.pipelines if p.tenant == endpoint.tenant), None)
        if tenant is None:
            raise UsageError(
                f"endpoint {args.endpoint!r} serves tenant {endpoint.tenant!r}, "
                f"which has no config/pipelines/{endpoint.tenant}.yaml"
            )
    except (UsageError, ConfigError) as error:
        print(f"promote: {error}", file=sys.stderr)
        return 2

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
        with deployment_lock(clients.dynamodb, table, environment.name, identity.get("Arn"), pointer, args.endpoint):
            outcome = change(args, clients, names, pointer, tenant, variant.flavour, endpoint.model)
            if table is not None:
                decision = (
                    "rolled-back" if args.rollback else "promoted-challenger" if args.promote_challenger else "promoted"
                )
                value = outcome.value if isinstance(outcome, Rollback) else outcome.model_data
                record(
                    clients.dynamodb,
                    table,
                    endpoint=args.endpoint,
                    variant=variant.name,
                    decision=decision,
                    reason=f"{decision} by a person with scripts/promote.py",
                    tenant=endpoint.tenant,
                    pointer=pointer,
                    value=value,
                    previous=outcome.previous,
                    package_arn=outcome.package_arn,
                    by=identity.get("Arn"),
                )
    except PromotionRefused as refusal:
        print(f"promote: refused: {refusal}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"promote: AWS failed: {error}", file=sys.stderr)
        return 1

    where = f"{args.endpoint}/{variant.name} ({variant.flavour}) in {environment.name}"
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
    if args.promote_challenger:
        print(
            "weights: both variants now serve this model. The configured split stays right for the next challenger; "
            "if traffic was shifted during the test, return to it:"
        )
        for line in weights_lines(environment.name, args.endpoint, weights):
            print(line)
    elif args.rollback and variant.name == CHALLENGER:
        print("weights: to take the Challenger out of traffic until its next model, apply:")
        for line in weights_lines(environment.name, args.endpoint, {**weights, CHALLENGER: 0.0}):
            print(line)
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(
            f"the endpoint picks the new model up at the next deploy of {environment.name}'s Serving stack: "
            f"make deploy ENV={environment.name}, or the delivery pipeline"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
