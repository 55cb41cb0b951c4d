"""Training: the training image's code, SageMaker's training contract runnable as plain Python.

``python -m mlops_platform.training train`` is what SageMaker runs (the training image's
ENTRYPOINT, then ``train``); ``__main__`` lists the image's other entry points. Set ``SM_ROOT`` to
run it on a laptop against a folder laid out like ``/opt/ml``. The package itself imports nothing:
each module imports its own libraries, so Lambda functions can import the pure ones.
"""
