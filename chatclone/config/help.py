"""`--help` of every script, in one place: the script's own docstring (its usage text: one source for the reader of
the file and for `--help`), then only the groups in the script's defaults, with their options, then the config.

Hydra's default help lists every folder under conf/ as a group of every script. `HELP` is registered as the
`hydra/help: chatclone` option, which conf/hydra/chatclone.yaml selects for every script.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from chatclone.config.commandline import CONF

HELP = {
    "app_name": "${hydra.job.name}.py",
    "header": "${hydra.help.app_name}: ${script_usage:${hydra.job.name}}\n",
    "footer": "Use --hydra-help for Hydra's own flags (multirun -m, --cfg job, ...).\n",
    "template": "${hydra.help.header}\n== Configuration groups (group=option) ==\n"
    "${config_groups:${hydra.runtime.choices}}\n\n"
    "== Config (override any key: key.sub=value) ==\n$CONFIG\n${hydra.help.footer}",
}


def script_usage(script: str) -> str:
    """The docstring of `script`.py: the running script when it is the one, else the one beside conf/."""
    main = Path(getattr(sys.modules.get("__main__"), "__file__", None) or "")
    path = main if main.stem == script and main.suffix == ".py" else CONF.parent / f"{script}.py"
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def config_groups(choices: dict) -> str:
    """`group: option, option` for each group in a script's defaults (Hydra's own `hydra/...` left out)."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    return "\n".join(
        f"{group}: {', '.join(loader.get_group_options(group))}   (now: {choice or 'none'})"
        for group, choice in sorted(choices.items())
        if not group.startswith("hydra/")
    )
