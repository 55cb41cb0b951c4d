"""What the operator command shows about training runs: progress from the progress table, reports from the run ledger.

``mlops progress`` (``progress``, ``progress_view``) and ``mlops run-report`` (``run_report``) are thin
commands over these modules; they read DynamoDB with any client they are given.
"""
