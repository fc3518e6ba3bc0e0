#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# install-deps.sh: install what kgpt needs to build, train and test, with
# apt (Debian 12; Ubuntu 22.04+ has the same packages). Run it as root or
# as a user with sudo. It installs only what is missing, so a second run
# takes a fraction of a second and never asks for a password.
#
#   ./scripts/install-deps.sh          install what is missing
#   ./scripts/install-deps.sh --list   print the package list
set -euo pipefail

packages=(
	build-essential         # gcc, make
	kconfig-frontends-nox   # kconfig-conf, kconfig-mconf (make menuconfig)
	libopenblas-openmp-dev  # matrix products (OpenBLAS on kgpt's OpenMP threads)
	libpcre2-dev            # GPT-2 tokenizer (pre-tokenisation regex)
	libcjson-dev            # encoder.json, summary.json
	libcurl4-openssl-dev    # W&B uploader
	libopenmpi-dev          # data-parallel training (CONFIG_DISTRIBUTED, mpicc's flags)
	openmpi-bin             # mpirun (make NP=N, tests/train/dist.sh)
	gnuplot-nox             # loss.png in each run folder
	tmux                    # menuconfig test (tests/kconfig/menuconfig.sh)
	clang                   # second compiler for the checks
	libclang-rt-dev         # clang's sanitizer and libFuzzer runtimes (tests/fuzz)
	libomp-dev              # OpenMP for clang (the fuzz targets' build)
	curl                    # fetching data when online
	jq                      # make bench (tables from the trainer's JSON)
	ca-certificates         # HTTPS for curl
	python3                 # the W&B test server (tests/wandb/server.py)
)
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${packages[@]}"
	exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: this script needs apt (Debian 12 or Ubuntu). Install these packages" >&2
	echo "install-deps: or their equivalents by hand: ${packages[*]}" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages are installed"
	exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" = 0 ]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	echo "install-deps: not root and no sudo: run it as root, or install: ${missing[*]}" >&2
	exit 1
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	--no-install-recommends "${missing[@]}"
echo "install-deps: done"
