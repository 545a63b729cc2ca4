#!/usr/bin/env bash
# Hub login latency for an LTI 1.1 launch, with and without ltigrade's hook
# (issue #3; figures in docs/benchmarks.md, "Hub login latency").
#
# Uses the cached JupyterHub environment of the end-to-end test
# (scripts/hub-env.sh) and bin/ltigrade (`make build`), then runs
# scripts/benchhub: per mode and round a fresh hub and `ltigrade sandbox`,
# 40 untimed launches, then the timed ones. Without arguments it runs the
# issue's figure (200 launches, 20 in flight, 2 rounds) and then the same one
# at a time (the hook's own cost, without queueing), then `ltigrade record`
# alone the same two ways; with arguments it runs benchhub once with them
# (-n, -c, -rounds, -students, -record-timeout, -record-only, -keep).
#
#   make bench-hub            # or: bash scripts/bench-hub.sh -rounds 3
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

if [[ ! -x bin/ltigrade ]]; then
	CGO_ENABLED=1 "$GO" build -o bin/ltigrade ./cmd/ltigrade
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-hub.XXXXXX")
trap 'rm -rf "$work"' EXIT

rc=0
bash scripts/hub-env.sh >"$work/hub-env" || rc=$?
if [[ $rc == 3 ]]; then
	echo "bench-hub: PyPI or npm cannot be reached, so there is no JupyterHub to measure" >&2
	exit 3
elif [[ $rc != 0 ]]; then
	echo "bench-hub: scripts/hub-env.sh failed (exit $rc)" >&2
	exit "$rc"
fi

"$GO" build -o "$work/benchhub" ./scripts/benchhub
run() {
	echo "# benchhub $*  ($(date -u +%Y-%m-%dT%H:%MZ), ltigrade $(bin/ltigrade --version 2>/dev/null | awk '{print $NF}'))"
	"$work/benchhub" -ltigrade bin/ltigrade -env "$work/hub-env" "$@"
	echo
}
if [[ $# -gt 0 ]]; then
	run "$@"
else
	# The issue's figure: 200 launches, 20 in flight (2 rounds, alternating).
	run -n 200 -c 20 -rounds 2
	# One at a time: the hook's own cost per login, without queueing.
	run -n 200 -c 1 -rounds 1
	# What the hook waits for, without a hub: `ltigrade record` processes.
	run -record-only -n 200 -c 20
	run -record-only -n 200 -c 1
fi
