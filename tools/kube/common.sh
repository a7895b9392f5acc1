# shellcheck shell=bash
# Build one command of Kubernetes v1.20.2 from Debian bookworm's `kubernetes` source package and cache it.
#
# Sourced by tools/apiserver/build.sh (cmd/kube-apiserver) and tools/kube-proxy/build.sh (cmd/kube-proxy),
# which set, before sourcing:
#   KUBE_COMMAND      the command under cmd/ to build (also the binary's name)
#   KUBE_CACHE_NAME   the cache folder's name under ${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl
#   KUBE_BUILD_NOTE   what the build costs, for the progress line
# and then call kube_build_main.
#
# Recipe and measurements: shared/KUBE-APISERVER.md. Only Debian's registry is used: the source comes through
# a private apt configuration with deb-src lines (the system's apt configuration is left alone), the toolchain
# is Debian's golang-1.19-go, and the vendored modern-go/reflect2 v1.0.1 (which crashes under Go >= 1.18) is
# replaced with Debian's 1.0.2 sources.
#
# Idempotent: a cached binary is reused at once, with no network and no apt. The cache lives at
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/<KUBE_CACHE_NAME>/<source-version>/<KUBE_COMMAND>
# and the build tree (~3 GB with the Go cache) is deleted after the build. A lock per cache folder serialises
# concurrent runs. Progress goes to stderr; the last line on stdout is the binary's path.
# Environment: KUBE_SOURCE_VERSION (Debian source version to build), KEEP_BUILD_TREE=1 (debugging).

readonly SOURCE_PACKAGE=kubernetes
readonly SOURCE_VERSION="${KUBE_SOURCE_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}"
readonly KUBE_VERSION=v1.20.2
readonly KUBE_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56 # upstream tag v1.20.2
readonly BUILD_DEPS=(golang-1.19-go rsync dpkg-dev make golang-github-modern-go-reflect2-dev)
readonly GO_ROOT=/usr/lib/go-1.19
readonly REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

readonly CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/ipvsctl/$KUBE_CACHE_NAME"
readonly CACHE_DIR="$CACHE_ROOT/$SOURCE_VERSION"
readonly BINARY="$CACHE_DIR/$KUBE_COMMAND"

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

have_binary() { [[ -x "$BINARY" ]] && "$BINARY" --version 2>/dev/null | grep -qx "Kubernetes $KUBE_VERSION"; }

install_build_deps() {
	local missing=() pkg
	for pkg in "${BUILD_DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0
	log "installing build dependencies: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# apt-get or apt-cache with deb-src lines of their own: private sources, lists and cache under $work.
private_apt() {
	local tool="$1"
	shift
	"$tool" \
		-o Dir::Etc::SourceParts="$work/apt/sources.list.d" \
		-o Dir::Etc::SourceList=/dev/null \
		-o Dir::State::Lists="$work/apt/lists" \
		-o Dir::Cache="$work/apt/cache" \
		-o APT::Sandbox::User=root \
		"$@"
}

fetch_source() {
	local sources
	mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
	for sources in /etc/apt/sources.list.d/*.sources; do
		[[ -e "$sources" ]] || die "no deb822 apt sources in /etc/apt/sources.list.d"
		sed -E 's/^Types:.*/Types: deb-src/' "$sources" >"$work/apt/sources.list.d/$(basename "$sources")"
	done
	log "updating the private deb-src index"
	private_apt apt-get update >&2
	local available
	available="$(private_apt apt-get -qq source --print-uris --download-only "$SOURCE_PACKAGE=$SOURCE_VERSION" 2>/dev/null)" ||
		die "source $SOURCE_PACKAGE=$SOURCE_VERSION is not available; apt knows: $(
			private_apt apt-cache showsrc "$SOURCE_PACKAGE" 2>/dev/null | sed -n 's/^Version: //p' | tr '\n' ' '
		)"
	[[ -n "$available" ]] || die "apt printed no URIs for $SOURCE_PACKAGE=$SOURCE_VERSION"
	log "downloading source $SOURCE_PACKAGE=$SOURCE_VERSION"
	(cd "$work/src" && private_apt apt-get source --download-only "$SOURCE_PACKAGE=$SOURCE_VERSION" >&2)
	local dsc
	dsc="$(find "$work/src" -maxdepth 1 -name "${SOURCE_PACKAGE}_*.dsc" -print -quit)"
	[[ -n "$dsc" ]] || die "apt-get source left no .dsc in $work/src"
	# "Can't check signature" is expected: the files were checked against apt's signed index.
	dpkg-source -x "$dsc" "$work/tree" >&2
}

replace_reflect2() {
	local vendored="$work/tree/vendor/github.com/modern-go/reflect2"
	[[ -d "$vendored" ]] || die "no vendored reflect2 at $vendored"
	[[ -d "$REFLECT2_SRC" ]] || die "no Debian reflect2 sources at $REFLECT2_SRC"
	log "replacing vendored modern-go/reflect2 with Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
	find "$vendored" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
	find "$REFLECT2_SRC" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
		-exec cp -t "$vendored" {} +
}

build() {
	cat >"$work/version.env" <<-EOF
		KUBE_GIT_VERSION='$KUBE_VERSION'
		KUBE_GIT_MAJOR='1'
		KUBE_GIT_MINOR='20'
		KUBE_GIT_COMMIT='$KUBE_COMMIT'
		KUBE_GIT_TREE_STATE='clean'
	EOF
	log "building cmd/$KUBE_COMMAND ($KUBE_BUILD_NOTE)"
	(
		cd "$work/tree"
		export PATH="$GO_ROOT/bin:$PATH"
		export GOPROXY=off CGO_ENABLED=0
		export GOPATH="$work/gopath" GOCACHE="$work/gocache" HOME="$work/home"
		export KUBE_GIT_VERSION_FILE="$work/version.env"
		mkdir -p "$HOME"
		nice -n 10 make WHAT="cmd/$KUBE_COMMAND" >&2
	)
}

install_binary() {
	local built
	built="$(find "$work/tree/_output" -type f -name "$KUBE_COMMAND" -perm -u+x -print -quit)"
	[[ -n "$built" ]] || die "make produced no $KUBE_COMMAND under $work/tree/_output"
	mkdir -p "$CACHE_DIR"
	cp "$built" "$BINARY.tmp"
	mv -f "$BINARY.tmp" "$BINARY"
	have_binary || die "$BINARY does not report Kubernetes $KUBE_VERSION"
}

cleanup() {
	if [[ "${KEEP_BUILD_TREE:-0}" == 1 ]]; then
		log "kept the build tree $work"
	else
		# Go's module cache is read-only; make it removable first.
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
}

kube_build_main() {
	if have_binary; then
		printf '%s\n' "$BINARY"
		return 0
	fi
	[[ "$(id -u)" == 0 ]] || die "building needs root (apt-get install of the build dependencies)"
	mkdir -p "$CACHE_ROOT"
	exec 9>"$CACHE_ROOT/.lock"
	log "waiting for the build lock $CACHE_ROOT/.lock"
	flock 9
	if have_binary; then # another run built it while we waited
		printf '%s\n' "$BINARY"
		return 0
	fi
	work="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
	trap cleanup EXIT
	install_build_deps
	fetch_source
	replace_reflect2
	build
	install_binary
	log "cached $BINARY ($(du -h "$BINARY" | cut -f1))"
	printf '%s\n' "$BINARY"
}
