"""Let trained clones speak in Discord through one bot account: labelled as AI, opt-in, rate-limited.

Usage:
    export DISCORD_TOKEN=<the bot's token>      # from the environment only
    python discord_bot.py clones=[outputs/train/<run>] channels=[<channel id>]
    python discord_bot.py clones=[latest] guilds=[<guild id>] dms=true backend=http://127.0.0.1:8000
    python discord_bot.py clones=[outputs/train/<run a>,outputs/train/<run b>] guilds=[<guild id>] dms=true
In a listed channel a clone answers when called by name (`tamsin, are you coming?`), replied to, mentioned
(@bot), or asked with /as; with dms=true every DM is to the bot. `!forget` or /forget starts the context afresh.
Runs until Ctrl-C; writes manifest.json (counts only) into outputs/discord_bot/<timestamp>/.
"""

import hydra
from omegaconf import OmegaConf

from chatclone.bot.credentials import refuse_token_arguments
from chatclone.cli import launch, run_stage


@hydra.main(config_path="conf", config_name="discord_bot", version_base="1.3")
def main(cfg) -> None:
    run_stage("discord_bot", OmegaConf.to_object(cfg))  # imported once its threads are set


if __name__ == "__main__":
    refuse_token_arguments()  # a token on the command line would be saved in .hydra/
    launch(main, "discord_bot")
