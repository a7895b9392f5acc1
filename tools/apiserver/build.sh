#!/usr/bin/env bash
# Build kube-apiserver v1.20.2 from Debian bookworm's `kubernetes` source package and cache the binary at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/apiserver/<source-version>/kube-apiserver
#
# The recipe (private deb-src apt configuration, Debian's golang-1.19-go, the reflect2 fix, the cache, the lock)
# is tools/kube/common.sh's, shared with tools/kube-proxy/build.sh; measurements: shared/KUBE-APISERVER.md.
# Idempotent: a cached binary is reused at once, with no network and no apt.
# Progress goes to stderr; the last line on stdout is the binary's path.
# Environment: KUBE_SOURCE_VERSION (Debian source version to build), KEEP_BUILD_TREE=1 (debugging).
set -euo pipefail

readonly KUBE_COMMAND=kube-apiserver
readonly KUBE_CACHE_NAME=apiserver
readonly KUBE_BUILD_NOTE="about 4-5 min of CPU, 1.3 GB memory"
# shellcheck source=tools/kube/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../kube/common.sh"
kube_build_main
