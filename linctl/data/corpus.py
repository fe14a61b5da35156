"""Wikipedia to the MLCommons BERT text layout: part files, a held-out eval file and a metadata list.

The output folder holds ``part-00000-of-00500`` … (one sentence per line, a blank line between articles),
``eval.txt`` (held-out articles, same format), ``metadata.txt`` (the part files' absolute paths, in order)
and ``manifest.json``.

The main process streams pages and filters them by namespace, redirect and title; a process pool strips
markup and splits sentences on batches of pages, and the results are consumed in submission order, so
the output is the same for any number of workers. Held-out articles are drawn by reservoir sampling,
seeded, so memory is bounded by the eval set however big the dump.

A stream cannot be resumed part-way (where page N starts in a bz2 file is unknown without reading up to
it), so every file is written under a temporary name and all are renamed at the end: a killed run leaves
complete files or none, and a rerun redoes the work and ends with the same bytes.
"""

import random
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from pathlib import Path

from spacy.language import Language

from linctl.atomic import atomic_path, write_text_atomic
from linctl.data.manifest import claimed_output_dir
from linctl.data.options import WikicorpusOptions
from linctl.data.sentences import load_sentencizer, split_sentences
from linctl.data.sources.wikicorpus import (
    DISAMBIGUATION,
    LISTS,
    OTHER_NAMESPACES,
    REDIRECTS,
    Page,
    WikiInput,
    article_paragraphs,
    detect_input,
    drop_reason,
)
from linctl.data.workers import worker_pool
from linctl.errors import ConfigError, InputError
from linctl.progress import progress

KIND = "wikicorpus"
EVAL_FILE = "eval.txt"
METADATA_FILE = "metadata.txt"
OWNED = ["part-*", EVAL_FILE, METADATA_FILE]
EMPTY = "empty"  # pages with no prose left once markup is stripped
BATCH_CHARS = 1 << 16  # characters of page text sent to a worker at a time
BATCH_PAGES = 64
Article = list[str]  # its sentences, in order

_worker_nlp: Language | None = None  # a worker's sentencizer: inherited when forked, else by _start_worker


def part_names(num_parts: int) -> list[str]:
    """Return the part file names: part-00000-of-00500 … part-00499-of-00500."""
    return [f"part-{i:05d}-of-{num_parts:05d}" for i in range(num_parts)]


def prepare_wikicorpus(options: WikicorpusOptions) -> dict[str, int | float]:
    """Write the MLCommons BERT layout of ``options.input`` to ``options.output_dir``; return the summary.

    A folder that already holds this run's complete output is left as it is and its counts returned.
    """
    start = time.perf_counter()
    source = detect_input(options.input)
    out = Path(options.output_dir)
    if source.path.is_dir() and out.resolve().is_relative_to(source.path.resolve()):
        raise ConfigError(f"--output-dir {out}: inside --input {source.path}; pick a folder outside it")
    dumped = {**options.model_dump(), "input": source.path.resolve()}
    with claimed_output_dir(out, KIND, dumped, OWNED, ignore=["workers", "output_dir"]) as claim:
        if claim.done is not None:
            return dict(claim.done["counts"])
        names = part_names(options.num_parts)
        counts = _write_layout(source, options, out, names)
        metadata = "".join(f"{(out / name).resolve()}\n" for name in names)
        write_text_atomic(out / METADATA_FILE, metadata)
        claim.finish(counts, [*names, EVAL_FILE, METADATA_FILE])
    return {**counts, "seconds": round(time.perf_counter() - start, 2)}


def _write_layout(
    source: WikiInput, options: WikicorpusOptions, out: Path, names: list[str]
) -> dict[str, int]:
    """Write the part files and eval.txt (all renamed into place only if every page went well)."""
    counts = {"articles read": 0}
    counts.update(
        {f"{reason} dropped": 0 for reason in (REDIRECTS, DISAMBIGUATION, LISTS, OTHER_NAMESPACES, EMPTY)}
    )
    held_out: list[tuple[int, Article]] = []  # (index among kept articles, sentences): the reservoir
    rng = random.Random(options.seed)
    kept = sentences = 0
    with _Sentences(options) as splitter, ExitStack() as renames:
        # Leaving the stack renames every temporary file into place, or deletes them all on an error.
        eval_tmp = renames.enter_context(atomic_path(out / EVAL_FILE))
        parts = _Parts([renames.enter_context(atomic_path(out / name)) for name in names])
        with progress(f"wikicorpus {source.path.name}", source.total_bytes) as advance:

            def kept_pages() -> Iterator[Page]:
                for page in source.pages(advance):
                    counts["articles read"] += 1
                    reason = drop_reason(page)
                    if reason is None:
                        yield page
                    else:
                        counts[f"{reason} dropped"] += 1

            for article in splitter.articles(kept_pages()):
                if article is None:
                    counts[f"{DISAMBIGUATION} dropped"] += 1
                    continue
                if not article:
                    counts[f"{EMPTY} dropped"] += 1
                    continue
                sentences += len(article)
                # Algorithm R: after n kept articles each is held out with probability eval_articles / n.
                # A training article goes to the next part round-robin as soon as it is known to be one:
                # at once, or when a later article takes its place in the reservoir.
                if kept < options.eval_articles:
                    held_out.append((kept, article))
                else:
                    slot = rng.randrange(kept + 1)
                    if slot < options.eval_articles:
                        held_out[slot], article = (kept, article), held_out[slot][1]
                    parts.add(article)
                kept += 1
        if kept == 0:
            dropped = ", ".join(f"{n} {key}" for key, n in counts.items() if key != "articles read" and n)
            raise InputError(
                f"--input {source.path}: no articles kept out of {counts['articles read']} read"
                + (f" ({dropped})" if dropped else "")
            )
        if kept <= options.eval_articles:
            raise ConfigError(
                f"--eval-articles {options.eval_articles} leaves no training articles: {source.path} has "
                f"{kept} kept articles; use --eval-articles {kept - 1} or fewer"
            )
        _write_articles(eval_tmp, (article for _, article in sorted(held_out, key=lambda held: held[0])))
    return {
        **counts,
        "train articles": kept - len(held_out),
        "eval articles": len(held_out),
        "sentences": sentences,
        "part files": len(names),
    }


class _Parts:
    """The part files being written: articles go round-robin, a blank line between two in one file."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.started = [False] * len(paths)
        self.next = 0
        for path in paths:  # every part exists, even one that gets no article
            path.write_bytes(b"")

    def add(self, article: Article) -> None:
        index = self.next % len(self.paths)
        self.next += 1
        # Opened per article so that any --num-parts stays under the open-file limit.
        with open(self.paths[index], "a", encoding="utf-8") as fh:
            fh.write(("\n" if self.started[index] else "") + "\n".join(article) + "\n")
        self.started[index] = True


def _write_articles(path: Path, articles: Iterable[Article]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join("\n".join(article) + "\n" for article in articles))


class _Sentences:
    """Pages to sentences: in this process with one worker, else in a pool of forked workers.

    The pool is made before the progress bar starts its thread, so that the workers are forked from a
    process with one thread; forked after the sentencizer is loaded, they start in milliseconds with it
    (spawned, as where there is no fork, each would import spaCy again: seconds of a small dump's run).
    """

    def __init__(self, options: WikicorpusOptions) -> None:
        global _worker_nlp
        self.workers = options.workers
        self.nlp = load_sentencizer(options.spacy_model)  # warns once here, not once per worker
        self.pool = None
        if self.workers > 1:
            _worker_nlp = self.nlp  # what forked workers start with
            self.pool = worker_pool(
                self.workers, initializer=_start_worker, initargs=(options.spacy_model,), fork=True
            )

    def __enter__(self) -> "_Sentences":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def articles(self, pages: Iterator[Page]) -> Iterator[Article | None]:
        """Yield each page's sentences (None for a disambiguation page), in page order."""
        if self.pool is None:
            for batch in _batches(pages):
                yield from _page_sentences(self.nlp, batch)
            return
        in_flight: deque[Future[list[Article | None]]] = deque()
        for batch in _batches(pages):
            in_flight.append(self.pool.submit(_worker_page_sentences, batch))
            # A bounded window keeps memory flat on any dump while every worker has a batch queued.
            if len(in_flight) >= 2 * self.workers:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()


def _batches(pages: Iterator[Page]) -> Iterator[list[Page]]:
    batch: list[Page] = []
    chars = 0
    for page in pages:
        batch.append(page)
        chars += len(page.body)
        if chars >= BATCH_CHARS or len(batch) >= BATCH_PAGES:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _page_sentences(nlp: Language, pages: list[Page]) -> list[Article | None]:
    """Return each page's sentences, or None for a disambiguation page; one spaCy pass for the batch."""
    paragraphs = [article_paragraphs(page) for page in pages]
    flat = [paragraph for found in paragraphs if found for paragraph in found]
    split = iter(split_sentences(nlp, flat))
    return [
        None if found is None else [sentence for _ in found for sentence in next(split)]
        for found in paragraphs
    ]


def _start_worker(spacy_model: str) -> None:
    global _worker_nlp
    if _worker_nlp is None:  # spawned, not forked with the parent's
        _worker_nlp = load_sentencizer(spacy_model, warn_fallback=False)


def _worker_page_sentences(pages: list[Page]) -> list[Article | None]:
    assert _worker_nlp is not None, "worker started without _start_worker"
    return _page_sentences(_worker_nlp, pages)
