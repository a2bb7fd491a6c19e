# common.mk: what the pipeline makefiles (experiment.mk, pretrain.mk) share:
# make's settings, TOP (the checkout) with its tools first on PATH, and
# settings files that change only when their values do. Include it first.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
export PATH := $(TOP)/bin:$(PATH)

# $(eval $(call cfg_rule,FILE,VALUES)): FILE holds VALUES and is rewritten
# only when they change (git's GIT-CFLAGS trick), so a step that depends on
# FILE reruns when one of its settings changed, and only then.
define cfg_rule
$(1): FORCE
	@mkdir -p $$(@D); v='$(2)'; [ "$$$$(cat $$@ 2>/dev/null)" = "$$$$v" ] || echo "$$$$v" > $$@
endef
.PHONY: FORCE
FORCE:
