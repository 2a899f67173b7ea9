# SPDX-License-Identifier: GPL-2.0
#
# The user's verbs. The module build itself is described in ./Kbuild.
#
#   make            build the modules against KDIR (default: the cached test
#                   kernel, built first if missing)
#   make modules_install  install them (not the test builds) like any
#                   module: into $(INSTALL_MOD_PATH)/lib/modules/<KDIR's
#                   release>/updates, then depmod, so that `modprobe
#                   dm-verity-rs` loads dm-bufio first by itself
#   make run        the demo: boot a guest, create a device with our target,
#                   do I/O, show table and status
#   make check      host unit tests + style checks + the host boot tests +
#                   the selftests (selftests/suites) in two guests
#   make check-full the same with the stress loops at full length (50 attach
#                   swaps and 10,000 fuzzed table lines per target)
#   make check-debug  the same as check on the debug kernel (KASAN, lockdep, ...)
#   make compile-fail the compile-fail tests alone (API misuses that must
#                   not build; Documentation/testing.md)
#   make bench      Rust vs C targets in one guest boot (see Documentation/bench.md)
#   make shell      an interactive guest with the modules built
#   make kernel     build (or reuse) the cached test kernel
#   make clean      remove build products
#
# Building against another Rust-enabled 6.12 tree:
#   make KDIR=/path/to/tree [LLVM=...] [RUSTC=...] [BINDGEN=...]

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
ENV := . $(TOP)/scripts/env.sh

LLVM ?= -19
RUSTC ?= /usr/bin/rustc
BINDGEN ?= $(shell $(ENV) && echo $$BINDGEN)
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
KDIR ?=

kmake = $(MAKE) -C "$$kdir" M=$(TOP) LLVM=$(LLVM) RUSTC=$(RUSTC) BINDGEN=$(BINDGEN) \
	CLIPPY_DRIVER=$(CLIPPY_DRIVER)
find-kdir = kdir="$(KDIR)"; if [ -z "$$kdir" ]; then \
	$(TOP)/scripts/setup.sh && kdir=$$($(TOP)/scripts/build-kernel.sh) || exit 1; fi

# The modules modules_install installs: not the test builds
# (dm-clone-rs-unordered, dm-hold-rs; see ./Kbuild).
installed-modules := dm-linear-rs dm-verity-rs dm-era-rs dm-clone-rs

.PHONY: all modules modules_install run check check-full check-debug compile-fail bench shell kernel setup clean
all: modules

modules:
	@$(find-kdir); $(kmake) modules

# Kbuild's modules_install (INSTALL_MOD_PATH, INSTALL_MOD_DIR and
# INSTALL_MOD_STRIP work as for any module; it runs depmod for KDIR's
# release), given the list of modules to install instead of modules.order.
modules_install:
	@$(find-kdir); order=$$(mktemp); \
	for m in $(installed-modules); do \
		[ -f $(TOP)/$$m.ko ] || { echo "$$m.ko is not built: run make first" >&2; exit 1; }; \
		echo $(TOP)/$$m.o; \
	done >"$$order" && \
	$(kmake) modules_install MODORDER="$$order"; rc=$$?; rm -f "$$order"; exit $$rc

kernel: setup
	@$(TOP)/scripts/build-kernel.sh >/dev/null

setup:
	@$(TOP)/scripts/setup.sh

run:
	@$(TOP)/scripts/run-demo.sh

check:
	@$(TOP)/scripts/check.sh

check-full:
	@RDM_CHECK_FULL=1 $(TOP)/scripts/check.sh

check-debug:
	@RDM_KERNEL_FLAVOUR=debug $(TOP)/scripts/check.sh

compile-fail:
	@$(find-kdir); KDIR="$$kdir" $(TOP)/scripts/compile-fail.sh

bench:
	@$(TOP)/scripts/bench.sh

shell:
	@$(find-kdir); $(kmake) modules >/dev/null && \
	$$($(ENV) && echo $$VNG) --run "$$kdir" --disable-kvm --user root --cpus 2 --memory 2G --cwd $(TOP)

clean:
	@kdir="$(KDIR)"; [ -n "$$kdir" ] || kdir=$$($(TOP)/scripts/build-kernel.sh --print-dir); \
	if [ -d "$$kdir" ]; then $(kmake) clean; fi
	rm -f $(TOP)/rust/dm/bindings_generated.rs
	rm -rf $(TOP)/tools/hosttests/target $(TOP)/out
