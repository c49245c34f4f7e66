# Two entry points, each self-contained on a fresh machine:
#   make demo   -> creates .venv, installs torch 2.13.0 (CPU) then linr, runs `linr demo`
#   make test   -> same set-up, then runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.linr-installed
TESTSTAMP := $(VENV)/.linr-test-extras

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: a bare range would let pip fetch a newer CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,plot]'
	touch $(STAMP)

# Ray for `linr batch --backend ray` and its test; where no wheel fits, that test skips and says why
$(TESTSTAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[ray]' || echo "linr: Ray could not be installed; the Ray batch test will be skipped"
	touch $(TESTSTAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/linr demo

test: $(TESTSTAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out
