"""What the delivery pipeline's builds run against a deployed environment: the smoke test (``smoke``).

Its build installs boto3 and PyYAML only (mlops_constructs/delivery_pipeline.py), so nothing here imports
more; ``mlops smoke-test`` (mlops_platform/cli/smoke.py) is its command line.
"""
