#!/usr/bin/env bash
# run.sh — Buoy's DNS server against NSD, Knot and CoreDNS (file plugin),
# driven by dnsperf; see bench/README.md. Run as root from anywhere:
#
#   sudo bench/dns/run.sh                 # 3 rounds, ~10 minutes
#   sudo bench/dns/run.sh -rounds 5 -perf /tmp/buoy-perf.txt
#
# Installs the Debian packages it needs when missing (nsd, knot, dnsperf,
# dnsutils for nsupdate, linux-perf for -perf), builds CoreDNS once into
# bench/dns/.cache with go install, then runs `go run ./bench/dns` with
# the arguments given. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
for p in nsd:nsd knotd:knot dnsperf:dnsperf nsupdate:dnsutils dig:dnsutils taskset:util-linux; do
	command -v "${p%%:*}" >/dev/null 2>&1 || need+=("${p#*:}")
done
case " $* " in *" -perf "*) command -v perf >/dev/null 2>&1 || need+=(linux-perf) ;; esac
if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "run.sh: missing ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# Where systemd runs, Debian starts the packaged nsd and knot services on
# install, on port 53; they play no part here (the benchmark uses its own ports).

exec go run ./bench/dns "$@"
