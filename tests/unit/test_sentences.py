"""Sentence splitting: the blank-English fallback, an installed pipeline, and over-long paragraphs."""

import spacy

from linctl.data.sentences import load_sentencizer, split_sentences


def test_missing_model_falls_back_to_the_sentencizer_with_a_warning(capsys):
    nlp = load_sentencizer("no_such_spacy_model")
    assert nlp.pipe_names == ["sentencizer"]
    assert "no_such_spacy_model" in capsys.readouterr().err


def test_installed_pipeline_is_loaded_without_warning(tmp_path, capsys):
    spacy.blank("en").to_disk(tmp_path / "pipeline")
    nlp = load_sentencizer(str(tmp_path / "pipeline"))
    assert nlp.has_pipe("sentencizer")
    assert capsys.readouterr().err == ""


def test_one_list_of_stripped_sentences_per_paragraph():
    nlp = load_sentencizer("no_such_spacy_model", warn_fallback=False)
    paragraphs = ["  First one. Second one!  ", "", "Alone here"]
    assert split_sentences(nlp, paragraphs) == [["First one.", "Second one!"], [], ["Alone here"]]


def test_paragraph_longer_than_max_length_is_cut_not_refused():
    nlp = load_sentencizer("no_such_spacy_model", warn_fallback=False)
    nlp.max_length = 50
    paragraph = " ".join(f"Sentence number {i} is here." for i in range(20))
    (sentences,) = split_sentences(nlp, [paragraph])
    assert " ".join(sentences) == paragraph
    assert all(len(sentence) <= 50 for sentence in sentences)
