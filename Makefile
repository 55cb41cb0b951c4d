# Two commands set everything up on a fresh machine (Python 3.11, Node, npm):
#   make synth   synthesize dev, staging and prod into cdk.out/ and run the policy checks
#   make test    the whole test suite (ruff, mypy, unit, infra)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
# The project carries its own Node 22 (npm package `node`) and CDK CLI; jsii and the CLI find them first.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
# Synth makes no network connection: no telemetry, no notices, no version check.
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := true
CDK := cdk --no-notices
# Where synth writes, and which app it runs (tests point these elsewhere to plant violations).
CDK_OUT ?= cdk.out
CDK_APP ?=
CDK_SYNTH_FLAGS ?=
# The CLI looks up a default account before every synth, through the credential chain and STS.
# Synth needs none: hide every credential source (instance metadata included), so the lookup
# fails locally instead of reaching the network. --no-lookups makes any context lookup an error.
OFFLINE := env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_DEFAULT_PROFILE \
	-u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI -u AWS_CONTAINER_CREDENTIALS_FULL_URI -u AWS_WEB_IDENTITY_TOKEN_FILE \
	AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

.PHONY: help setup synth local test lint format snapshots bootstrap-template bootstrap bootstrap-tooling diff deploy \
	record-variants bench-serving train-local serve-local clean

help:
	@echo "make synth      synthesize every environment into cdk.out/ and run cdk-nag and cfn-lint"
	@echo "make local      deploy dev onto an embedded AWS here (no account, no Docker) and run the example loop"
	@echo "make train-local TENANT=<tenant yaml> DATA=<csv|parquet|jsonl>   prepare and train a tenant's grid here"
	@echo "make serve-local MODEL=<model.tar.gz> PORT=<port>   serve a trained model here until Ctrl-C"
	@echo "make test       ruff, mypy and the whole test suite"
	@echo "make format     apply ruff's fixes and formatting"
	@echo "make snapshots  rewrite the template snapshots after an intended change"
	@echo "make bootstrap ENV=dev   bootstrap one environment's account with bootstrap/ (needs AWS credentials)"
	@echo "make bootstrap-tooling   bootstrap the delivery pipeline's account (needs AWS credentials)"
	@echo "make bootstrap-template  regenerate bootstrap/ after a CDK CLI upgrade or a stack change"
	@echo "make diff ENV=dev     compare one environment with what is deployed (needs AWS credentials)"
	@echo "make deploy ENV=dev   deploy one environment's stacks (needs AWS credentials and a bootstrap)"
	@echo "make record-variants ENV=dev   record an environment's deployed endpoint variants (after a deploy)"
	@echo "make bench-serving  the inference server against Flask and gunicorn (needs wrk: apt-get install -y wrk)"
	@echo "make clean      remove the virtual environment, node_modules and cdk.out"

$(VENV)/.installed: requirements.txt requirements-dev.txt $(wildcard lambda/*/requirements.txt)
	test -x $(PYTHON) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The operator command `mlops` (pyproject.toml's entry point), over the working tree (editable).
$(VENV)/.cli: pyproject.toml $(VENV)/.installed
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed $(VENV)/.cli node_modules/.installed

# Start from an empty assembly, but keep the policy gate's record of templates that linted clean
# (scripts/policy_gate.py): an unchanged template is not linted again.
synth: setup
	if [ -d "$(CDK_OUT)" ]; then find "$(CDK_OUT)" -mindepth 1 -maxdepth 1 ! -name .policy-gate -exec rm -rf {} +; fi
	$(OFFLINE) $(CDK) synth --quiet --no-lookups --output "$(CDK_OUT)" $(if $(CDK_APP),--app "$(CDK_APP)") $(CDK_SYNTH_FLAGS)
	$(PYTHON) -m scripts.policy_gate "$(CDK_OUT)"

# The platform on this machine, no AWS account and no Docker (README, "What runs locally, and what is
# emulated"): synthesize dev into cdk.out/local as `make synth` does (its policy checks included), then
# `mlops local` deploys it onto an embedded AWS with the pinned CDK CLI and runs the example loop.
local: CDK_OUT := cdk.out/local
local: CDK_SYNTH_FLAGS := -c environments=dev
local: setup synth
	$(PYTHON) -m mlops_platform.cli local --assembly "$(CDK_OUT)"

# A tenant's models trained and served on this machine with the images' own code (README, "Tenants"):
# train-local prints one JSON line last, with each model's model.tar.gz; OUTPUT= and DAY= are optional.
TENANT ?=
DATA ?=
MODEL ?=
PORT ?= 8080
train-local: setup
	@test -n "$(TENANT)" -a -n "$(DATA)" || { echo "usage: make $@ TENANT=<tenant yaml> DATA=<csv|parquet|jsonl file> [OUTPUT=<dir>] [DAY=<yyyy-mm-dd>]" >&2; exit 2; }
	$(PYTHON) -m mlops_platform.cli train-local --tenant "$(TENANT)" --data "$(DATA)"$(if $(OUTPUT), --output "$(OUTPUT)")$(if $(DAY), --day "$(DAY)")

serve-local: setup
	@test -n "$(MODEL)" -a -n "$(PORT)" || { echo "usage: make $@ MODEL=<model.tar.gz> PORT=<port>" >&2; exit 2; }
	$(PYTHON) -m mlops_platform.cli serve-local --model "$(MODEL)" --port "$(PORT)"

# One pytest-xdist worker per CPU; TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= auto
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PYTHON) -m pytest -n $(TEST_WORKERS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

snapshots: setup
	$(PYTHON) -m pytest tests/infra/test_snapshots.py --snapshot-update

# The bootstrap template (CDK's own plus read access to the model pointers) and the CloudFormation
# execution policy, both derived: from the pinned CLI's template and from every synthesized stack.
bootstrap-template: synth
	$(PYTHON) -m scripts.bootstrap_template --assembly "$(CDK_OUT)"

ENV ?=
# With AWS credentials for the account: creates or updates the execution policy, then runs
# `cdk bootstrap --template bootstrap/template.yaml`; DRY_RUN=1 prints both steps and calls nothing.
bootstrap: setup
	@test -n "$(ENV)" || { echo "usage: make $@ ENV=dev|staging|prod (make bootstrap-tooling: the pipeline's account)" >&2; exit 2; }
	$(VENV)/bin/mlops bootstrap --environment $(ENV)$(if $(DRY_RUN), --dry-run)

bootstrap-tooling: setup
	$(VENV)/bin/mlops bootstrap --tooling$(if $(DRY_RUN), --dry-run)

diff deploy: setup
	@test -n "$(ENV)" || { echo "usage: make $@ ENV=dev|staging|prod" >&2; exit 2; }
	$(CDK) $@ "$(ENV)/*" -c environments=$(ENV)
	$(if $(filter deploy,$@),$(VENV)/bin/mlops check-deploy --environment $(ENV))

record-variants: setup
	@test -n "$(ENV)" || { echo "usage: make $@ ENV=dev|staging|prod" >&2; exit 2; }
	$(VENV)/bin/mlops record-variants --environment $(ENV)

bench-serving: setup
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r benchmarks/serving/requirements.txt
	$(PYTHON) benchmarks/serving/run.py

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .ruff_cache .hypothesis
