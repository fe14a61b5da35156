"""WikiText-style articles: titles open articles, section headings and blank lines are dropped."""

import gzip

import pytest

from linctl.data.sources.wikitext import heading_level, iter_articles, read_wikitext
from linctl.errors import InputError

SAMPLE = [
    " \n",
    " = Homarus gammarus = \n",
    " \n",
    " Homarus gammarus , known as the European lobster , is a species . \n",
    " = = Description = = \n",
    " It is large . \n",
    " = = = Size = = = \n",
    " Up to 60 cm . \n",
    " = Second = \n",
    " Text . \n",
]


def test_articles_are_split_on_titles_and_sections_dropped():
    assert list(iter_articles(SAMPLE)) == [
        (
            "Homarus gammarus",
            [
                "Homarus gammarus , known as the European lobster , is a species .",
                "It is large .",
                "Up to 60 cm .",
            ],
        ),
        ("Second", ["Text ."]),
    ]


@pytest.mark.parametrize(
    ("line", "level"),
    [
        (" = Title = ", 1),
        (" = = Section = = ", 2),
        (" = = = Sub = = = ", 3),
        (" = = Odd = ", 0),
        ("a = b", 0),
    ],
)
def test_heading_level(line, level):
    assert heading_level(line) == level


def test_gzip_files_read_like_plain_ones(tmp_path):
    plain, packed = tmp_path / "a.txt", tmp_path / "a.txt.gz"
    plain.write_text("".join(SAMPLE), encoding="utf-8")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(read_wikitext(packed)) == list(read_wikitext(plain)) == list(iter_articles(SAMPLE))


def test_real_file_has_its_articles(data_dir):
    path = data_dir / "wikitext-2" / "valid.txt"
    articles = list(read_wikitext(path))
    titles = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(" = ") and not line.startswith(" = = ")
    ]
    assert len(articles) == len(titles) and articles[0][0] == "Homarus gammarus"  # 60 in the whole file
    assert all(paragraphs for _, paragraphs in articles)


def test_truncated_gzip_is_an_input_error(tmp_path):
    packed = tmp_path / "a.txt.gz"
    data = gzip.compress(("".join(SAMPLE) * 200).encode())
    packed.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"a\.txt\.gz: truncated gzip stream after line \d+"):
        list(read_wikitext(packed))
