"""A process_messages run -> input_ids + labels (target turns only) for train.py.

Usage:
    python tokenize_dataset.py                        # newest process_messages run, embedded SmolLM2
    python tokenize_dataset.py input=outputs/process_messages/<run> model.max_length=512
    python tokenize_dataset.py model=gpt2             # or phi3, mistral (from the local HF cache)
    python tokenize_dataset.py model.name_or_path=path/to/model "model.end_of_turn='<|eot_id|>'"
    python tokenize_dataset.py --help                 # every option, with the groups
Writes dataset/ (train, validation), tokenizer/, stats.json, length_histogram.png and manifest.json
into a new run dir under outputs/tokenize_dataset/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage
from chatclone.stages.tokenize_dataset import tokenize_dataset


@hydra.main(config_path="conf", config_name="tokenize_dataset", version_base="1.3")
def main(cfg) -> None:
    run_stage(tokenize_dataset, OmegaConf.to_object(cfg))


if __name__ == "__main__":
    launch(main, "tokenize_dataset")
