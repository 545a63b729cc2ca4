#!/usr/bin/env bash
# Grading-service figures for issue #9 (docs/benchmarks.md), run by
# `make bench-service`:
#
#   1. remote `ltigrade score` (through `ltigrade serve`, with a hub token
#      the service has cached) as whole processes over BENCH_CALLS calls,
#      each for another student: median and p99, beside the same score sent
#      directly (no service) in the same run;
#   2. a BENCH_N-row `score --batch` at BENCH_LATENCY_MS of LMS latency
#      (the oauthlib double, testdata/lmsdouble/lms.py), through the service
#      against directly, on the same double: wall time and ratio.
#
# The hub is a stand-in (benchseed serve-hub) answering GET /hub/api/user
# for one grader token: the service asks it once and caches the answer, so
# the figures are the service's own. Everything runs on loopback.
#
# Knobs: BENCH_CALLS (200), BENCH_N (1000), BENCH_LATENCY_MS (50), GO (go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CALLS=${BENCH_CALLS:-200}
N=${BENCH_N:-1000}
LAT=${BENCH_LATENCY_MS:-50}
KEY=bench-service-key
SECRET=bench-service-secret
TOKEN=bench-grader-token-$RANDOM$RANDOM
BIN=$root/bin/ltigrade
GO=${GO:-go}

say() { printf '==> %s\n' "$*" >&2; }

CGO_ENABLED=1 "$GO" build -o "$BIN" ./cmd/ltigrade
W=$(mktemp -d "${TMPDIR:-/tmp}/ltigrade-bench-service.XXXXXX")
"$GO" build -o "$W/benchseed" ./scripts/benchseed
DPY=$(bash scripts/python-env.sh)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

waitfile() { for _ in $(seq 200); do [[ -s $1 ]] && return 0; sleep 0.05; done; say "$2 did not start"; exit 1; }

# the LMS doubles: 0 ms for the single scores, $LAT ms for the batches
for lat in 0 "$LAT"; do
	"$DPY" testdata/lmsdouble/lms.py --port-file "$W/lms$lat.port" --consumer "$KEY:$SECRET" --latency-ms "$lat" 2>"$W/lms$lat.log" &
	pids+=($!)
	waitfile "$W/lms$lat.port" "lms.py"
done
LMS0=http://127.0.0.1:$(cat "$W/lms0.port")
LMSL=http://127.0.0.1:$(cat "$W/lms$LAT.port")
"$W/benchseed" serve-hub -token "$TOKEN" -user ta1 -group instructors -url-file "$W/hub.url" 2>"$W/hub.log" &
pids+=($!)
waitfile "$W/hub.url" "the hub stand-in"
HUBAPI=$(cat "$W/hub.url")

printf '%s\n' "$SECRET" >"$W/secret"
chmod 600 "$W/secret"
cat >"$W/config.toml" <<EOT
database = "$W/ltigrade.db"
[paths]
home = "$W/home/jupyter-{username}"
[hub]
spool_dir = "$W/spool"
[[lti11.consumers]]
key = "$KEY"
secret_file = "$W/secret"
[passback]
timeout = "30s"
[service]
graders = ["group:instructors"]
EOT
chmod 600 "$W/config.toml"
CFG=(--config "$W/config.toml")

# launches: u0001..u$N for hw1 on the 0 ms double and hw2 on the slow one
say "recording $((2 * N)) launches (not timed)"
mkdir -p "$W/spool"
chmod 700 "$W/spool"
for ((i = 1; i <= N; i++)); do
	printf -v u 'u%04d' "$i"
	for a in "hw1 $LMS0" "hw2 $LMSL"; do
		set -- $a
		printf '{"username":"%s","consumer_key":"%s","next_url":"/hub/user-redirect/git-pull?repo=https%%3A%%2F%%2Fgithub.com%%2Fx%%2Fm&urlpath=tree%%2Fm%%2F%s%%2F%s.ipynb","auth_state":{"lti_version":"LTI-1p0","lti_message_type":"basic-lti-launch-request","user_id":"lms-%s","resource_link_id":"%s","context_id":"c1","lis_outcome_service_url":"%s/outcomes","lis_result_sourcedid":"src-%s-%s"}}\n' \
			"$u" "$KEY" "$1" "$1" "$u" "$1" "$2" "$u" "$1" >"$W/spool/$u-$1.json"
	done
done
chmod 600 "$W"/spool/*.json
"$BIN" "${CFG[@]}" record --spool >/dev/null

freeport() { "$DPY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(freeport)
JUPYTERHUB_API_URL=$HUBAPI JUPYTERHUB_API_TOKEN=service-token "$BIN" "${CFG[@]}" serve --listen "127.0.0.1:$PORT" 2>"$W/serve.log" &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/services/ltigrade/healthz" >/dev/null && break; sleep 0.05; done
SERVICE=http://127.0.0.1:$PORT/services/ltigrade/

# 1. single scores, one per student, whole processes
say "timing $CALLS remote and $CALLS direct scores (3 warm-up each)"
: >"$W/remote.args"
: >"$W/direct.args"
for ((i = 1; i <= CALLS + 3; i++)); do
	printf -- '--user=u%04d\n' "$i" >>"$W/remote.args"
	printf -- '--user=u%04d\n' "$((i + CALLS + 3))" >>"$W/direct.args"
done
echo "# bench-service: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr)"
(
	cd "$W" && env -u LTIGRADE_CONFIG LTIGRADE_TOKEN="$TOKEN" HOME="$W/grader" \
		"$W/benchseed" time -label remote -argsfile "$W/remote.args" -match '^sent 0.5 ' -- \
		"$BIN" --server "$SERVICE" score m/hw1/hw1.ipynb 0.5
)
"$W/benchseed" time -label direct -argsfile "$W/direct.args" -match '^sent 0.5 ' -- \
	"$BIN" "${CFG[@]}" score m/hw1/hw1.ipynb 0.5

# 2. batches at $LAT ms, same double, alternating, fresh scores each run
batch() { # RUN MODE
	local run=$1 i u
	{
		echo "username,notebook,score"
		for ((i = 1; i <= N; i++)); do
			printf -v u 'u%04d' "$i"
			printf '%s,m/hw2/hw2.ipynb,0.%02d%04d\n' "$u" "$run" "$i"
		done
	} >"$W/batch.csv"
	local t0=$EPOCHREALTIME
	if [[ $2 == remote ]]; then
		LTIGRADE_TOKEN="$TOKEN" "$BIN" --server "$SERVICE" score --batch "$W/batch.csv" >/dev/null 2>"$W/batch.err"
	else
		"$BIN" "${CFG[@]}" score --batch "$W/batch.csv" >/dev/null 2>"$W/batch.err"
	fi || { cat "$W/batch.err" >&2; exit 1; }
	local t1=$EPOCHREALTIME
	"$DPY" - "$LMSL" "$run" "$N" <<'PY'
import json, sys, urllib.request
url, run, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
g = {r["sourced_id"]: r["score"] for r in json.load(urllib.request.urlopen(url + "/grades.json"))}
bad = [i for i in range(1, n + 1) if float(g.get("src-u%04d-hw2" % i, "-1")) != float("0.%02d%04d" % (run, i))]
if bad:
    sys.exit("check failed: %d of %d lack run %d's score" % (len(bad), n, run))
PY
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
say "timing $N-row batches at ${LAT} ms, direct and through the service, 3 rounds"
declare -a D R
for round in 1 2 3; do
	D+=("$(batch $((2 * round)) direct)")
	R+=("$(batch $((2 * round + 1)) remote)")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
d=$(median "${D[@]}")
r=$(median "${R[@]}")
echo "batch of $N at ${LAT} ms: direct ${D[*]} s, through the service ${R[*]} s"
awk -v d="$d" -v r="$r" 'BEGIN { printf "batch median: direct %.3f s, service %.3f s, ratio %.3f (goal <= 1.10)\n", d, r, r / d }'
