"""One module per stack: composition only; the units live in ``mlops_constructs``."""
