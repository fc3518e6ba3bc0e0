#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# install-deps.sh: install what kgpt needs to build, train and test, with
# apt (Debian 12; Ubuntu 22.04+ has the same packages). Run it as root or
# as a user with sudo. It installs only what is missing, so a second run
# takes a fraction of a second and never asks for a password.
# Then the parquet reader of `make data` for FineWeb-Edu: `npm ci` in
# scripts/parquet (versions pinned by its package-lock.json), again only
# when its node_modules/ does not match the lock file.
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
# node and npm run the parquet reader (scripts/parquet). A nodejs that is
# already there (another distribution's build, with its own npm) is kept.
node_packages=(nodejs npm)
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${packages[@]}" "${node_packages[@]}"
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

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	missing+=("${node_packages[@]}")
fi

# npm ci in scripts/parquet unless node_modules/ was installed from this
# very lock file (a copy of it is kept there as the stamp).
npm_ci() {
	local dir
	dir=$(cd "$(dirname "$0")/parquet" && pwd)
	if cmp -s "$dir/package-lock.json" "$dir/node_modules/.kgpt-lock"; then
		echo "install-deps: scripts/parquet/node_modules is up to date"
		return 0
	fi
	echo "install-deps: npm ci in scripts/parquet"
	if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
		echo "install-deps: npm ci in $dir failed (is the npm registry reachable?)" >&2
		exit 1
	fi
	cp "$dir/package-lock.json" "$dir/node_modules/.kgpt-lock"
}

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages and node are installed"
	npm_ci
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
npm_ci
echo "install-deps: done"
