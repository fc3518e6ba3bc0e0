#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make data for FineWeb-Edu (scripts/fineweb-edu.sh, prepare_data
# --records, scripts/parquet) on three small parquet files made here
# (hyparquet-writer): 48 documents of tinyshakespeare and other text, row
# groups of several sizes, snappy and uncompressed pages, in a mirror laid
# out as the dataset (KGPT_DATA_MIRROR/fineweb-edu/sample/10BT/). Shards
# of 1024 tokens. Checked: the shard names, headers and token counts; the
# tokens against build/tokenize's encoding of each document, each after
# 50256; val is the first shard; a second run keeps everything; a subset
# of the files grows into the full preparation byte for byte; a missing
# mirror file is named with its URL and destination; a corrupt file
# leaves only whole shards and the run after it continues to the same
# bytes; changed settings and bad streams are refused; the trainer built
# for the dataset trains on the shards.
. "$(dirname "$0")/setup.bash"

need node od cmp || done_testing
parquet=$srctree/scripts/parquet
if [ ! -f "$parquet/node_modules/hyparquet-writer/package.json" ]; then
	fail "scripts/parquet/node_modules is installed" "run scripts/install-deps.sh"
	done_testing
fi
setup_trainer
new_tmpdir tmp
tokenize=$objdir/build/tokenize
prepare=$objdir/build/prepare_data
name=edu_fineweb
S=1024
url=https://huggingface.co/datasets/HuggingFaceFW/fineweb-edu/resolve/main/sample/10BT

# The documents: paragraphs of tinyshakespeare in groups of 6, one text
# beyond ASCII and one empty document.
docs=$tmp/docs
mkdir -p "$docs"
awk -v dir="$docs" 'BEGIN { RS = ""; n = 0 }
	NR <= 276 { f = sprintf("%s/%03d.txt", dir, int((NR - 1) / 6));
		    printf "%s\n\n", $0 > f }' "$mirror/tinyshakespeare.txt"
printf 'Ünïcödé — 日本語のテキスト, Ελληνικά 🙂\n\tand tabs  \n' > "$docs/046.txt"
: > "$docs/047.txt"
ndocs=$(ls "$docs" | wc -l)
is "$ndocs" 48 "48 test documents"

# Three parquet files in the mirror: 20, 16 and 12 documents.
m=$tmp/mirror
mkdir -p "$m/fineweb-edu/sample/10BT"
ln -s "$mirror/encoder.json" "$mirror/vocab.bpe" "$m/"
pq=$m/fineweb-edu/sample/10BT
d=("$docs"/*.txt)
run node "$parquet/write-text.mjs" --row-group 7 "$tmp/000.parquet" "${d[@]:0:20}"
is "$RUN_RC" 0 "write 000_00000.parquet (row groups of 7, snappy)" || show_run
run node "$parquet/write-text.mjs" --row-group 5 --codec UNCOMPRESSED "$tmp/001.parquet" \
	"${d[@]:20:16}"
is "$RUN_RC" 0 "write 001_00000.parquet (row groups of 5, uncompressed)" || show_run
run node "$parquet/write-text.mjs" "$tmp/002.parquet" "${d[@]:36:12}"
is "$RUN_RC" 0 "write 002_00000.parquet (one row group)" || show_run
for i in 000 001 002; do cp "$tmp/$i.parquet" "$pq/${i}_00000.parquet"; done

# The expected token stream: 50256, then build/tokenize's ids, per document.
for f in "${d[@]}"; do
	echo 50256
	"$tokenize" encode --vocab "$mirror" < "$f" | tr ' ' '\n' | sed '/^$/d'
done > "$tmp/expected"
total=$(wc -l < "$tmp/expected")
nshards=$(((total + S - 1) / S))
[ "$total" -gt $((5 * S)) ]
ok $? "the documents hold more than 5 shards of tokens ($total)"

# A tree whose .config asks for FineWeb-Edu in DATA (files, shard tokens).
o=$tmp/tree
cp -a "$objdir" "$o"
rm -rf "$o/reference"
configure() {	# DATA FILES SHARD_TOKENS
	printf '%s\n' CONFIG_GPT2_DATASET_FINEWEBEDU=y "CONFIG_DATA_DIR=\"$1\"" \
		"CONFIG_FINEWEB_FILES=$2" "CONFIG_FINEWEB_SHARD_TOKENS=$3" > "$tmp/frag"
	kmake O="$o" mergeconfig F="$tmp/frag" >"$tmp/conf.log" 2>&1 ||
		fail "mergeconfig $1 $2 $3" "$(cat "$tmp/conf.log")"
}
shard_name() {	# K
	if [ "$1" = 0 ]; then printf '%s_val_%06d.bin' $name 0
	else printf '%s_train_%06d.bin' $name "$1"; fi
}
tokens_of() {	# SHARD...: the ids after each header, one a line
	local f
	for f in "$@"; do od -An -v -tu2 -j1024 "$f"; done | tr -s ' ' '\n' | sed '/^$/d'
}
shard_list() {	# DIR: the shard names in order
	local k
	for ((k = 0; k < nshards; k++)); do printf '%s/%s\n' "$1" "$(shard_name $k)"; done
}

data=$tmp/data
out=$data/edu_fineweb10B
configure "$data" 3 $S
export KGPT_DATA_MIRROR=$m
run kmake O="$o" data
is "$RUN_RC" 0 "make data: 3 files into shards of $S tokens" || show_run
want=$(for ((k = 0; k < nshards; k++)); do shard_name $k; echo; done | sort)
got=$(cd "$out" && ls -1 ./*.bin 2>/dev/null | sed 's|^\./||' | sort)
is "$got" "$want" "the shards are ${name}_val_000000.bin, then ${name}_train_000001..$((nshards - 1))"
bad=
for ((k = 0; k < nshards; k++)); do
	f=$out/$(shard_name $k)
	n=$S
	[ $k = $((nshards - 1)) ] && n=$((total - S * (nshards - 1)))
	h=$(od -An -v -tu4 -N1024 "$f" | tr -s ' ' '\n' | sed '/^$/d' | tr '\n' ' ')
	[ "$h" = "20240520 1 $n $(printf '0 %.0s' $(seq 253))" ] || bad+="$(shard_name $k): header $h; "
	[ "$(stat -c %s "$f")" = $((1024 + 2 * n)) ] || bad+="$(shard_name $k): size; "
done
is "$bad" "" "headers: magic 20240520, version 1, $S tokens but the last, rest 0; sizes 1024 + 2N"
mapfile -t all < <(shard_list "$out")
tokens_of "${all[@]}" > "$tmp/got"
same_file "$tmp/got" "$tmp/expected" \
	"the tokens are build/tokenize's for each document, each after 50256, in order"
tokens_of "$out/$(shard_name 0)" > "$tmp/val"
head -n $S "$tmp/expected" > "$tmp/want-val"
same_file "$tmp/val" "$tmp/want-val" "val is the first $S tokens of the stream"
is "$(grep -c '^50256$' "$tmp/got")" "$ndocs" "one 50256 per document, none else"
is "$(cd "$out" && ls -A | grep -v '\.bin$' | tr '\n' ' ')" "$name.done $name.progress " \
	"besides the shards only the progress and done files"
cp -a "$out" "$tmp/ref"

run kmake O="$o" data
is "$RUN_RC" 0 "make data again" || show_run
like "$RUN_OUT" "up to date" "says it is up to date"
unlike "$RUN_OUT" "wrote" "writes no shard"
run diff -r "$tmp/ref" "$out"
is "$RUN_RC" 0 "everything kept as it was" || show_run

rm "$out/$(shard_name 2)"
run kmake O="$o" data
is "$RUN_RC" 0 "make data with train shard 2 removed" || show_run
like "$RUN_OUT" "$(shard_name 2) is missing" "names the missing shard"
same_file "$out/$(shard_name 2)" "$tmp/ref/$(shard_name 2)" "it is made again, byte for byte"

configure "$data" 3 2048
run kmake O="$o" data
isnt "$RUN_RC" 0 "other CONFIG_FINEWEB_SHARD_TOKENS on these shards: refused"
like "$RUN_ERR" "shards of $S tokens, not 2048 \(CONFIG_FINEWEB_SHARD_TOKENS\)" "names the setting"
configure "$data" 2 $S
run kmake O="$o" data
isnt "$RUN_RC" 0 "fewer files than prepared: refused"
like "$RUN_ERR" "prepared from 3 parquet files, more than 2 \(CONFIG_FINEWEB_FILES\)" \
	"names the setting"

# A subset first, then all three files: the same shards.
data=$tmp/grow
out=$data/edu_fineweb10B
configure "$data" 1 $S
run kmake O="$o" data
is "$RUN_RC" 0 "make data with 1 file" || show_run
n1=$(ls "$out"/*.bin | wc -l)
[ "$n1" -ge 2 ] && [ "$n1" -lt "$nshards" ]
ok $? "1 file gives fewer shards ($n1 of $nshards)"
configure "$data" 3 $S
run kmake O="$o" data
is "$RUN_RC" 0 "make data with 3 files after 1" || show_run
like "$RUN_OUT" "continuing" "continues the stream"
run diff -r "$tmp/ref" "$out"
is "$RUN_RC" 0 "the same files as the preparation of 3 at once" || show_run

# Offline without the files: named with their URL and place, nothing written.
data=$tmp/missing
configure "$data" 3 $S
rm "$pq/001_00000.parquet" "$pq/002_00000.parquet"
run kmake O="$o" data
isnt "$RUN_RC" 0 "make data with 2 of 3 mirror files missing: fails"
run "$srctree/scripts/fineweb-edu.sh" "$data" "$prepare" 3 $S
is "$RUN_RC" 1 "scripts/fineweb-edu.sh: exit status 1"
like "$RUN_ERR" "lacks 2 of the 3 FineWeb-Edu parquet files" "says how many are missing"
for i in 001 002; do
	like "$RUN_ERR" "^  $url/${i}_00000.parquet -> $pq/${i}_00000.parquet\$" \
		"names ${i}_00000.parquet: URL -> where to put it"
done
unlike "$RUN_ERR" "000_00000" "does not name the file that is there"
is "$(ls -A "$data/edu_fineweb10B" 2>/dev/null | wc -l)" 0 "writes no shard"

# A corrupt second file: only whole shards; the next run continues.
head -c 600 "$tmp/001.parquet" > "$pq/001_00000.parquet"
cp "$tmp/002.parquet" "$pq/002_00000.parquet"
out=$data/edu_fineweb10B
run kmake O="$o" data
isnt "$RUN_RC" 0 "make data with a corrupt 001_00000.parquet: fails"
like "$RUN_ERR" "001_00000.parquet: not a readable parquet file" "names the corrupt file"
like "$RUN_ERR" "full shards are kept" "says what it kept"
bad=
for f in "$out"/* "$out"/.[!.]*; do
	[ -e "$f" ] || continue
	case $(basename "$f") in
	"$name.progress") ;;
	*.bin) [ "$(stat -c %s "$f")" = $((1024 + 2 * S)) ] || bad+="$(basename "$f") "
	       cmp -s "$f" "$tmp/ref/$(basename "$f")" || bad+="$(basename "$f")(differs) " ;;
	*) bad+="$(basename "$f") " ;;
	esac
done
is "$bad" "" "left: whole shards identical to the reference and the progress file, nothing else"
[ "$(ls "$out"/*.bin | wc -l)" -ge 1 ]
ok $? "the shards before the corrupt file were written"
cp "$tmp/001.parquet" "$pq/001_00000.parquet"
head -c 2000 "$out/$(shard_name 1)" > "$out/$(shard_name 1).tmpAbC123"	# as after a kill
run kmake O="$o" data
is "$RUN_RC" 0 "make data with the file repaired" || show_run
like "$RUN_OUT" "continuing from" "continues from the progress file"
run diff -r "$tmp/ref" "$out"
is "$RUN_RC" 0 "the same files as an uninterrupted run (a killed run's temporary file removed)" ||
	show_run

# The trainer of this tree, built for these shards, trains on them.
configure "$tmp/data" 3 $S
run kmake O="$o" build
is "$RUN_RC" 0 "build the trainer for the FineWeb-Edu shards" || show_run
new_tmpdir w
run bash -c 'cd "$1" && exec "$2" --fresh' _ "$w" "$o/build/train_gpt2"
is "$RUN_RC" 0 "it trains on edu_fineweb_train_*.bin and evaluates on the val shard" || show_run
like "$(cat "$w/out/latest/summary.json" 2>/dev/null)" '"val_loss":' "summary.json has a val_loss"

# prepare_data --records on its own: a stream cut short; a wrong start.
rs=$tmp/records
run bash -c "node '$parquet/parquet-text.mjs' '$pq/000_00000.parquet' | head -c -4 |
	'$prepare' --records --shard-tokens $S --out '$rs' --name t --vocab '$mirror'"
is "$RUN_RC" 1 "prepare_data: a stream without the end record fails"
like "$RUN_ERR" "without the end record" "and says so"
is "$(ls "$rs" | grep -v '_val_000000.bin\|_train_00000[0-9].bin\|^t.progress$' | wc -l)" 0 \
	"leaves full shards and the progress file only"
run bash -c "node '$parquet/parquet-text.mjs' '$pq/000_00000.parquet' |
	'$prepare' --records --shard-tokens $S --out '$rs' --name t --vocab '$mirror' \
		--resume --first-doc 0"
is "$RUN_RC" 1 "prepare_data --resume with stdin at another document fails"
like "$RUN_ERR" "but stdin starts at document 0" "and names both documents"

done_testing
