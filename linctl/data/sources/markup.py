"""Wikitext markup to plain paragraphs, with mwparserfromhell (the maintained MediaWiki parser).

Kept: prose, the visible text of links and external links, the contents of emphasis and of most HTML
tags. Dropped: templates, tables, references, files and images with their captions, categories and
interlanguage links, comments, section headings, list items, and the trailing sections (References,
See also, …). A last line-level pass (``clean_line``) removes what a parser or extractor left behind.

Most of an article's markup is what is dropped whole: templates (infoboxes, citations), references,
comments, formulas and tables. ``skim`` cuts those out with regular expressions and brace counting
before the parser sees the text, as WikiExtractor does, so that the parser builds a node tree of the
prose alone; what it cannot match (an unclosed template) it leaves to the parser.
"""

import html
import re
from typing import NamedTuple

import mwparserfromhell
from mwparserfromhell.nodes import ExternalLink, Heading, HTMLEntity, Node, Tag, Text, Wikilink
from mwparserfromhell.wikicode import Wikicode

TRAILING_SECTIONS = frozenset(
    {
        "references",
        "external links",
        "see also",
        "further reading",
        "notes",
        "bibliography",
        "sources",
        "footnotes",
        "citations",
        "notes and references",
        "references and notes",
    }
)
# Tags whose contents are not prose: citations, tables, formulas, media, source code, page machinery.
DROPPED_TAGS = frozenset(
    {
        "ref",
        "references",
        "table",
        "math",
        "chem",
        "ce",
        "gallery",
        "imagemap",
        "timeline",
        "score",
        "graph",
        "mapframe",
        "maplink",
        "syntaxhighlight",
        "source",
        "templatestyles",
        "templatedata",
        "noinclude",
        "inputbox",
        "categorytree",
        "hiero",
    }
)
LINE_BREAK_TAGS = frozenset({"br", "hr"})
# Bulleted and numbered items and definition terms are dropped like WikiExtractor (the recipe's
# extractor) drops them, so that a dump and its extraction give alike text; indented text (":") is kept.
LIST_ITEM_MARKUP = frozenset({"*", "#", ";"})
HIDDEN_LINK_PREFIXES = frozenset({"file", "image", "category"})
LANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(?:-[a-z]+)*$")

_REF = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.IGNORECASE | re.DOTALL)
# Cut before parsing: comments, references (not <references>), formulas; then templates and tables.
_SKIMMED = re.compile(
    r"<!--.*?-->|<ref(?:\s[^<>]*)?/>|<ref(?:\s[^<>]*)?>.*?</ref\s*>|<math\b[^<>]*>.*?</math\s*>",
    re.IGNORECASE | re.DOTALL,
)
_BRACES = re.compile(r"\{\{+|\}\}+")  # runs: {{a|{{b}}}} closes twice in one run of four
_TABLE_EDGE = re.compile(r"^[ \t]*(\{\||\|\})", re.MULTILINE)
_TEMPLATE_NAME = re.compile(r"[^|{}]*")
_CUT = "\x00"  # marks where templates were cut, until the emphasis around them is looked at
# Emphasis left empty by the cut ("''{{lang|fr|mot}}''"): the parser would read four quotes as one and bold.
_EMPTIED_EMPHASIS = re.compile(r"(?<!')('{2,5})\x00+\1(?!')")
_LINE_BREAK = re.compile(r"<(?:br|hr)\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_LEFTOVER = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|'{2,}|__[A-Z]+__")
_EMPTY_PARENS = re.compile(r"\(\s*(?:[,;:]\s*)*\)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])(?=\s|$)")
_WORDISH = re.compile(r"\w")


class Skimmed(NamedTuple):
    """Wikitext with what is dropped whole cut out, and the names of the templates cut at its top level."""

    text: str
    templates: list[str]


def strip_markup(wikitext: str) -> list[str]:
    """Return the plain paragraphs of an article's wikitext."""
    return plain_paragraphs(mwparserfromhell.parse(skim(wikitext).text))


def skim(wikitext: str) -> Skimmed:
    """Cut comments, references, formulas, templates and tables out of ``wikitext``.

    Each is dropped by ``plain_paragraphs`` anyway; cut first, the parser never builds their nodes.
    Nested templates and tables are matched by counting; an unclosed one is left in place for the parser.
    """
    text, templates = _cut_templates(_SKIMMED.sub("", wikitext))
    return Skimmed(_cut_tables(text), templates)


def _cut_templates(text: str) -> tuple[str, list[str]]:
    kept: list[str] = []
    names: list[str] = []
    depth = start = opened = 0
    argument = False  # the outermost braces are a template argument's, {{{1}}}, not a template's
    for match in _BRACES.finditer(text):
        run = len(match[0])
        levels = 1 if run == 3 else run // 2
        if match[0][0] == "{":
            if depth == 0:
                opened, argument = match.start(), run == 3
            depth += levels
        elif depth:
            closed = min(levels, depth)
            depth -= closed
            if depth == 0:
                if not argument:
                    name = _TEMPLATE_NAME.match(text, opened + 2)
                    names.append(name[0] if name else "")
                kept.append(text[start:opened])
                start = match.end() if closed == levels else match.start() + 2 * closed
    kept.append(text[start:])
    return _EMPTIED_EMPHASIS.sub("", _CUT.join(kept)).replace(_CUT, ""), names


def _cut_tables(text: str) -> str:
    kept: list[str] = []
    depth = start = opened = 0
    for match in _TABLE_EDGE.finditer(text):
        if match[1] == "{|":
            if depth == 0:
                opened = match.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                kept.append(text[start:opened])
                start = match.end()
    kept.append(text[start:])
    return "".join(kept)


def plain_paragraphs(code: Wikicode) -> list[str]:
    """Return the plain paragraphs of parsed wikitext, one per non-empty line, cleaned with ``clean_line``."""
    pieces: list[str] = []
    dropped_level: int | None = None  # level of the trailing section being skipped
    skip_line = False  # inside a list item, up to the end of its line
    for node in code.nodes:
        if isinstance(node, Heading):
            if dropped_level is not None and node.level > dropped_level:
                continue
            title = node.title.strip_code().strip().lower()
            dropped_level = node.level if title in TRAILING_SECTIONS else None
            pieces.append("\n")
        elif dropped_level is not None:
            continue
        elif skip_line:
            if isinstance(node, Text) and "\n" in node.value:
                skip_line = False
                pieces.append(node.value[node.value.index("\n") :])
        elif isinstance(node, Tag) and node.wiki_markup in LIST_ITEM_MARKUP:
            skip_line = True
        else:
            pieces.append(_text(node))
    paragraphs = []
    for line in "".join(pieces).split("\n"):
        # Rows of a table the parser could not close survive as text lines starting with these marks.
        if line.lstrip().startswith(("{|", "|", "!")):
            continue
        if text := clean_line(line):
            paragraphs.append(text)
    return paragraphs


def clean_line(line: str) -> str:
    """Return ``line`` without leftover markup, HTML entities, empty parentheses and doubled spaces.

    Also for WikiExtractor output, which carries stray ``</ref>``, ``<nowiki>``, ``<br>`` and the empty
    parentheses of templates it removed. A line with no letter or digit left becomes empty.
    """
    text = html.unescape(line)
    text = _REF.sub("", text)
    text = _TAG.sub("", _LINE_BREAK.sub(" ", text))
    text = _LEFTOVER.sub("", text)
    text = _EMPTY_PARENS.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(text.split()))
    return text if _WORDISH.search(text) else ""


def _plain(code: Wikicode | None) -> str:
    return "" if code is None else "".join(_text(node) for node in code.nodes)


def _text(node: Node) -> str:
    """Return the visible prose of one node (templates, comments, arguments and nested headings: none)."""
    if isinstance(node, Text):
        return node.value
    if isinstance(node, HTMLEntity):
        return node.normalize()
    if isinstance(node, Wikilink):
        return _link_text(node)
    if isinstance(node, ExternalLink):
        return _plain(node.title) if node.brackets else ""
    if isinstance(node, Tag):
        name = str(node.tag).strip().lower()
        if name in DROPPED_TAGS:
            return ""
        if node.self_closing or node.contents is None:
            return "\n" if name in LINE_BREAK_TAGS else ""
        return _plain(node.contents)
    return ""


def _link_text(link: Wikilink) -> str:
    title = str(link.title).strip()
    visible = title.startswith(":")  # [[:Category:X]] is a link to the category, not a categorisation
    prefix = title.lstrip(":").split(":", 1)[0].strip().lower() if ":" in title else ""
    if not visible and prefix in HIDDEN_LINK_PREFIXES:
        return ""
    text = _plain(link.text).strip() if link.text is not None else ""
    if text:
        return text
    if not visible and LANGUAGE_PREFIX.match(prefix):  # [[fr:Paris]]: an interlanguage link, not shown
        return ""
    return _plain(link.title).lstrip(":").strip()
