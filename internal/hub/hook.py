# ltigrade: record every LTI launch at this JupyterHub, and give user servers
# LTI_* environment variables from their newest launch.
#
# Written by `ltigrade hub install` (print it with `ltigrade hub hook`). Do not
# edit: change the ltigrade config and run `ltigrade hub install` again. The
# Littlest JupyterHub loads it from /opt/tljh/config/jupyterhub_config.d/; any
# jupyterhub_config.py can load it with load_subconfig(path). Python 3.9+,
# standard library only.
#
# On each LTI 1.1 or 1.3 login the post_auth_hook writes the launch as JSON to
# LTIGRADE_SPOOL_DIR (one small file, no fsync) and lets the
# login go on at once; in the background it runs `ltigrade record --spool`,
# for at most LTIGRADE_TIMEOUT seconds, which records the spooled launches.
# If ltigrade fails or is slow, the launch stays spooled (`ltigrade sync`
# records it later) and the error goes to the hub log: a login is never
# failed or held by ltigrade. If the spool cannot be written, the hook runs
# `ltigrade record -` directly instead, in the background too. ltigrade's
# warnings go to the hub log. Hooks configured before this file are kept and
# run first.

import asyncio
import base64
import datetime
import inspect
import json
import logging
import os
import secrets
import signal
import sys
import unicodedata

# Filled in by ltigrade (JSON values, which Python reads as literals).
LTIGRADE = "ltigrade"
LTIGRADE_ARGS = []
LTIGRADE_SPOOL_DIR = ""
LTIGRADE_TIMEOUT = 5.0
# The ltigrade version that wrote this file: `ltigrade doctor` compares it
# with the binary's, since a new release may need a new hook.
LTIGRADE_VERSION = ""

_LTI13_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"


# What the hub log takes from one ltigrade run's stderr: a launch's fields
# can appear in ltigrade's messages, and a hostile launch must not flood
# the log or write terminal escapes into it.
_LTIGRADE_LOG_LINES = 20
_LTIGRADE_LOG_WIDTH = 300


def _ltigrade_clean(line):
    """line with control and format characters (escapes, bidi overrides)
    shown as \\x.. / \\u...., cut to _LTIGRADE_LOG_WIDTH characters."""
    out = []
    for ch in line[:_LTIGRADE_LOG_WIDTH]:
        if unicodedata.category(ch)[0] == "C":
            ch = "\\x%02x" % ord(ch) if ord(ch) < 0x100 else "\\u%04x" % ord(ch)
        out.append(ch)
    if len(line) > _LTIGRADE_LOG_WIDTH:
        out.append("...")
    return "".join(out)


def _ltigrade_kill(proc):
    """Kill ltigrade's whole process group (it leads its own session), so
    nothing it started outlives it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass


async def _ltigrade_run(log, args, stdin=b""):
    """Run ltigrade and return its stdout; raise if it fails or does not
    finish within LTIGRADE_TIMEOUT seconds (its process group is killed
    then). Its `ltigrade:` lines on stderr go to log: warnings when it
    succeeds, errors when it fails (the last one is the exception's)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LTIGRADE_TIMEOUT
    proc = await asyncio.create_subprocess_exec(
        LTIGRADE, *LTIGRADE_ARGS, *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), max(deadline - loop.time(), 0.001))
    except asyncio.TimeoutError:
        _ltigrade_kill(proc)
        raise RuntimeError("no answer within %gs, killed it" % LTIGRADE_TIMEOUT) from None
    except BaseException:
        # Killed, not awaited: asyncio reaps the child, and waiting for a
        # process stuck in the kernel could hold the login.
        _ltigrade_kill(proc)
        raise
    # Only "\n" ends a line: a "\r" or U+2028 in a message must not start a
    # line of its own that looks like ltigrade's.
    lines = [line.strip() for line in err.decode("utf-8", "replace").split("\n") if line.strip()]
    said = [line for line in lines if line.startswith("ltigrade:")]
    last = None
    if proc.returncode != 0:
        if said:
            last, said = said[-1], said[:-1]
        else:
            last = lines[-1] if lines else "no message"
    level = logging.WARNING if proc.returncode == 0 else logging.ERROR
    command = " ".join(args)
    for line in said[:_LTIGRADE_LOG_LINES]:
        log.log(level, "%s (from `ltigrade %s`)", _ltigrade_clean(line), command)
    if len(said) > _LTIGRADE_LOG_LINES:
        log.log(level, "ltigrade: %d more lines from `ltigrade %s` not logged", len(said) - _LTIGRADE_LOG_LINES, command)
    if last is not None:
        raise RuntimeError("exit %d: %s" % (proc.returncode, _ltigrade_clean(last)))
    return out


def _ltigrade_arg(handler, name, body_only=False):
    try:
        get = handler.get_body_argument if body_only else handler.get_argument
        value = get(name, "")
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


def _ltigrade_lti13_next(handler):
    """The next URL ltiauthenticator 1.6 will redirect to: the login
    initiation's `next` (or the one inside target_link_uri), carried in the
    OAuth state as base64 JSON, which the callback has already verified."""
    try:
        state = base64.urlsafe_b64decode(_ltigrade_arg(handler, "state").encode("ascii"))
        next_url = json.loads(state.decode("utf-8")).get("next_url")
    except Exception:
        return ""
    return next_url if isinstance(next_url, str) else ""


def _ltigrade_launch(handler, authentication):
    """The JSON `ltigrade record` reads, or None for a login that is not an
    LTI launch."""
    state = authentication.get("auth_state")
    if not isinstance(state, dict):
        return None
    if "iss" in state and (_LTI13_CLAIM + "message_type" in state or _LTI13_CLAIM + "version" in state):
        consumer_key = ""
        next_url = _ltigrade_lti13_next(handler)
    elif "resource_link_id" in state or "lti_message_type" in state or state.get("lti_version") == "LTI-1p0":
        # ltiauthenticator leaves oauth_* out of auth_state; the key is in the
        # request. The redirect follows ltiauthenticator: custom_next from the
        # body, else JupyterHub's next.
        consumer_key = _ltigrade_arg(handler, "oauth_consumer_key")
        next_url = _ltigrade_arg(handler, "custom_next", body_only=True) or _ltigrade_arg(handler, "next")
    else:
        return None
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "username": authentication.get("name", ""),
        "auth_state": state,
        "consumer_key": consumer_key,
        "next_url": next_url,
        "launched_at": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    }


def _ltigrade_spool(data):
    """Write one launch to the spool directory atomically (temporary name,
    then rename) and return its path. The file is readable by its owner
    only, and by the directory's group when the directory is (an admin
    shared it with graders, see docs/jupyterhub.md); never writable by
    others, which ltigrade would refuse."""
    if not LTIGRADE_SPOOL_DIR:
        raise RuntimeError("no spool directory configured (hub.spool_dir)")
    os.makedirs(LTIGRADE_SPOOL_DIR, mode=0o700, exist_ok=True)
    mode = 0o600 | (os.stat(LTIGRADE_SPOOL_DIR).st_mode & 0o040)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = "%s-%s.json" % (stamp, secrets.token_hex(6))
    tmp = os.path.join(LTIGRADE_SPOOL_DIR, ".tmp-" + name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        # No fsync: the file outlives a crash of the hub (the page cache is
        # the kernel's); an fsync per login would be most of its cost.
        with os.fdopen(fd, "wb") as f:
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)  # past the umask
            f.write(data)
        path = os.path.join(LTIGRADE_SPOOL_DIR, name)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# One background `ltigrade record --spool` at a time for the whole hub: a
# burst of logins is recorded by a few processes (each stores what is
# spooled, 100 launches per transaction), not one process per login competing
# with the hub for the CPU. Launches spooled while a run is under way are
# taken by the next run.
_LTIGRADE_INGEST = {"task": None, "waiting": [], "now": None}
# Seconds a run waits for more logins. Measured on 2 cores with 20 logins in
# flight: 1 s added +22 ms at p99 to the hub's login latency (the recorder
# ran during the burst), 3 s added +10 ms. Launches are recorded within
# about that long, sooner when a spawn needs one.
_LTIGRADE_DEBOUNCE = 3.0


async def _ltigrade_ingest_loop(log, now):
    while _LTIGRADE_INGEST["waiting"]:
        # Waiting a moment lets a burst of logins share one run, which then
        # mostly comes after the burst instead of competing with it. A
        # spawn that needs its launch recorded cuts the wait short.
        try:
            await asyncio.wait_for(now.wait(), _LTIGRADE_DEBOUNCE)
        except asyncio.TimeoutError:
            pass
        now.clear()
        batch, _LTIGRADE_INGEST["waiting"] = _LTIGRADE_INGEST["waiting"], []
        try:
            await _ltigrade_run(log, ["record", "--spool"])
        except Exception as e:
            # The run may have recorded some and refused others (it exits
            # non-zero when it moved a launch to failed/): say what became
            # of each launch this run was for. One still in the spool may
            # be under a claim's name (.ingesting-<owner>-<random>-<name>)
            # if ltigrade was killed holding it; `sync` takes it over.
            try:
                spooled = os.listdir(os.path.dirname(batch[0][1])) if batch else []
            except OSError:
                spooled = None
            said = False
            for name, path in batch:
                base = os.path.basename(path)
                failed = os.path.join(os.path.dirname(path), "failed", base)
                if os.path.lexists(failed):
                    log.error("ltigrade: the LTI launch of %s was refused and moved to %s (%s)", name, failed, e)
                elif spooled is None or any(n == base or (n.startswith(".ingesting-") and n.endswith("-" + base))
                                            for n in spooled):
                    log.error("ltigrade: recording the LTI launch of %s failed (%s); it stays spooled as %s for `ltigrade sync`",
                              name, e, path)
                else:
                    continue
                said = True
            if not said:
                # These launches were recorded; the failure is about others.
                log.error("ltigrade: `ltigrade record --spool` failed: %s", e)


def _ltigrade_ingest_task():
    """The running background recording of this event loop, or None."""
    task = _LTIGRADE_INGEST["task"]
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        return None
    return task


# Direct recordings (`ltigrade record -` when the spool cannot be written)
# under way: they run beside the login, not in it. Held here so they are
# not garbage-collected, and so a spawn can wait for them.
_LTIGRADE_DIRECT = set()


def _ltigrade_pending():
    """The background recordings of this event loop still running."""
    loop = asyncio.get_running_loop()
    pending = [t for t in _LTIGRADE_DIRECT if not t.done() and t.get_loop() is loop]
    task = _ltigrade_ingest_task()
    if task is not None:
        pending.append(task)
    return pending


async def _ltigrade_record_direct(log, name, data):
    try:
        await _ltigrade_run(log, ["record", "-"], data)
    except Exception as e:
        log.error("ltigrade: recording the LTI launch of %s failed too (%s): launch lost", name, e)


def _ltigrade_ingest_soon(log, name, path):
    _LTIGRADE_INGEST["waiting"].append((name, path))
    if _ltigrade_ingest_task() is None:
        _LTIGRADE_INGEST["now"] = now = asyncio.Event()
        _LTIGRADE_INGEST["task"] = asyncio.ensure_future(_ltigrade_ingest_loop(log, now))


async def _ltigrade_record(authenticator, handler, authentication):
    """Spool one login's launch and have it recorded in the background;
    never raises."""
    log = getattr(authenticator, "log", None) or logging.getLogger("ltigrade")
    try:
        launch = _ltigrade_launch(handler, authentication)
        if launch is None:
            return
        data = json.dumps(launch, default=str).encode("utf-8")
    except Exception:
        log.exception("ltigrade: cannot read the LTI launch of %s", authentication.get("name"))
        return
    name = launch["username"]
    try:
        # A small write without fsync lands in the page cache in tens of
        # microseconds: cheaper on the event loop than a hop to a thread.
        path = _ltigrade_spool(data)
    except Exception as e:
        # No spool: record directly as the only copy, in the background
        # (within the timeout) so the login is not held.
        log.error("ltigrade: cannot spool the LTI launch of %s (%s); recording it directly", name, e)
        task = asyncio.ensure_future(_ltigrade_record_direct(log, name, data))
        _LTIGRADE_DIRECT.add(task)
        task.add_done_callback(_LTIGRADE_DIRECT.discard)
        return
    _ltigrade_ingest_soon(log, name, path)


async def _ltigrade_set_env(spawner):
    """Add LTI_* variables from the user's newest launch; never raises."""
    log = getattr(spawner, "log", None) or logging.getLogger("ltigrade")
    name = spawner.user.name
    pending = _ltigrade_pending()
    if pending:
        if _ltigrade_ingest_task() is not None:
            _LTIGRADE_INGEST["now"].set()
        # The launch that led to this spawn may still be being recorded:
        # wait for that (bounded), so the variables are its own.
        await asyncio.wait(pending, timeout=2 * LTIGRADE_TIMEOUT + _LTIGRADE_DEBOUNCE)
    try:
        env = json.loads((await _ltigrade_run(log, ["env", "--user=" + name, "--json"])) or b"{}")
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and k.startswith("LTI_") and isinstance(v, str) for k, v in env.items()):
            raise ValueError("unexpected output %.100r" % (env,))
    except Exception as e:
        log.error("ltigrade: no LTI_* variables for %s: %s", name, e)
        return
    # Drop what an earlier spawn of this server got, so a field missing from
    # the newest launch does not keep a stale value.
    earlier = getattr(spawner, "_ltigrade_env_keys", ())
    environment = {k: v for k, v in spawner.environment.items() if k not in earlier}
    environment.update(env)
    spawner.environment = environment
    spawner._ltigrade_env_keys = tuple(env)


def _ltigrade_service_env(spawner):
    """With the grading service installed (hub install --service), tell the
    user's server where it is: `ltigrade submit` reads LTIGRADE_URL."""
    url = globals().get("LTIGRADE_SERVICE_URL")
    name = globals().get("LTIGRADE_SERVICE_NAME")
    if url and name:
        env = dict(spawner.environment)
        env["LTIGRADE_URL"] = url.rstrip("/") + "/services/" + name + "/"
        spawner.environment = env


async def _ltigrade_await(value):
    return await value if inspect.isawaitable(value) else value


def _ltigrade_post_auth_hook(previous):
    async def post_auth_hook(authenticator, handler, authentication):
        if previous is not None:
            authentication = await _ltigrade_await(previous(authenticator, handler, authentication))
        if authentication:
            await _ltigrade_record(authenticator, handler, authentication)
        return authentication
    post_auth_hook.ltigrade_previous = previous
    return post_auth_hook


def _ltigrade_pre_spawn_hook(previous):
    async def pre_spawn_hook(spawner):
        if previous is not None:
            await _ltigrade_await(previous(spawner))
        await _ltigrade_set_env(spawner)
        _ltigrade_service_env(spawner)
    pre_spawn_hook.ltigrade_previous = previous
    return pre_spawn_hook


def _ltigrade_configs(c):
    """`c`, then the configs it will be merged into. load_subconfig (how TLJH
    loads jupyterhub_config.d) runs this file with a fresh, empty `c` that
    its caller merges into its own config afterwards, so hooks set before
    this file are only visible in the callers' configs."""
    configs = [c]
    frame = sys._getframe(1)
    while frame is not None:
        loader = frame.f_locals.get("self")
        if frame.f_code.co_name == "load_subconfig" and isinstance(getattr(loader, "config", None), dict):
            if all(loader.config is not seen for seen in configs):
                configs.append(loader.config)
        frame = frame.f_back
    return configs


def _ltigrade_chain(c, suffix, key, make):
    """Set c.<suffix>.<key> to our hook, and wrap the hook of every section
    named *<suffix> (LTI11Authenticator, ...) that already has one: a
    subclass's section would win over ours. The hook already configured
    there runs first. Loading this file twice does not run our hook twice."""
    configs = _ltigrade_configs(c)
    names = {suffix}
    for cfg in configs:
        names.update(n for n, s in cfg.items() if n.endswith(suffix) and isinstance(s, dict) and key in s)
    for name in sorted(names):
        previous = None
        for cfg in configs:  # nearest first: it is merged last, so it wins
            section = cfg.get(name)
            value = section.get(key) if isinstance(section, dict) else None
            if callable(value):
                previous = value
                break
        while hasattr(previous, "ltigrade_previous"):
            previous = previous.ltigrade_previous
        c[name][key] = make(previous)


_ltigrade_chain(c, "Authenticator", "post_auth_hook", _ltigrade_post_auth_hook)  # noqa: F821 (c is given)
_ltigrade_chain(c, "Spawner", "pre_spawn_hook", _ltigrade_pre_spawn_hook)  # noqa: F821
