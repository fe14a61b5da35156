#!/usr/bin/env bash
# `make reproduce`: every pipeline stage that exists so far, on the shared data; writes $RUNS/report.md.
# Each stage is a plain linctl command, printed in the report above what it printed.
set -euo pipefail
DATA=${LINCTL_DATA:-../shared/data}
RUNS=${RUNS:-runs}
mkdir -p "$RUNS"
report="$RUNS/report.md"
export LINCTL_PROGRESS=${LINCTL_PROGRESS:-0}

run() {  # run TITLE COMMAND…: run a stage and add its command and output to the report
    local title=$1
    shift
    echo "== $title" >&2
    { printf '\n## %s\n\n```\n$ %s\n' "$title" "$*"; "$@"; printf '```\n'; } >>"$report"
}

{
    echo "# linctl reproduce report"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%MZ) · linctl $(linctl --version | cut -d' ' -f2) · $(uname -m), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB · data: $DATA"
} >"$report"

run "Wikipedia (WikiExtractor output, MLPerf sample) → MLCommons part files" \
    linctl prepare wikicorpus --input "$DATA/wikipedia/mlperf-bert-wikiextractor-sample" \
    --output-dir "$RUNS/wikicorpus" --num-parts 4 --eval-articles 8
run "Wikipedia (MediaWiki XML dump excerpt) → MLCommons part files" \
    linctl prepare wikicorpus --input "$DATA/wikipedia/enwiki-table-markup/enwiki-table-markup.xml.bz2" \
    --output-dir "$RUNS/wikicorpus-xml" --num-parts 2 --eval-articles 1
run "WikiText-2 train → MLCommons part files" \
    linctl prepare wikicorpus --input "$DATA/wikitext-2/train.txt.gz" \
    --output-dir "$RUNS/wikicorpus-wt2" --num-parts 8 --eval-articles 50
run "WordPiece vocabulary trained on WikiText-2" \
    linctl prepare vocab --metadata-files "$RUNS/wikicorpus-wt2/metadata.txt" --output-dir "$RUNS/vocab" \
    --vocab-size 8000 --lowercase
run "MLM shards, BERT phase 1 recipe (msl 128, static masks, dupe 10)" \
    linctl prepare mlm --config configs/mlm/prepare-mlm-msl128-static.yaml \
    --metadata-files "$RUNS/wikicorpus/metadata.txt" \
    --vocab-file "$DATA/bert-vocab/bert-base-uncased-vocab.txt" --output-dir "$RUNS/mlm-msl128"
run "MLM shards, Cerebras Linformer recipe (msl 512, unmasked for dynamic masking)" \
    linctl prepare mlm --config configs/mlm/prepare-mlm-msl512-dynamic.yaml \
    --metadata-files "$RUNS/wikicorpus/metadata.txt" \
    --vocab-file "$DATA/bert-vocab/bert-base-cased-vocab.txt" --output-dir "$RUNS/mlm-msl512"
rm -rf "$RUNS/throughput"
run "prepare mlm throughput against the raw tokenizers rate (WikiText-2 train parts, cased vocab)" \
    python pipelines/prepare_throughput.py "$RUNS/wikicorpus-wt2/metadata.txt" \
    "$DATA/bert-vocab/bert-base-cased-vocab.txt" "$RUNS/throughput"
rm -rf "$RUNS/throughput"
echo "report: $report" >&2
