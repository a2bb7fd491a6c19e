# experiment.mk: one TrafficGPT experiment from captures to a report, as make
# targets, so a rerun after a change rebuilds only what the change touches.
#
#   make -f pipelines/experiment.mk EXP=exp/NAME [CONFIG=FILE] [target]
#
# captures -> token files (pipelines/preprocess, GNU Parallel) -> shards ->
# pretrained model -> fine-tuned classifier -> classification report (and the
# classical baseline, on its own split or on the classifier's shards) ->
# generated flows -> pcap -> jsdiv and realism-eval -> EXP/report.md
# (target classification: EXP/classification.md, the classifiers alone).
# Hyperparameters live in EXP/config.mk (copied from CONFIG on the first
# run); each step depends on the settings it uses, so editing one reruns
# that step and those after it. Intermediates are kept; a failed step leaves
# no half-written file.

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
CORPUS ?= $(abspath $(TOP)/../shared/data)
CAPTURES ?= $(TOP)/examples
LABELS ?= $(TOP)/examples/labels.tsv
# Labels flow by flow: a table of flows for pcap2flow --labels, its label
# column and filters (COLUMN=PREFIX ...); empty: none.
FLOW_TABLE ?=
LABEL_COLUMN ?=
LABEL_FILTER ?=
# The classifier's flows (tokshard): labelled ones only (yes), at most
# MAX_PER_SOURCE_LABEL of one label from one capture, labels with at least
# MIN_LABEL_FLOWS flows after that; empty: all.
LABELLED_ONLY ?=
MAX_PER_SOURCE_LABEL ?=
MIN_LABEL_FLOWS ?=
# The baseline's split: own (realism-eval --split time on LABELS) or shards
# (the flows and split of the classifier's shards, split.tsv).
BASELINE_SPLIT ?= own
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
CFG_DATA := $(CAPTURES) $(LABELS) $(FLOW_TABLE) $(LABEL_COLUMN) $(LABEL_FILTER) $(CONTEXT) \
	$(SPLIT) $(SPLIT_GROUP) $(SEED) $(JOBS)
CFG_SELECT := $(LABELLED_ONLY) $(MAX_PER_SOURCE_LABEL) $(MIN_LABEL_FLOWS)
CFG_BASELINE := $(BASELINE_SPLIT)
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
$(eval $(call cfg_rule,select,$(CFG_SELECT)))
$(eval $(call cfg_rule,baseline,$(CFG_BASELINE)))
$(eval $(call cfg_rule,train,$(CFG_TRAIN)))
$(eval $(call cfg_rule,ft,$(CFG_FT)))
$(eval $(call cfg_rule,gen,$(CFG_GEN)))
.PHONY: FORCE
FORCE:

.PHONY: all report classification clean-model
all: report
report: $(EXP)/report.md
# The classification results alone (tgpt and the baseline), before generation.
classification: $(EXP)/classification.md

$(EXP)/.dir:
	mkdir -p $(EXP) && touch $@

ifeq ($(filter $(BASELINE_SPLIT),own shards),)
$(error BASELINE_SPLIT is own or shards, not '$(BASELINE_SPLIT)')
endif
ifeq ($(BASELINE_SPLIT)$(LABELS),own)
$(error BASELINE_SPLIT = own needs LABELS (capture<TAB>label lines); shards uses the classifier's flows)
endif

# ---------------------------------------------------------------- data
# Unmasked tokens train the generator; masked ones (no MAC, IP or port to
# cheat with, as in the paper) train the classifier. Labels come from LABELS
# (per capture) and FLOW_TABLE (per flow; its flows override LABELS). A
# damaged capture keeps its flows before the damage (EXP/damaged.txt); what
# the tools say (pcap2flow's label summary) goes to EXP/tok.log, tokm.log.
PREPROCESS := $(TOP)/pipelines/preprocess -q -j $(JOBS) --no-shards --allow-damaged \
	$(if $(LABELS),--labels $(LABELS)) \
	$(if $(FLOW_TABLE),--flow-labels $(FLOW_TABLE) --flow-args '$(if $(LABEL_COLUMN),--label-column $(LABEL_COLUMN)) \
	$(foreach f,$(LABEL_FILTER),--label-filter $(f))')
# log_to FILE: a command's stderr into FILE, its tail on the terminal if it fails
log_to = 2> $(1) || { tail -20 $(1) >&2; exit 1; }
$(EXP)/tok/.done: $(EXP)/cfg/data $(LABELS) $(FLOW_TABLE)
	$(PREPROCESS) $(CAPTURES) $(EXP)/tok-run $(call log_to,$(EXP)/tok.log)
	if [ -f $(EXP)/tok-run/damaged.txt ]; then mv $(EXP)/tok-run/damaged.txt $(EXP)/damaged.txt; fi
	rm -rf $(@D) && mv $(EXP)/tok-run/tok $(@D) && rm -rf $(EXP)/tok-run && touch $@

# The baseline on the shards reads the flow streams the masked token files
# were made from (same sources and ids): EXP/flows.
$(EXP)/tokm/.done: $(EXP)/cfg/data $(EXP)/cfg/baseline $(LABELS) $(FLOW_TABLE)
	$(PREPROCESS) --mask mac,ip,port $(if $(filter shards,$(BASELINE_SPLIT)),--keep-flows) \
	  $(CAPTURES) $(EXP)/tokm-run $(call log_to,$(EXP)/tokm.log)
	rm -rf $(@D) $(EXP)/flows && mv $(EXP)/tokm-run/tok $(@D)
	if [ -d $(EXP)/tokm-run/flows ]; then mv $(EXP)/tokm-run/flows $(EXP)/flows; fi
	rm -rf $(EXP)/tokm-run && touch $@

# Shards: one set for pretraining and generation, one for classification.
$(EXP)/shards/.done: $(EXP)/tok/.done
	find $(EXP)/tok -name '*.tok' | sort | xargs cat | \
	  tokshard -q -o $(@D) --context $(CONTEXT) --split $(SPLIT) --group $(SPLIT_GROUP) --seed $(SEED) -
	touch $@

# The classifier's shards also hold the selection; tokshard's summary (labels
# and flows per split, what the selection left out) is kept in shards-clf.log.
CLF_SELECT := $(if $(filter yes,$(LABELLED_ONLY)),--labelled-only) \
	$(if $(MAX_PER_SOURCE_LABEL),--max-flows-per-source-label $(MAX_PER_SOURCE_LABEL)) \
	$(if $(MIN_LABEL_FLOWS),--min-label-flows $(MIN_LABEL_FLOWS))
$(EXP)/shards-clf/.done: $(EXP)/tokm/.done $(EXP)/cfg/select
	find $(EXP)/tokm -name '*.tok' | sort | xargs cat | \
	  tokshard -o $(@D) --context $(CONTEXT) --split $(SPLIT) --group $(SPLIT_GROUP) --seed $(SEED) \
	    $(CLF_SELECT) - $(call log_to,$(EXP)/shards-clf.log)
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

ifeq ($(BASELINE_SPLIT),shards)
$(EXP)/baseline.json: $(EXP)/shards-clf/.done $(EXP)/cfg/baseline
	find $(EXP)/flows -name '*.flows' | sort | xargs cat | \
	  realism-eval --baseline -q --json -s $(SEED) --split-file $(EXP)/shards-clf/split.tsv - \
	  > $@ $(call log_to,$(EXP)/baseline.log)
else
$(EXP)/baseline.json: $(EXP)/cfg/data $(EXP)/cfg/baseline $(LABELS)
	realism-eval --baseline -q --json --split time -s $(SEED) -L $(LABELS) > $@
endif

# ---------------------------------------------------------------- generation
# Flows are primed with the first PROMPT_PACKETS packets of real flows (the
# paper's "predefined initial tokens"; 0: a bare START) and pinned to one link
# type, Ethernet, so that they fit one pcap. When the captures hold other
# link types too, the prompts are the real Ethernet flows (of real.pcap).
# A conditional model (CONDITIONAL = 1) generates GEN_N flows split evenly
# over its labels (those of --info's label lines but the unnamed one of
# unlabelled flows), each label's primed with its own flows (generate --label
# skips the prompts of other labels).
# Two modes side by side, from the same model, seed and prompts: the
# decoding grammar (tgpt-infer's default: gen.tok, gen.pcap, realism.json,
# jsdiv.json, tshark.json) and free sampling with checked packets (--raw:
# the same files with -raw). A raw run that yields no packet is reported as
# such rather than stopping the experiment; the grammar's must not.
GENERATE = tgpt-infer generate -q --seed $(SEED) --top-k $(TOP_K) --max-tokens $(GEN_MAX_TOKENS) \
	  --link-token 1 $(if $(filter-out 0,$(PROMPT_PACKETS)),--prompt $(EXP)/prompts.tok --prompt-packets $(PROMPT_PACKETS))
$(EXP)/prompts.tok: $(EXP)/tok/.done $(EXP)/real.pcap
	if [ -s $(EXP)/real-other-linktypes.txt ]; then \
	  { pcap2flow -q $(EXP)/real.pcap | flow2tok -q > $@.tmp; } $(call log_to,$(EXP)/prompts.log); \
	else find $(EXP)/tok -name '*.tok' | sort | xargs cat > $@.tmp; fi
	mv $@.tmp $@

# gen_rule SUFFIX FLAGS OK: gen$(1).tok with the generate flags $(2); OK: the
# exit statuses of generate and tok2pcap that still make a result (the raw
# side may hold no packet: 65).
define gen_rule
$(EXP)/gen$(1).tok: $(EXP)/model.ckpt $(EXP)/prompts.tok $(EXP)/cfg/gen
ifeq ($(COND),1)
	tgpt-train --info $(EXP)/model.ckpt | sed -n 's/^label [0-9]* [0-9,]* [0-9]* //p' | grep . > $(EXP)/gen$(1)-labels.txt
	n=$$$$(wc -l < $(EXP)/gen$(1)-labels.txt); i=0; : > $(EXP)/gen$(1).log; : > $$@.tmp; \
	while IFS= read -r label; do \
	  k=$$$$(( $(GEN_N) / n + (i < $(GEN_N) % n ? 1 : 0) )); i=$$$$((i + 1)); \
	  [ "$$$$k" -gt 0 ] || continue; \
	  $(GENERATE) $(2) -n $$$$k --label "$$$$label" $(EXP)/model.ckpt >> $$@.tmp 2>> $(EXP)/gen$(1).log \
	    || case $$$$? in $(3)) ;; *) tail -5 $(EXP)/gen$(1).log >&2; exit 1;; esac; \
	done < $(EXP)/gen$(1)-labels.txt; \
	mv $$@.tmp $$@
else
	$(GENERATE) $(2) -n $(GEN_N) $(EXP)/model.ckpt > $$@.tmp 2> $(EXP)/gen$(1).log \
	  || case $$$$? in $(3)) ;; *) tail -5 $(EXP)/gen$(1).log >&2; exit 1;; esac
	mv $$@.tmp $$@
endif

$(EXP)/gen$(1).pcap: $(EXP)/gen$(1).tok
	tok2pcap -q -w $$@ $$< 2> $(EXP)/gen$(1).tok2pcap.log \
	  || case $$$$? in $(3)) ;; *) cat $(EXP)/gen$(1).tok2pcap.log >&2; exit 1;; esac
endef
$(eval $(call gen_rule,,,0))
$(eval $(call gen_rule,-raw,--raw,0|65))

# The real side: the flows the model learned from, as one pcap: those of
# link type 1 (Ethernet), as the generated ones are pinned to it.
$(EXP)/real.pcap: $(EXP)/tok/.done
	rm -f $(EXP)/real-*.pcap
	find $(EXP)/tok -name '*.tok' | sort | xargs cat | tok2pcap -q --split $(EXP)/real -
	mv $(EXP)/real-1.pcap $@
	(cd $(EXP) && ls real-*.pcap 2>/dev/null || true) | sed 's/^real-//; s/\.pcap$$//' > $(EXP)/real-other-linktypes.txt
	rm -f $(EXP)/real-*.pcap

$(EXP)/jsdiv.json: $(EXP)/real.pcap $(EXP)/gen.pcap
	rm -rf $(EXP)/plots
	jsdiv -q --json --plot $(EXP)/plots $^ > $@

$(EXP)/realism.json: $(EXP)/real.pcap $(EXP)/gen.pcap $(EXP)/gen.tok
	realism-eval -q --json -s $(SEED) --tokens $(EXP)/gen.tok $(EXP)/real.pcap $(EXP)/gen.pcap > $@

# The raw side's evaluations; when raw generation made too little to
# evaluate, a JSON object that says why.
$(EXP)/jsdiv-raw.json: $(EXP)/real.pcap $(EXP)/gen-raw.pcap
	jsdiv -q --json $^ > $@.tmp 2> $@.log || jq -n --rawfile e $@.log '{error: $$e}' > $@.tmp
	mv $@.tmp $@

$(EXP)/realism-raw.json: $(EXP)/real.pcap $(EXP)/gen-raw.pcap $(EXP)/gen-raw.tok
	realism-eval -q --json -s $(SEED) --tokens $(EXP)/gen-raw.tok $(EXP)/real.pcap \
	  $(EXP)/gen-raw.pcap > $@.tmp 2> $@.log || jq -n --rawfile e $@.log '{error: $$e}' > $@.tmp
	mv $@.tmp $@

# tshark's verdict on each generated capture (when tshark is installed):
# malformed packets and error expert infos, with the protocols they are in.
$(EXP)/tshark.json: $(EXP)/gen.pcap $(TOP)/pipelines/tshark-check
	$(TOP)/pipelines/tshark-check $< > $@
$(EXP)/tshark-raw.json: $(EXP)/gen-raw.pcap $(TOP)/pipelines/tshark-check
	$(TOP)/pipelines/tshark-check $< > $@

# ---------------------------------------------------------------- report
$(EXP)/report.md: $(EXP)/classify.json $(EXP)/baseline.json $(EXP)/jsdiv.json $(EXP)/realism.json \
		$(EXP)/jsdiv-raw.json $(EXP)/realism-raw.json $(EXP)/tshark.json $(EXP)/tshark-raw.json \
		$(TOP)/pipelines/report.sh
	$(TOP)/pipelines/report.sh $(EXP) > $@

$(EXP)/classification.md: $(EXP)/classify.json $(EXP)/baseline.json $(TOP)/pipelines/report.sh
	$(TOP)/pipelines/report.sh --classification $(EXP) > $@

clean-model:
	rm -f $(EXP)/model.ckpt $(EXP)/clf.ckpt
