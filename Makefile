# SPDX-License-Identifier: MIT
#
# kgpt top-level Makefile, after the kernel's Kbuild conventions:
# configuration targets (menuconfig, defconfig-NAME, ...) write .config;
# .config becomes include/generated/autoconf.h + include/config/auto.conf;
# every model object is compiled against that header, so the trainer is
# specialised for exactly one configuration. `make help` lists everything.

MAKEFLAGS += --no-builtin-rules --no-print-directory
.SUFFIXES:
SHELL := /bin/bash
.DEFAULT_GOAL := all

srctree := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ifneq ($(O),)
objtree := $(abspath $(O))
else
objtree := $(srctree)
endif
export srctree

KCONFIG_CONFIG := $(objtree)/.config
export KCONFIG_CONFIG
GEN        := $(objtree)/include/generated
AUTOCONF   := $(objtree)/include/config/auto.conf
AUTOHEADER := $(GEN)/autoconf.h
KGPTHEADER := $(GEN)/kgpt_config.h
CONFIGTEXT := $(GEN)/config_text.h
BUILD      := $(objtree)/build
CONF       := kconfig-conf
MCONF      := kconfig-mconf
NCONF      := kconfig-nconf
KCONFIG_FILES := $(shell find $(srctree) -name 'Kconfig*' -not -path '*/build/*' \
		   -not -path '*/.git/*' -not -path '*/out/*')

# A recipe's name has no dot: NAME.steps/ and NAME.cpu belong to recipe NAME.
DEFCONFIGS        := $(sort $(filter-out %.steps %.cpu,$(notdir $(wildcard $(srctree)/defconfigs/*))))
DEFAULT_DEFCONFIG := gpt2-tiny

# Offline data mirror for `make data` (tests and CI: ../shared/data).
KGPT_DATA_MIRROR ?=
export KGPT_DATA_MIRROR

# Quiet build lines, V=1 for the full commands.
ifeq ($(V),1)
Q :=
say := @:
else
Q := @
say := @printf '  %-8s %s\n'
endif

# Time budget override: make TIME=60, or GPT2_MAX_TIME=600 make.
TIME_OVERRIDE := $(or $(TIME),$(GPT2_MAX_TIME))

CC       ?= gcc
OPTFLAGS ?= -O3 -march=native
CFLAGS   := -std=gnu11 $(OPTFLAGS) -fopenmp -g -Wall -Wextra -Wno-unused-parameter \
	    -Wshadow -Wstrict-prototypes -MMD -MP $(EXTRA_CFLAGS)
CPPFLAGS := -I$(srctree)/include -I$(srctree) -D_GNU_SOURCE
# The BLAS: OpenBLAS built for OpenMP (libopenblas-openmp-dev), so that its
# gemms and kgpt's kernels share one team of threads. The pthread build
# keeps a second pool of its own threads that competes with OpenMP's for
# the cores. BLAS_LIBS="..." links another BLAS (README.md, Performance).
MULTIARCH    := $(shell $(CC) -print-multiarch 2>/dev/null)
OPENBLAS_OMP := $(patsubst %/,%,$(dir $(wildcard /usr/lib/$(MULTIARCH)/openblas-openmp/libopenblas.so)))
comma        := ,
BLAS_LIBS    ?= $(if $(OPENBLAS_OMP),-L$(OPENBLAS_OMP) -Wl$(comma)-rpath$(comma)$(OPENBLAS_OMP)) -lopenblas
BLAS_CFLAGS  ?= $(addprefix -I,$(wildcard /usr/include/$(MULTIARCH)/openblas-openmp))
CPPFLAGS += $(BLAS_CFLAGS)
LDLIBS   := $(BLAS_LIBS) -lpcre2-8 -lcjson -lcurl -lpthread -lm $(EXTRA_LDLIBS)
LDFLAGS  := -fopenmp $(EXTRA_LDFLAGS)

# OpenMP threads that wait sleep at once instead of spinning: on a machine
# shared with other work a spinning thread burns the time slice its peers
# need, and waking a sleeping one costs microseconds per parallel region.
export OMP_WAIT_POLICY ?= passive

# SAN=1: AddressSanitizer and UndefinedBehaviorSanitizer, any error fatal
# (make check-asan builds so in build/asan). SAN=fuzz: also libFuzzer's
# coverage instrumentation, with CC=clang (tests/fuzz/run.sh, build/fuzz).
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ifneq ($(SAN),)
CFLAGS   += $(SAN_FLAGS) $(if $(filter fuzz,$(SAN)),-fsanitize=fuzzer-no-link)
LDFLAGS  += $(SAN_FLAGS)
endif

# Targets that need no .config; the others read auto.conf here, before the
# Kbuild fragments, so that obj-$(CONFIG_...) lists work.
no-dot-config-targets := help clean mrproper distclean list-defconfigs menuconfig nconfig \
	oldconfig olddefconfig savedefconfig defconfig-% mergeconfig randconfig \
	alldefconfig lib tools unit-tests check check-unit check-kconfig check-model \
	check-train check-asan check-fuzz check-gpu tokenize prepare_data bench
dot-config := 1
ifneq ($(MAKECMDGOALS),)
ifeq ($(filter-out $(no-dot-config-targets),$(MAKECMDGOALS)),)
dot-config := 0
endif
endif

ifeq ($(dot-config),1)
-include $(AUTOCONF)
endif
unquote = $(subst ",,$(1))

# --------------------------------------------------------------------------
# Source lists: each directory's Kbuild fragment adds to these.
lib-y   :=
model-y :=
model64-y :=
prog-y  :=
tracker-prog-y :=
train-y :=
backend-y :=
include $(srctree)/gpt2/Kbuild $(srctree)/kernels/Kbuild $(srctree)/ra/Kbuild \
	$(srctree)/tracker/Kbuild

# CONFIG_DISTRIBUTED: compile and link with OpenMPI's flags (mpicc --showme).
MPICC ?= mpicc
ifeq ($(CONFIG_DISTRIBUTED),y)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null)
ifeq ($(MPI_LIBS),)
$(error CONFIG_DISTRIBUTED=y needs OpenMPI ($(MPICC) not found): ./scripts/install-deps.sh, \
  or apt-get install libopenmpi-dev openmpi-bin; or say n to data-parallel training \
  in make menuconfig, Training)
endif
CPPFLAGS += $(MPI_CFLAGS)
LDLIBS   += $(MPI_LIBS)
endif

# CONFIG_GPT2_AMP_DTYPE="bf16": activations are stored in bf16 (act_t,
# kernels/kernels.h), in the model's objects and the backend's alike. The
# configuration-free libraries (unit tests, the CPU backend) keep act_t =
# real; the model objects carry their own copy of what in ra/ handles
# activations (ra/Kbuild).
ACT_CPPFLAGS := $(if $(filter "bf16",$(CONFIG_GPT2_AMP_DTYPE)),-DKGPT_ACT_BF16)

# CONFIG_BACKEND_CUDA: the backend's .cu files with nvcc (from PATH, else
# /usr/local/cuda/bin; NVCC=... names another), one -gencode per entry of
# CONFIG_CUDA_ARCH, and the trainers linked against cudart and cuBLAS.
ifeq ($(CONFIG_BACKEND_CUDA),y)
NVCC ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
ifeq ($(NVCC),)
$(error CONFIG_BACKEND_CUDA=y needs the CUDA toolkit's nvcc, which is neither in PATH nor \
  in /usr/local/cuda/bin: install the CUDA toolkit or set NVCC=/path/to/nvcc; or choose the \
  CPU backend in make menuconfig, Backend)
endif
CUDA_HOME  ?= $(abspath $(dir $(NVCC))..)
CUDA_ARCHS := $(call unquote,$(CONFIG_CUDA_ARCH))
NVCC_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a:sm_%=%),code=$(a)) \
	$(foreach a,$(firstword $(CUDA_ARCHS)),-gencode arch=compute_$(a:sm_%=%),code=compute_$(a:sm_%=%))
NVCCFLAGS  := -O3 -std=c++17 -lineinfo $(NVCC_GENCODE) -Xcompiler -Wall,-Wno-unused-parameter \
	$(if $(filter y,$(CONFIG_CUDA_TF32)),-DKGPT_CUDA_TF32) \
	$(if $(filter "bf16",$(CONFIG_GPT2_AMP_DTYPE)),-DKGPT_CUDA_BF16) $(ACT_CPPFLAGS) \
	$(EXTRA_NVCCFLAGS)
CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

# What links the configured backend (trainers, model tests, fuzzers): the
# CUDA backend's programs get cudart and cuBLAS instead of the BLAS; the
# CPU backend (unit tests, float64 gradient tests) always keeps the BLAS.
ifeq ($(CONFIG_BACKEND_CUDA),y)
BACKEND_LDLIBS := $(filter-out $(BLAS_LIBS),$(LDLIBS)) $(CUDA_LIBS)
else
BACKEND_LDLIBS := $(LDLIBS)
endif

LIB_OBJS    := $(patsubst %.c,$(BUILD)/lib/%.o,$(lib-y))
LIB64_OBJS  := $(patsubst %.c,$(BUILD)/lib64/%.o,$(lib-y))
CPU_OBJS    := $(patsubst %.c,$(BUILD)/lib/%.o,$(cpu-kernels))
CPU64_OBJS  := $(patsubst %.c,$(BUILD)/lib64/%.o,$(cpu-kernels))
BACKEND_OBJS := $(patsubst %.c,$(BUILD)/lib/%.o,$(filter %.c,$(backend-y))) \
		$(patsubst %.cu,$(BUILD)/cuda/%.o,$(filter %.cu,$(backend-y)))
CUDAFLAGS   := $(BUILD)/cuda/flags
MODEL_OBJS  := $(patsubst %.c,$(BUILD)/model/%.o,$(model-y))
MODEL64_OBJS := $(patsubst %.c,$(BUILD)/model64/%.o,$(model64-y))
LIBKGPT     := $(BUILD)/lib/libkgpt.a
LIBKGPT64   := $(BUILD)/lib64/libkgpt64.a
LIBCPU      := $(BUILD)/lib/libkgpt-cpu.a
LIBCPU64    := $(BUILD)/lib64/libkgpt64-cpu.a
LIBBACKEND  := $(BUILD)/lib/libkgpt-backend.a
PROGS       := $(addprefix $(BUILD)/,$(prog-y))
TRACKER_PROGS := $(addprefix $(BUILD)/,$(tracker-prog-y))
TRAINERS    := $(addprefix $(BUILD)/,$(train-y))
UNIT_SRCS   := $(wildcard $(srctree)/tests/unit/test_*.c)
UNIT_TESTS  := $(patsubst $(srctree)/tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
MODEL_TEST_SRCS := $(wildcard $(srctree)/tests/model/test_*.c)
MODEL_TESTS := $(patsubst $(srctree)/tests/model/%.c,$(BUILD)/tests/model/%,$(MODEL_TEST_SRCS))
MODEL_TESTS64 := $(filter %_f64,$(MODEL_TESTS))
MODEL_TESTS32 := $(filter-out %_f64,$(MODEL_TESTS))
GPU_TEST_SRCS := $(wildcard $(srctree)/tests/gpu/*.c)
GPU_TESTS   := $(patsubst $(srctree)/tests/gpu/%.c,$(BUILD)/tests/gpu/%,$(GPU_TEST_SRCS))
UNIT_TESTS64 := $(filter %_f64,$(UNIT_TESTS))
UNIT_TESTS32 := $(filter-out %_f64,$(UNIT_TESTS))


# --------------------------------------------------------------------------
# The default target: build the trainer for .config, prepare data, train.
# With CONFIG_RA_MLA_ABLATION_MODE=y: the ablation matrix instead.
PHONY += all
ifeq ($(CONFIG_RA_MLA_ABLATION_MODE),y)
all: ablation
else
all: build data
	$(Q)cd $(srctree) && $(launch) $(BUILD)/train_gpt2 $(if $(filter 1,$(FRESH)),--fresh)
endif

# The ablation matrix (scripts/ablation.sh, docs/ablation.md): every step
# of CONFIG_RA_MLA_ABLATION_STEPS built in build/<recipe>/<step>/ and
# trained; then the table and plots (scripts/ablation-report.sh).
PHONY += ablation
ablation: prepare $(TRACKER_PROGS)
	$(Q)TIME=$(TIME_OVERRIDE) BASELINE='$(subst ','\'',$(BASELINE))' BASELINE_STRICT=$(BASELINE_STRICT) \
		$(srctree)/scripts/ablation.sh $(objtree)

# Continue the unfinished run in OUTPUT_DIR/latest from its last checkpoint
# (plain `make` does that too when the run has this very .config).
PHONY += resume
resume: build data
	$(Q)cd $(srctree) && $(launch) $(BUILD)/train_gpt2 --resume

# NP=N: the trainer as N ranks under OpenMPI's mpirun (CONFIG_DISTRIBUTED),
# each with OMP_NUM_THREADS = cores / N unless that is set. Ranks are not
# pinned (--bind-to none: the OpenMP threads of a rank spread over its
# cores); MPIRUN_FLAGS adds options, e.g. --hostfile FILE across machines.
NP ?=
MPIRUN ?= mpirun
MPIRUN_FLAGS ?=
ifneq ($(NP),)
ifneq ($(shell [[ '$(NP)' =~ ^[1-9][0-9]{0,3}$$ ]] && echo ok),ok)
$(error NP=$(NP): the number of ranks must be a whole number from 1 to 9999)
endif
launch = $(if $(filter y,$(CONFIG_DISTRIBUTED)),,$(error NP=$(NP) needs a trainer built \
	with CONFIG_DISTRIBUTED=y: say y to data-parallel training in make menuconfig, \
	Training, or leave NP out)) \
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$$(( $$(nproc) / $(NP) > 0 ? $$(nproc) / $(NP) : 1 ))} \
	$(MPIRUN) -np $(NP) --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY \
	$(if $(filter 0,$(shell id -u)),--allow-run-as-root) $(MPIRUN_FLAGS)
endif

# Text from the latest run's checkpoint, one token at a time through the KV
# cache (pruned with CONFIG_KV_CACHE_PRUNE): make sample PROMPT=... TOKENS=N
PROMPT ?= ROMEO:
TOKENS ?= 128
PHONY += sample
sample: $(BUILD)/generate $(VOCAB)
	$(Q)cd $(srctree) && $(BUILD)/generate --checkpoint '$(call unquote,$(CONFIG_OUTPUT_DIR))/latest' \
		--prompt '$(subst ','\'',$(PROMPT))' --tokens $(TOKENS)

PHONY += build prepare
build: $(TRAINERS) $(PROGS) $(TRACKER_PROGS)

# The generated configuration headers alone.
prepare: $(AUTOCONF) $(KGPTHEADER) $(CONFIGTEXT)

# The C files this configuration leaves out: those of the Kbuild lists
# whose Kconfig symbol is off (model-$(CONFIG_X) with X unset is model-).
PHONY += sources-off
sources-off: $(AUTOCONF)
	@printf '%s\n' $(sort $(lib-) $(model-) $(model64-))

# --------------------------------------------------------------------------
# Configuration

# A missing .config: load the default defconfig first.
$(KCONFIG_CONFIG):
	@echo "*** No .config: loading defconfigs/$(DEFAULT_DEFCONFIG) (make list-defconfigs for others)"
	$(Q)$(MAKE) -f $(srctree)/Makefile defconfig-$(DEFAULT_DEFCONFIG)

# .config -> auto.conf + autoconf.h. The .config as the user left it is
# kept as .config.request; if kconfig-conf would silently change any of
# its values, that is reported and the user's file restored.
$(AUTOCONF): $(KCONFIG_CONFIG) $(KCONFIG_FILES)
	$(say) CONF "include/config/auto.conf"
	$(Q)mkdir -p $(objtree)/include/config $(GEN)
	$(Q)cp $(KCONFIG_CONFIG) $(objtree)/.config.request
	$(Q)cd $(objtree) && $(CONF) -s --olddefconfig $(srctree)/Kconfig
	$(Q)KGPT_TIME_OVERRIDE=$(TIME_OVERRIDE) KGPT_BASELINE_OVERRIDE='$(subst ','\'',$(BASELINE))' \
		$(srctree)/scripts/kconfig-check.sh $(srctree) $(objtree)/.config.request \
		$(KCONFIG_CONFIG) || { cp $(objtree)/.config.request $(KCONFIG_CONFIG); \
		echo "*** .config has invalid values (above); it is unchanged. Fix them with make menuconfig." >&2; exit 1; }
	$(Q)cd $(objtree) && $(CONF) -s --silentoldconfig $(srctree)/Kconfig
	$(Q)rm -f $(objtree)/.config.request
	$(Q)touch $(AUTOCONF)

$(AUTOHEADER): $(AUTOCONF)
	@:

# Derived constants (floats, overrides). Rewritten only when it changes, so
# `make TIME=60` rebuilds only what reads the time budget.
$(KGPTHEADER): $(AUTOCONF) FORCE
	$(Q)KGPT_TIME_OVERRIDE=$(TIME_OVERRIDE) KGPT_BASELINE_OVERRIDE='$(subst ','\'',$(BASELINE))' \
		$(srctree)/scripts/gen-config.sh $(srctree) $(KCONFIG_CONFIG) > $@.tmp || { rm -f $@.tmp; exit 1; }
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "  GEN      include/generated/kgpt_config.h"; fi

# The .config text compiled into the trainer (--print-config, run folders).
$(CONFIGTEXT): $(AUTOCONF) $(srctree)/scripts/gen-config-text.sh
	$(say) GEN "include/generated/config_text.h"
	$(Q)$(srctree)/scripts/gen-config-text.sh $(KCONFIG_CONFIG) $(AUTOHEADER) > $@

# kconfig-conf with .config in $(objtree) and Kconfig paths from $(srctree).
conf = cd $(objtree) && $(CONF) $(1) $(srctree)/Kconfig

PHONY += menuconfig nconfig
menuconfig nconfig:
	@if ! [ -t 0 ] || ! [ -t 1 ]; then \
		echo "*** make $@ needs an interactive terminal (at least 80x19)." >&2; \
		echo "*** Without one, load a recipe (make list-defconfigs) or edit .config and run make olddefconfig." >&2; \
		exit 1; fi
	$(Q)mkdir -p $(objtree)
	$(Q)cd $(objtree) && $(if $(filter menuconfig,$@),$(MCONF),$(NCONF)) $(srctree)/Kconfig

PHONY += oldconfig olddefconfig alldefconfig
oldconfig:
	$(Q)$(call conf,--oldconfig)
olddefconfig:
	$(Q)mkdir -p $(objtree)
	$(Q)if [ -f $(KCONFIG_CONFIG) ]; then cp $(KCONFIG_CONFIG) $(objtree)/.config.request; fi
	$(Q)$(call conf,-s --olddefconfig)
	$(Q)if [ -f $(objtree)/.config.request ]; then \
		$(srctree)/scripts/kconfig-check.sh $(srctree) $(objtree)/.config.request $(KCONFIG_CONFIG) \
		|| { cp $(objtree)/.config.request $(KCONFIG_CONFIG); exit 1; }; \
		rm -f $(objtree)/.config.request; fi
alldefconfig:
	$(Q)mkdir -p $(objtree)
	$(Q)$(call conf,-s --alldefconfig)

PHONY += randconfig
randconfig:
	$(Q)mkdir -p $(objtree)
	$(Q)$(call conf,-s --randconfig)

PHONY += savedefconfig
savedefconfig: $(KCONFIG_CONFIG)
	$(Q)$(call conf,-s --savedefconfig=$(objtree)/defconfig)
	@echo "  GEN      defconfig (minimal; copy it to defconfigs/NAME to make a recipe)"

# Load a recipe: the defconfig must come out exactly as written.
defconfig-%: $(srctree)/defconfigs/%
	$(Q)$(srctree)/scripts/load-config.sh $(srctree) $(objtree) $< defconfig

$(srctree)/defconfigs/%:
	@echo "*** No recipe defconfigs/$*. Available: $(DEFCONFIGS)" >&2; exit 1

# Apply a fragment (a few CONFIG_ lines) on top of the current .config.
PHONY += mergeconfig
mergeconfig:
	@test -n "$(F)" || { echo "*** usage: make mergeconfig F=path/to/fragment" >&2; exit 1; }
	$(Q)$(srctree)/scripts/load-config.sh $(srctree) $(objtree) $(F) merge

PHONY += list-defconfigs
list-defconfigs:
	@for f in $(DEFCONFIGS); do \
		printf '  defconfig-%-24s %s\n' "$$f" "$$(sed -n 's/^# *//p;q' $(srctree)/defconfigs/$$f)"; done

# --------------------------------------------------------------------------
# Compilation

$(BUILD)/lib/%.o: $(srctree)/%.c
	$(say) CC "$*.o"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/lib64/%.o: $(srctree)/%.c
	$(say) CC64 "$*.o"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) -DKGPT_F64 $(CFLAGS) -c $< -o $@

$(BUILD)/model/%.o: $(srctree)/%.c $(AUTOHEADER) $(KGPTHEADER) $(CONFIGTEXT)
	$(say) CC "$*.o"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -I$(objtree)/include $(ACT_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/model64/%.o: $(srctree)/%.c $(AUTOHEADER) $(KGPTHEADER) $(CONFIGTEXT)
	$(say) CC64 "$*.o"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -I$(objtree)/include $(CPPFLAGS) -DKGPT_F64 $(CFLAGS) -c $< -o $@

# CUDA objects: rebuilt when nvcc's flags change (CONFIG_CUDA_ARCH, the
# dtype), which build/cuda/flags records.
$(BUILD)/cuda/%.o: $(srctree)/%.cu $(CUDAFLAGS)
	$(say) NVCC "$*.o"
	$(Q)mkdir -p $(@D)
	$(Q)$(NVCC) -I$(srctree)/include -I$(srctree) -D_GNU_SOURCE $(NVCCFLAGS) -MMD -MP \
		-c $< -o $@

# ... and checked first: nvcc runs, and compiles for every entry of
# CONFIG_CUDA_ARCH (without a suffix such as the a of sm_90a; nvcc
# --list-gpu-code).
$(CUDAFLAGS): FORCE
	$(Q)command -v '$(NVCC)' >/dev/null 2>&1 || { echo "kgpt: NVCC=$(NVCC) is not an" \
		"executable nvcc: point it at the CUDA toolkit's bin/nvcc, or leave it unset to" \
		"use the one in PATH or /usr/local/cuda/bin" >&2; exit 1; }
	$(Q)codes=$$('$(NVCC)' --list-gpu-code 2>/dev/null); [ -z "$$codes" ] || \
	for a in $(CUDA_ARCHS); do \
		printf '%s\n' $$codes | grep -qx "$${a%[a-z]}" || { echo "kgpt:" \
			'CONFIG_CUDA_ARCH="$(CUDA_ARCHS)":' "$(NVCC) does not compile for $$a;" \
			"it compiles for" $$codes"; change CONFIG_CUDA_ARCH (make menuconfig," \
			"Backend)" >&2; exit 1; }; \
	done
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(NVCC) $(NVCCFLAGS)' > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(LIBKGPT): $(LIB_OBJS)
	$(say) AR "$(@F)"
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBKGPT64): $(LIB64_OBJS)
	$(say) AR "$(@F)"
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBCPU): $(CPU_OBJS)
	$(say) AR "$(@F)"
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBCPU64): $(CPU64_OBJS)
	$(say) AR "$(@F)"
	$(Q)rm -f $@ && ar rcs $@ $^

# The configured backend (kernels/Kbuild: backend-y).
$(LIBBACKEND): $(BACKEND_OBJS)
	$(say) AR "$(@F)"
	$(Q)rm -f $@ && ar rcs $@ $^

# Tools: gpt2/NAME.c with its own main().
$(PROGS): $(BUILD)/%: $(BUILD)/lib/gpt2/%.o $(LIBKGPT)
	$(say) LD "build/$*"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Tools: tracker/NAME.c with its own main() (build/kgpt-wandb).
$(TRACKER_PROGS): $(BUILD)/%: $(BUILD)/lib/tracker/%.o $(LIBKGPT)
	$(say) LD "build/$*"
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/lib/gpt2/%.o: $(srctree)/gpt2/%.c
	$(say) CC "gpt2/$*.o"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Trainers: gpt2/NAME.c with main(), specialised by the configuration.
$(TRAINERS): $(BUILD)/%: $(BUILD)/model/gpt2/%.o $(MODEL_OBJS) $(LIBKGPT) $(LIBBACKEND)
	$(say) LD "build/$*"
	$(Q)$(CC) $(LDFLAGS) $^ $(BACKEND_LDLIBS) -o $@

# Unit tests: tests/unit/test_*.c against the CPU backend; *_f64.c link
# the float64 libraries.
$(UNIT_TESTS64): $(BUILD)/tests/%_f64: $(srctree)/tests/unit/%_f64.c $(LIBKGPT64) $(LIBCPU64)
	$(say) CC64 "tests/unit/$*_f64"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) -DKGPT_F64 $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(UNIT_TESTS32): $(BUILD)/tests/%: $(srctree)/tests/unit/%.c $(LIBKGPT) $(LIBCPU)
	$(say) CC "tests/unit/$*"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Model tests: tests/model/test_*.c against this configuration's model and
# backend; *_f64.c against its float64 build (model64-y) on the CPU
# backend in float64, for gradient checks.
$(MODEL_TESTS64): $(BUILD)/tests/model/%_f64: $(srctree)/tests/model/%_f64.c $(MODEL64_OBJS) $(LIBKGPT64) $(LIBCPU64) $(KGPTHEADER)
	$(say) CC64 "tests/model/$*_f64"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -I$(objtree)/include $(CPPFLAGS) -DKGPT_F64 $(CFLAGS) $(LDFLAGS) $(filter-out %.h,$^) $(LDLIBS) -o $@

$(MODEL_TESTS32): $(BUILD)/tests/model/%: $(srctree)/tests/model/%.c $(MODEL_OBJS) $(LIBKGPT) $(LIBBACKEND) $(KGPTHEADER)
	$(say) CC "tests/model/$*"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -I$(objtree)/include $(ACT_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(filter-out %.h,$^) $(BACKEND_LDLIBS) -o $@

# Backend parity: tests/gpu/*.c against this configuration's model and
# backend (tests/gpu/run.sh builds them in a CPU and a CUDA tree).
$(GPU_TESTS): $(BUILD)/tests/gpu/%: $(srctree)/tests/gpu/%.c $(MODEL_OBJS) $(LIBKGPT) $(LIBBACKEND) $(KGPTHEADER)
	$(say) CC "tests/gpu/$*"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -I$(objtree)/include $(ACT_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(filter-out %.h,$^) $(BACKEND_LDLIBS) -o $@

# Fuzz targets: tests/fuzz/fuzz_*.c, libFuzzer programs against this
# configuration's model; built by tests/fuzz/run.sh with CC=clang SAN=fuzz.
FUZZ_SRCS := $(wildcard $(srctree)/tests/fuzz/fuzz_*.c)
FUZZERS   := $(patsubst $(srctree)/tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
$(FUZZERS): $(BUILD)/fuzz/%: $(srctree)/tests/fuzz/%.c $(MODEL_OBJS) $(LIBKGPT) $(LIBBACKEND) $(KGPTHEADER)
	$(say) LD "fuzz/$*"
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -I$(objtree)/include $(ACT_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) $(filter-out %.h,$^) $(BACKEND_LDLIBS) -o $@

# W&B: deliver what runs spooled (tracker/wandb.h): RUN=dir for one run,
# else every run folder under RUNS (default OUTPUT_DIR) with a spool.
PHONY += wandb-sync
wandb-sync: $(TRACKER_PROGS)
	$(Q)cd $(srctree) && if [ -n "$(RUN)" ]; then $(BUILD)/kgpt-wandb sync '$(RUN)'; else \
		d='$(or $(RUNS),$(call unquote,$(or $(CONFIG_OUTPUT_DIR),out)))'; rc=0; n=0; \
		for s in "$$d"/*/wandb-spool.jsonl; do [ -f "$$s" ] || continue; n=$$((n + 1)); \
			$(BUILD)/kgpt-wandb sync "$$(dirname "$$s")" || rc=1; done; \
		[ $$n -gt 0 ] || echo "wandb-sync: no run folder with a spool under $$d"; exit $$rc; fi

PHONY += lib tools unit-tests model-tests gpu-tests fuzzers tokenize prepare_data
lib: $(LIBKGPT) $(LIBKGPT64) $(LIBCPU) $(LIBCPU64)
tools: $(PROGS) $(TRACKER_PROGS)
tokenize: $(BUILD)/tokenize
prepare_data: $(BUILD)/prepare_data
unit-tests: $(UNIT_TESTS)
model-tests: $(MODEL_TESTS) $(TRAINERS)
gpu-tests: $(GPU_TESTS)
fuzzers: $(FUZZERS)

# --------------------------------------------------------------------------
# Data: the GPT-2 vocabulary and the configured dataset.
DATA_DIR := $(call unquote,$(CONFIG_DATA_DIR))
ifeq ($(DATA_DIR),)
DATA_DIR := data
endif
DATA_PATH := $(if $(filter /%,$(DATA_DIR)),$(DATA_DIR),$(srctree)/$(DATA_DIR))
VOCAB := $(DATA_PATH)/gpt2/encoder.json $(DATA_PATH)/gpt2/vocab.bpe
TS    := $(DATA_PATH)/tinyshakespeare

PHONY += data
ifeq ($(CONFIG_GPT2_DATASET_TINYSHAKESPEARE),y)
data: $(TS)/tinyshakespeare_train.bin $(TS)/tinyshakespeare_val.bin
else ifeq ($(CONFIG_GPT2_DATASET_FINEWEBEDU),y)
# The parquet files (fetched, or read from KGPT_DATA_MIRROR) through
# prepare_data into shards; a finished preparation is checked and kept,
# an interrupted one continued (scripts/fineweb-edu.sh, docs/data.md).
data: $(VOCAB) | $(BUILD)/prepare_data
	$(say) DATA "$(DATA_DIR)/edu_fineweb10B"
	$(Q)$(srctree)/scripts/fineweb-edu.sh $(DATA_PATH) $(BUILD)/prepare_data \
		$(CONFIG_FINEWEB_FILES) $(CONFIG_FINEWEB_SHARD_TOKENS)
else
data: $(VOCAB)
	@for p in "$(call unquote,$(CONFIG_GPT2_DATASET_TRAIN))" "$(call unquote,$(CONFIG_GPT2_DATASET_VAL))"; do \
		case "$$p" in /*) g="$$p";; *) g="$(DATA_PATH)/$$p";; esac; \
		ls $$g >/dev/null 2>&1 || { echo "*** No shards match $$g." >&2; \
		echo "*** Write them with build/prepare_data (docs/data.md), or set the paths in make menuconfig (Data)." >&2; exit 1; }; done
endif

$(VOCAB) &:
	$(say) FETCH "$(DATA_DIR)/gpt2"
	$(Q)$(srctree)/scripts/fetch-data.sh $(DATA_PATH)/gpt2 encoder.json vocab.bpe

# one run of prepare_data writes both shards: a missing one remakes both
$(TS)/tinyshakespeare_train.bin $(TS)/tinyshakespeare_val.bin &: $(VOCAB) | $(BUILD)/prepare_data
	$(say) FETCH "$(DATA_DIR)/tinyshakespeare"
	$(Q)$(srctree)/scripts/fetch-data.sh $(TS) tinyshakespeare.txt
	$(Q)$(BUILD)/prepare_data --input $(TS)/tinyshakespeare.txt --out $(TS) \
		--name tinyshakespeare --vocab $(DATA_PATH)/gpt2

# --------------------------------------------------------------------------
# Tests

PHONY += check
check:
	$(Q)$(srctree)/scripts/run-tests.sh

# --------------------------------------------------------------------------
# Benchmarks: each bench/NAME.config built in build/bench/NAME and timed on
# random tokens (scripts/bench.sh); BENCH="NAME..." runs some of them.

PHONY += bench
bench:
	$(Q)$(srctree)/scripts/bench.sh $(BENCH)

# The unit tests (and one small configuration's model tests) under
# AddressSanitizer + UndefinedBehaviorSanitizer in build/asan; the fuzz
# targets for KGPT_FUZZ_SECONDS each (default 60). Both are part of check.
PHONY += check-asan check-fuzz check-gpu
check-asan:
	$(Q)$(srctree)/scripts/run-tests.sh asan
check-fuzz:
	$(Q)$(srctree)/scripts/run-tests.sh fuzz

# On a machine with an NVIDIA GPU: CPU-against-GPU parity and the GPU
# benchmark table (docs/cuda.md). Not part of check.
check-gpu:
	$(Q)$(srctree)/tests/gpu/run.sh

# --------------------------------------------------------------------------
PHONY += clean mrproper distclean
clean:
	$(say) CLEAN "build"
	$(Q)rm -rf $(BUILD)

mrproper distclean: clean
	$(say) CLEAN ".config include/generated include/config"
	$(Q)rm -rf $(objtree)/include/generated $(objtree)/include/config \
		$(KCONFIG_CONFIG) $(KCONFIG_CONFIG).old $(objtree)/defconfig \
		$(objtree)/.config.request

PHONY += help
help:
	@echo 'kgpt: a GPT-2 trainer specialised at compile time by Kconfig.'
	@echo ''
	@echo 'Configuration targets:'
	@echo '  menuconfig        - Configure in a terminal menu (needs a terminal)'
	@echo '  nconfig           - Same, ncurses nconf front end'
	@echo '  oldconfig         - Ask for new symbols only'
	@echo '  olddefconfig      - Fill new symbols with their defaults (checked)'
	@echo '  savedefconfig     - Write a minimal ./defconfig from .config'
	@echo '  defconfig-NAME    - Load the recipe defconfigs/NAME (checked)'
	@echo '  list-defconfigs   - List the recipes'
	@echo '  mergeconfig F=FILE- Apply a fragment of CONFIG_ lines to .config (checked)'
	@echo '  randconfig        - A random configuration (KCONFIG_SEED=0x.. repeats one)'
	@echo '  alldefconfig      - Every symbol at its default'
	@echo ''
	@echo 'Build and run:'
	@echo '  all (default)     - Build the trainer for .config, prepare data, train'
	@echo '                      (continues an unfinished run of the same .config)'
	@echo '  resume            - Continue the unfinished run in OUTPUT_DIR/latest'
	@echo '  sample            - Generate text from OUTPUT_DIR/latest one token at a time through'
	@echo '                      the KV cache (pruned with KV-cache pruning); build/generate'
	@echo '                      --eval: the val_loss with pruning and with full attention'
	@echo '  ablation          - The ablation matrix (what make does with'
	@echo '                      CONFIG_RA_MLA_ABLATION_MODE=y): each step its own trainer in'
	@echo '                      build/<recipe>/<step>/, trained under TIME=, resumable; the'
	@echo '                      table (md, JSON, CSV) and plots in OUTPUT_DIR/ablation'
	@echo '  build             - Only build the trainer and tools under build/'
	@echo '  prepare           - Only write the configuration headers (include/generated)'
	@echo '  sources-off       - List the C files .config leaves out (their Kconfig symbol is off)'
	@echo '  data              - Fetch (or copy from KGPT_DATA_MIRROR) and tokenize the dataset;'
	@echo '                      FineWeb-Edu: CONFIG_FINEWEB_FILES parquet files into shards'
	@echo '                      of CONFIG_FINEWEB_SHARD_TOKENS, resumable (docs/data.md)'
	@echo '  tokenize          - Build build/tokenize (GPT-2 BPE, encode|decode)'
	@echo '  prepare_data      - Build build/prepare_data (text or a record stream -> llm.c shards)'
	@echo ''
	@echo 'W&B (docs/wandb.md):'
	@echo '  wandb-sync        - Deliver the W&B spool of every run under OUTPUT_DIR (RUN=DIR: one'
	@echo '                      run) that an outage, offline mode or a refused key left behind'
	@echo '                      (build/kgpt-wandb sync; also: kgpt-wandb baseline, history)'
	@echo ''
	@echo 'Tests:'
	@echo '  check             - The whole test suite (unit, kconfig, model, trainer, ablation,'
	@echo '                      wandb, asan, fuzz)'
	@echo '  check-asan        - Unit tests and one model'"'"'s tests under AddressSanitizer'
	@echo '                      and UndefinedBehaviorSanitizer (build/asan)'
	@echo '  check-fuzz        - libFuzzer targets (tokenizer, shard, checkpoint readers;'
	@echo '                      clang) and the config-fragment mutation fuzzer, each'
	@echo '                      for KGPT_FUZZ_SECONDS (default 60)'
	@echo '  check-gpu         - On an NVIDIA GPU: CPU-against-GPU parity and the GPU'
	@echo '                      benchmark table (tests/gpu/run.sh, docs/cuda.md)'
	@echo ''
	@echo 'Benchmarks:'
	@echo '  bench             - Time training steps of every bench/*.config (and the'
	@echo '                      default recipe) on random tokens: ms/step, tokens/s,'
	@echo '                      GFLOP/s, MFU, peak RSS, phases; build/bench/results.json'
	@echo ''
	@echo 'Cleaning:'
	@echo '  clean             - Remove build/'
	@echo '  mrproper          - Also remove .config and generated headers'
	@echo ''
	@echo 'Variables:'
	@echo '  FRESH=1           - Start a new run even if the latest one is unfinished'
	@echo '  TIME=SECONDS      - Override CONFIG_GPT2_MAX_TIME for this build and run'
	@echo '                      (GPT2_MAX_TIME=SECONDS in the environment does the same)'
	@echo '  BASELINE=SPEC     - Baseline of the ablation matrix instead of its first step (V0):'
	@echo '                      entity/project/run_id, entity/project/runs/run_id, a W&B run'
	@echo '                      URL, or a local run or ablation folder (CONFIG_BASELINE_RUN_ID)'
	@echo '  BASELINE_STRICT=1 - An unreadable BASELINE stops the matrix instead of using V0'
	@echo '  NP=N              - Train as N ranks under mpirun (CONFIG_DISTRIBUTED=y; OMP_NUM_THREADS'
	@echo '                      = cores / N unless set); MPIRUN_FLAGS="--hostfile F ..." adds options'
	@echo '  O=DIR             - Keep .config, generated headers and build/ in DIR'
	@echo '  V=1               - Show full commands'
	@echo '  SAN=1             - Build with AddressSanitizer + UBSan (SAN=fuzz: and libFuzzer, CC=clang)'
	@echo '  PROMPT=TEXT       - Text make sample continues (default ROMEO:)'
	@echo '  TOKENS=N          - Tokens make sample generates (default 128)'
	@echo '  BENCH="NAME..."   - make bench runs only these (e.g. BENCH=124m-b4-t64)'
	@echo '  KGPT_DATA_MIRROR=DIR - Copy data files from DIR instead of downloading (FineWeb-Edu:'
	@echo '                      read DIR/fineweb-edu/sample/10BT/NNN_00000.parquet in place)'
	@echo '  RUN=DIR           - The run folder make wandb-sync delivers'
	@echo '  RUNS=DIR          - make wandb-sync: every run folder under DIR (default OUTPUT_DIR)'
	@echo ''
	@echo 'Recipes:'
	@$(MAKE) -f $(srctree)/Makefile list-defconfigs

PHONY += FORCE
FORCE:

.PHONY: $(PHONY)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
