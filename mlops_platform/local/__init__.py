"""The platform on one machine: an embedded AWS that the real CDK CLI deploys the dev stacks onto.

* :mod:`.emulator` starts moto's server in this process, on a free localhost port, for one account;
* :mod:`.deviations` lists every way the local path departs from AWS, each with its reason
  (``DEVIATIONS``); :mod:`.compat` implements them over moto's own classes;
* :mod:`.functions` runs a deployed Lambda function's own handler code in this process;
* :mod:`.deploy` bootstraps the emulated account and deploys ``dev/*`` with the pinned CDK CLI;
* :mod:`.ingestion` is the loop's first phase: records through the deployed queue and function;
* :mod:`.platform` runs one local run and times its phases.

``mlops local`` (:mod:`mlops_platform.cli.local`) drives them; each run starts a fresh emulator.
Nothing here is imported by a handler or an image: moto is a development dependency.
"""
