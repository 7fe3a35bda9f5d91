# Local developer entry points; `make` alone lists them.
# Python tools (moto, cfn-lint) live in .venv/, set up on demand by scripts/venv.sh;
# cargo-lambda and checkov (.venv/checkov/) by their scripts on first use.
SHELL := bash
.DEFAULT_GOAL := help
.PHONY: help test lint bench venv clean-venv emulator build lint-template demo

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

test: ## cargo tests against a local moto server, then cfn-lint and checkov
	scripts/with-moto.sh cargo test --workspace --all-targets
	$(MAKE) --no-print-directory lint-template

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

lint-template: ## cfn-lint and checkov (security) on template.yaml
	scripts/cfn-lint.sh
	scripts/checkov.sh

build: ## Lambda zips of every function (arm64; ARCH=x86_64 for x86), sizes checked
	scripts/build-functions.sh $(or $(ARCH),arm64)

bench: ## run every bench (criterion, delivery at distance, outage drills) against a local moto
	scripts/with-moto.sh cargo bench --workspace

demo: ## simulated fleet through every function on a private moto, then the OEM console's URL and tokens; DEMO_ARGS="--devices 200 --hours 3", DEMO_ARGS=--serve keeps the console up
	scripts/with-moto.sh cargo run --quiet -p demo -- $(DEMO_ARGS)

emulator: ## local AWS on 127.0.0.1:5555 for cargo lambda watch/invoke (Ctrl-C stops it)
	scripts/emulator.sh

venv: ## create .venv/ with the pinned moto and cfn-lint
	scripts/venv.sh

clean-venv: ## remove .venv/
	rm -rf .venv
