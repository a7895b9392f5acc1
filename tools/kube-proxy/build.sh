#!/usr/bin/env bash
# Build kube-proxy v1.20.2 from Debian bookworm's `kubernetes` source package (the one the test kube-apiserver
# comes from) and cache the binary at ${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/kube-proxy/<source-version>/kube-proxy.
#
# The recipe is tools/kube/common.sh's, shared with tools/apiserver/build.sh. The binary is static
# (CGO_ENABLED=0), so it runs inside the kernel lab's guest, which sees the host's root. bench/peer.py runs it
# side by side with ipvsctl's agent (issue 18). The last line on stdout is the binary's path.
set -euo pipefail

readonly KUBE_COMMAND=kube-proxy
readonly KUBE_CACHE_NAME=kube-proxy
readonly KUBE_BUILD_NOTE="a few minutes of CPU"
# shellcheck source=tools/kube/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../kube/common.sh"
kube_build_main
