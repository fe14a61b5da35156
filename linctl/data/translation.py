"""`prepare translation` / `prepare wmt14`: parallel text to Arrow shards of source and target ids.

``OUT/tokenizer/tokenizer.json`` is a joint subword tokenizer (BPE or unigram, trained with `tokenizers`
on both sides of train) unless ``--tokenizer`` gives one; its special tokens are ``<pad> <unk> <s> </s>``.
``OUT/SPLIT/`` holds ``pairs-00000-of-00001.arrow`` (``source_ids``, ``target_ids``: list<int32>, no
<s> or </s>; ``source_text``, ``target_text``: the cleaned sentences, the references BLEU is computed
against) and ``manifest.json`` of kind ``translation``. Train pairs with an empty side, a side longer than
``max_length`` tokens (</s> included) or a length ratio above ``max_ratio`` are dropped and counted;
valid and test keep every pair, so that BLEU is over the whole test set. Every folder is claimed and
finished like every prepare output (``linctl.data.manifest``): a killed run resumes.
"""

import time
from collections import Counter
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from linctl.atomic import atomic_path, sha256_file
from linctl.data.manifest import claimed_output_dir, read_manifest
from linctl.data.options import TranslationOptions
from linctl.data.ragged import Ragged
from linctl.data.shards import read_table, shard_name, write_table
from linctl.data.sources.parallel import Cleaning, ParallelFiles, find_split, read_pairs, sniff
from linctl.errors import InputError

KIND = "translation"
TOKENIZER_KIND = "tokenizer"
TOKENIZER = "tokenizer.json"
SHARD = shard_name("pairs", 0, 1)
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")  # ids 0-3 of a tokenizer this command trains
ENCODE_LINES = 1 << 13


class SubwordTokenizer:
    """A `tokenizers` tokenizer.json with the special tokens translation needs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        try:
            self.tokenizer = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise InputError(f"--tokenizer {self.path}: not a `tokenizers` tokenizer.json ({exc})") from None
        ids = {token: self.tokenizer.token_to_id(token) for token in SPECIALS}
        missing = [token for token, found in ids.items() if found is None]
        if missing:
            raise InputError(
                f"--tokenizer {self.path}: has no {', '.join(missing)}; "
                f"translation needs {' '.join(SPECIALS)}"
            )
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (int(ids[token]) for token in SPECIALS)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @cached_property
    def sha256(self) -> str:
        return sha256_file(self.path)

    def encode(self, lines: list[str]) -> list[np.ndarray]:
        """Return the ids of each line (no special tokens added)."""
        encoded = self.tokenizer.encode_batch(lines, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encoded]

    def decode(self, rows: list[list[int]]) -> list[str]:
        """Return the text of each row of ids, special tokens left out."""
        return self.tokenizer.decode_batch(rows, skip_special_tokens=True)


def prepare_translation(options: TranslationOptions) -> dict[str, Any]:
    """Write the tokenizer (unless given) and one shard folder per split under ``options.output_dir``."""
    start = time.perf_counter()
    options = options.model_copy(update={"input": options.input.resolve()})
    out = Path(options.output_dir)
    files = {
        split: find_split(options.input, prefix, options.source_lang, options.target_lang, f"--{split}")
        for split, prefix in options.splits().items()
    }
    cleaning = {split: sniff(found) for split, found in files.items()}
    if options.tokenizer is not None:
        tokenizer, origin = SubwordTokenizer(options.tokenizer.resolve()), "given"
    else:
        tokenizer, origin = _train_tokenizer(options, files["train"], cleaning["train"], out / "tokenizer")
    summary: dict[str, Any] = {"tokenizer": f"{len(tokenizer):,} tokens, {tokenizer.path} ({origin})"}
    for split, found in files.items():
        summary[split] = _prepare_split(options, split, found, cleaning[split], tokenizer)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _describe(cleaning: Cleaning) -> str:
    done = [
        what
        for what, on in (("BPE joined", cleaning.join_bpe), ("Moses escapes undone", cleaning.unescape))
        if on
    ]
    return f" ({', '.join(done)})" if done else ""


def _train_tokenizer(
    options: TranslationOptions, files: ParallelFiles, cleaning: Cleaning, folder: Path
) -> tuple[SubwordTokenizer, str]:
    """Train the joint tokenizer on both sides of train into ``folder`` (or find it there, finished)."""
    recorded = {
        "train": files.describe(),
        "source_lang": options.source_lang,
        "target_lang": options.target_lang,
        "model": options.tokenizer_model,
        "vocab_size": options.vocab_size,
        "min_frequency": options.min_frequency,
        "special_tokens": list(SPECIALS),
        "join_bpe": cleaning.join_bpe,
        "unescape": cleaning.unescape,
    }
    with claimed_output_dir(folder, TOKENIZER_KIND, recorded, owned=[TOKENIZER]) as claim:
        if claim.done is not None:
            return SubwordTokenizer(folder / TOKENIZER), "trained earlier"
        if options.tokenizer_model == "bpe":
            tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
            trainer: Any = trainers.BpeTrainer(
                vocab_size=options.vocab_size,
                min_frequency=options.min_frequency,
                special_tokens=list(SPECIALS),
                show_progress=False,
            )
        else:
            tokenizer = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=options.vocab_size,
                special_tokens=list(SPECIALS),
                unk_token="<unk>",
                show_progress=False,
            )
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        lines = (side for src, tgt, _ in read_pairs(files, cleaning) for side in (src, tgt))
        tokenizer.train_from_iterator(lines, trainer=trainer)
        with atomic_path(folder / TOKENIZER) as tmp:
            tokenizer.save(str(tmp))
        found = SubwordTokenizer(folder / TOKENIZER)
        claim.finish({"vocab_size": len(found)}, [TOKENIZER])
    return found, f"trained on {files.describe()}{_describe(cleaning)}"


def split_options(
    options: TranslationOptions,
    split: str,
    files: ParallelFiles,
    cleaning: Cleaning,
    tokenizer: SubwordTokenizer,
) -> dict[str, Any]:
    """Return the options recorded in (and compared against) a split folder's manifest."""
    filtered = split == "train"
    return {
        "split": split,
        "input": files.describe(),
        "source_lang": options.source_lang,
        "target_lang": options.target_lang,
        "join_bpe": cleaning.join_bpe,
        "unescape": cleaning.unescape,
        "tokenizer_file": str(tokenizer.path),
        "tokenizer_sha256": tokenizer.sha256,
        "pad_id": tokenizer.pad_id,
        "bos_id": tokenizer.bos_id,
        "eos_id": tokenizer.eos_id,
        "max_length": options.max_length if filtered else None,
        "max_ratio": options.max_ratio if filtered else None,
    }


def _prepare_split(
    options: TranslationOptions,
    split: str,
    files: ParallelFiles,
    cleaning: Cleaning,
    tokenizer: SubwordTokenizer,
) -> str:
    """Write ``split``'s folder unless a run with the same options finished it; return its summary row."""
    start = time.perf_counter()
    folder = Path(options.output_dir) / split
    recorded = split_options(options, split, files, cleaning, tokenizer)
    with claimed_output_dir(folder, KIND, recorded, owned=[SHARD]) as claim:
        if claim.done is not None:
            return _row(claim.done["counts"], time.perf_counter() - start, " (already complete)")
        counts = _write_pairs(folder, files, cleaning, tokenizer, recorded)
        claim.finish(counts, [SHARD])
    return _row(counts, time.perf_counter() - start, _describe(cleaning))


def _row(counts: dict[str, Any], seconds: float, status: str) -> str:
    dropped = counts["dropped_empty"] + counts["dropped_length"] + counts["dropped_ratio"]
    return (
        f"{counts['pairs']:,} pairs kept of {counts['read']:,} (dropped: {counts['dropped_empty']:,} empty, "
        f"{counts['dropped_length']:,} too long, {counts['dropped_ratio']:,} length ratio; "
        f"{dropped:,} in all), "
        f"{counts['source_tokens']:,} + {counts['target_tokens']:,} tokens, {seconds:.1f} s{status}"
    )


def _write_pairs(
    folder: Path,
    files: ParallelFiles,
    cleaning: Cleaning,
    tokenizer: SubwordTokenizer,
    recorded: dict[str, Any],
) -> dict[str, Any]:
    """Encode, filter and write the pairs of ``files`` to ``folder/SHARD``; return the counts."""
    limit, ratio = recorded["max_length"], recorded["max_ratio"]
    stats: Counter = Counter(read=0, pairs=0, dropped_empty=0, dropped_length=0, dropped_ratio=0)
    kept: dict[str, list] = {"source_ids": [], "target_ids": [], "source_text": [], "target_text": []}
    pairs = read_pairs(files, cleaning)
    while chunk := list(islice(pairs, ENCODE_LINES)):
        sources = tokenizer.encode([src for src, _, _ in chunk])
        targets = tokenizer.encode([tgt for _, tgt, _ in chunk])
        for (src, tgt, _), src_ids, tgt_ids in zip(chunk, sources, targets, strict=True):
            stats["read"] += 1
            n, m = len(src_ids) + 1, len(tgt_ids) + 1  # </s> ends both sides
            if limit is not None:
                if not len(src_ids) or not len(tgt_ids):
                    stats["dropped_empty"] += 1
                    continue
                if max(n, m) > limit:
                    stats["dropped_length"] += 1
                    continue
                if max(n, m) > ratio * min(n, m):
                    stats["dropped_ratio"] += 1
                    continue
            kept["source_ids"].append(src_ids)
            kept["target_ids"].append(tgt_ids)
            kept["source_text"].append(src)
            kept["target_text"].append(tgt)
            stats["pairs"] += 1
    if not stats["pairs"]:
        raise InputError(f"{files.describe()}: no pair left to write (read {stats['read']:,}; {dict(stats)})")
    table = pa.table(
        {
            "source_ids": Ragged.from_rows(kept["source_ids"]).to_arrow(),
            "target_ids": Ragged.from_rows(kept["target_ids"]).to_arrow(),
            "source_text": pa.array(kept["source_text"], pa.string()),
            "target_text": pa.array(kept["target_text"], pa.string()),
        }
    )
    write_table(folder / SHARD, table)
    source_lengths = np.fromiter((len(row) for row in kept["source_ids"]), dtype=np.int64)
    target_lengths = np.fromiter((len(row) for row in kept["target_ids"]), dtype=np.int64)
    return {
        **stats,
        "source_tokens": int(source_lengths.sum()),
        "target_tokens": int(target_lengths.sum()),
        "longest_source": int(source_lengths.max()) + 1,
        "longest_target": int(target_lengths.max()) + 1,
        "vocab_size": len(tokenizer),
    }


class ParallelShards:
    """One split folder of `prepare translation`, read back memory-mapped (checked like every shard set)."""

    def __init__(self, folder: Path, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest: dict[str, Any] = read_manifest(self.folder, kind=KIND, verify=verify)
        options = self.manifest["options"]
        path = Path(options["tokenizer_file"])
        if not path.is_file():
            raise InputError(f"{self.folder}/manifest.json: tokenizer {path} not found")
        if verify and sha256_file(path) != options["tokenizer_sha256"]:
            raise InputError(f"{path}: not the tokenizer {self.folder} was prepared with (sha256 differs)")
        self.tokenizer_file = path
        table = read_table(self.folder / SHARD)
        self.source = Ragged.from_arrow(table.column("source_ids"))
        self.target = Ragged.from_arrow(table.column("target_ids"))
        self.target_text: pa.ChunkedArray = table.column("target_text")
        self.pad_id, self.bos_id, self.eos_id = options["pad_id"], options["bos_id"], options["eos_id"]

    def __len__(self) -> int:
        return len(self.source)

    def references(self, count: int | None = None) -> list[str]:
        """Return the reference translations of the first ``count`` pairs (None: all)."""
        return self.target_text.slice(0, count).to_pylist()
