#!/usr/bin/env bash
# Creates (once, cached) what the headless-browser tests (testenv.Browser,
# used by internal/browsertest and the status page tests) run: Debian's
# `chromium` package, installed with apt-get when /usr/bin/chromium is
# missing, and playwright-core from npm to drive it (its executablePath
# option; playwright's own browser downloads are never used).
#
#   chromium:        /usr/bin/chromium (Debian's package)
#   playwright-core: ${LTIGRADE_BROWSER_NODE:-<repo>/.cache/browser-node}
#                    (not the repo's node_modules)
#
# A stamp file holds the pin and the Node version; a changed pin rebuilds the
# npm folder, a repeat run costs a few file reads. Progress goes to stderr;
# stdout gets only KEY=VALUE lines for the caller:
#
#   CHROMIUM NODE PLAYWRIGHT_CORE BROWSER_PINS
#
# Exit codes: 0 ready; 3 the package sources (Debian's mirrors, the npm
# registry) cannot be reached, or chromium is missing and we are not root to
# install it (the only cases in which the browser tests skip); anything else
# is a real failure.
set -euo pipefail

# --- pins ------------------------------------------------------------------
# 1.64.1 needs Node >= 20 and drives Debian bookworm's chromium (150-156)
# over its pipe protocol; checked here before the pin went in.
PLAYWRIGHT_VERSION=1.64.1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nodedir=${LTIGRADE_BROWSER_NODE:-$repo/.cache/browser-node}
chromium=/usr/bin/chromium
pw=$nodedir/node_modules/playwright-core
stamp=$nodedir/.ltigrade-browser-pins

log() { printf 'browser-env: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
skip() {
	log "$*"
	log "exiting 3 so the browser tests skip"
	exit 3
}
unreachable() { skip "UNREACHABLE: $*"; }

node_bin() { command -v node 2>/dev/null || command -v nodejs 2>/dev/null || true; }
want_node() { printf 'node %s; playwright-core@%s' "$("$1" --version)" "$PLAYWRIGHT_VERSION"; }

ready() {
	# Cheap on purpose (no browser start): chromium ran and playwright-core
	# loaded before the stamp was written.
	local n
	n=$(node_bin)
	[[ -x $chromium && -n $n && -f $pw/package.json && -f $stamp && "$(cat "$stamp")" == "$(want_node "$n")" ]]
}

emit() {
	printf 'CHROMIUM=%s\n' "$chromium"
	printf 'NODE=%s\n' "$(node_bin)"
	printf 'PLAYWRIGHT_CORE=%s\n' "$pw"
	printf 'BROWSER_PINS=%s\n' "chromium $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo '?') playwright-core@$PLAYWRIGHT_VERSION"
}

if ready; then
	emit
	exit 0
fi

# Parallel callers (go test runs packages at once, make -j) serialise here so
# one does not wipe an npm folder another is installing into. The lock lives
# in the temp dir, keyed by the folder, to leave no stray file in the tree.
mkdir -p "$nodedir"
if command -v flock >/dev/null 2>&1; then
	lock="${TMPDIR:-/tmp}/ltigrade-browser-env-$(printf '%s' "$nodedir" | cksum | cut -d' ' -f1).lock"
	exec 9>"$lock"
	flock 9
fi

# apt_install PKG... installs Debian packages, refreshing the package lists
# and trying again if the first try fails. When the second try fails too and
# apt said a mirror could not be reached, that is exit 3; any other apt
# failure is a real one.
apt_install() {
	local out
	export DEBIAN_FRONTEND=noninteractive
	out=$(mktemp)
	if apt-get install -y --no-install-recommends "$@" >&2; then
		rm -f "$out"
		return 0
	fi
	# apt-get update exits 0 when mirrors fail (it only warns), so its
	# output is what tells an offline machine apart.
	apt-get update >"$out" 2>&1 || true
	if apt-get install -y --no-install-recommends "$@" >>"$out" 2>&1; then
		cat "$out" >&2
		rm -f "$out"
		return 0
	fi
	cat "$out" >&2
	if grep -qE 'Failed to fetch|Temporary failure resolving|Could not (resolve|connect)|Unable to connect' "$out"; then
		rm -f "$out"
		unreachable "apt-get could not reach the Debian package mirrors to install $*"
	fi
	rm -f "$out"
	die "apt-get install $* failed (see above)"
}

# --- chromium from Debian --------------------------------------------------
if [[ ! -x $chromium ]]; then
	if ! command -v apt-get >/dev/null 2>&1; then
		skip "$chromium is missing and there is no apt-get to install Debian's chromium package"
	fi
	if [[ $(id -u) != 0 ]]; then
		skip "$chromium is missing and only root can install it: run 'apt-get install -y chromium' as root (or 'make test' as root)"
	fi
	log "installing Debian's chromium with apt-get"
	apt_install chromium
	[[ -x $chromium ]] || die "apt-get installed chromium but $chromium is missing"
fi
"$chromium" --version >&2 || die "chromium does not run: $chromium --version"

# --- playwright-core from npm ----------------------------------------------
if [[ -z $(node_bin) ]] || ! command -v npm >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
		log "installing nodejs and npm with apt-get"
		apt_install nodejs npm
	else
		die "node and npm are needed for playwright-core; install nodejs and npm"
	fi
fi
n=$(node_bin)
if ! ready; then
	log "installing playwright-core@$PLAYWRIGHT_VERSION into $nodedir"
	rm -rf "$nodedir/node_modules" "$nodedir/package.json" "$nodedir/package-lock.json" "$stamp"
	mkdir -p "$nodedir"
	# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing
	# itself, but say so in case a future version does; we use Debian's.
	# Short retry waits: npm's defaults keep an offline machine waiting
	# minutes before it can say so.
	if ! (cd "$nodedir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$nodedir" --no-save --no-audit \
		--no-fund --loglevel=error --fetch-retries=2 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=10000 \
		"playwright-core@$PLAYWRIGHT_VERSION" >&2); then
		if ! timeout 60 npm view --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 \
			"playwright-core@$PLAYWRIGHT_VERSION" version >/dev/null 2>&1; then
			unreachable "npm install failed and the npm registry does not answer"
		fi
		die "npm install failed although the npm registry answers (see above)"
	fi
	[[ -f $pw/package.json ]] || die "npm installed playwright-core but $pw is missing"
	"$n" -e 'const {chromium} = require(process.argv[1]); if (typeof chromium.launch !== "function") process.exit(1)' "$pw" >&2 ||
		die "playwright-core does not load: $n -e 'require(\"$pw\")'"
	want_node "$n" >"$stamp"
fi

emit
