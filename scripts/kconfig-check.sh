#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# kconfig-check.sh SRCTREE REQUEST RESULT
#
# kconfig-conf accepts bad input silently: an unknown symbol, an int out of
# range, a value whose dependency is off or a malformed line is dropped and
# the default used instead. This compares every line a user asked for
# (REQUEST: a defconfig, a fragment or a hand-edited .config) with what
# kconfig-conf made of it (RESULT) and reports each difference, naming the
# symbol, the requested value and the value that would have been used.
# Also rejects malformed lines, duplicates and invalid floats
# (scripts/gen-config.sh --check). Exit status 1 on any error.
set -u
srctree=$1
request=$2
result=$3

# Every symbol the Kconfig tree defines.
symbols=$(find "$srctree" -name 'Kconfig*' -not -path '*/build/*' -not -path '*/.git/*' \
	-exec awk '/^(menu)?config /{print $2}' {} +)

awk -v symbols="$symbols" -v req="$request" '
function err(msg) { printf "%s:%d: error: %s\n", req, FNR, msg > "/dev/stderr"; bad = 1 }
BEGIN {
	n = split(symbols, s, "\n")
	for (i = 1; i <= n; i++)
		known[s[i]] = 1
}
# Pass 1: the result (.config written by kconfig-conf).
FNR == NR {
	if ($0 ~ /^CONFIG_[A-Za-z0-9_]+=/) {
		name = substr($0, 8, index($0, "=") - 8)
		got[name] = substr($0, index($0, "=") + 1)
	} else if ($0 ~ /^# CONFIG_[A-Za-z0-9_]+ is not set$/) {
		name = $2
		sub(/^CONFIG_/, "", name)
		got[name] = "n"
	}
	next
}
# Pass 2: the request.
{
	sub(/\r$/, "")
	line = $0
	if (line ~ /^[ \t]*$/)
		next
	if (line ~ /^# CONFIG_[A-Za-z0-9_]+ is not set[ \t]*$/) {
		name = $2; sub(/^CONFIG_/, "", name); want = "n"
	} else if (line ~ /^#/) {
		next
	} else if (line ~ /^CONFIG_[A-Za-z0-9_]+=/) {
		name = substr(line, 8, index(line, "=") - 8)
		want = substr(line, index(line, "=") + 1)
		sub(/[ \t]+#.*$/, "", want)
		sub(/[ \t]+$/, "", want)
	} else {
		err(sprintf("malformed line \"%s\": expected CONFIG_NAME=value or \"# CONFIG_NAME is not set\"", line))
		next
	}
	if (name in seen) {
		err(sprintf("CONFIG_%s is set twice: \"%s\" here and \"%s\" on line %d; keep one", name, line, seenline[name], seen[name]))
		next
	}
	seen[name] = FNR
	seenline[name] = line
	if (!(name in known)) {
		err(sprintf("unknown symbol in \"%s\": CONFIG_%s is not defined in any Kconfig file; check the spelling or remove the line", line, name))
		next
	}
	have = (name in got) ? got[name] : ""
	if (want == "n") {
		if (have != "" && have != "n")
			err(sprintf("# CONFIG_%s is not set was requested, but .config has CONFIG_%s=%s (another option selects it)", name, name, have))
		next
	}
	if (have == "") {
		err(sprintf("CONFIG_%s=%s was requested, but its dependencies are off, so the value would be dropped; enable what it depends on (see its Kconfig entry) or remove the line", name, want))
		next
	}
	if (have == "n" && want == "y") {
		err(sprintf("CONFIG_%s=y was requested, but .config has it off (a choice or dependency overrode it)", name))
		next
	}
	if (have != want)
		err(sprintf("CONFIG_%s=%s was requested, but kconfig would use %s (value invalid or out of its Kconfig range; see make menuconfig help for the range)", name, want, have))
}
END { exit bad }' "$result" "$request" || exit 1

exec "$srctree/scripts/gen-config.sh" "$srctree" "$result" --check
