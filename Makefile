# gamlua — one entry point.
#   make            build build/libgam.so and build/gamlua (CPU always; CUDA when nvcc is found)
#   make deps       install the Debian packages the project needs (only those missing)
#   make test       deps + build + every test; last line "N passed, N failed"
#   make test-reference REFERENCE_DIR=dir   golden optimiser cases of a folder
#   make train      deps + build + a 3-epoch Fashion-MNIST GAM run on the CPU, and its curves (PNG)
#   make install PREFIX=/usr/local   (also DESTDIR=stage; C header and gam.pc for pkg-config)
#   luarocks make                    gamlua-scm-1.rockspec: the Lua package, libgam and gamlua as a rock
#   make CUDA=0     build without the CUDA backend
#   make test-cuda  the CUDA backend against the CPU backend (needs a GPU; prints the CUDA stack first)
#   make bench      short runs of the CPU benchmarks against their PyTorch peer
#   make NATIVE=1   build for this CPU (-march=native) instead of the portable x86-64-v2 baseline
#   make test-sanitize   the engine and gamlua under ASan + UBSan (build-sanitize/), every test
#   make fuzz FUZZ_SECONDS=N   each libFuzzer target of tests/fuzz/ for N seconds (build-fuzz/)

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= gcc
VERSION := 0.1.0
REFERENCE_DIR ?= ../shared/reference

DEB_PACKAGES := build-essential pkg-config luajit libluajit-5.1-dev lua-busted libopenblas-dev \
                libdnnl-dev zlib1g-dev libreadline-dev dataset-fashion-mnist tmux \
                lua-check clang-format lua-argparse python3-venv luarocks clang libclang-rt-14-dev \
                openmpi-bin libopenmpi-dev gnuplot-nox

LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_LIBS   := $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1)

WARN    := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
# Portable by default: code for the x86-64-v2 baseline (SSE4.2, no AVX/FMA), so a
# seeded run gives the same numbers on every x86-64 machine (-march=native let
# the compiler pick vector widths and fused multiply-adds per machine).
# NATIVE=1 builds for this CPU instead (README: what it buys).
NATIVE  ?= 0
ifeq ($(NATIVE),1)
  ARCH_FLAGS := -march=native
else
  ARCH_FLAGS := $(if $(filter x86_64,$(shell uname -m)),-march=x86-64-v2 -mtune=generic,)
endif
CFLAGS  ?= -O3 $(ARCH_FLAGS)
OPENMP  ?= -fopenmp
ALL_CFLAGS := -std=gnu11 -fPIC $(OPENMP) $(WARN) -DGAM_VERSION='"$(VERSION)"' $(CFLAGS)
LIBS    := -lopenblas -ldnnl -lz -lm -lpthread

ENGINE_SRC := $(filter-out engine/gamlua_main.c,$(wildcard engine/*.c))
ENGINE_OBJ := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(ENGINE_SRC)) $(BUILD)/obj/cdef.o

# ---- CUDA switch -----------------------------------------------------------------
# CUDA=auto (default) builds the CUDA backend (kernels/*.cu) when nvcc is found:
# $(CUDA_HOME)/bin/nvcc, else nvcc on the PATH. CUDA=1 requires it, CUDA=0 leaves it
# out. cuDNN comes from the toolkit, or CUDNN_HOME (a PyTorch install's
# site-packages/nvidia/cudnn is found by itself). One GPU architecture keeps the
# build quick: CUDA_ARCH=90 (H100/H200: sm_90 code plus compute_90 PTX); set
# CUDA_ARCH=80 for an A100, and so on. Our CUDA code builds with warnings as errors.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA      ?= auto
CUDA_ARCH ?= 90
ifeq ($(wildcard $(NVCC)),)
  NVCC_ON_PATH := $(shell command -v nvcc 2>/dev/null)
  ifneq ($(NVCC_ON_PATH),)
    NVCC := $(NVCC_ON_PATH)
    CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC_ON_PATH))
  endif
endif
ifeq ($(CUDA),auto)
  CUDA_ON := $(if $(wildcard $(NVCC)),$(if $(wildcard kernels/*.cu),1,0),0)
else
  CUDA_ON := $(CUDA)
endif
ifeq ($(CUDA_ON),1)
  ifeq ($(wildcard $(NVCC)),)
    $(error CUDA=1 but nvcc was not found at $(NVCC): set CUDA_HOME, or build with CUDA=0)
  endif
  CUDNN_HOME ?= $(if $(wildcard $(CUDA_HOME)/include/cudnn.h),$(CUDA_HOME),$(shell python3 -c \
    'import nvidia.cudnn; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null))
  CUDNN_LIB := $(firstword $(wildcard $(addprefix $(CUDNN_HOME)/,lib64/libcudnn.so lib/libcudnn.so \
    lib64/libcudnn.so.9 lib/libcudnn.so.9)))
  ifeq ($(CUDNN_LIB),)
    $(error cuDNN was not found (looked in $(CUDA_HOME) and PyTorch's nvidia/cudnn): set CUDNN_HOME, or build with CUDA=0)
  endif
  CUDA_SRC  := $(wildcard kernels/*.cu)
  ENGINE_OBJ += $(patsubst kernels/%.cu,$(BUILD)/obj/cuda_%.o,$(CUDA_SRC))
  ALL_CFLAGS += -DGAM_HAVE_CUDA
  NVCCFLAGS ?= -O3
  ALL_NVCCFLAGS := -std=c++17 -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) \
    -gencode arch=compute_$(CUDA_ARCH),code=compute_$(CUDA_ARCH) -Werror all-warnings \
    -Xcompiler -fPIC,-Wall,-Werror -DGAM_HAVE_CUDA -DGAM_CUDA_ARCH=$(CUDA_ARCH) -Iengine -I$(CUDNN_HOME)/include $(NVCCFLAGS)
  CUDA_RPATH := $(sort $(CUDA_HOME)/lib64 $(patsubst %/,%,$(dir $(CUDNN_LIB))))
  # NCCL (collectives on cuda tensors, kernels/nccl.cu): built in when found
  NCCL_HOME ?= $(CUDA_HOME)
  NCCL_LIB := $(firstword $(wildcard $(addprefix $(NCCL_HOME)/,lib64/libnccl.so lib/libnccl.so)))
  ifneq ($(NCCL_LIB),)
    ALL_NVCCFLAGS += -DGAM_HAVE_NCCL -I$(NCCL_HOME)/include
    CUDA_RPATH := $(sort $(CUDA_RPATH) $(patsubst %/,%,$(dir $(NCCL_LIB))))
    LIBS += $(NCCL_LIB)
  endif
  LIBS += -L$(CUDA_HOME)/lib64 -lcublas -lcudart $(CUDNN_LIB) -lstdc++ \
    $(foreach d,$(CUDA_RPATH),-Wl,-rpath,$(d))
endif

# ---- MPI switch (engine/dist.c) -------------------------------------------------
# MPI=auto (default) links libmpi when mpicc is found (Open MPI: mpicc --showme;
# MPICH: mpicc -show), MPI=0 leaves it out (dist then only runs alone).
MPICC ?= mpicc
MPI   ?= auto
ifeq ($(MPI),auto)
  MPI_ON := $(if $(shell command -v $(MPICC) 2>/dev/null),1,0)
else
  MPI_ON := $(MPI)
endif
ifeq ($(MPI_ON),1)
  MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null || $(MPICC) -compile_info 2>/dev/null | cut -d' ' -f2-)
  MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info 2>/dev/null | cut -d' ' -f2-)
  ALL_CFLAGS += -DGAM_HAVE_MPI
  LIBS += $(MPI_LIBS)
endif

# Objects depend on the build's configuration, so switching CUDA on or off (or
# the flags) in one build folder rebuilds them.
BUILD_CONFIG := CUDA=$(CUDA_ON) $(subst ',,$(ALL_CFLAGS) $(ALL_NVCCFLAGS))

LINT_C := $(wildcard engine/*.c engine/*.h kernels/*.cu kernels/*.cuh)

.PHONY: test-sanitize fuzz fuzz-build
.PHONY: lint all deps test test-lua test-reference test-cuda train install install-rock clean bench FORCE

all: $(BUILD)/libgam.so $(BUILD)/gamlua

$(BUILD)/config.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(BUILD_CONFIG)' | cmp -s - $@ || echo '$(BUILD_CONFIG)' > $@

$(BUILD)/obj/dist.o: ALL_CFLAGS += $(MPI_CFLAGS)

$(BUILD)/obj/%.o: engine/%.c engine/gam.h engine/internal.h engine/cuda_backend.h engine/backend.h \
                   engine/optim_math.h engine/optim_cpu.h engine/gam_test.h engine/philox.h $(BUILD)/config.stamp
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/cuda_%.o: kernels/%.cu kernels/common.cuh engine/gam.h engine/cuda_backend.h engine/optim_math.h engine/philox.h \
                        $(BUILD)/config.stamp
	@mkdir -p $(dir $@)
	$(NVCC) $(ALL_NVCCFLAGS) -c $< -o $@

# The FFI declarations: the GAM_FFI region of engine/gam.h, embedded as a string.
$(BUILD)/cdef.c: engine/gam.h Makefile
	@mkdir -p $(dir $@)
	{ echo 'const char *gam_cdef(void);'; echo 'const char *gam_cdef(void) { return'; \
	  sed -n '/^\/\* GAM_FFI_BEGIN/,/^\/\* GAM_FFI_END/p' $< | grep -v '^#' | \
	  sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$$/\\n"/'; echo '; }'; } > $@

$(BUILD)/obj/cdef.o: $(BUILD)/cdef.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libgam.so: $(ENGINE_OBJ)
	$(CC) -shared $(OPENMP) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/gamlua: engine/gamlua_main.c $(BUILD)/libgam.so
	$(CC) $(ALL_CFLAGS) $(LUAJIT_CFLAGS) -o $@ $< $(LUAJIT_LIBS) -lreadline -ldl -lm -Wl,-E $(LDFLAGS)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (apt-get) to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Test-only Python packages, in a virtual environment of the build folder:
# TensorBoard's own event-file reader for tests/tensorboard_spec.lua (needs PyPI once).
$(BUILD)/venv/.stamp:
	python3 -m venv $(BUILD)/venv
	$(BUILD)/venv/bin/pip install -q tensorboard
	touch $@

test: deps all $(BUILD)/venv/.stamp
	@GAM_EXPECT_CUDA=$(CUDA_ON) bash tests/run_all.sh $(BUILD) $(REFERENCE_DIR)

# The CUDA backend against the CPU backend: needs a GPU. The files of tests/cuda/
# are named *_cuda.lua so that the default runner (pattern _spec.lua) does not
# pick them up; tests/cuda/run_cuda.sh runs them and the golden cases on the GPU.
# It runs deps first and prints the driver, runtime, cuDNN and GPU first.
test-cuda: deps all
	@bash tests/cuda/run_cuda.sh $(BUILD) $(REFERENCE_DIR)

test-lua: all
	@$(BUILD)/gamlua tests/run_busted.lua

test-reference: all
	@$(BUILD)/gamlua tests/reference_harness.lua $(REFERENCE_DIR)

# ---- sanitizers and fuzzers (CI runs both after make test) ---------------------------
# test-sanitize: every test against an ASan + UBSan build (CUDA off). gamlua itself
# is linked with ASan, so the runtime comes first without LD_PRELOAD. ASAN_OPTIONS:
# detect_leaks=0: LuaJIT, OpenBLAS and oneDNN keep process-lifetime allocations
# (thread pools, kernel caches, interned strings) that LeakSanitizer reports at exit,
# and a gamlua child must not fail a test for them; the engine's own balance is
# checked by memory_spec (live tensor/byte counts). LuaJIT's allocator is its own
# mmap-based one, uninstrumented, and it does not clash with ASan's shadow memory on
# x86-64 (GC64). Any report ends the process (-fno-sanitize-recover, halt_on_error).
# CFLAGS is exported to the run so that specs which call make on the build folder
# (install_spec, luarocks_spec) find it up to date instead of rebuilding it plain.
SAN_BUILD := build-sanitize
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
test-sanitize: deps $(BUILD)/venv/.stamp
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CUDA=0 CFLAGS='$(SAN_FLAGS)' all >/dev/null
	@CFLAGS='$(SAN_FLAGS)' GAM_VENV=$(abspath $(BUILD))/venv bash tests/run_sanitize.sh $(SAN_BUILD) $(REFERENCE_DIR)

# fuzz: libFuzzer targets (tests/fuzz/fuzz_*.c) against an engine built by clang with
# ASan + UBSan + coverage; each runs FUZZ_SECONDS on a copy of its committed corpus
# (tests/fuzz/corpus/<target>); a crash input is written to build-fuzz/ and fails.
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
fuzz-build: deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CUDA=0 CC=clang OPENMP=-fopenmp=libgomp \
	  CFLAGS='$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link' LDFLAGS='-lgomp' $(FUZZ_BUILD)/libgam.so >/dev/null
	@for t in $(FUZZ_TARGETS); do \
	  clang $(FUZZ_FLAGS) -fsanitize=fuzzer -Iengine $(LUAJIT_CFLAGS) -o $(FUZZ_BUILD)/fuzz_$$t tests/fuzz/fuzz_$$t.c \
	    -L$(FUZZ_BUILD) -lgam -Wl,-rpath,$(abspath $(FUZZ_BUILD)) $(LUAJIT_LIBS) -lz || exit 1; done
fuzz: fuzz-build
	@GAMLUA_LIB=$(abspath $(FUZZ_BUILD))/libgam.so GAM_FUZZ_LUA=$(abspath lua) \
	  ASAN_OPTIONS=detect_leaks=0 bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

train: deps all
	$(BUILD)/gamlua scripts/train_cifar.lua --dataset FashionMNIST --epochs 3
	@$(BUILD)/gamlua scripts/plot.lua curves runs/FashionMNIST-cnn_small-gam --title 'make train: GAM, cnn_small, Fashion-MNIST'

# Installs the host, libgam, the Lua package, the C header and gam.pc (pkg-config:
# cc prog.c $(pkg-config --cflags --libs gam); the library keeps its place under
# lib/gamlua, found through the rpath gam.pc adds). DESTDIR stages, PREFIX is recorded.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/gamlua $(DESTDIR)$(PREFIX)/share/gamlua/lua \
	  $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/gamlua $(DESTDIR)$(PREFIX)/bin/gamlua
	install -m 755 $(BUILD)/libgam.so $(DESTDIR)$(PREFIX)/lib/gamlua/libgam.so
	cp -r lua/gam $(DESTDIR)$(PREFIX)/share/gamlua/lua/
	install -m 644 engine/gam.h $(DESTDIR)$(PREFIX)/include/gam.h
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib/gamlua' 'includedir=$${prefix}/include' '' \
	  'Name: gam' 'Description: libgam, the C engine of gamlua (tensors, autograd, GAM/SAM optimisers)' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -lgam' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gam.pc

# `luarocks make` (gamlua-scm-1.rockspec) installs into the rock's folders.
install-rock: all
	install -d $(LUADIR) $(LIBDIR) $(BINDIR)
	cp -r lua/gam $(LUADIR)/
	install -m 755 $(BUILD)/libgam.so $(LIBDIR)/libgam.so
	install -m 755 $(BUILD)/gamlua $(BINDIR)/gamlua

# Short runs of the CPU benchmarks (layers; GAM and SAM steps), each printing
# its ratio against the PyTorch peer measured in the same run (python3-torch;
# BENCH_ARGS=--no-torch skips it). For the figures of README.md, run the
# scripts themselves with the settings the README gives.
BENCH_THREADS ?= 2
BENCH_ARGS    ?=
bench: all
	$(BUILD)/gamlua scripts/bench_layers.lua --threads $(BENCH_THREADS) --models cnn_small \
	  --batches 32 --iters 5 $(BENCH_ARGS)
	for o in gam sam; do \
	  $(BUILD)/gamlua scripts/bench_step.lua --model cnn_small --opt $$o --batch 32 --steps 5 \
	    --warmup 1 --threads $(BENCH_THREADS) $(BENCH_ARGS) || exit 1; \
	done

# Lua: luacheck with .luacheckrc; C and CUDA: clang-format with .clang-format (check only).
lint:
	luacheck --no-color -q lua scripts tests
	clang-format --dry-run -Werror $(LINT_C)

clean:
	rm -rf $(BUILD)
