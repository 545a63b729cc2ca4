"""The original project's passback path, for scripts/bench-batch.sh.

For each row of a CSV (outcome_url,sourcedid,score) it does what the original
project did for one student: build an lti.ToolProvider from the launch's
outcome parameters and call post_replace_result(score), one student after
another. Prints the wall time of the loop and the failures, if any.

    python lti_baseline.py KEY SECRET ROWS.csv
"""

import csv
import sys
import time

from lti import ToolProvider


def main():
    key, secret, path = sys.argv[1:4]
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    failed = 0
    start = time.perf_counter()
    for r in rows:
        tp = ToolProvider(
            consumer_key=key,
            consumer_secret=secret,
            params={
                "lis_outcome_service_url": r["outcome_url"],
                "lis_result_sourcedid": r["sourcedid"],
            },
        )
        resp = tp.post_replace_result(r["score"])
        if not resp.is_success():
            failed += 1
            if failed <= 3:
                print("failed: %s: %s" % (r["sourcedid"], resp.description), file=sys.stderr)
    took = time.perf_counter() - start
    print("rows=%d failed=%d loop_seconds=%.3f" % (len(rows), failed, took))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
