"""The model contract every family implements once: its config, random example inputs, a forward that
returns an output record, and heads as typed capabilities that tasks ask for.

Tools (train, eval, validate, compile, bench) use only this contract: they build a model from its
config through ``MODELS``, make inputs with ``cfg.example_inputs``, call ``model(**inputs)`` and read
the ``ModelOutput``; a task checks the capability it needs (``MaskedLM``, ``Classifier``).
"""

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple, Protocol, Self, runtime_checkable

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import Tensor, nn

from linctl.attention import ATTENTION, AttentionSpec
from linctl.attention.softmax import SoftmaxAttention
from linctl.config.strict import Strict


class ModelOutput(NamedTuple):
    """What a model's forward returns."""

    hidden: Tensor  # (B, T, C) the last layer's states (a funnel encoder's: fewer, pooled, than T)
    aux_loss: Tensor  # () the sum of its layers' auxiliary losses (summed-loss scale); zero when none
    logits: Tensor | None = None  # (B, T, V) for a family whose head is part of its forward

    @property
    def primary(self) -> Tensor:
        """The tensor tools take as the result (a package serves it): the logits, else the states."""
        return self.hidden if self.logits is None else self.logits


class ModelConfig(Strict):
    """Sizes every Transformer has. Keys an attention kind claims at this level (``model_level_keys``:
    Linformer's ``attention_style`` and ``projected_dims``, as in the model zoo's configs) select it."""

    kind: str
    d_model: PositiveInt = 768
    n_heads: PositiveInt = 12
    n_layers: PositiveInt = 12
    d_ff: PositiveInt = 3072
    max_seq_length: PositiveInt = 512
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    layer_norm_eps: float = Field(1e-5, gt=0.0)
    norm_first: bool = False  # pre-LN blocks; False is BERT's post-LN
    attention: AttentionSpec = Field(default_factory=SoftmaxAttention.Config)

    @model_validator(mode="before")
    @classmethod
    def _attention_keys_at_model_level(cls, data: Any) -> Any:
        """Move keys an attention kind claims at this level (the Cerebras names) into ``attention``."""
        if not isinstance(data, dict):
            return data
        for kind in ATTENTION.kinds():
            claimed = [key for key in ATTENTION.classes[kind].Config.model_level_keys if key in data]
            if claimed:
                data = dict(data)
                attention = dict(data.get("attention") or {})
                attention.setdefault("kind", kind)
                attention.update({key: data.pop(key) for key in claimed})
                data["attention"] = attention
        return data

    @model_validator(mode="after")
    def _sizes_fit(self) -> Self:
        problems = []
        if self.d_model % self.n_heads:
            problems.append(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}); "
                f"head size would be {self.d_model / self.n_heads:g}"
            )
        try:
            self.attention.check_length(self.max_seq_length)
        except ValueError as exc:
            problems.append(f"attention: {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @abstractmethod
    def example_inputs(
        self,
        batch: int,
        length: int,
        lengths: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Return random keyword inputs of ``batch`` sequences padded to ``length`` (on the CPU).

        ``lengths`` gives each sequence's real length (then a padding mask comes with the inputs);
        None means every sequence is full and no mask is needed. Every tool that runs a model without
        data (validate, compile, bench) takes its inputs from here.
        """


class Model(nn.Module):
    """Base of every family: a nested ``Config`` (registered on its ``kind``) and ``forward(**inputs)``
    returning a ``ModelOutput``."""

    Config: ClassVar[type[ModelConfig]]
    heads: ClassVar[tuple[str, ...]] = ()  # parameter prefixes of heads a warm start may leave fresh


class TokenModelConfig(ModelConfig):
    """A model whose inputs are (B, T) ids of a vocabulary (every family so far)."""

    vocab_size: PositiveInt

    def example_inputs(
        self,
        batch: int,
        length: int,
        lengths: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Random ``input_ids`` (B, T); with ``lengths``, ``attention_mask`` (B, T), True at real tokens."""
        inputs = {"input_ids": torch.randint(0, self.vocab_size, (batch, length), generator=generator)}
        if lengths is not None:
            if len(lengths) != batch or not all(1 <= n <= length for n in lengths):
                raise ValueError(f"lengths {list(lengths)} must be {batch} values in [1, {length}]")
            inputs["attention_mask"] = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
        return inputs


@runtime_checkable
class MaskedLM(Protocol):
    """A model with a masked-LM head."""

    def mlm_logits(self, hidden: Tensor, positions: Tensor) -> Tensor:
        """Return vocabulary logits (B, P, V) at ``positions`` (B, P) of ``hidden`` (B, T, C)."""
        ...


@runtime_checkable
class Classifier(Protocol):
    """A model with a sequence classification (or regression) head."""

    def classify(self, hidden: Tensor) -> Tensor:
        """Return (B, num_labels) outputs from hidden states (B, T, C)."""
        ...


@runtime_checkable
class ReplacedTokenDetector(Protocol):
    """A model pretrained as ELECTRA's discriminator, with the small generator that corrupts its input."""

    def generator_logits(
        self, input_ids: Tensor, attention_mask: Tensor | None, segment_ids: Tensor | None, positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return the generator's vocabulary logits (B, P, V) at ``positions`` (B, P) of the masked
        input (B, T), and its auxiliary loss."""
        ...

    def replaced_logits(self, hidden: Tensor) -> Tensor:
        """Return per-token logits (B, T) that the token was replaced, from the states (B, T, C)."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """A causal model whose forward returns next-token ``logits`` and that can decode incrementally."""

    def new_cache(self) -> Any:
        """Return an empty decoding cache, passed to ``forward(cache=…)``."""
        ...


@runtime_checkable
class Translator(Protocol):
    """An encoder-decoder: encode a source once, then decode target tokens over its states."""

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> ModelOutput:
        """Return the encoder's states (B, S, C) of source ids (B, S)."""
        ...

    def decode(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        cache: Any = None,
    ) -> ModelOutput:
        """Return next-token ``logits`` (B, T, V) of target ids (B, T) over encoder states (B, S, C)."""
        ...

    def new_cache(self) -> Any:
        """Return an empty decoding cache, passed to ``decode(cache=…)``."""
        ...
