#!/usr/bin/env bash
# Creates (once, cached) the Python venv with the real graders the grader
# end-to-end test (internal/e2e/graders_test.go) drives, and the Python `lti`
# package the batch benchmark (scripts/bench-batch.sh) uses as the baseline:
#
#   nbgrader       `nbgrader generate_assignment` / `nbgrader autograde`
#   otter-grader   `otter assign` and `otter run` (grading without Docker; see
#                  the test for how final_grades.csv is produced from it)
#   lti            lti.ToolProvider(...).post_replace_result(score), the
#                  original project's passback path
#
#   venv: ${LTIGRADE_GRADER_VENV:-<repo>/.cache/grader-venv} (as root:
#         /var/cache/ltigrade-test/grader-venv-N when the checkout is under /tmp or
#         /var/tmp or below a folder others cannot enter)
#
# A stamp file holds the pins and the Python version; a changed pin rebuilds
# the venv, a repeat run costs one file read. Progress goes to stderr; stdout
# gets only KEY=VALUE lines:
#
#   GRADER_VENV GRADER_PYTHON NBGRADER OTTER GRADER_PINS
#
# Exit codes: 0 ready; 3 PyPI cannot be reached (the only case in which the
# grader e2e test skips); anything else is a real failure.
set -euo pipefail

# --- pins ------------------------------------------------------------------
# The top-level packages exactly, plus the transitive ones whose behaviour the
# test or the benchmark depends on: oauthlib signs the baseline's requests
# (the same version the LMS double verifies with), nbconvert/ipykernel run
# the students' notebooks for both graders.
PY_PINS=(
	"nbgrader==0.9.6"
	"otter-grader==6.1.6"
	"lti==0.9.5"
	"oauthlib==3.3.1"
	"nbconvert==7.17.2"
	"ipykernel==7.4.0"
)
IMPORTS='import nbgrader, otter, otter.run, otter.grade.utils, lti, oauthlib, ipykernel'

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${LTIGRADE_GRADER_VENV:-$repo/.cache/grader-venv}

# The submit tests run these graders inside the grading sandbox (as root
# only), as its unprivileged user with a /tmp and /var/tmp of its own: a venv
# under /tmp (a checkout cloned there) would be hidden by them, and one below
# a folder others cannot enter (a checkout in a 0700 home) unreadable. Then
# the venv lives in /var/cache/ltigrade-test instead, one per checkout.
if [[ -z ${LTIGRADE_GRADER_VENV:-} && $(id -u) -eq 0 ]]; then
	moved=""
	case $(realpath -m "$venv") in /tmp/* | /var/tmp/*) moved="the grading sandbox has a /tmp and /var/tmp of its own" ;; esac
	p=$venv
	while [[ -z $moved ]] && p=$(dirname "$p") && [[ $p != / ]]; do
		if [[ -e $p && $(stat -c %A "$p") != *x ]]; then
			moved="$p is not searchable by other users (the sandbox's user)"
		fi
	done
	if [[ -n $moved ]]; then
		alt=/var/cache/ltigrade-test/grader-venv-$(printf '%s' "$repo" | cksum | cut -d' ' -f1)
		printf 'grader-env: not using %s: %s; using %s\n' "$venv" "$moved" "$alt" >&2
		mkdir -p /var/cache/ltigrade-test
		chmod 755 /var/cache/ltigrade-test
		venv=$alt
	fi
fi
py=$venv/bin/python
stamp=$venv/.ltigrade-grader-pins

log() { printf 'grader-env: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
unreachable() {
	log "UNREACHABLE: $*"
	log "cannot reach the package index; exiting 3 so the grader end-to-end test skips"
	exit 3
}

base=${PYTHON3:-python3}
command -v "$base" >/dev/null 2>&1 || die "python3 not found; install it (apt-get install -y python3)"
pyver=$("$base" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
want="python $pyver; ${PY_PINS[*]}"

ready() {
	# Cheap on purpose: the packages were import-checked before the stamp
	# was written.
	[[ -x $py && -x $venv/bin/nbgrader && -x $venv/bin/otter &&
		-f $stamp && "$(cat "$stamp")" == "$want" ]]
}

emit() {
	printf 'GRADER_VENV=%s\n' "$venv"
	printf 'GRADER_PYTHON=%s\n' "$py"
	printf 'NBGRADER=%s\n' "$venv/bin/nbgrader"
	printf 'OTTER=%s\n' "$venv/bin/otter"
	printf 'GRADER_PINS=%s\n' "${PY_PINS[*]}"
}

if ready; then
	emit
	exit 0
fi

# Parallel callers (go test runs packages at once, make -j) serialise here so
# one does not delete a venv another is installing into. The lock lives in the
# temp dir, keyed by the venv path, to leave no stray file in the work tree.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
	lock="${TMPDIR:-/tmp}/ltigrade-grader-env-$(printf '%s' "$venv" | cksum | cut -d' ' -f1).lock"
	exec 9>"$lock"
	flock 9
	if ready; then
		emit
		exit 0
	fi
fi

pypi_reachable() {
	"$base" -m pip index versions --timeout 20 --retries 1 nbgrader >/dev/null 2>&1 ||
		{ [[ -x $py ]] && "$py" -m pip index versions --timeout 20 --retries 1 nbgrader >/dev/null 2>&1; }
}

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

# Never delete a directory that is not (the remains of) a venv: the path comes
# from the environment and could be mistyped.
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
"$py" -c "$IMPORTS" >&2 || die "the venv was built but its packages do not import"
printf '%s\n' "$want" >"$stamp"
emit
