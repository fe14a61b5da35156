"""The public datasets linctl reads: where they come from, how they unpack, and where they are kept.

Each dataset is a list of remote files, each with its publisher's URL and a published checksum, and the
files it leaves under the data folder, in the layout linctl's ``prepare`` commands read (that of
../shared/data). A dataset whose files are already there, as downloaded or as a local copy in a layout
``prepare`` reads, is not fetched again.

Checksums are facts taken from where they are published, cited at each entry. Where a publisher gives only
an MD5 (sacrebleu's WMT test sets) or a SHA-1 (Wikimedia's dumps), that algorithm is the entry's.
"""

import os
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from linctl.atomic import atomic_path
from linctl.data.fetch import Unreachable, fetch, read_url
from linctl.data.sources.glue import FORMATS, TASKS, split_files
from linctl.data.sources.parallel import find_split
from linctl.data.sources.wikitext import SPLITS, split_file_names
from linctl.errors import ConfigError, DownloadError, InputError

DATA_ENV = "LINCTL_DATA"
DEFAULT_DATA = Path("..") / "shared" / "data"


def data_root(base: Path | None = None) -> Path:
    """Return the data folder: LINCTL_DATA when set, else ../shared/data seen from ``base`` (default: the
    current folder)."""
    chosen = os.environ.get(DATA_ENV)
    if chosen:
        return Path(chosen)
    return Path(base) / DEFAULT_DATA if base is not None else DEFAULT_DATA


@dataclass(frozen=True)
class Member:
    """A file inside an archive and the path it gets under the data folder; ``sgm``: WMT's SGML test-set
    markup, of which the ``<seg>`` texts are kept, one per line."""

    name: str
    dest: str
    sgm: bool = False


@dataclass(frozen=True)
class Remote:
    """One file to download: its URL, checksum, size in bytes (None: not published) and what it becomes.

    ``keep`` is the path under the data folder of a file kept as it is; ``members`` are taken out of an
    archive (zip or tar); ``unpack_into`` extracts a whole archive into that folder. ``digests_url`` names a
    published list of ``<hex digest>  <file name>`` lines that gives ``digest`` at run time.
    """

    url: str
    algorithm: str
    digest: str | None
    size: int | None
    keep: str | None = None
    members: tuple[Member, ...] = ()
    unpack_into: str | None = None
    digests_url: str | None = None

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Dataset:
    """A dataset: its remote files, the files it leaves under the data folder, and its licence.

    ``local_copy`` tells whether the data folder holds the dataset in another layout that ``prepare`` reads
    (the files of ../shared/data, for instance); ``assemble`` makes the expected files from the downloaded
    ones where they are not simply unpacked.
    """

    name: str
    remotes: tuple[Remote, ...]
    expects: tuple[str, ...]
    licence: str
    local_copy: Callable[[Path], bool] | None = field(default=None, compare=False)
    assemble: Callable[[Path], None] | None = field(default=None, compare=False)

    def present(self, root: Path) -> bool:
        """Return True when ``root`` holds every file of the dataset, downloaded or as a local copy."""
        if all((root / path).is_file() for path in self.expects):
            return True
        return self.local_copy is not None and self.local_copy(root)

    @property
    def size(self) -> int | None:
        sizes = [remote.size for remote in self.remotes]
        return None if None in sizes else sum(s for s in sizes if s is not None)


def acquire(dataset: Dataset, root: Path) -> bool:
    """Make ``dataset`` present under ``root``; return False when it already was (nothing is fetched).

    A run stopped anywhere is resumed by the next one: a verified archive is kept until it is unpacked, a
    partial download is continued, and each unpacked file is written atomically.
    """
    root = Path(root)
    if dataset.present(root):
        return False
    for remote in dataset.remotes:
        _install(dataset, remote, root)
    if dataset.assemble is not None:
        dataset.assemble(root)
    missing = [path for path in dataset.expects if not (root / path).is_file()]
    if missing:
        raise DownloadError(
            f"{dataset.name}: {', '.join(r.url for r in dataset.remotes)} did not give {', '.join(missing)}; "
            "the publisher may have changed the archive's layout"
        )
    return True


def _install(dataset: Dataset, remote: Remote, root: Path) -> None:
    keep = root / remote.keep if remote.keep else None
    if keep is not None and keep.is_file():
        return
    if keep is None and _unpacked(remote, root):
        return
    download = keep if keep is not None else root / remote.file_name
    if not download.is_file():
        try:
            fetch(remote.url, download, remote.algorithm, _digest(remote), remote.size)
        except Unreachable as exc:
            raise DownloadError(
                f"cannot download {dataset.name} from {exc.url} ({exc.reason}); put "
                f"{', '.join(dataset.expects)} under {root}, or set {DATA_ENV} to a folder that holds them"
            ) from exc
    if keep is None:
        _unpack(remote, download, root)
        download.unlink()


def _unpacked(remote: Remote, root: Path) -> bool:
    """Return True when the members taken out of ``remote`` are all there (archives unpacked whole are
    checked by their dataset's ``expects``)."""
    return bool(remote.members) and all((root / m.dest).is_file() for m in remote.members)


def _digest(remote: Remote) -> str:
    if remote.digest is not None:
        return remote.digest
    assert remote.digests_url is not None, f"{remote.url}: an entry has a digest or a digests_url"
    for line in read_url(remote.digests_url).splitlines():
        digest, _, name = line.strip().partition("  ")
        if name == remote.file_name:
            return digest
    raise DownloadError(
        f"{remote.digests_url} lists no {remote.file_name}; the dump may be unfinished or the name misspelt"
    )


def _unpack(remote: Remote, archive: Path, root: Path) -> None:
    """Write the chosen members of ``archive`` (or all of it) under ``root``, each file atomically."""
    wanted = {member.name: member for member in remote.members}
    for name, read in _entries(archive):
        if remote.unpack_into is not None:
            _write(root / remote.unpack_into / _safe(name, archive), read, sgm=False)
        elif name in wanted:
            _write(root / wanted[name].dest, read, sgm=wanted[name].sgm)


def _entries(archive: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """Yield (name, opener) of each regular file in a zip or tar archive."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, lambda info=info: zf.open(info)
        return
    with tarfile.open(archive) as tf:
        for info in tf:
            if info.isfile():
                yield info.name, lambda info=info: tf.extractfile(info)  # type: ignore[misc]


def _safe(name: str, archive: Path) -> Path:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        raise DownloadError(f"{archive}: member {name!r} points outside the archive's folder; refused")
    return path


SEGMENT = re.compile(r"<seg[^>]*>(.*)</seg>")


def _write(dest: Path, read: Callable[[], IO[bytes]], sgm: bool) -> None:
    with atomic_path(dest) as tmp, read() as src, open(tmp, "wb") as out:
        if not sgm:
            shutil.copyfileobj(src, out)
            return
        # Each <seg> line's text, stripped and with runs of white space made one space, as sacrebleu
        # extracts WMT's SGML test sets, so that references are the ones BLEU scores are reported on.
        for line in src:
            found = SEGMENT.search(line.decode("utf-8"))
            if found:
                out.write((" ".join(found.group(1).split()) + "\n").encode("utf-8"))


def _mrpc_splits(root: Path) -> None:
    """Write GLUE's MRPC train/dev/test.tsv from Microsoft's two files, as GLUE's download script does:
    the pairs listed in GLUE's dev_ids.tsv are dev, the other training pairs train; test gets an index."""
    folder = root / "glue" / "MRPC"
    dev_ids = {tuple(line.split("\t")) for line in _lines(folder / "dev_ids.tsv")}
    header, *rows = _lines(folder / "msr_paraphrase_train.txt")
    split = {"dev": [header], "train": [header]}
    for row in rows:
        split["dev" if tuple(row.split("\t")[1:3]) in dev_ids else "train"].append(row)
    _, *tests = _lines(folder / "msr_paraphrase_test.txt")
    columns = header.split("\t")[1:]
    split["test"] = ["\t".join(["index", *columns])]
    split["test"] += [f"{i}\t" + "\t".join(row.split("\t")[1:]) for i, row in enumerate(tests)]
    for name, lines in split.items():
        with atomic_path(folder / f"{name}.tsv") as tmp:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---- local copies: the layouts `prepare` reads besides the downloaded one ---------------------------------


def _wikitext_copy(folder: str) -> Callable[[Path], bool]:
    def present(root: Path) -> bool:
        return all(any((root / folder / n).is_file() for n in split_file_names(s)) for s in SPLITS)

    return present


def _glue_copy(task_name: str) -> Callable[[Path], bool]:
    task = TASKS[task_name]

    def present(root: Path) -> bool:
        layouts = [split_files(task, fmt) for fmt in FORMATS]
        return any(
            files
            and all((root / "glue" / task_name / n).is_file() for names in files.values() for n in names)
            for files in layouts
        )

    return present


def _parallel_copy(
    folder: str, prefixes: tuple[str, ...], source: str, target: str
) -> Callable[[Path], bool]:
    def present(root: Path) -> bool:
        try:
            for prefix in prefixes:
                find_split(root / folder, prefix, source, target, "--input")
        except InputError:
            return False
        return True

    return present


# ---- the registry -----------------------------------------------------------------------------------------

WIKITEXT = "https://s3.amazonaws.com/research.metamind.io/wikitext"
WIKITEXT_LICENCE = "CC BY-SA 3.0 (text from Wikipedia)"
GLUE = "https://dl.fbaipublicfiles.com/glue/data"
SENTEVAL = "https://dl.fbaipublicfiles.com/senteval/senteval_data"


def _wikitext(name: str, zip_name: str, digest: str, size: int) -> Dataset:
    return Dataset(
        name,
        (Remote(f"{WIKITEXT}/{zip_name}", "sha256", digest, size, unpack_into=""),),
        tuple(f"{name}/wiki.{split}.tokens" for split in SPLITS),
        WIKITEXT_LICENCE,
        _wikitext_copy(name),
    )


def _glue(name: str, zip_name: str, task: str, digest: str, size: int, licence: str) -> Dataset:
    files = split_files(TASKS[task], "glue")
    return Dataset(
        name,
        (Remote(f"{GLUE}/{zip_name}", "sha256", digest, size, unpack_into="glue"),),
        tuple(f"glue/{task}/{n}" for names in files.values() for n in names),
        licence,
        _glue_copy(task),
    )


def _vocab(name: str, repo: str, digest: str, size: int) -> Dataset:
    dest = f"bert-vocab/{repo}-vocab.txt"
    url = f"https://huggingface.co/{repo}/resolve/main/vocab.txt"
    return Dataset(name, (Remote(url, "sha256", digest, size, keep=dest),), (dest,), "Apache-2.0")


WMT_TEST = "wmt14-en-de"
FULL = "test-full/newstest2014-deen"  # the members of test-full.tgz
NC = f"{WMT_TEST}/news-commentary-v9"
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        # sha256 and sizes: huggingface/datasets, datasets/wikitext/dataset_infos.json ("download_checksums").
        _wikitext(
            "wikitext-2", "wikitext-2-v1.zip",
            "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c", 4_475_746,
        ),
        _wikitext(
            "wikitext-103", "wikitext-103-v1.zip",
            "242ba0f20b329cfdf1ccc61e9e9e5b59becf189db7f7a81cd2a0e2fc31539590", 190_229_076,
        ),
        # GLUE: the URLs of GLUE's download_glue_data.py; sha256 and sizes: huggingface/datasets,
        # datasets/glue/dataset_infos.json ("download_checksums").
        _glue(
            "glue-cola", "CoLA.zip", "CoLA",
            "f212fcd832b8f7b435fb991f101abf89f96b933ab400603bf198960dfc32cbff", 376_971,
            "research use (CoLA: no licence stated)",
        ),
        _glue(
            "glue-sst2", "SST-2.zip", "SST-2",
            "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa", 7_439_277,
            "research use (SST: no licence stated)",
        ),
        # MRPC: the files GLUE's download script fetches (Microsoft's release as SentEval mirrors it, and
        # GLUE's dev split); sha256, sizes: huggingface/datasets, datasets/glue/dataset_infos.json ("mrpc").
        Dataset(
            "glue-mrpc",
            (
                Remote(
                    f"{GLUE}/mrpc_dev_ids.tsv", "sha256",
                    "971d7767d81b997fd9060ade0ec23c4fc31cbb226a55d1bd4a1bac474eb81dc7", 6_222,
                    keep="glue/MRPC/dev_ids.tsv",
                ),
                Remote(
                    f"{SENTEVAL}/msr_paraphrase_train.txt", "sha256",
                    "60a9b09084528f0673eedee2b69cb941920f0b8cd0eeccefc464a98768457f89", 1_047_044,
                    keep="glue/MRPC/msr_paraphrase_train.txt",
                ),
                Remote(
                    f"{SENTEVAL}/msr_paraphrase_test.txt", "sha256",
                    "a04e271090879aaba6423d65b94950c089298587d9c084bf9cd7439bd785f784", 441_275,
                    keep="glue/MRPC/msr_paraphrase_test.txt",
                ),
            ),
            ("glue/MRPC/train.tsv", "glue/MRPC/dev.tsv", "glue/MRPC/test.tsv"),
            "Microsoft Research Shared Source Licence (non-commercial)",
            _glue_copy("MRPC"),
            _mrpc_splits,
        ),
        _glue(
            "glue-stsb", "STS-B.zip", "STS-B",
            "e60a6393de5a8b5b9bac5020a1554b54e3691f9d600b775bd131e613ac179c85", 802_872,
            "scores CC BY-SA 4.0; texts per source",
        ),
        _glue(
            "glue-qqp", "QQP-clean.zip", "QQP",
            "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0", 41_696_084,
            "Quora's terms (non-commercial)",
        ),
        _glue(
            "glue-mnli", "MNLI.zip", "MNLI",
            "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633", 312_783_507,
            "OANC; parts CC BY-SA 3.0",
        ),
        _glue(
            "glue-qnli", "QNLIv2.zip", "QNLI",
            "e634e78627a29adaecd4f955359b22bf5e70f2cbd93b493f2d624138a0c0e5f5", 10_627_589,
            "CC BY-SA 4.0 (SQuAD)",
        ),
        _glue(
            "glue-rte", "RTE.zip", "RTE",
            "6bf86de103ecd335f3441bd43574d23fef87ecc695977a63b82d5efb206556ee", 697_150,
            "research use (RTE: no licence stated)",
        ),
        _glue(
            "glue-wnli", "WNLI.zip", "WNLI",
            "ae0e8e4d16f4d46d4a0a566ec7ecceccfd3fbfaa4a7a4b4e02848c0f2561ac46", 28_999,
            "CC BY 4.0",
        ),
        # newstest2013/2014 as sacrebleu fetches them ("wmt13", "wmt14/full" in sacrebleu/dataset/__init__.py,
        # sacrebleu 2.6.0): statmt.org publishes no checksum, sacrebleu pins these MD5s. The "full" 2014 set
        # (3003 sentences) is the one papers report on; English is the source side, German the reference.
        Dataset(
            "wmt14-en-de",
            (
                Remote(
                    "https://statmt.org/wmt13/test.tgz", "md5", "48eca5d02f637af44e85186847141f67", None,
                    members=(
                        Member("test/newstest2013-src.en.sgm", f"{WMT_TEST}/newstest2013.en", sgm=True),
                        Member("test/newstest2013-src.de.sgm", f"{WMT_TEST}/newstest2013.de", sgm=True),
                    ),
                ),
                Remote(
                    "https://statmt.org/wmt14/test-full.tgz", "md5", "a8cd784e006feb32ac6f3d9ec7eb389a", None,
                    members=(
                        Member(f"{FULL}-src.en.sgm", f"{WMT_TEST}/newstest2014.en", sgm=True),
                        Member(f"{FULL}-ref.de.sgm", f"{WMT_TEST}/newstest2014.de", sgm=True),
                    ),
                ),
            ),
            tuple(f"{WMT_TEST}/newstest{year}.{lang}" for year in (2013, 2014) for lang in ("en", "de")),
            "research use (WMT test sets)",
            _parallel_copy(WMT_TEST, ("newstest2013", "newstest2014"), "en", "de"),
        ),
        # A sample of WMT14's en-de training data: News Commentary v9, the smallest of its three corpora,
        # from the Hugging Face mirror of statmt.org's training-parallel-nc-v9 (statmt.org publishes no
        # checksum); sha256 and size: huggingface/datasets, datasets/wmt14/dataset_infos.json; member
        # paths: datasets/wmt14/wmt_utils.py ("newscommentary_v9").
        Dataset(
            "wmt14-en-de-train",
            (
                Remote(
                    "https://huggingface.co/datasets/wmt/wmt14/resolve/main-zip/training-parallel-nc-v9.zip",
                    "sha256", "ce199f93ec56ff480137ba29f0819f9a22e70d88be6d7458f112303d67d623d5", 80_462_375,
                    members=(
                        Member("training/news-commentary-v9.de-en.en", f"{NC}/train.en"),
                        Member("training/news-commentary-v9.de-en.de", f"{NC}/train.de"),
                    ),
                ),
            ),
            (f"{NC}/train.en", f"{NC}/train.de"),
            "research use (News Commentary)",
            _parallel_copy(WMT_TEST, ("train",), "en", "de"),
        ),
        # sha256: NVIDIA/DeepLearningExamples, PyTorch/LanguageModeling/BERT/data/
        # GooglePretrainedWeightDownloader.py (vocab.txt of Google's uncased/cased_L-12_H-768_A-12.zip); the
        # same digests as ../shared/data/bert-vocab, byte-identical copies of Google's files.
        _vocab(
            "bert-base-uncased-vocab", "bert-base-uncased",
            "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231_508,
        ),
        _vocab(
            "bert-base-cased-vocab", "bert-base-cased",
            "eeaa9875b23b04b4c54ef759d03db9d1ba1554838f8fb26c5d96fa551df93d02", 213_450,
        ),
    )
}  # fmt: skip

WIKIPEDIA = "wikipedia"
WIKIMEDIA = "https://dumps.wikimedia.org"
DUMP_DATE = re.compile(r"\d{8}")
WIKIPEDIA_LICENCE = "CC BY-SA 4.0 and GFDL (Wikipedia text)"


def wikipedia_dump(wiki: str, date: str, mirror: str = WIKIMEDIA) -> Dataset:
    """Return the pages-articles dump of ``wiki`` (enwiki, dewiki …) of ``date`` (YYYYMMDD), checked by the
    SHA-1 that Wikimedia publishes beside it (``WIKI-DATE-sha1sums.txt``)."""
    if not re.fullmatch(r"[a-z_]+wiki", wiki):
        raise ConfigError(f"--wiki {wiki!r}: not a wiki's dump name; e.g. enwiki, dewiki, simplewiki")
    if not DUMP_DATE.fullmatch(date or ""):
        raise ConfigError(
            f"--wiki-date {date!r}: give a dump's date as YYYYMMDD, one listed at {WIKIMEDIA}/{wiki}/"
        )
    folder = f"{mirror}/{wiki}/{date}"
    name = f"{wiki}-{date}-pages-articles-multistream.xml.bz2"
    dest = f"wikipedia/{name}"
    remote = Remote(
        f"{folder}/{name}", "sha1", None, None, keep=dest, digests_url=f"{folder}/{wiki}-{date}-sha1sums.txt"
    )
    return Dataset(WIKIPEDIA, (remote,), (dest,), WIKIPEDIA_LICENCE)


def dataset_named(name: str, wiki: str = "enwiki", wiki_date: str | None = None) -> Dataset:
    """Return the dataset called ``name``, or raise ConfigError naming it and the datasets there are."""
    if name == WIKIPEDIA:
        if wiki_date is None:
            raise ConfigError(
                f"{WIKIPEDIA}: say which dump with --wiki-date YYYYMMDD (one listed at {WIKIMEDIA}/{wiki}/)"
            )
        return wikipedia_dump(wiki, wiki_date)
    if name not in DATASETS:
        raise ConfigError(f"no dataset {name!r}; datasets: {', '.join([*DATASETS, WIKIPEDIA])}")
    return DATASETS[name]
