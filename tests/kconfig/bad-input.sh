#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Bad configuration input must fail loudly: a non-zero exit, a message
# naming the symbol and the requested value (and the value kconfig would
# have used instead, where there is one), and the previous .config left
# byte-identical. kconfig-conf itself accepts almost all of these
# silently (docs: kconfig-frontends 4.11), so this guards the checks in
# scripts/kconfig-check.sh and scripts/gen-config.sh.
#
# Every case goes through three doors, each on a gpt2-tiny tree
# (n_layer 4; the cases that need it set n_embd 128, so D_ff = 512):
#   merge:   make mergeconfig F=fragment
#   recipe:  a defconfig file (gpt2-tiny plus the bad lines) loaded by
#            scripts/load-config.sh, as make defconfig-NAME does
#   edit:    the lines written into .config by hand, then make prepare

. "$(dirname "$0")/../lib.sh"

need kconfig-conf make || done_testing
new_tmpdir tmp

base=$tmp/base
run kmake O="$base" defconfig-gpt2-tiny
is "$RUN_RC" 0 "gpt2-tiny loads (the starting point)" || { show_run; done_testing; }

# A copy of the gpt2-tiny tree, .config and generated headers included.
fresh_tree() {
	rm -rf "$1"
	cp -a "$base" "$1"
}

# Lines of FILE, less those that set any symbol named in the fragment.
without_symbols() {
	local file=$1 frag=$2 syms
	syms=$(grep -oE '^(# )?CONFIG_[A-Za-z0-9_]+' "$frag" | sed 's/^# //' | sort -u | paste -sd'|')
	if [ -n "$syms" ]; then
		grep -vE "^(# )?($syms)[= ]" "$file"
	else
		cat "$file"
	fi
}

# check_case NAME FRAGMENT_LINES... -- ERE...
# Each ERE must match the combined output of the failing command.
n_case=0
check_case() {
	local name=$1 lines=() res=() door o frag re
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do lines+=("$1"); shift; done
	shift
	res=("$@")
	n_case=$((n_case + 1))
	frag=$tmp/case$n_case.frag
	printf '%s\n' "${lines[@]}" > "$frag"
	for door in merge recipe edit; do
		o=$tmp/case$n_case.$door
		fresh_tree "$o"
		case $door in
		merge)
			cp "$o/.config" "$o/.config.before"
			run kmake O="$o" mergeconfig F="$frag"
			;;
		recipe)
			{ without_symbols "$srctree/defconfigs/gpt2-tiny" "$frag"; cat "$frag"; } > "$o/recipe"
			cp "$o/.config" "$o/.config.before"
			run env O="$o" "$srctree/scripts/load-config.sh" "$srctree" "$o" "$o/recipe" defconfig
			;;
		edit)
			{ without_symbols "$base/.config" "$frag"; cat "$frag"; } > "$o/.config"
			cp "$o/.config" "$o/.config.before"
			run kmake O="$o" prepare
			;;
		esac
		isnt "$RUN_RC" 0 "$name ($door): fails" || show_run
		for re in "${res[@]}"; do
			like "$RUN_ALL" "$re" "$name ($door): the message matches /$re/"
		done
		same_file "$o/.config.before" "$o/.config" "$name ($door): .config is unchanged"
	done
}

check_case "unknown symbol" \
	'CONFIG_GPT2_N_LAYERS=6' -- \
	'CONFIG_GPT2_N_LAYERS=6'

check_case "int out of its Kconfig range" \
	'CONFIG_GPT2_N_LAYER=200' -- \
	'CONFIG_GPT2_N_LAYER=200.*[^0-9]4([^0-9]|$)'

check_case "value whose dependency is off" \
	'CONFIG_KV_PRUNE_K=100' -- \
	'CONFIG_KV_PRUNE_K=100.*depend'

check_case "empty output folder" \
	'CONFIG_OUTPUT_DIR=""' -- \
	'CONFIG_OUTPUT_DIR is empty'

check_case "malformed line" \
	'CONFIG_SEED 7' -- \
	'malformed.*CONFIG_SEED 7'

check_case "invalid float string" \
	'CONFIG_LEARNING_RATE="6e-4x"' -- \
	'CONFIG_LEARNING_RATE=?"?6e-4x'

check_case "float out of its range" \
	'CONFIG_GPT2_DROPOUT="0.95"' -- \
	'CONFIG_GPT2_DROPOUT.*0\.95.*0\.9'

check_case "duplicate symbol" \
	'CONFIG_SEED=1' 'CONFIG_SEED=2' -- \
	'CONFIG_SEED.*twice' 'CONFIG_SEED=1([^0-9]|$)' 'CONFIG_SEED=2([^0-9]|$)'

check_case "n_embd not a multiple of n_head" \
	'CONFIG_GPT2_N_EMBD=128' 'CONFIG_GPT2_N_HEAD=3' -- \
	'CONFIG_GPT2_N_EMBD=128.*CONFIG_GPT2_N_HEAD=3'

check_case "R_ff >= D_ff" \
	'CONFIG_GPT2_N_EMBD=128' 'CONFIG_RMLP=y' 'CONFIG_RMLP_R_FF=600' -- \
	'CONFIG_RMLP_R_FF=600.*512'

check_case "per-layer R_ff list with the wrong count" \
	'CONFIG_RMLP=y' 'CONFIG_RMLP_R_FF_PER_LAYER="64,64"' -- \
	'CONFIG_RMLP_R_FF_PER_LAYER=?"?64,64.*[^0-9]4([^0-9]|$)'

check_case "per-layer R_ff entry >= D_ff" \
	'CONFIG_GPT2_N_EMBD=128' 'CONFIG_RMLP=y' 'CONFIG_RMLP_R_FF_PER_LAYER="64,64,600,64"' -- \
	'CONFIG_RMLP_R_FF_PER_LAYER.*600'

check_case "KV_PRUNE_RECENCY >= KV_PRUNE_K" \
	'CONFIG_KV_CACHE_PRUNE=y' 'CONFIG_KV_PRUNE_K=32' 'CONFIG_KV_PRUNE_RECENCY=48' -- \
	'CONFIG_KV_PRUNE_RECENCY=48.*CONFIG_KV_PRUNE_K=32'

check_case "KV_PRUNE_K > block_size" \
	'CONFIG_KV_CACHE_PRUNE=y' 'CONFIG_KV_PRUNE_K=100' -- \
	'CONFIG_KV_PRUNE_K=100.*CONFIG_GPT2_BLOCK_SIZE=64'

check_case "MAX_TIME and MAX_ITERS both 0" \
	'CONFIG_GPT2_MAX_TIME=0' 'CONFIG_GPT2_MAX_ITERS=0' -- \
	'CONFIG_GPT2_MAX_TIME.*CONFIG_GPT2_MAX_ITERS.*0'

# A recipe name that does not exist.
o=$tmp/missing
fresh_tree "$o"
cp "$o/.config" "$o/.config.before"
run kmake O="$o" defconfig-no-such-recipe
isnt "$RUN_RC" 0 "missing defconfig name: fails"
like "$RUN_ALL" 'no-such-recipe' "missing defconfig name: the message names it"
like "$RUN_ALL" 'gpt2-tiny' "missing defconfig name: the message lists the recipes"
same_file "$o/.config.before" "$o/.config" "missing defconfig name: .config is unchanged"

# A fragment file that does not exist.
run kmake O="$o" mergeconfig F="$tmp/no-such-fragment"
isnt "$RUN_RC" 0 "missing fragment file: fails"
like "$RUN_ALL" 'no-such-fragment' "missing fragment file: the message names it"
same_file "$o/.config.before" "$o/.config" "missing fragment file: .config is unchanged"

# A failed edit does not poison the tree: fixing .config makes prepare pass.
o=$tmp/recover
fresh_tree "$o"
sed -i 's/^CONFIG_GPT2_N_LAYER=4$/CONFIG_GPT2_N_LAYER=500/' "$o/.config"
run kmake O="$o" prepare
isnt "$RUN_RC" 0 "hand-edited out-of-range n_layer: make prepare fails"
like "$RUN_ALL" 'CONFIG_GPT2_N_LAYER=500.*[^0-9]4([^0-9]|$)' "the message names the symbol, 500 and 4"
grep -qx 'CONFIG_GPT2_N_LAYER=500' "$o/.config"
ok $? "the user's edit is still in .config"
sed -i 's/^CONFIG_GPT2_N_LAYER=500$/CONFIG_GPT2_N_LAYER=6/' "$o/.config"
run kmake O="$o" prepare
is "$RUN_RC" 0 "after fixing the value make prepare succeeds" || show_run
has_line "$o/include/generated/autoconf.h" '#define CONFIG_GPT2_N_LAYER 6' "autoconf.h has the fixed value"

done_testing
