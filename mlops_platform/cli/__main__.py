"""``python -m mlops_platform.cli``: the ``mlops`` command without the installed entry point."""

import sys

from mlops_platform.cli import main

sys.exit(main())
