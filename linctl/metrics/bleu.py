"""Corpus BLEU and chrF of detokenized hypotheses against one reference each, scored by sacrebleu, with
the signature that says how (sacrebleu's tokenizer, smoothing, casing and version)."""

from collections.abc import Sequence
from typing import Literal, NamedTuple

BleuTokenize = Literal["13a", "intl", "none", "char"]  # sacrebleu's --tokenize choices for these languages


class Scores(NamedTuple):
    """BLEU and chrF of a corpus, and the sacrebleu signature of each."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str


def corpus_scores(
    hypotheses: Sequence[str], references: Sequence[str], tokenize: BleuTokenize = "13a"
) -> Scores:
    """Return corpus BLEU (sacrebleu's defaults but ``tokenize``) and chrF of ``hypotheses``."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu, chrf = BLEU(tokenize=tokenize), CHRF()
    refs = [list(references)]
    return Scores(
        bleu.corpus_score(list(hypotheses), refs).score,
        chrf.corpus_score(list(hypotheses), refs).score,
        str(bleu.get_signature()),
        str(chrf.get_signature()),
    )
