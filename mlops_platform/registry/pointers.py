"""Model pointers: the SSM String parameters ``/<project>/<env>/models/<endpoint>/<variant>`` endpoints read.

A pointer holds a model artifact's S3 URI, or the sentinel ``example`` (the shipped example model); its
description ``model package <ARN>`` names the package for lineage. CloudFormation creates each pointer
once and never writes it again; the approval path and ``mlops promote`` write it afterwards, and SSM
keeps every version (``GetParameterHistory``), which is what a rollback returns to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.registry.packages import EXAMPLE, PACKAGE_ARN, PromotionRefused, error_code, package_version

DESCRIPTION_PREFIX = "model package "


@dataclass(frozen=True)
class Pointer:
    name: str
    value: str
    description: str | None
    version: int

    @property
    def package_arn(self) -> str | None:
        """The package its description names (``model package <ARN>``), if any."""
        return package_of(self.description)


def pointer_description(package_arn: str) -> str:
    return f"{DESCRIPTION_PREFIX}{package_arn}"


def package_of(description: str | None) -> str | None:
    if description and description.startswith(DESCRIPTION_PREFIX):
        candidate = description[len(DESCRIPTION_PREFIX) :].strip()
        if PACKAGE_ARN.match(candidate):
            return candidate
    return None


def newer_package(pointer: Pointer | None, package_arn: str) -> str | None:
    """The package a pointer names when it is a newer version of ``package_arn``'s group; else None.

    Approvals reach the approval path in any order (EventBridge retries an event for hours), and the
    deployment lock only serializes them: a package older than the one a pointer already names must
    never overwrite it. Another group's package, or a pointer that names none, is no reason to stop.
    """
    named = pointer.package_arn if pointer is not None else None
    theirs, ours = (package_version(named) if named else None), package_version(package_arn)
    if named and theirs and ours and theirs[0] == ours[0] and theirs[1] > ours[1]:
        return named
    return None


def pointer_history(ssm: Any, name: str) -> list[Pointer]:
    """Every kept version of a pointer, oldest first (GetParameterHistory: values and descriptions, one grant).

    Raises ClientError ``ParameterNotFound`` for a pointer that does not exist.
    """
    history: list[Pointer] = []
    paginator = ssm.get_paginator("get_parameter_history")
    for page in paginator.paginate(Name=name, MaxResults=50):
        history.extend(
            Pointer(
                name=name,
                value=entry["Value"],
                description=entry.get("Description"),
                version=int(entry.get("Version", 0)),
            )
            for entry in page.get("Parameters", [])
        )
    return sorted(history, key=lambda pointer: pointer.version)


def find_pointer(ssm: Any, name: str) -> Pointer | None:
    """A pointer's current value, description and version; None when it does not exist."""
    try:
        history = pointer_history(ssm, name)
    except ClientError as error:
        if error_code(error) == "ParameterNotFound":
            return None
        raise
    return history[-1] if history else None


def read_pointer(ssm: Any, name: str) -> Pointer:
    """A pointer's current value, description and version; ``PromotionRefused`` when it does not exist."""
    try:
        pointer = find_pointer(ssm, name)
    except ClientError as error:
        raise PromotionRefused(f"cannot read the model pointer {name} ({error_code(error)})") from None
    if pointer is None:
        raise PromotionRefused(
            f"the model pointer {name} does not exist; the environment's Foundation stack creates it: "
            "deploy the environment first"
        )
    return pointer


def previous_version(ssm: Any, name: str) -> Pointer | None:
    """The newest earlier version of a pointer whose value differs from the current one (rollback's target)."""
    history = pointer_history(ssm, name)
    if not history:
        return None
    current = history[-1].value
    return next((pointer for pointer in reversed(history[:-1]) if pointer.value != current), None)


def write_pointer(ssm: Any, name: str, value: str, description: str, *, overwrite: bool = True) -> None:
    """Point ``name`` at ``value`` (a String parameter, as Foundation creates it) with ``description``."""
    ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=overwrite, Description=description)


def prepare_pointer(ssm: Any, name: str, package_arn: str, model_data: str) -> str:
    """Point a pointer no endpoint reads yet at the package, unless it names a newer or another promotion.

    Written when absent, when it holds Foundation's sentinel, or when it names an older version of
    the same group; a newer version (a reordered event) or another group's package (a person's
    promotion) is kept. Says what happened.
    """
    current = find_pointer(ssm, name)
    if current is not None:
        if current.value == model_data:
            return "already names it"
        named = current.package_arn
        if named is not None:
            theirs, ours = package_version(named), package_version(package_arn)
            if theirs and ours and (theirs[0] != ours[0] or theirs[1] > ours[1]):
                return f"kept, it names {named}"
        elif current.value != EXAMPLE:
            return f"kept, it holds {current.value} without a package"
    try:
        write_pointer(ssm, name, model_data, pointer_description(package_arn), overwrite=current is not None)
    except ClientError as error:
        if error_code(error) != "ParameterAlreadyExists":
            raise
        return "kept, created by someone else a moment ago"
    return "created" if current is None else f"written (it held {current.value})"
