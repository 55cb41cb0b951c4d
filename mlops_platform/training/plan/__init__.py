"""Plan: turn a tenant's published pipeline config into one training request per trial, in S3.

Input, as the state machine builds it: ``{"request": <the execution's input: {"tenant", "models"?}>,
"run_id": <the execution's name>, "started_at": <its start time>, "execution_arn": <its ARN>}``; the
run's day is the start time's UTC date. A flat ``{"tenant", "run_id", "day", "models"?, "started_at"?}``
is accepted too. ``models`` picks a subset of the tenant's models. ``run_id`` is the execution's
name, so a retried or redriven execution plans the same run again.

Why the plan lives in S3 and the output is small: a run may have 10,000 trials (the Distributed
Map's limit) and a Step Functions state carries at most 256 KB. So the items (each a complete
``CreateTrainingJob`` request but its name and role) go to ``artifacts/runs/<tenant>/<run_id>/plan.json``
as one JSON array, which the Map reads with ``ItemReader``; the output says where it is and carries the
prepare (``CreateProcessingJob``) and predict (``CreateTransformJob``) requests, which are copied
verbatim into those API calls.

Everything derives from the request and the config: job names hash the run id, trials are numbered
in model order, and the grid expands in a fixed order (docs/training-pipeline.md).

* ``request``: the execution's input, checked (``parse_request``);
* ``settings``: the function's environment;
* ``config``: the published config, checked, its models picked and their grids expanded;
* ``layout``: where the run's objects live and what its jobs are named;
* ``trials``: the plan's items, one ``CreateTrainingJob`` request per trial;
* ``jobs``: the prepare and predict requests;
* ``planner``: reading the config, recording the run and writing the plan, once;
* ``errors``: the typed errors Step Functions sees by class name (``InvalidRunRequest``, ``UnknownTenant``,
  ``UnknownModel``, ``InvalidConfig``, ``InvalidName``, ``PlanConflict``).
"""

from mlops_platform.training.plan.errors import (
    InvalidConfig,
    InvalidName,
    InvalidRunRequest,
    PlanConflict,
    PlanError,
    UnknownModel,
    UnknownTenant,
)
from mlops_platform.training.plan.planner import Planner
from mlops_platform.training.plan.request import RunRequest, parse_request
from mlops_platform.training.plan.settings import Settings

__all__ = [
    "InvalidConfig",
    "InvalidName",
    "InvalidRunRequest",
    "PlanConflict",
    "PlanError",
    "Planner",
    "RunRequest",
    "Settings",
    "UnknownModel",
    "UnknownTenant",
    "parse_request",
]
