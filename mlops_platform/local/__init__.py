"""The platform on one machine: an embedded AWS that the real CDK CLI deploys the dev stacks onto.

* :mod:`.emulator` starts moto's server in this process, on a free localhost port, for one account;
* :mod:`.deviations` is the compatibility layer over moto's own classes: every way the local path
  departs from AWS, each with its reason (``DEVIATIONS``);
* :mod:`.functions` runs a deployed Lambda function's own handler code in this process;
* :mod:`.deploy` bootstraps the emulated account and deploys ``dev/*`` with the pinned CDK CLI;
* :mod:`.loop` runs the example tenant's loop on what was deployed.

``mlops local`` (:mod:`mlops_platform.cli.local`) drives them; each run starts a fresh emulator.
Nothing here is imported by a handler or an image: moto is a development dependency.
"""
