"""The environment's notification topic: alarms and approvals of every stack end here."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

# A topic policy replaces SNS's default policy, so the services that publish alarms and events
# must be named in it (and in the key policy, see encryption.py).
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class NotificationTopic(Construct):
    def __init__(
        self, scope: Construct, id: str, *, key: kms.IKey, display_name: str, emails: Sequence[str] = ()
    ) -> None:
        super().__init__(scope, id)
        account = Stack.of(self).account
        self.topic = sns.Topic(self, "Topic", display_name=display_name, master_key=key, enforce_ssl=True)
        for service in PUBLISHERS:
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Allow{service.split('.')[0].capitalize()}ToPublish",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                )
            )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
