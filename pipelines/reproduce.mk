# `make reproduce`: every pipeline stage on the shared data, as Make targets; the Makefile includes this file.
#
# Each stage's target is the file the stage writes last, its completion record: a prepare's manifest.json
# (of the split written last), a training run's final checkpoint, an evaluation's or a benchmark's JSON. A
# stage depends on its inputs and its config file, so `make reproduce` runs only the stages whose record is
# missing or older than what it was made from, a killed stage reruns and resumes where it stopped (linctl
# resumes itself), and `make -n reproduce` lists what would run. A rerun that finds its work done (a prepare
# or a training run finished before) changes no file, so its record is touched to say it is current.
#
# `make reproduce FAST=1` runs the same stages smaller (fewer steps, fewer evaluation examples, shorter
# benchmarks: the FAST_* overrides and each $(if $(FAST_RUN),…) below) into runs/fast, so that it never mixes with the full runs. The last
# stage, `linctl report`, writes $(RUNS)/report.md over every run.

DATA := $(LINCTL_DATA)
LINCTL := $(BIN)/linctl
PYTHON := $(BIN)/python
export LINCTL_PROGRESS ?= 0
# the seeds of every SST-2 fine-tuning run (`linctl report` gives their mean ± standard deviation)
SEEDS ?= 0 1 2
comma := ,

# train.steps of a run config (the `steps:` line of its train section), the FAST steps with FAST=1
steps = $(if $(FAST_RUN),$(2),$(shell sed -n 's/^  steps: *\([0-9][0-9]*\).*/\1/p' $(1)))
# the folder of the checkpoint a run of $(1) steps writes last
final = checkpoint-$(shell printf %08d $(1))
fast = $(if $(FAST_RUN),$(1))

# --- Wikipedia and WikiText-2 → MLCommons part files, the WikiText-2 vocabulary, MLM shards

$(RUNS)/wikicorpus/manifest.json: $(wildcard $(DATA)/wikipedia/mlperf-bert-wikiextractor-sample/*)
	$(LINCTL) prepare wikicorpus --input $(DATA)/wikipedia/mlperf-bert-wikiextractor-sample \
	    --output-dir $(RUNS)/wikicorpus --num-parts 4 --eval-articles 8
	touch $@
$(RUNS)/wikicorpus-xml/manifest.json: $(DATA)/wikipedia/enwiki-table-markup/enwiki-table-markup.xml.bz2
	$(LINCTL) prepare wikicorpus --input $< --output-dir $(RUNS)/wikicorpus-xml --num-parts 2 --eval-articles 1
	touch $@
$(RUNS)/wt2/corpus-train/manifest.json: $(DATA)/wikitext-2/train.txt.gz
	$(LINCTL) prepare wikicorpus --input $< --output-dir $(RUNS)/wt2/corpus-train --num-parts 8 --eval-articles 0
	touch $@
$(RUNS)/wt2/corpus-valid/manifest.json: $(DATA)/wikitext-2/valid.txt
	$(LINCTL) prepare wikicorpus --input $< --output-dir $(RUNS)/wt2/corpus-valid --num-parts 1 --eval-articles 0
	touch $@
$(RUNS)/wt2/vocab/manifest.json: $(RUNS)/wt2/corpus-train/manifest.json
	$(LINCTL) prepare vocab --metadata-files $(RUNS)/wt2/corpus-train/metadata.txt --output-dir $(RUNS)/wt2/vocab \
	    --vocab-size 8000 --do-lower-case
	touch $@
# BERT phase 1 recipe (msl 128, static masks, dupe 10) and the Cerebras Linformer recipe (msl 512, unmasked)
$(RUNS)/mlm-msl128/manifest.json: configs/mlm/prepare-mlm-msl128-static.yaml $(RUNS)/wikicorpus/manifest.json
	$(LINCTL) prepare mlm --config $< --metadata-files $(RUNS)/wikicorpus/metadata.txt \
	    --vocab-file $(DATA)/bert-vocab/bert-base-uncased-vocab.txt --output-dir $(RUNS)/mlm-msl128
	touch $@
$(RUNS)/mlm-msl512/manifest.json: configs/mlm/prepare-mlm-msl512-dynamic.yaml $(RUNS)/wikicorpus/manifest.json
	$(LINCTL) prepare mlm --config $< --metadata-files $(RUNS)/wikicorpus/metadata.txt \
	    --vocab-file $(DATA)/bert-vocab/bert-base-cased-vocab.txt --output-dir $(RUNS)/mlm-msl512
	touch $@
# prepare mlm against the raw tokenizers rate: a Markdown table (its work folder is removed after)
# (FAST=1: on WikiText-2 valid, a tenth of train's size)
THROUGHPUT_SPLIT := $(if $(FAST_RUN),valid,train)
$(RUNS)/throughput.md: $(RUNS)/wt2/corpus-$(THROUGHPUT_SPLIT)/manifest.json pipelines/prepare_throughput.py
	rm -rf $(RUNS)/throughput
	$(PYTHON) pipelines/prepare_throughput.py $(RUNS)/wt2/corpus-$(THROUGHPUT_SPLIT)/metadata.txt \
	    $(DATA)/bert-vocab/bert-base-cased-vocab.txt $(RUNS)/throughput > $@.tmp
	rm -rf $(RUNS)/throughput
	mv $@.tmp $@

# --- The Linformer paper's central claim at small scale: softmax vs Linformer encoders of one size

WT2_MLM := --vocab-file $(RUNS)/wt2/vocab/vocab.txt --do-lower-case --max-seq-length 128 \
    --max-predictions-per-seq 20 --multiple-docs-in-single-file --single-sentence-per-line --dupe-factor 1 \
    --num-output-files 4
$(RUNS)/wt2/mlm-train/manifest.json: $(RUNS)/wt2/corpus-train/manifest.json $(RUNS)/wt2/vocab/manifest.json
	$(LINCTL) prepare mlm --metadata-files $(RUNS)/wt2/corpus-train/metadata.txt \
	    --output-dir $(RUNS)/wt2/mlm-train --disable-masking $(WT2_MLM)
	touch $@
$(RUNS)/wt2/mlm-valid/manifest.json: $(RUNS)/wt2/corpus-valid/manifest.json $(RUNS)/wt2/vocab/manifest.json
	$(LINCTL) prepare mlm --metadata-files $(RUNS)/wt2/corpus-valid/metadata.txt \
	    --output-dir $(RUNS)/wt2/mlm-valid $(WT2_MLM)
	touch $@

WT2_NAMES := softmax linformer-k32-kv linformer-k32-layerwise
WT2_DATA := --set task.train_dir=$(RUNS)/wt2/mlm-train --set task.eval_dir=$(RUNS)/wt2/mlm-valid
# FAST=1 runs: 20 steps of 8 examples, logged every 5, evaluated (on a few examples) at steps 10 and 20
FAST_STEPS := --set train.steps=20 --set train.batch_size=8 --set optim.warmup_steps=2 --set train.log_every=5 \
    --set train.eval_every=10 --set train.checkpoint_every=10
FAST_WT2 := $(FAST_STEPS) --set task.eval_examples=64
WT2_FINAL = $(RUNS)/wt2/$(1)/$(call final,$(call steps,configs/mlm/wt2-$(1).yaml,20))
WT2_TRAINED = $(call WT2_FINAL,$(1))/trainer_state.json
WT2_SCORED = $(call WT2_FINAL,$(1))/eval.json

define wt2_run # NAME: train configs/mlm/wt2-NAME.yaml, then score it on all of WikiText-2 valid
$(call WT2_TRAINED,$(1)): configs/mlm/wt2-$(1).yaml $(RUNS)/wt2/mlm-train/manifest.json \
    $(RUNS)/wt2/mlm-valid/manifest.json
	$(LINCTL) train --config configs/mlm/wt2-$(1).yaml $(WT2_DATA) --model-dir $(RUNS)/wt2/$(1) $(call fast,$(FAST_WT2))
	touch $$@
$(call WT2_SCORED,$(1)): $(call WT2_TRAINED,$(1))
	$(LINCTL) eval --model-dir $(RUNS)/wt2/$(1) $(WT2_DATA) --set task.eval_examples=$(if $(FAST_RUN),256,null)
endef
$(foreach name,$(WT2_NAMES),$(eval $(call wt2_run,$(name))))

# eval perplexity curves, softmax vs Linformer: the plot and its Markdown table
$(RUNS)/wt2/curves.md: pipelines/mlm_curves.py $(foreach name,$(WT2_NAMES),$(call WT2_SCORED,$(name)))
	$(PYTHON) pipelines/mlm_curves.py $(RUNS)/wt2/curves.png $(addprefix $(RUNS)/wt2/,$(WT2_NAMES)) > $@.tmp
	mv $@.tmp $@

# --- GLUE SST-2: fine-tune the WikiText-2 Linformer, and the same model from random initialisation, with
# each of $(SEEDS)

$(RUNS)/glue/sst2-wt2/test/manifest.json: $(RUNS)/wt2/vocab/manifest.json $(wildcard $(DATA)/glue/SST-2/*.tsv)
	$(LINCTL) prepare glue --task SST-2 --input $(DATA)/glue/SST-2 --vocab-file $(RUNS)/wt2/vocab/vocab.txt \
	    --do-lower-case --max-seq-length 128 --output-dir $(RUNS)/glue/sst2-wt2
	touch $@

SST2 := --config configs/glue/sst2-wt2-linformer.yaml --set task.train_dir=$(RUNS)/glue/sst2-wt2/train \
    --set task.eval_dir=$(RUNS)/glue/sst2-wt2/dev
SST2_STEPS := $(call steps,configs/glue/sst2-wt2-linformer.yaml,20)
FAST_SST2 := $(FAST_STEPS) --set task.eval_examples=64
# FAST=1 scores the first 256 of SST-2 dev's 872 sentences at each checkpoint
SST2_EVAL := --all-checkpoints $(call fast,--set task.eval_examples=256)
SST2_INIT_pretrained := $(call WT2_FINAL,linformer-k32-kv)
SST2_INIT_random := null
SST2_SCORED = $(RUNS)/glue/sst2-$(1)-seed$(2)/eval-all.json

define sst2_run # START SEED: fine-tune from START (pretrained or random) weights with SEED, score every checkpoint
$(RUNS)/glue/sst2-$(1)-seed$(2)/$(call final,$(SST2_STEPS))/trainer_state.json: \
    configs/glue/sst2-wt2-linformer.yaml $(RUNS)/glue/sst2-wt2/test/manifest.json \
    $(if $(filter pretrained,$(1)),$(call WT2_TRAINED,linformer-k32-kv))
	$(LINCTL) train $(SST2) --set train.init_checkpoint=$(SST2_INIT_$(1)) --set train.seed=$(2) \
	    --model-dir $(RUNS)/glue/sst2-$(1)-seed$(2) $(call fast,$(FAST_SST2))
	touch $$@
$(call SST2_SCORED,$(1),$(2)): $(RUNS)/glue/sst2-$(1)-seed$(2)/$(call final,$(SST2_STEPS))/trainer_state.json
	$(LINCTL) eval $(SST2) --model-dir $(RUNS)/glue/sst2-$(1)-seed$(2) $(SST2_EVAL)
endef
$(foreach start,pretrained random,$(foreach seed,$(SEEDS),$(eval $(call sst2_run,$(start),$(seed)))))

# --- Language modelling with Primal-Attention: a Transformer against the same model with a Primal last
# layer (Primal.+Trans.), perplexity with fairseq eval-lm's protocol (context window 64)

$(RUNS)/wt2/lm/test/manifest.json: configs/lm/prepare-wikitext-wt2.yaml $(wildcard $(DATA)/wikitext-2/*.*)
	$(LINCTL) prepare wikitext --config $< --input $(DATA)/wikitext-2 --output-dir $(RUNS)/wt2/lm
	touch $@

LM_DATA := --set task.train_dir=$(RUNS)/wt2/lm/train --set task.eval_dir=$(RUNS)/wt2/lm/valid
FAST_LM := $(FAST_STEPS) --set task.eval_tokens=4000
LM_TRAINED = $(RUNS)/wt2/lm-$(1)/$(call final,$(call steps,configs/lm/wt2-$(1).yaml,20))/trainer_state.json

define lm_run # NAME: train configs/lm/wt2-NAME.yaml
$(call LM_TRAINED,$(1)): configs/lm/wt2-$(1).yaml $(RUNS)/wt2/lm/test/manifest.json
	$(LINCTL) train --config configs/lm/wt2-$(1).yaml $(LM_DATA) --model-dir $(RUNS)/wt2/lm-$(1) $(call fast,$(FAST_LM))
	touch $$@
endef
define lm_eval # NAME SPLIT: the perplexity of the run on WikiText-2 SPLIT
$(RUNS)/wt2/lm-$(1)/eval-$(2).json: $(call LM_TRAINED,$(1))
	$(LINCTL) eval --model-dir $(RUNS)/wt2/lm-$(1) --set task.eval_dir=$(RUNS)/wt2/lm/$(2) --context-window 64 \
	    --metric ppl --json $$@ $(call fast,--set task.eval_tokens=10000)
endef
$(foreach name,transformer primal,$(eval $(call lm_run,$(name))))
$(foreach name,transformer primal,$(foreach split,valid test,$(eval $(call lm_eval,$(name),$(split)))))

# --- Translation (the crybot/linformer comparison at CPU scale): WMT14 en-de's 10k-pair sample, a softmax
# against a Linformer (k = 32) encoder, greedy BLEU and chrF (sacrebleu) and perplexity on newstest2014

$(RUNS)/wmt14/test/manifest.json: $(wildcard $(DATA)/wmt14-en-de/*.* $(DATA)/wmt14-en-de/train-sample-10k-bpe/*)
	$(LINCTL) prepare wmt14 --input $(DATA)/wmt14-en-de --output-dir $(RUNS)/wmt14 --vocab-size 4000
	touch $@

MT_NAMES := transformer linformer
MT_DATA := --set task.train_dir=$(RUNS)/wmt14/train --set task.eval_dir=$(RUNS)/wmt14/valid
FAST_MT := $(FAST_STEPS) --set task.eval_sentences=8
MT_TRAINED = $(RUNS)/wmt14/$(1)/$(call final,$(call steps,configs/translation/wmt14-$(1).yaml,20))/trainer_state.json

define mt_run # NAME: train configs/translation/wmt14-NAME.yaml, then decode and score newstest2014
$(call MT_TRAINED,$(1)): configs/translation/wmt14-$(1).yaml $(RUNS)/wmt14/test/manifest.json
	$(LINCTL) train --config configs/translation/wmt14-$(1).yaml $(MT_DATA) --model-dir $(RUNS)/wmt14/$(1) \
	    $(call fast,$(FAST_MT))
	touch $$@
$(RUNS)/wmt14/$(1)/eval-newstest2014.json: $(call MT_TRAINED,$(1))
	$(LINCTL) eval --model-dir $(RUNS)/wmt14/$(1) --set task.eval_dir=$(RUNS)/wmt14/test \
	    --set task.eval_sentences=$(if $(FAST_RUN),20,null) --hypotheses $(RUNS)/wmt14/$(1)/newstest2014.greedy.de \
	    --json $$@
endef
$(foreach name,$(MT_NAMES),$(eval $(call mt_run,$(name))))

# --- Funnel-Transformer: a B4-4-4 funnel against a full-length encoder of about its FLOPs (one block of 7
# layers), both ELECTRA-pretrained on the WikiText-2 shards, then fine-tuned on SST-2 with each of $(SEEDS)

FUNNEL_NAMES := funnel flat
FAST_ELECTRA := $(FAST_STEPS) --set task.eval_examples=64
ELECTRA_FINAL = $(RUNS)/wt2/electra-$(1)/$(call final,$(call steps,configs/electra/wt2-$(1).yaml,20))
FUNNEL_SST2_STEPS = $(call steps,configs/glue/sst2-wt2-$(1).yaml,20)
FUNNEL_SST2_TRAINED = $(RUNS)/glue/sst2-$(1)-seed$(2)/$(call final,$(call FUNNEL_SST2_STEPS,$(1)))/trainer_state.json

define electra_run # NAME: ELECTRA pretraining of configs/electra/wt2-NAME.yaml, scored on WikiText-2 valid
$(call ELECTRA_FINAL,$(1))/trainer_state.json: configs/electra/wt2-$(1).yaml $(RUNS)/wt2/mlm-train/manifest.json \
    $(RUNS)/wt2/mlm-valid/manifest.json
	$(LINCTL) train --config configs/electra/wt2-$(1).yaml $(WT2_DATA) --model-dir $(RUNS)/wt2/electra-$(1) \
	    $(call fast,$(FAST_ELECTRA))
	touch $$@
$(call ELECTRA_FINAL,$(1))/eval.json: $(call ELECTRA_FINAL,$(1))/trainer_state.json
	$(LINCTL) eval --model-dir $(RUNS)/wt2/electra-$(1) $(WT2_DATA) --set task.eval_examples=$(if $(FAST_RUN),256,null)
endef
define funnel_sst2_run # NAME SEED: fine-tune the encoder of the ELECTRA run NAME on SST-2 with SEED
$(call FUNNEL_SST2_TRAINED,$(1),$(2)): configs/glue/sst2-wt2-$(1).yaml $(RUNS)/glue/sst2-wt2/test/manifest.json \
    $(call ELECTRA_FINAL,$(1))/trainer_state.json
	$(LINCTL) train --config configs/glue/sst2-wt2-$(1).yaml --set task.train_dir=$(RUNS)/glue/sst2-wt2/train \
	    --set task.eval_dir=$(RUNS)/glue/sst2-wt2/dev --set train.init_checkpoint=$(call ELECTRA_FINAL,$(1)) \
	    --set train.seed=$(2) --model-dir $(RUNS)/glue/sst2-$(1)-seed$(2) $(call fast,$(FAST_SST2))
	touch $$@
$(call SST2_SCORED,$(1),$(2)): $(call FUNNEL_SST2_TRAINED,$(1),$(2))
	$(LINCTL) eval --model-dir $(RUNS)/glue/sst2-$(1)-seed$(2) --set task.eval_dir=$(RUNS)/glue/sst2-wt2/dev \
	    $(SST2_EVAL)
endef
$(foreach name,$(FUNNEL_NAMES),$(eval $(call electra_run,$(name))))
$(foreach name,$(FUNNEL_NAMES),$(foreach seed,$(SEEDS),$(eval $(call funnel_sst2_run,$(name),$(seed)))))

# --- Benchmarks (random inputs: no data)

# the efficiency test: seconds and memory per 1,000 training steps, Transformer vs Primal.+Trans.
$(RUNS)/bench/lm-efficiency.json: configs/lm/wt2-transformer.yaml configs/lm/wt2-primal.yaml
	$(LINCTL) bench --level model --mode train --config configs/lm/wt2-transformer.yaml,configs/lm/wt2-primal.yaml \
	    --seq-len 128 --batch-size 16 --warmup 2 --repeats $(if $(FAST_RUN),2,5) --json $@
# time and memory against sequence length: attention blocks, then BERT-base-sized encoders
$(RUNS)/bench/attention.json:
	$(LINCTL) bench --seq-len $(if $(FAST_RUN),512,512$(comma)1024$(comma)2048$(comma)4096) \
	    --k 128,256 --paper --json $@ --plot $(RUNS)/bench/attention.png
$(RUNS)/bench/model.json:
	$(LINCTL) bench --level model --seq-len $(if $(FAST_RUN),512,1024$(comma)2048$(comma)4096) --k 128 \
	    --attention softmax,linformer --warmup 0 --repeats 2 --paper --json $@ --plot $(RUNS)/bench/model.png
# the largest training batch per sequence length of the Funnel README's B6-6-6 (H768) within a memory budget
# (FAST=1: SDPA alone, n 64 within 1 GiB, one timed step)
$(RUNS)/bench/funnel-max-batch.json:
	$(LINCTL) bench --level model --preset funnel-b6-6-6 --mode train --max-batch \
	    $(if $(FAST_RUN),--attention "softmax impl=sdpa" --memory-budget 1GiB --seq-len 64 --warmup 0 --repeats 1,\
	    --memory-budget 8GiB --seq-len 64$(comma)128$(comma)256$(comma)512) --json $@

# --- The report over every run

REPORTED := $(addprefix $(RUNS)/wt2/,$(WT2_NAMES)) \
    $(foreach start,pretrained random,$(foreach seed,$(SEEDS),$(RUNS)/glue/sst2-$(start)-seed$(seed))) \
    $(RUNS)/wt2/lm-transformer $(RUNS)/wt2/lm-primal $(addprefix $(RUNS)/wmt14/,$(MT_NAMES)) \
    $(addprefix $(RUNS)/wt2/electra-,$(FUNNEL_NAMES)) \
    $(foreach name,$(FUNNEL_NAMES),$(foreach seed,$(SEEDS),$(RUNS)/glue/sst2-$(name)-seed$(seed))) \
    $(RUNS)/bench/lm-efficiency.json $(RUNS)/bench/attention.json $(RUNS)/bench/model.json \
    $(RUNS)/bench/funnel-max-batch.json
STAGES := $(RUNS)/wikicorpus-xml/manifest.json $(RUNS)/mlm-msl128/manifest.json $(RUNS)/mlm-msl512/manifest.json \
    $(RUNS)/throughput.md $(RUNS)/wt2/curves.md \
    $(foreach start,pretrained random,$(foreach seed,$(SEEDS),$(call SST2_SCORED,$(start),$(seed)))) \
    $(foreach name,transformer primal,$(foreach split,valid test,$(RUNS)/wt2/lm-$(name)/eval-$(split).json)) \
    $(foreach name,$(MT_NAMES),$(RUNS)/wmt14/$(name)/eval-newstest2014.json) \
    $(foreach name,$(FUNNEL_NAMES),$(call ELECTRA_FINAL,$(name))/eval.json) \
    $(foreach name,$(FUNNEL_NAMES),$(foreach seed,$(SEEDS),$(call SST2_SCORED,$(name),$(seed)))) \
    $(RUNS)/bench/lm-efficiency.json $(RUNS)/bench/attention.json $(RUNS)/bench/model.json \
    $(RUNS)/bench/funnel-max-batch.json

$(RUNS)/report.md: $(STAGES)
	$(LINCTL) report $(REPORTED) --output $@

reproduce: $(RUNS)/report.md

# linctl writes every record atomically, so a stage stopped midway leaves no partial record to delete; and
# Make's deletion of a target whose recipe was killed would damage finished work (a training run stopped
# after writing its final checkpoint would lose that checkpoint's trainer_state.json).
.PRECIOUS: $(RUNS)/report.md $(STAGES) \
    $(foreach name,$(WT2_NAMES),$(call WT2_TRAINED,$(name)) $(call WT2_SCORED,$(name))) \
    $(foreach start,pretrained random,$(foreach seed,$(SEEDS),\
        $(RUNS)/glue/sst2-$(start)-seed$(seed)/$(call final,$(SST2_STEPS))/trainer_state.json)) \
    $(foreach name,transformer primal,$(call LM_TRAINED,$(name))) \
    $(foreach name,$(MT_NAMES),$(call MT_TRAINED,$(name))) \
    $(foreach name,$(FUNNEL_NAMES),$(call ELECTRA_FINAL,$(name))/trainer_state.json \
        $(foreach seed,$(SEEDS),$(call FUNNEL_SST2_TRAINED,$(name),$(seed)))) \
    $(addsuffix /manifest.json,$(addprefix $(RUNS)/,wikicorpus wt2/corpus-train wt2/corpus-valid wt2/vocab \
        wt2/mlm-train wt2/mlm-valid glue/sst2-wt2/test wt2/lm/test wmt14/test))
