"""The platform's training image: SageMaker's training contract, runnable as plain Python.

``python -m mlops_training train`` is what SageMaker runs (``docker run <image> train``). Set
``SM_ROOT`` to run it on a laptop against a folder laid out like ``/opt/ml``.
"""
