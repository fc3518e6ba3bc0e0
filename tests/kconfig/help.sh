#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# make help: documents the main targets and variables, every target it
# names exists in the Makefile, every variable it names is used there,
# and every recipe in defconfigs/ is listed.

. "$(dirname "$0")/../lib.sh"

need make || done_testing
new_tmpdir tmp

run kmake O="$tmp/o" help
is "$RUN_RC" 0 "make help: exit status 0" || show_run
help=$RUN_OUT
is "$RUN_ERR" "" "make help: nothing on stderr"
[ ! -e "$tmp/o/.config" ]
ok $? "make help writes no configuration"

for word in menuconfig defconfig-NAME savedefconfig list-defconfigs mergeconfig check clean mrproper \
	    'TIME=' 'BASELINE=' 'O=' 'V=1' 'KGPT_DATA_MIRROR='; do
	like "$help" "^  $word" "make help lists $word"
done

# The targets the Makefile defines (its rule database; goal `help` needs
# no .config, so nothing is generated).
targets=$(cd "$srctree" && make -pq O="$tmp/o" help 2>/dev/null |
	grep -E $'^[a-zA-Z0-9%][^$#/\t=]*:([^=]|$)' | cut -d: -f1 | sort -u)
[ -n "$targets" ]
ok $? "the Makefile's targets can be listed"

# "  name   - text" lines of the target sections (up to "Variables:").
listed=$(printf '%s\n' "$help" | awk '/^Variables:/ { exit } /^  [a-z]/ { print $1 }' |
	sed 's/^defconfig-NAME$/defconfig-%/')
for t in $listed; do
	printf '%s\n' "$targets" | grep -Fxq -e "$t"
	ok $? "make help's target '$t' is defined in the Makefile"
done

# "  NAME=..." lines of the Variables section: each is read by the Makefile.
vars=$(printf '%s\n' "$help" | awk '/^Variables:/ { v = 1; next } /^[A-Z]/ { v = 0 } v && /^  [A-Z_]+=/ { sub(/=.*/, "", $1); print $1 }')
[ -n "$vars" ]
ok $? "make help has a Variables section"
for v in $vars; do
	grep -Eq "\\\$\\($v\\)|^$v[ :?]*=|export $v" "$srctree/Makefile"
	ok $? "make help's variable $v= is used by the Makefile"
done

for f in "$srctree"/defconfigs/*; do
	case $(basename "$f") in *.*) continue ;; esac
	name=$(basename "$f")
	like "$help" "defconfig-$name( |\$)" "make help lists the recipe $name"
done

done_testing
