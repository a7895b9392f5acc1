#!/usr/bin/env bash
# Make promtool (Prometheus's rule checker) available for the chart's PrometheusRule test.
#
# promtool ships in Debian's `prometheus` package (bookworm: 2.42). Installed with apt-get when missing (as root,
# without recommends); its service is not started in a container without an init system (policy-rc.d).
# Idempotent: an installed promtool is used at once, with no network.
#
# The last line on stdout is the binary's path. Exit 1 when it cannot be installed.
set -euo pipefail

log() { printf 'install.sh: %s\n' "$*" >&2; }

if found="$(command -v promtool)"; then
	echo "$found"
	exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
	log "error: promtool is missing and apt-get cannot install it here (needs root and apt-get)"
	exit 1
fi
log "installing Debian's prometheus package for promtool"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends prometheus >&2; then
	apt-get update >&2 && apt-get install -y --no-install-recommends prometheus >&2 || {
		log "error: apt-get could not install prometheus"
		exit 1
	}
fi
command -v promtool || {
	log "error: the prometheus package holds no promtool"
	exit 1
}
