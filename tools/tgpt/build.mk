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

# The inference side (tgpt-infer links it after TGPT_MODEL_OBJ): the model
# one token at a time, and sampling with packet checks (common/packet.h, so
# $(COMMON_LIB) after it).
TGPT_INFER_OBJ := $(B)/tools/tgpt/recurrent.o $(B)/tools/tgpt/generate.o $(B)/tools/tgpt/grammar.o
$(TGPT_INFER_OBJ): ALL_CFLAGS += $(TGPT_OPT) $(TGPT_OMP)
$(B)/tests/t-recurrent.t $(B)/tests/t-generate.t: $(TGPT_INFER_OBJ) $(TGPT_MODEL_OBJ)
LIBS_t-recurrent := $(COMMON_LIB) $(TGPT_LIBS)
LIBS_t-generate := $(COMMON_LIB) $(TGPT_LIBS)
# The grammar's tests judge flows with realism-eval's coherence check and
# regroup them with pcap2flow's flow table.
$(B)/tests/t-grammar.t: $(TGPT_INFER_OBJ) $(TGPT_MODEL_OBJ) $(EVAL_OBJ) \
		$(B)/tools/pcap2flow/flowtable.o $(B)/tools/pcap2flow/labels.o
LIBS_t-grammar := $(COMMON_LIB) $(TGPT_LIBS) $(MSGPACK_LIBS)
# Generation tokens/s (not part of `all`): make build/bench/gen-step
$(B)/bench/gen-step: $(B)/bench/gen-step.o $(TGPT_INFER_OBJ) $(TGPT_MODEL_OBJ) $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TGPT_LIBS) $(MSGPACK_LIBS)

# The timing driver (not part of `all`): make build/bench/model-step
$(B)/bench/model-step: $(B)/bench/model-step.o $(TGPT_MODEL_OBJ) $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TGPT_LIBS) $(MSGPACK_LIBS)

# Classification with a fine-tuned model (classify.h): the input layout and
# label probabilities that tgpt-train's validation and tgpt-infer share.
# It needs ckpt.o and TGPT_MODEL_OBJ after it.
TGPT_CLASSIFY_OBJ := $(B)/tools/tgpt/classify.o
$(B)/tests/t-classify.t: $(TGPT_CLASSIFY_OBJ) $(B)/tools/tgpt/ckpt.o $(TGPT_MODEL_OBJ)
LIBS_t-classify := $(COMMON_LIB) $(TGPT_LIBS) $(MSGPACK_LIBS)

# Class-conditional generation (conditional.h): the label map and training
# sequences of tgpt-train --conditional, read by tgpt-infer generate --label.
# It needs TGPT_CLASSIFY_OBJ (the label tokens), shard.o and ckpt.o after it.
TGPT_COND_OBJ := $(B)/tools/tgpt/conditional.o
$(B)/tests/t-conditional.t: $(TGPT_COND_OBJ) $(TGPT_CLASSIFY_OBJ) $(B)/tools/tgpt/ckpt.o \
		$(B)/tools/tgpt/shard.o $(TGPT_MODEL_OBJ)
LIBS_t-conditional := $(COMMON_LIB) $(TGPT_LIBS) $(MSGPACK_LIBS)

# tgpt-train: the trainer; ckpt.o (tgpt-ckpt(5)) is shared with tgpt-infer.
# dist.o makes it one process; the same objects with $(B)/mpi/.../dist.o
# (compiled and linked by $(MPICC), -DTGPT_MPI) are $(B)/mpi/tgpt-train, the
# data-parallel trainer over MPI ranks. `make check` builds that one too when
# $(MPICC) exists (tests/cli/tgpt-train-mpi.t); `make MPI=1` installs it as
# $(BIN)/tgpt-train. A compiler other than the wrapper's: OMPI_CC=clang.
TOOLS += tgpt-train
MPICC ?= mpicc
TGPT_TRAIN_OBJ := $(B)/tools/tgpt/train.o $(TGPT_COND_OBJ) $(TGPT_CLASSIFY_OBJ) $(B)/tools/tgpt/ckpt.o \
	$(B)/tools/tgpt/shard.o $(TGPT_MODEL_OBJ)
$(B)/mpi/tools/tgpt/dist.o: tools/tgpt/dist.c $(B)/FLAGS
	@mkdir -p $(@D)
	$(MPICC) $(ALL_CFLAGS) -DTGPT_MPI -MMD -MP -MF $(@:.o=.d) -MQ $@ -c -o $@ $<
$(B)/mpi/tgpt-train: $(TGPT_TRAIN_OBJ) $(B)/mpi/tools/tgpt/dist.o $(COMMON_LIB)
	$(MPICC) $(ALL_LDFLAGS) -o $@ $^ $(TGPT_LIBS) $(MSGPACK_LIBS)
# Which of the two $(BIN)/tgpt-train is, rewritten when MPI= changes (so
# that switching relinks it, as build/FLAGS does for the objects).
$(B)/tgpt-train.mpi: FORCE
	@mkdir -p $(B)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(MPI)' ]; then echo '$(MPI)' > $@; fi
ifeq ($(MPI),1)
ifeq ($(shell command -v $(firstword $(MPICC))),)
$(error MPI=1: no $(firstword $(MPICC)) on PATH (make deps installs Open MPI, libopenmpi-dev))
endif
$(BIN)/tgpt-train: $(B)/mpi/tgpt-train $(B)/tgpt-train.mpi
	@mkdir -p $(BIN)
	cp $< $@
else
$(BIN)/tgpt-train: $(TGPT_TRAIN_OBJ) $(B)/tools/tgpt/dist.o $(COMMON_LIB) $(B)/tgpt-train.mpi
	@mkdir -p $(BIN)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter-out %.mpi,$^) $(TGPT_LIBS) $(MSGPACK_LIBS)
endif
ifneq ($(shell command -v $(firstword $(MPICC))),)
check bench: $(B)/mpi/tgpt-train
endif

# The checkpoint round trip links the writer, the reader and the model.
$(B)/tests/t-ckpt.t: $(B)/tools/tgpt/ckpt.o $(TGPT_MODEL_OBJ)
LIBS_t-ckpt := $(COMMON_LIB) $(TGPT_LIBS) $(MSGPACK_LIBS)

# BLIS's own sgemm rate, the ceiling bench/train.sh compares the trainer's
# achieved GFLOP/s with (built by `make bench`): make build/bench/sgemm-rate
$(B)/bench/sgemm-rate: $(B)/bench/sgemm-rate.o $(COMMON_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TGPT_LIBS) $(MSGPACK_LIBS)

# tgpt-infer: classification with a fine-tuned model and generation with the
# recurrent one (tgpt-infer(1)).
TOOLS += tgpt-infer
$(BIN)/tgpt-infer: $(B)/tools/tgpt/infer.o $(TGPT_COND_OBJ) $(TGPT_CLASSIFY_OBJ) $(B)/tools/tgpt/ckpt.o \
		$(B)/tools/tgpt/shard.o $(TGPT_INFER_OBJ) $(TGPT_MODEL_OBJ) $(COMMON_LIB)
	@mkdir -p $(BIN)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TGPT_LIBS) $(MSGPACK_LIBS)
