# import-linter reads the package's spec; importing kubesweep first makes the spec list
# both source folders (operator/ and suggestion/), so the contracts see every module.
LINT_IMPORTS = $(BIN)/python -c 'import sys, kubesweep; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())' --no-logo

# Everyday targets. `make test` and `make demo` are the two set-up commands of the README:
# each creates the virtual environment it needs, so a fresh clone runs them as they are.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv browser lint fmt typecheck imports crds check-crds test test-unit test-e2e demo clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

venv: $(STAMP) ## create .venv with kubesweep and its development tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --no-compile -e '.[dev]'
	touch $(STAMP)

lint: venv ## ruff lint and format check, mypy strict, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(LINT_IMPORTS)

fmt: venv ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy

imports: venv
	$(LINT_IMPORTS)

crds: venv ## regenerate crds/, the chart's CRD template and values schema, and the OpenAPI document
	$(BIN)/python -m kubesweep.api.crdgen crds
	$(BIN)/python charts/values_schema.py
	$(BIN)/python -m kubesweep.suggestion.openapi
	$(BIN)/python -m kubesweep.suggestion.catalog

# Debian packages are installed one apt-get at a time (targets may run side by side).
APT_GET := flock $(or $(TMPDIR),/tmp)/kubesweep-apt.lock env DEBIAN_FRONTEND=noninteractive apt-get

browser: ## headless Chromium and its driver (Debian's packages) for the report's and the dashboard's browser tests, installed when missing
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    $(APT_GET) update -qq && $(APT_GET) install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium or chromedriver is missing and cannot be installed here: the browser tests will skip"; fi; }

# checkov judges the rendered chart (tests/charts/test_checkov.py); it has many
# dependencies of its own, so it lives in a virtual environment apart from the project's.
CHECKOV_VENV := $(VENV)/tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --no-compile 'checkov==3.3.30'

# The chart tests render with the helm that cluster-build makes (cached after the first time).
# The unit tests run on every core (pytest-xdist): each is a process of its own, and the
# slow ones (whole local sweeps, wheels installed into fresh environments) wait on children.
# Each suite prints its slowest tests (--durations): what to look at when CI's time grows.
test-unit: venv browser cluster-build $(CHECKOV) ## fast tests, no cluster
	KUBESWEEP_CHECKOV=$(CHECKOV) $(BIN)/pytest tests -q -n auto --durations=10

# `make test` first makes what its suites need side by side: the Go builds one after
# another (node-build follows cluster-build; they share a build cache and fill both
# cores), and beside them the images, the Python environments and lint, which spend
# their time on downloads, unpacking and one core. Then the unit tests run beside the
# real node's suite: the one fills the cores and starts no cluster, the other mostly
# waits on its kubelet and pods, so together they take little longer than the unit
# tests alone. The process node's suite follows on its own (two clusters starting at
# once would pick their ports from the same range). Suites written for either node
# (ON_REAL_NODE_INSTEAD) run on the real node alone when it runs (as root), and on the
# process node otherwise: the real node is the stronger check, and running them twice
# would cost about five minutes.
TEST_SETUP := lint browser $(CHECKOV) cluster-build node-build images
ON_REAL_NODE_INSTEAD := e2e/test_faults.py e2e/test_checkpoints.py

test: ## everything: lint, unit tests beside the real node's e2e tests, then the process node's
	$(MAKE) --no-print-directory -j3 --output-sync=target $(TEST_SETUP)
	$(MAKE) --no-print-directory -j2 --output-sync=target test-unit test-e2e-real
	$(MAKE) --no-print-directory test-e2e \
	  E2E_ARGS="$(if $(filter 0,$(shell id -u)),$(ON_REAL_NODE_INSTEAD:%=--ignore=%))"

E2E_ARGS ?=
test-e2e: venv $(if $(KUBESWEEP_E2E_KUBECONFIG),,cluster-build) ## e2e tests against the local cluster (built and started on demand)
	$(BIN)/pytest e2e -q --durations=15 $(E2E_ARGS)

# As root the demo runs on the real node (the chart with the built images); the node's and
# the image builder's Debian packages are installed when missing. Elsewhere it falls back
# to the process node and says why.
DEMO_TOOLS := $(if $(filter 0,$(shell id -u)),node-tools image-tools node-build)

demo: venv cluster-build $(DEMO_TOOLS) ## the main job: the chart on the real node runs a sweep to the end
	$(BIN)/python e2e/demo.py $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# ---- local Kubernetes cluster: e2e/cluster (control plane from Go modules) + e2e/node ----
# See docs/local-cluster.md. State: $KUBESWEEP_CLUSTER_DIR (default ~/.cache/kubesweep/cluster).
CLUSTER := PYTHONPATH=e2e $(BIN)/python -m cluster
.PHONY: cluster-build dev-cluster dev-cluster-down dev-cluster-status kubectl

cluster-build: ## build kube-apiserver & co, etcd and helm from Go modules (cached in ~/.cache/kubesweep)
	e2e/cluster/build.sh

NODE ?= process

dev-cluster: venv cluster-build $(if $(filter real,$(NODE)),node-build) ## start the local cluster (NODE=real: a real kubelet and containerd) and keep it running
	$(CLUSTER) up --node $(NODE)

dev-cluster-down: venv ## stop the local cluster (NODE=real: the real node's), nothing left running
	$(CLUSTER) down --node $(NODE)

dev-cluster-status: venv ## show the local cluster's components (NODE=real: the real node's)
	$(CLUSTER) status --node $(NODE)

# ---- the real node: kubelet, kube-proxy and containerd from Go modules; runc and CNI from Debian ----
.PHONY: node-tools node-build test-e2e-real

node-tools: ## Debian packages the real node needs (runc, CNI plugins, nftables), installed when missing
	@if [ ! -x /usr/lib/cni/bridge ] || ! command -v runc >/dev/null || ! command -v nft >/dev/null; then \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq \
	    runc containernetworking-plugins nftables >/dev/null; fi

node-build: node-tools cluster-build ## build kubelet + kube-proxy, containerd and CoreDNS from Go modules (cached in ~/.cache/kubesweep)
	e2e/cluster/build-node.sh
	e2e/cluster/build-dns.sh

# The real-node suite: native sidecars, Services and DNS, the chart installed by helm with
# the built images running a sweep per metrics source, the termination-message fallback,
# GPU trials, and the fault suite against the chart's pods. Its cluster lives in ~/.cache/kubesweep/cluster-real (never the process
# node's); one running there (make dev-cluster NODE=real) is reused.
REAL_NODE_TESTS := e2e/test_realnode.py e2e/test_realnode_chart.py $(ON_REAL_NODE_INSTEAD)

test-e2e-real: venv cluster-build node-build images ## e2e tests on the real node: the chart with the built images
	KUBESWEEP_E2E_NODE=real $(BIN)/pytest $(REAL_NODE_TESTS) -q --durations=10

kubectl: ## kubectl on the local cluster, e.g. make kubectl ARGS="get pods -A" (or e2e/cluster/kubectl ...)
	@e2e/cluster/kubectl $(ARGS)

# ---- benchmark: suggestion algorithms against Optuna, scikit-optimize and hyperopt ----
# Writes its section of docs/benchmarks.md and docs/img/bench-suggest-*.png; raw results
# (resumable) in artifacts/bench-suggest/. BENCH_ARGS passes flags, e.g.
# BENCH_ARGS="--profile smoke" for a seconds-long pass, or "--fresh" to start over.
BENCH_STAMP := $(VENV)/.installed-bench
.PHONY: bench-suggest

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench-suggest: $(BENCH_STAMP) ## suggestion benchmark, full run (about 45 min on 2 cores)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(BIN)/python -m bench.suggest.run $(BENCH_ARGS)

# ---- benchmark: the operator on the local cluster (issue 5's performance goals) ----
# A cluster of its own in $KUBESWEEP_BENCH_CLUSTER_DIR (default /tmp/kubesweep-bench-operator-cluster),
# started fresh and stopped at the end. Writes the "## Operator" section of docs/benchmarks.md;
# raw results in artifacts/bench-operator/. BENCH_ARGS passes flags, e.g. "--profile smoke"
# (a few minutes, docs untouched), "--only latency writes" (with "--merge" to keep the other
# figures of the last run), "--keep" (leave the cluster up). "--only memory-one --trials 100000"
# runs one experiment of 100,000 finished Trials (not run by default: filling takes 10-25 min);
# with "--keep", a later "--reuse" run measures another build on the same Trials.
# "--only scale --trials 10000" runs one experiment of 10,000 trials through real pods and
# samples it over time (not run by default: about an hour here); "--parallel", "--timeout".
.PHONY: bench-operator

bench-operator: venv cluster-build ## operator benchmark: latency, throughput, writes per trial, memory (10-15 min on 2 cores)
	$(BIN)/python -m bench.operator.run $(BENCH_ARGS)

# ---- images: images/*/Dockerfile built with buildah into OCI archives (images/build.py) ----
# Archives and records in ~/.cache/kubesweep/images; rebuilt only when their inputs change.
# IMAGES selects (default: all but trainer-torch); IMAGE_TAG names the tag (default dev).
IMAGES ?=
IMAGE_TAG ?= dev
REGISTRY ?=
IMAGE_BUILD := $(PYTHON) images/build.py --tag $(IMAGE_TAG)
.PHONY: image-tools images push

image-tools: ## Debian packages the image build needs (buildah, mmdebstrap, skopeo), installed when missing
	@command -v buildah >/dev/null && command -v mmdebstrap >/dev/null && command -v skopeo >/dev/null || { \
	  $(APT_GET) update -qq && $(APT_GET) install -y -qq \
	    buildah mmdebstrap skopeo >/dev/null; }

images: image-tools ## build the images (cached by content) on a base made from Debian packages
	$(IMAGE_BUILD) build $(IMAGES)

push: ## copy the built images to a registry: make images push REGISTRY=host:port[/path]
	@test -n "$(REGISTRY)" || { echo "push: set REGISTRY=host:port[/path]" >&2; exit 2; }
	$(IMAGE_BUILD) push --registry $(REGISTRY) $(IMAGES)
