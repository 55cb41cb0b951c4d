"""The approval path's runtime modules (``lambda/approval/*.py``), for the scripts that run the same code.

``lambda`` is no import path (a keyword), so a module is loaded by its file and registered under its
bare name, the one the Lambda functions import it under: the scripts, the functions and the tests
then share one module object (one ``PromotionRefused``, one ``StackMissing``). They need boto3 only.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FOLDER = Path(__file__).resolve().parent.parent / "lambda" / "approval"


def load(name: str) -> ModuleType:
    """``lambda/approval/<name>.py`` as the module ``<name>`` (loaded once)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    path = FOLDER / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
