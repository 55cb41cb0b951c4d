"""The platform plus one planted violation: `make synth` must fail on it (see test_policy.py).

Run by the CDK CLI as `--app`, exactly as cdk.json runs app.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3

from app import build_platform, read_config

app = cdk.App(context={"environments": "dev"})
stages = build_platform(app, read_config(app))
# No TLS-only policy, no access logs: AwsSolutions-S1 and AwsSolutions-S10.
s3.Bucket(stages["dev"].foundation, "PlantedBucket", encryption=s3.BucketEncryption.S3_MANAGED)
app.synth()
