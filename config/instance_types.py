"""SageMaker ML instance families the platform knows how to run.

Kept as data so that a typo such as ``ml.m5x.large`` stops synth with a clear sentence instead of
failing at deploy time. ``LOCAL_STORAGE`` matters for encryption: instance types with local NVMe
storage reject KMS volume keys (see AWS-FACTS.md), so later constructs must leave ``KmsKeyId``
unset for them.
"""

from __future__ import annotations

CPU_FAMILIES = frozenset(
    {
        "ml.t3",
        "ml.m5",
        "ml.m5d",
        "ml.m6i",
        "ml.m6id",
        "ml.m7i",
        "ml.c5",
        "ml.c5d",
        "ml.c6i",
        "ml.c6id",
        "ml.c7i",
        "ml.r5",
        "ml.r5d",
        "ml.r6i",
        "ml.r6id",
        "ml.r7i",
    }
)
GPU_FAMILIES = frozenset({"ml.g4dn", "ml.g5", "ml.g6", "ml.g6e", "ml.p3", "ml.p4d", "ml.p5"})
LOCAL_STORAGE_FAMILIES = frozenset(
    {f for f in CPU_FAMILIES if f.endswith("d")} | {"ml.g4dn", "ml.g5", "ml.g6", "ml.g6e", "ml.p4d", "ml.p5"}
)
KNOWN_FAMILIES = CPU_FAMILIES | GPU_FAMILIES
SIZES = frozenset(
    {
        "medium",
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "9xlarge",
        "12xlarge",
        "16xlarge",
        "18xlarge",
        "24xlarge",
        "32xlarge",
        "48xlarge",
    }
)


def family_of(instance_type: str) -> str:
    """``ml.g5.xlarge`` -> ``ml.g5``."""
    return instance_type.rsplit(".", 1)[0]


def check_instance_type(value: str) -> str:
    """Return ``value`` if it is ``ml.<known family>.<size>``, else raise ValueError saying what is allowed."""
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 3 or family_of(value) not in KNOWN_FAMILIES or parts[2] not in SIZES:
        raise ValueError(
            "an instance type 'ml.<family>.<size>' whose family is one of " + ", ".join(sorted(KNOWN_FAMILIES))
        )
    return value


def is_gpu(instance_type: str) -> bool:
    return family_of(instance_type) in GPU_FAMILIES


def has_local_storage(instance_type: str) -> bool:
    return family_of(instance_type) in LOCAL_STORAGE_FAMILIES
