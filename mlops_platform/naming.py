"""Names the runtime reads from outside input and writes into keys, as synth allows them.

A tenant, model or dataset name is 1 to 63 lowercase letters, digits or hyphens, starting with a letter or a
digit (config/tenants.py, ``NAME``): safe in an S3 key, a DynamoDB key and a SageMaker name. Handlers check
names against it before a name becomes part of a key.
"""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# Where what names no valid tenant (or dataset) is kept: never a name NAME_PATTERN allows.
UNROUTED = "_unrouted"
# SageMaker's rule for training, processing and transform job, model, endpoint, variant and package group names.
SAGEMAKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
SAGEMAKER_NAME_MAX = 63


def tenant_id(tenant: str) -> str:
    """A tenant's name inside logical IDs and output names, which allow letters and digits only.

    ``acme-corp`` -> ``AcmeXcorp``. Tenant names are lowercase letters, digits and hyphens, starting with a
    letter or digit, so the capital X stands only for a hyphen and no two tenants share an ID (``a-1`` -> ``AX1``,
    ``a1`` -> ``A1``), which capitalizing each part would not give. The stacks name per-tenant outputs with it
    (``IngestQueueUrl<id>``), and ``mlops local`` reads them back by it.
    """
    return tenant[0].upper() + tenant[1:].replace("-", "X")
