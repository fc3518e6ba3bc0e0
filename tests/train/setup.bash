# SPDX-License-Identifier: MIT
#
# tests/train/setup.bash: sourced by the trainer tests (tests/train/*.sh).
#
# Builds the trainer for tests/train/tiny.config once in
# build/check/train (20 steps in about a second), prepares a small
# tinyshakespeare dataset beside it, and offers:
#   workdir VAR      a fresh directory with data/ linked in; the trainer
#                    runs there, so its OUTPUT_DIR "out" is VAR/out
#   train DIR ARGS   run the trainer in DIR (sets RUN_RC, RUN_OUT, ...)
#   reference        the uninterrupted 20-step run, made once per build:
#                    $ref/model.bin and $ref/metrics (see rows)
#   rows FILE        metrics.jsonl without the timing fields
#   field, moved     a metrics row's value; a per-layer value that trained
#   resumed_equals   stop at step 20, resume, compare with the straight run
# One OpenMP thread: the comparisons need a fixed reduction order and the
# tests must not slow down on a busy machine.

. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

export OMP_NUM_THREADS=1
objdir=${KGPT_TRAIN_BUILD:-$srctree/build/check/train}
trainer=$objdir/build/train_gpt2
mirror=${KGPT_DATA_MIRROR:-$srctree/../shared/data}
ref=$objdir/reference

# setup_trainer [CONFIG]: build (incrementally) for CONFIG (default
# tests/train/tiny.config) in $objdir and prepare the data; a failure ends
# the test. Set KGPT_TRAIN_BUILD before sourcing to use another $objdir.
setup_trainer() {
	local cfg=${1:-$srctree/tests/train/tiny.config} log=$objdir.log

	mkdir -p "$objdir"
	if [ ! -f "$objdir/.config" ] || [ "$cfg" -nt "$objdir/.config" ]; then
		if ! O=$objdir "$srctree/scripts/load-config.sh" "$srctree" "$objdir" "$cfg" \
			defconfig >"$log" 2>&1; then
			fail "load ${cfg#$srctree/}" "$(tail -20 "$log")"
			done_testing
		fi
	fi
	if ! kmake O="$objdir" build >"$log" 2>&1; then
		fail "build the trainer for ${cfg#$srctree/}" "$(tail -20 "$log")"
		done_testing
	fi
	if [ ! -s "$objdir/data/tinyshakespeare/tinyshakespeare_val.bin" ]; then
		mkdir -p "$objdir/data/gpt2" "$objdir/data/tinyshakespeare"
		ln -sf "$mirror/encoder.json" "$mirror/vocab.bpe" "$objdir/data/gpt2/"
		head -c 200000 "$mirror/tinyshakespeare.txt" > "$objdir/data/ts.txt"
		if ! "$objdir/build/prepare_data" --input "$objdir/data/ts.txt" \
			--out "$objdir/data/tinyshakespeare" --name tinyshakespeare \
			--vocab "$objdir/data/gpt2" >"$log" 2>&1; then
			fail "prepare the test dataset" "$(tail -20 "$log")"
			done_testing
		fi
	fi
}

# workdir VAR: a fresh directory holding a copy of the dataset (tests
# may damage it) and links to the vocabulary.
workdir() {
	local _wd
	new_tmpdir _wd
	mkdir -p "$_wd/data/gpt2"
	cp -r "$objdir/data/tinyshakespeare" "$_wd/data/"
	ln -s "$objdir/data/gpt2/encoder.json" "$objdir/data/gpt2/vocab.bpe" "$_wd/data/gpt2/"
	printf -v "$1" '%s' "$_wd"
}

# train DIR ARGS...: the trainer in DIR.
train() {
	local d=$1
	shift
	run bash -c 'cd "$1" && shift && exec "$@"' _ "$d" "$trainer" "$@"
}

# rows FILE: metrics without elapsed_s and tokens_per_s (they are timings).
rows() {
	sed -e 's/"elapsed_s":[^,}]*,\{0,1\}//' -e 's/"tokens_per_s":[^,}]*,\{0,1\}//' "$1"
}

# The uninterrupted run, once per trainer binary.
reference() {
	local w
	if [ -s "$ref/model.bin" ] && [ "$ref/model.bin" -nt "$trainer" ]; then
		return 0
	fi
	workdir w
	train "$w" --fresh
	if [ "$RUN_RC" != 0 ] || [ ! -f "$w/out/latest/summary.json" ]; then
		fail "the uninterrupted reference run" "$RUN_ALL"
		done_testing
	fi
	rm -rf "$ref"
	mkdir -p "$ref"
	rows "$w/out/latest/metrics.jsonl" > "$ref/metrics"
	cp "$w/out/latest/model.bin" "$ref/model.bin"
}

# same_as_reference DIR WHAT: DIR/out/latest ended exactly as the reference.
same_as_reference() {
	local run=$1/out/latest
	rows "$run/metrics.jsonl" > "$1/metrics.rows"
	same_file "$1/metrics.rows" "$ref/metrics" "$2: metrics.jsonl rows identical to the uninterrupted run"
	same_file "$run/model.bin" "$ref/model.bin" "$2: final model.bin identical (cmp)"
}

# field ROW KEY: KEY's value in a metrics row: "a,b" for an array, else the
# number.
field() {
	local v
	v=$(printf '%s\n' "$1" | sed -n "s/.*\"$2\":\\[\\([^]]*\\)\\].*/\\1/p")
	[ -n "$v" ] || v=$(printf '%s\n' "$1" | sed -n "s/.*\"$2\":\\([^,}]*\\).*/\\1/p")
	printf '%s' "$v"
}

# moved FIRST LAST KEY INIT [MIN]: every layer's KEY in row LAST differs
# from INIT by more than MIN (default 1e-3) and was within 3e-3 of it in
# row FIRST, after step 1 (one step of AdamW moves a parameter by about the
# learning rate, 1e-3 at step 1); two layers.
moved() {
	awk -v a="$(field "$1" "$3")" -v b="$(field "$2" "$3")" -v init="$4" -v min="${5:-1e-3}" '
	BEGIN {
		n = split(a, x, ","); split(b, y, ",")
		for (i = 1; i <= n; i++) {
			d0 = x[i] - init; d1 = y[i] - init
			if (d0 < -3e-3 || d0 > 3e-3 || (d1 > -min && d1 < min)) exit 1
		}
		exit n == 2 ? 0 : 1 }'
}

# resumed_equals FRESH WHAT: a run stopped at step 20 and resumed to the
# end gives every metrics row of the straight run in FRESH (the folder of
# train --fresh) and its model.bin; WHAT names what the rows hold.
resumed_equals() {
	local w2
	workdir w2
	train "$w2" --stop-at 20
	is "$RUN_RC" 0 "--stop-at 20" || show_run
	train "$w2"
	is "$RUN_RC" 0 "resumed for the remaining steps" || show_run
	rows "$w2/out/latest/metrics.jsonl" > "$w2/resumed.rows"
	rows "$1/out/latest/metrics.jsonl" > "$w2/fresh.rows"
	same_file "$w2/resumed.rows" "$w2/fresh.rows" \
		"20 + resumed steps: every row ($2) as in the straight run"
	same_file "$w2/out/latest/model.bin" "$1/out/latest/model.bin" \
		"and the same model.bin (cmp)"
}

# Wait (up to 20 s) until FILE has at least N lines.
wait_lines() {
	local i
	for ((i = 0; i < 2000; i++)); do
		[ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0
		sleep 0.01
	done
	return 1
}

# Can this process mount a tmpfs (root with CAP_SYS_ADMIN)?
can_mount() {
	local _md
	new_tmpdir _md
	mount -t tmpfs -o size=64k tmpfs "$_md" 2>/dev/null || return 1
	umount "$_md"
}
