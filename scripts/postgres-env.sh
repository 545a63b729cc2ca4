#!/usr/bin/env bash
# A throwaway PostgreSQL for the PostgreSQL store's tests and benchmarks
# (internal/store, cmd/ltigrade's testscripts, the multi-host test,
# `make bench-pg`).
#
#   bash scripts/postgres-env.sh [start]   install if missing, start, print the env
#   bash scripts/postgres-env.sh stop      stop the cluster (make test does, at the end)
#   bash scripts/postgres-env.sh status    exit 0 if it runs
#
# It installs the Debian package `postgresql` with apt-get when no server
# binaries are found, creates a cluster once under
# ${LTIGRADE_PG_DIR:-<repo>/.cache/pg} and starts it on 127.0.0.1 at a free
# port. PostgreSQL refuses to run as root, so as root the cluster belongs to
# the system user ltigrade-pg (created if missing); anyone else runs it as
# themselves. Clients log in as the role ltigrade (CREATEDB, SCRAM password
# kept in the cluster folder, mode 0600): the tests create and drop one
# database per test or script through the DSN printed.
#
# In front of it, when PgBouncer is installed or can be (Debian package
# `pgbouncer`), a PgBouncer in session mode (SCRAM, the same role, its
# auth_file holding the role's SCRAM secret rather than the password) for the
# testscripts' pass through a pooler, the deployment docs/postgres.md
# suggests for many logins; without it only that pass skips.
#
# stdout gets only KEY=VALUE lines, like scripts/hub-env.sh:
#
#   LTIGRADE_TEST_PG_DSN=postgres://ltigrade:PASSWORD@127.0.0.1:PORT/postgres?sslmode=disable
#   LTIGRADE_TEST_PGBOUNCER_DSN=postgres://ltigrade:PASSWORD@127.0.0.1:BPORT/postgres?sslmode=disable
#   PG_BINDIR PG_DATA PG_PORT
#
# Exit codes: 0 running; 3 PostgreSQL is not installed and cannot be (no
# package mirror, or not root): the PostgreSQL tests then skip; anything else
# is a real failure. A session that ends without `stop` leaves a server that
# dies with the machine's processes; the next start finds its stale pid file
# and starts afresh on the same cluster.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${LTIGRADE_PG_DIR:-$repo/.cache/pg}
data=$dir/data
user=ltigrade-pg
role=ltigrade

if [[ $(id -u) -eq 0 ]]; then
	# The owner must reach the folder: every parent needs x for others (a
	# checkout in a 0700 home does not have it; then /var/tmp is used).
	p=$dir
	while p=$(dirname "$p") && [[ $p != / ]]; do
		if [[ -e $p && $(stat -c %A "$p") != *x ]]; then
			printf 'postgres-env: %s is not searchable by %s; using /var/tmp/ltigrade-pg\n' "$p" "$user" >&2
			dir=/var/tmp/ltigrade-pg
			data=$dir/data
			break
		fi
	done
fi
log() { printf 'postgres-env: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}
unavailable() {
	log "UNAVAILABLE: $*"
	log "exiting 3 so the PostgreSQL tests skip"
	exit 3
}

bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && { echo "$d"; return; }
	fi
	# Debian keeps the server binaries out of PATH, one folder per major.
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
		[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && { echo "$d"; return; }
	done
}

install_pg() {
	[[ $(id -u) -eq 0 ]] || unavailable "no PostgreSQL server binaries, and only root can apt-get install postgresql"
	command -v apt-get >/dev/null 2>&1 || unavailable "no PostgreSQL server binaries and no apt-get"
	log "installing postgresql from the Debian packages"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends postgresql >&2; then
		apt-get update -q >&2 || unavailable "apt-get update failed"
		apt-get install -y -q --no-install-recommends postgresql >&2 || unavailable "apt-get install postgresql failed"
	fi
	# The package starts a cluster of its own on 5432; this script does not
	# use it.
}

# as runs a command as the cluster's owner.
as() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u "$user" -- "$@"
	else
		"$@"
	fi
}

ensure_user() {
	[[ $(id -u) -eq 0 ]] || return 0
	if ! id "$user" >/dev/null 2>&1; then
		log "creating the system user $user (PostgreSQL refuses to run as root)"
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
	fi
}

running() {
	[[ -f $data/postmaster.pid ]] || return 1
	local pid
	pid=$(head -1 "$data/postmaster.pid")
	[[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == postgres ]]
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bouncer=$dir/pgbouncer
bouncer_running() {
	[[ -f $bouncer/pgbouncer.pid ]] || return 1
	local pid
	pid=$(head -1 "$bouncer/pgbouncer.pid")
	# A daemon that exited may linger as a zombie nobody reaps: not running.
	[[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == pgbouncer &&
		$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

# start_bouncer starts PgBouncer in front of the cluster at PORT, or says
# why not and returns 1 (the PostgreSQL tests still run).
start_bouncer() { # PORT
	if ! command -v pgbouncer >/dev/null 2>&1; then
		if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
			log "no pgbouncer (and cannot apt-get install it): the pass through PgBouncer skips"
			return 1
		fi
		log "installing pgbouncer from the Debian packages"
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer >&2; then
			apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbouncer >&2 ||
				{ log "apt-get install pgbouncer failed: the pass through PgBouncer skips"; return 1; }
		fi
	fi
	bouncer_running && return 0
	mkdir -p "$bouncer"
	chmod 700 "$bouncer"
	local bport=${LTIGRADE_PGBOUNCER_PORT:-56432}
	while ! port_free "$bport"; do bport=$((bport + 1)); done
	# The role's SCRAM secret, not its password: PgBouncer then checks the
	# client's proof without deriving a key itself, and logs in to the
	# server with the client's key (SCRAM pass-through). Measured: opening
	# a connection through it 2 ms instead of 6 with the plain password.
	local secret
	secret=$(as "$BIN/psql" -h "$data" -p "$1" -U postgres -d postgres -qAt \
		-c "SELECT rolpassword FROM pg_authid WHERE rolname = '$role'") || secret=
	[[ $secret == SCRAM-SHA-256\$* ]] || { log "no SCRAM secret for $role: the pass through PgBouncer skips"; return 1; }
	(
		umask 077
		printf '"%s" "%s"\n' "$role" "$secret" >"$bouncer/users.txt"
		cat >"$bouncer/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$1
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $bouncer/users.txt
pool_mode = session
max_client_conn = 500
default_pool_size = 100
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = $bouncer/pgbouncer.log
pidfile = $bouncer/pgbouncer.pid
EOF
	)
	[[ $(id -u) -ne 0 ]] || chown -R "$user" "$bouncer"
	rm -f "$bouncer/pgbouncer.pid"
	as pgbouncer -d "$bouncer/pgbouncer.ini" >&2 || { log "pgbouncer did not start: the pass through PgBouncer skips"; return 1; }
	local i
	for i in $(seq 100); do
		! port_free "$bport" && return 0
		sleep 0.1
	done
	log "pgbouncer is not listening on $bport: the pass through PgBouncer skips"
	return 1
}

emit() {
	local port pw
	port=$(sed -n 4p "$data/postmaster.pid")
	pw=$(cat "$dir/password")
	printf 'LTIGRADE_TEST_PG_DSN=postgres://%s:%s@127.0.0.1:%s/postgres?sslmode=disable\n' "$role" "$pw" "$port"
	if bouncer_running; then
		printf 'LTIGRADE_TEST_PGBOUNCER_DSN=postgres://%s:%s@127.0.0.1:%s/postgres?sslmode=disable\n' "$role" "$pw" \
			"$(sed -n 's/^listen_port = //p' "$bouncer/pgbouncer.ini")"
	fi
	printf 'PG_BINDIR=%s\n' "$BIN"
	printf 'PG_DATA=%s\n' "$data"
	printf 'PG_PORT=%s\n' "$port"
}

cmd=${1:-start}
case $cmd in
stop)
	if bouncer_running; then
		kill -TERM "$(head -1 "$bouncer/pgbouncer.pid")" 2>/dev/null || true
	fi
	if running; then
		BIN=$(bindir)
		as "$BIN/pg_ctl" -D "$data" -m fast -w stop >&2
	fi
	exit 0
	;;
status)
	running
	exit
	;;
start) ;;
*) die "usage: postgres-env.sh [start|stop|status]" ;;
esac

BIN=$(bindir)
if [[ -z $BIN ]]; then
	install_pg
	BIN=$(bindir)
	[[ -n $BIN ]] || unavailable "postgresql installed, but no initdb/pg_ctl/postgres found"
fi
ensure_user

mkdir -p "$dir"
chmod 700 "$dir"
[[ $(id -u) -ne 0 ]] || chown "$user" "$dir"

if [[ ! -f $data/PG_VERSION ]]; then
	log "creating a cluster in $data"
	rm -rf "$data"
	pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	umask 077
	printf '%s\n' "$pw" >"$dir/password"
	as "$BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
		-E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
	# Loopback only; the socket in the cluster folder, where only its owner
	# reaches it; room for the multi-host test and parallel testscripts.
	cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 300
log_min_messages = warning
EOF
	fresh=1
fi

if ! running; then
	rm -f "$data/postmaster.pid"
	port=${LTIGRADE_PG_PORT:-55432}
	while ! port_free "$port"; do port=$((port + 1)); done
	as "$BIN/pg_ctl" -D "$data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >&2 ||
		{ tail -20 "$dir/server.log" >&2; die "the server did not start"; }
fi
if [[ -n ${fresh:-} ]]; then
	pw=$(cat "$dir/password")
	as "$BIN/psql" -h "$data" -p "$(sed -n 4p "$data/postmaster.pid")" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
		-c "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$pw'" >&2
fi
start_bouncer "$(sed -n 4p "$data/postmaster.pid")" || true
emit
