# Two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create .venv when it is missing and install the package with everything it needs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hw2-installed
# The torch build to install first. On the course machines these exact versions are on local
# disk; elsewhere override it, e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install demo test test-fast test-browser bench gpu-proof clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev,slurm,grader]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m hw2.demo

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The notebooks and the drawing pad in JupyterLab in a headless Chromium (tests/test_browser*.py,
# also part of `make test`). Installs Debian's chromium when missing and it can (root, apt-get);
# without Chromium the tests skip, saying why. Screenshots and timings go to build/browser/.
test-browser: $(STAMP)
	bash .ci/system-packages.sh
	$(PY) -m pytest -q -m browser $(PYTEST_ARGS)

# Every figure the Part 2, 3 and 5 answers cite, as JSON files in results/evidence/ (CPU, one
# torch thread). `$(PY) -m evidence --check` reruns it and compares with the committed files.
.PHONY: evidence
evidence: $(STAMP)
	$(PY) -m evidence

bench: $(STAMP)
	$(PY) -m benchmarks

# One command for a GPU lease (benchmarks/gpu_proof.sh): CUDA tests, GPU timing rows and the
# Part 5 grid projection into build/gpu-proof/. It picks its own Python (the carried .venv, or a
# venv over the machine's torch) and installs nothing: a GPU machine may have no package index.
# `make gpu-proof DRY_RUN=1` runs the same steps at tiny sizes on a CPU (build/gpu-proof-dry-run/).
DRY_RUN ?= 0
gpu-proof:
	DRY_RUN=$(DRY_RUN) bash benchmarks/gpu_proof.sh

clean:
	rm -rf $(VENV) .pytest_cache demo-output
