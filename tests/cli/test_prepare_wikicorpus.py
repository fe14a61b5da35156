"""`linctl prepare wikicorpus`: the MLCommons BERT layout from a dump, WikiExtractor output and WikiText."""

import bz2
import gzip
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest

from linctl.data.manifest import claim_output_dir
from linctl.data.options import WikicorpusOptions
from linctl.data.sources.wikitext import heading_level

MARKUP = ("{{", "[[", "|}", "<ref", "'''", "<doc")
DUMP = Path("wikipedia", "enwiki-table-markup", "enwiki-table-markup.xml.bz2")
EXTRACTED = Path("wikipedia", "mlperf-bert-wikiextractor-sample")
Article = list[str]


def prepare(cli, source, out, *more, parts=4, eval_articles=3, workers=1, ok=True):
    return cli(
        "prepare",
        "wikicorpus",
        "--input",
        source,
        "--output-dir",
        out,
        "--num-parts",
        parts,
        "--eval-articles",
        eval_articles,
        "--workers",
        workers,
        *more,
        ok=ok,
    )


def articles(path: Path) -> list[Article]:
    """Read a file of the layout, checking its format: sentences on lines, a blank line between articles."""
    text = path.read_text(encoding="utf-8")
    if not text:
        return []
    assert text.endswith("\n") and not text.startswith("\n") and "\n\n\n" not in text, path
    found = [block.split("\n") for block in text[:-1].split("\n\n")]
    assert all(line and line == line.strip() for article in found for line in article), path
    return found


def layout(out: Path, parts: int) -> tuple[list[list[Article]], list[Article], dict]:
    """Check that ``out`` holds exactly the layout; return the articles of each part and of eval.txt."""
    names = [f"part-{i:05d}-of-{parts:05d}" for i in range(parts)]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*names, "eval.txt", "metadata.txt", "manifest.json"]
    )
    listed = (out / "metadata.txt").read_text(encoding="utf-8").splitlines()
    assert listed == [str((out / name).resolve()) for name in names]  # absolute paths
    in_parts = [articles(out / name) for name in names]
    sizes = [len(part) for part in in_parts]
    assert max(sizes) - min(sizes) <= 1, sizes  # round-robin keeps the parts balanced
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert sum(sizes) == manifest["counts"]["train articles"]
    held_out = articles(out / "eval.txt")
    assert len(held_out) == manifest["counts"]["eval articles"]
    return in_parts, held_out, manifest


def all_text(out: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(out.iterdir()) if p.name != "manifest.json"
    )


def assert_no_markup(out: Path) -> None:
    text = all_text(out)
    assert not [mark for mark in MARKUP if mark in text]


def output_bytes(out: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("part-") or p.name == "eval.txt"
    }


def test_wikiextractor_folder_to_layout(cli, data_dir, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    for name in ("wiki_00", "wiki_01", "wiki_02", "wiki_03"):  # and a file that is not WikiExtractor's
        shutil.copy(data_dir / EXTRACTED / name, tmp_path / "in" / name)
    (tmp_path / "in" / "SOURCE.md").write_text("# Where these files come from\n", encoding="utf-8")
    result = prepare(cli, tmp_path / "in", out)
    assert "skipped SOURCE.md" in result.stderr
    _, held_out, manifest = layout(out, 4)
    assert len(held_out) == 3
    counts = manifest["counts"]
    docs = sum(line.startswith("<doc ") for line in all_text(tmp_path / "in").splitlines())
    assert counts["articles read"] == docs
    dropped = counts["disambiguation dropped"] + counts["lists dropped"]
    assert counts["disambiguation dropped"] >= 1 and counts["lists dropped"] >= 1
    assert counts["train articles"] + counts["eval articles"] + counts["empty dropped"] == docs - dropped
    assert_no_markup(out)
    text = all_text(out)
    assert "Anarchism is an anti-authoritarian political and social philosophy" in text
    assert "Aberdeen is a city in Scotland" not in text  # Aberdeen (disambiguation)
    for title in ("Aberdeen (disambiguation)", "List of anthropologists"):
        assert title not in text  # the title line of each <doc> is dropped too


@pytest.mark.full_data(*(EXTRACTED / f"wiki_0{i}" for i in range(4)))
def test_wikiextractor_sample_counts(cli, data_dir, tmp_path):
    """The whole MLCommons sample: 153 articles, of which 6 disambiguation pages and 2 lists."""
    out = tmp_path / "out"
    prepare(cli, data_dir / EXTRACTED, out)
    counts = layout(out, 4)[2]["counts"]
    assert counts["articles read"] == 153
    assert (counts["disambiguation dropped"], counts["lists dropped"]) == (6, 2)
    text = all_text(out)
    for dropped in (
        "This is a list of characters in Ayn Rand's 1957 novel",  # List of Atlas Shrugged characters
        "Austin is the capital of Texas in the United States.",  # Austin (disambiguation)
        "An atlas is a collection of maps",  # Atlas (disambiguation)
    ):
        assert dropped not in text


def test_xml_dump_to_layout(cli, data_dir, tmp_path):
    out = tmp_path / "out"
    prepare(cli, data_dir / DUMP, out, eval_articles=1)
    parts, held_out, manifest = layout(out, 4)
    assert manifest["counts"]["lists dropped"] == 1  # List of Prison Break characters
    assert len(held_out) == 1 and [len(part) for part in parts] == [1, 1, 1, 0]  # every part is written
    assert_no_markup(out)
    text = all_text(out)
    assert "The constructive vote of no confidence (in German: konstruktives Misstrauensvotum" in text
    assert "list of characters in the American television series" not in text
    assert "absent/invalid" not in text  # a table header
    assert "gesetze-im-internet" not in text  # a reference
    assert not re.search(r"^(References|External links|See also)$", text, re.MULTILINE)


def test_wikitext_folder_plain_and_gzip_to_layout(cli, data_dir, tmp_path):
    source = tmp_path / "wikitext"
    source.mkdir()
    shutil.copy(data_dir / "wikitext-2" / "valid.txt", source / "valid.txt")
    (source / "test.txt.gz").write_bytes(gzip.compress((data_dir / "wikitext-2" / "test.txt").read_bytes()))
    out = tmp_path / "out"
    prepare(cli, source, out, parts=5, eval_articles=4)
    parts, held_out, manifest = layout(out, 5)
    titles = [
        line
        for name in ("valid.txt", "test.txt")
        for line in (data_dir / "wikitext-2" / name).read_text(encoding="utf-8").splitlines()
        if heading_level(line) == 1
    ]
    assert manifest["counts"]["articles read"] == len(titles)  # 60 + 62 in the whole files
    assert len(held_out) == 4
    assert_no_markup(out)
    sentences = [line for part in parts for article in part for line in article]
    assert not any(heading_level(line) for line in sentences)  # titles and section headings dropped


def page(title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
    redirect_element = f"<redirect title={quoteattr(redirect)} />" if redirect else ""
    return (
        f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>1</id>{redirect_element}"
        f'<revision><id>2</id><text xml:space="preserve">{escape(text)}</text></revision></page>'
    )


def real_page_text(data_dir: Path) -> str:
    with bz2.open(data_dir / DUMP) as stream:
        for _, element in ET.iterparse(stream):
            if element.tag.endswith("}text"):
                return element.text


def test_redirects_other_namespaces_and_disambiguation_templates_are_dropped(cli, data_dir, tmp_path):
    real = real_page_text(data_dir)
    pages = [
        page("Constructive vote of no confidence", real),
        page(
            "Vote of no confidence (constructive)", "#REDIRECT [[Constructive vote of no confidence]]", 0, "C"
        ),
        page("Old name", "#redirect [[Constructive vote of no confidence]]"),
        page("Talk:Constructive vote of no confidence", "Discussion about the article.", ns=1),
        page("Mercury", "'''Mercury''' may refer to a planet.\n{{Disambiguation}}"),
        page("Smith", "'''Smith''' may refer to a person.\n{{hndis|Smith}}"),
        page("Stub", "{{Infobox country}}\n[[Category:Stubs]]"),
    ]
    dump = tmp_path / "dump.xml"
    dump.write_text(
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">'
        f"<siteinfo><sitename>Wikipedia</sitename></siteinfo>{''.join(pages)}</mediawiki>",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    prepare(cli, dump, out, parts=2, eval_articles=0)
    _, held_out, manifest = layout(out, 2)
    assert manifest["counts"] == {
        "articles read": 7,
        "redirects dropped": 2,
        "disambiguation dropped": 2,
        "lists dropped": 0,
        "other namespaces dropped": 1,
        "empty dropped": 1,
        "train articles": 1,
        "eval articles": 0,
        "sentences": manifest["counts"]["sentences"],
        "part files": 2,
    }
    assert held_out == []
    text = all_text(out)
    assert "The principle is intended to ensure" in text
    assert "Discussion" not in text and "may refer to" not in text
    assert_no_markup(out)


def test_same_seed_same_bytes_for_any_workers_and_another_seed_another_eval_set(cli, data_dir, tmp_path):
    source = data_dir / "wikitext-2" / "valid.txt"
    prepare(cli, source, tmp_path / "a", "--seed", 1, workers=1)
    prepare(cli, source, tmp_path / "b", "--seed", 1, workers=2)
    prepare(cli, source, tmp_path / "c", "--seed", 2, workers=1)
    first = output_bytes(tmp_path / "a")
    assert len(first) == 5 and first == output_bytes(tmp_path / "b")
    _, eval_a, _ = layout(tmp_path / "a", 4)
    _, eval_c, _ = layout(tmp_path / "c", 4)
    assert [article[0] for article in eval_a] != [article[0] for article in eval_c]


def test_rerun_is_a_no_op_and_other_options_are_refused(cli, data_dir, tmp_path):
    out = tmp_path / "out"
    prepare(cli, data_dir / DUMP, out, eval_articles=1)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = prepare(cli, data_dir / DUMP, out, eval_articles=1, workers=2)  # workers do not change output
    assert "train articles" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    other = prepare(cli, data_dir / DUMP, out, eval_articles=2, ok=False)
    assert other.exit_code == 2
    assert "holds output made with eval_articles=1, this run asks eval_articles=2" in other.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_rerun_after_a_killed_run_ends_with_the_same_bytes(cli, data_dir, tmp_path):
    source = data_dir / DUMP
    prepare(cli, source, tmp_path / "clean", eval_articles=1)
    out = tmp_path / "killed"
    options = WikicorpusOptions(input=source, output_dir=out, num_parts=4, eval_articles=1, workers=1)
    claim_output_dir(out, "wikicorpus", options.model_dump(), owned=["part-*"], ignore=["workers"])
    (out / "part-00002-of-00004").write_text("renamed before the kill, from older input\n")
    (out / "part-00003-of-00004.tmp-99999").write_text("half writ")
    prepare(cli, source, out, eval_articles=1)
    layout(out, 4)
    assert output_bytes(out) == output_bytes(tmp_path / "clean")


def truncated_bz2(data_dir: Path, tmp_path: Path) -> Path:
    # Small bz2 blocks, so that the pages of the first blocks can be read before the stream ends.
    packed = bz2.compress(bz2.decompress((data_dir / DUMP).read_bytes()), compresslevel=1)
    path = tmp_path / "truncated.xml.bz2"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    return path


def unclosed_doc(data_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "extracted"
    folder.mkdir()
    lines = (data_dir / EXTRACTED / "wiki_03").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "wiki_00").write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    return folder


def folder_with_a_corrupt_file(data_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "extracted"
    folder.mkdir()
    shutil.copy(data_dir / EXTRACTED / "wiki_03", folder / "wiki_00")
    packed = bz2.compress((data_dir / EXTRACTED / "wiki_02").read_bytes())
    (folder / "wiki_01.bz2").write_bytes(packed[: len(packed) // 2])
    return folder


def only_redirects(data_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "redirects.xml"
    path.write_text(f"<mediawiki>{page('A', '#REDIRECT [[B]]')}{page('C', '#REDIRECT [[D]]')}</mediawiki>")
    return path


def dump_with_a_bad_byte_past_its_head(data_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "dump.xml"
    text = "\n".join(f"Line {i} of the lobster's article." for i in range(400))  # past the 8 KiB head
    xml = f"<mediawiki>\n{page('Homarus', text)}\n{page('Cafe', 'The CAFE Bay.')}\n</mediawiki>\n"
    path.write_bytes(xml.encode().replace(b"CAFE", b"CAF\xc9"))
    return path


def write(name: str, content: str | bytes):
    def make(data_dir: Path, tmp_path: Path) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return make


def empty_folder(data_dir: Path, tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.mark.parametrize(
    ("make_input", "eval_articles", "message"),
    [
        (
            lambda data_dir, tmp_path: tmp_path / "missing.xml.bz2",
            1,
            r"missing\.xml\.bz2: no such file or folder",
        ),
        (write("empty.txt", ""), 1, r"empty\.txt: empty file, no articles found"),
        (empty_folder, 1, r"empty: empty folder, no articles found"),
        (write("notes.txt", "Some notes.\nNot a wiki.\n"), 1, r"notes\.txt: not a MediaWiki XML dump"),
        (write("blob.bin", bytes(range(256)) * 8), 1, r"blob\.bin: binary data, not a MediaWiki XML dump"),
        (
            write("wiki.train.tokens", b" = Homarus = \n\n The lobster of Caf\xe9 Bay .\n"),
            1,
            r"wiki\.train\.tokens:3: not valid UTF-8 \(byte 0xe9 at column 20\); "
            r"re-encode the file as UTF-8$",
        ),
        (
            write("feed.xml", "<?xml version='1.0'?><rss><channel/></rss>"),
            1,
            r"XML root is <rss>, not <mediawiki>",
        ),
        (
            dump_with_a_bad_byte_past_its_head,
            1,
            r"dump\.xml:402: not valid UTF-8 \(byte 0xc9 at column \d+\); re-encode the file as UTF-8$",
        ),
        (truncated_bz2, 1, r"truncated\.xml\.bz2: truncated or corrupt bz2 stream after \d+ pages"),
        (unclosed_doc, 1, r"wiki_00: <doc> of '.+' opened at line \d+ is not closed"),
        (folder_with_a_corrupt_file, 1, r"wiki_01\.bz2: truncated or corrupt bz2 stream"),
        (only_redirects, 1, r"no articles kept out of 2 read \(2 redirects dropped\)"),
        (
            lambda data_dir, tmp_path: data_dir / DUMP,
            10,
            r"--eval-articles 10 leaves no training articles: .+ has 4",
        ),
    ],
    ids=[
        "missing",
        "empty-file",
        "empty-folder",
        "random-text",
        "binary",
        "latin-1-text",
        "not-mediawiki",
        "latin-1-dump",
        "truncated-bz2",
        "unclosed-doc",
        "corrupt-file-in-folder",
        "only-redirects",
        "eval-too-big",
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(
    cli, data_dir, tmp_path, make_input, eval_articles, message
):
    out = tmp_path / "out"
    result = prepare(cli, make_input(data_dir, tmp_path), out, eval_articles=eval_articles, ok=False)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(message, errors[0]), result.stderr
    assert not out.exists()  # no part files, no temporary files, no folder left behind


def test_after_a_refused_input_the_folder_takes_other_options(cli, data_dir, tmp_path):
    out = tmp_path / "out"
    assert prepare(cli, data_dir / DUMP, out, eval_articles=10, ok=False).exit_code == 2
    prepare(cli, data_dir / DUMP, out, eval_articles=2)
    layout(out, 4)


@pytest.mark.slow
@pytest.mark.full_data("wikitext-2/train.txt.gz")
def test_wikitext2_train_to_layout(cli, data_dir, tmp_path):
    out = tmp_path / "out"
    prepare(cli, data_dir / "wikitext-2" / "train.txt.gz", out, parts=8, eval_articles=20, workers=2)
    _, held_out, manifest = layout(out, 8)
    assert manifest["counts"]["articles read"] == 629 and len(held_out) == 20
    assert_no_markup(out)
