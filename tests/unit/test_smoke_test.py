"""`mlops smoke-test`: its pass and fail paths, with botocore Stubber and a fake HTTPS transport."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from mlops_platform.cli.smoke import parse_settings
from mlops_platform.delivery import smoke as smoke_test
from mlops_platform.delivery.smoke import SettingError, SmokeTestFailure, check_scoring, check_training
from tests.conftest import ROOT, mlops

API_URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/"
STATE_MACHINE = "arn:aws:states:eu-west-1:222222222222:stateMachine:PipelineStateMachine1814BD05-AbCdEf"
ROLE = "arn:aws:iam::222222222222:role/mlops-staging-smoke-test"
EXECUTION = "arn:aws:states:eu-west-1:222222222222:execution:PipelineStateMachine1814BD05-AbCdEf:smoke-build-1"
ENVIRONMENT = {
    "SCORING_API_URL": API_URL,
    "STATE_MACHINE_ARN": STATE_MACHINE,
    "SMOKE_TEST_ENDPOINT": "example",
    "SMOKE_TEST_TENANT": "example",
    "SMOKE_TEST_MODELS": "xgboost",
    "SMOKE_TEST_TIMEOUT_SECONDS": "600",
    "CODEBUILD_BUILD_ID": "mlops-delivery-smoke:build-1",
}
SCORED = {"endpoint": "example", "variant": "Champion", "predictions": [{"score": 0.031}]}


def main(argv: list[str], environ: dict[str, str], **seams: Any) -> int:
    """``mlops smoke-test <argv>`` as the pipeline's build runs it, with the test's environment and clients."""
    return mlops(["smoke-test", *argv], environ=environ, **seams)


class FakeApi:
    """POST /score as API Gateway answers it; records what was sent. By default the scoring API's own way:
    the variant a request names answers it (TargetVariant), else the Champion."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.status = status
        self.body = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        self.requests.append((method, url, dict(headers), body))
        if self.body is not None:
            return self.status, self.body
        return self.status, json.dumps({**SCORED, "variant": json.loads(body).get("variant", "Champion")}).encode()

    @property
    def variants_asked(self) -> list[str | None]:
        return [json.loads(body).get("variant") for *_, body in self.requests]


class Clock:
    """Time that moves only when the smoke test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def settings(**overrides: str) -> smoke_test.Settings:
    return parse_settings([], {**ENVIRONMENT, **overrides})


def session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        aws_session_token="token",
        region_name="eu-west-1",
    )


def stepfunctions_stub(statuses: list[dict[str, Any]], *, stop: bool = False):
    client = boto3.client("stepfunctions", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_response(
        "start_execution",
        {"executionArn": EXECUTION, "startDate": datetime(2026, 1, 1, tzinfo=UTC)},
        {
            "stateMachineArn": STATE_MACHINE,
            "name": "smoke-build-1",
            "input": json.dumps({"tenant": "example", "models": ["xgboost"]}),
        },
    )
    for status in statuses:
        stubber.add_response(
            "describe_execution",
            {
                "executionArn": EXECUTION,
                "stateMachineArn": STATE_MACHINE,
                "startDate": datetime(2026, 1, 1, tzinfo=UTC),
                **status,
            },
            {"executionArn": EXECUTION},
        )
    if stop:
        stubber.add_response(
            "stop_execution",
            {"stopDate": datetime(2026, 1, 1, tzinfo=UTC)},
            {"executionArn": EXECUTION, "error": "SmokeTestTimeout", "cause": "the smoke test stopped waiting"},
        )
    return client, stubber


# -- settings ----------------------------------------------------------------------------------------


def test_settings_come_from_the_environment_the_pipeline_sets():
    parsed = settings()

    assert parsed.score_url == "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/endpoints/example/score"
    assert parsed.region == "eu-west-1"
    assert parsed.models == ("xgboost",)
    assert parsed.execution_name == "smoke-build-1"
    assert parsed.role_arn is None


def test_the_variants_are_the_tested_environments_for_its_endpoint():
    from config import load_config
    from config.schema import SMOKE_TESTED_ENVIRONMENT

    staging = load_config(ROOT / "config", selected_environments=SMOKE_TESTED_ENVIRONMENT).environment("staging")

    assert smoke_test.DEFAULT_ENVIRONMENT == SMOKE_TESTED_ENVIRONMENT
    assert settings().variants == tuple(v.name for v in staging.serving.endpoints["example"].variants)
    assert settings().variants == ("Champion", "Challenger")  # the shipped A/B pair
    assert settings(SMOKE_TEST_ENVIRONMENT="prod").variants == ("Champion",)
    assert parse_settings(["--variants", "Challenger, Challenger"], ENVIRONMENT).variants == ("Challenger",)


def test_a_flag_wins_over_the_environment():
    parsed = parse_settings(["--models", "xgboost,linear", "--role-arn", ROLE], ENVIRONMENT)

    assert parsed.models == ("xgboost", "linear")
    assert parsed.role_arn == ROLE


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SCORING_API_URL", "", "scoring API URL"),
        ("SCORING_API_URL", "http://example.com/score", "scoring API URL"),
        ("STATE_MACHINE_ARN", "arn:aws:states:eu-west-1:1:stateMachine:x", "state machine ARN"),
        ("SMOKE_TEST_MODELS", " , ", "no model"),
        ("SMOKE_TEST_TIMEOUT_SECONDS", "soon", "whole seconds"),
        ("SMOKE_TEST_VARIANTS", " , ", "no variant"),
        ("SMOKE_TEST_ENVIRONMENT", "qa", "'qa' has no"),
        ("SMOKE_TEST_ENDPOINT", "churn", "declares no endpoint 'churn'"),
    ],
)
def test_a_missing_or_malformed_setting_exits_2_with_one_line(capsys, key, value, message):
    with pytest.raises(SettingError, match=message):
        parse_settings([], {**ENVIRONMENT, key: value})

    assert main([], {**ENVIRONMENT, key: value}) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err


def test_the_sample_is_the_first_example_record_in_schema_order():
    config = yaml.safe_load((ROOT / "config" / "pipelines" / "example.yaml").read_text())
    first = json.loads((ROOT / "data" / "example" / "breast-cancer.jsonl").read_text().splitlines()[0])["record"]

    instance = smoke_test.sample_instance("example")

    assert instance == [float(first[feature]) for feature in config["dataset"]["features"]]
    assert len(instance) == 30


# -- scoring -----------------------------------------------------------------------------------------


def test_scoring_passes_on_one_finite_score_and_signs_the_request_for_api_gateway():
    api = FakeApi()

    line = check_scoring(session(), settings(), [1.0, 2.5], api)

    [(method, url, headers, body)] = api.requests
    assert (method, url) == (
        "POST",
        "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/endpoints/example/score",
    )
    assert json.loads(body) == {"instances": [[1.0, 2.5]]}  # the weights choose; the endpoint is in the path
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "token"
    assert "variant Champion" in line
    assert "score 0.031" in line


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (403, {"message": "User is not authorized to access this resource"}, "answered 403: "),
        (503, {"message": "the endpoint 'example' is not in service"}, "answered 503"),
        (200, b"<html>", "not JSON"),
        (200, {"endpoint": "example", "variant": "Champion", "predictions": []}, "one prediction"),
        (200, {"endpoint": "example", "variant": "Champion", "predictions": [{"score": "NaN"}]}, "finite score"),
        (200, {"endpoint": "example", "variant": "Champion", "predictions": [{"score": True}]}, "finite score"),
        (200, {"endpoint": "example", "predictions": [{"score": 0.5}]}, "names no variant"),
    ],
)
def test_scoring_fails_on_anything_but_a_scored_answer(status, body, message):
    with pytest.raises(SmokeTestFailure, match=message) as raised:
        check_scoring(session(), settings(), [1.0], FakeApi(status, body))

    assert "\n" not in str(raised.value)


def test_scoring_a_variant_asks_for_it_and_fails_when_another_answers():
    api = FakeApi()

    line = check_scoring(session(), settings(), [1.0], api, "Challenger")

    assert json.loads(api.requests[0][3]) == {"instances": [[1.0]], "variant": "Challenger"}
    assert "variant Challenger" in line
    with pytest.raises(SmokeTestFailure, match="asked variant Challenger of endpoint example, Champion answered"):
        check_scoring(session(), settings(), [1.0], FakeApi(200, SCORED), "Challenger")


def test_scoring_fails_when_the_api_does_not_answer():
    def unreachable(*_: Any) -> tuple[int, bytes]:
        raise OSError("connection refused")

    with pytest.raises(SmokeTestFailure, match=r"did not answer \(connection refused"):
        check_scoring(session(), settings(), [1.0], unreachable)


# -- training ----------------------------------------------------------------------------------------


def test_training_passes_when_the_run_succeeds_after_polling():
    client, stubber = stepfunctions_stub([{"status": "RUNNING"}, {"status": "RUNNING"}, {"status": "SUCCEEDED"}])
    clock = Clock()

    with stubber:
        line = check_training(client, settings(), sleep=clock.sleep, clock=clock)

    stubber.assert_no_pending_responses()
    assert clock.sleeps == [30, 30]
    assert "run smoke-build-1 of tenant example succeeded in 60 s" in line


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_training_fails_with_the_runs_error_when_it_does_not_succeed(status):
    client, stubber = stepfunctions_stub(
        [
            {"status": "RUNNING"},
            {"status": status, "error": "States.TaskFailed", "cause": "ResourceLimitExceeded\nml.m5"},
        ]
    )
    clock = Clock()

    with stubber, pytest.raises(SmokeTestFailure) as raised:
        check_training(client, settings(), sleep=clock.sleep, clock=clock)

    assert str(raised.value) == (
        f"training: run smoke-build-1 ended {status} (States.TaskFailed: ResourceLimitExceeded ml.m5)"
    )


def test_a_run_still_going_at_the_timeout_is_stopped_and_fails():
    client, stubber = stepfunctions_stub([{"status": "RUNNING"}] * 3, stop=True)
    clock = Clock()

    with stubber, pytest.raises(SmokeTestFailure, match="still RUNNING after 60 s; stopped it"):
        check_training(client, settings(SMOKE_TEST_TIMEOUT_SECONDS="60"), sleep=clock.sleep, clock=clock)

    stubber.assert_no_pending_responses()


def test_a_run_that_cannot_start_fails():
    client = boto3.client("stepfunctions", region_name="eu-west-1")
    stubber = Stubber(client)
    stubber.add_client_error(
        "start_execution", "AccessDeniedException", "not authorized to perform states:StartExecution"
    )

    with stubber, pytest.raises(SmokeTestFailure, match=r"could not start \(.*AccessDeniedException"):
        check_training(client, settings())


# -- the whole script --------------------------------------------------------------------------------


def sts_stub(*expirations: datetime) -> tuple[Any, Stubber]:
    """STS answering one AssumeRole per expiration given (one, far in the future, by default)."""
    sts = boto3.client("sts", region_name="eu-west-1")
    stubber = Stubber(sts)
    for index, expiration in enumerate(expirations or (datetime(2099, 1, 1, tzinfo=UTC),)):
        stubber.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": f"ASIASTAGINGEXAMPLE{index}",
                    "SecretAccessKey": "secret",
                    "SessionToken": "staging-token",
                    "Expiration": expiration,
                }
            },
            {"RoleArn": ROLE, "RoleSessionName": "smoke-build-1", "DurationSeconds": 3600},
        )
    return sts, stubber


def test_the_assumed_roles_credentials_renew_themselves_past_role_chainings_hour():
    soon = datetime.now(UTC) + timedelta(minutes=1)
    sts, stubber = sts_stub(soon, datetime(2099, 1, 1, tzinfo=UTC))

    with stubber:
        assumed = smoke_test.session_for(settings(SMOKE_TEST_ROLE_ARN=ROLE), sts)
        first = assumed.get_credentials().get_frozen_credentials().access_key

    stubber.assert_no_pending_responses()
    assert first == "ASIASTAGINGEXAMPLE1"  # the first expires within botocore's refresh window


@pytest.fixture
def stepfunctions_clients(monkeypatch):
    """The Step Functions client the script builds from the assumed role's session, swapped for a stubbed one."""
    made: list[Any] = []
    real_client = boto3.Session.client

    def client(self, service_name, *args, **kwargs):
        if service_name not in made_clients:  # the test building its stubbed client
            return real_client(self, service_name, *args, **kwargs)
        made.append((service_name, self.get_credentials().access_key))
        return made_clients[service_name]

    made_clients: dict[str, Any] = {}
    monkeypatch.setattr(boto3.Session, "client", client)
    return made_clients, made


def test_the_script_passes_as_the_staging_role_when_both_checks_pass(capsys, stepfunctions_clients):
    clients, made = stepfunctions_clients
    stepfunctions, stubber = stepfunctions_stub([{"status": "SUCCEEDED"}])
    clients["stepfunctions"] = stepfunctions
    sts, sts_stubber = sts_stub()
    api = FakeApi()

    with stubber, sts_stubber:
        status = main([], {**ENVIRONMENT, "SMOKE_TEST_ROLE_ARN": ROLE}, sts=sts, send=api)

    assert status == 0
    assert made == [("stepfunctions", "ASIASTAGINGEXAMPLE0")]  # trains as the assumed role
    assert "Credential=ASIASTAGINGEXAMPLE0/" in api.requests[0][2]["Authorization"]  # scores as it too
    assert api.variants_asked == ["Champion", "Challenger"]  # both arms of staging's A/B endpoint
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("scoring passed: endpoint example, variant Champion")
    assert out[1].startswith("scoring passed: endpoint example, variant Challenger")
    assert out[2].startswith("training passed")
    assert out[-1] == "smoke test passed"


def test_the_script_fails_and_trains_nothing_when_a_variant_does_not_answer(capsys, stepfunctions_clients):
    _clients, made = stepfunctions_clients

    def challenger_down(method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        if json.loads(body)["variant"] == "Challenger":
            return 503, b'{"message": "the endpoint \'example\' is not available; try again later"}'
        return FakeApi()(method, url, headers, body)

    status = main([], ENVIRONMENT, send=challenger_down)

    assert status == 1
    assert made == []
    assert "answered 503" in capsys.readouterr().err


def test_the_script_fails_and_trains_nothing_when_scoring_fails(capsys, stepfunctions_clients):
    _clients, made = stepfunctions_clients
    sts, sts_stubber = sts_stub()

    with sts_stubber:
        status = main([], {**ENVIRONMENT, "SMOKE_TEST_ROLE_ARN": ROLE}, sts=sts, send=FakeApi(502, {"message": "x"}))

    assert status == 1
    assert made == []
    assert capsys.readouterr().err.strip() == (
        "smoke test failed: scoring: POST "
        "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/v1/endpoints/example/score "
        'answered 502: {"message": "x"}'
    )


def test_the_script_fails_when_the_training_run_fails(capsys, stepfunctions_clients):
    clients, _ = stepfunctions_clients
    stepfunctions, stubber = stepfunctions_stub([{"status": "FAILED", "error": "PlanFailed"}])
    clients["stepfunctions"] = stepfunctions
    sts, sts_stubber = sts_stub()
    clock = Clock()

    with stubber, sts_stubber:
        status = main(
            [], {**ENVIRONMENT, "SMOKE_TEST_ROLE_ARN": ROLE}, sts=sts, send=FakeApi(), sleep=clock.sleep, clock=clock
        )

    assert status == 1
    assert "smoke test failed: training: run smoke-build-1 ended FAILED (PlanFailed)" in capsys.readouterr().err


def test_the_script_fails_when_the_role_cannot_be_assumed(capsys):
    sts = boto3.client("sts", region_name="eu-west-1")
    stubber = Stubber(sts)
    stubber.add_client_error("assume_role", "AccessDenied", "not authorized to perform sts:AssumeRole")

    with stubber:
        status = main([], {**ENVIRONMENT, "SMOKE_TEST_ROLE_ARN": ROLE}, sts=sts, send=FakeApi())

    assert status == 1
    assert "AWS refused" in capsys.readouterr().err
