"""Evaluation of a training run (was lambda/evaluate): each model's best trial, its baseline job, its package.

- ``request``: the state's input checked; ``settings``: the function's environment; ``errors``: what it refuses.
- ``results`` and ``lookups``: how each trial ended, from the Map's results, else from SageMaker.
- ``trials``: each trial's state and each model's best; ``documents``: the feature schema and evaluations.
- ``baselines``: the baseline job's request and the check that its baseline exists.
- ``registration``: the model packages; ``ledger``: the run ledger's trial, run and package rows.
- ``evaluator``: ``Evaluator``, which the evaluate Lambda (lambda/evaluate/handler.py) calls.
"""
