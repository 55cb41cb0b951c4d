"""Who called the scoring API: the IAM principal an asynchronous request is recorded under and read back by.

The API authorizes with IAM (SigV4), and API Gateway's Lambda proxy integration passes the signer in
``requestContext.identity``: ``userArn`` is the caller's ARN, ``caller`` its unique id (API Gateway
developer guide, "Input format of a Lambda function for proxy integration":
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format).

A role's sessions are one principal: ``arn:aws:sts::111111111111:assumed-role/Scorer/any-session`` is
recorded as ``arn:aws:sts::111111111111:assumed-role/Scorer``. Whoever calls AssumeRole chooses the session
name, so it separates nothing that IAM enforces, and a batch job whose session changes between submitting
and reading must still read its own results. Users, federated users and the root user are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ASSUMED_ROLE = re.compile(r"(arn:[a-z-]+:sts::\d{12}:assumed-role/[^/]+)/.+")


def principal_of(identity: Mapping[str, Any] | None) -> str | None:
    """The principal a request is recorded under, from API Gateway's ``requestContext.identity``; None when
    the request carries no IAM caller (IAM authorization makes that impossible, so it is refused)."""
    user_arn = (identity or {}).get("userArn")
    if not isinstance(user_arn, str) or not user_arn.startswith("arn:"):
        return None
    session = ASSUMED_ROLE.fullmatch(user_arn)
    return session.group(1) if session else user_arn
