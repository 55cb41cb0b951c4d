"""A tenant's name inside logical IDs and output names, which allow letters and digits only."""

from __future__ import annotations


def tenant_id(tenant: str) -> str:
    """``acme-corp`` -> ``AcmeXcorp``. Tenant names are lowercase letters, digits and hyphens, starting with a
    letter or digit, so the capital X stands only for a hyphen and no two tenants share an ID (``a-1`` -> ``AX1``,
    ``a1`` -> ``A1``), which capitalizing each part would not give."""
    return tenant[0].upper() + tenant[1:].replace("-", "X")
