"""A model artifact's integrity, from the training job that wrote it to the server that loads it.

Two digests, because the artifact lives in two forms (issue 17, point 7):

* **The files.** The training job writes ``manifest.sha256`` last into its model directory
  (``/opt/ml/model``): one ``<sha256>  <name>`` line per other file, ``sha256sum``'s format (so
  ``sha256sum -c manifest.sha256`` checks it by hand). SageMaker packs the directory into
  ``model.tar.gz`` and the endpoint's container sees it extracted again under ``/opt/ml/model``
  (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html), never the tar:
  so the inference server checks the files, with ``verify_manifest``, before it reads a byte of them.
  A file missing, changed, unlisted (a ``model.joblib`` slipped in beside the model: joblib runs code
  on load) or not a plain file refuses the model.
* **The archive.** Registration streams ``model.tar.gz`` from S3 and records its sha256 in the package
  (``CustomerMetadataProperties.artifact_sha256``); every promotion check (the approval path, ``mlops
  promote``) streams the object again and refuses a package whose archive changed since, before a
  pointer names it. Together: an archive replaced in S3 after registration is never promoted, and a
  model directory that differs from what training wrote is never loaded, wherever it came from.

The manifest alone cannot stop someone who may write the artifacts zone from replacing the archive
with another that carries a matching manifest; the archive's digest in the package (which only the
platform's roles may create) does, at promotion.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.sha256"
ARTIFACT_SHA256 = "artifact_sha256"  # the package's metadata key
CHUNK = 1 << 20
SHA256 = re.compile(r"^[0-9a-f]{64}$")
LINE = re.compile(r"^(?P<digest>[0-9a-f]{64})  (?P<name>[^\n]+)$")


class ArtifactTampered(Exception):
    """A model whose files or archive are not what training wrote, in one sentence."""


def stream_sha256(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return stream_sha256(iter(lambda: stream.read(CHUNK), b""))


def s3_sha256(s3: Any, bucket: str, key: str) -> str:
    """The sha256 of an S3 object, streamed in 1 MiB chunks (a model archive may be gigabytes)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    return stream_sha256(iter(lambda: body.read(CHUNK), b""))


def model_files(directory: Path) -> list[str]:
    """Every entry under ``directory`` but the manifest, as ``/``-joined relative names, sorted."""
    return sorted(
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if not path.is_dir() or path.is_symlink()
        if path.relative_to(directory).as_posix() != MANIFEST
    )


def write_manifest(directory: Path) -> Path:
    """``manifest.sha256`` of every file of the model directory; written last, after the model and its metadata."""
    lines = [f"{file_sha256(directory / name)}  {name}\n" for name in model_files(directory)]
    manifest = directory / MANIFEST
    manifest.write_text("".join(lines))
    return manifest


def verify_manifest(directory: Path) -> None:
    """Refuse (``ArtifactTampered``) a model directory that is not exactly what its manifest lists."""
    manifest = directory / MANIFEST
    if not manifest.is_file() or manifest.is_symlink():
        raise ArtifactTampered(
            f"the model under {directory} has no {MANIFEST}; refused: only a model a training job of this "
            "platform wrote (with its files' digests) is loaded"
        )
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        match = LINE.match(line)
        if match is None or match["name"] in listed:
            raise ArtifactTampered(f"{manifest} line {number} is not '<sha256>  <file>' of a file listed once")
        listed[match["name"]] = match["digest"]
    present = model_files(directory)
    unlisted = sorted(set(present) - set(listed))
    if unlisted:
        raise ArtifactTampered(
            f"the model under {directory} holds {', '.join(unlisted)}, which {MANIFEST} does not list"
        )
    for name, expected in sorted(listed.items()):
        path = directory / name
        if name not in present or not path.is_file() or path.is_symlink():
            raise ArtifactTampered(f"the model under {directory} lacks {name}, which {MANIFEST} lists")
        actual = file_sha256(path)
        if actual != expected:
            raise ArtifactTampered(
                f"{name} of the model under {directory} has sha256 {actual}, not {expected} as {MANIFEST} "
                "records: it changed after training"
            )
