# experiment.mk: one TrafficGPT experiment from captures to a report, as make
# targets, so a rerun after a change rebuilds only what the change touches.
#
#   make -f pipelines/experiment.mk EXP=exp/NAME [CONFIG=FILE] [target]
#
# captures -> token files (pipelines/preprocess, GNU Parallel) -> shards ->
# pretrained model (or PRETRAINED's) -> fine-tuned classifier, and the same
# fine-tuning from random parameters -> classification report (and the
# classical baselines, on their own split or on the classifier's shards) ->
# generated flows -> pcap -> jsdiv and realism-eval -> EXP/report.md
# (target classification: EXP/classification.md, the classifiers alone).
# With TEST_CAPTURES, the classifiers are tested on a corpus of their own
# (the cross-source protocol task, pipelines/protocol.conf).
# Hyperparameters live in EXP/config.mk (copied from CONFIG on the first
# run); each step depends on the settings it uses, so editing one reruns
# that step and those after it. Intermediates are kept; a failed step leaves
# no half-written file.

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
.DEFAULT_GOAL := all
EXP ?= exp/default
CONFIG ?= $(TOP)/pipelines/experiment.conf

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
# The byte baseline beside it (realism-eval --features bytes): the first
# BYTES_PER_PACKET bytes of the first BYTES_PACKETS packets of each flow.
BYTES_PACKETS ?= 8
BYTES_PER_PACKET ?= 96
# A test corpus of its own: TEST_CAPTURES names directories (or captures),
# TEST_FLOW_TABLE a table of their flows for pcap2flow --labels, read with
# LABEL_COLUMN and LABEL_FILTER as FLOW_TABLE is; empty: pipelines/label-ndpi
# labels them, writing nDPI's names as FLOW_TABLE spells them. Then the split
# is bypassed: CAPTURES give the classifier's training and validation flows
# (SPLIT's first two shares), TEST_CAPTURES every test flow (the same
# selection, but MIN_LABEL_FLOWS), and the flows of labels the classifier
# does not know are left out of the scores and counted.
TEST_CAPTURES ?=
TEST_FLOW_TABLE ?=
PRESET ?= tiny
CONTEXT ?= 2048
STEPS ?= 300
BATCH ?= 4
LR ?= 3e-3
FT_STEPS ?= 300
FT_WINDOW ?= 256
FT_LR ?= 3e-3
FT_DROPOUT ?= 0
CLF_PACKETS ?=
CLF_PACKET_BYTES ?=
PRETRAINED ?=
SPLIT ?= 80/10/10
SPLIT_GROUP ?= flow
CONDITIONAL ?= 0
GEN_N ?= 100
GEN_MAX_TOKENS ?= 4096
PROMPT_PACKETS ?= 1
TOP_K ?= 26
SEED ?= 1
JOBS ?= 2
# The report's title (empty: the name of EXP's directory).
TITLE ?=

TRAIN := tgpt-train -q -j $(JOBS) --seed $(SEED)

# Each step depends only on the settings it uses: a file per group holds
# their values and is rewritten only when they change (git's GIT-CFLAGS
# trick), so editing GEN_N reruns generation and its evaluation, not training.
CFG_DATA := $(CAPTURES) $(LABELS) $(FLOW_TABLE) $(LABEL_COLUMN) $(LABEL_FILTER) $(CONTEXT) \
	$(SPLIT) $(SPLIT_GROUP) $(SEED)
CFG_SELECT := $(LABELLED_ONLY) $(MAX_PER_SOURCE_LABEL) $(MIN_LABEL_FLOWS)
CFG_CLF_INPUT := $(CLF_PACKETS) / $(CLF_PACKET_BYTES)
CFG_BASELINE := $(BASELINE_SPLIT) $(BYTES_PACKETS) $(BYTES_PER_PACKET)
CFG_TEST := $(TEST_CAPTURES) $(TEST_FLOW_TABLE) $(LABEL_COLUMN) $(LABEL_FILTER) $(SEED)
# (CONDITIONAL = 0 adds nothing, so experiments from before it keep their models)
COND := $(filter 1,$(CONDITIONAL))
CFG_TRAIN := $(PRESET) $(CONTEXT) $(BATCH) $(LR) $(STEPS) $(SEED) $(JOBS)$(if $(COND), conditional)
CFG_FT := $(FT_STEPS) $(FT_WINDOW) $(FT_LR) $(FT_DROPOUT) $(PRETRAINED) $(SEED) $(JOBS)
CFG_GEN := $(GEN_N) $(GEN_MAX_TOKENS) $(TOP_K) $(PROMPT_PACKETS) $(SEED)$(if $(COND), conditional)
$(eval $(call cfg_rule,$(EXP)/cfg/data,$(CFG_DATA)))
$(eval $(call cfg_rule,$(EXP)/cfg/select,$(CFG_SELECT)))
$(eval $(call cfg_rule,$(EXP)/cfg/clf-input,$(CFG_CLF_INPUT)))
$(eval $(call cfg_rule,$(EXP)/cfg/baseline,$(CFG_BASELINE)))
$(eval $(call cfg_rule,$(EXP)/cfg/train,$(CFG_TRAIN)))
$(eval $(call cfg_rule,$(EXP)/cfg/ft,$(CFG_FT)))
$(eval $(call cfg_rule,$(EXP)/cfg/gen,$(CFG_GEN)))
$(eval $(call cfg_rule,$(EXP)/cfg/test,$(CFG_TEST)))

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
CROSS := $(if $(strip $(TEST_CAPTURES)),1)
ifeq ($(CROSS)$(BASELINE_SPLIT),1own)
$(error TEST_CAPTURES needs BASELINE_SPLIT = shards: the baselines classify the classifier's test flows)
endif

# ---------------------------------------------------------------- data
# Unmasked tokens train the generator; masked ones (no MAC, IP or port to
# cheat with, as in the paper) train the classifier. Labels come from LABELS
# (per capture) and FLOW_TABLE (per flow; its flows override LABELS). A
# damaged capture keeps its flows before the damage (EXP/damaged.txt); what
# the tools say (pcap2flow's label summary) goes to EXP/tok.log, tokm.log.
# preprocess LABELS,TABLE: the command for captures labelled so
preprocess = $(TOP)/pipelines/preprocess -q -j $(JOBS) --no-shards --allow-damaged \
	$(if $(1),--labels $(1)) \
	$(if $(2),--flow-labels $(2) --flow-args '$(if $(LABEL_COLUMN),--label-column $(LABEL_COLUMN)) \
	$(foreach f,$(LABEL_FILTER),--label-filter $(f))')
PREPROCESS := $(call preprocess,$(LABELS),$(FLOW_TABLE))
# The classifier's input (masked): the first CLF_PACKETS packets of a flow,
# the first CLF_PACKET_BYTES bytes of each (empty: all), then the first
# FT_WINDOW tokens of that.
CLF_INPUT := $(if $(CLF_PACKETS),--first-packets $(CLF_PACKETS)) \
	$(if $(CLF_PACKET_BYTES),--first-bytes $(CLF_PACKET_BYTES))
# log_to FILE: a command's stderr into FILE, its tail on the terminal if it fails
log_to = 2> $(1) || { tail -20 $(1) >&2; exit 1; }
$(EXP)/tok/.done: $(EXP)/cfg/data $(LABELS) $(FLOW_TABLE)
	$(PREPROCESS) $(CAPTURES) $(EXP)/tok-run $(call log_to,$(EXP)/tok.log)
	if [ -f $(EXP)/tok-run/damaged.txt ]; then mv $(EXP)/tok-run/damaged.txt $(EXP)/damaged.txt; fi
	rm -rf $(@D) && mv $(EXP)/tok-run/tok $(@D) && rm -rf $(EXP)/tok-run && touch $@

# The baseline on the shards reads the flow streams the masked token files
# were made from (same sources and ids): EXP/flows.
$(EXP)/tokm/.done: $(EXP)/cfg/data $(EXP)/cfg/baseline $(EXP)/cfg/clf-input $(LABELS) $(FLOW_TABLE)
	$(PREPROCESS) --mask mac,ip,port $(CLF_INPUT) $(if $(filter shards,$(BASELINE_SPLIT)),--keep-flows) \
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
# (the test corpus's shard: the same but MIN_LABEL_FLOWS)
CLF_SELECT_TEST := $(if $(filter yes,$(LABELLED_ONLY)),--labelled-only) \
	$(if $(MAX_PER_SOURCE_LABEL),--max-flows-per-source-label $(MAX_PER_SOURCE_LABEL))
CLF_SELECT := $(CLF_SELECT_TEST) $(if $(MIN_LABEL_FLOWS),--min-label-flows $(MIN_LABEL_FLOWS))
# With a test corpus, SPLIT's test share is not used (0).
CLF_SPLIT := $(if $(CROSS),$(word 1,$(subst /, ,$(SPLIT)))/$(word 2,$(subst /, ,$(SPLIT)))/0,$(SPLIT))
$(EXP)/shards-clf/.done: $(EXP)/tokm/.done $(EXP)/cfg/select
	find $(EXP)/tokm -name '*.tok' | sort | xargs cat | \
	  tokshard -o $(@D) --context $(CONTEXT) --split $(CLF_SPLIT) --group $(SPLIT_GROUP) --seed $(SEED) \
	    $(CLF_SELECT) - $(call log_to,$(EXP)/shards-clf.log)
	touch $@

# ---------------------------------------------------------------- test corpus
# TEST_CAPTURES as one folder of links (their names must differ), labelled
# and preprocessed as the training captures are (masked, flows kept); its
# shard holds every selected flow as test. The damaged captures are listed in
# EXP/test-damaged.txt, label-ndpi's summary is in EXP/test-label.log.
ifneq ($(CROSS),)
TEST_TABLE := $(or $(TEST_FLOW_TABLE),$(EXP)/test-flow-labels.tsv)
$(EXP)/test-captures/.done: $(EXP)/cfg/test
	rm -rf $(@D) && mkdir -p $(@D)
	for c in $(abspath $(TEST_CAPTURES)); do \
	  [ -e "$$c" ] || { echo "TEST_CAPTURES: $$c: no such file or directory" >&2; exit 1; }; \
	  [ ! -e "$(@D)/$${c##*/}" ] || { echo "TEST_CAPTURES: two named $${c##*/}" >&2; exit 1; }; \
	  ln -s "$$c" "$(@D)/$${c##*/}"; done
	touch $@

$(EXP)/test-flow-labels.tsv: $(EXP)/test-captures/.done $(FLOW_TABLE)
	$(TOP)/pipelines/label-ndpi -j $(JOBS) --allow-damaged $(if $(FLOW_TABLE),--spell-as $(FLOW_TABLE)) \
	  -o $@ $(EXP)/test-captures $(call log_to,$(EXP)/test-label.log)

$(EXP)/tokm-test/.done: $(EXP)/test-captures/.done $(TEST_TABLE) $(EXP)/cfg/data $(EXP)/cfg/clf-input
	rm -rf $(EXP)/tokm-test-run
	$(call preprocess,,$(TEST_TABLE)) --mask mac,ip,port $(CLF_INPUT) --keep-flows \
	  $(EXP)/test-captures $(EXP)/tokm-test-run $(call log_to,$(EXP)/tokm-test.log)
	rm -rf $(@D) $(EXP)/flows-test $(EXP)/test-damaged.txt
	mv $(EXP)/tokm-test-run/tok $(@D) && mv $(EXP)/tokm-test-run/flows $(EXP)/flows-test
	if [ -f $(EXP)/tokm-test-run/damaged.txt ]; then mv $(EXP)/tokm-test-run/damaged.txt $(EXP)/test-damaged.txt; fi
	rm -rf $(EXP)/tokm-test-run && touch $@

$(EXP)/shards-test/.done: $(EXP)/tokm-test/.done $(EXP)/cfg/select
	find $(EXP)/tokm-test -name '*.tok' | sort | xargs cat | \
	  tokshard -o $(@D) --context $(CONTEXT) --split 0/0/1 --group source --seed $(SEED) \
	    $(CLF_SELECT_TEST) - $(call log_to,$(EXP)/shards-test.log)
	touch $@

# The baselines' split: the classifier's train and val flows, and the test
# corpus's flows of the labels it was trained on.
$(EXP)/baseline-split.tsv: $(EXP)/shards-clf/.done $(EXP)/shards-test/.done
	awk -F'\t' '/^#/ { if (FNR == NR) print; next } FNR == NR { if ($$1 == "train") known[$$4] = 1; print; next } \
	  $$1 == "test" && ($$4 in known)' $(EXP)/shards-clf/split.tsv $(EXP)/shards-test/split.tsv > $@.tmp
	mv $@.tmp $@
endif

# ---------------------------------------------------------------- models
# MODEL, what fine-tuning and generation start from: PRETRAINED (a
# pre-trained model such as models/tgpt-small.ckpt, of its own preset and
# context), or when it is empty one pre-trained here on the experiment's own
# flows (PRESET, CONTEXT, STEPS, LR).
MODEL := $(or $(PRETRAINED),$(EXP)/model.ckpt)
ifneq ($(PRETRAINED),)
ifeq ($(wildcard $(PRETRAINED)),)
$(error PRETRAINED = $(PRETRAINED): no such file (empty: pre-train here))
endif
endif
$(EXP)/model.ckpt: $(EXP)/shards/.done $(EXP)/cfg/train
	$(TRAIN) --preset $(PRESET) --context $(CONTEXT) --batch $(BATCH) --lr $(LR) \
	  --steps $(STEPS) $(if $(COND),--conditional )--metrics $(EXP)/pretrain.tsv -o $@ $(EXP)/shards

# The classifier, and the ablation of pre-training: the same fine-tuning
# (data, steps, schedule, seed) from random parameters of MODEL's shape.
FINETUNE = $(TRAIN) --finetune $(MODEL) --labels --ft-window $(FT_WINDOW) --lr $(FT_LR) \
	  --steps $(FT_STEPS) $(if $(filter-out 0,$(FT_DROPOUT)),--dropout $(FT_DROPOUT))
$(EXP)/clf.ckpt: $(MODEL) $(EXP)/shards-clf/.done $(EXP)/cfg/ft
	$(FINETUNE) --metrics $(EXP)/finetune.tsv -o $@ $(EXP)/shards-clf
$(EXP)/clf-scratch.ckpt: $(MODEL) $(EXP)/shards-clf/.done $(EXP)/cfg/ft
	$(FINETUNE) --random-init --metrics $(EXP)/finetune-scratch.tsv -o $@ $(EXP)/shards-clf

# ---------------------------------------------------------------- classification
CLF_TEST := $(EXP)/$(if $(CROSS),shards-test,shards-clf)
$(EXP)/classify.json: $(EXP)/clf.ckpt $(CLF_TEST)/.done
	tgpt-infer classify -q -j $(JOBS) --json --report $@ $< $(CLF_TEST)/test.shard > $(EXP)/pred.mp
$(EXP)/classify-scratch.json: $(EXP)/clf-scratch.ckpt $(CLF_TEST)/.done
	tgpt-infer classify -q -j $(JOBS) --json --report $@ $< $(CLF_TEST)/test.shard > $(EXP)/pred-scratch.mp

# Two baselines: the flow statistics (baseline.json) and the first bytes
# (baseline-bytes.json, nPrint-style), on the same flows and split.
BYTES_ARGS := --features bytes --first-packets $(BYTES_PACKETS) --first-bytes $(BYTES_PER_PACKET)
ifeq ($(BASELINE_SPLIT),shards)
BASELINE_SPLIT_FILE := $(if $(CROSS),$(EXP)/baseline-split.tsv,$(EXP)/shards-clf/split.tsv)
BASELINE_FLOWS := $(EXP)/flows $(if $(CROSS),$(EXP)/flows-test)
$(EXP)/baseline.json $(EXP)/baseline-bytes.json: $(EXP)/shards-clf/.done $(if $(CROSS),$(BASELINE_SPLIT_FILE)) \
		$(EXP)/cfg/baseline
	find $(BASELINE_FLOWS) -name '*.flows' | sort | xargs cat | \
	  realism-eval --baseline -q --json --seed $(SEED) $(if $(filter %-bytes.json,$@),$(BYTES_ARGS)) \
	  --split-file $(BASELINE_SPLIT_FILE) - > $@ $(call log_to,$(basename $@).log)
else
$(EXP)/baseline.json $(EXP)/baseline-bytes.json: $(EXP)/cfg/data $(EXP)/cfg/baseline $(LABELS)
	realism-eval --baseline -q --json --split time --seed $(SEED) $(if $(filter %-bytes.json,$@),$(BYTES_ARGS)) \
	  -L $(LABELS) > $@
endif

# nDPI's agreement with itself across versions, when both sides' labels are
# nDPI's: the training captures labelled by this machine's nDPI (label-ndpi)
# against FLOW_TABLE.
NDPI_AGREEMENT := $(if $(and $(CROSS),$(FLOW_TABLE),$(if $(TEST_FLOW_TABLE),,1)),$(EXP)/ndpi-agreement.txt)
$(EXP)/ndpi-agreement.txt: $(FLOW_TABLE) | $(EXP)/.dir
	$(TOP)/pipelines/label-ndpi -q -j $(JOBS) --allow-damaged -o $(EXP)/train-ndpi-here.tsv $(CAPTURES)
	$(TOP)/pipelines/ndpi-agreement $(FLOW_TABLE) $(EXP)/train-ndpi-here.tsv > $@.tmp
	( $(TOP)/pipelines/label-ndpi --version | tail -1; cat $@.tmp ) > $@ && rm -f $@.tmp

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
$(EXP)/gen$(1).tok: $(MODEL) $(EXP)/prompts.tok $(EXP)/cfg/gen
ifeq ($(COND),1)
	tgpt-train --info $(MODEL) | sed -n 's/^label [0-9]* [0-9,]* [0-9]* //p' | grep . > $(EXP)/gen$(1)-labels.txt
	n=$$$$(wc -l < $(EXP)/gen$(1)-labels.txt); i=0; : > $(EXP)/gen$(1).log; : > $$@.tmp; \
	while IFS= read -r label; do \
	  k=$$$$(( $(GEN_N) / n + (i < $(GEN_N) % n ? 1 : 0) )); i=$$$$((i + 1)); \
	  [ "$$$$k" -gt 0 ] || continue; \
	  $(GENERATE) $(2) -n $$$$k --label "$$$$label" $(MODEL) >> $$@.tmp 2>> $(EXP)/gen$(1).log \
	    || case $$$$? in $(3)) ;; *) tail -5 $(EXP)/gen$(1).log >&2; exit 1;; esac; \
	done < $(EXP)/gen$(1)-labels.txt; \
	mv $$@.tmp $$@
else
	$(GENERATE) $(2) -n $(GEN_N) $(MODEL) > $$@.tmp 2> $(EXP)/gen$(1).log \
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
	realism-eval -q --json --seed $(SEED) --tokens $(EXP)/gen.tok $(EXP)/real.pcap $(EXP)/gen.pcap > $@

# The raw side's evaluations; when raw generation made too little to
# evaluate, a JSON object that says why.
$(EXP)/jsdiv-raw.json: $(EXP)/real.pcap $(EXP)/gen-raw.pcap
	jsdiv -q --json $^ > $@.tmp 2> $@.log || jq -n --rawfile e $@.log '{error: $$e}' > $@.tmp
	mv $@.tmp $@

$(EXP)/realism-raw.json: $(EXP)/real.pcap $(EXP)/gen-raw.pcap $(EXP)/gen-raw.tok
	realism-eval -q --json --seed $(SEED) --tokens $(EXP)/gen-raw.tok $(EXP)/real.pcap \
	  $(EXP)/gen-raw.pcap > $@.tmp 2> $@.log || jq -n --rawfile e $@.log '{error: $$e}' > $@.tmp
	mv $@.tmp $@

# tshark's verdict on each generated capture (when tshark is installed):
# malformed packets and error expert infos, with the protocols they are in.
$(EXP)/tshark.json: $(EXP)/gen.pcap $(TOP)/pipelines/tshark-check
	$(TOP)/pipelines/tshark-check $< > $@
$(EXP)/tshark-raw.json: $(EXP)/gen-raw.pcap $(TOP)/pipelines/tshark-check
	$(TOP)/pipelines/tshark-check $< > $@

# ---------------------------------------------------------------- report
CLF_REPORTS := $(EXP)/classify.json $(EXP)/classify-scratch.json $(EXP)/baseline.json $(EXP)/baseline-bytes.json $(NDPI_AGREEMENT)
$(EXP)/report.md: $(CLF_REPORTS) $(EXP)/jsdiv.json $(EXP)/realism.json \
		$(EXP)/jsdiv-raw.json $(EXP)/realism-raw.json $(EXP)/tshark.json $(EXP)/tshark-raw.json \
		$(TOP)/pipelines/report.sh
	TITLE='$(TITLE)' PRETRAINED='$(PRETRAINED)' $(TOP)/pipelines/report.sh $(EXP) > $@

$(EXP)/classification.md: $(CLF_REPORTS) $(TOP)/pipelines/report.sh
	TITLE='$(TITLE)' PRETRAINED='$(PRETRAINED)' $(TOP)/pipelines/report.sh --classification $(EXP) > $@

clean-model:
	rm -f $(EXP)/model.ckpt $(EXP)/clf.ckpt $(EXP)/clf-scratch.ckpt
