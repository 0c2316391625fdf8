# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STORE  ?= runs/quickstart

.PHONY: demo test test-fast install bench wheel cluster-local cluster-local-down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ddray run specs/quickstart.yaml --store $(STORE)
	$(BIN)/ddray report $(STORE) --out $(STORE)/report

test: $(STAMP)
	$(BIN)/python -m pytest -x -q

# Pure and engine tests, no Ray, no browser, none over ~10 s: the loop while changing code (under a minute).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -x -q -m "not ray and not browser and not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The ddray the cluster files install on every node (cluster/README.md): this checkout as
# dist/ddray-<version>-py3-none-any.whl, without its dependencies (the nodes resolve those).
wheel: $(STAMP)
	rm -f dist/ddray-*.whl
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

cluster-local: $(STAMP)
	$(BIN)/ddray cluster local up

cluster-local-down: $(STAMP)
	$(BIN)/ddray cluster local down

clean:
	rm -rf $(VENV) runs .pytest_cache
