#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fetch-data.sh DEST_DIR [FILE...]
#
# Put the reference data files into DEST_DIR: tinyshakespeare.txt,
# encoder.json and vocab.bpe (all three unless FILEs name some of them).
# With $KGPT_DATA_MIRROR set, they are copied from that directory (offline
# use); otherwise they are downloaded with curl. Every file is checked
# (size and MD5) before it is moved into place, so DEST_DIR never holds a
# partial or corrupt file; a file already there and correct is kept.
# Exit status: 0 all present, 1 a file could not be had, 2 bad usage.

set -u

declare -A URL SIZE MD5
URL[tinyshakespeare.txt]=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
URL[encoder.json]=https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json
URL[vocab.bpe]=https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe
SIZE[tinyshakespeare.txt]=1115394
SIZE[encoder.json]=1042301
SIZE[vocab.bpe]=456318
MD5[tinyshakespeare.txt]=6fb458f1232090904fb40fe944165e91
MD5[encoder.json]=dffec25a898b1f5e569bec4dffd7e5c0
MD5[vocab.bpe]=75a37753dd7a28a2c5df80c28bf06e4e

prog=fetch-data.sh
tmp=

usage() {
	echo "usage: $prog DEST_DIR [tinyshakespeare.txt|encoder.json|vocab.bpe ...]" >&2
	echo "  set KGPT_DATA_MIRROR=/path/to/dir to copy the files instead of downloading" >&2
	exit 2
}

cleanup() {
	[ -n "$tmp" ] && rm -f -- "$tmp"
	tmp=
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

fail() {	# FILE REASON
	echo "$prog: cannot get $1: $2" >&2
	if [ -n "${KGPT_DATA_MIRROR:-}" ]; then
		echo "  KGPT_DATA_MIRROR=$KGPT_DATA_MIRROR must hold a correct $1" >&2
	else
		echo "  for offline use set KGPT_DATA_MIRROR=/path/to/dir holding" \
		     "tinyshakespeare.txt, encoder.json and vocab.bpe" >&2
	fi
	cleanup
	exit 1
}

# check FILE PATH: 0 when PATH has FILE's size and MD5; else prints why.
check() {
	local size sum
	size=$(stat -c %s -- "$2" 2>/dev/null) || { echo "missing"; return 1; }
	if [ "$size" != "${SIZE[$1]}" ]; then
		echo "size is $size bytes, expected ${SIZE[$1]}"
		return 1
	fi
	sum=$(md5sum -- "$2" | cut -d' ' -f1)
	if [ "$sum" != "${MD5[$1]}" ]; then
		echo "md5 is $sum, expected ${MD5[$1]}"
		return 1
	fi
	return 0
}

fetch() {	# FILE DEST_DIR
	local f=$1 dest=$2/$1 why
	if check "$f" "$dest" >/dev/null; then
		return 0
	fi
	tmp=$(mktemp "$2/.$f.XXXXXX") || fail "$f" "cannot create a file in $2"
	if [ -n "${KGPT_DATA_MIRROR:-}" ]; then
		[ -f "$KGPT_DATA_MIRROR/$f" ] || fail "$f" "$KGPT_DATA_MIRROR/$f does not exist"
		cp -- "$KGPT_DATA_MIRROR/$f" "$tmp" || fail "$f" "copy from $KGPT_DATA_MIRROR failed"
	else
		command -v curl >/dev/null || fail "$f" "curl is not installed"
		curl -fsSL --retry 2 --connect-timeout 20 -o "$tmp" -- "${URL[$f]}" ||
			fail "$f" "download of ${URL[$f]} failed"
	fi
	why=$(check "$f" "$tmp") || fail "$f" "the copy is corrupt: $why"
	chmod 644 -- "$tmp"
	mv -f -- "$tmp" "$dest" || fail "$f" "cannot move it to $dest"
	tmp=
	echo "$prog: $dest ok"
}

[ $# -ge 1 ] || usage
dir=$1
shift
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(tinyshakespeare.txt encoder.json vocab.bpe)
for f in "${files[@]}"; do
	[ -n "${URL[$f]:-}" ] || { echo "$prog: unknown file $f" >&2; usage; }
done
mkdir -p -- "$dir" || { echo "$prog: cannot create $dir" >&2; exit 1; }
for f in "${files[@]}"; do
	fetch "$f" "$dir"
done
exit 0
