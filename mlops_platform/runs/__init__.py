"""Training runs after the plan: how each execution ended, and what a trial does with a job name already taken.

One home for what the run-outcome function (``lambda/run_outcome``) and the training-job function
(``lambda/training_job``) decide, and for the names the plan (``mlops_platform.training.plan``) gives a run's
executions and jobs. Every module needs boto3 only, takes its AWS clients and its log as arguments and reads
no environment: the handlers build the clients and the settings.

* ``names``: run ids, SageMaker's name rule, the run hash and trial ids;
* ``outcome``: a Step Functions status change of a training execution, checked (``parse_event``);
* ``history``: where and why an execution ended, from its history;
* ``recorder``: the run's ledger record, updated once per status change, stale ones refused;
* ``attempts``: a taken training job name becomes ``wait``, ``reuse``, ``retry`` or ``give-up``;
* ``prepared``: what the run's prepare step kept and rejected, for its ledger record, its report and notices.
"""
