"""The platform's container images, CPU and GPU flavours from one Dockerfile each, as CDK image assets.

``DockerImageAsset`` synthesizes without a Docker daemon: synth only hashes the build context and
records how to build it. The image is built and pushed when the assets are published (``cdk
deploy`` or the delivery pipeline's asset stage), tagged with that content hash, so a template
always names an immutable image: the same inputs, the same tag.

Only the flavours a stack uses are assets, so nothing is built or pushed that nothing runs: the
GPU flavour is a CUDA image of several GB, pulled from Docker Hub and built in privileged mode.
The GPU inference image exists where an environment declares a GPU variant, the GPU training image
where a tenant trains on a GPU instance type (config/pipelines/); the CPU training image always
(prepare, baseline, batch transform and drift monitor jobs run it).
"""

from __future__ import annotations

from collections.abc import Iterable
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


FLAVOURS = ("cpu", "gpu")


class FlavouredImages(Construct):
    """``Cpu`` and ``Gpu`` image assets of one build context (the GPU one on the CUDA base image), each if used."""

    def __init__(self, scope: Construct, id: str, *, context: Path, flavours: Iterable[str]) -> None:
        super().__init__(scope, id)
        wanted = set(flavours)
        unknown = wanted - set(FLAVOURS)
        if unknown:
            raise ValueError(f"unknown image flavours {sorted(unknown)}; allowed: {', '.join(FLAVOURS)}")
        common = {
            "directory": str(context),
            "platform": ecr_assets.Platform.LINUX_AMD64,
            "exclude": EXCLUDE,
            "ignore_mode": IgnoreMode.DOCKER,
        }
        self.images: dict[str, ecr_assets.DockerImageAsset] = {}
        if "cpu" in wanted:
            self.images["cpu"] = ecr_assets.DockerImageAsset(self, "Cpu", **common)  # type: ignore[arg-type]
        if "gpu" in wanted:
            self.images["gpu"] = ecr_assets.DockerImageAsset(
                self,
                "Gpu",
                build_args={"BASE_IMAGE": GPU_BASE_IMAGE},
                **common,  # type: ignore[arg-type]
            )

    @property
    def all(self) -> list[ecr_assets.DockerImageAsset]:
        return [self.images[flavour] for flavour in FLAVOURS if flavour in self.images]

    @property
    def gpu(self) -> ecr_assets.DockerImageAsset | None:
        return self.images.get("gpu")

    def of(self, flavour: str) -> ecr_assets.DockerImageAsset:
        image = self.images.get(flavour)
        if image is None:
            raise KeyError(f"no {flavour} image in {self.node.path}: nothing declared it")
        return image


class TrainingImages(FlavouredImages):
    """The training image (containers/training): CPU always, GPU where a tenant trains on a GPU instance type."""

    def __init__(self, scope: Construct, id: str, *, gpu: bool) -> None:
        super().__init__(scope, id, context=CONTEXT, flavours=["cpu", "gpu"] if gpu else ["cpu"])

    @property
    def cpu(self) -> ecr_assets.DockerImageAsset:
        return self.images["cpu"]


class InferenceImages(FlavouredImages):
    """The inference image (containers/inference): the SageMaker hosting contract, built for speed.

    One flavour per flavour of the environment's variants (config/serving.py).
    """

    def __init__(self, scope: Construct, id: str, *, flavours: Iterable[str]) -> None:
        super().__init__(scope, id, context=INFERENCE_CONTEXT, flavours=flavours)
