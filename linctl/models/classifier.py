"""The BERT fine-tuning classifier (Devlin et al., arXiv:1810.04805, §4.1), any registered attention.

As the Cerebras BERT classifier describes it: the encoder's [CLS] state → dense + tanh (the pooler) →
dropout → dense to the task's labels; one output is a regression (STS-B). The body has the encoder's
parameter names, so an MLM checkpoint initialises it (the MLM head is left out, pooler and output layer
start fresh unless the checkpoint brings a pooler).
"""

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor, nn

from linctl.models.base import TokenModelConfig
from linctl.models.encoder import Encoder
from linctl.models.layers import init_bert


class ClassifierModel(Encoder):
    """Encoder, pooler and a linear output over ``num_labels`` (1: regression)."""

    heads = ("pooler.", "head.")

    class Config(TokenModelConfig):
        kind: Literal["classifier"] = "classifier"
        segment_vocab_size: NonNegativeInt = 2  # sentence pairs need 2
        num_labels: PositiveInt = 2  # 1: a regression score
        classifier_dropout: float | None = Field(None, ge=0.0, lt=1.0)  # None: the model's dropout

        def example_inputs(
            self,
            batch: int,
            length: int,
            lengths: Sequence[int] | None = None,
            generator: torch.Generator | None = None,
        ) -> dict[str, Tensor]:
            inputs = super().example_inputs(batch, length, lengths, generator)
            if self.segment_vocab_size:  # one sentence: every token in segment 0
                inputs["segment_ids"] = torch.zeros(batch, length, dtype=torch.long)
            return inputs

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg, cfg.vocab_size, cfg.segment_vocab_size)
        self.pooler = nn.Linear(cfg.d_model, cfg.d_model)
        dropout = cfg.dropout if cfg.classifier_dropout is None else cfg.classifier_dropout
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(cfg.d_model, cfg.num_labels)
        self.pooler.apply(init_bert)
        self.head.apply(init_bert)

    def classify(self, hidden: Tensor) -> Tensor:
        """Return logits (B, num_labels) from hidden states (B, T, C); position 0 holds [CLS]."""
        pooled = self.pooler(hidden[:, 0]).tanh()  # (B, C)
        return self.head(self.drop(pooled))
