"""The encoder-decoder Transformer (Vaswani et al., arXiv:1706.03762) with any registered encoder
self-attention: the setting of the Linformer paper's WMT14 En-De comparison (crybot/linformer trains the
vanilla and the Linformer encoder side by side).

The encoder's self-attention is ``attention`` (softmax, or Linformer with any sharing); the decoder's
self-attention is causal softmax, and its cross-attention over the encoder's states is
``cross_attention`` (softmax, or Linformer projections of the encoder's states along their length).
Sinusoidal positions, token embeddings scaled by √d_model (fairseq's transformer), ReLU feed-forward;
post-LN as the paper, or pre-LN with ``norm_first``. Source and target share one token embedding
(a joint vocabulary) unless ``share_embeddings: false``; the output projection is the decoder's token
embedding unless ``tie_output: false``.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import torch
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from torch import Tensor, nn

from linctl.attention import AttentionSpec
from linctl.attention.base import KVCache
from linctl.attention.softmax import SoftmaxAttention
from linctl.errors import InputError
from linctl.models.base import Model, ModelOutput, TokenModelConfig
from linctl.models.decoder import sinusoids
from linctl.models.layers import Activation, build_stage, run_stage


@dataclass
class Seq2SeqCache:
    """The decoder's self-attention caches, its cross-attention caches and how many positions it decoded."""

    layers: list[Any]
    memory_layers: list[KVCache]
    length: int = field(default=0)

    def select(self, rows: Tensor) -> None:
        """Keep the hypotheses ``rows`` (B',) of every cache, in that order (beam search)."""
        for cache in (*self.layers, *self.memory_layers):
            cache.select(rows)


class Seq2SeqModel(Model):
    """Encoder, decoder with cross-attention, and logits over the (joint) vocabulary."""

    class Config(TokenModelConfig):
        kind: Literal["seq2seq"] = "seq2seq"
        d_model: PositiveInt = 512
        n_heads: PositiveInt = 8
        n_layers: PositiveInt = 6  # encoder layers
        decoder_layers: NonNegativeInt | None = None  # None: n_layers; 0: the encoder alone (bench)
        d_ff: PositiveInt = 2048
        max_seq_length: PositiveInt = 256  # the longest source (a Linformer encoder's n)
        max_target_length: PositiveInt | None = None  # the longest target, <s> included; None: max_seq_length
        activation: Activation = "relu"
        cross_attention: AttentionSpec = Field(default_factory=SoftmaxAttention.Config)
        share_embeddings: bool = True  # one token embedding for source and target (a joint vocabulary)
        tie_output: bool = True  # the output projection is the decoder's token embedding
        scale_embedding: bool = True  # token embeddings × √d_model

        @model_validator(mode="after")
        def _attentions_fit(self) -> Self:
            problems = []
            if self.attention.causal:
                problems.append("attention: the encoder sees the whole source; drop causal: true")
            cross = self.cross_attention
            if not type(cross).cross_attention:
                problems.append(f"cross_attention: {cross.kind} attention cannot read the encoder's states")
            if cross.causal:
                problems.append("cross_attention: reads the whole source; drop causal: true")
            try:
                cross.check_length(self.max_seq_length)
            except ValueError as exc:
                problems.append(f"cross_attention: {exc}")
            if problems:
                raise ValueError("\n".join(problems))
            return self

        @property
        def n_decoder_layers(self) -> int:
            return self.n_layers if self.decoder_layers is None else self.decoder_layers

        @property
        def target_length(self) -> int:
            """The longest target the decoder takes."""
            return self.max_target_length or self.max_seq_length

        def example_inputs(
            self,
            batch: int,
            length: int,
            lengths: Sequence[int] | None = None,
            generator: torch.Generator | None = None,
        ) -> dict[str, Tensor]:
            """Random source ``input_ids`` and ``decoder_input_ids`` (B, T); with ``lengths``, both masks.
            Without a decoder (``decoder_layers: 0``), the source alone."""
            source = super().example_inputs(batch, length, lengths, generator)
            if not self.n_decoder_layers:
                return source
            target = torch.randint(0, self.vocab_size, (batch, length), generator=generator)
            inputs = {"input_ids": source["input_ids"], "decoder_input_ids": target}
            if "attention_mask" in source:
                inputs |= {
                    "attention_mask": source["attention_mask"],
                    "decoder_attention_mask": source["attention_mask"],
                }
            return inputs

    heads = ()
    cfg: Config

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        std = cfg.d_model**-0.5  # fairseq's, with the √d scaling
        self.source_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.source_tokens.weight, std=std)
        if cfg.share_embeddings:
            self.target_tokens = self.source_tokens
        else:
            self.target_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
            nn.init.normal_(self.target_tokens.weight, std=std)
        length = max(cfg.max_seq_length, cfg.target_length)
        self.register_buffer("sinusoids", sinusoids(length, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = build_stage(cfg, cfg.n_layers, cfg.max_seq_length, activation=cfg.activation)
        causal = SoftmaxAttention.Config(causal=True, dropout=cfg.attention.dropout)
        self.decoder = build_stage(
            cfg,
            cfg.n_decoder_layers,
            cfg.target_length,
            cross=cfg.cross_attention,
            memory_length=cfg.max_seq_length,
            attentions=[causal] * cfg.n_decoder_layers,
            activation=cfg.activation,
        )
        for block in (*self.encoder, *self.decoder):  # attention layers keep their kind's initialisation
            for linear in (block.ffn.up, block.ffn.down):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)
        norm = cfg.norm_first
        self.encoder_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if norm else None
        self.decoder_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if norm else None
        self.output = None if cfg.tie_output else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if self.output is not None:
            nn.init.normal_(self.output.weight, std=std)

    def _embed(self, tokens: nn.Embedding, ids: Tensor, start: int) -> Tensor:
        scale = math.sqrt(self.cfg.d_model) if self.cfg.scale_embedding else 1.0
        where = torch.arange(start, start + ids.size(1), device=ids.device)
        return self.drop(tokens(ids) * scale + self.sinusoids[where])  # (B, T, C)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> ModelOutput:
        """Return the encoder's states (B, S, C) of source ids (B, S); ``attention_mask``: True at real."""
        if input_ids.size(1) > self.cfg.max_seq_length:
            raise InputError(
                f"a source of {input_ids.size(1)} tokens is longer than model.max_seq_length "
                f"({self.cfg.max_seq_length}); raise it or filter long sentences out"
            )
        x, aux = run_stage(self.encoder, self._embed(self.source_tokens, input_ids, 0), attention_mask)
        return ModelOutput(x if self.encoder_norm is None else self.encoder_norm(x), aux)

    def new_cache(self) -> Seq2SeqCache:
        """Return an empty cache for decoding one token at a time."""
        return Seq2SeqCache(
            [block.attention.new_cache() for block in self.decoder],
            [block.cross.new_cache() for block in self.decoder],
        )

    def decode(
        self,
        decoder_input_ids: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        cache: Seq2SeqCache | None = None,
    ) -> ModelOutput:
        """Return decoder states (B, T, C) and next-token logits (B, T, V) of target ids (B, T).

        Target position t sees targets up to t and every real source position. With ``cache``,
        ``decoder_input_ids`` continue what was decoded and the cross-attention reuses the memory's keys.
        """
        T = decoder_input_ids.size(1)
        start = 0 if cache is None else cache.length
        if start + T > self.cfg.target_length:
            raise InputError(
                f"a target of {start + T} tokens is longer than model.max_target_length "
                f"({self.cfg.target_length}); raise it or filter long sentences out"
            )
        x = self._embed(self.target_tokens, decoder_input_ids, start)
        x, aux = run_stage(
            self.decoder,
            x,
            decoder_attention_mask,
            caches=None if cache is None else cache.layers,
            memory_caches=None if cache is None else cache.memory_layers,
            memory=memory,
            memory_mask=memory_mask,
        )
        if cache is not None:
            cache.length += T
        hidden = x if self.decoder_norm is None else self.decoder_norm(x)
        logits = hidden @ self.target_tokens.weight.T if self.output is None else self.output(hidden)
        return ModelOutput(hidden, aux, logits)  # (B, T, V)

    def forward(
        self,
        input_ids: Tensor,
        decoder_input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
    ) -> ModelOutput:
        """Return the decoder's states and logits (B, T, V) of targets (B, T) given sources (B, S);
        without targets, the encoder's states (what `bench` times of an encoder-only model)."""
        encoded = self.encode(input_ids, attention_mask)
        if decoder_input_ids is None:
            return encoded
        out = self.decode(decoder_input_ids, encoded.hidden, attention_mask, decoder_attention_mask)
        return out._replace(aux_loss=out.aux_loss + encoded.aux_loss)
