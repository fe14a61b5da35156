"""The options of the `linctl prepare` commands: one schema each, checked at load like every config."""

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    field_validator,
    model_validator,
)

from linctl.config.strict import Strict
from linctl.data.sources.glue import FORMATS, task_named
from linctl.data.sources.wikitext import SPLITS

LmTokenizer = Literal["word", "wordpiece"]


def comma_separated(value: object) -> object:
    """Return ``"a,b"`` (a list as typed on the command line) as ``["a", "b"]``; other values as they are."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def default_workers() -> int:
    """Return the number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class WikicorpusOptions(Strict):
    """`linctl prepare wikicorpus`: a Wikipedia dump to the MLCommons BERT part-file layout."""

    input: Path
    output_dir: Path
    num_parts: int = Field(500, ge=1, le=99_999)
    eval_articles: NonNegativeInt = 10_000
    workers: PositiveInt = Field(default_factory=default_workers)
    seed: int = 12345
    spacy_model: str = "en_core_web_sm"


class VocabOptions(Strict):
    """`linctl prepare vocab`: train a BERT-compatible WordPiece vocabulary."""

    metadata_files: list[Path] = Field(min_length=1)
    input_files_prefix: str = ""
    output_dir: Path
    vocab_size: int = Field(30_522, ge=106, le=1_000_000)
    do_lower_case: bool = False
    min_frequency: PositiveInt = 2
    workers: PositiveInt = Field(default_factory=default_workers)


class MlmOptions(Strict):
    """`linctl prepare mlm`: MLM-only examples as Arrow shards (Cerebras' create_tfrecords_mlm_only)."""

    metadata_files: list[Path] = Field(min_length=1)
    multiple_docs_in_single_file: bool = False
    multiple_docs_separator: str = Field(r"\n", min_length=1)  # r"\n" (as typed) is a newline
    single_sentence_per_line: bool = False
    allow_cross_document_examples: bool = False
    document_separator_token: str = "[SEP]"
    overlap_size: NonNegativeInt | None = None
    buffer_size: PositiveInt = 1_000_000
    input_files_prefix: str = ""
    vocab_file: Path
    do_lower_case: bool = False
    max_seq_length: int = Field(128, ge=8, le=65_536)
    dupe_factor: PositiveInt = 10
    short_seq_prob: float = Field(0.1, ge=0, le=1)
    min_short_seq_length: PositiveInt | None = None
    disable_masking: bool = False
    masked_lm_prob: float = Field(0.15, gt=0, lt=1)
    max_predictions_per_seq: PositiveInt = 20
    spacy_model: str = "en_core_web_sm"
    mask_whole_word: bool = False
    output_dir: Path = Path("shards")
    num_output_files: PositiveInt = 10
    name: str = Field("examples", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    seed: int = 0
    workers: PositiveInt = Field(default_factory=default_workers)
    shard_index: NonNegativeInt = 0  # this machine's slice of the input files: those i with i % N == index
    num_shards: PositiveInt = 1  # N, the machines preparing one corpus (`prepare merge-manifests` joins them)

    @property
    def max_body(self) -> int:
        """Tokens of an example between [CLS] and [SEP]."""
        return self.max_seq_length - 2

    @property
    def overlap(self) -> int:
        """Tokens shared by consecutive windows of a document (default: a quarter of max_seq_length)."""
        return self.max_seq_length // 4 if self.overlap_size is None else self.overlap_size

    @property
    def min_short(self) -> int:
        """Shortest body drawn for a short example (default: 2 + overlap)."""
        return 2 + self.overlap if self.min_short_seq_length is None else self.min_short_seq_length

    @model_validator(mode="after")
    def _lengths_fit(self) -> Self:
        if self.shard_index >= self.num_shards:
            raise ValueError(
                f"shard_index ({self.shard_index}) must be < num_shards ({self.num_shards}): "
                f"the slices are 0 to {self.num_shards - 1}"
            )
        if self.overlap >= self.max_body - 1:
            raise ValueError(
                f"overlap_size ({self.overlap}) must be < max_seq_length - 3 ({self.max_body - 1}) "
                "so that each window advances"
            )
        if not 2 + self.overlap <= self.min_short < self.max_body:
            raise ValueError(
                f"min_short_seq_length ({self.min_short}) must be in [2 + overlap_size, max_seq_length - 2) "
                f"= [{2 + self.overlap}, {self.max_body})"
            )
        return self


class GlueOptions(Strict):
    """`linctl prepare glue`: a GLUE task's splits to BERT classifier features as Arrow shards."""

    task: str
    input: Path
    vocab_file: Path
    output_dir: Path
    max_seq_length: int = Field(128, ge=5, le=65_536)
    do_lower_case: bool = False
    format: str = "auto"
    splits: list[str] | None = Field(None, min_length=1)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        return task_named(value).name

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("auto", *FORMATS):
            raise ValueError(f"unknown input format; choose auto, {', '.join(FORMATS)}")
        return value

    _splits_typed = field_validator("splits", mode="before")(comma_separated)


class WikitextOptions(Strict):
    """`linctl prepare wikitext`: WikiText splits to language-model token streams, one folder per split."""

    input: Path
    output_dir: Path
    splits: list[str] | None = Field(None, min_length=1)
    tokenizer: LmTokenizer = "word"
    vocab_file: Path | None = None
    do_lower_case: bool = False

    _splits_typed = field_validator("splits", mode="before")(comma_separated)

    @field_validator("splits")
    @classmethod
    def _known_splits(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [split for split in value if split not in SPLITS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a WikiText split; choose from {', '.join(SPLITS)}")
        return [split for split in SPLITS if split in value]  # each once, in the release's order

    @model_validator(mode="after")
    def _tokenizer_needs(self) -> Self:
        if self.tokenizer == "wordpiece" and self.vocab_file is None:
            raise ValueError("tokenizer wordpiece needs vocab_file, a WordPiece (BERT) vocab.txt")
        if self.tokenizer == "word" and self.do_lower_case:
            raise ValueError(
                "do_lower_case applies to tokenizer wordpiece; the word tokenizer keeps WikiText's words as "
                "they are"
            )
        return self


TokenizerModel = Literal["bpe", "unigram"]
LANGUAGE = r"^[A-Za-z][A-Za-z0-9_-]{0,15}$"  # a language code as it ends file names: en, de, pt_BR


class TranslationOptions(Strict):
    """`linctl prepare translation`: parallel text to source/target id shards, one folder per split.

    A split is a file prefix under ``input``: PREFIX.SRC and PREFIX.TGT (plain, .gz or .bz2), or a CSV
    (PREFIX.csv, PREFIX.SRC-TGT.csv, PREFIX.TGT-SRC.csv) whose header names the two languages.
    """

    input: Path
    output_dir: Path
    source_lang: str = Field(pattern=LANGUAGE)
    target_lang: str = Field(pattern=LANGUAGE)
    train: str | None = "train"  # file prefixes; None or "" leaves the split out
    valid: str | None = "valid"
    test: str | None = "test"
    tokenizer: Path | None = None  # a tokenizers tokenizer.json made earlier; None: train one on train
    tokenizer_model: TokenizerModel = "bpe"
    vocab_size: int = Field(8000, ge=64, le=1_000_000)
    min_frequency: PositiveInt = 2
    max_length: int = Field(250, ge=2, le=65_536)  # train pairs with a side longer (</s> included) go
    max_ratio: float = Field(1.5, ge=1.0)  # train pairs whose longer side exceeds ratio × the shorter go

    @model_validator(mode="after")
    def _languages_differ(self) -> Self:
        if self.source_lang == self.target_lang:
            raise ValueError(f"source_lang and target_lang are both {self.source_lang!r}; give two languages")
        if not any((self.train, self.valid, self.test)):
            raise ValueError("train, valid and test are all empty: give at least one split's file prefix")
        if not self.train and self.tokenizer is None:
            raise ValueError("without a train split there is nothing to train a tokenizer on; pass tokenizer")
        return self

    def splits(self) -> dict[str, str]:
        """Return split name -> file prefix of the splits to prepare."""
        named = {"train": self.train, "valid": self.valid, "test": self.test}
        return {split: prefix for split, prefix in named.items() if prefix}


class Wmt14Options(TranslationOptions):
    """`linctl prepare wmt14`: WMT14 English-German, newstest2013 as valid and newstest2014 as test."""

    source_lang: str = Field("en", pattern=LANGUAGE)
    target_lang: str = Field("de", pattern=LANGUAGE)
    valid: str | None = "newstest2013"
    test: str | None = "newstest2014"


PREPARE_SCHEMAS: dict[str, type[Strict]] = {
    "prepare-translation": TranslationOptions,
    "prepare-wmt14": Wmt14Options,
    "prepare-glue": GlueOptions,
    "prepare-mlm": MlmOptions,
    "prepare-wikitext": WikitextOptions,
    "prepare-wikicorpus": WikicorpusOptions,
    "prepare-vocab": VocabOptions,
}  # a config file named prepare-<command>*.yaml holds that command's options
