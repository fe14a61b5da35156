"""WikiText-2/103 files: their split files, and their articles (``= Title =`` starts one).

The files hold one paragraph per line. Heading markers are single ``=`` signs separated by spaces, one per
level on each side: `` = Homarus gammarus = `` opens an article, `` = = Description = = `` a section.
"""

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from linctl.data.sources.textfile import COMPRESSION, read_lines
from linctl.errors import InputError

SPLITS = ("train", "valid", "test")
HEADING = re.compile(r"^(=(?: =)*) ([^=\s].*?) \1$")


def heading_level(line: str) -> int:
    """Return the level of a heading line (1 for an article title), or 0 if ``line`` is not a heading."""
    match = HEADING.match(line.strip())
    return 0 if match is None else match[1].count("=")


def iter_articles(lines: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(title, paragraphs)`` for each article in WikiText ``lines``; paragraphs are stripped.

    Section headings and blank lines are dropped. Text before the first title, if any, is an article
    with an empty title.
    """
    title: str | None = None
    paragraphs: list[str] = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        level = heading_level(text)
        if level == 1:
            if title is not None or paragraphs:
                yield title or "", paragraphs
            title, paragraphs = HEADING.match(text)[2], []
        elif level == 0:
            paragraphs.append(text)
    if title is not None or paragraphs:
        yield title or "", paragraphs


def read_wikitext(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(title, paragraphs)`` for each article of a WikiText file (plain, ``.gz`` or ``.bz2``)."""
    return iter_articles(read_lines(path))


def split_file_names(split: str) -> list[str]:
    """Return the names a split's file may have, plain or compressed.

    ``wiki.{split}.tokens`` is the WikiText release's name, ``{split}.txt`` that of pytorch/examples' copy.
    """
    return [
        name + suffix for name in (f"wiki.{split}.tokens", f"{split}.txt") for suffix in ("", *COMPRESSION)
    ]


def find_split_files(folder: Path) -> dict[str, Path]:
    """Return the file of each split present in the WikiText folder ``folder``, in ``SPLITS`` order."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise InputError(f"--input {folder}: {what}; give the folder that holds the WikiText split files")
    found: dict[str, Path] = {}
    for split in SPLITS:
        present = [folder / name for name in split_file_names(split) if (folder / name).is_file()]
        if len(present) > 1:
            raise InputError(
                f"--input {folder}: holds {present[0].name} and {present[1].name}, two files of the {split} "
                "split; keep one"
            )
        if present:
            found[split] = present[0]
    if not found:
        raise InputError(
            f"--input {folder}: no WikiText split file there; looked for wiki.{{train,valid,test}}.tokens "
            "and {train,valid,test}.txt, plain, .gz or .bz2"
        )
    return found
