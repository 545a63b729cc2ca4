#!/usr/bin/env bash
# Issue 11's figures (docs/benchmarks.md, "PostgreSQL"), run by `make bench-pg`
# for both stores in the same run, so that no regression hides:
#
#   1. `ltigrade record` and `ltigrade resolve` as whole processes on a store
#      of 1,000,000 launches (100,000 users), median and p90, beside
#      `ltigrade --version`; and `record --spool` of BENCH_SPOOL_N (20)
#      spooled launches, the hub hook's path, per launch;
#   2. `ltigrade sync --now` with BENCH_SYNC_N (5,000) queued, from 1 and from
#      4 concurrent processes, at 0 and at 50 ms LMS latency;
#   3. a BENCH_BATCH_N-row (20,000) `ltigrade score --batch` at zero latency.
#
# BENCH_PG_DSN is a PostgreSQL role with CREATEDB (make bench-pg passes the
# one scripts/postgres-env.sh prints, and BENCH_PGBOUNCER_DSN, its PgBouncer
# in session mode: section 1 then also runs through the pooler, as the
# "store" pgbouncer, on the same database); the databases ltigrade_bench (seeded
# once, reused like the SQLite store) and ltigrade_bench_q are created on it.
# The SQLite store is bench-cli.sh's cached one, in the same folder
# (${LTIGRADE_BENCH_DIR:-/tmp/ltigrade-bench}). Timing is benchseed's (fork to
# wait, Go's monotonic clock). Nothing asserts a time; every run must succeed
# and deliver every score.
#
# Knobs: BENCH_PG_DSN, LTIGRADE_BENCH_DIR, BENCH_USERS (100000),
# BENCH_LAUNCHES (10), BENCH_LINKS (5), BENCH_RUNS (50), BENCH_WARMUP (3),
# BENCH_SYNC_N (5000), BENCH_SYNC_RUNS (3 at 0 ms, 1 at 50 ms),
# BENCH_BATCH_N (20000), BENCH_BATCH_RUNS (3), BENCH_SPOOL_N (20), BENCH_SPOOL_RUNS (20), BENCH_CONCURRENCY (passback.concurrency, 8),
# BENCH_STORES ("sqlite postgres"),
# BENCH_PARTS ("record sync batch": which of the three sections to run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${BENCH_PG_DSN:?set BENCH_PG_DSN (make bench-pg does)}"
GO=${GO:-go}
BIN=$root/bin/ltigrade
USERS=${BENCH_USERS:-100000}
LAUNCHES=${BENCH_LAUNCHES:-10}
LINKS=${BENCH_LINKS:-5}
RUNS=${BENCH_RUNS:-50}
WARMUP=${BENCH_WARMUP:-3}
SYNC_N=${BENCH_SYNC_N:-5000}
SYNC_RUNS=${BENCH_SYNC_RUNS:-3}
BATCH_N=${BENCH_BATCH_N:-20000}
BATCH_RUNS=${BENCH_BATCH_RUNS:-3}
SPOOL_N=${BENCH_SPOOL_N:-20}
SPOOL_RUNS=${BENCH_SPOOL_RUNS:-20}
STORES=${BENCH_STORES:-sqlite postgres}
PARTS=" ${BENCH_PARTS:-record sync batch} "
KEY=ds100-canvas
DIR=${LTIGRADE_BENCH_DIR:-/tmp/ltigrade-bench}

say() { printf '==> %s\n' "$*" >&2; }
while IFS= read -r v; do
	case $v in LTIGRADE_BENCH_DIR) ;; LTIGRADE_*) unset "$v" ;; esac
done < <(compgen -e)

mkdir -p "$DIR"
chmod 700 "$DIR"
pids=()
cleanup() {
	local p
	for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

[ -x "$BIN" ] || make build >&2
SEED=$DIR/benchseed
"$GO" build -o "$SEED" ./scripts/benchseed

# The PostgreSQL databases: the password goes to a 0600 file, the URLs in
# the configs have none.
pgurl() { # DBNAME [BASE] -> URL without password
	python3 - "${2:-$BENCH_PG_DSN}" "$1" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
host = p.hostname + (":%d" % p.port if p.port else "")
print(u.urlunsplit((p.scheme, "%s@%s" % (p.username, host), "/" + sys.argv[2], p.query, "")))
EOF
}
python3 -c 'import sys, urllib.parse as u; print(u.urlsplit(sys.argv[1]).password or "")' "$BENCH_PG_DSN" >"$DIR/pg.pass"
chmod 600 "$DIR/pg.pass"
for db in ltigrade_bench ltigrade_bench_q; do
	psql "$BENCH_PG_DSN" -qAt -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
		psql "$BENCH_PG_DSN" -q -c "CREATE DATABASE $db" >&2
done
export PGPASSWORD=$(cat "$DIR/pg.pass") # benchseed's own connections

printf 'bench-secret-0123456789abcdef\n' >"$DIR/secret"
chmod 600 "$DIR/secret"
# config STORE DATABASE FILE: a config like bench-cli.sh's for one store.
config() {
	local extra=""
	[[ $1 == postgres || $1 == pgbouncer ]] && extra="database_password_file = \"$DIR/pg.pass\""
	cat >"$3" <<EOF
database = "$2"
$extra
[paths]
home = "/home/jupyter-{username}"
[[lti11.consumers]]
key = "$KEY"
secret_file = "$DIR/secret"
[passback]
concurrency = ${BENCH_CONCURRENCY:-8}
timeout = "20s"
[hub]
spool_dir = "$DIR/spool"
EOF
	chmod 600 "$3"
}
db_of() { # STORE KIND -> database value
	case $1/$2 in
	sqlite/launches) echo "$DIR/launches-u$USERS-l$LAUNCHES-r$LINKS.db" ;;
	sqlite/queue) echo "$DIR/pg-bench-queue.db" ;;
	postgres/launches) pgurl ltigrade_bench ;;
	postgres/queue) pgurl ltigrade_bench_q ;;
	pgbouncer/launches) pgurl ltigrade_bench "$BENCH_PGBOUNCER_DSN" ;;
	esac
}
seeddsn() { # STORE KIND -> the database value with the password, for benchseed
	if [[ $1 == postgres ]]; then
		local name=ltigrade_bench
		[[ $2 == queue ]] && name=ltigrade_bench_q
		python3 - "$BENCH_PG_DSN" "$name" <<'EOF'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], p.query, "")))
EOF
	else db_of sqlite "$2"; fi
}

echo "# bench-pg: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr), ltigrade $("$BIN" --version 2>/dev/null | awk '{print $NF}'), $(psql "$BENCH_PG_DSN" -qAt -c 'SHOW server_version')"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. record and resolve on 1M launches --------------------------------------
if [[ $PARTS == *" record "* ]]; then
"$SEED" inputs -dir "$DIR/inputs" -users "$USERS" -links "$LINKS" -n $((RUNS + WARMUP)) -home "/home/jupyter-{username}"
"$SEED" time -label --version -runs "$RUNS" -warmup "$WARMUP" -- "$BIN" --version
record_stores=$STORES
[[ -n ${BENCH_PGBOUNCER_DSN:-} && " $STORES " == *" postgres "* ]] && record_stores="$STORES pgbouncer"
for st in $record_stores; do
	case $st in
	sqlite) "$SEED" seed -db "$(db_of sqlite launches)" -users "$USERS" -launches "$LAUNCHES" -links "$LINKS"; sync "$(db_of sqlite launches)" ;;
	postgres) "$SEED" seed -db "$(seeddsn postgres launches)" -users "$USERS" -launches "$LAUNCHES" -links "$LINKS" ;;
	pgbouncer) ;; # the database postgres seeded, through the pooler
	esac
	config "$st" "$(db_of "$st" launches)" "$DIR/$st-record.toml"
	"$SEED" time -label "$st record" -argsfile "$DIR/inputs/record.args" -warmup "$WARMUP" \
		-match '^recorded launch ' -- "$BIN" --config "$DIR/$st-record.toml" record
	"$SEED" time -label "$st resolve" -argsfile "$DIR/inputs/resolve.args" -warmup "$WARMUP" \
		-match 'matched by (notebook|folder)' -- "$BIN" --config "$DIR/$st-record.toml" resolve
	# The hub hook's own path: it spools every login's launch and one
	# background `record --spool` stores what has gathered, so a burst of
	# logins costs a few processes, not one each. SPOOL_N launches a run.
	spool=$DIR/spool-$st
	sed "s|^spool_dir = .*|spool_dir = \"$spool\"|" "$DIR/$st-record.toml" >"$DIR/$st-spool.toml"
	chmod 600 "$DIR/$st-spool.toml"
	cat >"$DIR/spool-fill.sh" <<EOF
set -e
rm -rf '$spool'; mkdir -m 700 '$spool'
i=0
for f in \$(head -n $SPOOL_N '$DIR/inputs/record.args'); do
	i=\$((i + 1)); install -m 600 "\$f" "$spool/20261202T000000.\$(printf %06d \$i)Z-bench\$i.json"
done
EOF
	"$SEED" time -label "$st record --spool ($SPOOL_N)" -runs "$SPOOL_RUNS" -warmup 1 -setup "sh $DIR/spool-fill.sh" \
		-match "^ingested $SPOOL_N spooled launches" -items "$SPOOL_N" -unit launches -- "$BIN" --config "$DIR/$st-spool.toml" record --spool
	# Where a one-shot record's store time goes: opening (connection,
	# authentication, schema check) against the record itself.
	[[ $st == sqlite ]] || "$SEED" phases -label "$st" -db "$(db_of "$st" launches)" -password-file "$DIR/pg.pass" \
		-argsfile <(head -n 30 "$DIR/inputs/record.args")
done
fi

# 2. sync --now, 1 and 4 processes, 0 and 50 ms -----------------------------
start_lms() { # LATENCY -> sets URL
	rm -f "$DIR/lms.url"
	"$SEED" serve-lms -addr 127.0.0.1:0 -key "$KEY" -secret-file "$DIR/secret" -url-file "$DIR/lms.url" -latency "$1" 2>/dev/null &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$DIR/lms.url" ] && break; sleep 0.1; done
	URL=$(cat "$DIR/lms.url")
}
stop_lms() { kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

for lat in 0ms 50ms; do
	[[ $PARTS == *" sync "* ]] || break
	start_lms "$lat"
	runs=$SYNC_RUNS
	[[ $lat == 0ms ]] || runs=1
	for st in $STORES; do
		cfg=$DIR/$st-sync.toml
		config "$st" "$(db_of "$st" queue)" "$cfg"
		setup=$(printf '%q ' "$SEED" passbacks -q -db "$(seeddsn "$st" queue)" -n "$SYNC_N" -url "$URL" -key "$KEY")
		"$SEED" time -label "$st sync x1 @$lat" -runs "$runs" -warmup 0 -setup "$setup" \
			-match "\"sent\": $SYNC_N," -items "$SYNC_N" -unit passbacks -- "$BIN" --config "$cfg" sync --now --json
		# Four processes at once; afterwards nothing may be left queued.
		"$SEED" time -label "$st sync x4 @$lat" -runs "$runs" -warmup 0 -setup "$setup" \
			-items "$SYNC_N" -unit passbacks -- sh -c "for i in 1 2 3 4; do '$BIN' --config '$cfg' sync --now >/dev/null & done; wait;
				'$BIN' --config '$cfg' db status --json | grep -q '\"queued\": 0,' || { echo 'scores left queued' >&2; exit 1; }"
	done
	stop_lms
done

# 3. score --batch of BATCH_N rows at zero latency --------------------------
[[ $PARTS == *" batch "* ]] && start_lms 0ms
for st in $STORES; do
	[[ $PARTS == *" batch "* ]] || break
	cfg=$DIR/$st-sync.toml
	config "$st" "$(db_of "$st" queue)" "$cfg"
	setup=$(printf '%q ' "$SEED" passbacks -q -queue=false -csv "$DIR/batch.csv" -db "$(seeddsn "$st" queue)" -n "$BATCH_N" -url "$URL" -key "$KEY")
	"$SEED" time -label "$st score --batch" -runs "$BATCH_RUNS" -warmup 0 -setup "$setup" \
		-match "\"sent\": $BATCH_N," -items "$BATCH_N" -unit scores -- "$BIN" --config "$cfg" score --batch "$DIR/batch.csv" --json
done
[[ $PARTS == *" batch "* ]] && stop_lms
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
