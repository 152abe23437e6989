"""Schema of train.py's config. Defaults and the reasons for them live in conf/train.yaml and its groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from chatclone.config.fidelity import TrainEvalConfig
from chatclone.config.model import ModelConfig
from chatclone.config.threads import ThreadsConfig
from chatclone.config.wandb_config import WandbConfig
from chatclone.errors import ChatcloneError


class Method(str, Enum):
    lora = "lora"
    qlora = "qlora"
    full = "full"


class Strategy(str, Enum):
    no = "no"
    epoch = "epoch"
    steps = "steps"


# The lr schedulers transformers runs without scheduler arguments (this config has none to give them):
# cosine_with_min_lr, cosine_warmup_with_min_lr and warmup_stable_decay need some; greedy's default min_lr (1e-3)
# is above the methods' learning rates.
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
)
DTYPES = ("float32", "bfloat16", "float16")
QUANT_TYPES = ("nf4", "fp4")


@dataclass
class MethodConfig:
    name: Method = Method.lora
    learning_rate: float = 1e-3  # lora's usual rate (qlora 2e-4, full 2e-5); trainer.learning_rate overrides it
    r: Optional[int] = 16  # lora, qlora (null with method=full)
    alpha: Optional[int] = 32  # lora, qlora (null with method=full)
    dropout: float = 0.05
    fast_dropout: bool = True  # dropout masks from cheaper random draws on a CPU
    target_modules: Optional[list[str]] = None  # null = model.lora_target_modules
    quant_type: Optional[str] = None  # qlora: 4-bit NF4 base weights (null with lora and full)
    double_quant: Optional[bool] = None  # qlora: quantise the quantisation constants too
    compute_dtype: Optional[str] = None  # qlora: dtype of the matmuls on dequantised weights

    def check_applies(self) -> None:
        """A key that does not apply to the method is refused: its value would be silently ignored."""
        adapter = ("r", "alpha", "target_modules") if self.name is Method.full else ()
        quantized = ("quant_type", "double_quant", "compute_dtype") if self.name is not Method.qlora else ()
        for key in (*adapter, *quantized):
            if getattr(self, key) is not None:
                what = (
                    "a LoRA setting; method=full trains every weight, without an adapter"
                    if key in adapter
                    else f"a QLoRA setting (the 4-bit base); method={self.name.value} loads the base unquantized"
                )
                raise ChatcloneError(
                    f"method.{key}={getattr(self, key)}: {what} (leave it out, or pick the method it belongs to)"
                )


@dataclass
class TrainerConfig:
    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: Optional[float] = None  # null = method.learning_rate
    batch_size: int = 4
    eval_batch_size: int = 4
    gradient_accumulation_steps: int = 2
    gradient_checkpointing: bool = False
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler: str = "cosine"
    group_by_length: bool = True
    labelled_logits: bool = True
    other_turns_weight: float = 0.0  # loss weight of tokens outside the target's turns (train split only)
    logging_steps: int = 5
    curve_points: int = 10  # short runs log more often (see sizing.schedule); 0 = as given
    min_steps: int = 10  # epochs grow on tiny datasets up to this many steps; 0 = as given
    eval_strategy: Strategy = Strategy.no
    eval_steps: int = 50
    save_strategy: Strategy = Strategy.steps
    save_steps: int = 100
    save_total_limit: Optional[int] = 2  # null = keep every checkpoint
    early_stopping_patience: Optional[int] = None
    load_best_model_at_end: bool = False
    seed: int = 42
    num_workers: int = 0


@dataclass
class ExportConfig:
    merge: bool = False
    merged_dtype: str = "bfloat16"


@dataclass
class TrainConfig(ThreadsConfig):
    input: str = "latest"
    outputs_root: str = "outputs"
    resume: Optional[str] = None
    preset: str = "default"
    min_target_turns: int = 300  # fewer trained target turns than this: warn (too few for a style)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    eval: TrainEvalConfig = field(default_factory=TrainEvalConfig)

    @property
    def learning_rate(self) -> float:
        return self.trainer.learning_rate if self.trainer.learning_rate is not None else self.method.learning_rate

    def check(self) -> None:
        """Value checks the schema's types cannot express; errors name the override to fix."""
        self.check_threads()
        self.model.check()
        self.method.check_applies()
        if self.eval.fidelity:
            self.eval.check()
        t = self.trainer
        checks = [
            (self.learning_rate > 0, "trainer.learning_rate", "must be > 0"),
            (t.epochs > 0 or t.max_steps > 0, "trainer.epochs", "must be > 0 (or set trainer.max_steps)"),
            (t.batch_size >= 1, "trainer.batch_size", "must be at least 1"),
            (t.gradient_accumulation_steps >= 1, "trainer.gradient_accumulation_steps", "must be at least 1"),
            (self.method.r is None or self.method.r >= 1, "method.r", "must be at least 1"),
            (
                0 <= t.other_turns_weight <= 1,
                "trainer.other_turns_weight",
                f"must be in [0, 1], not {t.other_turns_weight} (0 = the target's turns only, 1 = every token alike)",
            ),
            (
                t.other_turns_weight == 0 or t.labelled_logits,
                "trainer.other_turns_weight",
                "needs trainer.labelled_logits=true (the weighted loss is computed on the labelled logits)",
            ),
            (0 <= self.method.dropout < 1, "method.dropout", "must be in [0, 1)"),
            (
                t.early_stopping_patience is None or t.eval_strategy is not Strategy.no,
                "trainer.early_stopping_patience",
                "needs trainer.eval_strategy=epoch or steps",
            ),
            (
                not t.load_best_model_at_end or t.eval_strategy is not Strategy.no,
                "trainer.load_best_model_at_end",
                "needs trainer.eval_strategy=epoch or steps",
            ),
            (
                not t.load_best_model_at_end or t.save_strategy is t.eval_strategy,
                "trainer.save_strategy",
                "must equal trainer.eval_strategy with load_best_model_at_end (the best model is a saved checkpoint)",
            ),
            (
                not (self.export.merge and self.method.name is Method.full),
                "export.merge",
                "applies to lora/qlora adapters (a full fine-tune is already a whole model)",
            ),
        ] + self._late_failure_checks()
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}: {why}")
        self._check_sizes_and_saves()

    def _check_sizes_and_saves(self) -> None:
        """The small-data and checkpoint keys: what a tiny dataset adapts, and what bounds the disk."""
        t = self.trainer
        checks = [
            (t.curve_points >= 0, "trainer.curve_points", "must be >= 0 (0 = logging_steps as given)"),
            (t.min_steps >= 0, "trainer.min_steps", "must be >= 0 (0 = epochs as given)"),
            (self.min_target_turns >= 0, "min_target_turns", "must be >= 0 (0 = never warn)"),
            (self.eval.sample_contexts >= 0, "eval.sample_contexts", "must be >= 0 (0 = no samples while training)"),
            (
                t.save_total_limit is None or t.save_total_limit >= 1,
                "trainer.save_total_limit",
                "must be at least 1 (or null = keep every checkpoint)",
            ),
            (
                not t.load_best_model_at_end or t.save_total_limit is None or t.save_total_limit >= 2,
                "trainer.save_total_limit",
                "must be at least 2 with load_best_model_at_end (the best checkpoint "
                "and the newest, which final/ is copied from)",
            ),
            (
                not (t.load_best_model_at_end and t.save_strategy is Strategy.steps)
                or t.save_steps % t.eval_steps == 0,
                "trainer.save_steps",
                "must be a multiple of trainer.eval_steps with load_best_model_at_end (the best "
                "model is a saved checkpoint)",
            ),
        ]
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}: {why}")

    def _late_failure_checks(self) -> list[tuple[bool, str, str]]:
        """Values that transformers, torch or numpy would reject only once the data and the model are loaded."""
        t, m, merged = self.trainer, self.method, self.export.merged_dtype
        return [
            (t.eval_batch_size >= 1, "trainer.eval_batch_size", "must be at least 1"),
            (
                t.lr_scheduler in SCHEDULERS,
                "trainer.lr_scheduler",
                f"is {t.lr_scheduler!r}; use one of {', '.join(SCHEDULERS)}",
            ),
            (
                t.lr_scheduler != "reduce_lr_on_plateau" or t.eval_strategy is not Strategy.no,
                "trainer.lr_scheduler",
                "reduce_lr_on_plateau needs trainer.eval_strategy=epoch or steps (it steps on the validation loss)",
            ),
            # transformers reads a warmup below 1 as a fraction of the steps, from 1 up as a number of steps
            (
                0 <= t.warmup_ratio < 1,
                "trainer.warmup_ratio",
                f"is {t.warmup_ratio}; must be in [0, 1) (a fraction of the training steps)",
            ),
            (t.weight_decay >= 0, "trainer.weight_decay", "must be >= 0"),
            (t.logging_steps >= 1, "trainer.logging_steps", "must be at least 1 (log every N optimizer steps)"),
            (t.eval_steps >= 1, "trainer.eval_steps", "must be at least 1"),
            (t.save_steps >= 1, "trainer.save_steps", "must be at least 1"),
            (
                t.early_stopping_patience is None or t.early_stopping_patience >= 1,
                "trainer.early_stopping_patience",
                "must be at least 1 (null = no early stopping)",
            ),
            (0 <= t.seed < 2**32, "trainer.seed", "must be in [0, 2**32)"),
            (t.num_workers >= 0, "trainer.num_workers", "must be >= 0"),
            (m.alpha is None or m.alpha > 0, "method.alpha", "must be > 0"),
            (
                m.name is not Method.qlora or m.compute_dtype in DTYPES,
                "method.compute_dtype",
                f"is {m.compute_dtype!r}; use one of {', '.join(DTYPES)}",
            ),
            (
                m.name is not Method.qlora or m.quant_type in QUANT_TYPES,
                "method.quant_type",
                f"is {m.quant_type!r}; use one of {', '.join(QUANT_TYPES)}",
            ),
            (
                m.name is not Method.qlora or m.double_quant is not None,
                "method.double_quant",
                "must be true or false with method=qlora",
            ),
            (m.name is Method.full or m.r is not None, "method.r", f"must be set with method={m.name.value}"),
            (m.name is Method.full or m.alpha is not None, "method.alpha", f"must be set with method={m.name.value}"),
            (
                merged in (*DTYPES, "auto"),
                "export.merged_dtype",
                f"is {merged!r}; use one of {', '.join(DTYPES)}, auto",
            ),
        ]
