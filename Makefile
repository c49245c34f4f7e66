# Two entry points, each self-contained on a fresh machine:
#   make demo   -> creates .venv, installs torch 2.13.0 (CPU) then linr, runs `linr demo`
#   make test   -> same set-up, then runs the test suite
# Where pip would fetch torch's large CUDA build (Linux, public PyPI) and no GPU is wanted:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON ?= python3
TORCH_INDEX ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.linr-installed
TESTSTAMP := $(VENV)/.linr-test-extras

.PHONY: demo test setup clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "linr: needs Python 3.10 or newer as '$(PYTHON)' (found: $$($(PYTHON) --version 2>&1)); pass PYTHON=python3.X"; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "linr: '$(PYTHON) -m venv' does not work here: install the venv package (Debian/Ubuntu: sudo apt install python3-venv, or $$($(PYTHON) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])') for this Python), then run make again"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: a bare range would let pip fetch a newer CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e '.[test,plot]'
	touch $(STAMP)

# Ray for `linr batch --backend ray` and its test; Gradio and Selenium for the `linr app` browser
# test (which also needs Chromium and chromedriver from the system: Debian `apt-get install
# chromium chromium-driver`); astropy as the reference for the FITS tests; where one cannot be
# installed, its test skips and says why
$(TESTSTAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[ray]' || echo "linr: Ray could not be installed; the Ray batch test will be skipped"
	$(BIN)/python -m pip install -q -e '.[app]' selenium || echo "linr: Gradio or Selenium could not be installed; the app's browser test will be skipped"
	$(BIN)/python -m pip install -q astropy || echo "linr: astropy could not be installed; the FITS tests against it will be skipped"
	touch $(TESTSTAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/linr demo --force

# the suite on a worker process per logical CPU (pytest-xdist), at most 4: about half the time on
# two cores (BENCHMARKS.md, 'the test suite's time'); TEST_WORKERS=1 runs it in one process
TEST_WORKERS ?= logical

test: $(TESTSTAMP)
	$(BIN)/python -m pytest -q $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxprocesses 4)

clean:
	rm -rf $(VENV) out
