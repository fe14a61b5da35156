"""What `linctl bench` measures: its options, the model presets and the attention variants they expand to."""

from pathlib import Path
from typing import Any, Literal, Self, get_args

from pydantic import ByteSize, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from linctl.attention import ATTENTION
from linctl.attention.base import AttentionConfig
from linctl.config.load import validate
from linctl.config.strict import Strict
from linctl.models.file import read_model
from linctl.runtime.device import DeviceName, Precision

Level = Literal["attention", "model"]
Mode = Literal["inference", "train"]

# Model sizes by name; the paper's Table 3 and the Cerebras Linformer configs are `base`.
PRESETS: dict[str, dict[str, Any]] = {
    "base": {"kind": "encoder", "d_model": 768, "n_heads": 12, "n_layers": 12, "d_ff": 3072},
    "large": {"kind": "encoder", "d_model": 1024, "n_heads": 16, "n_layers": 24, "d_ff": 4096},
    "small": {"kind": "encoder", "d_model": 256, "n_heads": 4, "n_layers": 4, "d_ff": 1024},
    # crybot/linformer's WMT14 models (Transformer-base): the encoder-decoder, fed sources and targets
    # of n tokens each, and its encoder alone; the attention swept is the encoder's.
    "seq2seq": {"kind": "seq2seq", "d_model": 512, "n_heads": 8, "n_layers": 6, "d_ff": 2048},
    "seq2seq-encoder": {
        "kind": "seq2seq",
        "d_model": 512,
        "n_heads": 8,
        "n_layers": 6,
        "d_ff": 2048,
        "decoder_layers": 0,
    },
}
# The Funnel-Transformer README's encoders (fine-tuning: the encoder alone), H768; with --level model only
# the attention kinds that take their relative-position scores (softmax) run.
FUNNEL = {"kind": "funnel-classifier", "d_model": 768, "n_heads": 12, "d_ff": 3072}
PRESETS |= {
    f"funnel-b{name}": FUNNEL | {"block_sizes": name.replace("-", "_")}
    for name in ("6-6-6", "6-3x2-3x2", "4-4-4")
}
BERT_VOCAB = 30522  # token ids drawn for model-level cases: BERT's uncased WordPiece vocabulary
ROUNDS = 5  # rounds by default when several cases are compared


class BenchOptions(Strict):
    """Every option of `linctl bench`; lists arrive from the command line as ``512,1024``."""

    level: Level = "attention"
    mode: Mode = "inference"
    seq_len: list[PositiveInt] = Field(default_factory=lambda: [512], min_length=1)
    k: list[PositiveInt] = Field(default_factory=lambda: [128, 256], min_length=1)
    sharing: str = "layerwise"
    attention: list[str] = Field(default_factory=list)  # kinds or labels to keep; empty: all
    preset: str = "base"
    # YAMLs with a `model:` section (run configs) instead of the preset; several: one variant each
    config: list[Path] = Field(default_factory=list)
    overrides: list[str] = Field(default_factory=list)  # `--set a.b=c` applied to those YAMLs
    batch_size: PositiveInt | None = None  # default 1
    max_batch: bool = False
    memory_budget: ByteSize | None = None
    precision: Precision = "fp32"
    device: DeviceName = "auto"
    warmup: int = Field(1, ge=0)
    repeats: PositiveInt = 5  # timed runs per case (per round, with rounds)
    rounds: PositiveInt | None = None  # None: ROUNDS when several cases are compared, else 1
    threads: PositiveInt | None = None  # CPU threads per case; None: the idle cores (see run.threads_for)
    timeout: PositiveFloat = 600.0  # seconds per case, building and warm-up included
    peers: bool = False
    padded: bool = False
    paper: bool = False
    seed: int = 0

    @field_validator("seq_len", "k", "attention", "config", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; choose one of {', '.join(PRESETS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_batch and self.batch_size is not None:
            raise ValueError("give --batch-size or --max-batch, not both")
        if self.max_batch and (self.rounds or 1) > 1:
            raise ValueError(
                "--rounds keeps every case of a length in memory at once, which --max-batch cannot allow "
                "(each case holds its largest batch); drop --rounds"
            )
        if self.memory_budget is not None and not self.max_batch:
            raise ValueError("--memory-budget bounds the --max-batch search; add --max-batch")
        missing = [str(path) for path in self.config if not path.is_file()]
        if missing:
            raise ValueError(f"model config {', '.join(missing)} does not exist")
        if len(self.config) > 1 and self.level != "model":
            raise ValueError("several --config files compare whole models: add --level model")
        if self.overrides and not self.config:
            raise ValueError("--set changes keys of the --config file; add --config")
        return self

    def rounds_in_force(self, cases: int) -> int:
        """The rounds to time ``cases`` cases of one length in: as asked, else ROUNDS when there are
        several to compare (not with --max-batch), else 1."""
        if self.rounds is not None:
            return self.rounds
        return ROUNDS if cases > 1 and not self.max_batch else 1


class Variant(Strict):
    """One configuration under test, with the label it has in tables: an attention config on the
    common model sizes, or (comparing several model configs) a whole model's fields."""

    label: str
    attention: dict[str, Any]
    model: dict[str, Any] | None = None  # None: the sizes every variant shares

    @property
    def kind(self) -> str:
        return str(self.attention["kind"])


def sharing_modes() -> list[str]:
    """Return the values of ``--sharing``: those of every registered kind that has a ``sharing`` field."""
    modes: list[str] = []
    for cls in ATTENTION.classes.values():
        field = cls.Config.model_fields.get("sharing")
        if field is not None:
            modes += [mode for mode in get_args(field.annotation) if mode not in modes]
    return modes


def label_of(attention: AttentionConfig) -> str:
    """Name an attention config by its kind and the fields its variant adds, e.g. ``linformer k=128 …``."""
    fields = type(attention).model_fields
    extra = [
        name
        for name in fields
        if name not in AttentionConfig.model_fields
        and (name not in attention.quiet or getattr(attention, name) != fields[name].default)
    ]
    return " ".join([attention.kind, *(f"{name}={getattr(attention, name)}" for name in extra)])


def variants(opts: BenchOptions, model_attention: dict[str, Any] | None) -> list[Variant]:
    """Return the attention variants to measure.

    Every registered kind appears once per combination of the values of the fields its config declares
    ``swept``: a field named like a bench option takes the option's values (``--k 128,256``, ``--sharing``),
    any other ``Literal`` field each of its choices (softmax: sdpa and the eager baseline the Linformer
    paper timed). A model config's own attention joins the baseline kinds instead of the sweep.
    ``--attention`` keeps only the named kinds or labels.
    """
    specs: list[dict[str, Any]] = []
    for kind in ATTENTION.kinds():
        config = ATTENTION.classes[kind].Config
        if model_attention is not None and not config.baselines:
            continue
        specs += [{"kind": kind, **values} for values in _sweep(config, opts)]
    if model_attention is not None and not ATTENTION.classes[model_attention["kind"]].Config.baselines:
        specs.append(model_attention)
    out = []
    for spec in specs:
        cfg = validate(ATTENTION.classes[spec["kind"]].Config, spec, "attention")
        variant = Variant(label=label_of(cfg), attention=cfg.model_dump())
        if not opts.attention or variant.kind in opts.attention or variant.label in opts.attention:
            out.append(variant)
    return out


def _sweep(config: type[AttentionConfig], opts: BenchOptions) -> list[dict[str, Any]]:
    """Return every combination of the values of ``config``'s swept fields."""
    combinations: list[dict[str, Any]] = [{}]
    for name in config.swept:
        if name in BenchOptions.model_fields:
            chosen = getattr(opts, name)
            values = chosen if isinstance(chosen, list) else [chosen]
        else:
            values = list(get_args(config.model_fields[name].annotation))
        combinations = [{**done, name: value} for done in combinations for value in values]
    return combinations


def model_dims(opts: BenchOptions) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Return the model fields (without attention) and the model config's own attention, if any."""
    if not opts.config:
        return {**PRESETS[opts.preset], "vocab_size": BERT_VOCAB}, None
    return _model_of(opts.config[0], opts.overrides)


def config_variants(opts: BenchOptions) -> list[Variant]:
    """Return one variant per model config, labelled by its file name (the efficiency test of
    several whole models: Transformer against Primal.+Trans., whose attention differs by layer)."""
    out = []
    for path in opts.config:
        model, attention = _model_of(path, opts.overrides)
        out.append(Variant(label=path.stem, attention=attention, model=model))
    return out


def _model_of(path: Path, overrides: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = read_model(path, overrides).model_dump()
    attention = model.pop("attention")
    model.pop("max_seq_length")  # every case sets its own sequence length
    return model, attention
