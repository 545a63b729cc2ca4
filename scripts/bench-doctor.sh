#!/usr/bin/env bash
# `ltigrade doctor` run time for issue 13 (docs/benchmarks.md), run by
# `make bench-doctor`: the median of BENCH_RUNS whole-process runs of
#
#   (a) `ltigrade doctor` (config, secrets, database, spool, hub hook, cron), and
#   (b) `ltigrade doctor --network`, which also checks one LTI 1.1 outcome host
#       and one LTI 1.3 token endpoint: the lmssim simulator served over HTTPS
#       on loopback (`benchseed serve-lms -tls-cert`), trusted through
#       $SSL_CERT_FILE, so each run makes two TLS handshakes and two HEADs,
#
# against a whole set-up in a temporary folder (every check passes, or the
# run fails): a config with a 0600 secret file and an LTI 1.3 key, a SQLite
# store with BENCH_LAUNCHES launches, the hook installed, a cron file.
# Runs are timed by `benchseed time` (fork to exit, Go's monotonic clock);
# BENCH_WARMUP untimed runs come first.
#
# Knobs: BENCH_RUNS (30), BENCH_WARMUP (3), BENCH_LAUNCHES (1000), GO (go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
GO=${GO:-go}
RUNS=${BENCH_RUNS:-30}
WARMUP=${BENCH_WARMUP:-3}
LAUNCHES=${BENCH_LAUNCHES:-1000}
BIN=$root/bin/ltigrade
KEY=bench-doctor-key

say() { printf '==> %s\n' "$*" >&2; }

D=$(mktemp -d "${TMPDIR:-/tmp}/ltigrade-bench-doctor.XXXXXX")
lms_pid=
cleanup() {
	if [ -n "$lms_pid" ]; then kill "$lms_pid" 2>/dev/null || true; wait "$lms_pid" 2>/dev/null || true; fi
	rm -rf "$D"
}
trap cleanup EXIT

CGO_ENABLED=1 $GO build -o "$D/benchseed" ./scripts/benchseed
[ -x "$BIN" ] || CGO_ENABLED=1 $GO build -o "$BIN" ./cmd/ltigrade

umask 077
head -c 24 /dev/urandom | base64 > "$D/course.secret"
"$D/benchseed" serve-lms -key "$KEY" -secret-file "$D/course.secret" -url-file "$D/url" -tls-cert "$D/lms.pem" &
lms_pid=$!
for _ in $(seq 100); do [ -s "$D/url" ] && break; sleep 0.05; done
[ -s "$D/url" ] || { say "the LMS simulator did not start"; exit 1; }
OUTCOMES=$(cat "$D/url")
BASE=${OUTCOMES%/outcomes}
export SSL_CERT_FILE=$D/lms.pem

"$BIN" keys generate --out "$D/lti13.pem" >/dev/null 2>&1
cat > "$D/config.toml" <<TOML
database = "$D/ltigrade.db"
[[lti11.consumers]]
key = "$KEY"
secret_file = "$D/course.secret"
[[lti13.platforms]]
issuer = "https://lms.example"
client_id = "bench"
token_url = "$BASE/login/oauth2/token"
private_key_file = "$D/lti13.pem"
TOML
CFG=(--config "$D/config.toml")

say "seeding $LAUNCHES launches (untimed)"
for i in $(seq "$LAUNCHES"); do
	printf '{"username":"u%d","consumer_key":"%s","auth_state":{"lti_version":"LTI-1p0","lti_message_type":"basic-lti-launch-request","user_id":"u%d","resource_link_id":"hw%d","resource_link_title":"Homework","lis_outcome_service_url":"%s","lis_result_sourcedid":"src-%d"}}\n' \
		"$i" "$KEY" "$i" $((i % 5)) "$OUTCOMES" "$i"
done > "$D/launches.jsonl"
mkdir -p "$D/spool"
split -l 1 -a 6 --additional-suffix=.json "$D/launches.jsonl" "$D/spool/20261202T000000Z-"
"$BIN" "${CFG[@]}" record --spool >/dev/null
mkdir -p "$D/confd" "$D/cron"
"$BIN" "${CFG[@]}" hub install --config-dir "$D/confd" >/dev/null
echo "*/5 * * * * root $BIN --config $D/config.toml sync" > "$D/cron/ltigrade"
DOCTOR=("$BIN" "${CFG[@]}" doctor --hub-config-dir "$D/confd" --cron-file "$D/cron/*" --systemd-dir "$D/no-systemd")

# Every check must pass, or the figure is not of a whole set-up.
"${DOCTOR[@]}" --network >"$D/check.txt" || { cat "$D/check.txt" >&2; exit 1; }
grep -q $'^ok\toutcome_host\t' "$D/check.txt" && grep -q $'^ok\ttoken_endpoint\t' "$D/check.txt" || { cat "$D/check.txt" >&2; exit 1; }

say "doctor, $RUNS runs (+$WARMUP warm-up), $(grep -c . "$D/check.txt") checks with --network"
"$D/benchseed" time -label doctor -runs "$RUNS" -warmup "$WARMUP" -match $'ok\tsync_timer' -- "${DOCTOR[@]}"
"$D/benchseed" time -label network -runs "$RUNS" -warmup "$WARMUP" -match $'ok\ttoken_endpoint' -- "${DOCTOR[@]}" --network
