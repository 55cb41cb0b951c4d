"""Evaluate IAM policy statements against a request, as IAM does for one identity policy (enough for tests).

Actions match case-insensitively, resources case-sensitively, ``*`` and ``?`` anywhere (``*`` crosses ``/``
and ``:``); an explicit Deny wins; a condition whose key the request lacks does not hold, except
``...IfExists`` and negated operators, which do. Only the condition operators the project's policies use are
known: any other fails the test instead of passing it silently.
(IAM User Guide, "Policy evaluation logic":
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _pattern(glob: str, *, ignore_case: bool) -> re.Pattern[str]:
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.compile(f"^{expression}$", flags)


def matches(glob: str, value: str, *, ignore_case: bool = False) -> bool:
    return bool(_pattern(glob, ignore_case=ignore_case).match(value))


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        base = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            if operator == "Null":
                # "false": the request carries the key; "true": it does not.
                if (key in context) != (expected == "false"):
                    return False
                continue
            if key not in context:
                # ...IfExists holds for an absent key, and so does a negated operator: nothing equals, so
                # "not equals" is true (IAM User Guide, condition operators:
                # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
                if operator.endswith("IfExists") or base in ("StringNotEquals", "StringNotLike", "ArnNotEquals"):
                    continue
                return False
            actual = context[key]
            if base in ("StringEquals", "ArnEquals"):
                holds = actual in _listed(expected)
            elif base in ("StringNotEquals", "ArnNotEquals"):
                holds = actual not in _listed(expected)
            elif base in ("StringLike", "ArnLike"):
                holds = any(matches(pattern, actual) for pattern in _listed(expected))
            elif base == "Bool":
                holds = actual.lower() in [str(value).lower() for value in _listed(expected)]
            elif base == "NumericLessThan":
                holds = any(float(actual) < float(value) for value in _listed(expected))
            else:
                raise NotImplementedError(f"condition operator {operator}")
            if not holds:
                return False
    return True


def statement_applies(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str] | None = None
) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise NotImplementedError("NotAction and NotResource")
    if not any(matches(pattern, action, ignore_case=True) for pattern in _listed(statement["Action"])):
        return False
    if not any(matches(pattern, resource) for pattern in _listed(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), context or {})


def allows(
    statements: Iterable[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str] | None = None
) -> bool:
    applying = [statement for statement in statements if statement_applies(statement, action, resource, context)]
    return any(s["Effect"] == "Allow" for s in applying) and not any(s["Effect"] == "Deny" for s in applying)


def denies(
    statements: Iterable[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, str] | None = None
) -> bool:
    """Whether a Deny among ``statements`` applies (a bucket policy's denials, whatever the identity allows)."""
    return any(s["Effect"] == "Deny" and statement_applies(s, action, resource, context) for s in statements)


def resolve_sub(value: Any, variables: Mapping[str, str]) -> Any:
    """A template's resource with ``Fn::Sub``'s ``${...}`` replaced (KeyError for an unknown name)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda match: variables[match.group(1)], value["Fn::Sub"])
    if isinstance(value, list):
        return [resolve_sub(item, variables) for item in value]
    if isinstance(value, str):
        return value
    raise ValueError(f"cannot resolve {value!r}")
