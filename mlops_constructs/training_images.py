"""The platform's container images, CPU and GPU flavours from one Dockerfile each, as CDK image assets.

``DockerImageAsset`` synthesizes without a Docker daemon: synth only hashes the build context and
records how to build it. The image is built and pushed when the assets are published (``cdk
deploy`` or the delivery pipeline's asset stage), tagged with that content hash, so a template
always names an immutable image: the same inputs, the same tag.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

CONTAINERS = Path(__file__).resolve().parent.parent / "containers"
CONTEXT = CONTAINERS / "training"
INFERENCE_CONTEXT = CONTAINERS / "inference"
# CUDA runtime for XGBoost's device=cuda; the CPU flavour uses the Dockerfile's default (python slim).
GPU_BASE_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"
EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "README.md"]


class FlavouredImages(Construct):
    """``Cpu`` and ``Gpu`` image assets of one build context (the GPU one on the CUDA base image)."""

    def __init__(self, scope: Construct, id: str, *, context: Path) -> None:
        super().__init__(scope, id)
        common = {
            "directory": str(context),
            "platform": ecr_assets.Platform.LINUX_AMD64,
            "exclude": EXCLUDE,
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
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id, context=CONTEXT)


class InferenceImages(FlavouredImages):
    """The inference image (containers/inference): the SageMaker hosting contract, built for speed."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id, context=INFERENCE_CONTEXT)
