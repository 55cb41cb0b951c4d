"""The committed record of each environment's endpoint variants as last deployed (``config/deployed-variants.yaml``).

Two SageMaker rules make some serving changes depend on what is live, which synth must not ask AWS:

* an endpoint update that removes a variant registered as an Application Auto Scaling target, or
  changes its instance type, fails; CloudFormation deregisters the old target only afterwards, in
  its cleanup phase. So such a change takes two deploys: first ``autoscaling: false`` (which
  deregisters the target), then the removal or the new type. Synth refuses the one-step change.
* blue/green deployment guardrails (canary traffic shifting, automatic rollback) need the new
  endpoint config to keep the old variant names
  (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html). So synth
  renders a ``DeploymentConfig`` only for an update that keeps the recorded names (``keeps_variant_names``);
  one that adds or removes a variant deploys all at once instead. An update that does both, dropping
  live variants and adding new ones, is refused (``replaced_variants``): it would move traffic from
  fleets that served it to fleets that never did, at once and without guardrails.

``make record-variants ENV=<env>`` rewrites an environment's entry from AWS (mlops_platform/cli/record_variants.py:
DescribeEndpoint, DescribeEndpointConfig, DescribeScalableTargets) after a deploy; the commit carries
it to the next synth, and the delivery pipeline's deploy check fails while it differs from what AWS
has. A missing entry means "never deployed": before the first deploy every update is all at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field, StrictBool

from config.base import StrictModel

if TYPE_CHECKING:
    from config.schema import EnvironmentConfig

RECORD_FILE = "deployed-variants.yaml"


class DeployedVariant(StrictModel):
    instance_type: str = Field(description="the variant's instance type as deployed")
    autoscaling: StrictBool = Field(description="true or false (whether it is a registered scaling target)")


# endpoint key -> variant name -> what is deployed
EnvironmentRecord = dict[str, dict[str, DeployedVariant]]


class DeployedVariants(StrictModel):
    dev: EnvironmentRecord = Field(default_factory=dict, description="dev's endpoints as last deployed")
    staging: EnvironmentRecord = Field(default_factory=dict, description="staging's endpoints as last deployed")
    prod: EnvironmentRecord = Field(default_factory=dict, description="prod's endpoints as last deployed")

    def of(self, environment: str) -> EnvironmentRecord:
        record: EnvironmentRecord = getattr(self, environment)
        return record


def unsafe_changes(
    environment: EnvironmentConfig, deployed: Mapping[str, Mapping[str, DeployedVariant]]
) -> list[tuple[str, object, str]]:
    """(key, value, what is allowed) for each one-step change that autoscaling would make fail."""
    found: list[tuple[str, object, str]] = []
    record_file = f"config/{RECORD_FILE}"
    for key, variants in deployed.items():
        endpoint = environment.serving.endpoints.get(key)
        if endpoint is None:
            continue  # deleting a whole endpoint deletes its scaling targets first: CloudFormation orders it
        configured = {variant.name: variant for variant in endpoint.variants}
        for name, live in variants.items():
            if not live.autoscaling:
                continue
            first_step = (
                f"first set 'autoscaling: false' on variant {name} and deploy (that deregisters its scaling "
                f"target), run 'make record-variants ENV={environment.name}' and commit {record_file}"
            )
            variant = configured.get(name)
            if variant is None:
                found.append(
                    (
                        f"serving.endpoints.{key}.variants",
                        name,
                        f"the variant kept until it is no longer a scaling target ({record_file} records "
                        f"{name} as one); {first_step}, then remove it",
                    )
                )
            elif variant.instance_type != live.instance_type:
                index = endpoint.variants.index(variant)
                found.append(
                    (
                        f"serving.endpoints.{key}.variants.{index}.instance_type",
                        variant.instance_type,
                        f"{live.instance_type!r} while the variant is a scaling target ({record_file}); "
                        f"{first_step}, then change the instance type and turn autoscaling back on",
                    )
                )
    return found


def replaced_variants(
    environment: EnvironmentConfig, deployed: Mapping[str, Mapping[str, DeployedVariant]]
) -> list[tuple[str, object, str]]:
    """(key, value, what is allowed) for each recorded endpoint whose config both drops live variants and adds new ones.

    SageMaker's guardrails need the live variant names on both sides of an update; no ``DeploymentConfig``
    can describe one whose new names are not a superset or a subset of the live ones, so it would shift
    all traffic at once. Adding and removing take a deploy each; each keeps one side's names whole.
    """
    found: list[tuple[str, object, str]] = []
    for key, variants in sorted(deployed.items()):
        endpoint = environment.serving.endpoints.get(key)
        if endpoint is None:
            continue
        configured = [variant.name for variant in endpoint.variants]
        dropped = sorted(set(variants) - set(configured))
        added = [name for name in configured if name not in variants]
        if dropped and added:
            found.append(
                (
                    f"serving.endpoints.{key}.variants",
                    ", ".join(configured),
                    f"the live variants {', '.join(sorted(variants))} (config/{RECORD_FILE}) plus new ones, or "
                    f"fewer of them, in one deploy: add {', '.join(added)} first (deploy, then "
                    f"'make record-variants ENV={environment.name}' and commit), then remove {', '.join(dropped)}",
                )
            )
    return found


def keeps_variant_names(endpoint_key: str, names: list[str], deployed: Mapping[str, Mapping[str, object]]) -> bool:
    """Whether the endpoint is live with exactly these variant names, so deployment guardrails apply."""
    live = deployed.get(endpoint_key)
    return live is not None and sorted(live) == sorted(names)
