#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Bad input: missing, truncated or corrupt shards, a token id beyond the
# vocabulary, checkpoints of another configuration or truncated, an
# unwritable output directory, missing vocabulary files, a full disk. Each
# gives a message naming the file (and field), a non-zero exit status, and
# overwrites nothing.
. "$(dirname "$0")/setup.bash"

setup_trainer
reference

train_bin=data/tinyshakespeare/tinyshakespeare_train.bin

# refused WHAT ERE: the last run failed, its message matches ERE, and no
# run folder was created.
refused() {
	isnt "$RUN_RC" 0 "$1: non-zero exit status" || show_run
	like "$RUN_ERR" "$2" "$1: the message names the problem" || show_run
	ok "$([ ! -e "$w/out" ]; echo $?)" "$1: nothing written"
}

# put_bytes FILE OFFSET OCTAL-ESCAPES: overwrite bytes in place.
put_bytes() {
	printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

workdir w
rm "$w/$train_bin"
train "$w"
refused "missing shard" "no shard matches .*tinyshakespeare_train.bin"

workdir w
truncate -s -1001 "$w/$train_bin"
train "$w"
refused "truncated shard" "shard .*tinyshakespeare_train.bin"

workdir w
put_bytes "$w/$train_bin" 0 '\001\002\003\004'
train "$w"
refused "shard with a bad magic" "shard .*tinyshakespeare_train.bin.*magic"

workdir w
put_bytes "$w/$train_bin" $((1024 + 2 * 12345)) '\377\377'
train "$w"
refused "token id 65535 >= vocabulary" "shard .*tinyshakespeare_train.bin: token 12345 .*is id 65535"

workdir w
rm "$w/data/gpt2/encoder.json"
train "$w"
refused "missing vocabulary" "encoder.json"

# an unwritable output directory
workdir w
if can_mount; then
	mkdir "$w/out"
	mount -t tmpfs -o ro,size=1m tmpfs "$w/out"
	at_exit "umount '$w/out'"
	train "$w"
	isnt "$RUN_RC" 0 "read-only output directory: non-zero exit status"
	like "$RUN_ERR" "cannot create the run folder out/.*Read-only file system" \
		"read-only output directory: the message names the folder"
	umount "$w/out"
elif [ "$(id -u)" != 0 ]; then
	mkdir "$w/out"
	chmod 0555 "$w/out"
	train "$w"
	isnt "$RUN_RC" 0 "unwritable output directory: non-zero exit status"
	like "$RUN_ERR" "cannot create the run folder out/.*Permission denied" \
		"unwritable output directory: the message names the folder"
else
	echo "not a directory" > "$w/out"
	train "$w"
	isnt "$RUN_RC" 0 "output directory is a file: non-zero exit status"
	like "$RUN_ERR" "cannot create the run folder out/.*Not a directory" \
		"output directory is a file: the message names the folder"
fi

# an llm.c model file of another depth
workdir w
train "$w" --stop-at 5
llmc=$w/other.bin
cp "$w/out/latest/checkpoints/step_000005/model.bin" "$llmc"
put_bytes "$llmc" 16 '\014'
mv "$w/out" "$w/first"
train "$w" --init-from "$llmc"
refused "--init-from an llm.c file with 12 layers" \
	"other.bin: n_layer is 12 in the file, the trainer is compiled for 2 \(CONFIG_GPT2_N_LAYER\)"

# a checkpoint of another configuration (n_layer is the first field)
mv "$w/first" "$w/out"
run_dir=$(cd "$w/out" && readlink latest)
state=$w/out/$run_dir/checkpoints/step_000005/state.bin
put_bytes "$state" $((72 + 32)) '\007'
cp -a "$w/out" "$w/before"
train "$w" --resume
isnt "$RUN_RC" 0 "checkpoint of another n_layer: non-zero exit status"
like "$RUN_ERR" "state.bin: checkpoint of another configuration: n_layer is 7 in the file, the trainer is compiled for 2 \(CONFIG_GPT2_N_LAYER\)" \
	"checkpoint of another n_layer: the message names the field"
diff -r "$w/out" "$w/before" >/dev/null
ok $? "checkpoint of another n_layer: the run folder is unchanged"

# truncated checkpoints: the newest is skipped, the previous one used
workdir w
train "$w" --stop-at 10
truncate -s -4096 "$w/out/latest/checkpoints/step_000010/state.bin"
train "$w"
is "$RUN_RC" 0 "truncated newest checkpoint: the run completes" || show_run
like "$RUN_ERR" "skipping checkpoint .*step_000010: state.bin: truncated: expected [0-9]+ bytes, found [0-9]+" \
	"truncated newest checkpoint: a warning names the file and the sizes"
like "$RUN_OUT" "resuming .* from step 5" "truncated newest checkpoint: it resumes from step 5"
same_as_reference "$w" "truncated newest checkpoint"

workdir w
train "$w" --stop-at 10
for f in "$w"/out/latest/checkpoints/step_*/model.bin; do truncate -s 1000 "$f"; done
cp -a "$w/out" "$w/before"
train "$w"
isnt "$RUN_RC" 0 "all checkpoints truncated: non-zero exit status"
like "$RUN_ERR" "no usable checkpoint" "all checkpoints truncated: it says so"
like "$RUN_ERR" "model.bin: truncated: expected [0-9]+ bytes, found 1000" \
	"all checkpoints truncated: the file and sizes are named"
diff -r "$w/out" "$w/before" >/dev/null
ok $? "all checkpoints truncated: the run folder is unchanged"

# a disk too small for a checkpoint
workdir w
if can_mount; then
	mkdir "$w/out"
	mount -t tmpfs -o size=4m tmpfs "$w/out"
	at_exit "umount '$w/out'"
	train "$w"
	is "$RUN_RC" 1 "full disk: exit status 1" || show_run
	like "$RUN_ERR" "disk full writing out/.*/checkpoints/.tmp-step_000005/" \
		"full disk: the periodic checkpoint names the file"
	like "$RUN_ERR" "training goes on" "full disk: training goes on"
	like "$RUN_ERR" "final checkpoint could not be written" "full disk: the final checkpoint fails"
	ok "$([ ! -e "$w/out/latest/summary.json" ]; echo $?)" "full disk: the run stays unfinished"
	umount "$w/out"
else
	skip "full disk" "mounting a tmpfs is not permitted here"
fi

done_testing
