"""`linctl prepare …`: raw corpora to part files, vocabularies and Arrow shards."""

from pathlib import Path
from typing import Annotated

import typer

from linctl.atomic import check_writable_folder
from linctl.cli.command import LinctlCommand
from linctl.cli.errors import LinctlGroup
from linctl.cli.options import (
    ConfigOpt,
    InputPrefixOpt,
    OverridesOpt,
    SeedOpt,
    SpacyModelOpt,
    WorkersOpt,
    build_options,
    print_summary,
)
from linctl.data.options import (
    GlueOptions,
    MlmOptions,
    TranslationOptions,
    VocabOptions,
    WikicorpusOptions,
    WikitextOptions,
    Wmt14Options,
)

# The schemas' defaults, so that --help shows what a run will use.
_WIKI, _VOCAB, _MLM, _GLUE, _LM, _MT, _WMT = (
    schema.model_construct()
    for schema in (
        WikicorpusOptions,
        VocabOptions,
        MlmOptions,
        GlueOptions,
        WikitextOptions,
        TranslationOptions,
        Wmt14Options,
    )
)

prepare_app = typer.Typer(help="Turn raw corpora into training data.", cls=LinctlGroup, no_args_is_help=True)


@prepare_app.command("wikicorpus", cls=LinctlCommand)
def wikicorpus(
    ctx: typer.Context,
    input: Annotated[
        Path,
        typer.Option(
            help="A MediaWiki XML dump (.xml, .xml.bz2), a folder of WikiExtractor output, "
            "or WikiText-style files (a file or folder; plain or .gz)."
        ),
    ],
    output_dir: Annotated[Path, typer.Option(help="Where part files, eval.txt and metadata.txt go.")],
    num_parts: Annotated[int, typer.Option(help="Number of part files (part-00000-of-00500 …).")] = (
        _WIKI.num_parts
    ),
    eval_articles: Annotated[int, typer.Option(help="Articles held out (seeded) into eval.txt.")] = (
        _WIKI.eval_articles
    ),
    workers: WorkersOpt = None,
    seed: SeedOpt = _WIKI.seed,
    spacy_model: SpacyModelOpt = _WIKI.spacy_model,
) -> None:
    """Wikipedia to the MLCommons BERT layout: one sentence per line, a blank line between articles."""
    options = build_options(ctx, WikicorpusOptions)
    check_writable_folder(options.output_dir, "--output-dir")
    from linctl.data.corpus import prepare_wikicorpus

    summary = prepare_wikicorpus(options)
    print_summary(f"prepare wikicorpus → {output_dir}", summary)


@prepare_app.command("vocab", cls=LinctlCommand)
def vocab(
    ctx: typer.Context,
    metadata_files: Annotated[
        list[Path], typer.Option(help="Text files listing input files, one per line (repeatable).")
    ],
    output_dir: Annotated[Path, typer.Option(help="Folder for vocab.txt.")],
    vocab_size: Annotated[
        int, typer.Option(help="Tokens in the vocabulary, special ones included.")
    ] = _VOCAB.vocab_size,
    do_lower_case: Annotated[
        bool, typer.Option(help="Lower-case (and strip accents) before training: an uncased vocabulary.")
    ] = _VOCAB.do_lower_case,
    min_frequency: Annotated[
        int, typer.Option(help="Least count for a merged piece.")
    ] = _VOCAB.min_frequency,
    input_files_prefix: InputPrefixOpt = "",
    workers: WorkersOpt = None,
) -> None:
    """Train a BERT-compatible WordPiece vocab.txt on the files listed in metadata files.

    The same inputs and options give the same vocab.txt byte for byte, whatever --workers.
    """
    options = build_options(ctx, VocabOptions)
    check_writable_folder(options.output_dir, "--output-dir")
    from linctl.data.tokenizer import train_vocab

    summary = train_vocab(options)
    print_summary(f"prepare vocab → {output_dir / 'vocab.txt'}", summary)


@prepare_app.command("mlm", cls=LinctlCommand)
def mlm(
    ctx: typer.Context,
    metadata_files: Annotated[
        list[Path] | None,
        typer.Option(help="Text files listing input files, one per line (repeatable). Required."),
    ] = None,
    vocab_file: Annotated[Path | None, typer.Option(help="WordPiece vocab.txt. Required.")] = None,
    multiple_docs_in_single_file: Annotated[
        bool, typer.Option(help="An input file holds several documents split by --multiple-docs-separator.")
    ] = _MLM.multiple_docs_in_single_file,
    multiple_docs_separator: Annotated[
        str, typer.Option(help=r"Line that separates documents; '\n' means a blank line.")
    ] = r"\n",
    single_sentence_per_line: Annotated[
        bool, typer.Option(help="Inputs hold one sentence per line: no spaCy splitting.")
    ] = _MLM.single_sentence_per_line,
    allow_cross_document_examples: Annotated[
        bool, typer.Option(help="An example may span documents, joined by --document-separator-token.")
    ] = _MLM.allow_cross_document_examples,
    document_separator_token: Annotated[
        str, typer.Option(help="Token put between documents within an example.")
    ] = _MLM.document_separator_token,
    overlap_size: Annotated[
        int | None, typer.Option(help="Tokens shared by consecutive examples [default: max-seq-length/4].")
    ] = None,
    buffer_size: Annotated[int, typer.Option(help="Tokens processed at a time.")] = _MLM.buffer_size,
    input_files_prefix: InputPrefixOpt = "",
    do_lower_case: Annotated[
        bool, typer.Option(help="Lower-case input: for uncased vocabularies.")
    ] = _MLM.do_lower_case,
    max_seq_length: Annotated[int, typer.Option(help="Tokens per example, [CLS] and [SEP] included.")] = (
        _MLM.max_seq_length
    ),
    dupe_factor: Annotated[
        int, typer.Option(help="Passes over the data, each with other masks.")
    ] = _MLM.dupe_factor,
    short_seq_prob: Annotated[float, typer.Option(help="Chance of a shorter example.")] = _MLM.short_seq_prob,
    min_short_seq_length: Annotated[
        int | None, typer.Option(help="Fewest tokens in a short example [default: 2 + overlap].")
    ] = None,
    disable_masking: Annotated[
        bool, typer.Option(help="Write unmasked examples, for dynamic masking at train time.")
    ] = _MLM.disable_masking,
    masked_lm_prob: Annotated[float, typer.Option(help="Fraction of tokens to mask.")] = _MLM.masked_lm_prob,
    max_predictions_per_seq: Annotated[int, typer.Option(help="Most masked positions per example.")] = (
        _MLM.max_predictions_per_seq
    ),
    spacy_model: SpacyModelOpt = _MLM.spacy_model,
    mask_whole_word: Annotated[bool, typer.Option(help="Mask all WordPieces of a word together.")] = (
        _MLM.mask_whole_word
    ),
    output_dir: Annotated[
        Path, typer.Option(help="Folder for the shards and manifest.json.")
    ] = _MLM.output_dir,
    num_output_files: Annotated[int, typer.Option(help="Number of shards.")] = _MLM.num_output_files,
    name: Annotated[str, typer.Option(help="Shard name prefix: NAME-00000-of-00010.arrow.")] = _MLM.name,
    seed: SeedOpt = _MLM.seed,
    workers: WorkersOpt = None,
    shard_index: Annotated[
        int, typer.Option(help="This machine's slice of the input files: those i with i % num-shards == it.")
    ] = _MLM.shard_index,
    num_shards: Annotated[
        int, typer.Option(help="Machines sharing the input files, each with its own --output-dir.")
    ] = _MLM.num_shards,
    config: ConfigOpt = None,
    set_: OverridesOpt = None,
) -> None:
    """MLM-only examples as Arrow shards: the Cerebras create_tfrecords_mlm_only recipe."""
    options = build_options(ctx, MlmOptions, config, set_)
    check_writable_folder(options.output_dir, "--output-dir")
    from linctl.data.mlm_shards import prepare_mlm

    summary = prepare_mlm(options)
    print_summary(f"prepare mlm → {options.output_dir}", summary)


@prepare_app.command("merge-manifests", cls=LinctlCommand)
def merge_manifests(
    input: Annotated[
        list[Path],
        typer.Option(
            help="The output folder of a slice of `prepare mlm --num-shards N` (repeatable): each once."
        ),
    ],
    output_dir: Annotated[
        Path, typer.Option(help="Folder that gets the one manifest.json; the shards stay where they are.")
    ],
) -> None:
    """Describe the shard folders of the slices of one `prepare mlm` recipe as one folder."""
    check_writable_folder(output_dir, "--output-dir")
    from linctl.data.manifest_merge import merge_manifests as merge

    summary = merge(input, output_dir)
    print_summary(f"prepare merge-manifests → {output_dir}", summary)


@prepare_app.command("glue", cls=LinctlCommand)
def glue(
    ctx: typer.Context,
    task: Annotated[
        str | None, typer.Option(metavar="TASK", help="The GLUE task, in any case. Required.")
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option(
            help="The task's folder: GLUE TSVs, STS Benchmark CSVs, RTE/MNLI JSONL or CoLA raw/. Required."
        ),
    ] = None,
    vocab_file: Annotated[Path | None, typer.Option(help="WordPiece vocab.txt. Required.")] = None,
    max_seq_length: Annotated[
        int, typer.Option(help="Tokens per example, [CLS] and [SEP] included; pairs are cut longest-first.")
    ] = _GLUE.max_seq_length,
    do_lower_case: Annotated[
        bool, typer.Option(help="Lower-case input: for uncased vocabularies.")
    ] = _GLUE.do_lower_case,
    format: Annotated[
        str, typer.Option(metavar="FORMAT", help="Input layout; auto: told by the files there.")
    ] = _GLUE.format,
    splits: Annotated[
        str | None,
        typer.Option(help="Comma-separated splits to prepare, e.g. dev,test [default: all found]."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Folder that gets one shard folder per split. Required.")
    ] = None,
    config: ConfigOpt = None,
    set_: OverridesOpt = None,
) -> None:
    """GLUE task to BERT classifier features: [CLS] A [SEP] (B [SEP]) shards, one folder per split."""
    options = build_options(ctx, GlueOptions, config, set_)
    check_writable_folder(options.output_dir, "--output-dir")
    from linctl.data.glue_features import prepare_glue

    summary = prepare_glue(options)
    print_summary(f"prepare glue → {options.output_dir}", summary)


@prepare_app.command("wikitext", cls=LinctlCommand)
def wikitext(
    ctx: typer.Context,
    input: Annotated[
        Path | None,
        typer.Option(
            help="Folder of WikiText-2/103 splits: wiki.{train,valid,test}.tokens or {train,valid,test}.txt, "
            "plain, .gz or .bz2. Required."
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(help="Folder that gets vocab.txt and one token-stream folder per split. Required."),
    ] = None,
    splits: Annotated[
        str | None,
        typer.Option(help="Comma-separated splits to prepare, e.g. valid,test [default: all found]."),
    ] = None,
    tokenizer: Annotated[
        str,
        typer.Option(
            metavar="TOKENIZER",
            help="word: whitespace-separated words, <eos> ending each line; wordpiece: BERT WordPieces of "
            "--vocab-file, [SEP] ending each line.",
        ),
    ] = _LM.tokenizer,
    vocab_file: Annotated[
        Path | None,
        typer.Option(
            help="A word vocab.txt made earlier by this command, or for wordpiece a BERT vocab.txt "
            "[default: word vocabulary built from train into OUTPUT_DIR/vocab.txt].",
        ),
    ] = None,
    do_lower_case: Annotated[
        bool, typer.Option(help="Lower-case input (wordpiece only): for uncased vocabularies.")
    ] = _LM.do_lower_case,
    config: ConfigOpt = None,
    set_: OverridesOpt = None,
) -> None:
    """WikiText to language-model token streams, as fairseq-preprocess --only-source sees them."""
    options = build_options(ctx, WikitextOptions, config, set_)
    check_writable_folder(options.output_dir, "--output-dir")
    from linctl.data.lm_tokens import prepare_wikitext

    summary = prepare_wikitext(options)
    print_summary(f"prepare wikitext → {options.output_dir}", summary)


def _translation(ctx: typer.Context, schema: type[TranslationOptions], name: str) -> None:
    options = build_options(ctx, schema, ctx.params.get("config"), ctx.params.get("set_"))
    check_writable_folder(options.output_dir, "--output-dir")
    from linctl.data.translation import prepare_translation

    summary = prepare_translation(options)
    print_summary(f"prepare {name} → {options.output_dir}", summary)


SplitOpt = Annotated[
    str | None,
    typer.Option(
        help="File prefix of the split under --input: PREFIX.SRC + PREFIX.TGT or PREFIX[.SRC-TGT].csv."
    ),
]
TokenizerOpt = Annotated[
    Path | None,
    typer.Option(
        help="A `tokenizers` tokenizer.json with <pad> <unk> <s> </s> [default: train one on train]."
    ),
]
TokenizerModelOpt = Annotated[
    str,
    typer.Option(metavar="MODEL", help="bpe or unigram: the subword model trained on both sides of train."),
]
VocabSizeOpt = Annotated[
    int, typer.Option(help="Tokens in the trained joint vocabulary, special ones included.")
]
MinFrequencyOpt = Annotated[int, typer.Option(help="Least count for a BPE merge.")]
MaxLengthOpt = Annotated[
    int, typer.Option(help="Train pairs with a side longer than this (</s> included) go.")
]
MaxRatioOpt = Annotated[
    float, typer.Option(help="Train pairs whose longer side exceeds this × the shorter go.")
]


@prepare_app.command("translation", cls=LinctlCommand)
def translation(
    ctx: typer.Context,
    input: Annotated[Path | None, typer.Option(help="Folder of the parallel text. Required.")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Folder for tokenizer/ and one shard folder per split. Required.")
    ] = None,
    source_lang: Annotated[
        str | None, typer.Option(help="Source language, as file names end (en). Required.")
    ] = None,
    target_lang: Annotated[str | None, typer.Option(help="Target language (de). Required.")] = None,
    train: SplitOpt = _MT.train,
    valid: SplitOpt = _MT.valid,
    test: SplitOpt = _MT.test,
    tokenizer: TokenizerOpt = None,
    tokenizer_model: TokenizerModelOpt = _MT.tokenizer_model,
    vocab_size: VocabSizeOpt = _MT.vocab_size,
    min_frequency: MinFrequencyOpt = _MT.min_frequency,
    max_length: MaxLengthOpt = _MT.max_length,
    max_ratio: MaxRatioOpt = _MT.max_ratio,
    config: ConfigOpt = None,
    set_: OverridesOpt = None,
) -> None:
    """Parallel text of any language pair to source/target id shards with a joint subword tokenizer."""
    _translation(ctx, TranslationOptions, "translation")


@prepare_app.command("wmt14", cls=LinctlCommand)
def wmt14(
    ctx: typer.Context,
    input: Annotated[Path | None, typer.Option(help="The WMT14 en-de folder. Required.")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Folder for tokenizer/ and train/, valid/, test/. Required.")
    ] = None,
    source_lang: Annotated[str, typer.Option(help="Source language.")] = _WMT.source_lang,
    target_lang: Annotated[str, typer.Option(help="Target language.")] = _WMT.target_lang,
    train: SplitOpt = _WMT.train,
    valid: SplitOpt = _WMT.valid,
    test: SplitOpt = _WMT.test,
    tokenizer: TokenizerOpt = None,
    tokenizer_model: TokenizerModelOpt = _WMT.tokenizer_model,
    vocab_size: VocabSizeOpt = _WMT.vocab_size,
    min_frequency: MinFrequencyOpt = _WMT.min_frequency,
    max_length: MaxLengthOpt = _WMT.max_length,
    max_ratio: MaxRatioOpt = _WMT.max_ratio,
    config: ConfigOpt = None,
    set_: OverridesOpt = None,
) -> None:
    """WMT14 English-German: train (found one folder down too), newstest2013 valid, newstest2014 test."""
    _translation(ctx, Wmt14Options, "wmt14")
