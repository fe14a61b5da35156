"""ELECTRA pretraining (Clark et al., arXiv:2003.10555) on ``prepare mlm`` shards, as the Funnel-Transformer
trained its released checkpoints: a small generator fills the masked positions, the discriminator tells
replaced tokens from original ones.

Per batch: the generator's MLM cross-entropy at the masked positions (mean over them); a token sampled from
its logits at each of those positions by the Gumbel-max trick (temperature 1, no gradient through the
sample) replaces the original token; the discriminator's per-token sigmoid cross-entropy, "replaced" (1)
against "original" (0), averaged over real tokens. A sampled token equal to the original counts as
original. Loss = generator loss + ``disc_weight`` × discriminator loss (50 in the paper's code).
"""

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from linctl.metrics.perplexity import token_metrics
from linctl.models.base import ReplacedTokenDetector
from linctl.tasks.base import Batch
from linctl.tasks.mlm import MlmTask


def gumbel_max(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Return one sample per row of ``logits`` (…, V): argmax(logits + Gumbel noise), the noise
    −log(−log(U + 1e-9) + 1e-9) with U uniform on [0, 1), as the reference code draws it."""
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    noise = -torch.log(-torch.log(uniform + 1e-9) + 1e-9)
    return (logits.float() + noise).argmax(-1)


class ElectraTask(MlmTask):
    """The generator's MLM loss plus ``disc_weight`` times the discriminator's replaced-token loss."""

    class Config(MlmTask.Config):
        kind: Literal["electra"] = "electra"  # type: ignore[assignment]
        disc_weight: float = Field(50.0, gt=0.0)  # the discriminator loss's weight (disc_coeff)

    needs: ClassVar[tuple[type, str]] = (
        ReplacedTokenDetector,
        "a generator and a discriminator (funnel-electra)",
    )
    cfg: Config

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        masked, mask = batch["input_ids"], batch["attention_mask"]
        segments = batch.get("segment_ids")
        positions, targets = batch["masked_lm_positions"], batch["masked_lm_ids"]  # (B, P)
        weights = batch["masked_lm_weights"]
        real = weights > 0  # padding predictions point at position 0 and change nothing
        original = masked.scatter(1, positions, torch.where(real, targets, masked.gather(1, positions)))

        logits, gen_aux = model.generator_logits(masked, mask, segments, positions)  # (B, P, V)
        logits = logits.float()
        gen_losses = (
            F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none") * weights.flatten()
        )
        count = weights.sum()
        with torch.no_grad():  # eval draws the same noise every time
            noise = None if model.training else torch.Generator(masked.device).manual_seed(self.seed)
            sampled = gumbel_max(logits, noise)  # (B, P)
        corrupted = original.scatter(1, positions, torch.where(real, sampled, original.gather(1, positions)))
        replaced = (corrupted != original).float()  # (B, T)

        out = model(input_ids=corrupted, attention_mask=mask, segment_ids=segments)
        disc_logits = model.replaced_logits(out.hidden).float()  # (B, T)
        tokens = mask.float()
        disc_losses = F.binary_cross_entropy_with_logits(disc_logits, replaced, reduction="none") * tokens
        n_tokens = tokens.sum()
        gen_loss = (gen_losses.sum() + gen_aux) / count.clamp(min=1.0)
        disc_loss = (disc_losses.sum() + out.aux_loss) / n_tokens.clamp(min=1.0)
        sums = {
            "gen_loss_sum": gen_losses.sum(),
            "gen_correct": ((logits.argmax(-1) == targets).float() * weights).sum(),
            "count": count,
            "disc_loss_sum": disc_losses.sum(),
            "disc_correct": (((disc_logits > 0).float() == replaced).float() * tokens).sum(),
            "tokens": n_tokens,
            "replaced": (replaced * tokens).sum(),
        }
        return gen_loss + self.cfg.disc_weight * disc_loss, {
            key: value.detach() for key, value in sums.items()
        }

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        gen = token_metrics(
            sums.get("gen_loss_sum", 0.0), sums.get("gen_correct", 0.0), sums.get("count", 0.0)
        )
        tokens = max(sums.get("tokens", 0.0), 1.0)
        disc_loss = sums.get("disc_loss_sum", 0.0) / tokens
        return {
            "loss": gen["loss"] + self.cfg.disc_weight * disc_loss,
            "gen_loss": gen["loss"],
            "gen_accuracy": gen["accuracy"],
            "disc_loss": disc_loss,
            "disc_accuracy": sums.get("disc_correct", 0.0) / tokens,
            "replaced": sums.get("replaced", 0.0) / tokens,
        }

    def ranking(self) -> tuple[str, bool]:
        return "loss", False
