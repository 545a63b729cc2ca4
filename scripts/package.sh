#!/usr/bin/env bash
# Builds ltigrade's .deb and .rpm packages into ${DIST:-dist}/ (`make package`).
#
#   VERSION  what `ltigrade --version` prints; default as in the Makefile
#            (git describe --tags --always --dirty)
#   ARCHES   "amd64", "arm64" or both; default amd64, plus arm64 when the
#            cross compiler aarch64-linux-gnu-gcc is installed
#            (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
#   FORMATS  "deb rpm" (default), or one of them
#   DIST     output folder (default dist)
#   STAGE    folder for the gzipped man pages, changelog and docs (default
#            $DIST/stage); `scripts/package.sh --stage-only` only fills it,
#            for goreleaser.yaml's nfpms section
#
# The binary is built as the Dockerfile builds it: cgo (mattn/go-sqlite3)
# linked statically, so the same package runs on any glibc, and the .rpm built
# on Debian runs on RHEL 8 as well. nfpm is pinned below and built once into
# .cache/tools (the Go module proxy), so the packages do not depend on what is
# installed on the machine. The paths of the packages go to stdout, progress to
# stderr.
set -euo pipefail

NFPM_VERSION=v2.47.0
NFPM_MODULE=github.com/goreleaser/nfpm/v2/cmd/nfpm

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
GO=${GO:-go}
DIST=${DIST:-dist}
FORMATS=${FORMATS:-deb rpm}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [ -z "${ARCHES:-}" ]; then
	ARCHES=amd64
	if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then ARCHES="amd64 arm64"; fi
fi

STAGE=${STAGE:-$DIST/stage}
mkdir -p "$DIST"
stage_only=false
[ "${1:-}" != --stage-only ] || stage_only=true

log() { printf 'package: %s\n' "$*" >&2; }

# pkg_version turns `git describe` into a version dpkg and rpm both order
# correctly: v1.2.3 -> 1.2.3, v1.2.3-4-gabc1234-dirty -> 1.2.3+4.gabc1234.dirty,
# a bare commit abc1234 (no tag yet) -> 0.0.0+git.abc1234. Both formats need a
# leading digit, and a '-' would split off a Debian revision / rpm release.
pkg_version() {
	local v=${1#v}
	[[ $v =~ ^[0-9]+\.[0-9] ]] || v=0.0.0+git.$v
	case $v in *-*) v=${v%%-*}+${v#*-} ;; esac
	printf '%s\n' "${v//-/.}"
}
PKG_VERSION=$(pkg_version "$VERSION")

# The files every architecture shares: man pages gzipped (Debian policy),
# the docs an admin needs on the machine, a changelog dated by the commit.
stage_files() {
	local date_epoch
	date_epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
	rm -rf "$STAGE"
	mkdir -p "$STAGE/man" "$STAGE/doc"
	for m in docs/man/*.1; do
		gzip -9n <"$m" >"$STAGE/man/$(basename "$m").gz"
	done
	cp README.md docs/configuration.md docs/jupyterhub.md docs/service.md \
		docs/grading-sandbox.md docs/packaging.md "$STAGE/doc/"
	{
		printf 'ltigrade (%s) unstable; urgency=medium\n\n' "$PKG_VERSION"
		printf '  * Built from ltigrade %s; the history is the git log of\n' "$VERSION"
		printf '    https://github.com/ltigrade/ltigrade.\n\n'
		printf ' -- ltigrade maintainers <maintainers@users.noreply.r-seed-60c7feef.example>  %s\n' \
			"$(LC_ALL=C date -u -R -d "@$date_epoch")"
	} | gzip -9n >"$STAGE/changelog.gz"
	chmod 0644 "$STAGE"/man/* "$STAGE"/doc/* "$STAGE/changelog.gz"
}
stage_files
if $stage_only; then
	log "staged into $STAGE"
	exit 0
fi

nfpm=$repo/.cache/tools/nfpm-$NFPM_VERSION/nfpm
if [ ! -x "$nfpm" ]; then
	log "building nfpm $NFPM_VERSION (once, into .cache/tools)"
	# Exit 3, as the other env scripts do, when the module proxy is unreachable.
	GOBIN=$(dirname "$nfpm") GOFLAGS=-buildvcs=false "$GO" install "$NFPM_MODULE@$NFPM_VERSION" || exit 3
fi

for arch in $ARCHES; do
	case $arch in
	amd64) cc=${CC_AMD64:-gcc} ;;
	arm64) cc=${CC_ARM64:-aarch64-linux-gnu-gcc} ;;
	*) log "unknown arch $arch (amd64 or arm64)"; exit 2 ;;
	esac
	bindir=$DIST/bin-$arch
	mkdir -p "$bindir"

	log "building ltigrade $VERSION for linux/$arch (CC=$cc)"
	# The flags of the Dockerfile and goreleaser.yaml: osusergo and netgo keep
	# glibc's NSS out (a static binary cannot dlopen it), and SQLite's
	# extension loading (dlopen too) is compiled out; ltigrade never uses it.
	CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC=$cc "$GO" build -trimpath \
		-tags osusergo,netgo,sqlite_omit_load_extension \
		-ldflags "-s -w -linkmode external -extldflags -static -X github.com/ltigrade/ltigrade/internal/cli.Version=$VERSION" \
		-o "$bindir/ltigrade" ./cmd/ltigrade

	for format in $FORMATS; do
		out=$DIST/ltigrade_${PKG_VERSION}_linux_${arch}.$format
		rm -f "$out"
		STAGE=$STAGE BINARY=$bindir/ltigrade GOARCH=$arch PKG_VERSION=$PKG_VERSION \
			"$nfpm" package --config packaging/nfpm.yaml --packager "$format" --target "$out" >&2
		printf '%s\n' "$out"
	done
done
