"""Registration: each chosen model becomes a version of its package group, its baseline linked.

After every baseline job succeeded, each baseline object is checked (``HeadObject``), its sha256 recorded, and
each model package created with the baseline linked (``CustomerMetadataProperties`` ``baseline`` and
``baseline_sha256``, and ``DriftCheckBaselines.ModelDataQuality.Statistics``). Every baseline is checked before
any package is created: a missing one (``BaselineMissing``) registers nothing. A package is approved if its
value meets the tenant's threshold and the environment auto-approves, else it waits for manual approval.

Each model's archive (``model.tar.gz``) is streamed from S3 and its sha256 recorded in the package
(``artifact_sha256``): every promotion check compares the object with it before a pointer names the package
(``mlops_platform.model_digest``), so an archive replaced after registration is never served.

Retries are safe: a package is created with a ``ClientToken`` derived from group and run, and the ledger's
``PACKAGE#<model>`` record (written once, with the baseline's URI and sha256) makes a second registration of
the run reuse the package instead of adding one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mlops_platform.aws import error_code, iso, utc_now
from mlops_platform.evaluation.baselines import check_baseline, split_uri
from mlops_platform.evaluation.errors import ResultsUnreadable
from mlops_platform.evaluation.ledger import package_record
from mlops_platform.evaluation.names import group_name
from mlops_platform.evaluation.request import Registration
from mlops_platform.evaluation.services import Services
from mlops_platform.model_digest import ARTIFACT_SHA256, s3_sha256

# CustomerMetadataProperties: values of 1-256 characters from letters, digits, spaces and _.:/=+-@.
METADATA_VALUE_MAX = 256
METADATA_UNSAFE = re.compile(r"[^\w .:/=+\-@]")
CLIENT_TOKEN_LENGTH = 32  # the API allows 36 of [a-zA-Z0-9-]
# Approved packages examined per group, newest first, when nothing of a run is approved.
APPROVED_PAGE_SIZE = 10
APPROVED_CANDIDATES_MAX = 50


class Registering(Services):
    """Creates the run's packages (or finds them from an earlier try) and says which model predicts."""

    def register_run(self, registration: Registration) -> dict[str, Any]:
        """Each selected model's package, its baseline linked; every baseline is checked before any is created."""
        existing = {
            entry["model"]: self.ledger.get(f"RUN#{registration.run_id}", f"PACKAGE#{entry['model']}")
            for entry in registration.selected
        }
        baselines = {
            entry["model"]: check_baseline(self.s3, entry["model"], entry["baseline"])
            for entry in registration.selected
            if not existing[entry["model"]]
        }
        digests = {
            model: self.artifact_sha256(model, entry["model_data"]) for model, entry in self.new(registration, existing)
        }
        registered = []
        for entry in registration.selected:
            record = existing[entry["model"]]
            if record:
                self.log.info("reusing the run's model package", extra={"model": entry["model"]})
                registered.append(self.entry_from_record(record))
            else:
                model = entry["model"]
                registered.append(self.register(registration, entry, baselines[model], digests[model]))
        objective = registration.objective
        approved = [entry for entry in registered if entry["approval_status"] == "Approved"]
        approved.sort(key=lambda entry: (objective.better(entry["value"]), entry["trial"]))
        predict = (
            {key: approved[0][key] for key in ("model", "trial", "model_package_arn", "model_data")}
            if approved
            else self.previously_approved(registration.tenant, sorted(e["model"] for e in registration.selected))
        )
        best_list = [{key: value for key, value in entry.items() if key != "model_data"} for entry in registered]
        self.update_run(registration.run_id, {"registered_at": iso(utc_now()), "best": best_list})
        self.count("ModelPackagesApproved", len(approved))
        return {
            "run_id": registration.run_id,
            "tenant": registration.tenant,
            "trials": registration.trials,
            "best": best_list,
            "predict": predict,
        }

    @staticmethod
    def new(registration: Registration, existing: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(model, entry) of the selected models without a package from an earlier try."""
        return [(entry["model"], entry) for entry in registration.selected if not existing[entry["model"]]]

    def artifact_sha256(self, model: str, model_data: str) -> str:
        """The sha256 of the model's archive, streamed from S3 (it may be gigabytes; Lambda's memory stays flat)."""
        bucket, key = split_uri(model_data)
        try:
            return s3_sha256(self.s3, bucket, key)
        except ClientError as error:
            raise ResultsUnreadable(
                f"the artifact of model {model!r} at {model_data} cannot be read ({error_code(error)}); "
                "nothing was registered"
            ) from None

    def previously_approved(self, tenant: str, models: list[str]) -> dict[str, Any] | None:
        """The newest package a person (or an earlier run) approved of the tenant's models, if any.

        Where nothing of this run is approved (prod: a person approves later), batch predictions
        still run with the model the tenant already trusts. A package counts only where its own
        ``tenant`` and ``model`` metadata name this tenant and model and it sits in exactly their group:
        a group name alone is no proof of whose package it is (issue 17, point 5).
        """
        newest: tuple[Any, str, dict[str, Any]] | None = None
        for model in models:
            group = group_name(self.settings.job_prefix, tenant, model)
            try:
                found = self.newest_approved_of(group, tenant, model)
            except ClientError as error:
                self.log.warning("could not list approved packages", extra={"model": model, "error": str(error)})
                continue
            if found is not None and (newest is None or found["CreationTime"] > newest[0]):
                newest = (found["CreationTime"], model, found)
        if newest is None:
            return None
        _, model, package = newest
        return {"model": model, "trial": None, "model_package_arn": package["ModelPackageArn"], "model_data": None}

    def newest_approved_of(self, group: str, tenant: str, model: str) -> dict[str, Any] | None:
        """The newest Approved package of ``group`` whose metadata names ``tenant`` and ``model``.

        ListModelPackages returns summaries without CustomerMetadataProperties, so each candidate, newest
        first, is described (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListModelPackages.html,
        https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeModelPackage.html).
        """
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            PaginationConfig={"PageSize": APPROVED_PAGE_SIZE, "MaxItems": APPROVED_CANDIDATES_MAX},
        )
        for page in pages:
            for summary in page["ModelPackageSummaryList"]:
                package = self.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                metadata = package.get("CustomerMetadataProperties") or {}
                owned = (metadata.get("tenant"), metadata.get("model"), package.get("ModelPackageGroupName"))
                if owned == (tenant, model, group):
                    return {**summary, "CreationTime": package.get("CreationTime", summary["CreationTime"])}
                self.log.warning(
                    "an approved package in the group belongs to another tenant or model; not chosen",
                    extra={
                        "arn": summary["ModelPackageArn"],
                        "tenant": metadata.get("tenant"),
                        "model": metadata.get("model"),
                    },
                )
        return None

    # -- reading

    def ensure_group(self, name: str, tenant: str, model: str) -> None:
        """Create the package group if absent; a concurrent creator's group is as good as ours."""
        try:
            self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)
            return
        except ClientError as error:
            if error_code(error) not in ("ValidationException", "ResourceNotFound"):
                raise
        try:
            self.sagemaker.create_model_package_group(
                ModelPackageGroupName=name,
                ModelPackageGroupDescription=f"Model {model} of tenant {tenant}",
            )
            self.log.info("created model package group", extra={"group": name})
        except ClientError as create_error:
            try:
                self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)
            except ClientError:
                raise create_error from None
            self.log.info("model package group created concurrently", extra={"group": name})

    def register(
        self, registration: Registration, entry: dict[str, Any], baseline: dict[str, str], artifact_sha256: str
    ) -> dict[str, Any]:
        """A new package for the selected model, with its evaluation and its baseline."""
        model, group, run_id = entry["model"], entry["model_package_group"], registration.run_id
        objective = registration.objective
        self.ensure_group(group, registration.tenant, model)
        # A run that lost more trials than it tolerates chose among the rest: a person looks before it serves.
        automatic = self.settings.auto_approve and entry["meets_threshold"] and not registration.tolerance_exceeded
        approval = "Approved" if automatic else "PendingManualApproval"
        value = float(entry["value"])
        response = self.sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelPackageDescription=(
                f"{registration.tenant}/{model}: trial {entry['trial']} of run {run_id}, "
                f"{objective.metric}={number_text(value)}"
            ),
            InferenceSpecification={
                "Containers": [{"Image": self.settings.serving_image_uri, "ModelDataUrl": entry["model_data"]}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
                "SupportedRealtimeInferenceInstanceTypes": [self.settings.inference_instance_type],
                "SupportedTransformInstanceTypes": [self.settings.batch_transform_instance_type],
            },
            ModelMetrics={
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": entry["evaluation"]}}
            },
            # What the model's inputs looked like in training: the drift monitor compares traffic with it.
            DriftCheckBaselines={
                "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": baseline["uri"]}}
            },
            CustomerMetadataProperties={
                name: metadata_value(value)
                for name, value in {
                    "run_id": run_id,
                    "tenant": registration.tenant,
                    "model": model,
                    "algorithm": entry["algorithm"],  # mlops promote checks it against the variant's flavour
                    "trial": entry["trial"],
                    "training_job_name": entry["job_name"],
                    "objective_metric": objective.metric,
                    "objective_value": number_text(value),
                    "training_data": entry["training_data"],
                    "feature_schema": registration.feature_schema["uri"],
                    "feature_schema_sha256": registration.feature_schema["sha256"],
                    "baseline": baseline["uri"],
                    "baseline_sha256": baseline["sha256"],
                    ARTIFACT_SHA256: artifact_sha256,  # checked against the archive before any promotion
                }.items()
            },
            ModelApprovalStatus=approval,
            ClientToken=client_token(group, run_id),
        )
        created_at = iso(utc_now())
        record = package_record(
            registration.tenant,
            run_id,
            entry,
            arn=response["ModelPackageArn"],
            approval=approval,
            metric=objective.metric,
            value=value,
            baseline=baseline,
            created_at=created_at,
        )
        winner = self.ledger.put_new(record)
        if winner is not None:
            self.log.info("another registration recorded the package first", extra={"model": model})
            return self.entry_from_record(winner)
        self.count("ModelPackagesCreated", 1)
        return self.entry_from_record(record)

    def entry_from_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The output's ``best`` entry for a package record, with the package's approval status now."""
        status = record["approval_status"]
        try:
            status = self.sagemaker.describe_model_package(ModelPackageName=record["model_package_arn"])[
                "ModelApprovalStatus"
            ]
        except (ClientError, KeyError):
            self.log.warning("cannot read the package's approval status", extra={"arn": record["model_package_arn"]})
        return {
            "model": record["model"],
            "trial": record["trial"],
            "job_name": record["job_name"],
            "metric": record["metric"],
            "value": record["value"],
            "model_package_arn": record["model_package_arn"],
            "approval_status": status,
            "model_data": record["model_data"],
            "baseline": record.get("baseline"),
        }


def metadata_value(value: Any) -> str:
    """A CustomerMetadataProperties value: allowed characters only, 1-256 of them (long ones keep a hash)."""
    text = METADATA_UNSAFE.sub("-", str(value)) or "-"
    if len(text) > METADATA_VALUE_MAX:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        text = text[: METADATA_VALUE_MAX - len(digest) - 3] + "..." + digest
    return text


def number_text(value: float) -> str:
    return repr(value)


def client_token(group: str, run_id: str) -> str:
    return hashlib.sha256(f"{group}/{run_id}".encode()).hexdigest()[:CLIENT_TOKEN_LENGTH]
