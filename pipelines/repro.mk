# repro.mk — the whole DataRater experiment, end to end, as one make graph:
#
#   corpus.jsonl ─ dr-tokenize ─▶ shards ─ dr-split ─▶ train_a / val / train_b
#   train_a + val ─ dr-meta ─▶ rater ─ dr-score ─▶ scores (train_b) ─ dr-filter ─▶ kept shards
#   dr-train at equal training tokens:  baseline (all train_b) · datarater (top KEEP by the
#     rater) · random (KEEP at random) · ppl (middle KEEP by the loss of a reference LM) ·
#     online (bottom-K in every batch by the rater, while training)
#   pipelines/report.sh ─▶ $(OUT)/report.md + $(OUT)/plots/*.png
#
#   make -f pipelines/repro.mk                          configs/cpu.yaml, data/corpus, runs/repro
#   make -f pipelines/repro.mk -j2                      independent runs in parallel
#   make -f pipelines/repro.mk VAL_MODE=mixture         Val from the training mixture (the paper's setting)
#   make -f pipelines/repro.mk CONFIG=configs/gpu.yaml DEVICE=cuda OUT=runs/gpu
#   make -f pipelines/repro.mk report | status | clean-runs | help
#
# Every step writes a file (the tools write atomically; stdout captures go through a
# temporary name), so an interrupted run continues where it stopped; dr-meta and dr-train
# resume from their checkpoints (--resume) when a previous attempt left one. The data
# steps (vocabulary, shards, splits) live under $(PREP), by default $(OUT): point PREP at
# another run's directory to reuse its tokenization. docs/pipeline.md describes it all.

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDEXPANSION:
MAKEFLAGS   += --no-builtin-rules

PIPE        := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
ROOT        := $(patsubst ./%,%,$(dir $(PIPE)))
# ---- variables ------------------------------------------------------------------------
BIN         ?= $(ROOT)bin
CONFIG      ?= $(ROOT)configs/cpu.yaml
DATA        ?= $(ROOT)data/corpus
CORPUS      ?= $(DATA)/corpus.jsonl
VAL_MODE    ?= prose
OUT         ?= $(ROOT)runs/repro$(if $(filter mixture,$(VAL_MODE)),-mixture)
PREP        ?= $(OUT)
cfg          = $(shell $(PIPE)/cfg.sh $(1) $(CONFIG))
# Tokenizer: a trained BPE of the config's vocabulary size (configs with lm.vocab_size 0
# take BPE_VOCAB), the GPT-2 BPE for configs sized for it (50257), or bytes.
CFG_VOCAB   := $(call cfg,lm.vocab_size)
TOKENIZER   ?= $(if $(filter 50257,$(CFG_VOCAB)),gpt2,bpe)
BPE_VOCAB   ?= $(if $(filter-out 0 50257,$(CFG_VOCAB)),$(CFG_VOCAB),4096)
GPT2_VOCAB  ?= $(ROOT)data/gpt2
# Splits. prose: Val = held-out documents of the clean prose sources (VAL_SOURCES, shell
# patterns matched against the corpus' sources); mixture: Val = held-out documents of the
# whole mixture, as in the DataRater paper. TRAIN_B_FRAC of the documents go to train_b
# (scored, filtered and trained on), the rest to train_a (meta-training).
VAL_SOURCES ?= sotu moby-dick brown-*
VAL_FRAC    ?= $(if $(filter mixture,$(VAL_MODE)),0.05,0.1)
TRAIN_B_FRAC ?= 0.45
SPLIT_SEED  ?= 1
DEDUP       ?= 1
# Deployment
KEEP        ?= $(or $(call cfg,deploy.keep),0.6)
RATER_USE   ?= ema
PPL_REF     ?= baseline
N_EXAMPLES  ?= 5
# Overrides: DEVICE (cpu|cuda|auto), THREADS (experiment.threads), STEPS or TOKENS (the
# budget of every final run, default the config's train.*), SET (k=v ... for every tool),
# META_SET (k=v ... for dr-meta only), TRAIN_SET (k=v ... for dr-train only).
DEVICE      ?=
THREADS     ?=
STEPS       ?=
TOKENS      ?=
SET         ?=
META_SET    ?=
TRAIN_SET   ?=
# Runs of the final comparison (online: only when dr-train has --online-keep).
HAS_ONLINE  := $(shell $(BIN)/dr-train --help 2>/dev/null | grep -q -- --online-keep && echo 1)
RUNS        ?= baseline datarater random ppl $(if $(HAS_ONLINE),online)

# With make -jN and no THREADS, each job gets nproc/N threads (OpenMP oversubscription
# is much slower than running jobs one after the other).
JOBS        := $(patsubst -j%,%,$(filter -j%,$(MAKEFLAGS)))
NPROC       := $(shell nproc 2>/dev/null || echo 1)
ifeq ($(THREADS),)
  ifneq ($(filter-out 0 1,$(JOBS)),)
    THREADS := $(shell n=$$(( $(NPROC) / $(JOBS) )); echo $$(( n < 1 ? 1 : n )))
  endif
endif

# ---- derived ----------------------------------------------------------------------------
SPLITS      := $(PREP)/splits-$(VAL_MODE)
MANIFEST    := $(SPLITS)/manifest.tsv
SHARDS_OK   := $(PREP)/shards-$(TOKENIZER)/shards.list
VOCAB_DIR   := $(if $(filter bpe,$(TOKENIZER)),$(PREP)/vocab-bpe$(BPE_VOCAB),$(if $(filter gpt2,$(TOKENIZER)),$(GPT2_VOCAB)))
VOCAB_OK    := $(if $(filter bpe,$(TOKENIZER)),$(VOCAB_DIR)/encoder.json)
# META_DIR / SCORE_DIR: where the rater and the score files live (another run's, to
# reuse them: ablations.mk does for its keep-rate rows)
META_DIR    ?= $(OUT)/meta
SCORE_DIR   ?= $(OUT)/score
RATER       := $(META_DIR)/rater$(if $(filter ema,$(RATER_USE)),.ema).safetensors
RATER_DONE  := $(META_DIR)/rater.done
sets         = $(foreach s,$(1),--set $(s))
ALL_SETS    := $(call sets,$(SET)) $(if $(THREADS),--set experiment.threads=$(THREADS))
DEV         := $(if $(DEVICE),--device $(DEVICE))
CFGARGS     := --config $(CONFIG) $(ALL_SETS)
BUDGET      := $(if $(STEPS),--steps $(STEPS),$(if $(TOKENS),--tokens $(TOKENS)))
ATOMIC      := $(PIPE)/atomic.sh
say          = @printf '\n\033[1m==> [%s] %s\033[0m\n' "$$(date +%H:%M:%S)" "$(1)" >&2
tool_need    = @[ -x $(BIN)/$(1) ] || { echo "repro.mk: $(BIN)/$(1) is missing: run 'make' first" >&2; exit 1; }
# --resume when a previous attempt left the tool's state (expanded when the recipe
# starts); a state older than the config belongs to another experiment: start over.
resume       = $(shell [ -f $(1).state ] && [ $(1).state -nt $(CONFIG) ] && echo --resume)
# data.seq_len as the tools will see it (SET may override it): dr-cat needs it
SEQ_LEN     := $(or $(patsubst data.seq_len=%,%,$(filter data.seq_len=%,$(SET))),$(call cfg,data.seq_len))

TRAIN_DONE  := $(RUNS:%=$(OUT)/train/%.done)

.PHONY: all report runs meta scores filters status clean-runs help
all: $(OUT)/report.md
	@printf '\n\033[1mreport: %s\033[0m  (plots in %s/plots/)\n' "$(OUT)/report.md" "$(OUT)" >&2

runs: $(TRAIN_DONE)
meta: $(RATER_DONE)
scores: $(SCORE_DIR)/datarater.tsv $(SCORE_DIR)/ppl.tsv
filters: $(foreach p,datarater random ppl,$(OUT)/filter/$(p).paths)

# ---- 1. tokenizer and shards -----------------------------------------------------------
$(CORPUS):
	$(call say,corpus: $@ (pipelines/data.mk))
	$(MAKE) --no-print-directory -f $(PIPE)/data.mk DATA=$(DATA)

$(PREP)/vocab-bpe$(BPE_VOCAB)/encoder.json: $(CORPUS)
	$(call tool_need,dr-tokenize)
	$(call say,tokenizer: training a $(BPE_VOCAB)-token BPE on $(CORPUS) -> $(@D))
	$(BIN)/dr-tokenize --train-bpe $(BPE_VOCAB) --field text -o $(@D) $(CORPUS)

$(SHARDS_OK): $(CORPUS) $(VOCAB_OK)
	$(call tool_need,dr-tokenize)
	$(call say,shards: tokenizing $(CORPUS) ($(TOKENIZER)) -> $(@D)/)
	@rm -rf $(@D); mkdir -p $(@D)
	$(ATOMIC) $@ $(BIN)/dr-tokenize --tokenizer $(TOKENIZER) $(if $(VOCAB_DIR),--vocab-dir $(VOCAB_DIR)) \
	    --field text --source-field source -o $(@D) $(CORPUS)

# ---- 2. splits ------------------------------------------------------------------------
$(if $(filter prose mixture,$(VAL_MODE)),,$(error VAL_MODE must be prose or mixture, not '$(VAL_MODE)'))
$(MANIFEST): $(SHARDS_OK)
	$(call tool_need,dr-split)
	$(call say,splits ($(VAL_MODE)): Val = $(VAL_FRAC) of $(if $(filter mixture,$(VAL_MODE)),all documents,the documents of '$(VAL_SOURCES)'); train_b = $(TRAIN_B_FRAC) -> $(@D)/)
	srcs=; \
	if [ $(VAL_MODE) = prose ]; then \
	    srcs=$$($(PIPE)/sources.sh $(CORPUS) '$(VAL_SOURCES)'); \
	    [ -n "$$srcs" ] || { echo "repro.mk: no source of $(CORPUS) matches VAL_SOURCES='$(VAL_SOURCES)'" >&2; exit 1; }; \
	    echo "Val sources: $$srcs" >&2; \
	fi; \
	$(BIN)/dr-split --val $(VAL_FRAC) --train-b $(TRAIN_B_FRAC) --seed $(SPLIT_SEED) $(if $(filter 1,$(DEDUP)),--dedup) \
	    $${srcs:+--val-sources "$$srcs"} -o $(@D) $(<D) > /dev/null

# ---- 3. meta-training ------------------------------------------------------------------
# dr-meta -o meta/rater.safetensors writes the rater, meta/rater.ema.safetensors (the EMA
# of its weights: deployed when RATER_USE=ema) and the resumable state
# rater.safetensors.state; meta/rater.done marks a finished run.
$(RATER_DONE): $(MANIFEST) $(CONFIG)
	$(call tool_need,dr-meta)
	$(call say,meta-training the rater: dr-meta $(notdir $(CONFIG)) $(META_SET) -> $(@D)/)
	@mkdir -p $(@D)
	$(if $(call resume,$(@D)/rater.safetensors),,@rm -f $(@D)/metrics.jsonl)
	$(BIN)/dr-meta $(CFGARGS) $(call sets,$(META_SET)) $(DEV) --log $(@D)/metrics.jsonl \
	    -o $(@D)/rater.safetensors $(call resume,$(@D)/rater.safetensors) $(MANIFEST)
	@test -f $(RATER) || { echo "repro.mk: dr-meta did not write $(RATER)" >&2; exit 1; }
	@touch $@

# ---- 4. scores and filters ------------------------------------------------------------
$(SCORE_DIR)/datarater.tsv: $(RATER_DONE) $(MANIFEST)
	$(call tool_need,dr-score)
	$(call say,scoring train_b with the rater ($(notdir $(RATER))) -> $@)
	@mkdir -p $(@D)
	$(ATOMIC) $@ $(BIN)/dr-score --rater $(RATER) $(CFGARGS) $(DEV) --split train_b $(MANIFEST)

# perplexity filter: score = mean token loss under a reference LM, keep the middle KEEP.
# PPL_REF=baseline: the baseline run's LM (trained on all of train_b at the same budget;
# free, but it has seen the examples it scores once); PPL_REF=train_a: an LM trained on
# train_a (same mixture, disjoint documents) with the same config and budget.
PPL_LM := $(if $(filter train_a,$(PPL_REF)),$(OUT)/train/ref-train_a.done,$(OUT)/train/baseline.done)
$(SCORE_DIR)/ppl.tsv: $(PPL_LM) $(MANIFEST)
	$(call tool_need,dr-score)
	$(call say,scoring train_b with the $(PPL_REF) LM (perplexity filter) -> $@)
	@mkdir -p $(@D)
	$(ATOMIC) $@ $(BIN)/dr-score --lm $(<:.done=.safetensors) $(CFGARGS) $(DEV) --split train_b $(MANIFEST)

# dr-filter POLICY for each filtered run; the score file each one reads
FILTER_datarater := --keep $(KEEP)
FILTER_random    := --random $(KEEP)
FILTER_ppl       := --keep-middle $(KEEP)
SCORES_datarater := $(SCORE_DIR)/datarater.tsv
SCORES_random    := $(SCORE_DIR)/datarater.tsv
SCORES_ppl       := $(SCORE_DIR)/ppl.tsv

# <name>.paths: the kept shards (written last: it marks a finished filter);
# <name>.summary: dr-filter's kept examples/tokens, overall and per source.
$(OUT)/filter/%.paths: $$(SCORES_$$*) $(MANIFEST)
	$(call tool_need,dr-filter)
	$(call say,filter '$*': dr-filter $(FILTER_$*) -> $(@:.paths=)/)
	@rm -rf $(@:.paths=) $(@:.paths=.summary); mkdir -p $(@D)
	$(ATOMIC) $@ $(PIPE)/tee-stderr.sh $(@:.paths=.summary) \
	    $(BIN)/dr-filter --scores $< $(FILTER_$*) $(CFGARGS) --prefix $* -o $(@:.paths=) --split train_b $(MANIFEST)

# ---- 5. final training runs at equal budget -------------------------------------------
# <name>.done holds the run's last Val line, written after dr-train succeeded; the LM is
# <name>.safetensors, its metrics <name>.jsonl, its resumable state <name>.safetensors.state.
TRAIN_IN_baseline   := --train-split train_b $(MANIFEST)
TRAIN_IN_ref-train_a := --train-split train_a $(MANIFEST)
TRAIN_IN_datarater  := --train $(OUT)/filter/datarater --val $(MANIFEST) --val-split val
TRAIN_IN_random     := --train $(OUT)/filter/random --val $(MANIFEST) --val-split val
TRAIN_IN_ppl        := --train $(OUT)/filter/ppl --val $(MANIFEST) --val-split val
TRAIN_IN_online     := --rater $(RATER) --online-keep $(KEEP) --train-split train_b $(MANIFEST)
TRAIN_DEP_baseline  := $(MANIFEST)
TRAIN_DEP_ref-train_a := $(MANIFEST)
TRAIN_DEP_datarater := $(OUT)/filter/datarater.paths
TRAIN_DEP_random    := $(OUT)/filter/random.paths
TRAIN_DEP_ppl       := $(OUT)/filter/ppl.paths
TRAIN_DEP_online    := $(RATER_DONE) $(MANIFEST)

$(OUT)/train/%.done: $$(TRAIN_DEP_$$*) $(CONFIG)
	$(call tool_need,dr-train)
	$(call say,train '$*': dr-train $(BUDGET) $(TRAIN_IN_$*) -> $(@:.done=.safetensors))
	@mkdir -p $(@D)
	$(if $(TRAIN_IN_$*),,$(error no final run named '$*' (known: baseline datarater random ppl online ref-train_a)))
	$(if $(call resume,$(@:.done=.safetensors)),,@rm -f $(@:.done=.jsonl))
	$(BIN)/dr-train $(CFGARGS) $(call sets,$(TRAIN_SET)) $(DEV) $(BUDGET) --log $(@:.done=.jsonl) \
	    -o $(@:.done=.safetensors) $(call resume,$(@:.done=.safetensors)) $(TRAIN_IN_$*)
	@$(ATOMIC) $@ sh -c "grep '\"l_val\"' $(@:.done=.jsonl) | tail -n 1"

# ---- 6. examples and the report -------------------------------------------------------
$(OUT)/examples/top.txt $(OUT)/examples/bottom.txt: $(OUT)/examples/%.txt: $(SCORE_DIR)/datarater.tsv $(MANIFEST)
	$(call tool_need,dr-cat)
	@mkdir -p $(@D)
	$(ATOMIC) $@ $(BIN)/dr-cat --scores $< --$* $(N_EXAMPLES) --seq-len $(SEQ_LEN) --split train_b $(MANIFEST)

REPORT_IN := $(TRAIN_DONE) $(RATER_DONE) $(SCORE_DIR)/datarater.tsv \
             $(OUT)/filter/datarater.paths $(OUT)/examples/top.txt $(OUT)/examples/bottom.txt

$(OUT)/report.md: $(REPORT_IN) $(PIPE)/report.sh
	$(call say,report -> $@)
	@{ echo "CONFIG=$(CONFIG)"; echo "CORPUS=$(CORPUS)"; echo "VAL_MODE=$(VAL_MODE)"; \
	  echo "VAL_SOURCES=$(VAL_SOURCES)"; echo "VAL_FRAC=$(VAL_FRAC)"; echo "TRAIN_B_FRAC=$(TRAIN_B_FRAC)"; \
	  echo "KEEP=$(KEEP)"; echo "TOKENIZER=$(TOKENIZER)"; echo "BPE_VOCAB=$(BPE_VOCAB)"; \
	  echo "RUNS=$(RUNS)"; echo "PPL_REF=$(PPL_REF)"; echo "RATER=$(RATER)"; echo "MANIFEST=$(MANIFEST)"; \
	  echo "META_DIR=$(META_DIR)"; echo "SCORE_DIR=$(SCORE_DIR)"; \
	  echo "BUDGET=$(BUDGET)"; echo "SET=$(SET)"; echo "META_SET=$(META_SET)"; echo "DEVICE=$(DEVICE)"; \
	  echo "ONLINE=$(if $(HAS_ONLINE),yes,no: dr-train has no --online-keep)"; } > $(OUT)/run.env
	$(PIPE)/report.sh $(OUT)

report:
	$(PIPE)/report.sh $(OUT)

# ---- housekeeping ---------------------------------------------------------------------
status:
	@for f in $(VOCAB_OK) $(SHARDS_OK) $(MANIFEST) $(RATER_DONE) $(SCORE_DIR)/datarater.tsv $(SCORE_DIR)/ppl.tsv \
	    $(OUT)/filter/datarater.paths $(OUT)/filter/random.paths $(OUT)/filter/ppl.paths $(TRAIN_DONE) $(OUT)/report.md; do \
	    if [ -e $$f ]; then echo "done     $$f"; else echo "pending  $$f"; fi; done

clean-runs:
	rm -rf $(OUT)/meta $(OUT)/score $(OUT)/filter $(OUT)/train $(OUT)/examples $(OUT)/plots $(OUT)/report.md $(OUT)/run.env

help:
	@sed -n '1,/^$$/p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'
	@echo "CONFIG=$(CONFIG) OUT=$(OUT) PREP=$(PREP) VAL_MODE=$(VAL_MODE) KEEP=$(KEEP) TOKENIZER=$(TOKENIZER)"
	@echo "RUNS=$(RUNS)"
