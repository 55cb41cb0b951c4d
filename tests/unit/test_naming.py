"""Contract names carry the project and the environment, in each service's own syntax."""

from __future__ import annotations

from config import Names

DEV = Names(project="mlops", environment="dev")


def test_resource_names_are_hyphenated_and_scoped_to_the_environment():
    assert DEV.resource("analytics") == "mlops-dev-analytics"
    assert DEV.prefix == "mlops-dev"


def test_glue_names_use_underscores_because_athena_refuses_hyphens():
    assert DEV.glue("lake") == "mlops_dev_lake"
    assert Names(project="mlops", environment="dev").glue("raw-events") == "mlops_dev_raw_events"


def test_parameter_paths_and_aliases_nest_under_project_and_environment():
    assert DEV.parameter("models", "churn", "Champion") == "/mlops/dev/models/churn/Champion"
    assert DEV.alias("platform") == "alias/mlops/dev/platform"
    assert DEV.metrics_namespace == "mlops/dev"


def test_no_two_environments_share_a_name():
    staging = Names(project="mlops", environment="staging")

    for name in ("resource", "glue", "parameter", "alias"):
        assert getattr(DEV, name)("x") != getattr(staging, name)("x")
