"""Wikipedia as the MLCommons BERT recipe reads it: which input it is, its pages, and which pages to keep.

Three inputs are recognised from their first bytes, whatever their names: a MediaWiki export dump
(``.xml`` or ``.xml.bz2``, streamed), WikiExtractor output (``<doc …>`` blocks) and WikiText-style
files (``= Title =`` headings). A folder may hold files of one kind, in any sub-folder; other files in
it are skipped with a warning.
"""

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mwparserfromhell

from linctl.data.sources.markup import clean_line, plain_paragraphs, skim
from linctl.data.sources.textfile import compression, decode_head, decompressed, read_head, read_lines
from linctl.data.sources.wikitext import heading_level, read_wikitext
from linctl.errors import InputError
from linctl.progress import warn

DUMP, WIKIEXTRACTOR, WIKITEXT = "MediaWiki XML dump", "WikiExtractor output", "WikiText"
KINDS_HELP = (
    "a MediaWiki XML dump, WikiExtractor output (<doc …> blocks) or WikiText (= Title = headings), "
    "plain or compressed (.gz, .bz2)"
)
# Drop reasons, in the order a page is tested; each is counted in the summary as "<reason> dropped".
OTHER_NAMESPACES, REDIRECTS, DISAMBIGUATION, LISTS = (
    "other namespaces",
    "redirects",
    "disambiguation",
    "lists",
)
DISAMBIGUATION_TEMPLATES = frozenset(
    {
        "disambiguation",
        "disambig",
        "disamb",
        "dab",
        "dis",
        "hndis",
        "geodis",
        "numberdis",
        "mathdab",
        "schooldis",
        "hospitaldis",
        "roaddis",
        "shipindex",
        "set index article",
        "sia",
    }
)
# Compressed data under a name without its suffix; other binary formats hold NUL bytes early on.
BINARY_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"PK\x03\x04", b"\x28\xb5\x2f\xfd")
_LIST_TITLE = re.compile(r"lists? of\b", re.IGNORECASE)
_DOC_OPEN = re.compile(r"<doc\b([^>]*)>")
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Page:
    """One page as read, before markup stripping.

    ``body`` is wikitext for a dump page and one paragraph per line for the other kinds.
    """

    title: str
    body: str
    kind: str
    namespace: int = 0
    redirect: bool = False


@dataclass(frozen=True)
class WikiInput:
    """A recognised input: its kind and the files to read, in order."""

    path: Path
    kind: str
    files: tuple[Path, ...]

    @property
    def total_bytes(self) -> int:
        """Bytes of the files as stored (compressed where they are)."""
        return sum(file.stat().st_size for file in self.files)

    def pages(self, advance: Callable[[int], None]) -> Iterator[Page]:
        """Yield every page of every file; ``advance`` is told how many stored bytes were read."""
        for file in self.files:
            if self.kind == DUMP:
                yield from read_dump(file, advance)  # advances page by page: a dump is one big file
            elif self.kind == WIKIEXTRACTOR:
                yield from read_wikiextractor(file)
                advance(file.stat().st_size)
            else:
                for title, paragraphs in read_wikitext(file):
                    yield Page(title, "\n".join(paragraphs), WIKITEXT)
                advance(file.stat().st_size)


def detect_input(path: Path) -> WikiInput:
    """Recognise ``path`` (a file, or a folder of files of one kind) or raise InputError saying why not."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"--input {path}: no such file or folder")
    if path.is_file():
        kind, why_not = _sniff(path)
        if kind is None:
            raise InputError(f"--input {path}: {why_not}")
        return WikiInput(path, kind, (path,))
    files = sorted(
        (
            f
            for f in path.rglob("*")
            if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
        ),
        key=lambda f: f.relative_to(path).parts,
    )
    if not files:
        raise InputError(f"--input {path}: empty folder, no articles found")
    kinds: dict[str, list[Path]] = {}
    skipped: list[str] = []
    for file in files:
        kind, why_not = _sniff(file)
        if kind is None:
            skipped.append(f"{file.relative_to(path).as_posix()} ({why_not})")
        else:
            kinds.setdefault(kind, []).append(file)
    if not kinds:
        raise InputError(f"--input {path}: none of its {len(files)} files is {KINDS_HELP}")
    if len(kinds) > 1:
        examples = "; ".join(f"{kind}: {group[0].relative_to(path)}" for kind, group in kinds.items())
        raise InputError(f"--input {path}: mixes kinds of input ({examples}); give a folder of one kind")
    if skipped:
        more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
        warn(f"--input {path}: skipped {skipped[0]}{more}")
    ((kind, chosen),) = kinds.items()
    return WikiInput(path, kind, tuple(chosen))


def drop_reason(page: Page) -> str | None:
    """Return why ``page`` is not an article to keep, judged by namespace, redirect and title; or None."""
    if page.namespace != 0:
        return OTHER_NAMESPACES
    if page.redirect or page.body.lstrip()[:9].lower() == "#redirect":
        return REDIRECTS
    title = page.title.strip()
    if title.lower().endswith("(disambiguation)"):
        return DISAMBIGUATION
    if _LIST_TITLE.match(title):
        return LISTS
    return None


def article_paragraphs(page: Page) -> list[str] | None:
    """Return the plain paragraphs of a kept page, or None when its templates mark a disambiguation page."""
    if page.kind == DUMP:
        skimmed = skim(page.body)
        if any(_is_disambiguation_template(name) for name in skimmed.templates):
            return None
        return plain_paragraphs(mwparserfromhell.parse(skimmed.text))
    lines = page.body.split("\n")
    if page.kind == WIKIEXTRACTOR:
        return [text for line in lines if (text := clean_line(line))]
    return [" ".join(line.split()) for line in lines if line.strip()]


def read_dump(path: Path, advance: Callable[[int], None]) -> Iterator[Page]:
    """Stream the pages of a MediaWiki export dump, holding one page in memory at a time."""
    pages = 0
    with open(path, "rb") as raw, decompressed(path, raw) as stream:
        try:
            events = ET.iterparse(stream, events=("start", "end"))
            _, root = next(events)  # <mediawiki>, as detect_input checked
            done = 0
            for event, element in events:
                if event != "end" or _local(element.tag) != "page":
                    continue
                page = _dump_page(element, path)
                root.clear()  # drop the finished page (and siteinfo) so memory holds one page
                pages += 1
                yield page
                advance(raw.tell() - done)
                done = raw.tell()
        except ET.ParseError as exc:
            _check_utf8(path, exc.position[0])  # expat calls a byte that is not UTF-8 an "invalid token"
            raise InputError(f"{path}: truncated or malformed XML after {pages} pages ({exc})") from None
        except (EOFError, OSError) as exc:
            stream_kind = compression(path) or "file"
            raise InputError(
                f"{path}: truncated or corrupt {stream_kind} stream after {pages} pages ({exc})"
            ) from None


def read_wikiextractor(path: Path) -> Iterator[Page]:
    """Yield the articles of one WikiExtractor file; the title line that opens each article is dropped."""
    title: str | None = None
    opened_at = 0
    lines: list[str] = []
    for lineno, line in enumerate(read_lines(path), 1):
        stripped = line.strip()
        if match := _DOC_OPEN.match(stripped):
            if title is not None:
                raise InputError(f"{path}:{lineno}: <doc> inside the <doc> opened at line {opened_at}")
            title = html.unescape(dict(_ATTRIBUTE.findall(match[1])).get("title", ""))
            opened_at, lines = lineno, []
        elif stripped == "</doc>":
            if title is None:
                raise InputError(f"{path}:{lineno}: </doc> without an opening <doc>")
            body = [text for text in lines if text.strip()]
            yield Page(title, "\n".join(body[1:]), WIKIEXTRACTOR)
            title = None
        elif title is not None:
            lines.append(stripped)
    if title is not None:
        raise InputError(
            f"{path}: <doc> of {title!r} opened at line {opened_at} is not closed (truncated file?)"
        )


def _sniff(path: Path) -> tuple[str | None, str]:
    """Return ``(kind, "")`` from the first bytes of ``path``, or ``(None, why it is no kind)``.

    Raises InputError when the file cannot be read or decompressed, or is text with a line that is not
    UTF-8: such a file is never skipped.
    """
    raw = read_head(path)
    if b"\x00" in raw or raw.startswith(BINARY_MAGIC):
        return None, f"binary data, not {KINDS_HELP}"
    head = decode_head(path, raw)
    text = head.lstrip("\ufeff \t\r\n")
    if not text:
        return None, "empty file, no articles found"
    if text.startswith(("<?xml", "<mediawiki")):
        parser = ET.XMLPullParser(events=("start",))
        try:
            parser.feed(head)
            root = next((element for _, element in parser.read_events()), None)
        except ET.ParseError as exc:
            return None, f"malformed XML ({exc})"
        if root is None:
            return None, f"no XML root element in the first {len(head)} characters"
        if _local(root.tag) != "mediawiki":
            return None, f"XML root is <{_local(root.tag)}>, not <mediawiki> ({KINDS_HELP})"
        return DUMP, ""
    first_line = text.split("\n", 1)[0].strip()
    if _DOC_OPEN.match(first_line):
        return WIKIEXTRACTOR, ""
    if heading_level(first_line) == 1:
        return WIKITEXT, ""
    return None, f"not {KINDS_HELP}"


def _check_utf8(path: Path, last_line: int) -> None:
    """Raise read_lines' InputError if a line of ``path`` up to ``last_line`` is not valid UTF-8."""
    for lineno, _ in enumerate(read_lines(path), 1):
        if lineno >= last_line:
            return


def _dump_page(page: ET.Element, path: Path) -> Page:
    title, namespace, redirect, text = "", 0, False, ""
    for child in page:
        name = _local(child.tag)
        if name == "title":
            title = child.text or ""
        elif name == "ns":
            try:
                namespace = int(child.text or 0)
            except ValueError:
                raise InputError(
                    f"{path}: page {title!r} has namespace {child.text!r}, not a number"
                ) from None
        elif name == "redirect":
            redirect = True
        elif name == "revision":  # the last revision wins where a dump holds several
            text = next((t.text or "" for t in child if _local(t.tag) == "text"), "")
    return Page(title, text, DUMP, namespace, redirect)


def _is_disambiguation_template(name: object) -> bool:
    normalised = " ".join(str(name).replace("_", " ").split()).lower().removeprefix("template:")
    return normalised in DISAMBIGUATION_TEMPLATES or normalised.endswith(" disambiguation")


def _local(tag: str) -> str:
    """Return an XML tag without its namespace: the dump's namespace URI changes with its format version."""
    return tag.rsplit("}", 1)[-1]
