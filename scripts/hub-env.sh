#!/usr/bin/env bash
# Creates (once, cached) what the end-to-end hub test (internal/e2e) and the
# hub latency benchmark (scripts/bench-hub.sh) run: a Python venv with
# JupyterHub 5 (what TLJH ships), jupyterhub-ltiauthenticator, nbgitpuller and
# JupyterLab for the single-user servers, and configurable-http-proxy from npm
# (Debian's package fails on Node 20; the npm one works).
#
#   venv:  ${LTIGRADE_HUB_VENV:-<repo>/.cache/hub-venv}
#   proxy: ${LTIGRADE_HUB_NODE:-<repo>/.cache/node}
#
# Each has a stamp file holding its pins (and the Python / Node version); a
# changed pin rebuilds it, a repeat run costs a few file reads. Progress goes
# to stderr; stdout gets only KEY=VALUE lines for the caller:
#
#   HUB_VENV HUB_PYTHON JUPYTERHUB JUPYTERHUB_SINGLEUSER NODE CHP HUB_PINS
#
# Exit codes: 0 ready; 3 PyPI or npm cannot be reached (the only case in which
# the e2e test skips); anything else is a real failure.
set -euo pipefail

# --- pins ------------------------------------------------------------------
# Top-level packages exactly; the few transitive ones whose behaviour the test
# depends on (oauthlib checks our signatures, tornado parses our requests,
# jupyter_server serves nbgitpuller) too.
PY_PINS=(
	"jupyterhub==5.5.4"                  # TLJH: >=5.2,<6
	"jupyterhub-ltiauthenticator==1.6.3" # LTI11Authenticator
	"nbgitpuller==1.3.0"
	"jupyterlab==4.5.6"
	"jupyter-server==2.17.0"
	"oauthlib==3.3.1"
	"tornado==6.5.2"
)
CHP_VERSION=4.6.3 # works on Node 18 and 20 (5.x needs Node >= 20)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LTIGRADE_HUB_VENV:-$repo/.cache/hub-venv}
nodedir=${LTIGRADE_HUB_NODE:-$repo/.cache/node}
py=$venv/bin/python
chp=$nodedir/node_modules/configurable-http-proxy/bin/configurable-http-proxy
venv_stamp=$venv/.ltigrade-hub-pins
node_stamp=$nodedir/.ltigrade-hub-pins

log() { printf 'hub-env: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
unreachable() {
	log "UNREACHABLE: $*"
	log "cannot reach the package index; exiting 3 so the hub end-to-end test skips"
	exit 3
}

base=${PYTHON3:-python3}
command -v "$base" >/dev/null 2>&1 || die "python3 not found; install it (apt-get install -y python3)"
pyver=$("$base" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
want_venv="python $pyver; ${PY_PINS[*]}"

node_bin() { command -v node 2>/dev/null || command -v nodejs 2>/dev/null || true; }

venv_ready() {
	# Cheap on purpose (no imports): the packages were import-checked before
	# the stamp was written.
	[[ -x $py && -x $venv/bin/jupyterhub && -x $venv/bin/jupyterhub-singleuser &&
		-f $venv_stamp && "$(cat "$venv_stamp")" == "$want_venv" ]]
}
node_ready() {
	local n
	n=$(node_bin)
	[[ -n $n && -f $chp && -f $node_stamp && "$(cat "$node_stamp")" == "$(want_node "$n")" ]]
}
want_node() { printf 'node %s; configurable-http-proxy@%s' "$("$1" --version)" "$CHP_VERSION"; }

emit() {
	local n
	n=$(node_bin)
	printf 'HUB_VENV=%s\n' "$venv"
	printf 'HUB_PYTHON=%s\n' "$py"
	printf 'JUPYTERHUB=%s\n' "$venv/bin/jupyterhub"
	printf 'JUPYTERHUB_SINGLEUSER=%s\n' "$venv/bin/jupyterhub-singleuser"
	printf 'NODE=%s\n' "$n"
	printf 'CHP=%s\n' "$chp"
	printf 'HUB_PINS=%s\n' "${PY_PINS[*]} configurable-http-proxy@$CHP_VERSION"
}

if venv_ready && node_ready; then
	emit
	exit 0
fi

# Parallel callers (go test runs packages at once, make -j) serialise here so
# one does not delete a venv another is installing into. The lock lives in the
# temp dir, keyed by the venv path, to leave no stray file in the work tree.
mkdir -p "$(dirname "$venv")" "$nodedir"
if command -v flock >/dev/null 2>&1; then
	lock="${TMPDIR:-/tmp}/ltigrade-hub-env-$(printf '%s' "$venv" | cksum | cut -d' ' -f1).lock"
	exec 9>"$lock"
	flock 9
fi

# --- probes: tell "the index is unreachable" (exit 3) from real failures ---
pypi_reachable() {
	# pip's own client with the machine's pip configuration (index, proxy,
	# certificates); a short timeout so an offline machine answers quickly.
	"$base" -m pip index versions --timeout 20 --retries 1 jupyterhub >/dev/null 2>&1 ||
		"$py" -m pip index versions --timeout 20 --retries 1 jupyterhub >/dev/null 2>&1
}
npm_reachable() {
	command -v npm >/dev/null 2>&1 || return 0 # not a network problem
	timeout 60 npm view "configurable-http-proxy@$CHP_VERSION" version >/dev/null 2>&1
}

# --- the Python venv -------------------------------------------------------
if ! venv_ready; then
	if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
		if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
			log "installing python3-venv with apt-get"
			ver=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
			export DEBIAN_FRONTEND=noninteractive
			apt-get install -y "python${ver}-venv" python3-venv >&2 ||
				{ apt-get update >&2 && apt-get install -y "python${ver}-venv" python3-venv >&2; } ||
				die "could not install python3-venv"
		else
			die "python3's venv module is missing; install python3-venv"
		fi
	fi
	# Never delete a directory that is not (the remains of) a venv: the path
	# comes from the environment and could be mistyped.
	if [[ -e $venv ]]; then
		if [[ -f $venv/pyvenv.cfg || -z "$(ls -A "$venv")" ]]; then
			rm -rf "$venv"
		else
			die "$venv exists and is not a venv; refusing to replace it"
		fi
	fi
	log "creating $venv (${PY_PINS[*]})"
	"$base" -m venv "$venv" >&2
	if ! "$py" -m pip install --disable-pip-version-check --quiet --retries 2 "${PY_PINS[@]}" >&2; then
		pypi_reachable || unreachable "pip install failed and PyPI does not answer"
		die "pip install failed although PyPI answers (see above)"
	fi
	"$py" -c 'import jupyterhub, ltiauthenticator, nbgitpuller, jupyter_server, jupyterlab' >&2 ||
		die "the venv was built but its packages do not import"
	printf '%s\n' "$want_venv" >"$venv_stamp"
fi

# --- configurable-http-proxy from npm --------------------------------------
if ! node_ready; then
	if [[ -z $(node_bin) ]] || ! command -v npm >/dev/null 2>&1; then
		if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
			log "installing nodejs and npm with apt-get"
			export DEBIAN_FRONTEND=noninteractive
			apt-get install -y nodejs npm >&2 ||
				{ apt-get update >&2 && apt-get install -y nodejs npm >&2; } ||
				die "could not install nodejs and npm"
		else
			die "node and npm are needed for configurable-http-proxy; install nodejs and npm"
		fi
	fi
	n=$(node_bin)
	log "installing configurable-http-proxy@$CHP_VERSION into $nodedir"
	rm -rf "$nodedir/node_modules" "$nodedir/package.json" "$nodedir/package-lock.json" "$node_stamp"
	mkdir -p "$nodedir"
	if ! (cd "$nodedir" && npm install --prefix "$nodedir" --no-save --no-audit --no-fund --loglevel=error \
		"configurable-http-proxy@$CHP_VERSION" >&2); then
		npm_reachable || unreachable "npm install failed and the npm registry does not answer"
		die "npm install failed although the npm registry answers (see above)"
	fi
	[[ -f $chp ]] || die "npm installed configurable-http-proxy but $chp is missing"
	"$n" "$chp" --version >/dev/null 2>&1 || die "configurable-http-proxy does not run: $n $chp --version"
	want_node "$n" >"$node_stamp"
fi

emit
