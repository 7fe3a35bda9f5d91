# Local developer entry points; `make` alone lists them.
# Python tools (moto, cfn-lint) live in .venv/, set up on demand by scripts/venv.sh.
SHELL := bash
.DEFAULT_GOAL := help
.PHONY: help test lint bench venv clean-venv emulator

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

test: ## cargo tests against a local moto server, then cfn-lint
	scripts/with-moto.sh cargo test --workspace --all-targets
	scripts/cfn-lint.sh

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: ## run the criterion benches
	cargo bench --workspace

emulator: ## local AWS on 127.0.0.1:5555 for cargo lambda watch/invoke (Ctrl-C stops it)
	scripts/emulator.sh

venv: ## create .venv/ with the pinned moto and cfn-lint
	scripts/venv.sh

clean-venv: ## remove .venv/
	rm -rf .venv
