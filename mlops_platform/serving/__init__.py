"""Serving: the inference image's code, SageMaker's hosting contract around the models training writes.

``python -m mlops_platform.serving serve`` is what SageMaker runs (the inference image's ENTRYPOINT,
then ``serve``); ``python -m mlops_platform.serving.batch`` scores JSON Lines from standard input.
Set ``SM_ROOT`` to run either on a laptop against a folder laid out like ``/opt/ml`` (the model in
``model/``). The package itself imports nothing: each module imports its own libraries.
"""
