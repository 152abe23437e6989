"""Turn DiscordChatExporter exports into a cleaned, segmented, split chat dataset.

Usage:
    python process_messages.py input=examples/sample_exports target=tamsin.vale
    python process_messages.py input=path/to/exports target=607216646228391176 reading.timezone=Europe/Berlin
    python process_messages.py input=export.json            # no target: lists the top authors
    python process_messages.py --help                       # every option, with the groups
Writes train.jsonl, validation.jsonl, stats.json and manifest.json into outputs/process_messages/<timestamp>/.
"""

import hydra
from omegaconf import OmegaConf

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone.cli import run_stage
from chatclone.stages.process_messages import process_messages


@hydra.main(config_path="conf", config_name="process_messages", version_base="1.3")
def main(cfg) -> None:
    run_stage(process_messages, OmegaConf.to_object(cfg))


if __name__ == "__main__":
    chatclone.config.accept_plain_text("process_messages")  # free text needs no Hydra quoting
    main()
