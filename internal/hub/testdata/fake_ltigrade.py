"""Stands in for the ltigrade binary in test_hook.py.

Each call appends {"argv", "stdin", "pid"} as one JSON line to
$FAKE_LTIGRADE_LOG, then behaves as $FAKE_LTIGRADE_MODE says:
ok (exit 0), fail (exit 1 with an ltigrade-like message), slow (sleep),
env (print LTI_* variables as JSON), badenv (print something else).
"""
import json
import os
import sys
import time

mode = os.environ.get("FAKE_LTIGRADE_MODE", "ok")
stdin = sys.stdin.read()
with open(os.environ["FAKE_LTIGRADE_LOG"], "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "stdin": stdin, "pid": os.getpid()}) + "\n")

if mode == "fail":
    sys.stderr.write("ltigrade: store: attempt to write a readonly database\n")
    sys.exit(1)
if mode == "slow":
    time.sleep(60)
if mode == "env":
    print(json.dumps({"LTI_CONTEXT_ID": "c1", "LTI_ROLES": "Learner"}))
if mode == "badenv":
    print("not json")
