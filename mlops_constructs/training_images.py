"""The platform's container images, CPU and GPU flavours from one Dockerfile each, as CDK image assets.

``DockerImageAsset`` synthesizes without a Docker daemon: synth only hashes the build context and
records how to build it. The image is built and pushed when the assets are published (``cdk
deploy`` or the delivery pipeline's asset stage), tagged with that content hash, so a template
always names an immutable image: the same inputs, the same tag.

Each image's build context is the repository root, so its Dockerfile can copy the runtime package
(``mlops_platform/``). The ``Dockerfile.dockerignore`` beside each Dockerfile, which ``docker build``
reads too, lists what the context leaves out: everything but the image's Dockerfile, its
requirements and the package. So only those count toward the asset's hash.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

ROOT = Path(__file__).resolve().parent.parent
TRAINING_IMAGE = "containers/training"
INFERENCE_IMAGE = "containers/inference"
# CUDA runtime for XGBoost's device=cuda; the CPU flavour uses the Dockerfile's default (python slim).
GPU_BASE_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"


def context_exclude(root: Path, image: str) -> list[str]:
    """The patterns of ``<image>/Dockerfile.dockerignore`` (Docker's syntax), comments and blank lines left out."""
    lines = (root / image / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


class FlavouredImages(Construct):
    """``Cpu`` and ``Gpu`` image assets of one Dockerfile (the GPU one on the CUDA base image).

    ``image`` is the Dockerfile's folder relative to ``root``, the build context (the repository root).
    """

    def __init__(self, scope: Construct, id: str, *, image: str, root: Path = ROOT) -> None:
        super().__init__(scope, id)
        common = {
            "directory": str(root),
            "file": f"{image}/Dockerfile",
            "platform": ecr_assets.Platform.LINUX_AMD64,
            "exclude": context_exclude(root, image),
            "ignore_mode": IgnoreMode.DOCKER,
        }
        self.cpu = ecr_assets.DockerImageAsset(self, "Cpu", **common)  # type: ignore[arg-type]
        self.gpu = ecr_assets.DockerImageAsset(
            self,
            "Gpu",
            build_args={"BASE_IMAGE": GPU_BASE_IMAGE},
            **common,  # type: ignore[arg-type]
        )

    @property
    def all(self) -> list[ecr_assets.DockerImageAsset]:
        return [self.cpu, self.gpu]

    def of(self, flavour: str) -> ecr_assets.DockerImageAsset:
        return {"cpu": self.cpu, "gpu": self.gpu}[flavour]


class TrainingImages(FlavouredImages):
    """The training image (containers/training): training, Processing jobs and the drift monitor."""

    def __init__(self, scope: Construct, id: str, *, root: Path = ROOT) -> None:
        super().__init__(scope, id, image=TRAINING_IMAGE, root=root)


class InferenceImages(FlavouredImages):
    """The inference image (containers/inference): the SageMaker hosting contract, built for speed."""

    def __init__(self, scope: Construct, id: str, *, root: Path = ROOT) -> None:
        super().__init__(scope, id, image=INFERENCE_IMAGE, root=root)
