"""training (see mlops_platform/__init__.py)."""
