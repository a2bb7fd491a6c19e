# experiment.mk: one TrafficGPT experiment from captures to a report, as make
# targets, so a rerun after a change rebuilds only what the change touches.
#
#   make -f pipelines/experiment.mk EXP=exp/NAME [CONFIG=FILE] [target]
#
# captures -> token files (pipelines/preprocess, GNU Parallel) -> shards ->
# pretrained model -> fine-tuned classifier -> classification report (and the
# classical baseline) -> generated flows -> pcap -> jsdiv and realism-eval ->
# EXP/report.md. Hyperparameters live in EXP/config.mk (copied from CONFIG on
# the first run); each step depends on the settings it uses, so editing one
# reruns that step and those after it. Intermediates are kept; a failed step
# leaves no half-written file.

SHELL := bash
.DEFAULT_GOAL := all
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
EXP ?= exp/default
CONFIG ?= $(TOP)/pipelines/experiment.conf
export PATH := $(TOP)/bin:$(PATH)

# The experiment's own copy of its configuration: what the outputs depend on.
$(EXP)/config.mk: | $(EXP)/.dir
	cp $(CONFIG) $@
-include $(EXP)/config.mk

# Defaults for anything the config leaves out.
CAPTURES ?= $(TOP)/examples
LABELS ?= $(TOP)/examples/labels.tsv
PRESET ?= tiny
CONTEXT ?= 2048
STEPS ?= 300
BATCH ?= 4
LR ?= 3e-3
FT_STEPS ?= 300
FT_WINDOW ?= 256
FT_LR ?= 3e-3
SPLIT ?= 80/10/10
SPLIT_GROUP ?= flow
CONDITIONAL ?= 0
GEN_N ?= 100
GEN_MAX_TOKENS ?= 4096
PROMPT_PACKETS ?= 1
TOP_K ?= 26
SEED ?= 1
JOBS ?= 2

TRAIN := tgpt-train -q -j $(JOBS) --seed $(SEED)

# Each step depends only on the settings it uses: a file per group holds
# their values and is rewritten only when they change (git's GIT-CFLAGS
# trick), so editing GEN_N reruns generation and its evaluation, not training.
CFG_DATA := $(CAPTURES) $(LABELS) $(CONTEXT) $(SPLIT) $(SPLIT_GROUP) $(SEED) $(JOBS)
# (CONDITIONAL = 0 adds nothing, so experiments from before it keep their models)
COND := $(filter 1,$(CONDITIONAL))
CFG_TRAIN := $(PRESET) $(CONTEXT) $(BATCH) $(LR) $(STEPS) $(SEED) $(JOBS)$(if $(COND), conditional)
CFG_FT := $(FT_STEPS) $(FT_WINDOW) $(FT_LR) $(SEED) $(JOBS)
CFG_GEN := $(GEN_N) $(GEN_MAX_TOKENS) $(TOP_K) $(PROMPT_PACKETS) $(SEED)$(if $(COND), conditional)
define cfg_rule
$(EXP)/cfg/$(1): FORCE | $(EXP)/.dir
	@mkdir -p $$(@D); v='$(2)'; [ "$$$$(cat $$@ 2>/dev/null)" = "$$$$v" ] || echo "$$$$v" > $$@
endef
$(eval $(call cfg_rule,data,$(CFG_DATA)))
$(eval $(call cfg_rule,train,$(CFG_TRAIN)))
$(eval $(call cfg_rule,ft,$(CFG_FT)))
$(eval $(call cfg_rule,gen,$(CFG_GEN)))
.PHONY: FORCE
FORCE:

.PHONY: all report clean-model
all: report
report: $(EXP)/report.md

$(EXP)/.dir:
	mkdir -p $(EXP) && touch $@

# ---------------------------------------------------------------- data
# Unmasked tokens train the generator; masked ones (no MAC, IP or port to
# cheat with, as in the paper) train the classifier.
$(EXP)/tok/.done: $(EXP)/cfg/data $(LABELS)
	$(TOP)/pipelines/preprocess -q -j $(JOBS) --no-shards --labels $(LABELS) $(CAPTURES) $(EXP)/tok-run
	rm -rf $(@D) && mv $(EXP)/tok-run/tok $(@D) && rm -rf $(EXP)/tok-run && touch $@

$(EXP)/tokm/.done: $(EXP)/cfg/data $(LABELS)
	$(TOP)/pipelines/preprocess -q -j $(JOBS) --no-shards --mask mac,ip,port --labels $(LABELS) $(CAPTURES) $(EXP)/tokm-run
	rm -rf $(@D) && mv $(EXP)/tokm-run/tok $(@D) && rm -rf $(EXP)/tokm-run && touch $@

# Shards: one set for pretraining and generation, one for classification.
$(EXP)/shards/.done: $(EXP)/tok/.done
	find $(EXP)/tok -name '*.tok' | sort | xargs cat | \
	  tokshard -q -o $(@D) --context $(CONTEXT) --split $(SPLIT) --group $(SPLIT_GROUP) --seed $(SEED) -
	touch $@

$(EXP)/shards-clf/.done: $(EXP)/tokm/.done
	find $(EXP)/tokm -name '*.tok' | sort | xargs cat | \
	  tokshard -q -o $(@D) --context $(CONTEXT) --split $(SPLIT) --group $(SPLIT_GROUP) --seed $(SEED) -
	touch $@

# ---------------------------------------------------------------- models
$(EXP)/model.ckpt: $(EXP)/shards/.done $(EXP)/cfg/train
	$(TRAIN) --preset $(PRESET) --context $(CONTEXT) --batch $(BATCH) --lr $(LR) \
	  --steps $(STEPS) $(if $(COND),--conditional )--metrics $(EXP)/pretrain.tsv -o $@ $(EXP)/shards

$(EXP)/clf.ckpt: $(EXP)/model.ckpt $(EXP)/shards-clf/.done $(EXP)/cfg/ft
	$(TRAIN) --finetune $(EXP)/model.ckpt --labels --ft-window $(FT_WINDOW) --lr $(FT_LR) \
	  --steps $(FT_STEPS) --metrics $(EXP)/finetune.tsv -o $@ $(EXP)/shards-clf

# ---------------------------------------------------------------- classification
$(EXP)/classify.json: $(EXP)/clf.ckpt
	tgpt-infer classify -q -j $(JOBS) --json --report $@ $(EXP)/clf.ckpt $(EXP)/shards-clf/test.shard > $(EXP)/pred.mp

$(EXP)/baseline.json: $(EXP)/cfg/data $(LABELS)
	realism-eval --baseline -q --json --split time -s $(SEED) -L $(LABELS) > $@

# ---------------------------------------------------------------- generation
# Flows are primed with the first PROMPT_PACKETS packets of real flows (the
# paper's "predefined initial tokens"; 0: a bare START) and pinned to one link
# type, so that they fit one pcap. A conditional model (CONDITIONAL = 1)
# generates GEN_N flows split evenly over its labels (those of --info's label
# lines but the unnamed one of unlabelled flows), each label's primed with
# its own flows (generate --label skips the prompts of other labels).
GENERATE = tgpt-infer generate -q --seed $(SEED) --top-k $(TOP_K) --max-tokens $(GEN_MAX_TOKENS) \
	  --link-token 1 $(if $(filter-out 0,$(PROMPT_PACKETS)),--prompt $(EXP)/prompts.tok --prompt-packets $(PROMPT_PACKETS))
$(EXP)/gen.tok: $(EXP)/model.ckpt $(EXP)/tok/.done $(EXP)/cfg/gen
	find $(EXP)/tok -name '*.tok' | sort | xargs cat > $(EXP)/prompts.tok
ifeq ($(COND),1)
	tgpt-train --info $(EXP)/model.ckpt | sed -n 's/^label [0-9]* [0-9,]* [0-9]* //p' | grep . > $(EXP)/gen-labels.txt
	n=$$(wc -l < $(EXP)/gen-labels.txt); i=0; : > $(EXP)/gen.log; : > $@.tmp; \
	while IFS= read -r label; do \
	  k=$$(( $(GEN_N) / n + (i < $(GEN_N) % n ? 1 : 0) )); i=$$((i + 1)); \
	  [ "$$k" -gt 0 ] || continue; \
	  $(GENERATE) -n $$k --label "$$label" $(EXP)/model.ckpt >> $@.tmp 2>> $(EXP)/gen.log; \
	done < $(EXP)/gen-labels.txt; \
	mv $@.tmp $@
else
	$(GENERATE) -n $(GEN_N) $(EXP)/model.ckpt > $@ 2> $(EXP)/gen.log
endif

$(EXP)/gen.pcap: $(EXP)/gen.tok
	tok2pcap -q -w $@ $<

# The real side: the captures the model learned from, as one pcap.
$(EXP)/real.pcap: $(EXP)/tok/.done
	find $(EXP)/tok -name '*.tok' | sort | xargs cat | tok2pcap -q -w $@ -

$(EXP)/jsdiv.json: $(EXP)/real.pcap $(EXP)/gen.pcap
	rm -rf $(EXP)/plots
	jsdiv -q --json --plot $(EXP)/plots $^ > $@

$(EXP)/realism.json: $(EXP)/real.pcap $(EXP)/gen.pcap
	realism-eval -q --json -s $(SEED) $^ > $@

# ---------------------------------------------------------------- report
$(EXP)/report.md: $(EXP)/classify.json $(EXP)/baseline.json $(EXP)/jsdiv.json $(EXP)/realism.json \
		$(TOP)/pipelines/report.sh
	$(TOP)/pipelines/report.sh $(EXP) > $@

clean-model:
	rm -f $(EXP)/model.ckpt $(EXP)/clf.ckpt
