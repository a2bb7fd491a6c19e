# pretrain.mk: the pre-training of the model tgpt ships (make pretrained):
# the whole corpus to shards, then one long, resumable tgpt-train run.
#
#   make -f pipelines/pretrain.mk [OUT=exp/pretrained] [CORPUS=DIR] [VAR=value ...] [target]
#
# Targets: shards (the data alone), model (the default: data, then training),
# info (what the data and the run are), release (the finished model without
# its optimizer state as RELEASE, models/tgpt-small.ckpt, its loss curve
# beside it as a plot, and its sha256). Interrupting make (SIGINT, SIGTERM)
# leaves OUT/run.ckpt at its last step; make again resumes from it, with the
# same bits as an uninterrupted run (a changed setting or shard refuses to
# resume rather than start the hours over). A finished run is copied to
# OUT/model.ckpt. The recipe and the short runs it was chosen from:
# docs/pretraining.md.
#
# captures -> pcap2flow --all | flow2tok (pipelines/preprocess, GNU Parallel)
#   -> tokshard: flows deduplicated, cut to FLOW_CAP tokens at a packet
#      boundary, at most PER_CAPTURE flows of one capture, validation split
#      by capture -> tgpt-train

include $(dir $(lastword $(MAKEFILE_LIST)))common.mk
.DEFAULT_GOAL := model
OUT ?= exp/pretrained
CORPUS ?= $(abspath $(TOP)/../shared/data)

# ---------------------------------------------------------------- the recipe
# The data. Sources: nDPI's test captures, every folder of the unlabelled
# pool but those in POOL_EXCLUDE (chrissanders-packets has no licence), and
# the examples. FLOW_CAP: tokens kept of a flow's head (tokshard --context;
# the tails of long bulk flows are left out); PER_CAPTURE: flows kept of one
# capture (a seeded draw), so no capture dominates.
POOL_EXCLUDE ?= chrissanders-packets
POOL ?= $(filter-out $(POOL_EXCLUDE),$(notdir $(wildcard $(CORPUS)/unlabeled_pool/*)))
SOURCES ?= ndpi=$(CORPUS)/labeled/ndpi/pcap \
	$(foreach s,$(POOL),$(s)=$(CORPUS)/unlabeled_pool/$(s)) examples=$(TOP)/examples/data
FLOW_CAP ?= 1024
PER_CAPTURE ?= 300
SPLIT ?= 95/5/0
SEED ?= 1
JOBS ?= 1
# The run: the small preset on sequences of CONTEXT tokens (whole flows
# packed one after the other), BATCH x ACCUM sequences a step: STEPS x
# BATCH x ACCUM x CONTEXT tokens in all. The shipped model's run (the
# defaults, JOBS = 1): 1,200 steps, 4.9 M tokens, about one pass over the
# training tokens, about 55 minutes on one thread of a busy 2-core machine
# (models/README.md). The recipe's long run, 16,000 steps (65.5 M tokens,
# about 10 passes), takes about 5.2 h on 2 quiet cores (3,500 tokens/s;
# docs/pretraining.md has the short runs that chose these values).
PRESET ?= small
CONTEXT ?= 1024
BATCH ?= 4
ACCUM ?= 1
STEPS ?= 1200
LR ?= 1e-3
MIN_LR ?= 1e-4
WARMUP ?= 150
DROPOUT ?= 0.1
CKPT_EVERY ?= 250
EVAL_EVERY ?= 300

# Each step depends only on the settings it uses (common.mk's cfg_rule).
CFG_DATA := $(SOURCES) $(FLOW_CAP) $(PER_CAPTURE) $(SPLIT) $(SEED)
CFG_TRAIN := $(PRESET) $(CONTEXT) $(BATCH) $(ACCUM) $(STEPS) $(LR) $(MIN_LR) $(WARMUP) \
	$(DROPOUT) $(SEED)
$(eval $(call cfg_rule,$(OUT)/cfg/data,$(CFG_DATA)))
$(eval $(call cfg_rule,$(OUT)/cfg/train,$(CFG_TRAIN)))
.PHONY: model shards info release
model: $(OUT)/model.ckpt
shards: $(OUT)/shards/.done

# ---------------------------------------------------------------- captures
# OUT/captures/NAME links to each source; captures kept gzipped (some of
# wireshark's) are unpacked beside them into OUT/captures/NAME.gunzip.
# captures.tsv lists them all for preprocess, without labels ('-').
$(OUT)/captures.tsv: $(OUT)/cfg/data
	rm -rf $(OUT)/captures && mkdir -p $(OUT)/captures
	for s in $(SOURCES); do name=$${s%%=*} dir=$${s#*=}; \
	  [ -d "$$dir" ] || { echo "pretrain.mk: $$dir: no such source (CORPUS=$(CORPUS))" >&2; exit 66; }; \
	  ln -s "$$dir" $(OUT)/captures/$$name; \
	  (cd "$$dir" && find -L . -type f \( -name '*.pcap.gz' -o -name '*.pcapng.gz' -o -name '*.cap.gz' \)) | \
	  while IFS= read -r f; do out=$(OUT)/captures/$$name.gunzip/$${f%.gz}; \
	    mkdir -p "$$(dirname "$$out")" && zcat "$$dir/$$f" > "$$out"; done; \
	done
	(cd $(OUT)/captures && find -L . -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.cap' \)) | \
	  sed 's|^\./||' | LC_ALL=C sort | awk '{ print $$0 "\t-" }' > $@.tmp && mv $@.tmp $@

# Every packet (--all: ICMP, ARP and the rest as well as TCP and UDP), no
# masking: the model generates real traffic. A damaged capture keeps its
# flows before the damage (OUT/damaged.txt).
$(OUT)/tok/.done: $(OUT)/captures.tsv
	rm -rf $(OUT)/tok-run
	$(TOP)/pipelines/preprocess -q -j $(JOBS) --no-shards --allow-damaged --flow-args --all \
	  --labels $(OUT)/captures.tsv $(OUT)/captures $(OUT)/tok-run 2> $(OUT)/tok.log || \
	  { tail -20 $(OUT)/tok.log >&2; exit 1; }
	if [ -f $(OUT)/tok-run/damaged.txt ]; then mv $(OUT)/tok-run/damaged.txt $(OUT)/damaged.txt; fi
	rm -rf $(@D) && mv $(OUT)/tok-run/tok $(@D) && rm -rf $(OUT)/tok-run && touch $@

# tokshard's counts (flows read, duplicates, flows over the cap, tokens
# stored) are kept in shards.log.
$(OUT)/shards/.done: $(OUT)/tok/.done
	rm -rf $(@D)
	find $(OUT)/tok -name '*.tok' | LC_ALL=C sort | xargs cat | \
	  tokshard -o $(@D) --context $(FLOW_CAP) --dedup --max-flows-per-source-label $(PER_CAPTURE) \
	    --group source --split $(SPLIT) --seed $(SEED) - 2> $(OUT)/shards.log
	touch $@

# ---------------------------------------------------------------- training
# OUT/run.ckpt is the run as it goes (every CKPT_EVERY steps; OUT/run.cfg
# the settings it began with); when it holds the last step it is copied to
# OUT/model.ckpt. Validation: the whole of
# val.shard (captures the training never sees) every EVAL_EVERY steps, into
# the metrics (OUT/pretrain.tsv, column val_loss).
TRAIN_ARGS := -j $(JOBS) --preset $(PRESET) --context $(CONTEXT) --batch $(BATCH) --accum $(ACCUM) \
	--steps $(STEPS) --lr $(LR) --min-lr $(MIN_LR) --warmup $(WARMUP) --dropout $(DROPOUT) \
	--seed $(SEED) --ckpt-every $(CKPT_EVERY) --eval-every $(EVAL_EVERY) --eval-batches 1000000
step_of = $$(tgpt-train --info $(1) | awk '$$1 == "$(2)" { print $$2; exit }')
$(OUT)/model.ckpt: $(OUT)/shards/.done $(OUT)/cfg/train
	if [ ! -f $(OUT)/run.ckpt ]; then \
	  rm -f $(OUT)/pretrain.tsv; cp $(OUT)/cfg/train $(OUT)/run.cfg; \
	  tgpt-train $(TRAIN_ARGS) --metrics $(OUT)/pretrain.tsv -o $(OUT)/run.ckpt $(OUT)/shards; \
	elif cmp -s $(OUT)/run.cfg $(OUT)/cfg/train && [ $(OUT)/run.ckpt -nt $(OUT)/shards/.done ]; then \
	  tgpt-train --resume $(OUT)/run.ckpt -j $(JOBS) --metrics $(OUT)/pretrain.tsv $(OUT)/shards; \
	else \
	  echo "pretrain.mk: the settings or the shards changed since $(OUT)/run.ckpt began:" \
	    "remove it to start over (hours of training), or restore them to resume it" >&2; exit 1; \
	fi
	[ "$(call step_of,$(OUT)/run.ckpt,step)" = "$(call step_of,$(OUT)/run.ckpt,steps)" ] || \
	  { echo "pretrain.mk: $(OUT)/run.ckpt stopped before its last step: make again resumes it" >&2; exit 1; }
	cp $(OUT)/run.ckpt $@.tmp && mv $@.tmp $@

info: $(OUT)/shards/.done
	@grep -v '^tokshard: [0-9]* flows\? longer' $(OUT)/shards.log | grep -E '^(train|val) +\(all\)|tokshard:'
	@echo "run: tgpt-train $(TRAIN_ARGS) --metrics $(OUT)/pretrain.tsv -o $(OUT)/run.ckpt $(OUT)/shards"
	@echo "tokens: $$(( $(STEPS) * $(BATCH) * $(ACCUM) * $(CONTEXT) ))"

# ---------------------------------------------------------------- release
# The finished model as tgpt ships it: parameters only (tgpt-train --export),
# the loss curve (training loss, its mean over 50 steps, validation loss) as
# a plot beside it, and the sha256 models/README.md quotes.
RELEASE ?= $(TOP)/models/tgpt-small.ckpt
release: $(RELEASE) $(basename $(RELEASE))-loss.png
	@sha256sum $(RELEASE)
$(RELEASE): $(OUT)/model.ckpt
	tgpt-train --export $< -o $@
$(basename $(RELEASE))-loss.png: $(OUT)/model.ckpt
	awk -F'\t' 'NR > 1 { i = n % 50; if (n >= 50) s -= l[i]; l[i] = $$2; s += $$2; n++; \
	  print $$1, $$2, s / (n < 50 ? n : 50), ($$6 == "" ? "NaN" : $$6) }' $(OUT)/pretrain.tsv > $(OUT)/loss.dat
	gnuplot -e "set terminal pngcairo size 800,480; set output '$@.tmp'; \
	  set xlabel 'step (4 x 1,024 tokens)'; set ylabel 'loss (nats per token)'; set key top right; \
	  set datafile missing 'NaN'; \
	  plot '$(OUT)/loss.dat' using 1:2 with lines lc rgb '#c0c0c0' title 'training', \
	  '' using 1:3 with lines lw 2 lc rgb '#1f77b4' title 'training, mean of 50 steps', \
	  '' using 1:4 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'validation (captures never trained on)'"
	mv $@.tmp $@
