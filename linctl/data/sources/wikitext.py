"""WikiText-style articles (WikiText-2/103): ``= Title =`` starts an article, ``= = Section = =`` is dropped.

The files hold one paragraph per line. Heading markers are single ``=`` signs separated by spaces, one per
level on each side: `` = Homarus gammarus = `` opens an article, `` = = Description = = `` a section.
"""

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from linctl.data.sources.textfile import read_lines

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
