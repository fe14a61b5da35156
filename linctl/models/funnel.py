"""Funnel-Transformer (Dai, Lai, Yang & Le, arXiv:2006.03236), any registered attention in its blocks.

The encoder is a series of blocks; before every block but the first, the sequence is pooled with stride 2
(mean or max over pairs of tokens), so a block runs at half the length of the one before it. With
``pool_q_only`` the first layer of a pooled block attends from the pooled queries over the unpooled keys
and values. ``separate_cls`` keeps [CLS] out of every pooling window (it stays at index 0), and
``truncate_seq`` drops the last token before pooling, so that lengths go T → T/2 → T/4 for even T.
The decoder (pretraining only) repeats each vector of the last block to the input length, adds the states
after the first ``block_sizes[0]`` layer applications, and runs ``n_decoder_layers`` full-length layers; a
funnel of one block (nothing pooled) goes straight to those layers, a plain full-length encoder.

There are no position or segment embeddings: positions and token types enter the attention scores as
Transformer-XL-style relative terms, ``relative_shift`` (one sinusoid per distance, then a shift that puts
each query's row in place) or ``factorized`` (sin/cos of the query and key positions, separately); both
compute the same scores. These terms need an attention kind that forms every query-key score (its config
declares ``score_bias``, e.g. softmax); with another kind set ``attention_type: none``.

Conventions (Hugging Face's, so that its checkpoints import exactly): a pooled slot is padding when any
token of its window is; pooled token types and positions are those of each window's first token;
token type 2 marks [CLS], which counts as the same segment as every token.
"""

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import torch
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator
from torch import Tensor, nn

from linctl.errors import InputError
from linctl.models.base import Model, ModelOutput, TokenModelConfig
from linctl.models.layers import ACTIVATIONS, Activation, Block, build_stage

CLS_TYPE = 2  # the token type of [CLS]: the same segment as every token
BLOCKS = re.compile(r"(\d+)(?:x(\d+))?")  # one block of the README's notation: SIZE or SIZExREPEATS


def parse_blocks(text: str) -> tuple[list[int], list[int]]:
    """Return (block_sizes, block_repeats) of the README's notation, e.g. ``"6_3x2_3x2"``."""
    parts = [BLOCKS.fullmatch(part) for part in text.split("_")]
    if not all(parts):
        raise ValueError(
            f"block_sizes {text!r}: write blocks as SIZE or SIZExREPEATS joined by '_', e.g. '6_3x2_3x2'"
        )
    return [int(p[1]) for p in parts], [int(p[2] or 1) for p in parts]  # type: ignore[index]


class FunnelConfig(TokenModelConfig):
    """What every funnel model has: the encoder's blocks, pooling and relative attention."""

    d_model: PositiveInt = 768
    n_heads: PositiveInt = 12
    d_ff: PositiveInt = 3072
    layer_norm_eps: float = Field(1e-9, gt=0.0)
    norm_first: Literal[False] = False  # post-LN, as the paper
    activation: Activation = "gelu_new"
    block_sizes: tuple[PositiveInt, ...] = (4, 4, 4)  # distinct layers per block, or "6_3x2_3x2"
    block_repeats: tuple[PositiveInt, ...] | None = None  # runs of each layer in a row; None: 1 each
    pooling_type: Literal["mean", "max"] = "mean"
    attention_type: Literal["relative_shift", "factorized", "none"] = "relative_shift"
    separate_cls: bool = True
    truncate_seq: bool = True
    pool_q_only: bool = True
    # n_layers (inherited) is derived: the encoder's layer applications, sum(block_sizes × block_repeats)

    @model_validator(mode="before")
    @classmethod
    def _blocks(cls, data: Any) -> Any:
        """Read the README's block notation; derive ``n_layers`` (given, it must agree)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("block_sizes"), str):
            if data.get("block_repeats") is not None:
                raise ValueError("give block repeats in block_sizes ('6_3x2_3x2') or block_repeats, not both")
            data["block_sizes"], data["block_repeats"] = parse_blocks(data["block_sizes"])
        sizes = data.get("block_sizes", cls.model_fields["block_sizes"].default)
        repeats = data.get("block_repeats")
        if repeats is None and isinstance(sizes, list | tuple):
            repeats = data["block_repeats"] = [1] * len(sizes)
        try:
            applied = sum(int(s) * int(r) for s, r in zip(sizes, repeats, strict=True))
        except (TypeError, ValueError):
            return data  # the fields' own checks name the problem
        if "n_layers" in data and data["n_layers"] != applied:
            raise ValueError(
                f"n_layers ({data['n_layers']}) is set by block_sizes × block_repeats ({applied}); "
                "leave it out"
            )
        data["n_layers"] = applied
        return data

    @model_validator(mode="after")
    def _funnel_fits(self) -> Self:
        problems = []
        if self.block_repeats is None or len(self.block_repeats) != len(self.block_sizes):
            problems.append(
                f"block_repeats {list(self.block_repeats or ())} must have one entry per block "
                f"({len(self.block_sizes)})"
            )
        if self.attention.causal:
            problems.append("attention: a funnel encoder is bidirectional; remove causal: true")
        if self.attention_type != "none":
            if not self.attention.score_bias:
                problems.append(
                    f"attention_type {self.attention_type} adds relative-position scores, which "
                    f"{self.attention.kind} attention does not form; use attention kind softmax or "
                    f"attention_type: none"
                )
            if self.d_model % 2:
                problems.append(
                    f"attention_type {self.attention_type} needs an even d_model ({self.d_model})"
                )
        if self.pool_q_only and len(self.block_sizes) > 1 and not self.attention.cross_attention:
            problems.append(
                f"pool_q_only: {self.attention.kind} attention cannot read unpooled keys; "
                "set pool_q_only: false"
            )
        for length in dict.fromkeys(self.block_lengths(self.max_seq_length)):
            try:
                self.attention.check_length(length)
            except ValueError as exc:
                problems.append(f"attention (a block of {length} tokens): {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def repeats(self) -> tuple[int, ...]:
        return self.block_repeats or (1,) * len(self.block_sizes)

    def can_pool(self, length: int) -> bool:
        """Whether a sequence of ``length`` states is pooled before the next block."""
        return length > (2 if self.separate_cls else 1)

    def pooled_length(self, length: int) -> int:
        """Return the length after one pooling: ⌈L/2⌉, or ⌈(L+1)/2⌉ with [CLS] separate and no truncation."""
        return (length + 2) // 2 if self.separate_cls and not self.truncate_seq else (length + 1) // 2

    def block_lengths(self, length: int) -> list[int]:
        """Return the sequence length inside each block for an input of ``length`` tokens."""
        lengths = [length]
        for _ in self.block_sizes[1:]:
            last = lengths[-1]
            lengths.append(self.pooled_length(last) if self.can_pool(last) else last)
        return lengths


@dataclass(frozen=True)
class Axis:
    """One side of a layer's attention (its queries, or its keys): where its tokens are and their types.

    Positions are counted in input tokens: index i is at ``start + stride·i``. A separated [CLS] gets the
    position ``1 − stride`` so that positions stay evenly spaced (its position terms are zeroed anyway).
    """

    start: int
    stride: int
    segments: Tensor  # (B, L) token types
    mask: Tensor | None  # (B, L) True at real tokens; None: all are real

    @property
    def length(self) -> int:
        return self.segments.size(1)

    def positions(self) -> Tensor:
        """Return the (L,) positions."""
        return self.start + self.stride * torch.arange(self.length, device=self.segments.device)

    def pooled(self, cfg: FunnelConfig) -> "Axis":
        """Return the axis after one pooling: each window's first type; padding if any token is."""
        stride = 2 * self.stride
        mask = None if self.mask is None else pool(self.mask, "all", cfg)
        return Axis(1 - stride if cfg.separate_cls else 0, stride, stride_pool(self.segments, cfg), mask)


def _body(x: Tensor, cfg: FunnelConfig) -> Tensor:
    """Return the tokens of (B, L, …) that pooling merges: all, or all but [CLS] (and the last token)."""
    if not cfg.separate_cls:
        return x
    return x[:, 1:-1] if cfg.truncate_seq else x[:, 1:]


def _with_cls(x: Tensor, pooled: Tensor, cfg: FunnelConfig) -> Tensor:
    return torch.cat([x[:, :1], pooled], dim=1) if cfg.separate_cls else pooled


def stride_pool(x: Tensor, cfg: FunnelConfig) -> Tensor:
    """Keep the first token of every window of (B, L, …)."""
    return _with_cls(x, _body(x, cfg)[:, ::2], cfg)


def pool(x: Tensor, mode: Literal["mean", "max", "all"], cfg: FunnelConfig) -> Tensor:
    """Pool (B, L, …) over windows of two tokens (a last lone token is its own window)."""
    body = _body(x, cfg)
    first, second = body[:, 0::2], body[:, 1::2]
    if second.size(1) < first.size(1):
        second = torch.cat([second, first[:, -1:]], dim=1)
    if mode == "mean":
        pooled = (first + second) / 2
    elif mode == "max":
        pooled = torch.maximum(first, second)
    else:
        pooled = first & second
    return _with_cls(x, pooled, cfg)


def upsample(x: Tensor, stride: int, length: int, cfg: FunnelConfig) -> Tensor:
    """Repeat each pooled state of (B, L, C) ``stride`` times, back to ``length`` states ([CLS] once)."""
    if stride == 1:
        return x
    if not cfg.separate_cls:
        return x.repeat_interleave(stride, dim=1)[:, :length]
    body = x[:, 1:].repeat_interleave(stride, dim=1)
    if cfg.truncate_seq:  # the tokens pooling dropped get zeros
        body = nn.functional.pad(body, (0, 0, 0, stride - 1))
    return torch.cat([x[:, :1], body[:, : length - 1]], dim=1)


def sinusoid(distance: Tensor, d_model: int) -> Tensor:
    """Return [sin(d·ω), cos(d·ω)] (…, d_model) of distances d, with ω_m = 10000^(−m/(d_model/2))."""
    half = d_model // 2
    freq = torch.arange(half, device=distance.device, dtype=torch.float32)
    inv_freq = 1 / (10000 ** (freq / half))
    angles = distance.to(torch.float32)[..., None] * inv_freq  # (…, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RelativeBias(nn.Module):
    """One layer's relative attention terms: a content bias u, the position term (q + v)·W_r·PE(i − j)
    and the token-type term (q + b_s)·s[same segment], all scaled by 1/√D like the dot products.

    With ``separate_cls`` the position and token-type terms of [CLS]'s row and column are zero.
    """

    def __init__(self, cfg: FunnelConfig) -> None:
        super().__init__()
        H, D = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.content_bias = nn.Parameter(torch.empty(H, D))  # u (r_w_bias)
        self.position_bias = nn.Parameter(torch.empty(H, D))  # v (r_r_bias)
        self.position_kernel = nn.Parameter(torch.empty(cfg.d_model, H, D))  # W_r (r_kernel)
        self.segment_bias = nn.Parameter(torch.empty(H, D))  # b_s (r_s_bias)
        self.segment_embed = nn.Parameter(torch.empty(2, H, D))  # s: [different, same] (seg_embed)
        self.drop = nn.Dropout(cfg.dropout)  # on the sinusoids
        self.attention_type = cfg.attention_type
        self.separate_cls = cfg.separate_cls

    def forward(self, q: Tensor, k: Tensor, queries: Axis, keys: Axis) -> Tensor:
        """Return the scores (B, H, T, S) to add for queries (B, H, T, D) and keys (B, H, S, D)."""
        scale = q.size(-1) ** -0.5
        content = torch.einsum("hd,bhjd->bhj", self.content_bias * scale, k)[:, :, None]  # (B, H, 1, S)
        terms = self.position_scores(q, queries, keys) + self.segment_scores(q, queries, keys)
        if self.separate_cls:
            keep = torch.ones(terms.shape[-2:], dtype=terms.dtype, device=terms.device)
            keep[0], keep[:, 0] = 0, 0
            terms = terms * keep  # (B, H, T, S)
        return content + terms

    def position_scores(self, q: Tensor, queries: Axis, keys: Axis) -> Tensor:
        """Return (q + v)·W_r·PE(pos_i − pos_j)/√D, (B, H, T, S), the way ``attention_type`` says."""
        B, H, T, D = q.shape
        C, S = self.position_kernel.size(0), keys.length
        qv = (q + self.position_bias[:, None]) * D**-0.5  # (B, H, T, D)
        if self.attention_type == "factorized":
            g = torch.einsum("bhid,chd->bhic", qv, self.position_kernel)  # (B, H, T, C)
            half = C // 2
            at_q, at_k = (
                sinusoid(queries.positions(), C).to(q.dtype),
                sinusoid(keys.positions(), C).to(q.dtype),
            )
            sin_q, cos_q = self.drop(at_q[:, :half]), self.drop(at_q[:, half:])
            sin_k, cos_k = at_k[:, :half], at_k[:, half:]
            # sin(a − b) = sin a cos b − cos a sin b; cos(a − b) = cos a cos b + sin a sin b
            phi, pi = torch.cat([sin_q, sin_q], -1), torch.cat([cos_q, cos_q], -1)  # (T, C)
            psi, omega = torch.cat([cos_k, sin_k], -1), torch.cat([-sin_k, cos_k], -1)  # (S, C)
            return torch.einsum("bhic,jc->bhij", g * phi, psi) + torch.einsum("bhic,jc->bhij", g * pi, omega)
        # relative_shift: one row of distances, from the largest down in steps of the key stride; row i of
        # the scores starts shift·(T − i) entries in, which the reshapes below put at column 0.
        shift = queries.stride // keys.stride  # 2: pooled queries over unpooled keys, else 1
        width = shift * T + S
        top = queries.start - keys.start + shift * T * keys.stride
        distance = top - keys.stride * torch.arange(width, device=q.device)  # (W,)
        table = self.drop(sinusoid(distance, C).to(q.dtype))  # (W, C)
        r = torch.einsum("tc,chd->thd", table, self.position_kernel)  # (W, H, D)
        scores = torch.einsum("bhid,thd->bhit", qv, r)  # (B, H, T, W)
        scores = scores.reshape(B, H, width, T)[:, :, shift:].reshape(B, H, T, width - shift)
        return scores[..., :S]  # (B, H, T, S)

    def segment_scores(self, q: Tensor, queries: Axis, keys: Axis) -> Tensor:
        """Return (q + b_s)·s[same]/√D, (B, H, T, S); [CLS] (type 2) is in every token's segment."""
        scaled = (q + self.segment_bias[:, None]) * q.size(-1) ** -0.5  # (B, H, T, D)
        by_type = torch.einsum("bhid,shd->bhis", scaled, self.segment_embed)  # (B, H, T, 2)
        sq, sk = queries.segments, keys.segments
        same = (
            (sq[:, :, None] == sk[:, None, :]) | (sq == CLS_TYPE)[:, :, None] | (sk == CLS_TYPE)[:, None, :]
        )
        return torch.where(same[:, None], by_type[..., 1:], by_type[..., :1])  # (B, H, T, S)


def _run(
    block: Block, relative: RelativeBias | None, x: Tensor, queries: Axis, keys: Axis,
    source: Tensor | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Run one layer from ``x`` (queries' states) over ``source`` (keys' states; None: ``x``)."""
    bias = None if relative is None else functools.partial(relative, queries=queries, keys=keys)
    return block(x, keys.mask, source=source, score_bias=bias)


def _relatives(cfg: FunnelConfig, n: int) -> nn.ModuleList | None:
    return None if cfg.attention_type == "none" else nn.ModuleList(RelativeBias(cfg) for _ in range(n))


@dataclass
class Encoded:
    """What the encoder hands the decoder."""

    hidden: Tensor  # (B, L, C) the last block's states
    residual: Tensor  # (B, T, C) the states after block_sizes[0] layer applications
    aux_loss: Tensor
    inputs: Axis  # the input tokens
    pools: int  # poolings applied


class FunnelEncoder(nn.Module):
    """The blocks: ``block_sizes[b]`` layers each, every layer run ``block_repeats[b]`` times in a row."""

    def __init__(self, cfg: FunnelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        lengths = cfg.block_lengths(cfg.max_seq_length)
        self.blocks = nn.ModuleList()
        for b, n in enumerate(cfg.block_sizes):
            if b > 0 and cfg.pool_q_only:  # the first layer reads the unpooled keys of the block before
                stage = build_stage(cfg, 1, lengths[b - 1], activation=cfg.activation)
                stage.extend(build_stage(cfg, n - 1, lengths[b], activation=cfg.activation) if n > 1 else [])
            else:
                stage = build_stage(cfg, n, lengths[b], activation=cfg.activation)
            self.blocks.append(stage)
        relatives = [_relatives(cfg, n) for n in cfg.block_sizes]
        self.relative = None if cfg.attention_type == "none" else nn.ModuleList(relatives)

    def forward(self, x: Tensor, mask: Tensor | None, segments: Tensor) -> Encoded:
        """Encode embedded tokens (B, T, C) with their mask (B, T) (None: all real) and token types (B, T)."""
        cfg = self.cfg
        axis = inputs = Axis(0, 1, segments, mask)
        aux, residual, applied, pools = x.new_zeros(()), x, 0, 0
        for b, stage in enumerate(self.blocks):
            pending = None  # pooled queries that the first layer runs from, over the unpooled keys
            if b > 0 and cfg.can_pool(axis.length):
                pooled, pooled_axis = pool(x, cfg.pooling_type, cfg), axis.pooled(cfg)
                pools += 1
                if cfg.pool_q_only:
                    pending = (pooled, pooled_axis)
                else:
                    x, axis = pooled, pooled_axis
            relatives = [None] * len(stage) if self.relative is None else list(self.relative[b])
            for block, relative in zip(stage, relatives, strict=True):
                for _ in range(cfg.repeats[b]):
                    if pending is not None:
                        x, layer_aux = _run(block, relative, pending[0], pending[1], axis, source=x)
                        axis, pending = pending[1], None
                    else:
                        x, layer_aux = _run(block, relative, x, axis, axis)
                    aux, applied = aux + layer_aux, applied + 1
                    if applied == cfg.block_sizes[0]:
                        residual = x
        return Encoded(x, residual, aux, inputs, pools)


class FunnelDecoder(nn.Module):
    """Upsampling to the input length, the first block's residual, then full-length layers."""

    def __init__(self, cfg: FunnelConfig, n_layers: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.blocks = build_stage(cfg, n_layers, cfg.max_seq_length, activation=cfg.activation)
        self.relative = _relatives(cfg, n_layers)

    def forward(self, encoded: Encoded) -> tuple[Tensor, Tensor]:
        """Return the decoded states (B, T, C) and the layers' auxiliary loss."""
        T = encoded.residual.size(1)
        x = encoded.hidden  # nothing pooled (one block): nothing to restore
        if encoded.pools:
            x = upsample(x, 2**encoded.pools, T, self.cfg) + encoded.residual
        aux = x.new_zeros(())
        relatives = [None] * len(self.blocks) if self.relative is None else list(self.relative)
        for block, relative in zip(self.blocks, relatives, strict=True):
            x, layer_aux = _run(block, relative, x, encoded.inputs, encoded.inputs)
            aux = aux + layer_aux
        return x, aux


class FunnelEmbeddings(nn.Module):
    """Token embeddings, layer norm and dropout: no positions and no segments (they are in attention)."""

    def __init__(self, vocab_size: int, d_model: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.drop(self.norm(self.tokens(input_ids)))


def init_funnel(module: nn.Module, initializer_range: float = 0.1) -> None:
    """The reference initialisation: N(0, 1/(fan_in + fan_out)) linear weights and zero biases, N(0, 1)
    embeddings, U(0, initializer_range) relative-attention parameters."""
    if isinstance(module, nn.Linear):
        fan_out, fan_in = module.weight.shape
        nn.init.normal_(module.weight, std=(1.0 / (fan_in + fan_out)) ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=1.0)
    elif isinstance(module, RelativeBias):
        for param in module.parameters(recurse=False):
            nn.init.uniform_(param, 0.0, initializer_range)


class FunnelBase(Model):
    """Embeddings and the funnel encoder: the body every funnel model shares (``embeddings.*``,
    ``encoder.*``), so that a pretrained funnel initialises a classifier."""

    cfg: FunnelConfig

    def __init__(self, cfg: FunnelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = FunnelEmbeddings(cfg.vocab_size, cfg.d_model, cfg.layer_norm_eps, cfg.dropout)
        self.encoder = FunnelEncoder(cfg)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None, segment_ids: Tensor | None) -> Encoded:
        """Embed and encode (B, T) ids (``attention_mask``: True at real tokens; ``segment_ids``: types)."""
        if input_ids.size(1) > self.cfg.max_seq_length:
            raise InputError(
                f"a sequence of {input_ids.size(1)} tokens is longer than model.max_seq_length "
                f"({self.cfg.max_seq_length}); cut inputs to at most {self.cfg.max_seq_length} tokens"
            )
        segments = torch.zeros_like(input_ids) if segment_ids is None else segment_ids
        return self.encoder(self.embeddings(input_ids), attention_mask, segments)


class FunnelPretrainingConfig(FunnelConfig):
    """A funnel with its decoder, for token-level objectives."""

    n_decoder_layers: NonNegativeInt = 2


class FunnelPretraining(FunnelBase):
    """Encoder and decoder: the states (B, T, C) of every input token."""

    cfg: FunnelPretrainingConfig

    def __init__(self, cfg: FunnelPretrainingConfig) -> None:
        super().__init__(cfg)
        self.decoder = FunnelDecoder(cfg, cfg.n_decoder_layers)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, segment_ids: Tensor | None = None
    ) -> ModelOutput:
        """Return the decoder's states (B, T, C) of (B, T) token ids."""
        encoded = self.encode(input_ids, attention_mask, segment_ids)
        hidden, aux = self.decoder(encoded)
        return ModelOutput(hidden, encoded.aux_loss + aux)


class FunnelModel(FunnelPretraining):
    """Encoder, decoder and a masked-LM output tied to the token embeddings (Hugging Face's
    ``FunnelForMaskedLM``)."""

    heads = ("mlm.",)

    class Config(FunnelPretrainingConfig):
        kind: Literal["funnel"] = "funnel"

    cfg: Config

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.mlm = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.apply(init_funnel)
        self.mlm.weight = self.embeddings.tokens.weight  # tied input and output embeddings

    def mlm_logits(self, hidden: Tensor, positions: Tensor) -> Tensor:
        """Return vocabulary logits (B, P, V) at ``positions`` (B, P) of ``hidden`` (B, T, C)."""
        picked = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.size(-1)))  # (B, P, C)
        return self.mlm(picked)


class FunnelClassifierModel(FunnelBase):
    """The encoder alone (Hugging Face's ``FunnelBaseModel``), its [CLS] state → dense + tanh → dropout →
    dense to ``num_labels`` (1: regression); its states are the last block's (B, ~T/2^(blocks−1), C)."""

    heads = ("pooler.", "head.")

    class Config(FunnelConfig):
        kind: Literal["funnel-classifier"] = "funnel-classifier"
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
            inputs["segment_ids"] = torch.zeros(batch, length, dtype=torch.long)  # one sentence
            return inputs

    cfg: Config

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.pooler = nn.Linear(cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout if cfg.classifier_dropout is None else cfg.classifier_dropout)
        self.head = nn.Linear(cfg.d_model, cfg.num_labels)
        self.apply(init_funnel)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, segment_ids: Tensor | None = None
    ) -> ModelOutput:
        """Return the last block's states of (B, T) token ids; index 0 is [CLS] with ``separate_cls``."""
        encoded = self.encode(input_ids, attention_mask, segment_ids)
        return ModelOutput(encoded.hidden, encoded.aux_loss)

    def classify(self, hidden: Tensor) -> Tensor:
        """Return logits (B, num_labels) from the states at index 0 ([CLS])."""
        return self.head(self.drop(self.pooler(hidden[:, 0]).tanh()))


class _Activation(nn.Module):
    """The config's activation as a module."""

    def __init__(self, name: Activation) -> None:
        super().__init__()
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return ACTIVATIONS[self.name](x)


class Generator(nn.Module):
    """ELECTRA's generator: a narrower funnel of the same blocks over the discriminator's embedded input
    (projected to its width), and an MLM head (dense + GELU + layer norm back to the embedding width) whose
    output layer is the shared token embedding."""

    def __init__(self, cfg: FunnelPretrainingConfig, d_embed: int) -> None:
        super().__init__()
        self.project = nn.Linear(d_embed, cfg.d_model)
        self.encoder = FunnelEncoder(cfg)
        self.decoder = FunnelDecoder(cfg, cfg.n_decoder_layers)
        self.dense = nn.Linear(cfg.d_model, d_embed)
        self.norm = nn.LayerNorm(d_embed, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(
        self, embedded: Tensor, mask: Tensor | None, segments: Tensor, positions: Tensor, output: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return logits (B, P, V) at ``positions`` (B, P) of the embedded input (B, T, C), with ``output``
        (V, C) the shared token embedding, and the auxiliary loss."""
        encoded = self.encoder(self.project(embedded), mask, segments)
        hidden, aux = self.decoder(encoded)
        picked = torch.gather(hidden, 1, positions[..., None].expand(-1, -1, hidden.size(-1)))  # (B, P, c)
        out = self.norm(nn.functional.gelu(self.dense(picked)))  # (B, P, C)
        return out @ output.T + self.bias, encoded.aux_loss + aux


class FunnelElectraModel(FunnelPretraining):
    """ELECTRA pretraining of a funnel (Clark et al., arXiv:2003.10555, as the Funnel-Transformer's released
    checkpoints were trained): the discriminator (encoder, decoder and a per-token head) and a generator
    ``width_shrink`` times as wide (d_model, d_ff, n_heads; the head size stays) that shares the token
    embeddings and their layer norm. The body has the other funnels' names, so it initialises a classifier.
    """

    heads = ("discriminator.", "generator.")

    class Config(FunnelPretrainingConfig):
        kind: Literal["funnel-electra"] = "funnel-electra"
        width_shrink: float = Field(0.25, gt=0.0, le=1.0)  # the generator's width over the discriminator's

        @model_validator(mode="after")
        def _generator_fits(self) -> Self:
            sizes = {"d_model": self.d_model, "d_ff": self.d_ff, "n_heads": self.n_heads}
            uneven = [f"{key} {value} × {self.width_shrink:g}" for key, value in sizes.items()
                      if (value * self.width_shrink) % 1]  # fmt: skip
            if not uneven and self.attention_type != "none" and round(self.d_model * self.width_shrink) % 2:
                uneven.append(f"the generator's d_model {self.d_model * self.width_shrink:g} must be even")
            if uneven:
                raise ValueError(
                    f"width_shrink {self.width_shrink:g} must give whole generator sizes: {', '.join(uneven)}"
                )
            return self

        def generator(self) -> "FunnelElectraModel.Config":
            """Return the generator's config: the same blocks, ``width_shrink`` times as wide."""
            keys = ("d_model", "d_ff", "n_heads")
            return self.model_copy(
                update={key: round(getattr(self, key) * self.width_shrink) for key in keys}
            )

    cfg: Config

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.discriminator = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_model), _Activation(cfg.activation), nn.Linear(cfg.d_model, 1)
        )
        self.generator = Generator(cfg.generator(), cfg.d_model)
        self.apply(init_funnel)

    def generator_logits(
        self, input_ids: Tensor, attention_mask: Tensor | None, segment_ids: Tensor | None, positions: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Return the generator's logits (B, P, V) at ``positions`` (B, P) of (B, T) ids, and its aux loss."""
        segments = torch.zeros_like(input_ids) if segment_ids is None else segment_ids
        embedded = self.embeddings(input_ids)  # the embedding table and its norm are shared
        return self.generator(embedded, attention_mask, segments, positions, self.embeddings.tokens.weight)

    def replaced_logits(self, hidden: Tensor) -> Tensor:
        """Return logits (B, T) that each token was replaced (> 0: replaced), from the states (B, T, C)."""
        return self.discriminator(hidden)[..., 0]
