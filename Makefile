# Sluice developer entry points. `make` alone lists them.
#
# Every target that needs something installs it or says how: `make setup`
# installs the Debian packages and pinned Go tools the others use.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

GO ?= go

# Debian packages the build, the tests and `make dev` need. Later work adds
# to this list (chromium for the IDE's browser tests, terraform, ...).
APT_PACKAGES := postgresql kcat git ca-certificates curl prometheus chromium

# Pinned Go tools, installed into .tools/bin by `make setup`.
TOOLS_BIN := $(CURDIR)/.tools/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_BIN)/staticcheck
# Terraform for fleet provisioning: the last MPL release, built from source
# into .tools/bin when neither terraform nor tofu is on PATH.
TERRAFORM_VERSION := v1.5.7
TERRAFORM_ON_PATH := $(shell command -v terraform || command -v tofu)
TERRAFORM := $(if $(TERRAFORM_ON_PATH),,$(TOOLS_BIN)/terraform)

# Flags for `go test` in `make test`; override for a quick run, e.g.
# make test TEST_FLAGS='-count=1 -run TestCompile'. The timeout (per test
# binary, default 10m) makes a hung test fail fast enough for CI's budget.
TEST_FLAGS ?= -race -shuffle=on -count=1 -timeout=5m

# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 30s

# apt-get needs root; use sudo only when we are not.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help
help: ## List the targets
	@echo "Usage: make <target> [VAR=value]"
	@echo
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: TEST_FLAGS='$(TEST_FLAGS)' FUZZTIME=$(FUZZTIME) DEV_FLAGS='$(DEV_FLAGS)'"

.PHONY: setup
setup: setup-apt setup-tools setup-node ## Install missing Debian packages, the pinned Go tools and the IDE's npm packages (idempotent)

.PHONY: setup-apt
setup-apt:
	@missing=(); \
	for p in $(APT_PACKAGES); do \
		status=$$(dpkg -s "$$p" 2>/dev/null || true); \
		[[ $$status == *$$'\nStatus: install ok installed'* ]] || missing+=("$$p"); \
	done; \
	if (( $${#missing[@]} == 0 )); then \
		echo "setup: Debian packages present: $(APT_PACKAGES)"; \
		exit 0; \
	fi; \
	echo "setup: installing Debian packages: $${missing[*]}"; \
	$(SUDO) apt-get update -qq; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$${missing[@]}" </dev/null

# The IDE (web/) builds with Vite, which needs Node.js 20.19 or later and
# npm; Debian 12's own nodejs is too old, so we check rather than install.
NODE_MIN := 20.19

.PHONY: setup-node
setup-node:
	@v=$$(node --version 2>/dev/null | sed 's/^v//'); \
	if [[ -z "$$v" ]] || ! printf '%s\n%s\n' "$(NODE_MIN)" "$$v" | sort -V -C; then \
		echo "setup: the IDE needs Node.js >= $(NODE_MIN) and npm (found: $${v:-none}); install them from https://nodejs.org or NodeSource"; \
		exit 1; \
	fi; \
	echo "setup: node v$$v, npm $$(npm --version)"
	@$(MAKE) --no-print-directory $(WEB_DEPS)

.PHONY: setup-tools
setup-tools: $(STATICCHECK) $(TERRAFORM)
	@echo "setup: Go tools present in .tools/bin: staticcheck $(STATICCHECK_VERSION)"
	@echo "setup: terraform: $(if $(TERRAFORM_ON_PATH),$(TERRAFORM_ON_PATH) (on PATH),$(TERRAFORM) $(TERRAFORM_VERSION))"

# Each tool is installed when its binary is missing or older than the stamp
# of its pinned version, so bumping a version reinstalls it and a second
# `make setup` does nothing.
STATICCHECK_STAMP := .tools/versions/staticcheck-$(STATICCHECK_VERSION)

$(STATICCHECK_STAMP):
	@mkdir -p $(@D)
	@rm -f $(@D)/staticcheck-*
	@touch $@

$(STATICCHECK): $(STATICCHECK_STAMP)
	@echo "setup: installing staticcheck $(STATICCHECK_VERSION) into .tools/bin"
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

TERRAFORM_STAMP := .tools/versions/terraform-$(TERRAFORM_VERSION)

$(TERRAFORM_STAMP):
	@mkdir -p $(@D)
	@rm -f $(@D)/terraform-*
	@touch $@

$(TOOLS_BIN)/terraform: $(TERRAFORM_STAMP)
	@echo "setup: installing terraform $(TERRAFORM_VERSION) into .tools/bin (no terraform or tofu on PATH)"
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/hashicorp/terraform@$(TERRAFORM_VERSION)
	@touch $@

# The IDE's npm packages, reinstalled (npm ci) when the lock file changes.
WEB_DEPS := web/node_modules/.package-lock.json

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

.PHONY: web
web: $(WEB_DEPS) ## Build the IDE into web/dist/app, which bin/controlplane embeds (then make build); without it / serves a placeholder
	cd web && npm run build

.PHONY: build
build: ## Build every package, bin/runner and bin/controlplane
	$(GO) build ./...
	$(GO) build -o bin/runner ./cmd/runner
	$(GO) build -o bin/controlplane ./cmd/controlplane
	$(GO) build -o bin/sluice ./cmd/sluice

# Flags for `controlplane dev`, e.g. make dev DEV_FLAGS='--listen 127.0.0.1:9090'.
DEV_FLAGS ?=

.PHONY: dev
dev: setup ## Run the platform locally: PostgreSQL under .sluice/, the control plane with its git server, and a runner agent on embedded Kafka
	$(GO) build -o bin/controlplane ./cmd/controlplane
	$(GO) build -o bin/runner ./cmd/runner
	./bin/controlplane dev $(DEV_FLAGS)

# The packages of `make test`: everything but the end-to-end tests, which
# run whole processes for minutes and have `make e2e`, plus the tests of
# our patches to kfake (third_party/kfake, a module of its own).
UNIT_PKGS = $$($(GO) list ./... | grep -v '/e2e') github.com/twmb/franz-go/pkg/kfake

.PHONY: test
test: $(WEB_DEPS) ## Run the fast tier: every package's tests but e2e (race detector, shuffled, fuzz seed corpora), the example pipelines' tests, the IDE's unit tests
	$(GO) test $(TEST_FLAGS) $(UNIT_PKGS)
	$(GO) run ./cmd/runner test examples/
	@command -v promtool >/dev/null || { echo "promtool is missing (Debian package prometheus): run make setup"; exit 1; }
	promtool check rules observability/prometheus/alerts.yaml
	cd web && npm test

# Flags for `go test` in `make e2e`: processes are killed, restarted and
# kept down for a minute, so each test binary gets longer.
E2E_FLAGS ?= -race -count=1 -timeout=15m

.PHONY: e2e
e2e: web ## Run the end-to-end tests: runner crashes and fail-over, the GitOps loop with real processes and the git CLI, the IDE in chromium
	$(GO) test $(E2E_FLAGS) ./e2e/...

.PHONY: bench
bench: web ## Run the benchmarks (the IDE's bundle size needs make web); write bench/results/ and the table in docs/performance.md
	$(GO) run ./bench/benchreport

.PHONY: verify
verify: verify-fmt verify-vet verify-staticcheck verify-docs verify-tidy ## Check formatting, vet, staticcheck, generated docs and go.mod tidiness

.PHONY: verify-fmt
verify-fmt:
	@echo "verify: gofmt"
	@unformatted=$$(find . \( -name .git -o -name .tools -o -name .sluice -o -name node_modules -o -name testdata \) -prune \
		-o -name '*.go' -print0 | xargs -0 -r gofmt -l); \
	if [[ -n "$$unformatted" ]]; then \
		echo "These files are not gofmt-ed (run gofmt -w on them):"; \
		echo "$$unformatted"; \
		exit 1; \
	fi

.PHONY: verify-vet
verify-vet:
	@echo "verify: go vet"
	$(GO) vet ./...

.PHONY: verify-staticcheck
verify-staticcheck: $(STATICCHECK)
	@echo "verify: staticcheck"
	$(STATICCHECK) ./...

.PHONY: verify-docs
verify-docs:
	@echo "verify: generated docs (make docs updates them)"
	$(GO) run ./cmd/docgen -check

.PHONY: verify-tidy
verify-tidy:
	@echo "verify: go.mod and go.sum are tidy"
	@if ! $(GO) mod tidy -diff; then \
		echo "go.mod or go.sum is not tidy: run go mod tidy and commit the result"; \
		exit 1; \
	fi

.PHONY: docs
docs: ## Regenerate docs/operators and docs/schema from the operator catalog
	$(GO) run ./cmd/docgen

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s)
	@targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ { names[n++] = $$1; next } /^ok / { for (i = 0; i < n; i++) print $$2, names[i] } { n = 0 }'); \
	if [[ -z "$$targets" ]]; then echo "fuzz: no fuzz targets found"; exit 1; fi; \
	while read -r pkg name; do \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
	done <<< "$$targets"

.PHONY: clean
clean: ## Remove build output, test binaries and cached test results (keeps .tools/ and .sluice/)
	rm -rf bin/
	find . \( -name .git -o -name node_modules \) -prune -o \( -name '*.test' -o -name '*.prof' -o -name 'coverage*.out' \) -type f -print0 | xargs -0 -r rm -f
	$(GO) clean -testcache
