#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# load-config.sh SRCTREE OBJTREE FILE defconfig|merge
#
# defconfig: .config = FILE with every other symbol at its default.
# merge:     .config = the current .config with FILE's lines applied on top.
# Then every line of FILE is checked against the result
# (scripts/kconfig-check.sh): if kconfig-conf dropped or changed anything,
# the previous .config is put back and the exit status is 1. On success the
# configuration header is generated (make prepare).
set -u
srctree=$1
mkdir -p "$2" && objtree=$(cd "$2" && pwd)
file=$3
mode=$4
config=$objtree/.config
export srctree
export KCONFIG_CONFIG=$config

[ -r "$file" ] || { echo "*** Cannot read $file" >&2; exit 1; }
mkdir -p "$objtree"
backup=$(mktemp "$objtree/.config.before.XXXXXX")
trap 'rm -f "$backup" "$objtree/.config.merge"' EXIT
had_config=0
if [ -f "$config" ]; then
	cp "$config" "$backup"
	had_config=1
fi

restore() {
	if [ "$had_config" = 1 ]; then cp "$backup" "$config"; else rm -f "$config"; fi
	echo "*** $file was not loaded: fix the lines above. ${1:-}" >&2
	exit 1
}

input=$file
if [ "$mode" = merge ]; then
	[ "$had_config" = 1 ] || { echo "*** mergeconfig needs a .config to merge into (make defconfig-NAME first)" >&2; exit 1; }
	cat "$config" "$file" > "$objtree/.config.merge"
	input=$objtree/.config.merge
fi
input=$(realpath "$input")

# kconfig-conf warns about a symbol given twice; merging does that on purpose.
(cd "$objtree" && kconfig-conf -s --defconfig="$input" "$srctree/Kconfig") \
	2> >(grep -v "override: reassigning to symbol" >&2) || restore
"$srctree/scripts/kconfig-check.sh" "$srctree" "$file" "$config" || restore
echo "  CONF     $(basename "$file") -> ${config#$srctree/}"
make -f "$srctree/Makefile" O="$objtree" prepare || restore "(header generation failed)"
