"""The platform's SQS queues: encrypted with the platform key, TLS only, whatever they carry."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops_constructs.nag import acknowledge

# SQS's longest retention: what lands in a dead-letter queue waits for a person or a redrive.
DEAD_LETTER_RETENTION = Duration.days(14)


def encrypted_queue(scope: Construct, id: str, *, key: kms.IKey, **props: Any) -> sqs.Queue:
    """A queue encrypted with ``key`` that refuses requests without TLS; ``props`` are the rest of ``sqs.Queue``'s."""
    return sqs.Queue(
        scope, id, encryption=sqs.QueueEncryption.KMS, encryption_master_key=key, enforce_ssl=True, **props
    )


def dead_letter_queue(
    scope: Construct, id: str, *, key: kms.IKey, last_stop: str | None = None, **props: Any
) -> sqs.Queue:
    """An encrypted queue that keeps its messages as long as SQS allows.

    ``last_stop`` says what the queue collects, where it has no dead-letter queue of its own (cdk-nag's
    AwsSolutions-SQS3, acknowledged with that reason).
    """
    queue = encrypted_queue(scope, id, key=key, retention_period=DEAD_LETTER_RETENTION, **props)
    if last_stop is not None:
        acknowledge(queue, "AwsSolutions-SQS3", last_stop)
    return queue
