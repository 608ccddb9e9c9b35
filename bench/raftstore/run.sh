#!/usr/bin/env bash
# run.sh — build both Raft store variants and run them alternately, 3 rounds
# each, then print the median of every metric per store and the ratio wal/bolt.
#
#   wal : hashicorp/raft v1.8.0 + raft-wal v0.4.0        (go.mod,   default build)
#   bolt: hashicorp/raft v1.7.3 + raft-boltdb/v2 v2.3.1  (bolt.mod, -tags bolt)
#
# Extra arguments go to both binaries (e.g. ./run.sh -dir /var/tmp).
# ROUNDS=n overrides the number of rounds.
set -euo pipefail
cd "$(dirname "$0")"

rounds=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/wal" .
go build -modfile=bolt.mod -tags bolt -o "$work/bolt" .

for r in $(seq 1 "$rounds"); do
	for v in wal bolt; do
		echo "round $r/$rounds: $v" >&2
		"$work/$v" "$@" >>"$work/results"
	done
done

echo "median of $rounds rounds; host: $(nproc) cores, $(go env GOOS)/$(go env GOARCH), $(go version | cut -d' ' -f3)"
echo
awk '
$1 == "RESULT" {
	if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 }
	k = $2 SUBSEP $3
	vals[k] = vals[k] " " $4
}
function median(s,    a, m, i, j, t) {
	m = split(s, a, " ")
	for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return m % 2 ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
}
function num(x) { return x >= 100 ? sprintf("%.0f", x) : x >= 10 ? sprintf("%.1f", x) : sprintf("%.2f", x) }
function span(s,    a, m, i, lo, hi) {
	m = split(s, a, " "); lo = hi = a[1]
	for (i = 2; i <= m; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
	return num(lo) ".." num(hi)
}
END {
	printf "| %-26s | %12s | %12s | %9s | %-17s | %-17s |\n", "metric", "wal", "bolt", "wal/bolt", "wal range", "bolt range"
	printf "|%s|%s|%s|%s|%s|%s|\n", "----------------------------", "-------------:", "-------------:", "----------:", "-------------------", "-------------------"
	for (i = 1; i <= n; i++) {
		m = order[i]; w = median(vals["wal", m]); b = median(vals["bolt", m])
		printf "| %-26s | %12s | %12s | %9s | %-17s | %-17s |\n", m, num(w), num(b), (b + 0 != 0 ? sprintf("%.2f", w / b) : "-"), span(vals["wal", m]), span(vals["bolt", m])
	}
}' "$work/results"
