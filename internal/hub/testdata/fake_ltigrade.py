"""Stands in for the ltigrade binary in test_hook.py.

Each call appends {"argv", "stdin", "pid"} as one JSON line to
$FAKE_LTIGRADE_LOG, then behaves as $FAKE_LTIGRADE_MODE says:
ok (exit 0), fail (exit 1 with an ltigrade-like message), slow (sleep),
env (print LTI_* variables as JSON), badenv (print something else),
grandchild (start a process that sleeps, write its pid to
$FAKE_LTIGRADE_LOG.grandchild, and sleep), warn (print warnings, one with
control characters, and other noise on stderr; exit 0), flood (print 100
long warnings), refuse (move every spooled launch of $HOOK_SPOOL_DIR to its
failed/ folder, as `record --spool` does with invalid ones, and exit 2),
claim (rename every spooled launch to a claim, as `record --spool` does
before storing it, and sleep), recordrefuseother (record, i.e. delete, every
spooled launch and exit 2 for one refused earlier).
"""
import json
import os
import subprocess
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
if mode == "grandchild":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.environ["FAKE_LTIGRADE_LOG"] + ".grandchild", "w") as f:
        f.write(str(child.pid))
    time.sleep(60)
if mode == "warn":
    sys.stderr.write("ltigrade: warning: nbgitpuller link refused, recorded without a checkout\n"
                     "a line that is not ltigrade's\n"
                     "ltigrade: warning: unsigned next \x1b[31mdisagrees\x1b[0m\r with the \u202esigned one\n")
if mode == "flood":
    for i in range(100):
        sys.stderr.write("ltigrade: warning: %d %s\n" % (i, "x" * 10000))
if mode == "refuse":
    spool = os.environ["HOOK_SPOOL_DIR"]
    os.makedirs(os.path.join(spool, "failed"), exist_ok=True)
    for name in os.listdir(spool):
        if name.endswith(".json"):
            os.rename(os.path.join(spool, name), os.path.join(spool, "failed", name))
            sys.stderr.write("ltigrade: warning: spooled launch failed/%s: launch: \"username\" is required\n" % name)
    sys.stderr.write("ltigrade: 1 invalid spooled launch moved to %s/failed/\n" % spool)
    sys.exit(2)
if mode == "claim":
    spool = os.environ["HOOK_SPOOL_DIR"]
    for name in os.listdir(spool):
        if name.endswith(".json") and not name.startswith("."):
            os.rename(os.path.join(spool, name), os.path.join(spool, ".ingesting-0badf00d.%d.1-0badf00d-%s" % (os.getpid(), name)))
    time.sleep(60)
if mode == "recordrefuseother":
    spool = os.environ["HOOK_SPOOL_DIR"]
    for name in os.listdir(spool):
        if name.endswith(".json"):
            os.unlink(os.path.join(spool, name))
    sys.stderr.write("ltigrade: warning: spooled launch failed/20261125T100000.000000Z-0000.json: launch: bad\n"
                     "ltigrade: 1 invalid spooled launch moved to %s/failed/\n" % spool)
    sys.exit(2)
if mode == "env":
    print(json.dumps({"LTI_CONTEXT_ID": "c1", "LTI_ROLES": "Learner"}))
if mode == "badenv":
    print("not json")
