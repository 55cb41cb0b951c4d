"""The platform's inference image: SageMaker's hosting contract around the training image's models.

``python -m mlops_inference serve`` is what SageMaker runs (``docker run <image> serve``);
``python -m mlops_inference.batch`` scores JSON Lines from standard input. Set ``SM_ROOT`` to run
either on a laptop against a folder laid out like ``/opt/ml`` (the model in ``model/``).
"""
