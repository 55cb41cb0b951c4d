"""The Lambda context a handler test passes: what Powertools' ``inject_lambda_context`` reads of it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LambdaContext:
    function_name: str = "function"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "request-1"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:111111111111:function:{self.function_name}"
