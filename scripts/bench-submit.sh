#!/usr/bin/env bash
# Server-side grading figures for issue 10 (docs/benchmarks.md), run by
# `make bench-submit` (as root: the grading sandbox needs it):
#
#   1. submit-to-delivered latency of a small otter notebook (two questions,
#      an autograder zip made here by the real `otter assign`): BENCH_RUNS
#      submissions one after the other, each by another student, each timed
#      from the start of `ltigrade submit` to the moment the LMS double
#      (testdata/lmsdouble/lms.py, polled every 10 ms) holds the score;
#      median and p90, beside the grading time in the sandbox alone
#      (started_at..finished_at of each submission);
#   2. BENCH_N students submitting at once with BENCH_WORKERS grading
#      workers: every score counted at the LMS (none lost, each the score
#      its tests earn), the drain time (first submit to last score at the
#      LMS), beside N x (median grading time of part 1) / workers.
#
# Through `ltigrade serve` with real otter-grader (scripts/grader-env.sh)
# in the real sandbox; the hub is a stand-in (benchseed serve-hub) that
# knows each student's token, so there is no JupyterHub in the figures
# (the service asks the hub once per token and caches the answer).
#
# Knobs: BENCH_RUNS (20), BENCH_N (30), BENCH_WORKERS (2), GO (go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
RUNS=${BENCH_RUNS:-20}
N=${BENCH_N:-30}
WORKERS=${BENCH_WORKERS:-2}
KEY=bench-submit-key
SECRET=bench-submit-secret-$RANDOM$RANDOM
TOKEN=bench-grader-token-$RANDOM$RANDOM
STUDENT_PREFIX=bench-student-token-$RANDOM-
BIN=$root/bin/ltigrade
GO=${GO:-go}

say() { printf '==> %s\n' "$*" >&2; }

if [[ $(id -u) != 0 ]]; then
	say "bench-submit needs root: the grading sandbox runs graders as a dedicated user in namespaces"
	exit 2
fi

CGO_ENABLED=1 "$GO" build -o "$BIN" ./cmd/ltigrade
W=$(mktemp -d "${TMPDIR:-/tmp}/ltigrade-bench-submit.XXXXXX")
"$GO" build -o "$W/benchseed" ./scripts/benchseed
DPY=$(bash scripts/python-env.sh)
GENV=$(bash scripts/grader-env.sh)
GPY=$(printf '%s\n' "$GENV" | sed -n 's/^GRADER_PYTHON=//p')
OTTER=$(printf '%s\n' "$GENV" | sed -n 's/^OTTER=//p')
SBUSER=ltgbench-$RANDOM
useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SBUSER"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	userdel "$SBUSER" 2>/dev/null || true
	getent group "$SBUSER" >/dev/null && groupdel "$SBUSER" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

waitfile() { for _ in $(seq 200); do [[ -s $1 ]] && return 0; sleep 0.05; done; say "$2 did not start"; exit 1; }

"$DPY" testdata/lmsdouble/lms.py --port-file "$W/lms.port" --consumer "$KEY:$SECRET" 2>"$W/lms.log" &
pids+=($!)
waitfile "$W/lms.port" "lms.py"
LMS=http://127.0.0.1:$(cat "$W/lms.port")
"$W/benchseed" serve-hub -token "$TOKEN" -user ta1 -group instructors -student-token-prefix "$STUDENT_PREFIX" \
	-url-file "$W/hub.url" 2>"$W/hub.log" &
pids+=($!)
waitfile "$W/hub.url" "the hub stand-in"
HUBAPI=$(cat "$W/hub.url")

# The instructor's side: a master notebook (q1 add 2 points, q2 mul 1
# point), `otter assign`, and the student copy with add right and mul
# wrong, so each submission earns 2 of 3.
say "otter assign (not timed)"
mkdir -p "$W/otter"
"$DPY" - "$W/otter/hw1.ipynb" <<'PY'
import json, sys
def c(kind, src):
    d = {"cell_type": kind, "metadata": {}, "source": src}
    if kind == "code":
        d.update(outputs=[], execution_count=None)
    return d
cells = [c("raw", "# ASSIGNMENT CONFIG\nname: hw1\nrun_tests: false\nexport_cell: false\ncheck_all_cell: false\ninit_cell: true\n"),
    c("markdown", "# Homework 1"),
    c("raw", "# BEGIN QUESTION\nname: q1\npoints: 2\n"), c("code", "def add(a, b):\n    return a + b # SOLUTION\n"),
    c("raw", "# BEGIN TESTS"), c("code", "assert add(1, 2) == 3\n"), c("raw", "# END TESTS"), c("raw", "# END QUESTION"),
    c("raw", "# BEGIN QUESTION\nname: q2\npoints: 1\n"), c("code", "def mul(a, b):\n    return a * b # SOLUTION\n"),
    c("raw", "# BEGIN TESTS"), c("code", "assert mul(2, 3) == 6\n"), c("raw", "# END TESTS"), c("raw", "# END QUESTION")]
for i, x in enumerate(cells):
    x["id"] = "c%d" % i
json.dump({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}, open(sys.argv[1], "w"), indent=1)
PY
(cd "$W/otter" && HOME="$W/otter" JUPYTER_PLATFORM_DIRS=1 PATH="$(dirname "$OTTER"):$PATH" "$OTTER" assign hw1.ipynb dist >"$W/otter.log" 2>&1) ||
	{ cat "$W/otter.log" >&2; exit 1; }
ZIP=$(ls "$W"/otter/dist/autograder/hw1-autograder_*.zip)
"$DPY" - "$W/otter/dist/student/hw1.ipynb" "$W/answer.ipynb" <<'PY'
import json, sys
nb = json.load(open(sys.argv[1]))
for c in nb["cells"]:
    src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    if c["cell_type"] == "code" and src.strip().startswith("def add("):
        c["source"] = "def add(a, b):\n    return a + b\n"
    if c["cell_type"] == "code" and src.strip().startswith("def mul("):
        c["source"] = "def mul(a, b):\n    return a + b\n"
json.dump(nb, open(sys.argv[2], "w"))
PY

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
[submit]
sandbox_user = "$SBUSER"
workers = $WORKERS
interval = "0s"
queue = 1000
[[graders]]
course = "c1"
assignment = "hw1"
kind = "otter"
autograder = "$ZIP"
python = "$GPY"
timeout = "10m"
EOT
chmod 600 "$W/config.toml"
CFG=(--config "$W/config.toml")

TOTAL=$((1 + RUNS + N))
say "recording $TOTAL launches and notebooks (not timed)"
mkdir -p "$W/spool"
chmod 700 "$W/spool"
for ((i = 1; i <= TOTAL; i++)); do
	printf -v u 's%04d' "$i"
	printf '{"username":"%s","consumer_key":"%s","next_url":"/hub/user-redirect/git-pull?repo=https%%3A%%2F%%2Fgithub.com%%2Fx%%2Fm&urlpath=tree%%2Fm%%2Fhw1%%2Fhw1.ipynb","auth_state":{"lti_version":"LTI-1p0","lti_message_type":"basic-lti-launch-request","user_id":"lms-%s","resource_link_id":"hw1","context_id":"c1","lis_outcome_service_url":"%s/outcomes","lis_result_sourcedid":"src-%s-hw1"}}\n' \
		"$u" "$KEY" "$u" "$LMS" "$u" >"$W/spool/$u.json"
	mkdir -p "$W/home/jupyter-$u/m/hw1"
	cp "$W/answer.ipynb" "$W/home/jupyter-$u/m/hw1/hw1.ipynb"
done
chmod 600 "$W"/spool/*.json
"$BIN" "${CFG[@]}" record --spool >/dev/null

freeport() { "$DPY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(freeport)
JUPYTERHUB_API_URL=$HUBAPI JUPYTERHUB_API_TOKEN=service-token "$BIN" "${CFG[@]}" serve --listen "127.0.0.1:$PORT" 2>"$W/serve.log" &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/services/ltigrade/healthz" >/dev/null && break; sleep 0.05; done
SERVICE=http://127.0.0.1:$PORT/services/ltigrade/
grep -q '"grading submissions"' "$W/serve.log" || { say "the service does not grade:"; cat "$W/serve.log" >&2; exit 1; }

echo "# bench-submit: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg), $WORKERS workers"
"$DPY" - "$BIN" "$SERVICE" "$LMS" "$W/home" "$STUDENT_PREFIX" "$TOKEN" "$RUNS" "$N" "$WORKERS" <<'PY'
import json, os, re, subprocess, sys, time, urllib.request
from datetime import datetime
bin_, service, lms, homes, prefix, grader_token, runs, n, workers = sys.argv[1:10]
runs, n, workers = int(runs), int(n), int(workers)
want = 2 / 3

def lms_grades():
    return {r["sourced_id"]: float(r["score"]) for r in json.load(urllib.request.urlopen(lms + "/grades.json"))}

def submit(u):
    # What a terminal in the student's server has: their root, their
    # server's token, the service's URL.
    home = os.path.join(homes, "jupyter-" + u)
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "LTIGRADE_URL": service, "JUPYTERHUB_API_TOKEN": prefix + u}
    return subprocess.Popen([bin_, "submit", "m/hw1/hw1.ipynb", "--json"], cwd=home, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def check(p, u):
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit("submit for %s: exit %d\n%s%s" % (u, p.returncode, out, err))

def wait_lms(users, timeout=1800):
    deadline = time.monotonic() + timeout
    seen = {}
    while len(seen) < len(users):
        g = lms_grades()
        now = time.monotonic()
        for u in users:
            if u not in seen and "src-%s-hw1" % u in g:
                seen[u] = (now, g["src-%s-hw1" % u])
        if now > deadline:
            sys.exit("only %d of %d scores reached the LMS in %ds" % (len(seen), len(users), timeout))
        time.sleep(0.01)
    return seen

def ts(s):
    s = re.sub(r"(\.\d{6})\d+", r"\1", s).replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()

def submissions():
    req = urllib.request.Request(service + "api/submissions", headers={"Authorization": "token " + grader_token})
    return {s["username"]: s for s in json.load(urllib.request.urlopen(req))}

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]

users = ["s%04d" % i for i in range(1, 2 + runs + n)]
# 1. one after the other (the first is a warm-up: page cache, venv imports)
lat = []
for i, u in enumerate(users[:1 + runs]):
    t0 = time.monotonic()
    check(submit(u), u)
    t1, score = wait_lms([u])[u]
    if abs(score - want) > 1e-3:
        sys.exit("%s: the LMS holds %g, want %g" % (u, score, want))
    if i > 0:
        lat.append(t1 - t0)
subs = submissions()
grading = [ts(subs[u]["finished_at"]) - ts(subs[u]["started_at"]) for u in users[1:1 + runs]]
g_med = pct(grading, 0.5)
print("submit-to-delivered, %d otter submissions one at a time: median %.2f s, p90 %.2f s, min %.2f s, max %.2f s" %
      (runs, pct(lat, 0.5), pct(lat, 0.9), min(lat), max(lat)))
print("  of which grading in the sandbox: median %.2f s, p90 %.2f s" % (g_med, pct(grading, 0.9)))

# 2. n students at once
crowd = users[1 + runs:]
t0 = time.monotonic()
ps = [(submit(u), u) for u in crowd]
for p, u in ps:
    check(p, u)
t_sub = time.monotonic() - t0
seen = wait_lms(crowd)
drain = max(t for t, _ in seen.values()) - t0
wrong = [u for u, (_, s) in seen.items() if abs(s - want) > 1e-3]
subs = submissions()
states = {}
for u in crowd:
    states[subs[u]["status"]] = states.get(subs[u]["status"], 0) + 1
g2 = [ts(subs[u]["finished_at"]) - ts(subs[u]["started_at"]) for u in crowd]
expect = n * g_med / workers
print("%d students at once, %d workers: %d of %d scores at the LMS (%d wrong), submissions %s; all submitted in %.2f s" %
      (n, workers, len(seen), n, len(wrong), json.dumps(states, sort_keys=True), t_sub))
print("  queue drained in %.1f s; %d x %.2f s (single grading) / %d workers = %.1f s; ratio %.2f; grading under load: median %.2f s" %
      (drain, n, g_med, workers, expect, drain / expect, pct(g2, 0.5)))
if wrong or len(seen) != n:
    sys.exit(1)
PY
