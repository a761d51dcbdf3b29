# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Both install from uv.lock (exact versions and hashes); `make lock` refreshes it on purpose, and `make test-latest`
# runs the suite on the newest versions pyproject.toml's ranges allow, to find an upstream break before CI does.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NODE_DIR := tests/node
CHROMIUM := /usr/bin/chromium
REDIS_SERVER := /usr/bin/redis-server

# uv installs from the lock file in about a second; it is itself pinned, and installed once into .uv/ with the
# machine's pip (or taken from PATH when a uv of this version is there).
UV_VERSION := 0.13.9
UV := $(shell command -v uv >/dev/null 2>&1 && uv --version 2>/dev/null | grep -q " $(UV_VERSION)" && command -v uv || echo .uv/bin/uv)
# Never download a Python: use the machine's, as the README says.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)
SYNC := $(UV) sync --frozen --quiet

.PHONY: run test test-latest suite lock lint typecheck bench bench-check soak clean protos

.uv/bin/uv:
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install --quiet --disable-pip-version-check --target .uv uv==$(UV_VERSION)

# Stamps keep make idempotent: an install reruns only when the lock file changes. `--inexact` leaves the test
# extras in place when `make run` follows `make test`.
$(VENV)/.installed-run: uv.lock | $(UV)
	$(SYNC) --inexact
	touch $@

$(VENV)/.installed-test: uv.lock | $(UV)
	$(SYNC) --extra test
	touch $@ $(VENV)/.installed-run

lock: | $(UV)
	$(UV) lock --upgrade

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the official Node SDK tests: apt-get install -y nodejs npm"; exit 1; }
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error

# Debian packages the tests use, each named after the program it installs: Chromium for the browser tests
# (Playwright never downloads a browser here), redis-server for the Redis engine's tests (they start their own
# servers on free ports), openssl for the TLS tests' certificate authorities, curl and jq for the docs' shell blocks.
SYSTEM_TOOLS := $(CHROMIUM) $(REDIS_SERVER) /usr/bin/openssl /usr/bin/curl /usr/bin/jq
/usr/bin/%:
	@if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's $* for the tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $*; \
	else \
		echo "The tests need Debian's $*. Run: sudo apt-get update && sudo apt-get install -y $*"; \
		exit 1; \
	fi

run: $(VENV)/.installed-run
	$(BIN)/tidings server --create-cache default-cache

# The layer check (tests/unit/test_layers.py) reads the source only: no conftest, no plugin, nothing imported.
LINT = $(BIN)/ruff check . && $(BIN)/ruff format --check . && \
	$(BIN)/python -m pytest -q -p no:cacheprovider -p no:tidings --noconftest tests/unit/test_layers.py
TYPECHECK = $(BIN)/mypy

lint: $(VENV)/.installed-test
	$(LINT)

typecheck: $(VENV)/.installed-test
	$(TYPECHECK)

# The modules that exercise the gRPC transport itself run a second time over the grpcio transport
# (TIDINGS_GRPC_TRANSPORT reaches every server the tests start): the wire protocol, auth, fault injection, the
# official Python and Node SDKs, shutdown and lifecycle, TLS and tidings' SDK client. The rest (HTTP, Redis,
# workers, drain, docs, SDK behaviour that does not depend on the server's transport) runs once, on the default
# transport, h2.
TRANSPORT_TESTS := tests/integration/test_wire_protocol.py tests/integration/test_auth.py \
	tests/integration/test_fault_injection.py tests/integration/test_official_python_sdk.py \
	tests/integration/test_official_node_sdk.py tests/integration/test_server_lifecycle.py \
	tests/integration/sdk/test_topic_client.py tests/integration/sdk/test_auth_and_tls.py \
	tests/integration/sdk/test_subscribe_burst.py

test: $(VENV)/.installed-test $(NODE_DIR)/node_modules/.package-lock.json $(SYSTEM_TOOLS)
	$(MAKE) --no-print-directory suite

# The suite on whatever $(VENV) holds: lint, types, then pytest (make test installs first).
suite:
	$(LINT)
	$(TYPECHECK)
	$(BIN)/python -m pytest -n 4 --cov --cov-report=
	TIDINGS_GRPC_TRANSPORT=grpcio $(BIN)/python -m pytest -n 4 --cov --cov-append --cov-report=term:skip-covered \
		$(TRANSPORT_TESTS)

# Not in CI: the newest releases pyproject.toml's ranges allow, in .venv-latest (uv.lock is left alone). A failure
# here is an upstream change to take on purpose: fix it, then `make lock`.
test-latest: $(NODE_DIR)/node_modules/.package-lock.json $(SYSTEM_TOOLS) | $(UV)
	$(UV) venv --quiet --allow-existing .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install --quiet --upgrade -e ".[test]"
	$(MAKE) --no-print-directory suite VENV=.venv-latest

# Each benchmark rewrites its own section of docs/performance.md (and its figure under docs/); run them on an
# otherwise idle machine.
bench: $(VENV)/.installed-bench $(REDIS_SERVER)
	$(BIN)/python bench/run.py --write docs/performance.md
	$(BIN)/python bench/auth.py --write docs/performance.md
	$(BIN)/python bench/sdk.py --write docs/performance.md
	$(BIN)/python bench/http_bench.py --write docs/performance.md
	$(BIN)/python bench/grpc_web.py --write docs/performance.md
	$(BIN)/python bench/redis_bench.py --write docs/performance.md
	$(BIN)/python bench/webhooks.py --write docs/performance.md
	$(BIN)/python bench/transports.py --write docs/performance.md
	$(BIN)/python bench/scale.py --write docs/performance.md
	$(BIN)/python bench/scale.py --machine --write docs/performance.md

# Not in `make test`: each benchmark's quick mode against the ratios docs/performance.md records (bench/check.py);
# run it on an idle machine before merging a change to a hot path.
bench-check: $(VENV)/.installed-bench $(REDIS_SERVER)
	$(BIN)/python bench/check.py

$(VENV)/.installed-bench: uv.lock | $(UV)
	$(SYNC) --extra test --extra bench
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

# Not part of `make test`: 10 minutes of mixed load, asserting flat RSS and descriptors and no gaps; writes its
# section of docs/performance.md and docs/soak.png. Then the reliability review's full-size shapes (Redis Cluster
# failovers, hostile HTTP/2 clients), asserting their bounds; writes the reliability section.
soak: $(VENV)/.installed-bench $(REDIS_SERVER)
	$(BIN)/python bench/soak.py --minutes 10 --write docs/performance.md
	$(BIN)/python bench/reliability.py --write docs/performance.md

# Momento's webhook service is not in momento-wire-types: its messages are generated from our own .proto.
protos: $(VENV)/.installed-test
	$(BIN)/python -m grpc_tools.protoc -I src/tidings/protos --python_out=src/tidings/protos \
		--pyi_out=src/tidings/protos src/tidings/protos/webhook.proto

clean:
	rm -rf $(VENV) .venv-latest .uv $(NODE_DIR)/node_modules .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
