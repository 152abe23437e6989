"""Tokenize a process_messages run for one model: chat template, labels only on the target's turns.

Usage:
    python tokenize_dataset.py                              # newest process_messages run, embedded SmolLM2
    python tokenize_dataset.py input=outputs/process_messages/<run> model=gpt2
    python tokenize_dataset.py --help                       # every option, with the groups
Writes dataset/, tokenizer/, stats.json, length_histogram.png and manifest.json into
outputs/tokenize_dataset/<timestamp>/.
"""

import hydra
from omegaconf import OmegaConf

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone.cli import run_stage
from chatclone.stages.tokenize_dataset import tokenize_dataset


@hydra.main(config_path="conf", config_name="tokenize_dataset", version_base="1.3")
def main(cfg) -> None:
    run_stage(tokenize_dataset, OmegaConf.to_object(cfg))


if __name__ == "__main__":
    chatclone.config.accept_plain_text("tokenize_dataset")  # free text needs no Hydra quoting
    main()
