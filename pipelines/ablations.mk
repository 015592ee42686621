# ablations.mk — the seed's ablations of the DataRater, each a target, all in one table
# ($(AOUT)/ablations.md). Every ablation changes one thing against the main run of
# pipelines/repro.mk ($(REPRO_OUT): its splits, its baseline, its rater) and trains the
# final LM on the data its rater keeps, with the same config and budget:
#
#   no-rater      all data (the main run's baseline)         full        the main run's rater
#   detach        meta.mode=detach (w used, no meta-gradient: the rater stays at its init)
#   shuffle       meta.mode=shuffle (w permuted within each batch)
#   constant      meta.mode=constant (w = 1: the rater is never used nor trained)
#   classifier    meta.mode=classifier (the rater trained as a Val-vs-Train_A classifier)
#   keep0.5 keep0.7 keep0.85   the main run's rater, other keep rates (with a random
#                 filter at the same rate beside each, KEEP_RANDOM=1)
#   T-short T-long   meta.T divided / multiplied by 4 (ABL_T_SHORT, ABL_T_LONG), with
#                 meta.rounds and meta.reset_every scaled to keep the inner steps equal
#   K1 K3         meta.population_K = 1, 3
#   first-order   meta.hvp=false (the Hessian-vector term dropped)
#
#   make -f pipelines/ablations.mk                 all of them (after the main run)
#   make -f pipelines/ablations.mk -j2 detach K1   some of them
#   make -f pipelines/ablations.mk table           every ablation not yet done, then the table
#   make -f pipelines/ablations.mk table-only      the table from what is done so far (runs nothing)
#
# Variables as repro.mk's (CONFIG, DATA/CORPUS, VAL_MODE, DEVICE, THREADS, STEPS/TOKENS,
# SET, TRAIN_SET, KEEP …: they are passed on; CORPUS, VAL_SOURCES, VAL_FRAC, TRAIN_B_FRAC,
# TOKENIZER, BPE_VOCAB, KEEP, SET, TRAIN_SET not given are the main run's, from its
# run.env), plus REPRO_OUT (the main run, default
# repro.mk's OUT: runs/repro, runs/gpu with DEVICE=cuda) and AOUT (default
# runs/ablations[-gpu][-mixture]). Each ablation lives in
# $(AOUT)/<name>/ (meta/, score/, filter/, train/ as in a repro run).

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.SUFFIXES:
PIPE        := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
ROOT        := $(patsubst ./%,%,$(dir $(PIPE)))
# the same defaults as repro.mk: DEVICE=cuda means configs/gpu.yaml and the main run
# runs/gpu (ablating the GPU run against a new CPU-config main run in runs/repro was wrong)
CONFIG      ?= $(ROOT)configs/$(if $(filter cuda,$(DEVICE)),gpu,cpu).yaml
VAL_MODE    ?= prose
REPRO_OUT   ?= $(ROOT)runs/$(if $(filter cuda,$(DEVICE)),gpu,repro)$(if $(filter mixture,$(VAL_MODE)),-mixture)
AOUT        ?= $(ROOT)runs/ablations$(if $(filter cuda,$(DEVICE)),-gpu)$(if $(filter mixture,$(VAL_MODE)),-mixture)
KEEP_RANDOM ?= 1
cfg          = $(shell $(PIPE)/cfg.sh $(1) $(CONFIG))

META_ABLATIONS := detach shuffle constant classifier T-short T-long K1 K3 first-order
KEEP_ABLATIONS := keep0.5 keep0.7 keep0.85
ABLATIONS   ?= $(META_ABLATIONS) $(KEEP_ABLATIONS)

# short / long unroll at equal inner steps (rounds·T) and equal member lifetime (reset·T)
T_CFG       := $(call cfg,meta.T)
ROUNDS_CFG  := $(call cfg,meta.rounds)
RESET_CFG   := $(call cfg,meta.reset_every)
ABL_T_SHORT ?= $(shell echo $$(( $(T_CFG) / 4 > 0 ? $(T_CFG) / 4 : 1 )))
ABL_T_LONG  ?= $(shell echo $$(( $(T_CFG) * 4 )))
scaled       = $(shell echo $$(( $(1) * $(T_CFG) / $(2) > 0 ? $(1) * $(T_CFG) / $(2) : 1 )))
ABL_SET_detach      := meta.mode=detach
ABL_SET_shuffle     := meta.mode=shuffle
ABL_SET_constant    := meta.mode=constant
ABL_SET_classifier  := meta.mode=classifier
ABL_SET_T-short     := meta.T=$(ABL_T_SHORT) meta.rounds=$(call scaled,$(ROUNDS_CFG),$(ABL_T_SHORT)) meta.reset_every=$(call scaled,$(RESET_CFG),$(ABL_T_SHORT)) meta.checkpoint_every=0
ABL_SET_T-long      := meta.T=$(ABL_T_LONG) meta.rounds=$(call scaled,$(ROUNDS_CFG),$(ABL_T_LONG)) meta.reset_every=$(call scaled,$(RESET_CFG),$(ABL_T_LONG)) meta.checkpoint_every=0
ABL_SET_K1          := meta.population_K=1
ABL_SET_K3          := meta.population_K=3
ABL_SET_first-order := meta.hvp=false

# The main run's own settings (its run.env) for those not given here: an ablation made
# without repeating them restamped the main run with repro.mk's defaults (and without
# CORPUS planned to tokenize the default corpus into it).
FROM_RUN_ENV := CORPUS VAL_SOURCES VAL_FRAC TRAIN_B_FRAC TOKENIZER BPE_VOCAB KEEP SET TRAIN_SET
sq           = $(subst ','\'',$(1))
ifneq ($(wildcard $(REPRO_OUT)/run.env),)
$(foreach v,$(FROM_RUN_ENV),$(if $(filter command line environment,$(origin $(v))),,$(eval $(v) := $(shell sed -n 's/^$(v)=//p' $(REPRO_OUT)/run.env))$(eval RUN_ENV_SET += $(v))))
endif
REPRO := $(MAKE) --no-print-directory -f $(PIPE)/repro.mk CONFIG=$(CONFIG) VAL_MODE=$(VAL_MODE) \
    $(foreach v,$(RUN_ENV_SET),$(v)='$(call sq,$($(v)))')

.PHONY: all table table-only prep main main-rater $(ABLATIONS) help
all: table
	@printf '\n\033[1mablations: %s\033[0m\n' "$(AOUT)/ablations.md" >&2

# The main run's data, then its rater and scores (alone: two makes must never build the
# same files at once), then its baseline, DataRater and random runs.
prep:
	$(REPRO) OUT=$(REPRO_OUT) $(REPRO_OUT)/splits-$(VAL_MODE)/manifest.tsv
main-rater: prep
	$(REPRO) OUT=$(REPRO_OUT) $(REPRO_OUT)/score/datarater.tsv
main: main-rater
	$(REPRO) OUT=$(REPRO_OUT) $(REPRO_OUT)/train/baseline.done $(REPRO_OUT)/train/datarater.done $(REPRO_OUT)/train/random.done

# an ablation of the meta-training: its own rater, scores, filter and final run
$(META_ABLATIONS): prep
	@printf '\n\033[1m==> ablation %s: %s\033[0m\n' "$@" "$(ABL_SET_$@)" >&2
	$(REPRO) OUT=$(AOUT)/$@ PREP=$(REPRO_OUT) META_SET="$(ABL_SET_$@)" RUNS=datarater $(AOUT)/$@/train/datarater.done

# another keep rate with the main rater and scores
$(KEEP_ABLATIONS): main-rater
	@printf '\n\033[1m==> ablation %s: keep %s with the main rater\033[0m\n' "$@" "$(@:keep%=%)" >&2
	$(REPRO) OUT=$(AOUT)/$@ PREP=$(REPRO_OUT) META_DIR=$(REPRO_OUT)/meta SCORE_DIR=$(REPRO_OUT)/score \
	    KEEP=$(@:keep%=%) RUNS="datarater$(if $(filter 1,$(KEEP_RANDOM)), random)" \
	    $(AOUT)/$@/train/datarater.done $(if $(filter 1,$(KEEP_RANDOM)),$(AOUT)/$@/train/random.done)

# the planned change of every meta ablation, for the rows of those not run yet
# (ABL_SET_<name with - as _>; a finished ablation's own meta/params record wins)
ABL_SETS_ENV = $(foreach a,$(META_ABLATIONS),ABL_SET_$(subst -,_,$(a))="$(ABL_SET_$(a))")

table: main $(ABLATIONS)
	$(ABL_SETS_ENV) $(PIPE)/ablations.sh $(REPRO_OUT) $(AOUT) $(ABLATIONS)

# the table of whatever is finished, without running anything
table-only:
	$(ABL_SETS_ENV) $(PIPE)/ablations.sh $(REPRO_OUT) $(AOUT) $(ABLATIONS)

help:
	@sed -n '1,/^$$/p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'
	@$(foreach a,$(META_ABLATIONS),echo "  $(a): $(ABL_SET_$(a))";)
