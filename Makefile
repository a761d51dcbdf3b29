# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := tests/node
CHROMIUM := /usr/bin/chromium
REDIS_SERVER := /usr/bin/redis-server

.PHONY: run test lint typecheck bench soak clean protos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps make installs idempotent: they rerun only when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the official Node SDK tests: apt-get install -y nodejs npm"; exit 1; }
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error

# The console tests drive Debian's Chromium through Playwright (which never downloads a browser here).
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the console tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "The console tests need Debian's chromium. Run: sudo apt-get update && sudo apt-get install -y chromium"; \
		exit 1; \
	fi

# The Redis engine's tests start their own redis-server processes on free ports (Debian's redis-server package).
$(REDIS_SERVER):
	@if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's redis-server for the Redis engine tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; \
	else \
		echo "The Redis engine tests need redis-server. Run: sudo apt-get update && sudo apt-get install -y redis-server"; \
		exit 1; \
	fi

run: $(VENV)/.installed-run
	$(BIN)/tidings server --create-cache default-cache

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

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

test: $(VENV)/.installed-test $(NODE_DIR)/node_modules/.package-lock.json $(CHROMIUM) $(REDIS_SERVER) lint typecheck
	$(BIN)/python -m pytest -n 4 --cov --cov-report=
	TIDINGS_GRPC_TRANSPORT=grpcio $(BIN)/python -m pytest -n 4 --cov --cov-append --cov-report=term:skip-covered \
		$(TRANSPORT_TESTS)

# Each benchmark rewrites its own section of docs/performance.md (and its figure under docs/); run them on an
# otherwise idle machine.
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py --write docs/performance.md
	$(BIN)/python bench/auth.py --write docs/performance.md
	$(BIN)/python bench/sdk.py --write docs/performance.md
	$(BIN)/python bench/http_bench.py --write docs/performance.md
	$(BIN)/python bench/redis_bench.py --write docs/performance.md
	$(BIN)/python bench/webhooks.py --write docs/performance.md
	$(BIN)/python bench/transports.py --write docs/performance.md

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

# Not part of `make test`: 10 minutes of mixed load, asserting flat RSS and descriptors and no gaps; writes its
# section of docs/performance.md and docs/soak.png.
soak: $(VENV)/.installed-bench
	$(BIN)/python bench/soak.py --minutes 10 --write docs/performance.md

# Momento's webhook service is not in momento-wire-types: its messages are generated from our own .proto.
protos: $(VENV)/.installed-test
	$(BIN)/python -m grpc_tools.protoc -I src/tidings/protos --python_out=src/tidings/protos \
		--pyi_out=src/tidings/protos src/tidings/protos/webhook.proto

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
