#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Model tests: for every configuration fragment tests/configs/NAME.config,
# build the model for it in build/check/NAME (make O=) and run every
# tests/model/test_* binary against it. TAP on stdout.
set -u
srctree=$(cd "$(dirname "$0")/../.." && pwd)
status=0
for cfg in "$srctree"/tests/configs/*.config; do
	name=$(basename "$cfg" .config)
	out=$srctree/build/check/$name
	mkdir -p "$out"
	echo "# model tests for tests/configs/$name.config"
	if ! "$srctree/scripts/load-config.sh" "$srctree" "$out" "$cfg" defconfig >"$out.log" 2>&1 ||
	   ! make -C "$srctree" O="$out" model-tests >>"$out.log" 2>&1; then
		echo "not ok - build the model for $name (see ${out#$srctree/}.log)"
		sed 's/^/# /' "$out.log" | tail -20
		status=1
		continue
	fi
	for t in "$out"/build/tests/model/test_*; do
		[ -x "$t" ] || continue
		echo "# $name: $(basename "$t")"
		(cd "$srctree" && "$t") || status=1
	done
done
exit $status
