"""The handlers import only what Lambda provides: boto3 (the Python runtime), the Powertools layer and
mlops_platform (carried in each asset); never the image libraries the rest of mlops_platform uses.

A handler that imported numpy or pandas would pass every in-process test here (the suite has them) and
fail its first invocation in AWS with ``ModuleNotFoundError``. Each handler is imported in a fresh
interpreter, so what another test imported first cannot hide what the handler needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, imported_modules

# The environment each function gets (mlops_constructs), with placeholder values: enough to import it.
ENVIRONMENTS = {
    ("retrain_trigger", "handler"): {
        "RAW_BUCKET": "raw",
        "ALARM_NAME_PREFIX": "mlops-dev-drift-",
        "MONITORING_SOURCE": "mlops.monitoring",
        "PACKAGE_GROUP_PREFIX": "mlops-dev",
        "LEDGER_TABLE": "ledger",
        "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:111111111111:stateMachine:training",
        "COOLDOWN_SECONDS": "3600",
        "CANDIDATE_EXPIRY_SECONDS": "86400",
        "CONFIG_BUCKET": "artifacts",
    },
    ("scoring", "handler"): {
        "ENDPOINTS": '{"example": "mlops-dev-example"}',
        "RESULTS_TABLE": "results",
        "REQUESTS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/requests",
    },
    ("scoring", "worker"): {
        "ENDPOINTS": '{"example": "mlops-dev-example"}',
        "RESULTS_TABLE": "results",
        "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/requests-dlq",
        "MAX_RECEIVE_COUNT": "3",
    },
    ("ingest", "handler"): {"RAW_BUCKET": "raw", "TENANT_QUEUES": "{}"},
    ("progress", "handler"): {
        "TABLE_NAME": "progress",
        "QUARANTINE_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/111111111111/quarantine",
        "EVENT_SOURCE": "mlops.training",
        "JOB_PREFIX": "mlops-dev",
    },
}
LAMBDA_PROVIDES = frozenset(
    {
        # The Python runtime: boto3 and what it imports (certifi where botocore finds it).
        "boto3",
        "botocore",
        "s3transfer",
        "jmespath",
        "dateutil",
        "six",
        "urllib3",
        "certifi",
        # The Powertools layer, with the X-Ray SDK that Tracer uses.
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "wrapt",
        "typing_extensions",
        # The platform's own package, in every asset.
        "mlops_platform",
    }
)
IMAGE_LIBRARIES = ("numpy", "pandas", "sklearn", "scipy", "xgboost", "pyarrow", "orjson", "joblib", "yaml")


@pytest.mark.parametrize(
    ("function", "module"), sorted(ENVIRONMENTS), ids=[f"{f}/{m}" for f, m in sorted(ENVIRONMENTS)]
)
def test_a_handler_imports_only_what_lambda_provides(function, module):
    loaded = imported_modules(function, module, **ENVIRONMENTS[function, module])
    folder = ROOT / "lambda" / function
    beside = {name for name, file in loaded.items() if file and Path(file).parent == folder}
    # __mp_main__: multiprocessing's alias of the interpreter's __main__, not a library.
    top_level = {name.split(".")[0] for name in loaded if not name.startswith("__")} - beside

    assert not top_level & set(IMAGE_LIBRARIES)
    assert top_level - set(sys.stdlib_module_names) <= LAMBDA_PROVIDES
    # What the handler needs is seen: the probe is not blind.
    assert {"boto3", "aws_lambda_powertools", "mlops_platform"} <= top_level


def test_the_platform_modules_a_handler_loads_come_from_the_package_folder():
    loaded = imported_modules("retrain_trigger", **ENVIRONMENTS["retrain_trigger", "handler"])
    package = [Path(file) for name, file in loaded.items() if name.split(".")[0] == "mlops_platform" and file]

    assert package
    assert all(path.is_relative_to(ROOT / "mlops_platform") for path in package)
