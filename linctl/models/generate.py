"""Decoding an encoder-decoder: greedy and beam search, batched, with or without the decoder's cache.

Beam search follows fairseq's ``SequenceGenerator``: at each step the 2 × beam best continuations of a
sentence's live hypotheses are ranked; an end-of-sentence among the best ``beam`` of them finishes a
hypothesis, scored by its summed log-probability divided by ``length ** length_penalty`` (the tokens
generated, </s> included); the best ``beam`` others live on. With ``early_stop`` a sentence is done
once it has ``beam`` finished hypotheses; without it, once no live hypothesis can beat the worst of them.
A sentence's hypotheses end at ``max_len_a × source length + max_len_b`` tokens (</s> forced there),
and never later than the decoder's longest target.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import Tensor

from linctl.config.strict import Strict
from linctl.models.base import Translator


class DecodeOptions(Strict):
    """How to decode: beam 1 is greedy."""

    beam: PositiveInt = 4
    length_penalty: float = 1.0  # fairseq's --lenpen: scores are divided by length ** length_penalty
    max_len_a: NonNegativeFloat = 1.2  # a hypothesis has at most a × source length + b tokens
    max_len_b: int = Field(10, ge=1)
    early_stop: bool = True
    use_cache: bool = True  # decode one token a step over cached keys and values


class Special(NamedTuple):
    """The token ids decoding needs."""

    bos: int
    eos: int


def generate(
    model: Translator, input_ids: Tensor, attention_mask: Tensor | None, special: Special, opts: DecodeOptions
) -> list[list[int]]:
    """Return the best hypothesis of every source (B, S) as token ids without <s> and </s>."""
    if opts.beam == 1:
        return greedy(model, input_ids, attention_mask, special, opts)
    return beam_search(model, input_ids, attention_mask, special, opts)


def max_lengths(model: Any, input_ids: Tensor, attention_mask: Tensor | None, opts: DecodeOptions) -> Tensor:
    """Return the most tokens each hypothesis may have, </s> included (B,)."""
    source = (
        attention_mask.sum(1)
        if attention_mask is not None
        else torch.full_like(input_ids[:, 0], input_ids.size(1))
    )
    wanted = (opts.max_len_a * source.double()).floor().long() + opts.max_len_b
    return wanted.clamp(max=model.cfg.target_length - 1)  # <s> takes a position too


def _stepper(model: Translator, memory: Tensor, mask: Tensor | None, use_cache: bool) -> tuple[Any, Callable]:
    """Return the decoding cache (None without one) and a function from the tokens so far to the
    log-probabilities of the next token (B, V)."""
    cache = model.new_cache() if use_cache else None

    def step(tokens: Tensor, rows: Tensor | None) -> Tensor:
        if cache is not None and rows is not None:
            cache.select(rows)
        ids = tokens[:, -1:] if cache is not None else tokens
        logits = model.decode(ids, memory, mask, cache=cache).logits[:, -1]  # (B, V)
        return F.log_softmax(logits.float(), dim=-1)

    return cache, step


@torch.no_grad()
def greedy(
    model: Translator, input_ids: Tensor, attention_mask: Tensor | None, special: Special, opts: DecodeOptions
) -> list[list[int]]:
    """Pick the most likely next token until </s> or the length limit."""
    B = input_ids.size(0)
    memory = model.encode(input_ids, attention_mask).hidden  # (B, S, C)
    limit = max_lengths(model, input_ids, attention_mask, opts)  # (B,)
    _, step = _stepper(model, memory, attention_mask, opts.use_cache)
    tokens = torch.full((B, 1), special.bos, dtype=torch.long, device=input_ids.device)
    done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
    for t in range(int(limit.max())):
        logp = step(tokens, None)
        logp[t + 1 >= limit, :] = -math.inf  # at the limit only </s> is left
        logp[t + 1 >= limit, special.eos] = 0.0
        chosen = logp.argmax(-1).masked_fill(done, special.eos)  # (B,)
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        done |= chosen == special.eos
        if bool(done.all()):
            break
    return [_strip(row, special) for row in tokens[:, 1:].tolist()]


@torch.no_grad()
def beam_search(
    model: Translator, input_ids: Tensor, attention_mask: Tensor | None, special: Special, opts: DecodeOptions
) -> list[list[int]]:
    """Keep the ``beam`` best hypotheses of each source; return each source's best finished one."""
    B, K, device = input_ids.size(0), opts.beam, input_ids.device
    memory = model.encode(input_ids, attention_mask).hidden.repeat_interleave(K, 0)  # (B·K, S, C)
    mask = None if attention_mask is None else attention_mask.repeat_interleave(K, 0)  # (B·K, S)
    limit = max_lengths(model, input_ids, attention_mask, opts)  # (B,)
    _, step = _stepper(model, memory, mask, opts.use_cache)
    tokens = torch.full((B * K, 1), special.bos, dtype=torch.long, device=device)
    scores = torch.full((B, K), -math.inf, device=device)
    scores[:, 0] = 0.0  # one live hypothesis to start from
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B
    rows = None
    for t in range(int(limit.max())):
        logp = step(tokens, rows).view(B, K, -1)  # (B, K, V)
        V = logp.size(-1)
        at_limit = t + 1 >= limit  # (B,)
        logp[at_limit] = -math.inf
        logp[at_limit, :, special.eos] = 0.0
        candidates = (scores[:, :, None] + logp).view(B, K * V)
        best, index = candidates.topk(2 * K, dim=1)  # (B, 2K)
        origin, token = index // V, index % V
        is_eos = token == special.eos
        for b, rank in (is_eos[:, :K] & torch.isfinite(best[:, :K])).nonzero().tolist():
            if not done[b]:
                hypothesis = tokens[b * K + origin[b, rank]].tolist()[1:]
                finished[b].append((float(best[b, rank]) / (t + 1) ** opts.length_penalty, hypothesis))
        keep = torch.argsort(is_eos.int(), dim=1, stable=True)[:, :K]  # the best K that go on (B, K)
        scores = best.gather(1, keep)
        rows = (torch.arange(B, device=device)[:, None] * K + origin.gather(1, keep)).view(-1)  # (B·K,)
        tokens = torch.cat([tokens[rows], token.gather(1, keep).view(-1, 1)], dim=1)
        for b in range(B):
            done[b] = done[b] or _sentence_done(finished[b], scores[b], t, int(limit[b]), opts)
        if all(done):
            break
    return [max(found)[1] if found else [] for found in finished]


def _sentence_done(
    found: list[tuple[float, list[int]]], live: Tensor, t: int, limit: int, opts: DecodeOptions
) -> bool:
    """Whether a sentence's search is over after step ``t``."""
    if len(found) < opts.beam:
        return t + 1 >= limit
    if opts.early_stop:
        return True
    best_live = float(live.max())  # log-probabilities only fall from here
    if best_live == -math.inf:
        return True
    # s / l ** lp is largest at the longest length when lp > 0 (s < 0), at the next one otherwise.
    length = limit if opts.length_penalty > 0 else t + 2
    worst_kept = sorted(score for score, _ in found)[-opts.beam]
    return best_live / length**opts.length_penalty <= worst_kept


def _strip(ids: list[int], special: Special) -> list[int]:
    """Return ``ids`` up to their first </s>."""
    return ids[: ids.index(special.eos)] if special.eos in ids else ids
