# gamlua — one entry point.
#   make            build build/libgam.so and build/gamlua (CPU always; CUDA when nvcc is found)
#   make deps       install the Debian packages the project needs (only those missing)
#   make test       deps + build + every test; last line "N passed, N failed"
#   make test-reference REFERENCE_DIR=dir   golden optimiser cases of a folder
#   make train      deps + build + a 3-epoch Fashion-MNIST GAM run on the CPU, and its curves (PNG)
#   make install PREFIX=/usr/local
#   make CUDA=0     build without the CUDA backend
#   make test-cuda  the CUDA backend against the CPU backend (needs a GPU)

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= gcc
VERSION := 0.1.0
REFERENCE_DIR ?= ../shared/reference

DEB_PACKAGES := build-essential pkg-config luajit libluajit-5.1-dev lua-busted libopenblas-dev \
                libdnnl-dev zlib1g-dev libreadline-dev dataset-fashion-mnist tmux \
                lua-check clang-format lua-argparse \
                gnuplot-nox

LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_LIBS   := $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1)

WARN    := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS  ?= -O3 -march=native
ALL_CFLAGS := -std=gnu11 -fPIC -fopenmp $(WARN) -DGAM_VERSION='"$(VERSION)"' $(CFLAGS)
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
  LIBS += -L$(CUDA_HOME)/lib64 -lcublas -lcudart $(CUDNN_LIB) -lstdc++ \
    $(foreach d,$(CUDA_RPATH),-Wl,-rpath,$(d))
endif

# Objects depend on the build's configuration, so switching CUDA on or off (or
# the flags) in one build folder rebuilds them.
BUILD_CONFIG := CUDA=$(CUDA_ON) $(subst ',,$(ALL_CFLAGS) $(ALL_NVCCFLAGS))

LINT_C := $(wildcard engine/*.c engine/*.h kernels/*.cu kernels/*.cuh)

.PHONY: lint all deps test test-lua test-reference test-cuda train install clean bench FORCE

all: $(BUILD)/libgam.so $(BUILD)/gamlua

$(BUILD)/config.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(BUILD_CONFIG)' | cmp -s - $@ || echo '$(BUILD_CONFIG)' > $@

$(BUILD)/obj/%.o: engine/%.c engine/gam.h engine/internal.h engine/cuda_backend.h engine/backend.h $(BUILD)/config.stamp
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/cuda_%.o: kernels/%.cu kernels/common.cuh engine/gam.h engine/cuda_backend.h $(BUILD)/config.stamp
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
	$(CC) -shared -fopenmp -o $@ $^ $(LIBS)

$(BUILD)/gamlua: engine/gamlua_main.c $(BUILD)/libgam.so
	$(CC) $(ALL_CFLAGS) $(LUAJIT_CFLAGS) -o $@ $< $(LUAJIT_LIBS) -lreadline -ldl -lm -Wl,-E

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (apt-get) to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: deps all
	@GAM_EXPECT_CUDA=$(CUDA_ON) bash tests/run_all.sh $(BUILD) $(REFERENCE_DIR)

# The CUDA backend against the CPU backend: needs a GPU. The files of tests/cuda/
# are named *_cuda.lua so that the default runner (pattern _spec.lua) does not
# pick them up; tests/cuda/run_cuda.sh runs them and the golden cases on the GPU.
test-cuda: all
	@bash tests/cuda/run_cuda.sh $(BUILD) $(REFERENCE_DIR)

test-lua: all
	@$(BUILD)/gamlua tests/run_busted.lua

test-reference: all
	@$(BUILD)/gamlua tests/reference_harness.lua $(REFERENCE_DIR)

train: deps all
	$(BUILD)/gamlua scripts/train_cifar.lua --dataset FashionMNIST --epochs 3
	@$(BUILD)/gamlua scripts/plot.lua curves runs/FashionMNIST-cnn_small-gam --title 'make train: GAM, cnn_small, Fashion-MNIST'

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/gamlua $(DESTDIR)$(PREFIX)/share/gamlua/lua
	install -m 755 $(BUILD)/gamlua $(DESTDIR)$(PREFIX)/bin/gamlua
	install -m 755 $(BUILD)/libgam.so $(DESTDIR)$(PREFIX)/lib/gamlua/libgam.so
	cp -r lua/gam $(DESTDIR)$(PREFIX)/share/gamlua/lua/

# Lua: luacheck with .luacheckrc; C and CUDA: clang-format with .clang-format (check only).
lint:
	luacheck --no-color -q lua scripts tests
	clang-format --dry-run -Werror $(LINT_C)

clean:
	rm -rf $(BUILD)
