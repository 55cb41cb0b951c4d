"""``mlops train-local`` and ``mlops serve-local`` on datasets scikit-learn ships, as a new tenant would bring them
(issue 16, point 8): a regression target, a 3-class target, a binary target with gaps and a string column, and
column names with spaces and slashes. Each is trained through the command's ``main`` (tiny grids), then its
artifacts are served by the inference server's application and score a row with a missing cell and a category
training never saw in every content type the server accepts."""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from mlops_platform.cli import main
from mlops_platform.cli.serve_local import load_artifact, request_examples
from mlops_platform.serving.app import create_app
from mlops_platform.serving.codec import CONTENT_TYPES
from tests.conftest import ROOT
from tests.unit.inference.conftest import SETTINGS
from tests.unit.inference.test_app import call

DAY = "2026-01-01"
UNSEEN = "a category training never saw"
# Tiny grids: two XGBoost trials (the best is kept) and one linear trial, a second or two each.
MODELS = [
    {"name": "xgboost", "algorithm": "xgboost", "grid": {"max_depth": [2, 3], "num_round": [10]}},
    {"name": "linear", "algorithm": "linear", "combinations": [{"epochs": 5}]},
]
OBJECTIVES = {
    "regression": ("validation:rmse", "minimize", 100),
    "multiclass": ("validation:mlogloss", "minimize", 1),
    "binary": ("validation:auc", "maximize", 0.9),
}
SITES = ("north", "south", "east")


@dataclass(frozen=True)
class Case:
    """A tenant as a user would write it, and its data file."""

    tenant: str
    frame: pd.DataFrame
    target: str
    problem_type: str
    categorical: str  # the string column
    suffix: str  # the file kind the data comes in
    classes: tuple[str, ...] = ()

    @property
    def features(self) -> list[str]:
        return [column for column in self.frame.columns if column != self.target]


def with_site(frame: pd.DataFrame, column: str = "site") -> pd.DataFrame:
    """A string column: where each row was collected."""
    return frame.assign(**{column: [SITES[i % 3] for i in range(len(frame))]})


def regression() -> Case:
    frame = with_site(load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"}))
    return Case("diabetes", frame, "progression", "regression", "site", ".parquet")


def multiclass() -> Case:
    wine = load_wine(as_frame=True)
    frame = with_site(wine.frame.rename(columns={"target": "cultivar"}))
    frame["cultivar"] = [str(wine.target_names[i]) for i in wine.target]
    assert "od280/od315_of_diluted_wines" in frame.columns  # the real column name, slash and all
    return Case(
        "wine", frame, "cultivar", "multiclass", "site", ".jsonl", tuple(str(name) for name in wine.target_names)
    )


def binary_with_gaps() -> Case:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(16)
    for column in ("mean_radius", "mean_texture", "worst_area", "area_error", "mean_smoothness"):
        frame.loc[rng.random(len(frame)) < 0.15, column] = np.nan  # about 15% of each column missing
    frame = with_site(frame, "carrier")
    frame.loc[rng.random(len(frame)) < 0.1, "carrier"] = None
    return Case("gaps", frame, "target", "binary", "carrier", ".csv")


def names_with_spaces_and_slashes() -> Case:
    frame = with_site(load_breast_cancer(as_frame=True).frame, "clinic/site name")
    frame = frame.rename(columns={"target": "is benign"})
    return Case("names", frame, "is benign", "binary", "clinic/site name", ".csv")


CASES = {
    case.tenant: case for case in (regression(), multiclass(), binary_with_gaps(), names_with_spaces_and_slashes())
}


def tenant_file(case: Case, folder: Path, **dataset: object) -> Path:
    metric, direction, threshold = OBJECTIVES[case.problem_type]
    features = {name: "categorical" if name == case.categorical else "double" for name in case.features}
    document = {
        "tenant": case.tenant,
        "dataset": {
            "name": case.tenant,
            "target": case.target,
            "problem_type": case.problem_type,
            **({"classes": list(case.classes)} if case.classes else {}),
            "features": features,
            **dataset,
        },
        "models": MODELS,
        "objective": {"metric": metric, "direction": direction, "approval_threshold": threshold},
        "training": {"instance_type": "ml.m5.large"},
        "batch_prediction": {"dataset": case.tenant},
    }
    path = folder / f"{case.tenant}.yaml"  # named after the tenant, as synth requires
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def data_file(frame: pd.DataFrame, folder: Path, suffix: str) -> Path:
    path = folder / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def train_local(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["train-local", *argv])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request, tmp_path_factory):
    case = CASES[request.param]
    folder = tmp_path_factory.mktemp(case.tenant)
    tenant = tenant_file(case, folder)
    data = data_file(case.frame, folder, case.suffix)
    status, out, err = train_local("--tenant", str(tenant), "--data", str(data), "--output", str(folder / "out"))
    assert status == 0, err
    return case, out, folder / "out"


def test_the_last_line_is_the_summary_with_each_model_s_best_trial_and_sane_metrics(trained):
    case, out, output = trained

    summary = json.loads(out.splitlines()[-1])

    assert summary == json.loads((output / "summary.json").read_text())
    assert summary["tenant"] == case.tenant
    assert summary["rows"] == {"valid": len(case.frame), "rejected": 0}
    assert list(summary["models"]) == ["xgboost", "linear"]
    metric, _, _ = OBJECTIVES[case.problem_type]
    for result in summary["models"].values():
        assert set(result) == {"metric", "validation", "test", "artifact"}
        assert result["metric"] == metric
        assert Path(result["artifact"]).is_file()
        assert result["artifact"].endswith("/model.tar.gz")
        for value in (result["validation"], result["test"]):
            assert isinstance(value, float)
            assert math.isfinite(value)
    xgboost = summary["models"]["xgboost"]
    if case.problem_type == "regression":
        spread = float(case.frame[case.target].std())
        assert xgboost["validation"] < spread
        assert xgboost["test"] < spread
    elif case.problem_type == "multiclass":
        assert xgboost["validation"] < math.log(3)
        assert xgboost["test"] < math.log(3)
    else:
        assert xgboost["validation"] > 0.9
        assert xgboost["test"] > 0.9
        assert 0.5 < summary["models"]["linear"]["test"] <= 1
    # Prepare's report is kept beside the models.
    assert json.loads((output / "prepare" / "report.json").read_text())["valid"] == len(case.frame)


def scoring_row(case: Case) -> dict[str, object]:
    """A real row with one value missing and the string column holding a category training never saw."""
    row = case.frame.iloc[0].drop(case.target).to_dict()
    first_number = next(name for name in case.features if name != case.categorical)
    row[first_number] = None
    row[case.categorical] = UNSEEN
    return {name: None if isinstance(v, float) and math.isnan(v) else v for name, v in row.items()}


def bodies(row: dict[str, object], order: list[str]) -> dict[str, bytes]:
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(["" if row[name] is None else row[name] for name in order])
    return {
        "text/csv": line.getvalue().encode(),
        "application/json": json.dumps({"instances": [row]}).encode(),
        "application/jsonlines": (json.dumps(row) + "\n").encode(),
    }


@pytest.mark.parametrize("model", ["xgboost", "linear"])
def test_the_artifacts_score_a_row_with_a_gap_and_an_unseen_category_in_every_content_type(trained, model, tmp_path):
    case, out, _ = trained
    artifact = Path(json.loads(out.splitlines()[-1])["models"][model]["artifact"])
    served = load_artifact(artifact, tmp_path / "model")
    application = create_app(served, SETTINGS)
    requests = bodies(scoring_row(case), list(served.metadata.features))
    assert set(requests) == set(CONTENT_TYPES)  # every type the server accepts

    for content_type, body in requests.items():
        status, _, answer = call(
            application, "POST", "/invocations", (body,), [(b"content-type", content_type.encode())]
        )

        assert status == 200, answer
        if content_type == "text/csv":
            cells = next(csv.reader(io.StringIO(answer.decode())))
            if case.problem_type == "multiclass":
                assert cells[0] in case.classes
                assert len(cells) == 1 + len(case.classes)
                assert sum(float(p) for p in cells[1:]) == pytest.approx(1, abs=1e-5)
            else:
                assert len(cells) == 1
                assert math.isfinite(float(cells[0]))
            continue
        [prediction] = (
            json.loads(answer)["predictions"]
            if content_type == "application/json"
            else [json.loads(line) for line in answer.splitlines()]
        )
        if case.problem_type == "multiclass":
            assert prediction["label"] in case.classes
            assert list(prediction["probabilities"]) == list(case.classes)
            assert sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        elif case.problem_type == "binary":
            assert 0 <= prediction["score"] <= 1
        else:
            assert math.isfinite(prediction["score"])


def test_serve_local_says_how_to_send_each_content_type(trained, tmp_path):
    _case, out, _ = trained
    served = load_artifact(Path(json.loads(out.splitlines()[-1])["models"]["xgboost"]["artifact"]), tmp_path / "m")

    lines = request_examples(served.metadata, "127.0.0.1", 8123).splitlines()

    curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
    assert [c.split("Content-Type: ")[1].split("'")[0] for c in curls] == list(CONTENT_TYPES)
    assert all("http://127.0.0.1:8123/invocations" in c for c in curls)


@pytest.mark.enable_socket
@pytest.mark.parametrize("trained", ["wine"], indirect=True)
def test_serve_local_serves_the_artifact_over_http_until_ctrl_c_and_exits_0(trained):
    from tests.unit.inference.test_server import free_port, wait_until

    case, out, _ = trained
    artifact = json.loads(out.splitlines()[-1])["models"]["xgboost"]["artifact"]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_platform.cli", "serve-local", "--model", artifact, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: _status(port, "GET", "/ping") == 200), "the server did not come up"
        row = scoring_row(case)
        body = bodies(row, list(case.features))["text/csv"]
        assert _status(port, "POST", "/invocations", body, "text/csv") == 200
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)

    assert server.returncode == 0, err
    assert f"curl -s http://127.0.0.1:{port}/invocations -H 'Content-Type: text/csv'" in out
    assert "Traceback" not in err


def _status(port: int, method: str, path: str, body: bytes = b"", content_type: str = "text/csv") -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type})
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


# ---- bad input: one sentence, exit 2 ----------------------------------------------------------


def test_rejections_above_the_ceiling_stop_before_training_with_prepare_s_sentence(tmp_path):
    case = CASES["gaps"]
    frame = case.frame.astype({"mean_texture": object})
    frame.loc[:9, "mean_texture"] = "n/a"  # 10 of 569 rows, 1.8%: above the default 1%
    tenant = tenant_file(case, tmp_path)

    status, out, err = train_local("--tenant", str(tenant), "--data", str(data_file(frame, tmp_path, ".csv")))

    assert (status, out) == (2, "")
    [line] = err.splitlines()[-1:]
    assert line.startswith("mlops train-local: prepare refused data.csv: ")
    assert "above the tenant's max_rejected_share of 0.01: wrong-type 10 rows (mean_texture)" in line


def test_within_a_raised_ceiling_the_rejected_rows_are_counted(tmp_path):
    case = CASES["gaps"]
    frame = case.frame.astype({"mean_texture": object})
    frame.loc[:9, "mean_texture"] = "n/a"
    tenant = tenant_file(case, tmp_path, max_rejected_share=0.05)
    data = data_file(frame, tmp_path, ".csv")

    status, out, err = train_local("--tenant", str(tenant), "--data", str(data), "--output", str(tmp_path / "o"))

    assert status == 0, err
    assert json.loads(out.splitlines()[-1])["rows"] == {"valid": len(frame) - 10, "rejected": 10}


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        # The target (every optional feature may be absent: prepare reads it as missing).
        (
            lambda frame: frame.drop(columns=[CASES["gaps"].target]),
            f"mlops train-local: data.csv lacks the columns '{CASES['gaps'].target}'",
        ),
        (None, "mlops train-local: "),
    ],
)
def test_a_file_or_tenant_that_does_not_fit_is_one_sentence(tmp_path, change, sentence):
    case = CASES["gaps"]
    tenant = tenant_file(case, tmp_path)
    if change is None:  # a tenant file synth refuses: an objective of another problem type
        tenant.write_text(tenant.read_text().replace("validation:auc", "validation:rmse"))
        sentence += f"{tenant}: key 'objective.metric' has value 'validation:rmse'; allowed: for a binary problem"
    frame = change(case.frame) if change else case.frame

    status, out, err = train_local("--tenant", str(tenant), "--data", str(data_file(frame, tmp_path, ".csv")))

    assert (status, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(sentence), line


def test_a_used_output_folder_is_refused(tmp_path):
    case = CASES["gaps"]
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "kept.txt").write_text("a previous run")

    status, _, err = train_local(
        "--tenant", str(tenant_file(case, tmp_path)), "--data", str(data_file(case.frame, tmp_path, ".csv")),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip

    assert status == 2
    assert "is not an empty folder; name a new one" in err


def test_the_readme_s_multiclass_tenant_is_a_tenant_file_synth_accepts(tmp_path):
    from config.loader import load_pipeline

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n### The dataset schema\n") : readme.index("\n### Training and serving on")]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    path = tmp_path / "wine.yaml"
    path.write_text(block, encoding="utf-8")

    tenant = load_pipeline(path)

    assert tenant.dataset.problem_type == "multiclass"
    assert tenant.dataset.features["od280/od315_of_diluted_wines"].required
    assert tenant.dataset.features["site"].type == "categorical"
    assert "mlops train-local --tenant <file> --data <file>" in readme
    assert "mlops serve-local --model <model.tar.gz>" in readme


# ---- the make targets -------------------------------------------------------------------------

PREBUILT = ("-o", ".venv/.installed", "-o", ".venv/.cli", "-o", "node_modules/.installed")


def make(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *PREBUILT, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
        check=False,
    )


def test_make_runs_the_commands_with_the_variables_and_prints_usage_without_them():
    train = make("-n", "train-local", "TENANT=config/pipelines/example.yaml", "DATA=my data.csv")
    serve = make("-n", "serve-local", "MODEL=out/xgboost/model.tar.gz", "PORT=9000")

    assert (
        '.venv/bin/python -m mlops_platform.cli train-local --tenant "config/pipelines/example.yaml" '
        '--data "my data.csv"' in train.stdout
    )
    assert '.venv/bin/python -m mlops_platform.cli serve-local --model "out/xgboost/model.tar.gz" --port "9000"' in (
        serve.stdout
    )
    for target, usage in (
        ("train-local", "usage: make train-local TENANT=<tenant yaml> DATA=<csv|parquet|jsonl file>"),
        ("serve-local", "usage: make serve-local MODEL=<model.tar.gz> PORT=<port>"),
    ):
        missing = make(target)
        assert missing.returncode == 2
        assert usage in missing.stderr
    assert "make train-local TENANT=" in make("help").stdout
