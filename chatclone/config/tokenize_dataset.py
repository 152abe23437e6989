"""Schema of tokenize_dataset.py's config. Defaults and the reasons for them live in conf/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatclone.config.model import ModelConfig
from chatclone.errors import ChatcloneError


@dataclass
class FormattingConfig:
    system_prompt: str = "You are {target}. Reply exactly the way {target} texts."
    target_name: Optional[str] = None  # null: the name the target has on most of their turns
    speaker_names: bool = True  # user turns read "Pippa: text"
    merge_separator: str = "\n"  # joins same-role turns merged for alternating-role templates


@dataclass
class TokenizeDatasetConfig:
    input: str = "latest"
    outputs_root: str = "outputs"
    progress: bool = True
    num_proc: int = 2
    batch_size: int = 256
    model: ModelConfig = field(default_factory=ModelConfig)
    formatting: FormattingConfig = field(default_factory=FormattingConfig)

    def check(self) -> None:
        """Value checks the schema's types cannot express; errors name the override to fix."""
        self.model.check()
        if self.num_proc < 1:
            raise ChatcloneError(f"num_proc={self.num_proc}: must be at least 1")
        if self.batch_size < 1:
            raise ChatcloneError(f"batch_size={self.batch_size}: must be at least 1")
        if not self.input:
            raise ChatcloneError("input is empty: use `latest` or a process_messages run dir")
        try:
            self.formatting.system_prompt.format(target="x")
        except (KeyError, IndexError, ValueError) as error:
            raise ChatcloneError(
                f"formatting.system_prompt={self.formatting.system_prompt!r}: only {{target}} "
                f"may appear in braces (write {{{{ }}}} for a literal brace): {error!r}"
            ) from None
