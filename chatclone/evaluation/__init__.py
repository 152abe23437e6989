"""Clone fidelity: how much a fine-tuned clone sounds like its target, measured on the held-out validation split.

- `settings`: the `eval` section (evaluate_clone.py and train.py's `eval.fidelity=true`); imports nothing heavy;
- `data`: the validation sequences, contexts and held-out texts, checked before any model loads;
- `passes`: per model, the perplexity pass and the generation pass (through chatclone.generation);
- `progress`: the generation pass's bar (replies done / total, time left) and its plain lines in the run's log;
- `fidelity`: both models scored with the chatclone.metrics modules, metrics assembled;
- `report`: metrics.json, samples.jsonl, report.md, plots, W&B; `sweep`: one row per job of a sweep;
- `training`: the same scoring at the end of train.py.
- `side_by_side`: inference.py mode=compare: the base model's and the clone's replies to the same messages,
  and both held-out perplexities.

Nothing is imported here: chatclone.config.train imports `settings`, and the rest imports the config package.
"""
