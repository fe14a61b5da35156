"""Wikitext markup to plain paragraphs: what is kept, what is dropped, and that no markup survives."""

import pytest

from linctl.data.sources.markup import clean_line, skim, strip_markup

MARKUP = ("{{", "}}", "[[", "]]", "{|", "|}", "<ref", "'''", "''", "<", ">")


def text_of(wikitext: str) -> str:
    return "\n".join(strip_markup(wikitext))


@pytest.mark.parametrize(
    ("wikitext", "expected"),
    [
        ("The [[Eiffel Tower]] is in [[Paris|the capital]].", "The Eiffel Tower is in the capital."),
        ("[[apple]]s and [[pear]]", "apples and pear"),
        ("It is '''bold''' and ''italic'' and '''''both'''''.", "It is bold and italic and both."),
        ("Read [https://example.org the site] or https://example.org now.", "Read the site or now."),
        ("Born in 1900.{{cite web|url=x|title={{nested|y}}}} Died.", "Born in 1900. Died."),
        ("Fact.<ref name=a>Source [[X]].</ref> More.<ref name=a /> End.", "Fact. More. End."),
        ("A<!-- hidden -->B &amp; C&nbsp;D &lt;tag&gt;", "AB & C D"),
        ("Text [[File:Map.png|thumb|A [[map]] of ''it'']] after.", "Text after."),
        ("Text [[Image:X.jpg|left|Caption]] after.", "Text after."),
        ("Body.\n[[Category:Towers]]\n[[fr:Tour Eiffel]]\n[[de:Eiffelturm]]", "Body."),
        ("See [[:Category:Towers|towers]] and [[wikt:tower|tower]].", "See towers and tower."),
        ("Before.\n{| class=wikitable\n|-\n! A !! B\n|-\n| [[x]] || {{y}}\n|}\nAfter.", "Before.\nAfter."),
        ("x<sup>2</sup> and H<sub>2</sub>O<br/>next", "x2 and H2O\nnext"),
        ("Pronounced {{IPA|/x/}} () here (, ; ) too.", "Pronounced here too."),
    ],
    ids=lambda value: value[:30],
)
def test_markup_is_stripped_and_text_kept(wikitext, expected):
    assert text_of(wikitext) == expected


def test_headings_lists_and_trailing_sections_are_dropped():
    wikitext = (
        "Lead paragraph.\n\n== History ==\nHistory text.\n=== Early ===\nEarly text.\n"
        "* a bullet [[with link]]\n# a numbered item\n; term\n: indented text kept\n"
        "== See also ==\n* [[Other]]\n== References ==\n{{reflist}}\n=== Sources ===\nA book.\n"
        "== External links ==\n* [http://x.org Site]\n"
    )
    assert strip_markup(wikitext) == ["Lead paragraph.", "History text.", "Early text.", "indented text kept"]


def test_a_section_after_the_trailing_ones_is_kept():
    assert strip_markup("A.\n== Notes ==\nn\n== Legacy ==\nKept.") == ["A.", "Kept."]


def test_unclosed_markup_does_not_survive():
    paragraphs = strip_markup("Start {{unclosed template and '''bold\n{|\n| cell\nEnd [[broken link.")
    assert paragraphs and not any(mark in p for p in paragraphs for mark in MARKUP)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('sent.<ref name="x"></ref> Next', "sent. Next"),
        ("Estimates in O País</ref> Besides", "Estimates in O País Besides"),
        ('followed by a "<nowiki>[</nowiki>" character', 'followed by a "[" character'),
        ("<br>Nepal, a country", "Nepal, a country"),
        ("]]", ""),
        ("Andorra (, ; ), officially () the Principality", "Andorra, officially the Principality"),
        ("code for the line above (&#772; or ¯).", "code for the line above (\u0304 or ¯)."),
    ],
)
def test_wikiextractor_leftovers_are_cleaned(line, expected):
    assert clean_line(line) == expected


@pytest.mark.parametrize(
    ("wikitext", "expected"),
    [
        # closing runs of four braces close two templates; three braces are a template argument
        ("A {{a|{{b|c}}}} B {{{1}}} C {{d|{{{2|x}}}}} D.", "A B C D."),
        # emphasis around a cut template is cut with it, so that the rest is not read as bold or italic
        ("It is ''{{lang|fr|mot}}'' here.\n== See also ==\n* [[X]]", "It is here."),
        (
            "'''{{lang|ar|x}}''' ({{IPA|y}}; ''Dzayer''), officially '''the state'''.",
            "(; Dzayer), officially the state.",
        ),
        # nested tables go whole, only from a line start
        (
            "Before.\n{|\n|\n{|\n| inner\n|}\n| outer\n|}\nAfter {| not a table.",
            "Before.\nAfter not a table.",
        ),
        ("Kept <!-- a {{comment}} --> text<ref>{{cite|x}}</ref>.<math>{{a}}</math>", "Kept text."),
    ],
    ids=lambda value: value[:30],
)
def test_templates_tables_and_references_are_cut_before_parsing(wikitext, expected):
    assert text_of(wikitext) == expected


def test_skim_names_the_top_level_templates():
    assert skim("x {{Disambiguation|a={{b}}}} {{ dab }} {{{1}}}").templates == ["Disambiguation", " dab "]
