"""Record an environment's endpoint variants as deployed: run after a successful deploy, then commit.

``config/deployed-variants.yaml`` tells synth what is live without asking AWS (config/deployed.py):
it refuses to remove a variant, or change its instance type, while the variant is an autoscaling
target, and it uses blue/green guardrails only for updates that keep the live variant names.

    python -m scripts.record_variants --environment prod     (or: make record-variants ENV=prod)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from config import ConfigError, load_config
from config.deployed import RECORD_FILE, DeployedVariants, record_of

ROOT = Path(__file__).resolve().parent.parent
HEADER = """\
# Each environment's endpoint variants as last deployed: written by `make record-variants ENV=<env>`
# after a successful deploy, then committed. Synth reads it (config/deployed.py) to refuse removing a
# variant, or changing its instance type, while it is an autoscaling target, and to use blue/green
# guardrails only when an update keeps the live variant names. An empty entry: nothing deployed yet.
"""


def render(record: DeployedVariants) -> str:
    data = record.model_dump(mode="json")
    lines = [HEADER.rstrip("\n")]
    for environment, endpoints in data.items():
        if not endpoints:
            lines.append(f"{environment}: {{}}")
            continue
        lines.append(yaml.safe_dump({environment: endpoints}, sort_keys=True, default_flow_style=None).rstrip("\n"))
    return "\n".join(lines) + "\n"


def record(config_dir: Path, environment: str) -> DeployedVariants:
    """The record with ``environment``'s entry replaced by what its config deploys."""
    config = load_config(config_dir, selected_environments=environment)
    updated = config.deployed.model_copy(update={environment: record_of(config.environment(environment))})
    (config_dir / RECORD_FILE).write_text(render(updated))
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environment", required=True, choices=["dev", "staging", "prod"])
    parser.add_argument("--config-dir", type=Path, default=ROOT / "config")
    args = parser.parse_args(argv)
    try:
        updated = record(args.config_dir, args.environment)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    endpoints = updated.of(args.environment)
    for key, variants in sorted(endpoints.items()):
        listed = ", ".join(
            f"{name} ({v.instance_type}{', autoscaled' if v.autoscaling else ''})" for name, v in variants.items()
        )
        print(f"{args.environment}/{key}: {listed}")
    print(f"wrote {args.config_dir / RECORD_FILE}: commit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
