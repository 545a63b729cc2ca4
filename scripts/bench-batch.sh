#!/usr/bin/env bash
# Batch passback figures for issue #5 (docs/benchmarks.md), run by `make bench`
# (target bench-batch):
#
#   1,000 scores sent to the independent LMS double (testdata/lmsdouble/lms.py,
#   oauthlib verifies every signature) with --latency-ms 50, by
#     (a) the original project's path: Python's `lti` package,
#         ToolProvider.post_replace_result, one student after another
#         (scripts/benchbatch/lti_baseline.py), and
#     (b) `ltigrade score --batch scores.csv --concurrency C` for each C in
#         BENCH_CONCURRENCY (default "8 16 32"),
#   then the same with --latency-ms 0 (scores/second).
#
# Seeding (1,000 `ltigrade record` runs per double) is not timed. Wall times
# are whole processes (interpreter / binary start included), measured with
# bash's $EPOCHREALTIME. After every run the double's /grades.json must hold
# all 1,000 scores with the values just sent, or the script fails.
#
# Knobs: BENCH_N (1000), BENCH_LATENCY_MS (50), BENCH_CONCURRENCY ("8 16 32"),
# LMS_SCRIPT (testdata/lmsdouble/lms.py; it sets TCP_NODELAY, without which a
# kept-alive connection waits ~40 ms for a delayed ACK per request).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${BENCH_N:-1000}
LAT=${BENCH_LATENCY_MS:-50}
CONCS=${BENCH_CONCURRENCY:-8 16 32}
KEY=bench-batch-key
SECRET=bench-batch-secret
BIN=$root/bin/ltigrade

say() { printf '==> %s\n' "$*" >&2; }

CGO_ENABLED=1 ${GO:-go} build -o "$BIN" ./cmd/ltigrade
DPY=$(bash scripts/python-env.sh)
rc=0
genv=$(bash scripts/grader-env.sh) || rc=$?
if [[ $rc -eq 3 ]]; then
	say "scripts/grader-env.sh cannot reach PyPI (exit 3): no Python lti package for the baseline; skipping bench-batch"
	exit 0
elif [[ $rc -ne 0 ]]; then
	exit $rc
fi
GPY=$(sed -n 's/^GRADER_PYTHON=//p' <<<"$genv")

W=$(mktemp -d "${TMPDIR:-/tmp}/ltigrade-bench-batch.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$W"
}
trap cleanup EXIT

# start_double NAME LATENCY: starts lms.py, sets URL_<NAME>
start_double() {
	local pf=$W/$1.port
	"$DPY" "${LMS_SCRIPT:-testdata/lmsdouble/lms.py}" --port-file "$pf" --consumer "$KEY:$SECRET" --latency-ms "$2" 2>"$W/$1.log" &
	pids+=($!)
	for _ in $(seq 200); do [[ -s $pf ]] && break; sleep 0.05; done
	[[ -s $pf ]] || { say "lms.py did not start"; cat "$W/$1.log" >&2; exit 1; }
	printf -v "URL_$1" 'http://127.0.0.1:%s' "$(cat "$pf")"
}

# seed NAME URL: a config + database with N recorded launches (u0001..)
seed() {
	local name=$1 url=$2 cfg=$W/$1.toml
	printf '%s\n' "$SECRET" >"$W/secret"
	chmod 600 "$W/secret"
	cat >"$cfg" <<EOT
database = "$W/$name.db"
[paths]
home = "$W/home/jupyter-{username}"
[[lti11.consumers]]
key = "$KEY"
secret_file = "$W/secret"
[passback]
timeout = "30s"
EOT
	chmod 600 "$cfg"
	say "seeding $N launches for the $name double (not timed)"
	local i u
	for ((i = 1; i <= N; i++)); do
		printf -v u 'u%04d' "$i"
		printf '{"username":"%s","consumer_key":"%s","next_url":"/hub/user-redirect/git-pull?repo=https%%3A%%2F%%2Fgithub.com%%2Fx%%2Fmaterials&urlpath=tree%%2Fmaterials%%2Fhw1%%2Fhw1.ipynb","auth_state":{"lti_version":"LTI-1p0","lti_message_type":"basic-lti-launch-request","user_id":"lms-%s","resource_link_id":"hw1","lis_outcome_service_url":"%s/outcomes","lis_result_sourcedid":"src-%s"}}\n' \
			"$u" "$KEY" "$u" "$url" "$u" | "$BIN" --config "$cfg" record - >/dev/null
	done
}

# scores RUN: writes $W/batch.csv (ltigrade) and $W/py.csv (baseline) with
# scores unique to this run, so the check below sees this run's values.
scores() {
	local run=$1 url=$2 i u s
	{
		echo "username,notebook,score"
		for ((i = 1; i <= N; i++)); do
			printf -v u 'u%04d' "$i"
			printf -v s '0.%02d%04d' "$run" "$i"
			echo "$u,materials/hw1/hw1.ipynb,$s"
		done
	} >"$W/batch.csv"
	{
		echo "outcome_url,sourcedid,score"
		for ((i = 1; i <= N; i++)); do
			printf -v u 'u%04d' "$i"
			printf -v s '0.%02d%04d' "$run" "$i"
			echo "$url/outcomes,src-$u,$s"
		done
	} >"$W/py.csv"
}

# check URL RUN: every student holds this run's score
check() {
	"$DPY" - "$1" "$2" "$N" <<'PY'
import json, sys, urllib.request
url, run, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
g = {r["sourced_id"]: r["score"] for r in json.load(urllib.request.urlopen(url + "/grades.json"))}
bad = [i for i in range(1, n + 1) if float(g.get("src-u%04d" % i, "-1")) != float("0.%02d%04d" % (run, i))]
if bad:
    sys.exit("check failed: %d of %d students lack run %d's score (first: u%04d)" % (len(bad), n, run, bad[0]))
PY
}

now() { printf '%s' "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

run=0
declare -A T
bench() { # NAME LATENCY
	local name=$1 lat=$2 url t0 t1 c
	start_double "$name" "$lat"
	url=URL_$name
	url=${!url}
	seed "$name" "$url"

	run=$((run + 1))
	scores "$run" "$url"
	say "[$name, ${lat} ms] Python lti ToolProvider.post_replace_result x $N, one after another"
	t0=$(now)
	"$GPY" scripts/benchbatch/lti_baseline.py "$KEY" "$SECRET" "$W/py.csv" >&2
	t1=$(now)
	check "$url" "$run"
	T[$name,py]=$(secs "$t0" "$t1")

	for c in $CONCS; do
		run=$((run + 1))
		scores "$run" "$url"
		say "[$name, ${lat} ms] ltigrade score --batch ($N rows) --concurrency $c"
		t0=$(now)
		"$BIN" --config "$W/$name.toml" score --batch "$W/batch.csv" --concurrency "$c" >/dev/null 2>"$W/batch.err" ||
			{ cat "$W/batch.err" >&2; say "ltigrade score --batch failed"; exit 1; }
		t1=$(now)
		tail -n 3 "$W/batch.err" >&2
		check "$url" "$run"
		T[$name,$c]=$(secs "$t0" "$t1")
	done
}

bench slow "$LAT"
bench fast 0

echo
echo "Batch passback, $N scores, LMS double ${LMS_SCRIPT:-testdata/lmsdouble/lms.py} (oauthlib), $(nproc) cores"
printf '%-44s %10s %10s %10s\n' "" "wall s" "speed-up" "vs ideal"
printf '%-44s %10s\n' "Python lti, ${LAT} ms latency, sequential" "${T[slow,py]}"
for c in $CONCS; do
	awk -v w="${T[slow,$c]}" -v p="${T[slow,py]}" -v n="$N" -v l="$LAT" -v c="$c" \
		'BEGIN { ideal = n * l / 1000 / c; printf "%-44s %10.3f %9.1fx %9.2fx\n", "ltigrade --batch, " l " ms, concurrency " c, w, p / w, w / ideal }'
done
echo "ideal bound = $N x ${LAT} ms / concurrency; goals: speed-up >= 15x, vs ideal <= 1.25x"
printf '%-44s %10s\n' "" "scores/s"
awk -v w="${T[fast,py]}" -v n="$N" 'BEGIN { printf "%-44s %10.0f\n", "Python lti, 0 ms latency, sequential", n / w }'
for c in $CONCS; do
	awk -v w="${T[fast,$c]}" -v n="$N" -v c="$c" 'BEGIN { printf "%-44s %10.0f\n", "ltigrade --batch, 0 ms, concurrency " c, n / w }'
done
