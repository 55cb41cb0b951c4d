"""The operator command, ``mlops``: one console entry point whose subcommands replace the scripts.

Each subcommand is a module of this package with three names:

* ``HELP``: one line, shown by ``mlops --help``;
* ``configure(parser)``: adds the subcommand's arguments to its ``argparse`` parser;
* ``run(args) -> int``: does the work and returns the exit status.

A subcommand refuses bad input by raising :class:`CommandError` with one sentence; ``main`` prints it
as ``mlops <command>: <sentence>`` and exits 2, never with a traceback. Modules are imported only
when their subcommand runs (or its ``--help`` is asked), so ``mlops --help`` stays instant.

Subcommands run from a checkout of the repository: those that need an environment's settings read
``config/`` as synth does (``config.loader``), importing it only when they run. No other module of
``mlops_platform`` imports ``config`` (it runs in Lambda and in the images without it). Helpers that
several subcommands share are modules here too (``promotion``) but not entries of ``COMMANDS``.

``make setup`` installs the entry point into ``.venv`` (``pip install --editable .``);
``python -m mlops_platform.cli`` is the same command without it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

# Subcommand name -> module under mlops_platform.cli. Keep in the order `mlops --help` lists them.
COMMANDS: dict[str, str] = {
    "promote": "promote",
    "promote-challenger": "promote_challenger",
    "rollback": "rollback",
    "progress": "progress",
    "run-report": "run_report",
    "record-variants": "record_variants",
    "check-deploy": "check_deploy",
    "bootstrap": "bootstrap",
    "smoke-test": "smoke",
    "upload": "upload",
    "local": "local",
    "train-local": "train_local",
    "serve-local": "serve_local",
}

USAGE_ERROR = 2


class CommandError(Exception):
    """Bad input for a subcommand: its message is one sentence for the operator."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one sentence under the subcommand's name (no usage block)."""

    def error(self, message: str) -> NoReturn:
        sentence = message[0].upper() + message[1:]
        self.exit(USAGE_ERROR, f"{self.prog}: {sentence.rstrip('.')}.\n")


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def _summary(name: str) -> str:
    """The subcommand's one-line help, read without importing its module (it may import heavy libraries)."""
    spec = importlib.util.find_spec(f"{__name__}.{COMMANDS[name]}")
    # The file itself: an import hook (pytest's assertion rewriter, say) may be the loader, without get_source.
    source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
    for line in source.splitlines():
        if line.startswith("HELP = "):
            return str(eval(line.removeprefix("HELP = "), {}))  # noqa: S307 - a string literal of our own
    return ""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``mlops``; with ``only``, just that subcommand's module is imported and configured."""
    parser = _Parser(prog="mlops", description="Operate the MLOps platform: models, runs, data and the local platform.")
    commands = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser, required=True)
    for name in COMMANDS:
        if only == name:
            module = _module(name)
            sub = commands.add_parser(name, help=module.HELP, description=module.__doc__)
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
            module.configure(sub)
            sub.set_defaults(run=module.run)
        else:
            commands.add_parser(name, help=_summary(name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    chosen = next((word for word in arguments if not word.startswith("-")), None)
    parser = build_parser(chosen if chosen in COMMANDS else None)
    args: Any = parser.parse_args(arguments)
    try:
        return int(args.run(args))
    except CommandError as error:
        print(f"mlops {args.command}: {error}", file=sys.stderr)
        return USAGE_ERROR
