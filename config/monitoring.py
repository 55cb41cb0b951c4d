"""Monitoring settings of one environment: the drift monitor's schedule and thresholds, and retraining triggers.

The platform's own drift monitor is the only engine. SageMaker Model Monitor is not offered: it is
closed to new customers, and what it would need to report drift the way the platform does (a
baseline in its own format that changes on every promotion, alarms with the tenant and model) is
not something it can be given; README.md (Monitoring and retraining) gives the reasons.

Schedules are whole hours, evenly spaced, so the window each run reads is the interval between two
runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt

from config.base import StrictModel, at_least, whole_number
from config.instance_types import check_instance_type

# Schedule forms whose runs are evenly spaced, so a run's window is the interval since the previous
# one: hourly, every N hours from a starting hour, or daily at an hour. Minutes are always 0.
HOURLY = re.compile(r"^cron\(0 \* \? \* \* \*\)$")
EVERY_N_HOURS = re.compile(r"^cron\(0 (?P<start>\d{1,2})/(?P<every>\d{1,2}) \? \* \* \*\)$")
DAILY = re.compile(r"^cron\(0 (?P<hour>\d{1,2}) \? \* \* \*\)$")
SCHEDULE_FORMS = (
    "cron(0 * ? * * *) (hourly), cron(0 H/N ? * * *) (every N hours from hour H, N one of 1, 2, 3, 4, 6, 8, 12, "
    "H from 0 to N - 1 so that the runs are evenly spaced) or cron(0 H ? * * *) (daily at hour H)"
)
HOUR_DIVISORS = (1, 2, 3, 4, 6, 8, 12)
# Named features with thresholds of their own. The thresholds reach the job as a settings document
# in S3 (``settings_document``), so no argument or input limit bounds them; this bounds the config.
MAX_NAMED_FEATURES = 40
SETTINGS_VERSION = 1  # of the settings document (mlops_platform/monitoring/settings.py)


def interval_hours(schedule: str) -> int:
    """Hours between two runs of a schedule in one of ``SCHEDULE_FORMS``; ValueError otherwise."""
    if HOURLY.match(schedule):
        return 1
    if match := EVERY_N_HOURS.match(schedule):
        start, every = int(match["start"]), int(match["every"])
        # H >= N would fire at H, H + N, ... up to 23 only, then again at H: runs unevenly spaced (23/12 fires
        # once a day), which no window of N hours describes.
        if every in HOUR_DIVISORS and start < every:
            return every
    elif (match := DAILY.match(schedule)) and int(match["hour"]) <= 23:
        return 24
    raise ValueError(f"one of these schedule forms: {SCHEDULE_FORMS}")


def _check_schedule(value: str) -> str:
    interval_hours(value)
    return value


DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # as config/tenants.py allows a dataset's name


def _check_dataset_name(value: str) -> str:
    if not DATASET_NAME.match(value):
        raise ValueError("a dataset name: 1 to 63 lowercase letters, digits or hyphens, or null (no labels)")
    return value


FEATURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _check_feature_name(value: str) -> str:
    if not FEATURE_NAME.match(value):
        raise ValueError(
            "a feature's column name: a lowercase letter, then up to 63 lowercase letters, digits or underscores"
        )
    return value


Schedule = Annotated[str, AfterValidator(_check_schedule)]
FeatureName = Annotated[str, AfterValidator(_check_feature_name)]
DatasetName = Annotated[str, AfterValidator(_check_dataset_name)]
Share = Annotated[StrictFloat, Field(ge=0, le=1)]


class FeatureThresholds(StrictModel):
    psi: Annotated[StrictFloat, Field(gt=0)] = Field(
        default=0.2, description="a number above 0 (population stability index above which a feature drifted)"
    )
    ks_statistic: Annotated[StrictFloat, Field(gt=0, le=1)] = Field(
        default=0.1, description="a number above 0 and at most 1 (KS distance above which a feature drifted)"
    )
    ks_p_value: Annotated[StrictFloat, Field(gt=0, lt=1)] = Field(
        default=0.01, description="a number between 0 and 1 (KS p-value below which the distance counts)"
    )


class DriftThresholds(StrictModel):
    default: FeatureThresholds = Field(
        default=FeatureThresholds(), description="the thresholds of every feature not named under features"
    )
    features: dict[FeatureName, FeatureThresholds] = Field(
        default_factory=dict,
        max_length=MAX_NAMED_FEATURES,
        description=(
            f"a mapping of at most {MAX_NAMED_FEATURES} feature names (lowercase letters, digits, underscores) "
            "to their own thresholds (a drifted named feature alone is drift)"
        ),
    )
    drifted_share: Share = Field(
        default=0.5, description="a number from 0 to 1 (share of drifted features at which the endpoint drifted)"
    )
    prediction_psi: Annotated[StrictFloat, Field(gt=0)] = Field(
        default=0.2, description="a number above 0 (PSI of a variant's predictions above which it drifted)"
    )
    min_rows: StrictInt = at_least(1, "captured rows below which nothing is judged", default=30)


class Retraining(StrictModel):
    on_drift: StrictBool = Field(default=True, description="true or false (drift starts a retraining)")
    on_new_data: StrictBool = Field(
        default=True, description="true or false (objects arriving under a tenant's raw/ prefix start a retraining)"
    )
    cooldown_seconds: StrictInt = whole_number(
        300, 604_800, "at most one triggered run per tenant this often", unit="seconds", default=21600
    )
    batching_window_seconds: StrictInt = whole_number(
        0, 300, "how long new-data events are gathered into one batch", unit="seconds", default=300
    )
    candidate_expiry_seconds: StrictInt = whole_number(
        3600,
        7_776_000,
        (
            "how long a model package a triggered run left for manual approval holds further drift runs back, "
            "unless it is approved or rejected first"
        ),
        unit="seconds",
        default=604_800,
    )


class Monitoring(StrictModel):
    engine: Literal["platform"] = Field(
        default="platform",
        description=(
            "platform (the platform's own drift monitor; SageMaker Model Monitor is not offered, see README.md, "
            "Monitoring and retraining)"
        ),
    )
    schedule: Schedule = Field(default="cron(0 * ? * * *)", description=SCHEDULE_FORMS)
    instance_type: Annotated[str, AfterValidator(check_instance_type)] | None = Field(
        default=None,
        description="an ML instance type for the monitoring job (default: instance_types.processing)",
    )
    max_runtime_seconds: StrictInt = whole_number(
        60, 3600, "a monitoring run must end before the next one", unit="seconds", default=1800
    )
    window_lag_minutes: StrictInt = whole_number(
        0,
        180,
        (
            "each run reads the window that ended this long before it starts, so capture files SageMaker writes "
            "minutes after their requests have landed"
        ),
        unit="minutes",
        default=15,
    )
    thresholds: DriftThresholds = DriftThresholds()
    labels_dataset: DatasetName | None = Field(
        default=None,
        description=(
            "a dataset name (1 to 63 lowercase letters, digits or hyphens) or null: with a name, each endpoint's "
            "run joins its captures to the labels its tenant sends through ingestion as that dataset (records "
            '{"inference_id", "label"}, landed under the raw zone\'s raw/<tenant>/<dataset>/) and reports model '
            "quality"
        ),
    )
    retraining: Retraining = Retraining()

    @property
    def window_minutes(self) -> int:
        """Minutes of captured traffic each run reads: the interval between two runs."""
        return interval_hours(self.schedule) * 60

    def settings_document(self) -> dict[str, Any]:
        """What the drift monitor job reads from ``--settings``: the thresholds, however many features they name."""
        return {"schema_version": SETTINGS_VERSION, "thresholds": self.thresholds.model_dump(mode="json")}
