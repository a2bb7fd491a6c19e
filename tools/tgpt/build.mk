# tools/tgpt/build.mk: the model core shared by tgpt-train and tgpt-infer
# (included by the GNUmakefile). TGPT_MODEL_OBJ is what those binaries and
# the model's unit tests link, together with $(TGPT_LIBS) (BLIS, OpenMP).
TGPT_MODEL_SRC := tools/tgpt/model.c tools/tgpt/layers.c tools/tgpt/attention.c
TGPT_MODEL_OBJ := $(TGPT_MODEL_SRC:%.c=$(B)/%.o)
# The elementwise loops (exp, GELU, softmax) vectorize only at -O3 and with
# -fno-trapping-math (which lets GCC turn their selects into blends; it
# changes no result); no contraction into FMA, so every machine computes
# the same bits. Override with TGPT_OPT= for a debug build. OpenMP runs the
# elementwise loops and the attention heads in parallel (deterministically:
# see parallel.h); TGPT_OMP= builds without it.
TGPT_OPT ?= -O3 -fno-trapping-math -ffp-contract=off
TGPT_OMP ?= -fopenmp
$(TGPT_MODEL_OBJ): ALL_CFLAGS += $(TGPT_OPT) $(TGPT_OMP)
# What a binary linking TGPT_MODEL_OBJ adds to its link line.
TGPT_LIBS := $(BLIS_LIBS) $(TGPT_OMP)

$(B)/tests/t-layers.t $(B)/tests/t-model.t: $(TGPT_MODEL_OBJ)
LIBS_t-layers := $(TGPT_LIBS)
LIBS_t-model := $(TGPT_LIBS)

# The timing driver (not part of `all`): make build/bench/model-step
$(B)/bench/model-step: $(B)/bench/model-step.o $(TGPT_MODEL_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TGPT_LIBS)
