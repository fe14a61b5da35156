"""Throughput of `linctl prepare wikicorpus` on a MediaWiki dump, beside WikiExtractor followed by spaCy's
sentencizer on WikiExtractor's output: per core (one worker or process each) and with more.

    python pipelines/wikicorpus_throughput.py DUMP.xml.bz2 WORK_DIR [--workers 1,2] [--rounds 3]

Every case runs as whole commands, start-up included, into a fresh folder under WORK_DIR: linctl is one
`linctl prepare wikicorpus --workers W`; the peer is `python -m wikiextractor.WikiExtractor --processes W`
then this script's `sentencize` step (blank English + `sentencizer`, `nlp.pipe(n_process=W)`), the same
splitter linctl falls back to. Rounds run every case once in turn, so that a neighbour's load falls on all
of them alike; each figure is the median over rounds. Prints a Markdown table: wall seconds, CPU seconds
(the commands and their children), articles and MB of uncompressed XML per second, and linctl's speed
against the peer and against one worker. The peer needs `wikiextractor` (the `peers` extra).
"""

import argparse
import bz2
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

LINCTL = [sys.executable, "-m", "linctl"]


def run(args: list[str]) -> tuple[float, float]:
    """Run a command; return its wall and CPU seconds (its own and its children's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "LINCTL_PROGRESS": "0"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def linctl_case(dump: Path, out: Path, workers: int) -> tuple[float, float, int]:
    shutil.rmtree(out, ignore_errors=True)
    args = [*LINCTL, "prepare", "wikicorpus", "--input", str(dump), "--output-dir", str(out)]
    wall, cpu = run([*args, "--workers", str(workers), "--num-parts", "1", "--eval-articles", "0"])
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    return wall, cpu, counts["train articles"] + counts["eval articles"]


def peer_case(dump: Path, out: Path, workers: int) -> tuple[float, float, int]:
    shutil.rmtree(out, ignore_errors=True)
    extract = [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "-o", str(out / "text")]
    wall, cpu = run([*extract, "--processes", str(workers), "-q"])
    split = [sys.executable, __file__, "sentencize", str(out / "text"), str(out / "sentences.txt")]
    split_wall, split_cpu = run([*split, "--processes", str(workers)])
    articles = sum(text.count("<doc ") for text in _extracted(out / "text"))
    return wall + split_wall, cpu + split_cpu, articles


def _extracted(folder: Path) -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted(folder.rglob("wiki_*"))]


def sentencize(folder: Path, out: Path, processes: int) -> None:
    """Split WikiExtractor's paragraphs (its `<doc>` lines, the title line left out) into sentences."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    paragraphs = []
    for text in _extracted(folder):
        for doc in text.split("</doc>"):
            lines = [line for line in doc.splitlines() if line.strip() and not line.startswith("<doc ")]
            paragraphs += lines[1:]  # the first line is the title
    with open(out, "w", encoding="utf-8") as fh:
        for doc in nlp.pipe(paragraphs, batch_size=256, n_process=processes):
            fh.writelines(f"{s.text.strip()}\n" for s in doc.sents if s.text.strip())


def main() -> None:
    if sys.argv[1:2] == ["sentencize"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("step")
        parser.add_argument("folder", type=Path)
        parser.add_argument("out", type=Path)
        parser.add_argument("--processes", type=int, default=1)
        step = parser.parse_args()
        sentencize(step.folder, step.out, step.processes)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--workers", default="1,2", help="worker (and peer process) counts, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with bz2.open(args.dump) if args.dump.suffix == ".bz2" else open(args.dump, "rb") as fh:
        megabytes = len(fh.read()) / 1e6
    cases = {(tool, w): [] for w in counts for tool in ("linctl", "peer")}
    for _ in range(args.rounds):
        for (tool, w), results in cases.items():
            case = linctl_case if tool == "linctl" else peer_case
            results.append(case(args.dump, args.work / f"{tool}-{w}", w))
    print(f"{args.dump.name}: {megabytes:.2f} MB of XML; {platform.machine()}, {os.cpu_count()} CPUs; "
          f"median of {args.rounds} rounds\n")  # fmt: skip
    print("| tool | workers | wall s | CPU s | articles | articles/s | MB/s | vs peer | vs 1 worker |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    wall = {case: statistics.median(r[0] for r in results) for case, results in cases.items()}
    for (tool, w), results in cases.items():
        cpu = statistics.median(r[1] for r in results)
        articles = results[0][2]
        vs_peer = f"{wall['peer', w] / wall[tool, w]:.2f}×" if tool == "linctl" else ""
        vs_one = f"{wall[tool, counts[0]] / wall[tool, w]:.2f}×"
        print(f"| {tool if tool == 'linctl' else 'WikiExtractor + spaCy'} | {w} | {wall[tool, w]:.2f} | "
              f"{cpu:.2f} | {articles} | {articles / wall[tool, w]:.1f} | {megabytes / wall[tool, w]:.2f} | "
              f"{vs_peer} | {vs_one} |")  # fmt: skip


if __name__ == "__main__":
    main()
