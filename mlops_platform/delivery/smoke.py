"""The delivery pipeline's smoke test of an environment: score through its API, then train and wait.

    python -m mlops_platform.cli smoke-test [--api-url URL] [--state-machine-arn ARN] [--role-arn ARN]
        [--environment staging] [--endpoint example] [--variants Champion,Challenger]
        [--tenant example] [--models xgboost] [--timeout-seconds 6900]

The pipeline runs it after staging deploys (stacks/pipeline.py), with every setting in the
environment (``SCORING_API_URL`` and ``STATE_MACHINE_ARN`` from the stacks' outputs,
``SMOKE_TEST_ROLE_ARN``, ``SMOKE_TEST_ENDPOINT``, ``SMOKE_TEST_TENANT``, ``SMOKE_TEST_MODELS``,
``SMOKE_TEST_TIMEOUT_SECONDS``, and optionally ``SMOKE_TEST_ENVIRONMENT`` and
``SMOKE_TEST_VARIANTS``); a flag on the command line wins. Two checks, in order:

1. **Scoring**: one sample of the example dataset (``data/example/``, its features in the order of
   ``config/pipelines/<tenant>.yaml``) is sent to ``POST /endpoints/<endpoint>/score`` of the scoring API once per
   variant of the endpoint, naming the variant (the API passes it on as InvokeEndpoint's
   ``TargetVariant``), signed with SigV4 (the API is IAM-authenticated). Each passes with a 200
   that names the endpoint and that very variant and holds one prediction with a finite score:
   every arm of the A/B test answers, not only the one the weights favour. The variants are the
   endpoint's in ``config/environments/<environment>.yaml`` unless ``--variants`` names them.
2. **Training**: a run of the tenant's chosen models starts on the training state machine and is
   watched until it ends. It passes when the execution succeeds; a run still going at the timeout
   is stopped, so a smoke test never leaves work behind.

The example tenant's models are never promoted, so what this trains cannot reach a deployment.
With ``--role-arn`` the checks run as that role (the pipeline's build assumes the environment's
smoke-test role, in another account).
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import yaml
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import RefreshableCredentials  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from botocore.session import get_session  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
API_URL = re.compile(r"^https://[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com/[A-Za-z0-9_-]+/?$")
STATE_MACHINE_ARN = re.compile(r"^arn:aws[a-z-]*:states:([a-z0-9-]+):\d{12}:stateMachine:[A-Za-z0-9_-]+$")
ENDED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
DEFAULT_TIMEOUT_SECONDS = 6900
DEFAULT_POLL_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 30
MAX_DETAIL = 300
# The environment the pipeline smoke-tests (config/schema.py's SMOKE_TESTED_ENVIRONMENT; this
# module needs only boto3 and PyYAML, so it does not import the config package).
DEFAULT_ENVIRONMENT = "staging"
# Role chaining (the build's role assuming another) allows sessions of at most an hour.
ROLE_SESSION_SECONDS = 3600


class SmokeTestFailure(Exception):
    """A check that failed, in one line."""


class SettingError(Exception):
    """A missing or malformed setting, in one line."""


@dataclass(frozen=True)
class Settings:
    api_url: str
    state_machine_arn: str
    role_arn: str | None
    endpoint: str
    variants: tuple[str, ...]
    tenant: str
    models: tuple[str, ...]
    timeout_seconds: int
    poll_seconds: int
    execution_name: str

    @property
    def region(self) -> str:
        match = STATE_MACHINE_ARN.match(self.state_machine_arn)
        assert match is not None  # checked in settings_from
        return match.group(1)

    @property
    def score_url(self) -> str:
        return self.api_url.rstrip("/") + f"/endpoints/{self.endpoint}/score"


# Each option's environment variable, and its default when neither the flag nor the variable is set.
OPTIONS: dict[str, tuple[str | None, str | None]] = {
    "api_url": ("SCORING_API_URL", None),
    "state_machine_arn": ("STATE_MACHINE_ARN", None),
    "role_arn": ("SMOKE_TEST_ROLE_ARN", None),
    "environment": ("SMOKE_TEST_ENVIRONMENT", DEFAULT_ENVIRONMENT),
    "endpoint": ("SMOKE_TEST_ENDPOINT", "example"),
    "variants": ("SMOKE_TEST_VARIANTS", None),
    "tenant": ("SMOKE_TEST_TENANT", "example"),
    "models": ("SMOKE_TEST_MODELS", "xgboost"),
    "timeout_seconds": ("SMOKE_TEST_TIMEOUT_SECONDS", str(DEFAULT_TIMEOUT_SECONDS)),
    "poll_seconds": (None, str(DEFAULT_POLL_SECONDS)),
    "execution_name": (None, None),
}


def settings_from(given: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """The settings: each option as given on the command line (None: not given), else from ``environ``."""

    def value(name: str) -> str | None:
        variable, default = OPTIONS[name]
        if given.get(name) is not None:
            return given[name]
        if variable is None:
            return default
        found = environ.get(variable, default)
        return (found or None) if name in ("role_arn", "variants") else found

    args = SimpleNamespace(**{name: value(name) for name in OPTIONS})
    if not args.api_url or not API_URL.match(args.api_url):
        raise SettingError(
            f"the scoring API URL (--api-url or SCORING_API_URL) is {args.api_url!r}; "
            "expected the ScoringApiUrl output, https://<id>.execute-api.<region>.amazonaws.com/<stage>/"
        )
    if not args.state_machine_arn or not STATE_MACHINE_ARN.match(args.state_machine_arn):
        raise SettingError(
            f"the state machine ARN (--state-machine-arn or STATE_MACHINE_ARN) is {args.state_machine_arn!r}; "
            "expected the StateMachineArn output of the environment's Training stack"
        )
    models = tuple(model.strip() for model in args.models.split(",") if model.strip())
    if not models:
        raise SettingError("no model to train (--models or SMOKE_TEST_MODELS): name at least one")
    try:
        timeout, poll = int(args.timeout_seconds), int(args.poll_seconds)
    except ValueError:
        raise SettingError(
            f"the timeout and poll interval are whole seconds, not {args.timeout_seconds!r} and {args.poll_seconds!r}"
        ) from None
    if timeout < 1 or poll < 1:
        raise SettingError(f"the timeout ({timeout}) and poll interval ({poll}) are at least 1 second")
    if args.variants is None:
        variants = endpoint_variants(args.environment, args.endpoint)
    else:
        variants = tuple(dict.fromkeys(name.strip() for name in args.variants.split(",") if name.strip()))
    if not variants:
        raise SettingError("no variant to score (--variants or SMOKE_TEST_VARIANTS): name at least one")
    return Settings(
        api_url=args.api_url,
        state_machine_arn=args.state_machine_arn,
        role_arn=args.role_arn,
        endpoint=args.endpoint,
        variants=variants,
        tenant=args.tenant,
        models=models,
        timeout_seconds=timeout,
        poll_seconds=poll,
        execution_name=args.execution_name or execution_name(environ),
    )


def execution_name(environ: Mapping[str, str]) -> str:
    """``smoke-<CodeBuild build id>`` in the pipeline, so a run names the build that started it."""
    build = environ.get("CODEBUILD_BUILD_ID", "").rsplit(":", 1)[-1]
    suffix = build if re.fullmatch(r"[A-Za-z0-9-]{1,60}", build) else uuid.uuid4().hex
    return f"smoke-{suffix}"


def endpoint_variants(environment: str, endpoint: str, root: Path = ROOT) -> tuple[str, ...]:
    """The endpoint's variant names as ``config/environments/<environment>.yaml`` declares them."""
    path = root / "config" / "environments" / f"{environment}.yaml"
    if not path.is_file():
        raise SettingError(f"the environment (--environment or SMOKE_TEST_ENVIRONMENT) {environment!r} has no {path}")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    declared = (config.get("serving") or {}).get("endpoints") or {}
    if endpoint not in declared:
        raise SettingError(f"{environment} declares no endpoint {endpoint!r}; it has {sorted(declared)}")
    return tuple(str(variant["name"]) for variant in declared[endpoint]["variants"])


def sample_instance(tenant: str, root: Path = ROOT) -> list[float]:
    """The first record of the tenant's example data, its features in the order its schema lists them."""
    config = yaml.safe_load((root / "config" / "pipelines" / f"{tenant}.yaml").read_text(encoding="utf-8"))
    dataset = config["dataset"]
    with (root / "data" / tenant / f"{dataset['name']}.jsonl").open(encoding="utf-8") as lines:
        record = json.loads(next(lines))["record"]
    return [float(record[feature]) for feature in dataset["features"]]


def session_for(settings: Settings, sts: Any | None = None) -> boto3.Session:
    """A session as the smoke-test role when one is set, else the caller's own credentials.

    The build's own credentials are a role's, so assuming the smoke-test role is role chaining,
    which AWS caps at one hour; a training run may take longer, so the credentials renew
    themselves (botocore refreshes them shortly before they expire).
    """
    if not settings.role_arn:
        return boto3.Session(region_name=settings.region)
    sts = sts or boto3.client("sts", region_name=settings.region)
    role_arn = settings.role_arn

    def assume() -> dict[str, str]:
        credentials = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=settings.execution_name[:64], DurationSeconds=ROLE_SESSION_SECONDS
        )["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    botocore_session = get_session()
    # botocore has no public setter for a session's credentials provider; this is the usual way.
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(
        metadata=assume(), refresh_using=assume, method="sts-assume-role"
    )
    return boto3.Session(botocore_session=botocore_session, region_name=settings.region)


# (method, url, headers, body) -> (status, body): urllib in production, a fake in the tests.
Send = Callable[[str, str, Mapping[str, str], bytes], tuple[int, bytes]]


def send_https(method: str, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method=method)  # noqa: S310 (https only)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def signed_headers(session: boto3.Session, url: str, body: bytes, region: str) -> dict[str, str]:
    """SigV4 headers for API Gateway (service ``execute-api``)."""
    credentials = session.get_credentials()
    if credentials is None:
        raise SmokeTestFailure("scoring: no AWS credentials to sign the request with")
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def check_scoring(
    session: boto3.Session, settings: Settings, instance: list[float], send: Send, variant: str | None = None
) -> str:
    """Score one instance through the API, on ``variant`` only if given; the line that says it passed, or
    SmokeTestFailure."""
    request: dict[str, Any] = {"instances": [instance]}  # the endpoint is in the path
    if variant is not None:
        request["variant"] = variant
    body = json.dumps(request).encode("utf-8")
    url = settings.score_url
    api_region = API_URL.match(settings.api_url).group(1)  # type: ignore[union-attr]
    try:
        status, answer = send("POST", url, signed_headers(session, url, body, api_region), body)
    except (OSError, urllib.error.URLError) as error:
        raise SmokeTestFailure(f"scoring: POST {url} did not answer ({one_line(error)})") from None
    text = answer.decode("utf-8", errors="replace")
    if status != 200:
        raise SmokeTestFailure(f"scoring: POST {url} answered {status}: {one_line(text)}")
    try:
        result = json.loads(text)
    except ValueError:
        raise SmokeTestFailure(f"scoring: the answer is not JSON: {one_line(text)}") from None
    predictions = result.get("predictions") if isinstance(result, dict) else None
    if (
        not isinstance(predictions, list)
        or len(predictions) != 1
        or not isinstance(predictions[0], dict)
        or not _is_finite_number(predictions[0].get("score"))
    ):
        raise SmokeTestFailure(f"scoring: expected one prediction with a finite score, got {one_line(text)}")
    if result.get("endpoint") != settings.endpoint or not result.get("variant"):
        raise SmokeTestFailure(
            f"scoring: the answer names no variant of endpoint {settings.endpoint}: {one_line(text)}"
        )
    if variant is not None and result["variant"] != variant:
        raise SmokeTestFailure(
            f"scoring: asked variant {variant} of endpoint {settings.endpoint}, {result['variant']} answered"
        )
    return (
        f"scoring passed: endpoint {settings.endpoint}, variant {result['variant']}, "
        f"score {predictions[0]['score']:.4g}"
    )


def check_training(
    stepfunctions: Any,
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Start a run and wait for it; the line that says it passed, or SmokeTestFailure."""
    request = {"tenant": settings.tenant, "models": list(settings.models)}
    try:
        execution_arn = stepfunctions.start_execution(
            stateMachineArn=settings.state_machine_arn, name=settings.execution_name, input=json.dumps(request)
        )["executionArn"]
    except (ClientError, BotoCoreError) as error:
        raise SmokeTestFailure(f"training: the run could not start ({one_line(error)})") from None
    started = clock()
    while True:
        try:
            execution = stepfunctions.describe_execution(executionArn=execution_arn)
        except (ClientError, BotoCoreError) as error:
            raise SmokeTestFailure(
                f"training: run {settings.execution_name} cannot be read ({one_line(error)})"
            ) from None
        status = execution["status"]
        elapsed = clock() - started
        if status == "SUCCEEDED":
            return (
                f"training passed: run {settings.execution_name} of tenant {settings.tenant} "
                f"succeeded in {elapsed:.0f} s"
            )
        if status in ENDED:
            why = ": ".join(part for part in (execution.get("error"), execution.get("cause")) if part)
            raise SmokeTestFailure(
                f"training: run {settings.execution_name} ended {status}" + (f" ({one_line(why)})" if why else "")
            )
        if elapsed >= settings.timeout_seconds:
            try:
                stepfunctions.stop_execution(
                    executionArn=execution_arn, error="SmokeTestTimeout", cause="the smoke test stopped waiting"
                )
            except (ClientError, BotoCoreError) as error:
                raise SmokeTestFailure(
                    f"training: run {settings.execution_name} still {status} after {settings.timeout_seconds} s, "
                    f"and stopping it failed ({one_line(error)})"
                ) from None
            raise SmokeTestFailure(
                f"training: run {settings.execution_name} still {status} after {settings.timeout_seconds} s; stopped it"
            )
        sleep(min(settings.poll_seconds, max(settings.timeout_seconds - elapsed, 1)))


def smoke_test(
    settings: Settings,
    *,
    session: boto3.Session,
    send: Send = send_https,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    root: Path = ROOT,
) -> list[str]:
    """Both checks, scoring (each variant) first; the lines that say they passed."""
    instance = sample_instance(settings.tenant, root)
    lines = []
    for variant in settings.variants:
        lines.append(check_scoring(session, settings, instance, send, variant))
        print(lines[-1], flush=True)
    lines.append(check_training(session.client("stepfunctions"), settings, sleep=sleep, clock=clock))
    print(lines[-1], flush=True)
    return lines


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
