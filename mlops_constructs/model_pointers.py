"""Model pointers: one SSM parameter per endpoint variant, naming the model artifact it serves.

ARCHITECTURE.md, "Where models live": a pointer holds the artifact's S3 URI (or the sentinel
``example``, the model shipped with the repository) and, in its description, the model package it
came from. Two writers, both after checking the package: the approval path
(``mlops_constructs/approval_path.py``), which on an approved package writes the Challenger's pointer
and then deploys the Serving stack to apply it, and ``mlops promote`` (promotions and rollbacks
by hand, applied by the next deploy). The Serving stack reads it at deploy time as an SSM-typed
CloudFormation parameter. CloudFormation must never write it back, so it is not an
``AWS::SSM::Parameter`` (whose every update would reset the value): a custom resource creates it
once with ``PutParameter`` without overwrite, treats "already exists" as done, and leaves it in place
when the stack or the endpoint goes (a redeploy must not forget a promotion).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from config.naming import Names
from config.serving import EndpointConfig
from mlops_constructs.nag import acknowledge, ignore_redundant_dependency

EXAMPLE = "example"
# aws-cdk-lib's id of the singleton function behind every AwsCustomResource of a stack.
SINGLETON_ID = "AWS679f53fac002430cb0da5b7982bd2287"


def pointer_name(names: Names, endpoint: str, variant: str) -> str:
    """``/mlops/dev/models/<endpoint>/<variant>``: literal and environment-scoped, so stacks agree on it."""
    return names.parameter("models", endpoint, variant)


def construct_id(endpoint: str, variant: str) -> str:
    """``example`` + ``Champion`` -> ``ExampleChampion`` (ids and output names allow no hyphens)."""
    return "".join(part.capitalize() for part in endpoint.split("-")) + variant


class ModelPointers(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names, endpoints: Mapping[str, EndpointConfig]) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.names: dict[tuple[str, str], str] = {}
        self.resources: list[cr.AwsCustomResource] = []
        for endpoint_key, endpoint in endpoints.items():
            for variant in endpoint.variants:
                name = pointer_name(names, endpoint_key, variant.name)
                self.names[(endpoint_key, variant.name)] = name
                self.resources.append(
                    cr.AwsCustomResource(
                        self,
                        construct_id(endpoint_key, variant.name),
                        resource_type="Custom::ModelPointer",
                        on_create=cr.AwsSdkCall(
                            service="SSM",
                            action="putParameter",
                            parameters={
                                "Name": name,
                                "Value": EXAMPLE,
                                "Type": "String",
                                "Overwrite": False,
                                "Description": (
                                    f"Model of {endpoint_key}/{variant.name}: the example model until a model package "
                                    "is promoted (mlops promote)"
                                ),
                            },
                            physical_resource_id=cr.PhysicalResourceId.of(name),
                            # A pointer that exists holds a promotion (or is already the sentinel): keep it.
                            ignore_error_codes_matching="ParameterAlreadyExists",
                        ),
                        policy=cr.AwsCustomResourcePolicy.from_statements(
                            [
                                iam.PolicyStatement(
                                    actions=["ssm:PutParameter"],
                                    resources=[
                                        stack.format_arn(service="ssm", resource="parameter", resource_name=name[1:])
                                    ],
                                )
                            ]
                        ),
                        install_latest_aws_sdk=False,
                        removal_policy=RemovalPolicy.RETAIN,
                    )
                )
        if self.resources:
            self._acknowledge_provider()

    def _acknowledge_provider(self) -> None:
        """The findings of aws-cdk-lib's AwsCustomResource provider (a stack-level singleton), there only."""
        stack = Stack.of(self)
        provider = stack.node.find_child(SINGLETON_ID)
        ignore_redundant_dependency(provider)
        acknowledge(
            provider.node.find_child("ServiceRole"),
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "aws-cdk-lib's AwsCustomResource provider runs with AWSLambdaBasicExecutionRole (its own logs only).",
        )
        acknowledge(
            provider,
            "AwsSolutions-L1",
            "aws-cdk-lib pins the AwsCustomResource provider's runtime; it runs only at deploy time.",
        )
