#!/usr/bin/env bash
# Installs what the kernel lab needs, idempotently: QEMU, busybox, kmod, ipvsadm, haproxy (the e2e bed's load
# balancer, run by the bed with its own configuration; Debian's default one listens nowhere), iptables and ipset
# (kube-proxy --proxy-mode=ipvs needs both in the guest: bench/peer.py, issue 18), and Debian's
# generic amd64 kernel unpacked into a per-user cache (keyed by kernel version) so later runs skip the download.
# Exit codes: 0 ready; 77 QEMU cannot be installed here (a caller may turn that into a skip); other: failure.
set -euo pipefail

readonly EXIT_NO_QEMU=77
readonly PACKAGES=(qemu-system-x86 busybox-static kmod cpio ipvsadm iproute2 nftables conntrack iptables haproxy ipset)
# One command per package above, proving it is installed (busybox-static ships the static /bin/busybox).
readonly PROBES=(qemu-system-x86_64 /bin/busybox depmod cpio ipvsadm ip nft conntrack iptables-nft haproxy ipset)
readonly APT_WAIT=(-o DPkg::Lock::Timeout=300)  # another apt run must not look like a refusal
readonly CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/lab"

log() { printf 'lab/setup: %s\n' "$*" >&2; }

updated=0
apt_update_once() {
    if [ "$updated" -eq 0 ]; then
        log "apt-get update"
        apt-get update "${APT_WAIT[@]}" -qq
        updated=1
    fi
}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }

install_packages() {
    local missing=() i
    for i in "${!PACKAGES[@]}"; do
        have "${PROBES[$i]}" || missing+=("${PACKAGES[$i]}")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Install from the current index first; refresh it only when that fails (fresh machine, stale lists).
    if ! apt-get install "${APT_WAIT[@]}" -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        apt_update_once
        apt-get install "${APT_WAIT[@]}" -y -qq --no-install-recommends "${missing[@]}" >/dev/null || true
    fi
    if ! have qemu-system-x86_64; then
        log "qemu-system-x86_64 could not be installed: the kernel lab cannot run on this machine"
        exit "$EXIT_NO_QEMU"
    fi
    for i in "${!PACKAGES[@]}"; do
        have "${PROBES[$i]}" || { log "package ${PACKAGES[$i]} did not install"; exit 1; }
    done
}

# Prints the versioned image package that linux-image-amd64 depends on (the generic flavour, with 9p).
kernel_package() {
    { apt-cache depends linux-image-amd64 2>/dev/null || true; } \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

install_kernel() {
    local package version dir tmp
    package="$(kernel_package)"
    if [ -z "$package" ]; then
        apt_update_once
        package="$(kernel_package)"
    fi
    if [ -z "$package" ]; then
        if [ -L "$CACHE/current" ] && [ -f "$CACHE/current/.complete" ]; then
            log "cannot resolve linux-image-amd64; keeping cached $(readlink "$CACHE/current")"
            return 0
        fi
        log "cannot resolve the package linux-image-amd64 depends on"
        exit 1
    fi
    version="${package#linux-image-}"
    dir="$CACHE/$version"
    if [ ! -f "$dir/.complete" ]; then
        log "fetching $package into $dir"
        mkdir -p "$CACHE"
        tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
        # shellcheck disable=SC2064  # expand $tmp now: it is local
        trap "rm -rf '$tmp'" EXIT
        if ! (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$package"); then
            apt_update_once
            (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$package")
        fi
        mkdir "$tmp/root"
        dpkg -x "$tmp"/"$package"_*.deb "$tmp/root"
        # The .deb ships no modules.dep; modprobe -d needs it.
        depmod -b "$tmp/root" "$version"
        for f in "boot/vmlinuz-$version" "lib/modules/$version/modules.dep"; do
            [ -f "$tmp/root/$f" ] || { log "unpacked kernel lacks $f"; exit 1; }
        done
        touch "$tmp/root/.complete"
        rm -rf "$dir"
        mv "$tmp/root" "$dir"
        rm -rf "$tmp"
        trap - EXIT
    fi
    ln -sfn "$version" "$CACHE/current"
    # Older kernels are dead weight (about 400 MB each) once a newer one is complete.
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$version" ! -name '.fetch.*' -exec rm -rf {} +
    log "kernel $version ready in $dir"
}

install_packages
install_kernel
