"""A tenant's name inside logical IDs and output names (the rule lives in the runtime package, which reads them)."""

from mlops_platform.naming import tenant_id

__all__ = ["tenant_id"]
