"""The training image, CPU and GPU flavours from one Dockerfile, as CDK image assets.

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

CONTEXT = Path(__file__).resolve().parent.parent / "containers" / "training"
# CUDA runtime for XGBoost's device=cuda; the CPU flavour uses the Dockerfile's default (python slim).
GPU_BASE_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"
EXCLUDE = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "README.md"]


class TrainingImages(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        common = {
            "directory": str(CONTEXT),
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
