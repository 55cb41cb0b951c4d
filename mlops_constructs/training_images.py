"""The platform's container images, CPU and GPU flavours from one Dockerfile each, as CDK image assets.

``DockerImageAsset`` synthesizes without a Docker daemon: synth only hashes the build context and
records how to build it. The image is built and pushed when the assets are published (``cdk
deploy`` or the delivery pipeline's asset stage), tagged with that content hash, so a template
always names an immutable image: the same inputs, the same tag.

Each image's build context is the repository root, so its Dockerfile can copy the runtime package
(``mlops_platform/``). The ``Dockerfile.dockerignore`` beside each Dockerfile, which ``docker build``
reads too, lists what the context leaves out: everything but the image's Dockerfile, its
requirements and the package. So only those count toward the asset's hash.

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

ROOT = Path(__file__).resolve().parent.parent
TRAINING_IMAGE = "containers/training"
INFERENCE_IMAGE = "containers/inference"
# CUDA runtime for XGBoost's device=cuda; the CPU flavour uses the Dockerfile's default (python slim).
GPU_BASE_IMAGE = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"


def context_exclude(root: Path, image: str) -> list[str]:
    """The patterns of ``<image>/Dockerfile.dockerignore`` (Docker's syntax), comments and blank lines left out."""
    lines = (root / image / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


FLAVOURS = ("cpu", "gpu")


class FlavouredImages(Construct):
    """``Cpu`` and ``Gpu`` image assets of one Dockerfile (the GPU one on the CUDA base image), each if used.

    ``image`` is the Dockerfile's folder relative to ``root``, the build context (the repository root).
    """

    def __init__(self, scope: Construct, id: str, *, image: str, flavours: Iterable[str], root: Path = ROOT) -> None:
        super().__init__(scope, id)
        wanted = set(flavours)
        unknown = wanted - set(FLAVOURS)
        if unknown:
            raise ValueError(f"unknown image flavours {sorted(unknown)}; allowed: {', '.join(FLAVOURS)}")
        common = {
            "directory": str(root),
            "file": f"{image}/Dockerfile",
            "platform": ecr_assets.Platform.LINUX_AMD64,
            "exclude": context_exclude(root, image),
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

    def __init__(self, scope: Construct, id: str, *, gpu: bool, root: Path = ROOT) -> None:
        super().__init__(scope, id, image=TRAINING_IMAGE, flavours=["cpu", "gpu"] if gpu else ["cpu"], root=root)

    @property
    def cpu(self) -> ecr_assets.DockerImageAsset:
        return self.images["cpu"]


class InferenceImages(FlavouredImages):
    """The inference image (containers/inference): the SageMaker hosting contract, built for speed.


    One flavour per flavour of the environment's variants (config/serving.py).
    """

    def __init__(self, scope: Construct, id: str, *, flavours: Iterable[str], root: Path = ROOT) -> None:
        super().__init__(scope, id, image=INFERENCE_IMAGE, flavours=flavours, root=root)
