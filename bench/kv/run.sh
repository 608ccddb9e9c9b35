#!/usr/bin/env bash
# run.sh — Buoy's key-value store against etcd in the same run (see
# bench/README.md). Installs Debian's etcd-server if etcd is missing (as
# root), then runs the Go load generator from the module root. Arguments go
# to it, e.g.  bench/kv/run.sh -rounds 3 -target leader
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v etcd >/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "run.sh: etcd is not installed: apt-get install etcd-server etcd-client (as root)" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
	# Debian starts a system etcd on 127.0.0.1:2379; the benchmark runs its
	# own members on free ports and does not need it.
	systemctl stop etcd >/dev/null 2>&1 || true
fi

exec go run ./bench/kv "$@"
