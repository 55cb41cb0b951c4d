"""Every way the local platform departs from AWS, in one place, each with its reason.

moto 5.2.5 (requirements-dev.txt pins it) is the embedded AWS. Its CloudFormation completes none of
the dev stacks as it is (../shared/AWS-FACTS.md, "An embedded AWS"); this module patches moto's own
classes while an :class:`~mlops_platform.local.emulator.Emulator` runs (``install``/``uninstall``)
and lists each patch in ``DEVIATIONS``. The README's "What runs locally, and what is emulated" is
written from this list; tests/local pins the stubbed types.

Which resource types are stubbed is asked of moto (its CloudFormation model map), never listed by
hand, so a stack that gains a type moto lacks still deploys and the type shows up in ``stubbed``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deviation:
    name: str
    reason: str


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "Resource types moto cannot create are stubs",
        "moto has no CloudFormation model for them (see `stubbed`): the stack records a stub with a "
        "physical id and ARN-shaped attributes, so the stacks that reference it deploy; nothing behind it runs.",
    ),
    Deviation(
        "AWS::DynamoDB::GlobalTable is created as a single-region AWS::DynamoDB::Table",
        "moto lacks GlobalTable; one region has no replicas, so its keys, indexes, stream and billing "
        "are the whole table.",
    ),
    Deviation(
        "Fn::GetStackOutput is resolved from the producer stack's outputs in the emulator",
        "moto does not know the intrinsic; AWS resolves it the same way, from the named stack's current outputs.",
    ),
    Deviation(
        "Change sets execute synchronously, and failures leave the stack in *_FAILED with the reason",
        "moto applies a change set without DependsOn order, leaves outputs and exports empty, and answers "
        "an error with HTTP 500; the layer creates resources in dependency order and rebuilds outputs.",
    ),
    Deviation(
        "A template URL on the emulator's own endpoint is read path-style",
        "the CDK CLI addresses the bootstrap bucket through AWS_ENDPOINT_URL (http://127.0.0.1:<port>/<bucket>/<key>); "
        "moto only reads a path-style URL on localhost or amazonaws.com.",
    ),
    Deviation(
        "Change sets are looked up by stack and name",
        "moto looks a change-set name up across all stacks, and the CDK CLI gives every stack's the same name.",
    ),
    Deviation(
        "UsePreviousValue of an SSM-typed parameter reuses the parameter's name",
        "moto reuses the resolved value and then fails to look it up in SSM; AWS keeps the name.",
    ),
    Deviation(
        "Lambda-backed custom resources run their handler in this process",
        "moto invokes Lambda through Docker, which the local path does without; the deployed function's own "
        "Python code is run instead, with its deployed environment (mlops_platform.local.functions).",
    ),
    Deviation(
        "CDK's AwsCustomResource (a Node.js handler) is answered by making its SDK call with boto3",
        "its handler needs the Lambda Node.js runtime's AWS SDK, which a plain Node does not carry; the call "
        "(service, action, parameters) it is told to make is made as it is, against the emulator.",
    ),
    Deviation(
        "CDK's custom resource provider framework (Node.js) is replaced by its loop in Python",
        "the framework only calls the user's onEvent and then isComplete until complete; the user's own "
        "Python handlers are what run.",
    ),
    Deviation(
        "The AWS CLI that BucketDeployment's handler runs from its layer runs with this Python",
        "Lambda mounts the layer at /opt; locally the deployed layer is unpacked to a folder and its "
        "`aws` runs from there.",
    ),
    Deviation(
        "AWS::KMS::Key Tags, and a Ref to a model moto gives no physical id, read as CloudFormation documents them",
        "moto 5.2.5 crashes on both: KMS Tags are Key/Value; a Ref returned the object (EventBus: its name, "
        "LayerVersion: its ARN).",
    ),
    Deviation(
        "A Lambda function created by CloudFormation keeps its Layers",
        "moto 5.2.5 drops the property; AWS attaches the layers (BucketDeployment's handler runs the "
        "AWS CLI from one). Layers AWS publishes from its own accounts (Powertools) are the versions in "
        "the local virtual environment.",
    ),
    Deviation(
        "SageMaker Endpoint, EndpointConfig and Model keep the names their templates give",
        "moto 5.2.5 names them after the logical id, as if no name were given; AWS uses EndpointName and the others.",
    ),
    Deviation(
        "Lambda's SQS poller is played by mlops_platform.local.ingestion",
        "moto delivers a queue's messages to the mapped function through Docker; the local poller receives "
        "batches of the mapping's size, runs the function's handler and deletes what it did not report failed.",
    ),
    Deviation(
        "A SageMaker .sync task's wait polls Describe*Job on the emulator, whose jobs are local processes",
        "moto neither runs jobs (it marks them Completed at once) nor waits for them; mlops_platform.local.jobs runs "
        "each job as a process of the training image's own entry point (python -m mlops_platform.training, SM_ROOT / "
        "SM_PROCESSING_ROOT folders, S3 inputs and outputs in the emulator, at most one per core) and keeps it "
        "InProgress until the process ends; the task polls its status as the optimized integration does and ends "
        "with the description (Completed) or States.TaskFailed (Failed, the description as the cause). Containers "
        "run with this Python and the repository's code, not the image.",
    ),
    Deviation(
        "The deployed state machines run in moto's Step Functions interpreter, with what it lacks added",
        "moto's default backend records executions without running them; CloudFormation creates the machines in the "
        "interpreter's backend instead. moto 5.2.5's interpreter lacks $$.Execution.RedriveCount, reads \"RoleArn.$\" "
        "as a literal, passes an SDK GetObject's Body as a stream, reads a ResultWriter's Prefix.$ from the Map's "
        "output, names SageMaker errors States.Runtime and parses ToleratedFailurePercentage only as a decimal: "
        "mlops_platform.local.interpreter reads each as AWS documents it. Lambda tasks run the deployed handler "
        "in this process (mlops_platform.local.functions).",
    ),
    Deviation(
        "X-Ray tracing is off in the handlers (POWERTOOLS_TRACE_DISABLED)",
        "there is no X-Ray daemon locally; Powertools' tracer would try to reach one on every invocation.",
    ),
    Deviation(
        "IAM is not enforced",
        "moto accepts every call from any principal: a missing permission shows only in AWS (cdk-nag and the "
        "policy tests check the policies' shape, not their effect).",
    ),
    Deviation(
        "No container image is built or pushed",
        "there is no Docker daemon: CDK_DOCKER names scripts in mlops_platform/local/bin/docker, which does nothing "
        "for login, inspect, tag and push, so image assets publish by name only.",
    ),
)


def install() -> None:
    """Apply every patch of the compatibility layer (mlops_platform.local.compat) to moto's classes."""
    from mlops_platform.local import compat, interpreter, jobs

    compat.install()
    interpreter.install()  # through compat's patch list: compat.uninstall restores it too
    jobs.install()


def uninstall() -> None:
    from mlops_platform.local import compat

    compat.uninstall()


def stubbed() -> list[str]:
    """The resource types stubbed since install, sorted (asked of moto, never listed by hand)."""
    from mlops_platform.local import compat

    return compat.stubbed()
