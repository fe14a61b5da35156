"""Sentence splitting with spaCy: a trained pipeline when installed, else blank English + sentencizer."""

from collections.abc import Iterator

import spacy
from spacy.language import Language

from linctl.progress import warn

# Components that do not set sentence boundaries; excluded so that loading and running stay cheap.
HEAVY_COMPONENTS = (
    "tagger",
    "morphologizer",
    "attribute_ruler",
    "lemmatizer",
    "ner",
    "entity_ruler",
    "entity_linker",
    "textcat",
    "textcat_multilabel",
    "spancat",
    "span_finder",
)
SENTENCE_SETTERS = ("parser", "senter", "sentencizer")


def load_sentencizer(name: str, *, warn_fallback: bool = True) -> Language:
    """Load spaCy pipeline ``name`` for sentence splitting; fall back to the rule-based sentencizer.

    A trained pipeline keeps its parser (or senter), which sets the sentence boundaries. When ``name``
    is not installed, a blank English pipeline with the ``sentencizer`` component is used instead and a
    warning says so (unless ``warn_fallback`` is False, e.g. in worker processes after the main one warned).
    """
    try:
        nlp = spacy.load(name, exclude=list(HEAVY_COMPONENTS))
    except OSError as exc:
        if warn_fallback:
            reason = str(exc).split(". ", 1)[0]
            warn(
                f"spaCy model {name!r} not loaded ({reason}): splitting sentences with blank English + the "
                f"rule-based sentencizer; `python -m spacy download {name}` installs the trained splitter"
            )
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp
    if not any(nlp.has_pipe(setter) for setter in SENTENCE_SETTERS):
        if "senter" in nlp.disabled:
            nlp.enable_pipe("senter")
        else:
            nlp.add_pipe("sentencizer")
    return nlp


def split_sentences(nlp: Language, paragraphs: list[str], batch_size: int = 256) -> list[list[str]]:
    """Return the sentences of each paragraph, stripped, empty ones left out.

    A paragraph longer than ``nlp.max_length`` is cut at spaces into pieces spaCy accepts; a sentence
    running over a cut is split there.
    """
    pieces: list[str] = []
    owners: list[int] = []
    for index, paragraph in enumerate(paragraphs):
        for piece in _pieces(paragraph, nlp.max_length):
            pieces.append(piece)
            owners.append(index)
    sentences: list[list[str]] = [[] for _ in paragraphs]
    for owner, doc in zip(owners, nlp.pipe(pieces, batch_size=batch_size), strict=True):
        sentences[owner].extend(text for sent in doc.sents if (text := sent.text.strip()))
    return sentences


def _pieces(text: str, limit: int) -> Iterator[str]:
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > 0 else limit
        yield text[:cut]
        text = text[cut:]
    yield text
