#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# build-trainer.sh OBJ FRAGMENT [BASE] [-- MAKE-ARGS...]
#
# One trainer for one configuration, in the O= tree OBJ: without BASE,
# OBJ/.config = FRAGMENT over the defaults (load-config.sh defconfig);
# with BASE, OBJ/.config = the .config BASE with FRAGMENT merged on top
# (load-config.sh merge). Either way every line of FRAGMENT is checked
# against the result (scripts/kconfig-check.sh), then
# `make O=OBJ OBJ/build/train_gpt2 MAKE-ARGS` builds it (-j$KGPT_JOBS,
# default 2). The log is OBJ.log; on failure its tail goes to stderr and
# the exit status is 1. When BASE, FRAGMENT and MAKE-ARGS are those of
# the last successful build, the configuration is not loaded again, so
# an unchanged step costs one make that has nothing to do.
# Used by `make bench` (scripts/bench.sh) and the ablation matrix
# (scripts/ablation.sh).
set -u

srctree=$(cd "$(dirname "$0")/.." && pwd)
obj=$1
frag=$2
shift 2
base=
if [ $# -gt 0 ] && [ "$1" != -- ]; then
	base=$1
	shift
fi
[ "${1:-}" = -- ] && shift
log=$obj.log
stamp=$obj/.build-input

mkdir -p "$obj"
input() {
	printf 'fragment %s\nmake %s\n' "$frag" "$*"
	cat "$frag"
	[ -z "$base" ] || { echo base; cat "$base"; }
}

fail() {
	echo "*** building ${obj#$srctree/} failed; see ${log#$srctree/}" >&2
	tail -20 "$log" >&2
	exit 1
}

if ! input "$@" | cmp -s - "$stamp" 2>/dev/null || [ ! -x "$obj/build/train_gpt2" ]; then
	rm -f "$stamp"
	if [ -n "$base" ]; then
		[ -r "$base" ] || { echo "*** cannot read the base configuration $base" >&2; exit 1; }
		cp "$base" "$obj/.config"
		"$srctree/scripts/load-config.sh" "$srctree" "$obj" "$frag" merge > "$log" 2>&1 || fail
	else
		"$srctree/scripts/load-config.sh" "$srctree" "$obj" "$frag" defconfig > "$log" 2>&1 || fail
	fi
fi
make -C "$srctree" --no-print-directory O="$obj" -j"${KGPT_JOBS:-2}" "$@" \
	"$obj/build/train_gpt2" >> "$log" 2>&1 || fail
input "$@" > "$stamp"
