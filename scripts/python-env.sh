#!/usr/bin/env bash
# Creates (once) the Python venv used by the independent LMS doubles
# (testdata/lmsdouble/lms.py, testdata/agsdouble/platform.py) and prints the
# path of its python.
#
# The venv lives at ${LTIGRADE_VENV:-<repo>/.venv}. A stamp file records the
# pinned requirements so a changed pin rebuilds the venv, while repeat runs
# cost one file comparison. Only the venv's python path goes to stdout so
# callers can do PY=$(scripts/python-env.sh); progress goes to stderr.
set -euo pipefail

# Pinned so the double's verification behaviour does not drift under us.
OAUTHLIB_VERSION=3.3.1
# PyJWT verifies LTI 1.3 client assertions in the AGS double; cryptography
# (its RS256 backend, installed from wheels) is pinned alongside.
PYJWT_VERSION=2.10.1
CRYPTOGRAPHY_VERSION=44.0.2
REQS_LIST=("oauthlib==${OAUTHLIB_VERSION}" "PyJWT[crypto]==${PYJWT_VERSION}" "cryptography==${CRYPTOGRAPHY_VERSION}")
REQS="${REQS_LIST[*]}"
IMPORTS='import oauthlib, jwt, cryptography; from jwt import PyJWKSet'


repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LTIGRADE_VENV:-$repo/.venv}
py=$venv/bin/python
stamp=$venv/.ltigrade-reqs

log() { printf 'python-env: %s\n' "$*" >&2; }

ready() {
	[[ -x $py && -f $stamp && "$(cat "$stamp")" == "$REQS" ]] &&
		"$py" -c "$IMPORTS" >/dev/null 2>&1
}

if ready; then
	printf '%s\n' "$py"
	exit 0
fi

# Parallel test processes may call this at once; serialise the build so one
# does not delete the venv another is installing into.
# The lock lives in the temp dir, not beside the venv, to leave no stray
# file in the work tree.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
	lock="${TMPDIR:-/tmp}/ltigrade-python-env-$(printf '%s' "$venv" | cksum | cut -d' ' -f1).lock"
	exec 9>"$lock"
	flock 9
	if ready; then
		printf '%s\n' "$py"
		exit 0
	fi
fi

base=${PYTHON3:-python3}
if ! command -v "$base" >/dev/null 2>&1; then
	log "python3 not found; install it (apt-get install -y python3)"
	exit 1
fi

# Debian splits venv/ensurepip into python3-venv; without it "python3 -m venv"
# fails half-way and leaves a venv without pip.
if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
		log "installing python3-venv with apt-get"
		ver=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y "python${ver}-venv" python3-venv >&2 ||
			{ apt-get update >&2 && apt-get install -y "python${ver}-venv" python3-venv >&2; } ||
			apt-get install -y python3-venv >&2
	else
		log "python3 venv module missing; install python3-venv"
		exit 1
	fi
fi

# Start from scratch when a previous attempt was interrupted or the pin changed,
# but never delete a directory that is not (the remains of) a venv: the path
# comes from the environment and could be mistyped.
if [[ -e $venv ]]; then
	if [[ -f $venv/pyvenv.cfg || -z "$(ls -A "$venv")" ]]; then
		rm -rf "$venv"
	else
		log "$venv exists and is not a venv; refusing to replace it"
		exit 1
	fi
fi

log "creating venv at $venv"
"$base" -m venv "$venv" >&2
"$py" -m pip install --disable-pip-version-check --quiet "${REQS_LIST[@]}" >&2
"$py" -c "$IMPORTS" >&2
printf '%s\n' "$REQS" >"$stamp"
printf '%s\n' "$py"
