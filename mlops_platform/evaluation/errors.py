"""What evaluation refuses, each in one sentence; Step Functions sees the class's name as the error.

``InvalidEvaluationRequest``, ``UnknownTenant``, ``InvalidConfig``, ``ResultsUnreadable``, ``InvalidName``,
``NoUsableTrial`` (raised after the trials are recorded), ``BaselineMissing`` (register: a baseline object is
absent or not a baseline).
"""

from __future__ import annotations


class EvaluationError(Exception):
    """A run that cannot be evaluated, in one sentence; Step Functions sees the subclass's name."""


class InvalidEvaluationRequest(EvaluationError):
    """The state's input is malformed."""


class UnknownTenant(EvaluationError):
    """No published pipeline config for the tenant."""


class InvalidConfig(EvaluationError):
    """The published config lacks what evaluation reads."""


class ResultsUnreadable(EvaluationError):
    """The plan, the Map's manifest or a result file is missing or not JSON."""


class InvalidName(EvaluationError):
    """The model package group name breaks SageMaker's naming rules."""


class NoUsableTrial(EvaluationError):
    """No trial of any model completed with a usable objective metric."""


class BaselineMissing(EvaluationError):
    """A model's baseline object is absent or not a baseline: nothing of the run is registered."""
