"""The scoring Lambda and the inference container agree: one InvokeEndpoint call, end to end, on the example model.

The handlers' own tests stub the container's answers; this test puts the real container code
behind the real ``invoke_endpoint`` call, so a change on either side of the contract fails here.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from config.example_models import EXAMPLE_MODEL_NAMES, archive_path
from config.tenants import PipelineConfig
from mlops_platform.serving import handler as container
from mlops_platform.serving.api.endpoint import invoke_endpoint
from mlops_platform.serving.api.request import parse_request
from mlops_platform.serving.model import load
from mlops_platform.serving.settings import Settings
from tests.conftest import ROOT


class SageMakerRuntime:
    """InvokeEndpoint as SageMaker forwards it to the container: body, content types and custom attributes."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def invoke_endpoint(self, **call: Any) -> dict[str, Any]:
        response = container.handle(
            container.Request(
                method="POST",
                path="/invocations",
                content_type=call["ContentType"],
                accept=call["Accept"],
                custom_attributes=call.get("CustomAttributes"),
                body=call["Body"].encode() if isinstance(call["Body"], str) else call["Body"],
            ),
            self.model,
            Settings(),
        )
        assert response.status == 200, response.body
        return {"Body": io.BytesIO(response.body), "InvokedProductionVariant": "Champion"}


@pytest.fixture(scope="module", params=EXAMPLE_MODEL_NAMES)
def example_model(tmp_path_factory, request) -> Any:
    """Each shipped example model: the example endpoint's Champion and Challenger serve one each."""
    directory = tmp_path_factory.mktemp(request.param)
    with tarfile.open(archive_path(request.param)) as archive:
        archive.extractall(directory, filter="data")
    return load(directory)


@pytest.mark.parametrize("explain", [False, True])
def test_the_scoring_lambda_reads_what_the_container_answers(example_model, explain):
    features = list(PipelineConfig.model_validate(_example_tenant()).dataset.features)
    rows = [[float(i + j) for j in range(len(features))] for i in range(3)]
    request = parse_request({"instances": rows, "explain": explain}, "example", {"example": "mlops-dev-example"}, 1000)

    scored = invoke_endpoint(SageMakerRuntime(example_model), endpoint_name="mlops-dev-example", request=request)

    assert scored.variant == "Champion"
    assert len(scored.predictions) == 3
    assert all(0.0 <= prediction["score"] <= 1.0 for prediction in scored.predictions)
    if explain:
        assert set(scored.predictions[0]["contributions"]) == {*features, "bias"}
    else:
        assert "contributions" not in scored.predictions[0]


def _example_tenant() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((ROOT / "config" / "pipelines" / "example.yaml").read_text())


def test_the_contract_uses_json_both_ways():
    calls: list[dict[str, Any]] = []

    class Recorder:
        def invoke_endpoint(self, **call: Any) -> dict[str, Any]:
            calls.append(call)
            return {"Body": io.BytesIO(json.dumps({"predictions": [{"score": 0.5}]}).encode())}

    request = parse_request({"instances": [[1.0]], "explain": True}, "e", {"e": "ep"}, 10)
    invoke_endpoint(Recorder(), endpoint_name="ep", request=request)

    assert (calls[0]["ContentType"], calls[0]["Accept"], calls[0]["CustomAttributes"]) == (
        "application/json",
        "application/json",
        "explain=true",
    )
