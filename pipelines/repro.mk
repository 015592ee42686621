# repro.mk — the whole DataRater experiment, end to end, as one make graph:
#
#   corpus.jsonl ─ dr-tokenize ─▶ shards ─ dr-split ─▶ train_a / val / train_b
#   train_a + val ─ dr-meta ─▶ rater ─ dr-score ─▶ scores of train_b ─ dr-filter ─▶ kept shards
#   dr-train at equal training tokens:  baseline (all of train_b) · datarater (top KEEP by
#     the rater) · random (KEEP at random) · ppl (middle KEEP by the loss of a reference
#     LM) · online (bottom-K of every batch by the rater, while training; when dr-train
#     has --online-keep)
#   pipelines/report.sh ─▶ $(OUT)/report.md + $(OUT)/plots/*.png
#
#   make -f pipelines/repro.mk                          configs/cpu.yaml, data/corpus, runs/repro
#   make -f pipelines/repro.mk -j2                      independent steps in parallel
#   make -f pipelines/repro.mk VAL_MODE=mixture         Val from the training mixture (the paper's setting)
#   make -f pipelines/repro.mk DEVICE=cuda              configs/gpu.yaml, runs/gpu (= make demo DEVICE=cuda)
#   make -f pipelines/repro.mk status | report | clean-runs | help
#
# Every step writes a file (the tools write atomically, stdout captures go through a
# temporary name), so an interrupted run continues where it stopped; dr-meta and dr-train
# resume from the checkpoint an interrupted attempt left (--resume). A step is redone when
# its inputs, the config file or the variables it uses (recorded in small 'params' files)
# change. The data steps (vocabulary, shards, splits) live under $(PREP), by default
# $(OUT): point PREP at another run's directory to reuse its tokenization.
# docs/pipeline.md describes it all.

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# make -n / -q (and `status`, which asks make -n) change nothing: the checks below that
# create OUT and PREP or run dr-meta --print-config are skipped
DRY         := $(if $(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS))),1)
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDEXPANSION:
MAKEFLAGS   += --no-builtin-rules

PIPE        := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
ROOT        := $(patsubst ./%,%,$(dir $(PIPE)))
cfg          = $(shell $(PIPE)/cfg.sh $(1) $(CONFIG))

# ---- variables --------------------------------------------------------------------------
BIN         ?= $(ROOT)bin
# DEVICE=cuda picks the seed's reference scale (configs/gpu.yaml), so `make demo DEVICE=cuda`
# is the GPU demo; any other DEVICE keeps the CPU demo's config.
CONFIG      ?= $(ROOT)configs/$(if $(filter cuda,$(DEVICE)),gpu,cpu).yaml
DATA        ?= $(ROOT)data/corpus
CORPUS      ?= $(DATA)/corpus.jsonl
VAL_MODE    ?= prose
OUT         ?= $(ROOT)runs/$(if $(filter cuda,$(DEVICE)),gpu,repro)$(if $(filter mixture,$(VAL_MODE)),-mixture)
PREP        ?= $(OUT)
# Tokenizer: a BPE trained on the corpus with the config's vocabulary size (configs with
# lm.vocab_size 0 take BPE_VOCAB), GPT-2's BPE for configs sized for it (50257), or byte.
CFG_VOCAB   := $(call cfg,lm.vocab_size)
TOKENIZER   ?= $(if $(filter 50257,$(CFG_VOCAB)),gpt2,bpe)
BPE_VOCAB   ?= $(if $(filter-out 0 50257,$(CFG_VOCAB)),$(CFG_VOCAB),4096)
GPT2_VOCAB  ?= $(ROOT)data/gpt2
# Splits (fractions of documents). prose: Val = held-out documents of the clean prose
# sources (VAL_SOURCES: shell patterns matched against the corpus' source names), VAL_FRAC
# of those; mixture: Val = VAL_FRAC of all documents, the DataRater paper's setting.
# TRAIN_B_FRAC go to train_b (scored, filtered, trained on), the rest to train_a
# (meta-training). configs/cpu.yaml gets a small train_b and Val: scoring train_b with the
# reference LM and evaluating the whole Val are the CPU demo's largest costs after training.
VAL_SOURCES ?= sotu moby-dick brown-*
# The CPU demo also measures seed noise (NOISE=1 below): at its budget the runs differ by
# about as much as two seeds of the baseline do, and the report has to say so.
ifeq ($(notdir $(CONFIG)),cpu.yaml)
  VAL_FRAC     ?= $(if $(filter mixture,$(VAL_MODE)),0.005,0.03)
  TRAIN_B_FRAC ?= 0.05
  NOISE        ?= 1
endif
VAL_FRAC    ?= $(if $(filter mixture,$(VAL_MODE)),0.05,0.1)
TRAIN_B_FRAC ?= 0.45
SPLIT_SEED  ?= 1
DEDUP       ?= 1
# Deployment: keep rate (default the config's deploy.keep), which rater weights (ema|last),
# the reference LM of the perplexity filter (baseline|train_a), excerpts in the report.
KEEP        ?= $(or $(call cfg,deploy.keep),0.6)
RATER_USE   ?= ema
PPL_REF     ?= baseline
N_EXAMPLES  ?= 5
# Overrides: DEVICE (cpu|cuda|auto), THREADS (experiment.threads), STEPS or TOKENS (the
# budget of every final run; default the config's train.steps/train.tokens), SET (k=v …
# for every tool), META_SET (k=v … for dr-meta only), TRAIN_SET (k=v … for dr-train only).
DEVICE      ?=
THREADS     ?=
STEPS       ?=
TOKENS      ?=
SET         ?=
META_SET    ?=
TRAIN_SET   ?=
# The final runs (online: only when dr-train has --online-keep). NOISE=1 (the default with
# configs/cpu.yaml) adds baseline-seed2, datarater-seed2 and random-seed2: the same runs
# with experiment.seed + 1 (other init and data order; the same training data, except that
# random-seed2 also draws its own random subset, so that the two-seed mean of random
# averages two subsets, not one): the report then states the seed-to-seed differences,
# compares the two-seed means as well, and says whether each difference is larger than
# the seed spread.
# (grep -c reads all of the help: grep -q left dr-train writing into a closed pipe, and
# under pipefail a help text past 4 KiB then read as 'no --online-keep')
HAS_ONLINE  := $(if $(filter-out 0,$(shell $(BIN)/dr-train --help 2>/dev/null | grep -c -- --online-keep)),1)
NOISE       ?= 0
RUNS        ?= baseline datarater random ppl $(if $(HAS_ONLINE),online) $(if $(filter 1,$(NOISE)),baseline-seed2 datarater-seed2 random-seed2)
# the seed the runs use (SET may override the config's), and the second seed: that + 1
SEED        := $(or $(lastword $(patsubst experiment.seed=%,%,$(filter experiment.seed=%,$(SET)))),$(call cfg,experiment.seed),0)
SEED2       := $(shell echo $$(( $(SEED) + 1 )))
# With make -jN and no THREADS, each tool gets nproc/N threads (OpenMP oversubscription
# is far slower than running the jobs one after the other). -jN is only visible in
# MAKEFLAGS when recipes run, so this is expanded then.
JOBS         = $(patsubst -j%,%,$(filter -j%,$(MAKEFLAGS)))
AUTO_THREADS = $(if $(filter-out 0 1,$(JOBS)),$(shell n=$$(( $$(nproc) / $(JOBS) )); echo $$(( n < 1 ? 1 : n ))))
# OpenMP threads that spin while they wait burn the cores other threads (and other jobs)
# need: on the shared 2-core build machine a 16-step dr-train took 18 CPU s and 79–91 s
# with libgomp's default policy, 5 CPU s and 21–36 s with passive (docs/pipeline.md §7).
# An OMP_WAIT_POLICY in the environment wins.
export OMP_WAIT_POLICY ?= passive
$(if $(filter prose mixture,$(VAL_MODE)),,$(error VAL_MODE must be prose or mixture, not '$(VAL_MODE)'))
$(if $(filter ema last,$(RATER_USE)),,$(error RATER_USE must be ema or last, not '$(RATER_USE)'))
$(if $(filter baseline train_a,$(PPL_REF)),,$(error PPL_REF must be baseline or train_a, not '$(PPL_REF)'))

# ---- derived ------------------------------------------------------------------------------
VOCAB_DIR   := $(if $(filter bpe,$(TOKENIZER)),$(PREP)/vocab-bpe$(BPE_VOCAB),$(if $(filter gpt2,$(TOKENIZER)),$(GPT2_VOCAB)))
VOCAB_OK    := $(if $(filter bpe,$(TOKENIZER)),$(VOCAB_DIR)/encoder.json)
SHARDS_OK   := $(PREP)/shards-$(TOKENIZER)$(if $(filter bpe,$(TOKENIZER)),$(BPE_VOCAB))/shards.list
SPLITS      := $(PREP)/splits-$(VAL_MODE)
MANIFEST    := $(SPLITS)/manifest.tsv
# META_DIR / SCORE_DIR: where the rater and the score files are (another run's, to reuse
# them: ablations.mk does for its keep-rate rows)
META_DIR    ?= $(OUT)/meta
SCORE_DIR   ?= $(OUT)/score
RATER       := $(META_DIR)/rater$(if $(filter ema,$(RATER_USE)),.ema).safetensors
RATER_DONE  := $(META_DIR)/rater.done
# the perplexity filter's reference LM (§4 below)
PPL_LM      := $(OUT)/train/$(if $(filter train_a,$(PPL_REF)),ref-train_a,baseline).done
TRAIN_DONE  := $(RUNS:%=$(OUT)/train/%.done)

sets         = $(foreach s,$(1),--set $(s))
THREADS_SET  = $(if $(or $(THREADS),$(AUTO_THREADS)),--set experiment.threads=$(or $(THREADS),$(AUTO_THREADS)))
DEV         := $(if $(DEVICE),--device $(DEVICE))
CFGARGS      = --config $(CONFIG) $(call sets,$(SET)) $(THREADS_SET)
BUDGET      := $(if $(STEPS),--steps $(STEPS),$(if $(TOKENS),--tokens $(TOKENS)))
# data.seq_len as the tools see it (SET may override it): dr-cat needs it
SEQ_LEN     := $(or $(patsubst data.seq_len=%,%,$(filter data.seq_len=%,$(SET))),$(call cfg,data.seq_len))
ATOMIC      := $(PIPE)/atomic.sh
say          = @printf '\n\033[1m==> [%s] %s\033[0m\n' "$$(date +%H:%M:%S)" "$(1)" >&2
tool_need    = @[ -x $(BIN)/$(1) ] || { echo "repro.mk: $(BIN)/$(1) is missing: run 'make' first" >&2; exit 1; }

# ---- checks before anything is made ---------------------------------------------------
# Paths go unquoted into make targets and shell commands: whitespace, quotes, glob or shell
# metacharacters, ':' '%' '=' '#' would split or change them (a space in OUT made
# directories under the current one; an empty OUT turned clean-runs into rm -rf /meta …).
BUILDING    := $(if $(MAKECMDGOALS),$(filter-out help status clean-runs report,$(MAKECMDGOALS)),all)
sq           = $(subst ','\'',$(1))
path_bad     = $(shell printf '%s' '$(call sq,$(1))' | LC_ALL=C grep -q '[^A-Za-z0-9_./+,@~-]' && echo 1)
PATH_MSG    := only letters, digits and _ . / + - , @ ~ are allowed in the pipeline's paths (make and the recipes would split or expand anything else)
check_path   = $(if $(strip $($(1))),$(if $(call path_bad,$($(1))),$(error repro.mk: $(1)='$($(1))': $(PATH_MSG))),$(error repro.mk: $(1) is empty))
$(foreach v,OUT PREP CONFIG CORPUS BIN META_DIR SCORE_DIR $(if $(filter gpt2,$(TOKENIZER)),GPT2_VOCAB),$(call check_path,$(v)))
ifneq ($(BUILDING),)
$(if $(wildcard $(CONFIG)),,$(error repro.mk: CONFIG=$(CONFIG): no such file))
ifeq ($(DRY),)
# every tool, before the first step: a missing dr-cat used to be found after all training
TOOLS       := dr-tokenize dr-split dr-meta dr-score dr-filter dr-train dr-cat
MISSING     := $(strip $(foreach t,$(TOOLS),$(if $(shell [ -x $(BIN)/$(t) ] && echo y),,$(t))))
$(if $(MISSING),$(error repro.mk: missing in BIN=$(BIN): $(MISSING) (run 'make' first)))
$(foreach d,$(OUT) $(PREP),$(if $(shell mkdir -p $(d) 2>/dev/null && [ -w $(d) ] && echo y),,$(error repro.mk: cannot create or write $(d))))
endif
endif

# Parameter records: a params file holds what a step depends on besides its files'
# mtimes (variables; the config's content; which manifest, rater, corpus). The step's
# recipe writes it when the step has succeeded (stamp_record: only when its content
# changes, and with the mtime of the file the step made, so a record is never newer than
# the output it describes). While the makefile is read, the targets of a step whose record
# differs from the current settings are marked out of date (FORCE); nothing is written. So
# make redoes exactly the steps whose settings changed, also when the change is back to an
# older file (another CONFIG or VAL_MODE, PREP, CORPUS); a step that fails (a full disk, a
# diverged run, DEVICE=cuda without a GPU) keeps the record of its last success, so going
# back to those settings redoes nothing; and make -n, make -q and status change no record.
CFG_ID      := $(if $(BUILDING),$(firstword $(shell cksum < $(CONFIG) 2>/dev/null)))
stamp_same   = $(shell [ "$$(cat $(1) 2>/dev/null)" = '$(call sq,$(strip $(2)))' ] && echo y)
stamp        = $(if $(call stamp_same,$(1),$(2)),,$(eval $(3): FORCE))
stamp_record = p='$(call sq,$(strip $(2)))'; [ "$$(cat $(1) 2>/dev/null)" = "$$p" ] || \
    { printf '%s\n' "$$p" > $(1).tmp$$$$ && touch -r $@ $(1).tmp$$$$ && mv -f $(1).tmp$$$$ $(1); }

# Settings a tool would refuse, refused here before anything runs (not after the steps
# before the tool that refuses them): the config with SET, META_SET, TRAIN_SET and KEEP
# as the tools will see it (one dr-meta --print-config), the split fractions, the
# training budget.
ifneq ($(BUILDING),)
ifeq ($(DRY),)
CFG_ERR     := $(shell $(BIN)/dr-meta --config $(CONFIG) $(call sets,$(SET) $(META_SET) $(TRAIN_SET)) --set deploy.keep=$(KEEP) --print-config 2>&1 >/dev/null | head -n 1)
$(if $(CFG_ERR),$(error repro.mk: CONFIG=$(CONFIG) with SET / META_SET / TRAIN_SET / KEEP: $(CFG_ERR)))
endif
LM_VOCAB    := $(or $(patsubst lm.vocab_size=%,%,$(filter lm.vocab_size=%,$(SET))),$(CFG_VOCAB))
$(if $(and $(filter bpe,$(TOKENIZER)),$(filter-out 0 $(BPE_VOCAB),$(LM_VOCAB))),$(warning repro.mk: BPE_VOCAB=$(BPE_VOCAB) but lm.vocab_size is $(LM_VOCAB): the LM gets $(LM_VOCAB) ids, $(BPE_VOCAB) of them used (SET=lm.vocab_size=$(BPE_VOCAB), or 0 to take it from the shards)))
FRAC_ERR    := $(shell awk -v v='$(call sq,$(VAL_FRAC))' -v b='$(call sq,$(TRAIN_B_FRAC))' 'BEGIN { \
    if (v !~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$$/ || v + 0 <= 0 || v + 0 >= 1) { print "VAL_FRAC=" v ": expected a number in (0, 1)"; exit } \
    if (b !~ /^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$$/ || b + 0 <= 0 || v + b >= 1) print "TRAIN_B_FRAC=" b ": expected a number > 0 with VAL_FRAC + TRAIN_B_FRAC < 1 (train_a gets the rest)" }')
$(if $(FRAC_ERR),$(error repro.mk: $(FRAC_ERR)))
$(foreach v,STEPS TOKENS,$(if $($(v)),$(if $(shell printf '%s' '$(call sq,$($(v)))' | grep -qxE '[1-9][0-9]*' && echo y),,$(error repro.mk: $(v)=$($(v)): expected a positive integer))))
endif

# VAL_MODE=prose: VAL_SOURCES must name sources of this corpus. Checked before anything
# runs (not after tokenizing), when the split step will run (a new corpus or new split
# settings).
SPLIT_PARAMS = val=$(VAL_FRAC) train_b=$(TRAIN_B_FRAC) seed=$(SPLIT_SEED) dedup=$(DEDUP) $(if $(filter prose,$(VAL_MODE)),sources=$(VAL_SOURCES)) corpus=$(CORPUS) tokenizer=$(TOKENIZER)$(BPE_VOCAB)
ifneq ($(BUILDING),)
ifeq ($(VAL_MODE),prose)
$(if $(shell [ -d $(CORPUS) ] && echo y),$(error repro.mk: VAL_MODE=prose picks Val by the "source" field of a JSON-lines CORPUS; CORPUS=$(CORPUS) is a directory (its files all get one source): use VAL_MODE=mixture))
# (VAL_SRCS, the matched names, is the split recipe's --val-sources when set here)
ifneq ($(and $(wildcard $(CORPUS)),$(if $(wildcard $(MANIFEST)),$(if $(call stamp_same,$(SPLITS)/params,$(SPLIT_PARAMS)),,y),y)),)
VAL_SRCS    := $(shell $(PIPE)/sources.sh $(CORPUS) '$(call sq,$(VAL_SOURCES))' 2>/dev/null)
CORPUS_SRCS  = $(shell $(PIPE)/sources.sh $(CORPUS) '*' 2>/dev/null | cut -c1-300)
$(if $(VAL_SRCS),,$(error repro.mk: no source of $(CORPUS) matches VAL_SOURCES='$(VAL_SOURCES)' (shell patterns, separated by spaces or commas); its sources: $(or $(CORPUS_SRCS),none: no "source" field). Set VAL_SOURCES to the clean ones, or VAL_MODE=mixture for a Val drawn from all documents))
endif
endif
endif

# The corpus' identity beyond its path and mtime: size, ctime and inode of the file, or of
# every file below a directory corpus (a file replaced by one with an older mtime, as cp -p,
# rsync -a or tar x leave it, or a file added deep in a directory, changes no mtime make
# sees). The tokenizing steps record it (corpus.id) and are redone when it changes.
CORPUS_ID_SH = { if [ -d $(CORPUS) ]; then find $(CORPUS) -type f -printf '%P %s %C@ %i\n' | LC_ALL=C sort; else stat -c '%s %Z %i' $(CORPUS); fi; } 2>/dev/null | cksum | cut -d' ' -f1
corpus_moved = $(shell [ -f $(1) ] && [ "$$(cat $(1))" != "$$($(CORPUS_ID_SH))" ] && echo y)
ifneq ($(BUILDING)$(filter status,$(MAKECMDGOALS)),)
$(if $(filter bpe,$(TOKENIZER)),$(if $(call corpus_moved,$(VOCAB_DIR)/corpus.id),$(eval $(VOCAB_OK): FORCE)))
$(if $(call corpus_moved,$(dir $(SHARDS_OK))corpus.id),$(eval $(SHARDS_OK): FORCE))
endif

# what each step's record holds, and the targets it marks
P_VOCAB      = corpus=$(CORPUS)
P_SHARDS     = corpus=$(CORPUS) vocab=$(VOCAB_DIR)
P_META       = config=$(CFG_ID) manifest=$(MANIFEST) set=$(SET) meta_set=$(META_SET) device=$(DEVICE)
P_SCORE      = config=$(CFG_ID) manifest=$(MANIFEST) set=$(SET) rater=$(RATER) device=$(DEVICE)
P_PPL        = config=$(CFG_ID) manifest=$(MANIFEST) set=$(SET) lm=$(PPL_LM) device=$(DEVICE)
P_FILTER     = config=$(CFG_ID) manifest=$(MANIFEST) keep=$(KEEP) set=$(SET)
P_TRAIN      = config=$(CFG_ID) manifest=$(MANIFEST) set=$(SET) train_set=$(TRAIN_SET) budget=$(BUDGET) device=$(DEVICE)
P_ONLINE     = rater=$(RATER) keep=$(KEEP)
P_EXAMPLES   = n=$(N_EXAMPLES) seq_len=$(SEQ_LEN)
FILTER_NAMES := datarater random random-seed2 ppl
TRAIN_NAMES  := baseline datarater random ppl online baseline-seed2 datarater-seed2 random-seed2 ref-train_a
ifneq ($(BUILDING),)
$(if $(filter bpe,$(TOKENIZER)),$(call stamp,$(VOCAB_DIR)/params,$(P_VOCAB),$(VOCAB_OK)))
$(call stamp,$(dir $(SHARDS_OK))params,$(P_SHARDS),$(SHARDS_OK))
$(call stamp,$(SPLITS)/params,$(SPLIT_PARAMS),$(MANIFEST))
$(if $(filter $(OUT)/meta,$(META_DIR)),$(call stamp,$(META_DIR)/params,$(P_META),$(RATER_DONE)))
$(if $(filter $(OUT)/score,$(SCORE_DIR)),$(call stamp,$(SCORE_DIR)/datarater.params,$(P_SCORE),$(SCORE_DIR)/datarater.tsv))
$(if $(filter $(OUT)/score,$(SCORE_DIR)),$(call stamp,$(SCORE_DIR)/ppl.params,$(P_PPL),$(SCORE_DIR)/ppl.tsv))
$(call stamp,$(OUT)/filter/params,$(P_FILTER),$(FILTER_NAMES:%=$(OUT)/filter/%.paths))
$(call stamp,$(OUT)/train/params,$(P_TRAIN),$(TRAIN_NAMES:%=$(OUT)/train/%.done))
$(call stamp,$(OUT)/train/online.params,$(P_ONLINE),$(OUT)/train/online.done)
$(call stamp,$(OUT)/examples/params,$(P_EXAMPLES),$(OUT)/examples/top.txt $(OUT)/examples/bottom.txt)
endif

# (a record not written yet, or removed by clean-runs, is made empty: its step is out of
# date anyway)
.PRECIOUS: %/params %.params
%/params %.params:
	@mkdir -p $(@D) && touch $@
.PHONY: FORCE
FORCE:
.DEFAULT_GOAL := all

# --resume when an interrupted attempt at the current settings left the tool's state
# (decided when the recipe starts): a state newer than every prerequisite of the step
# ($(2) = $$^), whose attempt wrote these settings ($(3)) to $(1).params as it began
# (attempt). One older than any prerequisite, or of other settings, is another
# experiment's — typically the finished run whose inputs or settings just changed (new
# filter, manifest, rater, TRAIN_SET): resuming it would keep the old model.
# (a fresh attempt passes --restart: the tools refuse to replace an unfinished run's state
# without it)
resume       = $(shell [ "$$(cat $(1).params 2>/dev/null)" = '$(call sq,$(strip $(3)))' ] || exit 0; \
    for s in $(1).state $(1).state.prev; do [ -f $$s ] || continue; ok=y; \
    for p in $(filter-out FORCE,$(2)); do [ $$s -nt $$p ] || { ok=; break; }; done; [ -n "$$ok" ] && echo --resume && break; done)
attempt      = printf '%s\n' '$(call sq,$(strip $(2)))' > $(1).params

.PHONY: all report runs meta scores filters status clean-runs help
all: $(OUT)/report.md
	@printf '\n\033[1mreport: %s\033[0m  (plots in %s/plots/)\n' "$(OUT)/report.md" "$(OUT)" >&2

runs: $(TRAIN_DONE)
meta: $(RATER_DONE)
scores: $(SCORE_DIR)/datarater.tsv $(SCORE_DIR)/ppl.tsv
filters: $(foreach p,datarater random ppl,$(OUT)/filter/$(p).paths)
# random-seed2's filter is made for its run only; keep it (make would delete it as an
# intermediate file)
.SECONDARY: $(OUT)/filter/random-seed2.paths

# ---- 1. tokenizer and shards --------------------------------------------------------------
$(DATA)/corpus.jsonl:
	$(call say,corpus: $@ (pipelines/data.mk))
	$(MAKE) --no-print-directory -f $(PIPE)/data.mk DATA=$(DATA)

$(PREP)/vocab-bpe$(BPE_VOCAB)/encoder.json: $(CORPUS) $(PREP)/vocab-bpe$(BPE_VOCAB)/params
	$(call tool_need,dr-tokenize)
	$(call say,tokenizer: training a $(BPE_VOCAB)-token BPE on $(CORPUS) -> $(@D)/)
	$(BIN)/dr-tokenize --train-bpe $(BPE_VOCAB) --field text -o $(@D) $(CORPUS) > /dev/null || \
	    { echo "repro.mk: BPE_VOCAB=$(BPE_VOCAB)$(if $(filter command line,$(origin BPE_VOCAB)),, (from lm.vocab_size of $(notdir $(CONFIG)), or 4096)): for a small corpus pass a smaller BPE_VOCAB= (and SET=lm.vocab_size=N when the config sets lm.vocab_size), or TOKENIZER=byte" >&2; exit 1; }
	@$(CORPUS_ID_SH) > $(@D)/corpus.id
	@$(call stamp_record,$(@D)/params,$(P_VOCAB))

$(SHARDS_OK): $(CORPUS) $(VOCAB_OK) $(dir $(SHARDS_OK))params
	$(call tool_need,dr-tokenize)
	$(call say,shards: tokenizing $(CORPUS) ($(TOKENIZER)) -> $(@D)/)
	@mkdir -p $(@D); find $(@D) -mindepth 1 -maxdepth 1 ! -name params -exec rm -rf {} +
	$(ATOMIC) $@ $(BIN)/dr-tokenize --tokenizer $(TOKENIZER) $(if $(VOCAB_DIR),--vocab-dir $(VOCAB_DIR)) \
	    --field text --source-field source -o $(@D) $(CORPUS)
	@$(CORPUS_ID_SH) > $(@D)/corpus.id
	@$(call stamp_record,$(@D)/params,$(P_SHARDS))

# ---- 2. splits ------------------------------------------------------------------------------
$(MANIFEST): $(SHARDS_OK) $(SPLITS)/params
	$(call tool_need,dr-split)
	$(call say,splits ($(VAL_MODE)): Val = $(VAL_FRAC) of $(if $(filter mixture,$(VAL_MODE)),all documents,the documents of '$(VAL_SOURCES)'); train_b = $(TRAIN_B_FRAC) -> $(@D)/)
	srcs=; \
	if [ $(VAL_MODE) = prose ]; then \
	    srcs='$(call sq,$(VAL_SRCS))'; [ -n "$$srcs" ] || srcs=$$($(PIPE)/sources.sh $(CORPUS) '$(VAL_SOURCES)'); \
	    [ -n "$$srcs" ] || { echo "repro.mk: no source of $(CORPUS) matches VAL_SOURCES='$(VAL_SOURCES)'" >&2; exit 1; }; \
	    echo "Val sources: $$srcs" >&2; \
	fi; \
	$(BIN)/dr-split --val $(VAL_FRAC) --train-b $(TRAIN_B_FRAC) --seed $(SPLIT_SEED) $(if $(filter 1,$(DEDUP)),--dedup) \
	    $${srcs:+--val-sources "$$srcs"} -o $(@D) $(<D) > /dev/null
	@for sp in train_a val train_b; do grep -q "^$$sp	" $@ || { rm -f $@; \
	    echo "repro.mk: the split left $$sp without documents (VAL_FRAC=$(VAL_FRAC) TRAIN_B_FRAC=$(TRAIN_B_FRAC)$(if $(filter prose,$(VAL_MODE)), of the documents of VAL_SOURCES='$(VAL_SOURCES)')): the corpus is too small for these fractions; raise the fraction or use a larger CORPUS" >&2; exit 1; }; done
	@$(call stamp_record,$(@D)/params,$(SPLIT_PARAMS))

# ---- 3. meta-training -----------------------------------------------------------------------
# dr-meta -o meta/rater.safetensors writes the rater, meta/rater.ema.safetensors (the EMA
# of its weights, deployed with RATER_USE=ema) and the state rater.safetensors.state;
# meta/rater.done marks a finished run.
$(RATER_DONE): $(MANIFEST) $(CONFIG) $(META_DIR)/params
	$(call tool_need,dr-meta)
	$(call say,meta-training the rater: dr-meta $(notdir $(CONFIG)) $(META_SET) -> $(@D)/)
	$(if $(call resume,$(@D)/rater.safetensors,$^,$(P_META)),,@rm -f $(@D)/metrics.jsonl; $(call attempt,$(@D)/rater.safetensors,$(P_META)))
	$(BIN)/dr-meta $(CFGARGS) $(call sets,$(META_SET)) $(DEV) --log $(@D)/metrics.jsonl \
	    -o $(@D)/rater.safetensors $(or $(call resume,$(@D)/rater.safetensors,$^,$(P_META)),--restart) $(MANIFEST)
	@test -s $(RATER) || { echo "repro.mk: dr-meta did not write $(RATER)" >&2; exit 1; }
	@touch $@
	$(if $(filter $(OUT)/meta,$(META_DIR)),@$(call stamp_record,$(@D)/params,$(P_META)))

# ---- 4. scores and filters -----------------------------------------------------------------
$(SCORE_DIR)/datarater.tsv: $(RATER_DONE) $(MANIFEST) $(SCORE_DIR)/datarater.params
	$(call tool_need,dr-score)
	$(call say,scoring train_b with the rater ($(notdir $(RATER))) -> $@)
	$(ATOMIC) $@ $(PIPE)/tee-stderr.sh $(@:.tsv=.log) $(BIN)/dr-score --rater $(RATER) $(CFGARGS) $(DEV) --split train_b $(MANIFEST)
	$(if $(filter $(OUT)/score,$(SCORE_DIR)),@$(call stamp_record,$(SCORE_DIR)/datarater.params,$(P_SCORE)))

# Perplexity filter: score = an example's mean token loss under a reference LM; the
# middle KEEP are kept (the paper's best perplexity variant). PPL_REF=baseline: the
# baseline run's LM (trained on all of train_b with the same budget; it costs nothing
# more, but has seen part of what it scores once); PPL_REF=train_a: an LM trained the same
# way on train_a (same mixture, disjoint documents; one more training run).
$(SCORE_DIR)/ppl.tsv: $(PPL_LM) $(MANIFEST) $(SCORE_DIR)/ppl.params
	$(call tool_need,dr-score)
	$(call say,scoring train_b with the $(PPL_REF) LM (perplexity filter) -> $@)
	$(ATOMIC) $@ $(PIPE)/tee-stderr.sh $(@:.tsv=.log) $(BIN)/dr-score --lm $(<:.done=.safetensors) $(CFGARGS) $(DEV) --split train_b $(MANIFEST)
	$(if $(filter $(OUT)/score,$(SCORE_DIR)),@$(call stamp_record,$(SCORE_DIR)/ppl.params,$(P_PPL)))

# dr-filter's policy for each filtered run, and the scores it reads (random ignores the
# values: any scores file of train_b does, seeded by experiment.seed; random-seed2's subset
# by experiment.seed + 1)
FILTER_datarater := --keep $(KEEP)
FILTER_random    := --random $(KEEP)
FILTER_random-seed2 := --random $(KEEP) --seed $(SEED2)
FILTER_ppl       := --keep-middle $(KEEP)
SCORES_datarater := $(SCORE_DIR)/datarater.tsv
SCORES_random    := $(SCORE_DIR)/datarater.tsv
SCORES_random-seed2 := $(SCORE_DIR)/datarater.tsv
SCORES_ppl       := $(SCORE_DIR)/ppl.tsv

# filter/<name>/: the kept examples as shards; <name>.summary: dr-filter's counts,
# overall and per source; <name>.paths: the shard list, written last (marks it done).
$(OUT)/filter/%.paths: $$(SCORES_$$*) $(MANIFEST) $(OUT)/filter/params
	$(call tool_need,dr-filter)
	$(call say,filter '$*': dr-filter $(FILTER_$*) -> $(@:.paths=)/)
	@rm -rf $(@:.paths=) $(@:.paths=.summary)
	$(ATOMIC) $@ $(PIPE)/tee-stderr.sh $(@:.paths=.summary) \
	    $(BIN)/dr-filter --scores $< $(FILTER_$*) $(CFGARGS) --prefix $* -o $(@:.paths=) --split train_b $(MANIFEST)
	@$(call stamp_record,$(OUT)/filter/params,$(P_FILTER))

# ---- 5. final training runs at equal budget -----------------------------------------------
# train/<name>.safetensors: the LM; <name>.jsonl: its metrics; <name>.safetensors.state:
# the resumable state; <name>.done: the last Val line, written when dr-train succeeded.
TRAIN_IN_baseline    := --train-split train_b $(MANIFEST)
TRAIN_IN_baseline-seed2 := --set experiment.seed=$(SEED2) --train-split train_b $(MANIFEST)
TRAIN_IN_datarater-seed2 := --set experiment.seed=$(SEED2) --train $(OUT)/filter/datarater --val $(MANIFEST) --val-split val
TRAIN_IN_random-seed2 := --set experiment.seed=$(SEED2) --train $(OUT)/filter/random-seed2 --val $(MANIFEST) --val-split val
TRAIN_IN_ref-train_a := --train-split train_a $(MANIFEST)
TRAIN_IN_datarater   := --train $(OUT)/filter/datarater --val $(MANIFEST) --val-split val
TRAIN_IN_random      := --train $(OUT)/filter/random --val $(MANIFEST) --val-split val
TRAIN_IN_ppl         := --train $(OUT)/filter/ppl --val $(MANIFEST) --val-split val
TRAIN_IN_online      := --rater $(RATER) --online-keep $(KEEP) --train-split train_b $(MANIFEST)
TRAIN_DEP_baseline    := $(MANIFEST)
TRAIN_DEP_baseline-seed2 := $(MANIFEST)
TRAIN_DEP_datarater-seed2 := $(OUT)/filter/datarater.paths
TRAIN_DEP_random-seed2 := $(OUT)/filter/random-seed2.paths
TRAIN_DEP_ref-train_a := $(MANIFEST)
TRAIN_DEP_datarater   := $(OUT)/filter/datarater.paths
TRAIN_DEP_random      := $(OUT)/filter/random.paths
TRAIN_DEP_ppl         := $(OUT)/filter/ppl.paths
TRAIN_DEP_online      := $(RATER_DONE) $(MANIFEST) $(OUT)/train/online.params
# the settings an attempt of run $(1) records for --resume
train_params = $(P_TRAIN)$(if $(filter online,$(1)), $(P_ONLINE))

$(OUT)/train/%.done: $$(TRAIN_DEP_$$*) $(CONFIG) $(OUT)/train/params
	$(if $(TRAIN_IN_$*),,$(error no final run named '$*' (known: $(TRAIN_NAMES))))
	$(call tool_need,dr-train)
	$(call say,train '$*' -> $(@:.done=.safetensors))
	$(if $(call resume,$(@:.done=.safetensors),$^,$(call train_params,$*)),,@rm -f $(@:.done=.jsonl); $(call attempt,$(@:.done=.safetensors),$(call train_params,$*)))
	$(BIN)/dr-train $(CFGARGS) $(call sets,$(TRAIN_SET)) $(DEV) $(BUDGET) --log $(@:.done=.jsonl) \
	    -o $(@:.done=.safetensors) $(or $(call resume,$(@:.done=.safetensors),$^,$(call train_params,$*)),--restart) $(TRAIN_IN_$*)
	@$(ATOMIC) $@ sh -c "grep '\"l_val\"' $(@:.done=.jsonl) | tail -n 1"
	@$(call stamp_record,$(OUT)/train/params,$(P_TRAIN))
	$(if $(filter online,$*),@$(call stamp_record,$(OUT)/train/online.params,$(P_ONLINE)))

# ---- 6. examples and the report ---------------------------------------------------------
$(OUT)/examples/top.txt $(OUT)/examples/bottom.txt: $(OUT)/examples/%.txt: $(SCORE_DIR)/datarater.tsv $(MANIFEST) $(OUT)/examples/params
	$(call tool_need,dr-cat)
	@mkdir -p $(@D)
	$(ATOMIC) $@ $(BIN)/dr-cat --scores $< --$* $(N_EXAMPLES) --seq-len $(SEQ_LEN) --split train_b $(MANIFEST)
	@$(call stamp_record,$(OUT)/examples/params,$(P_EXAMPLES))

REPORT_IN := $(TRAIN_DONE) $(RATER_DONE) $(SCORE_DIR)/datarater.tsv $(OUT)/filter/datarater.paths \
             $(OUT)/examples/top.txt $(OUT)/examples/bottom.txt
$(OUT)/report.md: $(REPORT_IN) $(PIPE)/report.sh $(PIPE)/compare.sh
	$(call say,report -> $@)
	@{ echo "CONFIG=$(CONFIG)"; echo "CORPUS=$(CORPUS)"; echo "VAL_MODE=$(VAL_MODE)"; \
	  echo "VAL_SOURCES=$(VAL_SOURCES)"; echo "VAL_FRAC=$(VAL_FRAC)"; echo "TRAIN_B_FRAC=$(TRAIN_B_FRAC)"; \
	  echo "KEEP=$(KEEP)"; echo "TOKENIZER=$(TOKENIZER)"; echo "BPE_VOCAB=$(BPE_VOCAB)"; \
	  echo "RUNS=$(RUNS)"; echo "PPL_REF=$(PPL_REF)"; echo "RATER=$(RATER)"; echo "MANIFEST=$(MANIFEST)"; \
	  echo "META_DIR=$(META_DIR)"; echo "SCORE_DIR=$(SCORE_DIR)"; \
	  echo "BUDGET=$(BUDGET)"; echo "SET=$(SET)"; echo "META_SET=$(META_SET)"; echo "TRAIN_SET=$(TRAIN_SET)"; \
	  echo "DEVICE=$(DEVICE)"; echo "THREADS=$(THREADS)"; \
	  echo "ONLINE=$(if $(HAS_ONLINE),yes,no: dr-train has no --online-keep yet)"; } > $(OUT)/run.env
	$(PIPE)/report.sh $(OUT)

report:
	$(PIPE)/report.sh $(OUT)

# ---- housekeeping -----------------------------------------------------------------------
# done: exists and up to date; redo: exists, but make would remake it (an input, the config
# or a variable it depends on changed), as one dry run (make -n, which writes no stamp)
# says; pending: not made yet
STATUS_FILES = $(VOCAB_OK) $(SHARDS_OK) $(MANIFEST) $(RATER_DONE) $(SCORE_DIR)/datarater.tsv $(SCORE_DIR)/ppl.tsv \
    $(OUT)/filter/datarater.paths $(OUT)/filter/random.paths $(OUT)/filter/ppl.paths \
    $(if $(filter random-seed2,$(RUNS)),$(OUT)/filter/random-seed2.paths) $(TRAIN_DONE) $(OUT)/report.md
status:
	@stale=$$($(MAKE) --no-print-directory -n --debug=b -f $(firstword $(MAKEFILE_LIST)) $(STATUS_FILES) 2>&1 \
	    | sed -n "s/^ *Must remake target '\(.*\)'\.$$/\1/p"); \
	for f in $(STATUS_FILES); do \
	    if [ ! -e $$f ]; then s=pending; elif printf '%s\n' "$$stale" | grep -qxF $$f; then s=redo; else s=done; fi; \
	    printf '%-8s %s\n' $$s $$f; done

clean-runs:
	rm -rf $(OUT)/meta $(OUT)/score $(OUT)/filter $(OUT)/train $(OUT)/examples $(OUT)/plots $(OUT)/report.md $(OUT)/run.env

help:
	@sed -n '1,/^$$/p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'
	@echo "now: CONFIG=$(CONFIG) OUT=$(OUT) PREP=$(PREP) VAL_MODE=$(VAL_MODE) VAL_FRAC=$(VAL_FRAC) TRAIN_B_FRAC=$(TRAIN_B_FRAC)"
	@echo "     KEEP=$(KEEP) TOKENIZER=$(TOKENIZER) BUDGET=$(or $(BUDGET),config) RUNS=$(RUNS)"
