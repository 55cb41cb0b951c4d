"""Why a run cannot be planned. Step Functions sees the class's name as the error (the state machine's
catches name them: mlops_constructs/training_definition.py)."""

from __future__ import annotations


class PlanError(Exception):
    """A run that cannot be planned, in one sentence; Step Functions sees the subclass's name."""


class InvalidRunRequest(PlanError):
    """The execution's input is malformed."""


class UnknownTenant(PlanError):
    """No published pipeline config for the tenant."""


class UnknownModel(PlanError):
    """The request names a model the tenant's config does not have."""


class InvalidConfig(PlanError):
    """The published config is not what synth publishes (schema version 1)."""


class InvalidName(PlanError):
    """A SageMaker name would be too long or use characters SageMaker rejects."""


class PlanConflict(PlanError):
    """The run already has a different plan or belongs to another tenant."""
