#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fineweb-edu.sh DATA_DIR PREPARE_DATA NFILES SHARD_TOKENS
#
# `make data` for FineWeb-Edu (CONFIG_GPT2_DATASET_FINEWEBEDU): the first
# NFILES (1..14) parquet files of the HuggingFace dataset
# HuggingFaceFW/fineweb-edu, config sample/10BT,
#   sample/10BT/000_00000.parquet ... sample/10BT/013_00000.parquet,
# their `text` column tokenized by PREPARE_DATA --records into llm.c's
# shards of SHARD_TOKENS tokens:
#   DATA_DIR/edu_fineweb10B/edu_fineweb_val_000000.bin,
#   DATA_DIR/edu_fineweb10B/edu_fineweb_train_000001.bin, ...
# Parquet files: downloaded with curl to
# DATA_DIR/fineweb-edu/sample/10BT/NNN_00000.parquet (a temporary name
# until complete); with $KGPT_DATA_MIRROR set, read in place from
# $KGPT_DATA_MIRROR/fineweb-edu/sample/10BT/NNN_00000.parquet, and nothing
# is downloaded: missing files are named with their URL.
#
# Shards appear only whole (temporary file, then rename), and
# edu_fineweb.progress says where the next one starts, so a run that
# failed or was interrupted continues from there. edu_fineweb.done marks
# a finished preparation ("files N shard_tokens S shards K"); a later run
# with the same settings checks the shards and does nothing, one with
# more files continues the same token stream. See docs/data.md.
# Exit status: 0 done, 1 error, 2 bad usage.

set -euo pipefail

prog=fineweb-edu.sh
base=https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu/resolve/main
sub=fineweb-edu/sample/10BT
name=edu_fineweb
srctree=$(cd "$(dirname "$0")/.." && pwd)
reader=$srctree/scripts/parquet/parquet-text.mjs
tmp=

usage() {
	echo "usage: $prog DATA_DIR PREPARE_DATA NFILES(1..14) SHARD_TOKENS" >&2
	exit 2
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# Temporary files of this script and of prepare_data (shard_write() and
# the progress file write NAME.tmpXXXXXX, curl NNN_00000.parquet.part.*):
# a run that was killed may leave some; the next run removes them too.
cleanup() {
	[ -n "$tmp" ] && rm -f -- "$tmp"
	tmp=
	[ -n "${out:-}" ] && rm -f -- "$out/$name"_*.bin.tmp?????? "$out/$name".progress.tmp??????
	return 0
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

[ $# = 4 ] || usage
data=$1 prepare=$2 nfiles=$3 shard_tokens=$4
[[ $nfiles =~ ^[0-9]+$ ]] && [ "$nfiles" -ge 1 ] && [ "$nfiles" -le 14 ] || usage
[[ $shard_tokens =~ ^[1-9][0-9]{0,9}$ ]] && [ "$shard_tokens" -le 2147483647 ] || usage
[ -x "$prepare" ] || die "$prepare is not built (make prepare_data)"
out=$data/edu_fineweb10B
done_file=$out/$name.done
progress=$out/$name.progress

command -v node >/dev/null ||
	die "node is not installed; scripts/install-deps.sh installs it (Debian: nodejs, npm)"
[ -f "$srctree/scripts/parquet/node_modules/hyparquet/package.json" ] ||
	die "the parquet reader is not installed: scripts/install-deps.sh (npm ci in scripts/parquet)"

# shards_ok K: the K shards are there, all of SHARD_TOKENS tokens but the
# last (1024-byte header, 2 bytes a token); else names the first that is not.
shards_ok() {
	local k size full=$((1024 + 2 * shard_tokens)) f
	for ((k = 0; k < $1; k++)); do
		if [ "$k" = 0 ]; then
			f=$(printf '%s/%s_val_%06d.bin' "$out" "$name" 0)
		else
			f=$(printf '%s/%s_train_%06d.bin' "$out" "$name" "$k")
		fi
		size=$(stat -c %s -- "$f" 2>/dev/null) || { echo "$f is missing"; return 1; }
		if [ "$size" -gt "$full" ] || { [ "$k" -lt $(($1 - 1)) ] && [ "$size" != "$full" ]; }; then
			echo "$f has $size bytes, not $full"
			return 1
		fi
	done
}

# A finished preparation: the same one again is checked and kept.
if [ -f "$done_file" ]; then
	read -r _ d_files _ d_tokens _ d_shards < "$done_file" || true
	[ "${d_tokens:-}" = "$shard_tokens" ] ||
		die "$out holds shards of ${d_tokens:-?} tokens, not $shard_tokens" \
		    "(CONFIG_FINEWEB_SHARD_TOKENS); set it back, or remove $out to start over"
	[ "${d_files:-0}" -le "$nfiles" ] ||
		die "$out was prepared from $d_files parquet files, more than $nfiles" \
		    "(CONFIG_FINEWEB_FILES); set it back, or remove $out to start over"
	if [ "$d_files" = "$nfiles" ]; then
		if why=$(shards_ok "$d_shards"); then
			echo "$prog: $out: $d_shards shards from $nfiles files, up to date"
			exit 0
		fi
		echo "$prog: $why; preparing all shards again"
		rm -f -- "$progress"
	fi
	rm -f -- "$done_file"
fi

# The parquet files: from the mirror, or downloaded.
files=() missing=()
for ((i = 0; i < nfiles; i++)); do
	f=$(printf '%03d_00000.parquet' "$i")
	if [ -n "${KGPT_DATA_MIRROR:-}" ]; then
		files+=("$KGPT_DATA_MIRROR/$sub/$f")
		[ -f "$KGPT_DATA_MIRROR/$sub/$f" ] || missing+=("$f")
	else
		files+=("$data/$sub/$f")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	{
		echo "$prog: KGPT_DATA_MIRROR=$KGPT_DATA_MIRROR lacks ${#missing[@]} of the" \
		     "$nfiles FineWeb-Edu parquet files (CONFIG_FINEWEB_FILES). Fetch each"
		echo "  from URL into the path shown, then run make data again:"
		for f in "${missing[@]}"; do
			echo "  $base/sample/10BT/$f -> $KGPT_DATA_MIRROR/$sub/$f"
		done
		echo "  (or leave KGPT_DATA_MIRROR unset to download them into $data/$sub)"
	} >&2
	exit 1
fi

# is_parquet FILE: starts and ends with the magic PAR1.
is_parquet() {
	[ "$(head -c 4 -- "$1")" = PAR1 ] && [ "$(tail -c 4 -- "$1")" = PAR1 ]
}

if [ -z "${KGPT_DATA_MIRROR:-}" ]; then
	mkdir -p -- "$data/$sub" || die "cannot create $data/$sub"
	rm -f -- "$data/$sub"/*.parquet.part.??????
	command -v curl >/dev/null || die "curl is not installed (scripts/install-deps.sh)"
	for f in "${files[@]}"; do
		[ -f "$f" ] && continue
		url=$base/sample/10BT/$(basename "$f")
		echo "$prog: downloading $url"
		tmp=$(mktemp "$f.part.XXXXXX") || die "cannot create a file in $data/$sub"
		curl -fL --retry 3 --connect-timeout 20 -o "$tmp" -- "$url" ||
			die "download of $url failed; or put the files under \$KGPT_DATA_MIRROR/$sub"
		is_parquet "$tmp" || die "$url: the download is not a parquet file"
		chmod 644 -- "$tmp"
		mv -f -- "$tmp" "$f"
		tmp=
	done
fi

# Tokenize: from the start, or from where the last run stopped.
first_doc=0
if [ -f "$progress" ]; then
	read -r _ _ _ first_doc _ < "$progress" || true
	[[ $first_doc =~ ^[0-9]+$ ]] ||
		die "$progress is damaged; remove $out to start over"
	echo "$prog: continuing from $progress: $(cat "$progress")"
fi
mkdir -p -- "$out" || die "cannot create $out"
cleanup
set +e
node "$reader" --skip "$first_doc" "${files[@]}" |
	"$prepare" --records --shard-tokens "$shard_tokens" --out "$out" --name "$name" \
		--vocab "$data/gpt2" --resume --first-doc "$first_doc"
status=("${PIPESTATUS[@]}")
set -e
if [ "${status[0]}" != 0 ] || [ "${status[1]}" != 0 ]; then
	die "preparing $out failed (above); its full shards are kept and make data continues" \
	    "from $progress"
fi

# The progress file names the last shard's start: it is shard K when that
# one exists (shorter than the others), else the shards end before K.
read -r _ last _ < "$progress" || die "$progress is missing after preparing"
shards=$last
[ -f "$(printf '%s/%s_train_%06d.bin' "$out" "$name" "$last")" ] && shards=$((last + 1))
why=$(shards_ok "$shards") || die "$why after preparing; remove $out to start over"
tmp=$(mktemp "$done_file.XXXXXX")
echo "files $nfiles shard_tokens $shard_tokens shards $shards" > "$tmp"
chmod 644 -- "$tmp"
mv -f -- "$tmp" "$done_file"
tmp=
echo "$prog: $out: $shards shards from $nfiles files"
