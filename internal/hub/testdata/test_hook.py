"""Unit tests of the rendered JupyterHub hook (run by hub_test.go).

The hook is loaded the way The Littlest JupyterHub loads it: a
jupyterhub_config.py that sets hooks of its own calls load_subconfig(hook),
through a stand-in for traitlets' PyFileConfigLoader. ltigrade is
fake_ltigrade.py. Standard library only.

Environment: HOOK (the rendered snippet, whose ltigrade is the fake),
HOOK_CONFIG (its --config), HOOK_SPOOL_DIR, HOOK_TIMEOUT (seconds; generous,
so a loaded machine does not turn a slow start into a spool). The timeout
tests lower it to SHORT.
"""
import asyncio
import base64
import datetime
import json
import logging
import os
import shutil
import stat
import tempfile
import textwrap
import time
import unittest

HOOK = os.environ["HOOK"]
CONFIG = os.environ["HOOK_CONFIG"]
SPOOL = os.environ["HOOK_SPOOL_DIR"]
TIMEOUT = float(os.environ["HOOK_TIMEOUT"])
SHORT = 1.0


class LazyConfigValue:
    """What traitlets returns for a key that was read but never set."""


class Config(dict):
    """The parts of traitlets.config.Config the hook relies on: sections
    spring into existence when read, unset keys read as a lazy value, and
    merge() lets the merged config's values win."""

    def __getitem__(self, key):
        try:
            return dict.__getitem__(self, key)
        except KeyError:
            value = Config() if key[:1].isupper() else LazyConfigValue()
            dict.__setitem__(self, key, value)
            return value

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __setattr__(self, key, value):
        self[key] = value

    def merge(self, other):
        for k, v in other.items():
            if isinstance(v, Config) and isinstance(self.get(k), Config):
                self[k].merge(v)
            else:
                self[k] = v


class PyFileConfigLoader:
    """Mirrors traitlets' loader: the file runs with a fresh `c`, and
    load_subconfig merges a sub-file's fresh config into ours afterwards."""

    def __init__(self, path):
        self.path = path
        self.config = Config()

    def load_config(self):
        ns = dict(c=self.config, load_subconfig=self.load_subconfig, get_config=lambda: self.config, __file__=self.path)
        with open(self.path, "rb") as f:
            exec(compile(f.read(), self.path, "exec"), ns, ns)
        return self.config

    def load_subconfig(self, fname, path=None):
        loader = self.__class__(fname)
        sub_config = loader.load_config()
        self.config.merge(sub_config)


class Handler:
    """A tornado RequestHandler's argument getters: body values win over
    the query's (tornado's get_argument returns the last value)."""

    def __init__(self, query=None, body=None):
        self.query, self.body = query or {}, body or {}

    def get_argument(self, name, default=None):
        return self.body.get(name, self.query.get(name, default))

    def get_body_argument(self, name, default=None):
        return self.body.get(name, default)


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelname, record.getMessage()))


class Authenticator:
    def __init__(self):
        self.log = logging.getLogger("test-hub-%d" % id(self))
        self.log.propagate = False
        self.records = Records()
        self.log.addHandler(self.records)


class User:
    name = "alice"


class Spawner(Authenticator):
    def __init__(self, environment):
        super().__init__()
        self.environment = environment
        self.user = User()


LTI11 = {"lti_message_type": "basic-lti-launch-request", "lti_version": "LTI-1p0", "user_id": "u1",
         "resource_link_id": "hw1", "context_id": "c1", "roles": "Learner",
         "lis_outcome_service_url": "https://lms/outcomes", "lis_result_sourcedid": "src1"}
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
LTI13 = {"iss": "https://lms.example", "sub": "s1", "aud": "client", CLAIM + "message_type": "LtiResourceLinkRequest",
         CLAIM + "version": "1.3.0", CLAIM + "resource_link": {"id": "rl1"}}
PULL = "/hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fx%2Fy&urlpath=tree%2Fy%2Fhw1.ipynb"


class HookTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.log = os.path.join(self.tmp, "calls.jsonl")
        os.environ["FAKE_LTIGRADE_LOG"] = self.log
        os.environ["FAKE_LTIGRADE_MODE"] = "ok"
        shutil.rmtree(SPOOL, ignore_errors=True)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(shutil.rmtree, SPOOL, True)
        self.cfg = self.load("""
            async def admin_auth(authenticator, handler, authentication):
                authentication["admin_hook"] = True
                return authentication
            c.Authenticator.post_auth_hook = admin_auth
            def admin_spawn(spawner):
                spawner.environment["ADMIN"] = "1"
            c.Spawner.pre_spawn_hook = admin_spawn
            load_subconfig(HOOK)
        """)
        # The hub waits seconds to batch a burst of logins; tests need not.
        g = self.cfg["Authenticator"]["post_auth_hook"].__globals__
        self.addCleanup(g.update, {"_LTIGRADE_DEBOUNCE": g["_LTIGRADE_DEBOUNCE"]})
        g["_LTIGRADE_DEBOUNCE"] = 0.05

    def load(self, body):
        main = os.path.join(self.tmp, "jupyterhub_config.py")
        with open(main, "w") as f:
            f.write("HOOK = %r\n" % HOOK + textwrap.dedent(body))
        return PyFileConfigLoader(main).load_config()

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def login(self, auth_state, handler=None, cfg=None, section="Authenticator"):
        """Log in, then wait for the hook's background recording."""
        hook = (cfg or self.cfg)[section]["post_auth_hook"]
        authenticator = Authenticator()
        authentication = {"name": "alice", "auth_state": auth_state}

        async def run():
            result = await hook(authenticator, handler or Handler(), authentication)
            await self.background(hook)
            await asyncio.sleep(0.05)  # let asyncio reap children before the loop closes
            return result

        return asyncio.run(run()), authenticator

    async def background(self, hook):
        """Wait for the hook's background work: the recording of the spool,
        and direct recordings when the spool could not be written."""
        pending = hook.__globals__["_ltigrade_pending"]()
        if pending:
            await asyncio.wait(pending)

    def no_spool(self, hook):
        """Point the hook at a spool directory that cannot be created."""
        g = hook.__globals__
        self.addCleanup(g.update, {"LTIGRADE_SPOOL_DIR": g["LTIGRADE_SPOOL_DIR"]})
        blocker = os.path.join(self.tmp, "file")
        open(blocker, "w").close()
        g["LTIGRADE_SPOOL_DIR"] = os.path.join(blocker, "spool")

    def assert_gone(self, pid, what):
        """Fail unless pid exits within seconds (a zombie counts as gone:
        whether it is reaped is its parent's business)."""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rpartition(")")[2].split()[0] == "Z":
                        return
            except FileNotFoundError:
                return
            time.sleep(0.02)
        self.fail(what)

    def spooled_launch(self):
        [name] = self.spooled()
        with open(os.path.join(SPOOL, name)) as f:
            return json.load(f)

    def short_timeout(self, hook):
        g = hook.__globals__
        self.addCleanup(g.update, {"LTIGRADE_TIMEOUT": g["LTIGRADE_TIMEOUT"]})
        g["LTIGRADE_TIMEOUT"] = SHORT

    def spooled(self):
        if not os.path.isdir(SPOOL):
            return []
        return sorted(n for n in os.listdir(SPOOL))

    def test_lti11_launch_is_recorded_after_the_admin_hook(self):
        handler = Handler(query={"oauth_consumer_key": "course-key", "next": PULL})
        before = datetime.datetime.now(datetime.timezone.utc)
        result, _ = self.login(dict(LTI11), handler)
        self.assertTrue(result["admin_hook"], "the hook configured before ours must run first")
        self.assertEqual(result["name"], "alice")
        # The launch is spooled first; the background `record --spool`
        # (the fake does not ingest) records it.
        [call] = self.calls()
        self.assertEqual(call["argv"], ["--config", CONFIG, "record", "--spool"])
        launch = self.spooled_launch()
        self.assertEqual(sorted(launch), ["auth_state", "consumer_key", "launched_at", "next_url", "username"])
        self.assertEqual(launch["username"], "alice")
        self.assertEqual(launch["auth_state"], LTI11)
        self.assertEqual(launch["consumer_key"], "course-key")
        self.assertEqual(launch["next_url"], PULL)
        self.assertTrue(launch["launched_at"].endswith("Z"))
        at = datetime.datetime.fromisoformat(launch["launched_at"].replace("Z", "+00:00"))
        self.assertLessEqual(abs((at - before).total_seconds()), 5)

    def test_lti11_custom_next_from_the_body_wins(self):
        handler = Handler(query={"oauth_consumer_key": "k", "next": "/hub/home"}, body={"custom_next": PULL})
        self.login(dict(LTI11), handler)
        self.assertEqual(self.spooled_launch()["next_url"], PULL)
        # custom_next only counts in the body, as in ltiauthenticator
        shutil.rmtree(SPOOL)
        self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k", "custom_next": PULL, "next": "/hub/x"}))
        self.assertEqual(self.spooled_launch()["next_url"], "/hub/x")

    def test_lti13_next_comes_from_the_oauth_state(self):
        state = base64.urlsafe_b64encode(json.dumps({"state_id": "x", "next_url": PULL}).encode()).decode()
        self.login(dict(LTI13), Handler(query={"state": state}))
        launch = self.spooled_launch()
        self.assertEqual(launch["next_url"], PULL)
        self.assertEqual(launch["consumer_key"], "")
        self.assertEqual(launch["auth_state"], LTI13)
        shutil.rmtree(SPOOL)
        self.login(dict(LTI13), Handler(query={"state": "%%%not base64"}))
        self.assertEqual(self.spooled_launch()["next_url"], "")

    def test_non_lti_logins_are_ignored(self):
        for state in (None, {}, {"access_token": "t", "iss": "https://github.com"}, "text"):
            result, auth = self.login(state)
            self.assertTrue(result["admin_hook"])
        self.assertEqual(self.calls(), [])
        self.assertEqual(self.spooled(), [])
        self.assertEqual(auth.records.messages, [])

    def test_failure_spools_the_launch_0600(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "fail"
        result, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        self.assertEqual(result["name"], "alice")
        [name] = self.spooled()
        self.assertRegex(name, r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{12}\.json$")
        path = os.path.join(SPOOL, name)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(SPOOL).st_mode) & 0o077, 0)
        with open(path) as f:
            self.assertEqual(json.load(f)["username"], "alice")
        [(level, msg)] = auth.records.messages
        self.assertEqual(level, "ERROR")
        self.assertIn("readonly database", msg)
        self.assertIn(path, msg)

    def test_a_spool_shared_with_a_group_gets_group_readable_files(self):
        # docs/jupyterhub.md's grader group: the admin makes the spool 2770
        # for a group; the graders' ltigrade then reads the hub's launches.
        os.environ["FAKE_LTIGRADE_MODE"] = "fail"
        os.makedirs(SPOOL)
        os.chmod(SPOOL, 0o2770)
        saved = os.umask(0o077)
        self.addCleanup(os.umask, saved)
        self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        [name] = self.spooled()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(SPOOL, name)).st_mode), 0o640)
        # a private spool keeps private files
        shutil.rmtree(SPOOL)
        os.makedirs(SPOOL)
        os.chmod(SPOOL, 0o700)
        self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        [name] = self.spooled()
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(SPOOL, name)).st_mode), 0o600)

    def test_slow_ltigrade_never_holds_the_login_and_is_killed(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "slow"
        ticks = []
        hook = self.cfg["Authenticator"]["post_auth_hook"]
        self.short_timeout(hook)
        auth = Authenticator()

        async def main():

            async def ticker():
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.01)
            t = asyncio.ensure_future(ticker())
            start = time.monotonic()
            result = await hook(auth, Handler(query={"oauth_consumer_key": "k"}),
                                {"name": "alice", "auth_state": dict(LTI11)})
            took = time.monotonic() - start
            # the background recording runs into the timeout meanwhile
            await self.background(hook)
            t.cancel()
            await asyncio.sleep(0.2)  # let asyncio reap the killed child before the loop closes
            return result, took

        start = time.monotonic()
        result, took = asyncio.run(main())
        total = time.monotonic() - start
        self.assertEqual(result["name"], "alice")
        self.assertLess(took, 0.5, "the login waited for ltigrade")
        debounce = hook.__globals__["_LTIGRADE_DEBOUNCE"]
        self.assertLess(total, debounce + SHORT + 1.0, "the background recording outlived the timeout")
        self.assertGreater(len(ticks), SHORT / 0.01 / 4, "the event loop was blocked")
        self.assertEqual(len(self.spooled()), 1)
        self.assertIn("stays spooled as", auth.records.messages[0][1])
        pid = self.calls()[0]["pid"]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        else:
            self.fail("the slow ltigrade was not killed")

    def test_direct_fallback_does_not_hold_the_login(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "slow"
        hook = self.cfg["Authenticator"]["post_auth_hook"]
        self.short_timeout(hook)
        self.no_spool(hook)
        auth = Authenticator()

        async def main():
            start = time.monotonic()
            await hook(auth, Handler(query={"oauth_consumer_key": "k"}), {"name": "alice", "auth_state": dict(LTI11)})
            took = time.monotonic() - start
            await self.background(hook)
            await asyncio.sleep(0.2)  # let asyncio reap the killed child before the loop closes
            return took

        took = asyncio.run(main())
        self.assertLess(took, 0.5, "the login waited for the direct `ltigrade record -`")
        [call] = self.calls()
        self.assertEqual(call["argv"][-2:], ["record", "-"])
        self.assertEqual(json.loads(call["stdin"])["username"], "alice")
        [(_, first), (level, msg)] = auth.records.messages
        self.assertIn("cannot spool", first)
        self.assertEqual(level, "ERROR")
        self.assertIn("no answer within", msg)
        self.assertIn("launch lost", msg)
        self.assert_gone(call["pid"], "the slow direct recorder was not killed")

    def test_timeout_kills_the_recorders_process_group(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "grandchild"
        hook = self.cfg["Authenticator"]["post_auth_hook"]
        self.short_timeout(hook)
        self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        with open(self.log + ".grandchild") as f:
            grandchild = int(f.read())

        def kill():
            try:
                os.kill(grandchild, 9)
            except ProcessLookupError:
                pass
        self.addCleanup(kill)
        self.assert_gone(self.calls()[0]["pid"], "the hung recorder was not killed")
        self.assert_gone(grandchild, "the recorder's child outlived the timeout")

    def test_recorder_warnings_reach_the_hub_log(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "warn"
        _, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        msgs = auth.records.messages
        self.assertEqual([level for level, _ in msgs], ["WARNING", "WARNING"], msgs)
        self.assertIn("ltigrade: warning: nbgitpuller link refused, recorded without a checkout", msgs[0][1])
        self.assertIn("record --spool", msgs[0][1])
        # one line, control characters shown, not obeyed
        self.assertRegex(msgs[1][1], r"unsigned next .*disagrees.* with the .*signed one")
        for ch in "\x1b\r\n\u202e":
            self.assertNotIn(ch, msgs[1][1])
        self.assertNotIn("not ltigrade's", repr(msgs))

    def test_recorder_output_in_the_hub_log_is_bounded(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "flood"
        _, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        msgs = auth.records.messages
        self.assertLessEqual(len(msgs), 21)
        self.assertGreaterEqual(len(msgs), 2)
        self.assertIn("more", msgs[-1][1])
        for _, msg in msgs:
            self.assertLess(len(msg), 1000)

    def test_refused_launches_are_named_in_the_hub_log(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "refuse"
        _, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        msgs = auth.records.messages
        self.assertEqual([level for level, _ in msgs], ["ERROR", "ERROR"], msgs)
        self.assertIn('ltigrade: warning: spooled launch failed/', msgs[0][1])
        self.assertIn('"username" is required', msgs[0][1])
        self.assertIn("alice", msgs[1][1])
        self.assertIn(os.path.join(SPOOL, "failed"), msgs[1][1])
        self.assertIn("exit 2: ltigrade: 1 invalid spooled launch", msgs[1][1])
        self.assertNotIn("stays spooled", msgs[1][1])

    def test_a_failed_run_that_recorded_this_launch_is_still_logged(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "recordrefuseother"
        _, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        self.assertEqual(self.spooled(), [])
        msgs = auth.records.messages
        self.assertEqual([level for level, _ in msgs], ["ERROR", "ERROR"], msgs)
        self.assertIn("spooled launch failed/20261125T100000.000000Z-0000.json", msgs[0][1])
        self.assertIn("exit 2: ltigrade: 1 invalid spooled launch moved to", msgs[1][1])
        self.assertNotIn("alice", msgs[1][1])

    def test_a_launch_claimed_by_a_killed_recorder_is_said_to_stay_spooled(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "claim"
        hook = self.cfg["Authenticator"]["post_auth_hook"]
        self.short_timeout(hook)
        _, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        [claim] = self.spooled()
        self.assertTrue(claim.startswith(".ingesting-"), claim)
        [(level, msg)] = auth.records.messages
        self.assertEqual(level, "ERROR")
        self.assertIn("stays spooled as", msg)
        self.assertIn(claim.split("-", 3)[3], msg)

    def test_a_burst_of_logins_shares_background_runs(self):
        hook = self.cfg["Authenticator"]["post_auth_hook"]

        async def main():
            for i in range(10):
                await hook(Authenticator(), Handler(query={"oauth_consumer_key": "k"}),
                           {"name": "u%d" % i, "auth_state": dict(LTI11)})
            await self.background(hook)
            await asyncio.sleep(0.05)

        asyncio.run(main())
        self.assertEqual(len(self.spooled()), 10)
        runs = [c for c in self.calls() if c["argv"][-2:] == ["record", "--spool"]]
        self.assertGreaterEqual(len(runs), 1)
        self.assertLessEqual(len(runs), 3, "one background run per login would compete with the hub")

    def test_pre_spawn_waits_for_the_background_recording(self):
        hook = self.cfg["Authenticator"]["post_auth_hook"]
        spawn = self.cfg["Spawner"]["pre_spawn_hook"]

        async def main():
            await hook(Authenticator(), Handler(query={"oauth_consumer_key": "k"}),
                       {"name": "alice", "auth_state": dict(LTI11)})
            await spawn(Spawner({}))
            await asyncio.sleep(0.05)

        asyncio.run(main())
        argvs = [c["argv"][-3:] for c in self.calls()]
        self.assertEqual(argvs[0][-2:], ["record", "--spool"])
        self.assertEqual(argvs[1], ["env", "--user=alice", "--json"])

    def test_missing_binary_and_failed_spool_are_only_logged(self):
        hook = self.cfg["Authenticator"]["post_auth_hook"]
        g = hook.__globals__
        saved = g["LTIGRADE"], g["LTIGRADE_SPOOL_DIR"]
        self.addCleanup(g.update, {"LTIGRADE": saved[0], "LTIGRADE_SPOOL_DIR": saved[1]})
        g["LTIGRADE"] = os.path.join(self.tmp, "no-such-ltigrade")
        result, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        self.assertEqual(len(self.spooled()), 1)
        blocker = os.path.join(self.tmp, "file")
        open(blocker, "w").close()
        g["LTIGRADE_SPOOL_DIR"] = os.path.join(blocker, "spool")
        result, auth = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}))
        self.assertEqual(result["name"], "alice")
        # no spool: record directly; with no ltigrade either, say it is lost
        [(_, first), (level, msg)] = auth.records.messages
        self.assertIn("cannot spool", first)
        self.assertIn("launch lost", msg)

    def test_loaded_twice_records_once(self):
        cfg = self.load("""
            load_subconfig(HOOK)
            load_subconfig(HOOK)
        """)
        self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}), cfg=cfg)
        self.assertEqual(len(self.calls()), 1)

    def test_subclass_section_hook_is_chained_too(self):
        cfg = self.load("""
            def lti_hook(authenticator, handler, authentication):
                authentication["lti_hook"] = True
                return authentication
            c.LTI11Authenticator.post_auth_hook = lti_hook
            load_subconfig(HOOK)
        """)
        result, _ = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}), cfg=cfg,
                               section="LTI11Authenticator")
        self.assertTrue(result["lti_hook"])
        self.assertEqual(len(self.calls()), 1)

    def test_exec_into_the_main_config_chains(self):
        cfg = self.load("""
            def admin_auth(authenticator, handler, authentication):
                authentication["admin_hook"] = True
                return authentication
            c.Authenticator.post_auth_hook = admin_auth
            exec(compile(open(HOOK).read(), HOOK, "exec"))
        """)
        result, _ = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}), cfg=cfg)
        self.assertTrue(result["admin_hook"])
        self.assertEqual(len(self.calls()), 1)

    def test_a_rejecting_admin_hook_stops_the_recording(self):
        cfg = self.load("""
            c.Authenticator.post_auth_hook = lambda a, h, authentication: None
            load_subconfig(HOOK)
        """)
        result, _ = self.login(dict(LTI11), Handler(query={"oauth_consumer_key": "k"}), cfg=cfg)
        self.assertIsNone(result)
        self.assertEqual(self.calls(), [])

    def test_pre_spawn_merges_lti_env(self):
        os.environ["FAKE_LTIGRADE_MODE"] = "env"
        hook = self.cfg["Spawner"]["pre_spawn_hook"]
        spawner = Spawner({"KEEP": "x", "LTI_OLD": "stale"})
        spawner._ltigrade_env_keys = ("LTI_OLD",)
        asyncio.run(hook(spawner))
        self.assertEqual(spawner.environment,
                         {"KEEP": "x", "ADMIN": "1", "LTI_CONTEXT_ID": "c1", "LTI_ROLES": "Learner"})
        self.assertEqual(self.calls()[0]["argv"], ["--config", CONFIG, "env", "--user=alice", "--json"])
        self.short_timeout(hook)

        async def spawn(spawner):
            start = time.monotonic()
            await hook(spawner)
            took = time.monotonic() - start
            await asyncio.sleep(0.2)  # let asyncio reap a killed child before the loop closes
            return took

        for mode in ("fail", "badenv", "slow"):
            os.environ["FAKE_LTIGRADE_MODE"] = mode
            spawner = Spawner({"KEEP": "x"})
            self.assertLess(asyncio.run(spawn(spawner)), SHORT + 0.5)
            self.assertEqual(spawner.environment, {"KEEP": "x", "ADMIN": "1"}, mode)
            [(level, msg)] = spawner.records.messages
            self.assertIn("no LTI_* variables for alice", msg)


if __name__ == "__main__":
    unittest.main()
