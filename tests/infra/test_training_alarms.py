"""The Monitoring stack's alarm on failed training executions: failed, timed out or aborted, to the topic."""

from __future__ import annotations

from typing import Any

from tests.infra.test_training import of_type

STACK = "monitoring"
MACHINE_ARN = "PublishOutputRefPipelineStateMachine"


def training_alarm(resources: dict[str, Any], environment: str) -> dict[str, Any]:
    [alarm] = [
        alarm["Properties"]
        for alarm in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("AlarmName") == f"mlops-{environment}-training-failed"
    ]
    return alarm


def test_failed_timed_out_and_aborted_training_executions_alarm_at_the_first_one(resources, environment):
    alarm = training_alarm(resources, environment)

    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["EvaluationPeriods"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"
    [expression] = [query for query in alarm["Metrics"] if "Expression" in query]
    assert expression["ReturnData"] is True
    metrics = {query["Id"]: query["MetricStat"] for query in alarm["Metrics"] if "MetricStat" in query}
    assert expression["Expression"] == " + ".join(metrics)
    assert {stat["Metric"]["MetricName"] for stat in metrics.values()} == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    }
    for stat in metrics.values():
        assert stat["Metric"]["Namespace"] == "AWS/States"
        assert stat["Stat"] == "Sum"
        assert stat["Period"] == 300
        [dimension] = stat["Metric"]["Dimensions"]
        assert dimension["Name"] == "StateMachineArn"
        # The Training stack's state machine, through its published output.
        assert MACHINE_ARN in str(dimension["Value"])
        assert f"{environment}-Training" in str(dimension["Value"])


def test_the_training_alarm_notifies_the_environment_s_topic(resources, environment):
    alarm = training_alarm(resources, environment)
    # Every other alarm of the stack notifies Foundation's topic, the approval path's among them.
    approval_alarm = next(
        a["Properties"]
        for lid, a in of_type(resources, "AWS::CloudWatch::Alarm").items()
        if lid.startswith("ApprovalPath")
    )

    [action] = alarm["AlarmActions"]
    assert f"{environment}-Foundation" in str(action)
    assert alarm["AlarmActions"] == approval_alarm["AlarmActions"]
