"""The scoring API's logic (lambda/scoring adapts it): requests checked, endpoints invoked, asynchronous
requests recorded, queued and scored by the worker.

- request.py: the request as the API and its queue carry it;
- caller.py: the IAM principal an asynchronous request belongs to;
- endpoint.py: InvokeEndpoint, and what its errors mean for the caller;
- results.py: the results table of asynchronous requests;
- service.py: the API's operations and their answers;
- worker.py: one queued request, scored and recorded.

Imports boto3 only, as the Lambda runtime provides it.
"""
