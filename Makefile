# Set-up and the two entry points of the README. Everything installs into ./.venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and on its own: pinned, it takes the CPU wheel where one is provided
# instead of a multi-GB CUDA build. Set TORCH_SPEC/PIP_TORCH_ARGS for a CUDA or CPU-index build.
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
# Test processes (pytest-xdist), each file on one worker so its module fixtures run once.
# Measured on 2 idle cores (2026-12-05, fresh clone): 361 tests in 9 min 55 s with 2 workers; earlier, one process
# took about as long as two workers (the workers' CPU contention eats what overlapping the waits on Ray saves).
# PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/sertune demo --workdir sertune-demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q --durations=15 -n $(PYTEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) sertune-demo
