# image-access-operator. `make test` runs everything (real parts included); `make demo` shows it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
E2E_STATE ?= $(CURDIR)/.e2e
WITH_ENV := source $(E2E_STATE)/env.sh &&

.PHONY: build test lint crds manifests env-up env-down image release demo demo-down tools clean-env bench migration-tools

build:
	cargo build --bins

## The whole suite: lint, unit tests, the client against a real Keystone + Glance, and the
## end-to-end tests of the operator on a real kube-apiserver. Starts the environment first.
## tests/upgrade.rs replaces the cluster's CRDs: it runs alone, after the rest, whatever the
## rest's result (both results count).
test: lint env-up image migration-tools
	status=0; \
	$(WITH_ENV) cargo test --features e2e --no-fail-fast || status=$$?; \
	$(WITH_ENV) cargo test --features e2e --test upgrade -- --ignored || status=$$?; \
	exit $$status

## Terraform and its OpenStack provider (tests/e2e_migrate.rs), into the tools cache that
## .e2e/env.sh puts on PATH; `make demo` does without them.
migration-tools:
	hack/tools.sh terraform-openstack > /dev/null

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --features e2e -- -D warnings
	"$$(hack/tools.sh cargo-deny)/cargo-deny" check --hide-inclusion-graph licenses bans
	"$$(hack/tools.sh actionlint)/actionlint" -no-color

## Regenerate the generated files (tests fail when they drift): the CRD from the Rust types
## (into crds/ and the chart's crds/), and deploy/ from the chart.
crds:
	cargo run -q --bin crdgen -- crds charts/image-access-operator/crds

manifests: crds
	PATH="$$(hack/tools.sh helm):$$PATH" hack/render-manifests.sh

tools:
	hack/tools.sh all

env-up:
	tests/env/up.sh $(E2E_STATE)

## The release of the current sources (hack/release.sh: the image for amd64 and arm64, the chart,
## SBOMs), pushed to the environment's registry and signed; the nodes pull it from there.
## Also the previous release (hack/releases.tsv), rebuilt from its commit, for the upgrade test.
image:
	tests/env/publish-image.sh $(E2E_STATE)
	tests/env/publish-previous.sh $(E2E_STATE)

## What a tag publishes, into dist/VERSION (VERSION defaults to Cargo.toml's): see README, Releases.
release:
	hack/release.sh $(VERSION)

env-down:
	tests/env/down.sh $(E2E_STATE)

clean-env:
	tests/env/down.sh $(E2E_STATE) --clean

## The benchmark (bench/run.sh, then bench/select.sh): 1,000 memberships by the operator (with kubectl's client-side
## and server-side apply), Terraform, OpenTofu and the floor, steady state, and 10,000 objects on
## a slow Glance; figures appended to bench/results.txt, the chart in bench/creation.svg.
bench:
	bench/run.sh

demo:
	hack/demo.sh

demo-down:
	hack/demo-down.sh
