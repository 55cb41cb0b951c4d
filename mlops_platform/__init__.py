"""The platform's runtime: everything that runs in AWS or on a laptop rather than at synth, once.

Lambda handlers (``lambda/<function>/handler.py``), the training and inference images
(``containers/``) and the operator command (``mlops``) are thin adapters over this package. It never
imports the CDK app (``config``, ``stacks``, ``mlops_constructs``).
"""
