"""`linctl prepare translation` / `prepare wmt14`, then `train` and `eval` of the tiny encoder-decoder on
real WMT14 text (the BPE training sample, newstest2013 as CSV, newstest2014): BPE joined back, filters
counted, BLEU and chrF equal to the sacrebleu command line's on the same files, bad input in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from linctl.data.translation import ParallelShards
from linctl.metrics.bleu import corpus_scores

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "translation" / "tiny.yaml"
SACREBLEU = Path(sys.executable).parent / "sacrebleu"


@pytest.fixture(scope="module")
def parallel(data_dir, tmp_path_factory) -> Path:
    """300 pairs of the BPE training sample as train, 29 of newstest2013 (CSV) as valid, 21 of newstest2014
    (two files) as test."""
    wmt = data_dir / "wmt14-en-de"
    text = tmp_path_factory.mktemp("parallel")
    for lang in ("en", "de"):
        lines = (wmt / "train-sample-10k-bpe" / f"train.{lang}").read_text(encoding="utf-8").splitlines(True)
        (text / f"train.{lang}").write_text("".join(lines[:300]), encoding="utf-8")
        lines = (wmt / f"newstest2014.{lang}").read_text(encoding="utf-8").splitlines(True)
        (text / f"test.{lang}").write_text("".join(lines[:21]), encoding="utf-8")
    rows = (wmt / "newstest2013.de-en.csv").read_text(encoding="utf-8").splitlines(True)
    (text / "valid.de-en.csv").write_text("".join(rows[:30]), encoding="utf-8")
    return text


@pytest.fixture(scope="module")
def prepared(cli, parallel, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mt") / "out"
    cli("prepare", "translation", "--input", parallel, "--output-dir", out, "--source-lang", "en",
        "--target-lang", "de", "--vocab-size", 211, "--max-length", 46)  # fmt: skip
    return out


def test_prepare_joins_bpe_filters_train_only_and_resumes(cli, parallel, prepared):
    train = json.loads((prepared / "train" / "manifest.json").read_text())
    counts = train["counts"]
    assert counts["read"] == 300 and counts["dropped_length"] > 0 and counts["dropped_ratio"] > 0
    assert (
        counts["pairs"] + counts["dropped_empty"] + counts["dropped_length"] + counts["dropped_ratio"] == 300
    )
    assert train["options"]["join_bpe"] and train["options"]["unescape"]
    shards = ParallelShards(prepared / "train")
    assert not any("@@" in line or "&apos;" in line for line in shards.references())
    test = ParallelShards(prepared / "test")
    assert len(test) == 21 and test.references()[0] == (parallel / "test.de").read_text().splitlines()[0]
    assert len(ParallelShards(prepared / "valid")) == 29  # every pair of an evaluation split is kept
    again = cli("prepare", "translation", "--input", parallel, "--output-dir", prepared, "--source-lang",
                "en", "--target-lang", "de", "--vocab-size", 211, "--max-length", 46)  # fmt: skip
    assert _flat(again.stdout).count("alreadycomplete") == 3 and "trainedearlier" in _flat(again.stdout)


def test_train_then_eval_bleu_equals_the_sacrebleu_command_line(cli, prepared, tmp_path):
    model_dir, hyp = tmp_path / "model", tmp_path / "hyp.txt"
    vocab = json.loads((prepared / "tokenizer" / "manifest.json").read_text())["counts"]["vocab_size"]
    run = ["--config", TINY, "--set", f"task.train_dir={prepared / 'train'}",
           "--set", f"model.vocab_size={vocab}", "--set", f"task.eval_dir={prepared / 'test'}"]  # fmt: skip
    cli(
        "train", *run, "--model-dir", model_dir, "--set", "train.eval_every=0", "--set", "task.generate=false"
    )
    assert (model_dir / "checkpoint-00000008" / "tokenizer.json").is_file()
    result = cli("eval", *run, "--model-dir", model_dir, "--hypotheses", hyp, "--bleu-tokenize", "intl",
                 "--json", tmp_path / "eval.json")  # fmt: skip
    found = json.loads((tmp_path / "eval.json").read_text())
    assert "tok:intl" in found["protocol"] and "tok:intl" in _flat(result.stdout)
    ref = tmp_path / "ref.txt"
    ref.write_text("".join(f"{line}\n" for line in ParallelShards(prepared / "test").references(7)))
    assert len(hyp.read_text().splitlines()) == 7  # tiny.yaml's task.eval_sentences
    assert found["bleu"] == pytest.approx(_sacrebleu(ref, hyp, "bleu", "--tokenize", "intl"), abs=1e-4)
    assert found["chrf"] == pytest.approx(_sacrebleu(ref, hyp, "chrf"), abs=1e-4)
    ppl = cli("eval", *run, "--model-dir", model_dir, "--metric", "ppl", "--json", tmp_path / "ppl.json")
    assert json.loads((tmp_path / "ppl.json").read_text())["ppl"] == pytest.approx(found["ppl"])
    assert "bleu" not in json.loads((tmp_path / "ppl.json").read_text()) and "sacrebleu" not in ppl.stdout


def _flat(text: str) -> str:
    """Return a printed table's text without its wrapping: no white space, no borders."""
    return "".join(c for c in text if not c.isspace() and c != "│")


def _sacrebleu(ref: Path, hyp: Path, metric: str, *options: str) -> float:
    done = subprocess.run([SACREBLEU, ref, "-i", hyp, "-m", metric, "-b", "-w", "6", *options],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return float(done.stdout)


@pytest.mark.parametrize("tokenize", ["13a", "intl"])
def test_bleu_of_a_hypothesis_file_equals_the_sacrebleu_command_line(data_dir, tmp_path, tokenize):
    refs = (data_dir / "wmt14-en-de" / "newstest2014.de").read_text(encoding="utf-8").splitlines()[:200]
    hyps = [" ".join(line.split()[::-1][:12]) if i % 3 else line for i, line in enumerate(refs)]  # a mix
    (tmp_path / "ref.txt").write_text("".join(f"{line}\n" for line in refs), encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("".join(f"{line}\n" for line in hyps), encoding="utf-8")
    scores = corpus_scores(hyps, refs, tokenize)
    assert 20 < scores.bleu < 80
    assert scores.bleu == pytest.approx(_sacrebleu(tmp_path / "ref.txt", tmp_path / "hyp.txt", "bleu",
                                                   "--tokenize", tokenize), abs=1e-4)  # fmt: skip
    assert f"tok:{tokenize}" in scores.bleu_signature


def test_prepare_wmt14_finds_train_one_folder_down_and_keeps_all_of_newstest2014(cli, data_dir, tmp_path):
    result = cli("prepare", "wmt14", "--input", data_dir / "wmt14-en-de", "--output-dir", tmp_path / "wmt",
                 "--vocab-size", 500, "--valid", "")  # fmt: skip
    assert result.exit_code == 0
    wmt = data_dir / "wmt14-en-de"
    train = json.loads((tmp_path / "wmt" / "train" / "manifest.json").read_text())["counts"]
    dropped = train["dropped_empty"] + train["dropped_length"] + train["dropped_ratio"]
    assert train["read"] == len((wmt / "train-sample-10k-bpe" / "train.en").read_bytes().splitlines())
    assert len(ParallelShards(tmp_path / "wmt" / "train")) == train["pairs"] == train["read"] - dropped
    test = (wmt / "newstest2014.en").read_bytes().splitlines()
    assert len(ParallelShards(tmp_path / "wmt" / "test")) == len(test)  # 3003 pairs in the whole file


def test_misaligned_files_and_a_csv_without_languages_fail_in_one_line(cli, parallel, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "train.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "a" / "train.de").write_text("eins\nzwei\n")
    result = cli("prepare", "translation", "--input", tmp_path / "a", "--output-dir", tmp_path / "o1",
                 "--source-lang", "en", "--target-lang", "de", "--valid", "", "--test", "",
                 ok=False)  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'a' / 'train.en'}: 3 lines but {tmp_path / 'a' / 'train.de'} has 2; "
        "parallel files must be line-aligned"
    )
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "train.csv").write_text("first,second\nhello,hallo\n")
    result = cli("prepare", "translation", "--input", tmp_path / "b", "--output-dir", tmp_path / "o2",
                 "--source-lang", "en", "--target-lang", "de", "--valid", "", "--test", "",
                 ok=False)  # fmt: skip
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "train.csv:1: header 'first,second' names no 'en' column" in result.stderr
    assert not (tmp_path / "o1" / "train").exists() or not any((tmp_path / "o1" / "train").glob("*.arrow"))
