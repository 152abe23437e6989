"""Config schemas, registered in Hydra's ConfigStore so a typo'd key or bad enum fails at composition.

Each primary YAML in conf/ lists `<script>_schema` first in its defaults; group options (conf/<group>/*.yaml)
are merged into the typed nodes, so they are checked too.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from chatclone.config.process_messages import ProcessMessagesConfig


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="process_messages_schema", node=ProcessMessagesConfig)


register()
