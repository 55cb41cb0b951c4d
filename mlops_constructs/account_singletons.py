"""Settings that exist once per account and region, built only by the environment that owns them.

Environments may share an account and region (README, "Environments"). A setting of the account
itself, such as the ECR registry's scanning configuration, would then be declared by two stacks
that overwrite each other on every deploy, and deleting either stack would reset it for both. So
exactly one environment per account and region owns these (``owns_account_singletons``, checked
across every environment file at synth by config/loader.py); the others build nothing here.

API Gateway's CloudWatch Logs role is the other singleton; the scoring API builds it, following the
same setting (``serving.api.owns_account_logging_role`` is derived from it).
"""

from __future__ import annotations

from aws_cdk import aws_ecr as ecr
from constructs import Construct


class AccountSingletons(Construct):
    def __init__(self, scope: Construct, id: str, *, owner: bool) -> None:
        super().__init__(scope, id)
        self.registry_scanning: ecr.CfnRegistryScanningConfiguration | None = None
        if not owner:
            return
        # Image assets are pushed to the bootstrap repository, which does not scan on push; the
        # registry's configuration does, for every repository in this account and region. Basic
        # scanning: free, and no dependency on Amazon Inspector being enabled.
        self.registry_scanning = ecr.CfnRegistryScanningConfiguration(
            self,
            "RegistryScanning",
            scan_type="BASIC",
            rules=[
                ecr.CfnRegistryScanningConfiguration.ScanningRuleProperty(
                    scan_frequency="SCAN_ON_PUSH",
                    repository_filters=[
                        ecr.CfnRegistryScanningConfiguration.RepositoryFilterProperty(
                            filter="*", filter_type="WILDCARD"
                        )
                    ],
                )
            ],
        )
