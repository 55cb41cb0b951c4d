"""The platform's construct library: one construct per unit, composed by ``stacks/``.

Not named ``constructs``: a root package of that name shadows the ``constructs`` dependency of
aws-cdk-lib (aws/aws-cdk#19301); tests/unit/test_layout.py guards it.
"""
