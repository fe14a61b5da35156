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
    --output-dir "$RUNS/wt2/corpus-train" --num-parts 8 --eval-articles 0
run "WikiText-2 valid → MLCommons part files" \
    linctl prepare wikicorpus --input "$DATA/wikitext-2/valid.txt" \
    --output-dir "$RUNS/wt2/corpus-valid" --num-parts 1 --eval-articles 0
run "WordPiece vocabulary trained on WikiText-2 train" \
    linctl prepare vocab --metadata-files "$RUNS/wt2/corpus-train/metadata.txt" --output-dir "$RUNS/wt2/vocab" \
    --vocab-size 8000 --do-lower-case
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
    python pipelines/prepare_throughput.py "$RUNS/wt2/corpus-train/metadata.txt" \
    "$DATA/bert-vocab/bert-base-cased-vocab.txt" "$RUNS/throughput"
rm -rf "$RUNS/throughput"

# The Linformer paper's central claim at small scale: softmax vs Linformer encoders of one size.
wt2_mlm=(--vocab-file "$RUNS/wt2/vocab/vocab.txt" --do-lower-case --max-seq-length 128
    --max-predictions-per-seq 20 --multiple-docs-in-single-file --single-sentence-per-line
    --dupe-factor 1 --num-output-files 4)
run "MLM shards of WikiText-2 train (msl 128, unmasked: dynamic masking)" \
    linctl prepare mlm --metadata-files "$RUNS/wt2/corpus-train/metadata.txt" --output-dir "$RUNS/wt2/mlm-train" \
    --disable-masking "${wt2_mlm[@]}"
run "MLM shards of WikiText-2 valid (msl 128, static masks: every model scored on the same tokens)" \
    linctl prepare mlm --metadata-files "$RUNS/wt2/corpus-valid/metadata.txt" --output-dir "$RUNS/wt2/mlm-valid" \
    "${wt2_mlm[@]}"
wt2_runs=()
for name in softmax linformer-k32-kv linformer-k32-layerwise; do
    data=(--set "task.train_dir=$RUNS/wt2/mlm-train" --set "task.eval_dir=$RUNS/wt2/mlm-valid")
    run "Train $name (configs/mlm/wt2-$name.yaml)" \
        linctl train --config "configs/mlm/wt2-$name.yaml" "${data[@]}" --model-dir "$RUNS/wt2/$name"
    run "Evaluate $name on all of WikiText-2 valid" \
        linctl eval --model-dir "$RUNS/wt2/$name" "${data[@]}" --set task.eval_examples=null
    wt2_runs+=("$RUNS/wt2/$name")
done
run "Eval perplexity curves: softmax vs Linformer" \
    python pipelines/mlm_curves.py "$RUNS/wt2/curves.png" "${wt2_runs[@]}"
# GLUE SST-2: fine-tune the WikiText-2 Linformer, and the same model from random initialisation.
run "SST-2 with the WikiText-2 vocabulary (prepare glue)" \
    linctl prepare glue --task SST-2 --input "$DATA/glue/SST-2" --vocab-file "$RUNS/wt2/vocab/vocab.txt" \
    --do-lower-case --max-seq-length 128 --output-dir "$RUNS/glue/sst2-wt2"
sst2=(--config configs/glue/sst2-wt2-linformer.yaml --set "task.train_dir=$RUNS/glue/sst2-wt2/train"
      --set "task.eval_dir=$RUNS/glue/sst2-wt2/dev")
for start in pretrained random; do
    init="$RUNS/wt2/linformer-k32-kv/checkpoint-00000800"
    [ "$start" = random ] && init=null
    run "Fine-tune on SST-2 from $start weights" \
        linctl train "${sst2[@]}" --set "train.init_checkpoint=$init" --model-dir "$RUNS/glue/sst2-$start"
    run "SST-2 dev accuracy of every checkpoint ($start)" \
        linctl eval "${sst2[@]}" --model-dir "$RUNS/glue/sst2-$start" --all-checkpoints
done
# Language modelling with Primal-Attention: WikiText-2 as fairseq sees it, a Transformer against the same
# model with a Primal last layer (Primal.+Trans.), perplexity with eval-lm's protocol, the efficiency test.
run "WikiText-2 → LM token streams (word vocabulary from train)" \
    linctl prepare wikitext --config configs/lm/prepare-wikitext-wt2.yaml --output-dir "$RUNS/wt2/lm"
lm=(--set "task.train_dir=$RUNS/wt2/lm/train" --set "task.eval_dir=$RUNS/wt2/lm/valid")
for name in transformer primal; do
    run "Train the WikiText-2 LM: $name" \
        linctl train --config "configs/lm/wt2-$name.yaml" "${lm[@]}" --model-dir "$RUNS/wt2/lm-$name"
    for split in valid test; do
        run "Perplexity on WikiText-2 $split ($name, context window 64)" \
            linctl eval --model-dir "$RUNS/wt2/lm-$name" --set "task.eval_dir=$RUNS/wt2/lm/$split" \
            --context-window 64 --metric ppl
    done
done
run "bench: the efficiency test, seconds and memory per 1,000 training steps (Transformer vs Primal.+Trans.)" \
    linctl bench --level model --mode train --config configs/lm/wt2-transformer.yaml,configs/lm/wt2-primal.yaml \
    --seq-len 128 --batch-size 16 --warmup 2 --repeats 5 --json "$RUNS/bench/lm-efficiency.json"
# Time and memory against sequence length: attention blocks, then BERT-base-sized encoders (no data).
mkdir -p "$RUNS/bench"
run "bench: attention blocks, n 512-4096, every kind (linctl bench)" \
    linctl bench --seq-len 512,1024,2048,4096 --k 128,256 --paper \
    --json "$RUNS/bench/attention.json" --plot "$RUNS/bench/attention.png"
run "bench: base encoders, n 1024-4096, softmax vs Linformer k 128 layerwise" \
    linctl bench --level model --seq-len 1024,2048,4096 --k 128 --attention softmax,linformer --warmup 0 \
    --repeats 2 --paper --json "$RUNS/bench/model.json" --plot "$RUNS/bench/model.png"
echo "report: $report" >&2
