"""DiscordChatExporter exports -> cleaned, segmented, split chat dataset.

Usage:
    python process_messages.py input=examples/sample_exports target=tamsin.vale
    python process_messages.py input="Direct Messages - Orrin [1118608583297251434].json" target=tamsin.vale
    python process_messages.py input=path/to/exports target=607216646228391176 reading.timezone=Europe/Berlin
    python process_messages.py input="Direct Messages - Orrin [1118608583297251434].json"   # lists the authors
    python process_messages.py input='[exports/dm,exports/server]' target=607216646228391176 cleaning=minimal
    python process_messages.py --help                       # every option, with the groups
target is the user id or the username of the person to clone (no special values); input takes file names as
DiscordChatExporter writes them, brackets and spaces included.
Writes train.jsonl, validation.jsonl, stats.json and manifest.json into a new run dir under
outputs/process_messages/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.cli import launch, run_stage
from chatclone.stages.process_messages import process_messages


@hydra.main(config_path="conf", config_name="process_messages", version_base="1.3")
def main(cfg) -> None:
    run_stage(process_messages, OmegaConf.to_object(cfg))


if __name__ == "__main__":
    launch(main, "process_messages")
