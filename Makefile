# gamlua — one entry point.
#   make            build build/libgam.so and build/gamlua (CPU always; CUDA when nvcc is found)
#   make deps       install the Debian packages the project needs (only those missing)
#   make test       deps + build + every test; last line "N passed, N failed"
#   make test-reference REFERENCE_DIR=dir   golden optimiser cases of a folder
#   make train      deps + build + a 3-epoch Fashion-MNIST GAM run on the CPU
#   make install PREFIX=/usr/local
#   make CUDA=0     build without the CUDA backend

BUILD   ?= build
PREFIX  ?= /usr/local
CC      ?= gcc
VERSION := 0.1.0
REFERENCE_DIR ?= ../shared/reference

DEB_PACKAGES := build-essential pkg-config luajit libluajit-5.1-dev lua-busted libopenblas-dev \
                libdnnl-dev zlib1g-dev libreadline-dev dataset-fashion-mnist tmux

LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
LUAJIT_LIBS   := $(shell pkg-config --libs luajit 2>/dev/null || echo -lluajit-5.1)

WARN    := -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS  ?= -O3 -march=native
ALL_CFLAGS := -std=gnu11 -fPIC -fopenmp $(WARN) -DGAM_VERSION='"$(VERSION)"' $(CFLAGS)
LIBS    := -lopenblas -ldnnl -lz -lm -lpthread

ENGINE_SRC := $(filter-out engine/gamlua_main.c,$(wildcard engine/*.c))
ENGINE_OBJ := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(ENGINE_SRC)) $(BUILD)/obj/cdef.o

# ---- CUDA switch: CUDA=auto (default) builds kernels/*.cu when nvcc is found
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA      ?= auto
ifeq ($(CUDA),auto)
  CUDA := $(if $(wildcard $(NVCC)),$(if $(wildcard kernels/*.cu),1,0),0)
endif
ifeq ($(CUDA),1)
  CUDNN_HOME ?= $(CUDA_HOME)
  CUDA_SRC := $(wildcard kernels/*.cu)
  ENGINE_OBJ += $(patsubst kernels/%.cu,$(BUILD)/obj/cuda_%.o,$(CUDA_SRC))
  ALL_CFLAGS += -DGAM_CUDA -I$(CUDA_HOME)/include -I$(CUDNN_HOME)/include
  LIBS += -L$(CUDA_HOME)/lib64 -L$(CUDNN_HOME)/lib -lcudnn -lcublas -lcudart -Wl,-rpath,$(CUDA_HOME)/lib64
endif

.PHONY: all deps test test-lua test-reference train install clean bench

all: $(BUILD)/libgam.so $(BUILD)/gamlua

$(BUILD)/obj/%.o: engine/%.c engine/gam.h engine/internal.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/cuda_%.o: kernels/%.cu engine/gam.h engine/internal.h
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 -Xcompiler -fPIC,-Wall,-Werror -Iengine -I$(CUDNN_HOME)/include -c $< -o $@

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
	@bash tests/run_all.sh $(BUILD) $(REFERENCE_DIR)

test-lua: all
	@$(BUILD)/gamlua tests/run_busted.lua

test-reference: all
	@$(BUILD)/gamlua tests/reference_harness.lua $(REFERENCE_DIR)

train: deps all
	$(BUILD)/gamlua scripts/train_cifar.lua --dataset FashionMNIST --arch cnn_small --opt gam --epochs 3

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/gamlua $(DESTDIR)$(PREFIX)/share/gamlua/lua
	install -m 755 $(BUILD)/gamlua $(DESTDIR)$(PREFIX)/bin/gamlua
	install -m 755 $(BUILD)/libgam.so $(DESTDIR)$(PREFIX)/lib/gamlua/libgam.so
	cp -r lua/gam $(DESTDIR)$(PREFIX)/share/gamlua/lua/

clean:
	rm -rf $(BUILD)
