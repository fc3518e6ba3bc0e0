#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make data: fetches the vocabulary and tinyshakespeare from the mirror
# (KGPT_DATA_MIRROR) into CONFIG_DATA_DIR and writes both shards; a
# missing shard, train or val, is made again; with everything in place it
# does nothing.
. "$(dirname "$0")/setup.bash"

setup_trainer
export KGPT_DATA_MIRROR=$mirror
new_tmpdir tmp
o=$tmp/tree
cp -a "$objdir" "$o"
rm -rf "$o/reference"
data=$tmp/data
printf 'CONFIG_DATA_DIR="%s"\n' "$data" > "$tmp/frag"
run kmake O="$o" mergeconfig F="$tmp/frag"
is "$RUN_RC" 0 "CONFIG_DATA_DIR set to a fresh folder" || { show_run; done_testing; }

ts=$data/tinyshakespeare
run kmake O="$o" data
is "$RUN_RC" 0 "make data fetches and prepares" || show_run
for f in gpt2/encoder.json gpt2/vocab.bpe tinyshakespeare/tinyshakespeare.txt \
	 tinyshakespeare/tinyshakespeare_train.bin tinyshakespeare/tinyshakespeare_val.bin; do
	ok "$([ -s "$data/$f" ]; echo $?)" "$f is there"
done
cmp -s "$data/gpt2/vocab.bpe" "$KGPT_DATA_MIRROR/vocab.bpe"
ok $? "vocab.bpe is the mirror's"
cp "$ts/tinyshakespeare_train.bin" "$tmp/train.bin"
cp "$ts/tinyshakespeare_val.bin" "$tmp/val.bin"

for shard in train val; do
	rm "$ts/tinyshakespeare_$shard.bin"
	run kmake O="$o" data
	is "$RUN_RC" 0 "make data with the $shard shard missing" || show_run
	same_file "$tmp/$shard.bin" "$ts/tinyshakespeare_$shard.bin" \
		"the $shard shard is made again, byte for byte"
done

run kmake O="$o" data
is "$RUN_RC" 0 "make data with everything in place" || show_run
like "$RUN_ALL" "Nothing to be done for 'data'" "does nothing"

done_testing
