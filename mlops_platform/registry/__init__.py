"""The model registry's rules: which package may serve where, and how a model pointer changes.

One home for what the approval path's functions (``lambda/approval``), the operator commands
(``mlops promote``, ``mlops check-deploy``, ``mlops record-variants``) and the delivery
pipeline's deploy check share. Every module needs boto3 only, takes its AWS clients as arguments and
reads no environment: the handlers and the commands build the clients and the settings.

* ``packages``: model package versions (ARNs, DescribeModelPackage, the flavours that serve them);
* ``checks``: what a package must pass before a pointer may name it (``check_package``);
* ``pointers``: the model pointers (SSM parameters) and their history;
* ``ledger``: promotion records in the run ledger, written once;
* ``deploy_lock``: one writer of an environment's pointers at a time;
* ``endpoint_check``: does each endpoint run what its stack deployed;
* ``promotion``: a person's promotion and rollback;
* ``approval``, ``approval_settings``, ``approval_messages``: an approval event becomes a deployment or a notice;
* ``deployment``: the deployment workflow's steps (lock, write, judge, restore);
* ``notices``: SNS subjects, and the log and metric hooks the handlers plug in.
"""
