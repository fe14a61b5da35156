"""BERT-style encoder with a masked-LM head (Devlin et al., arXiv:1810.04805), any registered attention.

With ``segment_vocab_size: 0`` and Linformer attention it is the Cerebras Linformer (RoBERTa-style:
learned positions, no segment embedding, the MLM head's output layer tied to the token embeddings).
"""

from typing import Literal

import torch
from pydantic import NonNegativeInt
from torch import Tensor, nn

from linctl.errors import InputError
from linctl.models.base import Model, ModelConfig, ModelOutput, TokenModelConfig
from linctl.models.layers import Embeddings, build_stage, init_bert, run_stage


class MlmHead(nn.Module):
    """Dense + GELU + layer norm, then logits over the vocabulary with the token embedding matrix."""

    def __init__(self, d_model: int, eps: float, embedding: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.decoder = nn.Linear(d_model, embedding.num_embeddings)
        self.decoder.weight = embedding.weight  # tied input and output embeddings

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.norm(nn.functional.gelu(self.dense(x))))


class Encoder(Model):
    """Embeddings and ``n_layers`` bidirectional blocks: the body every encoder-based model shares.

    Subclasses add their heads; the body's parameter names (``embeddings.*``, ``blocks.*``) stay the same
    in every one, so one model's checkpoint initialises another's body.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, segment_vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = Embeddings(
            vocab_size, cfg.d_model, cfg.max_seq_length, segment_vocab_size, cfg.layer_norm_eps, cfg.dropout
        )
        self.blocks = build_stage(cfg, cfg.n_layers, cfg.max_seq_length)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cfg.norm_first else None
        self.apply(init_bert)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, segment_ids: Tensor | None = None
    ) -> ModelOutput:
        """Return hidden states (B, T, C) of (B, T) token ids; ``attention_mask`` is True at real tokens."""
        if input_ids.size(1) > self.cfg.max_seq_length:
            raise InputError(
                f"a sequence of {input_ids.size(1)} tokens is longer than model.max_seq_length "
                f"({self.cfg.max_seq_length}); cut inputs to at most {self.cfg.max_seq_length} tokens"
            )
        x, aux = run_stage(self.blocks, self.embeddings(input_ids, segment_ids), attention_mask)
        return ModelOutput(x if self.final_norm is None else self.final_norm(x), aux)


class EncoderModel(Encoder):
    """The encoder with an MLM head."""

    heads = ("mlm.",)

    class Config(TokenModelConfig):
        kind: Literal["encoder"] = "encoder"
        segment_vocab_size: NonNegativeInt = 2  # 0: no segment embedding (RoBERTa, Cerebras Linformer)

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg, cfg.vocab_size, cfg.segment_vocab_size)
        self.mlm = MlmHead(cfg.d_model, cfg.layer_norm_eps, self.embeddings.tokens)
        self.mlm.apply(init_bert)

    def mlm_logits(self, hidden: Tensor, positions: Tensor) -> Tensor:
        """Return vocabulary logits (B, P, V) at ``positions`` (B, P) of ``hidden`` (B, T, C)."""
        picked = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.size(-1)))  # (B, P, C)
        return self.mlm(picked)
