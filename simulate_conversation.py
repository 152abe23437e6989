"""A group chat in which you play one participant and the model plays everyone else, the target included.

Usage:
    python simulate_conversation.py                              # you are the target's usual partner
    python simulate_conversation.py play=target speakers=[Orrin,Pippa]   # you are the target
    printf 'hey\nsaturday?\n' | python simulate_conversation.py  # scripted: one of your turns a line
Commands while playing: /skip (the model takes your turn), /reset, /quit. Writes conversation.jsonl,
conversation.txt, generations.jsonl and manifest.json into outputs/simulate_conversation/<timestamp>/.
"""

import hydra
from omegaconf import OmegaConf

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone.cli import run_stage


@hydra.main(config_path="conf", config_name="simulate_conversation", version_base="1.3")
def main(cfg) -> None:
    run_stage("simulate_conversation", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    chatclone.config.accept_plain_text("simulate_conversation")  # free text needs no Hydra quoting
    main()
