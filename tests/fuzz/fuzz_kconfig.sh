#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fuzz_kconfig.sh SECONDS ARTIFACT_DIR: a mutation fuzzer for the
# configuration-fragment checker.
#
# The checker is bash and awk (scripts/load-config.sh runs kconfig-conf,
# then scripts/kconfig-check.sh and scripts/gen-config.sh --check), so
# libFuzzer's in-process, coverage-guided loop does not apply: a C target
# that ran the scripts through popen() would spend all its time starting
# processes and learn nothing from their coverage. This is a plain random
# mutation loop instead, at a few runs per second (one run starts
# kconfig-conf, awk and sometimes make): it takes the shipped
# configuration files (defconfigs/*, tests/*/*.config, and
# tests/fuzz/corpus/kconfig/, whose files are also replayed first, as
# they are), applies 1..4 mutations (a random byte replaced, a line of
# another file spliced in, a line deleted or doubled, a value replaced by
# an awkward one, a symbol name misspelt, a line turned into "is not
# set") and feeds the result through one of the three doors of
# tests/kconfig/bad-input.sh:
#   merge:   scripts/load-config.sh ... merge (make mergeconfig F=)
#   recipe:  scripts/load-config.sh ... defconfig (make defconfig-NAME)
#   edit:    the file as .config, then make prepare
# Every run must end within 30 s with status 0 or 1 (make: 0 or 2),
# print no shell or awk error of the scripts themselves, and, when it
# rejects, leave .config as it was (merge, recipe: the previous .config;
# edit: the user's file) and no temporary file beside it.
#
# KGPT_FUZZ_SEED fixes the random sequence (printed, so a failure can be
# repeated). A failing input is copied into ARTIFACT_DIR and printed.
# The last line is "execs N seconds S accepted A rejected R failures F".
set -u

seconds=${1:-60}
artifacts=${2:-.}
srctree=$(cd "$(dirname "$0")/../.." && pwd)
seed=${KGPT_FUZZ_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$seed

unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS KCONFIG_CONFIG \
	O V TIME GPT2_MAX_TIME BASELINE KGPT_TIME_OVERRIDE KGPT_BASELINE_OVERRIDE

work=$(mktemp -d "${TMPDIR:-/tmp}/kgpt-fuzz-kconfig.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
obj=$work/o
mkdir -p "$artifacts"

seeds=("$srctree"/defconfigs/* "$srctree"/tests/*/*.config)
replay=()
for f in "$srctree"/tests/fuzz/corpus/kconfig/*; do
	[ -f "$f" ] && replay+=("$f") && seeds+=("$f")
done
mapfile -t symbols < <(find "$srctree" -name 'Kconfig*' -not -path '*/build/*' \
	-not -path '*/.git/*' -exec awk '/^(menu)?config /{print $2}' {} + | sort -u)
values=(0 1 -1 8 2147483647 2147483648 -2147483649 99999999999999999999 y n m
	'""' '"' '"x' '"0.1' '"1e400"' '"nan"' '"-0"' '"0x10"' '"6e-4"' '" 6e-4"'
	'"1,2,,3"' '"a/b/c"' '"a b"' "\"$(printf 'x%.0s' {1..300})\"" '0x10' '010'
	' 8' '8 # comment' '8	' '"\"' '"\\"' '"$(id)"' '`id`' '%s%n' '' '=' '==')

echo "# fuzz_kconfig: seed $seed, ${#seeds[@]} files, ${#symbols[@]} symbols, ${seconds}s"

# The starting point of every run: gpt2-tiny, generated headers included.
if ! "$srctree/scripts/load-config.sh" "$srctree" "$obj" \
	"$srctree/defconfigs/gpt2-tiny" defconfig >"$work/setup.log" 2>&1; then
	echo "# fuzz_kconfig: cannot load gpt2-tiny:"
	sed 's/^/# /' "$work/setup.log"
	echo "execs 0 seconds 0 accepted 0 rejected 0 failures 1"
	exit 1
fi
cp "$obj/.config" "$work/base.config"

rnd() {		# rnd N: 0..N-1, also for N > 32768
	echo $(( (RANDOM << 15 | RANDOM) % $1 ))
}

nlines() {
	local n
	n=$(wc -l < "$1")
	echo $((n > 0 ? n : 1))
}

# Replace one byte at a random offset by a random byte (NUL included).
flip_byte() {
	local f=$1 size
	size=$(stat -c %s "$f")
	[ "$size" -gt 0 ] || return
	printf "\\x$(printf %02x $(rnd 256))" |
		dd of="$f" bs=1 seek="$(rnd "$size")" conv=notrunc status=none
}

# edit_line FILE LINENO ACTION [TEXT]: insert before, delete or double a line.
edit_line() {
	TEXT=${4:-} awk -v k="$2" -v act="$3" '
	NR == k && act == "insert" { print ENVIRON["TEXT"] }
	NR == k && act == "delete" { next }
	NR == k && act == "double" { print }
	{ print }
	END { if (k > NR && act == "insert") print ENVIRON["TEXT"] }' "$1" > "$1.tmp" &&
		mv "$1.tmp" "$1"
}

random_line_of() {
	local f=$1
	sed -n "$(( $(rnd "$(nlines "$f")") + 1 ))p" "$f"
}

mutate_once() {
	local f=$1 k sym val line
	k=$(( $(rnd $(( $(nlines "$f") + 1 ))) + 1 ))
	case $(rnd 8) in
	0 | 1)	flip_byte "$f" ;;
	2)	line=$(random_line_of "${seeds[$(rnd ${#seeds[@]})]}")
		edit_line "$f" "$k" insert "$line" ;;
	3)	edit_line "$f" "$k" delete ;;
	4)	edit_line "$f" "$k" double ;;
	5)	sym=${symbols[$(rnd ${#symbols[@]})]}
		val=${values[$(rnd ${#values[@]})]}
		edit_line "$f" "$k" insert "CONFIG_$sym=$val" ;;
	6)	line=$(sed -n "${k}p" "$f")
		if [[ $line == CONFIG_*=* ]]; then
			val=${values[$(rnd ${#values[@]})]}
			edit_line "$f" "$k" delete
			edit_line "$f" "$k" insert "${line%%=*}=$val"
		else
			flip_byte "$f"
		fi ;;
	7)	line=$(sed -n "${k}p" "$f")
		sym=${line%%=*}
		if [[ $line == CONFIG_*=* ]]; then
			edit_line "$f" "$k" delete
			if [ $(rnd 2) = 0 ]; then
				edit_line "$f" "$k" insert "# $sym is not set"
			else
				edit_line "$f" "$k" insert "${sym:0:$(rnd ${#sym})}${sym:$(( $(rnd ${#sym}) + 1 ))}=${line#*=}"
			fi
		else
			flip_byte "$f"
		fi ;;
	esac
}

make_mutant() {
	local out=$1 i
	cp "${seeds[$(rnd ${#seeds[@]})]}" "$out"
	for ((i = 0; i <= $(rnd 4); i++)); do
		mutate_once "$out"
	done
}

execs=0 accepted=0 rejected=0 failures=0

# What bash, awk or a dying program print: never part of a message.
broken='(^|/)(load-config|kconfig-check|gen-config|gen-config-text)\.sh: line [0-9]+: '
broken+='|^(g|m)?awk: |[Ss]egmentation fault|Aborted|core dumped'

failure() {
	local input=$1 door=$2 why=$3 keep
	failures=$((failures + 1))
	keep=$artifacts/kconfig-$door-$seed-$execs
	cp "$input" "$keep"
	echo "# fuzz_kconfig: FAILURE ($door): $why"
	echo "# input saved as $keep (base64: $(base64 -w0 < "$input"))"
	sed 's/^/#   stderr: /' "$work/err" | head -20
}

# run_door FILE DOOR: one run and its checks.
run_door() {
	local input=$1 door=$2 rc expect
	cp "$work/base.config" "$obj/.config"
	rm -f "$obj"/.config.request
	case $door in
	merge | recipe)
		timeout -k 5 30 "$srctree/scripts/load-config.sh" "$srctree" "$obj" "$input" \
			"$([ "$door" = merge ] && echo merge || echo defconfig)" >"$work/out" 2>"$work/err"
		rc=$?
		expect=$work/base.config
		;;
	edit)
		cp "$input" "$obj/.config"
		timeout -k 5 30 make -s -C "$srctree" O="$obj" prepare >"$work/out" 2>"$work/err"
		rc=$?
		[ "$rc" = 2 ] && rc=1
		expect=$input
		;;
	esac
	execs=$((execs + 1))
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		failure "$input" "$door" "no answer within 30 s"
		return
	elif [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
		failure "$input" "$door" "exit status $rc"
		return
	fi
	if grep -Eq "$broken" "$work/err"; then
		failure "$input" "$door" "a script, awk or a program failed (stderr below)"
		return
	fi
	if [ "$rc" = 0 ]; then
		accepted=$((accepted + 1))
		return
	fi
	rejected=$((rejected + 1))
	if ! cmp -s "$expect" "$obj/.config"; then
		failure "$input" "$door" "rejected, but .config changed"
	elif [ "$door" != edit ] && compgen -G "$obj/.config.[bm]*" >/dev/null; then
		failure "$input" "$door" "rejected, but left $(cd "$obj" && ls -d .config.[bm]*)"
	fi
}

doors=(merge recipe edit)
start=$SECONDS

# The corpus as it is (regressions and edge cases), through every door.
for f in "${replay[@]}"; do
	for d in "${doors[@]}"; do
		run_door "$f" "$d"
	done
done

mutant=$work/mutant
while [ $((SECONDS - start)) -lt "$seconds" ]; do
	make_mutant "$mutant"
	run_door "$mutant" "${doors[$(rnd 3)]}"
done

echo "execs $execs seconds $((SECONDS - start)) accepted $accepted rejected $rejected failures $failures"
[ "$failures" = 0 ]
