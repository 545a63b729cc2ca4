#!/usr/bin/env python3
"""Independent LTI 1.3 Assignment and Grade Services platform double.

Verifies ltigrade's client assertions with PyJWT (not with ltigrade's Go
code) against the JWKS ltigrade prints, so a bug shared by our signer and
any Go verifier cannot hide.

    python platform.py --port-file F --jwks JWKS.json --client-id ID
                       [--lineitem ID:RESOURCE_LINK_ID ...] [--token-ttl S]
                       [--page-size N] [--platform generic|moodle|edx] [--verbose]

Binds 127.0.0.1:0 and writes the port to F (atomically) once listening.
The token URL (and expected assertion aud) is http://HOST:PORT/token.
Line items live at /lineitems/ID/lineitem?type_id=3 (Moodle-shaped), so
clients must insert /scores and /results into the path, before the query.
Default line items: 1..5 for resource links rl-1..rl-5, labelled "Item N".

  POST /token                 client_credentials + jwt-bearer assertion
  GET  /lineitems             container, --page-size per page, Link rel=next
  GET  /lineitems/ID/lineitem one line item
  POST /lineitems/ID/lineitem/scores   score+json; older/equal timestamp: 409
  GET  /lineitems/ID/lineitem/results  result container, paged, ?user_id=
  GET  /grades.json           {"scores": [...], "stats": {...}}
  POST /faults                JSON list of faults, consumed in order by the
                              next service (not token) requests: {status,
                              body, retry_after, delay_ms, drop, repeat,
                              route: "token"|"scores"|"results"|"lineitems"}
                              (no route: any service request)
                              {"route": "scores", "lose_reply": true}
                              stores the score, then drops the connection
                              unanswered (a reply lost on the way back)
  POST /expire-tokens         revoke every issued token (-> 401 on use)
  POST /rotate-key            the platform replaces its signing key: every
                              issued token stops verifying (401; edx: 403)
  POST /put-score             {"lineitem": ID, "userId": U, "scoreGiven": G,
                              "scoreMaximum": M, "ahead_s": S}: store a score
                              timestamped S seconds from now, as another
                              writer (an instructor's edit, a tool whose
                              clock runs ahead) would
  POST /shutdown              stop the server

--platform reproduces what real platforms do where they differ (seen
against Moodle 4.3 and Open edX's xblock-lti-consumer):
  generic  the defaults above (409 with a JSON error body)
  moodle   an older or equal score: HTTP 409 with the reason only in the
           status line ("409 Refusing score with an earlier timestamp for
           item N and user U") and the body []; a stored score: 200, empty
  edx      Django REST framework's answers: every authentication failure
           (missing, unknown, expired token, rotated key) is 403
           {"detail": ...}, never 401; an older score is 400
           {"timestamp": ["Score timestamp can only be updated to a later
           point in time"]}, an equal one 400 {"timestamp": ["Score already
           exists for the provided timestamp"]}; a stored score is 201;
           results ignore ?user_id= (edX reads the user from the path) and
           return every user's; line item reads negotiate Accept strictly
           (application/json alone: 406); the token endpoint grants the
           known scopes asked for and drops unknown ones; line item URLs
           carry no query

Standard library plus PyJWT[crypto].
"""

import argparse
import datetime
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from jwt import PyJWKSet

MAX_BODY = 1 << 20
SCOPE_BASE = "https://purl.imsglobal.org/spec/lti-ags/scope/"
KNOWN_SCOPES = {SCOPE_BASE + s for s in ("score", "lineitem", "lineitem.readonly", "result.readonly")}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
ACTIVITY = {"Initialized", "Started", "InProgress", "Submitted", "Completed"}
GRADING = {"FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"}
SUBSECOND = re.compile(r"T\d\d:\d\d:\d\d\.\d+")
SCORES_RE = re.compile(r"^/lineitems/([^/]+)/lineitem/(scores|results)$")
LINEITEM_RE = re.compile(r"^/lineitems/([^/]+)/lineitem$")


LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"


class State:
    def __init__(self, jwks, client_id, lineitems, ttl, page_size, platform="generic"):
        self.lock = threading.Lock()
        self.platform = platform
        # Moodle keeps ?type_id=N on its line item URLs; edX has no query.
        self.query = "" if platform == "edx" else "?type_id=3"
        self.jwks = jwks
        self.client_id = client_id
        self.lineitems = lineitems  # [(id, resource_link_id)]
        self.ttl = ttl
        self.page_size = page_size
        self.tokens = {}  # token -> (expiry, scopes)
        self.jtis = {}  # jti -> exp
        self.scores = {}  # (lineitem id, userId) -> score dict
        self.faults = []
        self.stats = {"token_requests": 0, "tokens_issued": 0, "assertion_failures": 0,
                      "score_requests": 0, "scores_stored": 0, "ordering_refusals": 0,
                      "result_requests": 0, "lineitem_requests": 0, "unauthorized": 0,
                      "not_acceptable": 0, "lost_replies": 0}

    def next_fault(self, route):
        for i, f in enumerate(self.faults):
            want = f.get("route")
            if want is None and route == "token":
                continue
            if want is not None and want != route:
                continue
            repeat = int(f.get("repeat") or 0)
            if repeat > 1:
                f["repeat"] = repeat - 1
                return dict(f)
            return self.faults.pop(i)
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY a
    # kept-alive connection waits ~40 ms for a delayed ACK before the body,
    # which no real LMS front end does.
    disable_nagle_algorithm = True
    server_version = "agsdouble/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("agsdouble: " + (fmt % args) + "\n")

    @property
    def st(self):
        return self.server.state

    def base(self):
        return "http://%s" % self.headers.get("Host", "")

    def reply(self, status, body, ctype="application/json", headers=(), reason=None):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        data = body.encode("utf-8") if isinstance(body, str) else body
        try:
            self.send_response(status, reason)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def read_body(self):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def apply_fault(self, route):
        """True: the fault answered the request. "lose": handle the request,
        then drop the connection instead of answering."""
        with self.st.lock:
            fault = self.st.next_fault(route)
        if not fault:
            return False
        if fault.get("lose_reply"):
            return "lose"
        if fault.get("delay_ms"):
            time.sleep(int(fault["delay_ms"]) / 1000.0)
        if fault.get("drop"):
            self.drop()
            return True
        if fault.get("status"):
            fbody = fault.get("body") or ""
            ctype = "application/json" if fbody.lstrip().startswith(("{", "[")) else "text/plain; charset=utf-8"
            headers = [("Retry-After", str(fault["retry_after"]))] if fault.get("retry_after") else []
            self.reply(int(fault["status"]), fbody, ctype, headers)
            return True
        return False

    def bearer(self, scope):
        """Returns an error reply tuple, or None when the token is good."""
        edx = self.st.platform == "edx"
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() != "bearer ":
            if edx:
                # DRF: an authentication class without a WWW-Authenticate
                # header turns AuthenticationFailed into 403.
                return 403, {"detail": "Missing LTI 1.3 authentication token."}
            return 401, {"error": "invalid_token", "error_description": "missing bearer token"}
        tok = auth[7:].strip()
        with self.st.lock:
            ent = self.st.tokens.get(tok)
            if ent is None or ent[0] <= time.time():
                self.st.stats["unauthorized"] += 1
                if edx:
                    return 403, {"detail": "Invalid token signature."}
                return 401, {"error": "invalid_token", "error_description": "unknown or expired token"}
            if scope not in ent[1]:
                if edx:
                    return 403, {"detail": "You do not have permission to perform this action."}
                return 403, {"error": "insufficient_scope", "error_description": "token lacks " + scope}
        return None

    def acceptable(self):
        """edX negotiates the Accept header of line item reads strictly
        (DRF renderers for the two line item media types only)."""
        if self.st.platform != "edx":
            return True
        accept = self.headers.get("Accept")
        if accept is None:
            return True
        for part in accept.split(","):
            mt = part.split(";")[0].strip().lower()
            if mt in ("*/*", "application/*", LINEITEM_TYPE, LINEITEMS_TYPE):
                return True
        with self.st.lock:
            self.st.stats["not_acceptable"] += 1
        self.reply(406, {"detail": "Could not satisfy the request Accept header."})
        return False

    def lineitem_json(self, i, r):
        return {"id": "%s/lineitems/%s/lineitem%s" % (self.base(), i, self.st.query), "label": "Item " + i,
                "scoreMaximum": 10, "resourceLinkId": r}

    def query_ok(self, q):
        return self.st.query == "" or q.get("type_id") == ["3"]

    # --- routes ---------------------------------------------------------

    def do_GET(self):
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        if parts.path == "/grades.json":
            with self.st.lock:
                rows = [{**{f: x for f, x in v.items() if f != "_at"}, "lineitem": k[0]}
                        for k, v in sorted(self.st.scores.items())]
                stats = dict(self.st.stats)
            return self.reply(200, json.dumps({"scores": rows, "stats": stats}, indent=2))
        if parts.path == "/lineitems":
            with self.st.lock:
                self.st.stats["lineitem_requests"] += 1
            if self.apply_fault("lineitems") is True:
                return
            err = self.bearer(SCOPE_BASE + "lineitem.readonly")
            if err:
                return self.reply(*err)
            if not self.acceptable():
                return
            rl = (q.get("resource_link_id") or [None])[0]
            items = [self.lineitem_json(i, r) for i, r in self.st.lineitems if rl is None or r == rl]
            return self.paged(items, q, "/lineitems", LINEITEMS_TYPE)
        m = LINEITEM_RE.match(parts.path)
        if m:
            with self.st.lock:
                self.st.stats["lineitem_requests"] += 1
            if self.apply_fault("lineitems") is True:
                return
            err = self.bearer(SCOPE_BASE + "lineitem.readonly")
            if err:
                return self.reply(*err)
            if not self.acceptable():
                return
            if not self.query_ok(q):
                return self.reply(400, {"error": "type_id lost from the query"})
            for i, r in self.st.lineitems:
                if i == m.group(1):
                    return self.reply(200, self.lineitem_json(i, r), LINEITEM_TYPE)
            return self.reply(404, {"error": "no such line item"})
        m = SCORES_RE.match(parts.path)
        if m and m.group(2) == "results":
            with self.st.lock:
                self.st.stats["result_requests"] += 1
            if self.apply_fault("results") is True:
                return
            err = self.bearer(SCOPE_BASE + "result.readonly")
            if err:
                return self.reply(*err)
            if not self.query_ok(q):
                return self.reply(400, {"error": "type_id lost from the query"})
            li = m.group(1)
            user = (q.get("user_id") or [None])[0]
            if self.st.platform == "edx":
                # edX takes the user from the path (results/USER); the
                # query parameter is ignored and every result comes back.
                user = None
            base_li = "%s/lineitems/%s/lineitem" % (self.base(), li)
            with self.st.lock:
                rows = [{"id": "%s/results/%s" % (base_li, u), "scoreOf": base_li + self.st.query, "userId": u,
                         "resultScore": s["scoreGiven"], "resultMaximum": s["scoreMaximum"],
                         **({"comment": s["comment"]} if s.get("comment") else {})}
                        for (l, u), s in sorted(self.st.scores.items()) if l == li and (user is None or u == user)]
            return self.paged(rows, q, parts.path, "application/vnd.ims.lis.v2.resultcontainer+json")
        self.reply(404, {"error": "not found"})

    def paged(self, rows, q, path, ctype):
        try:
            page = max(1, int((q.get("page") or ["1"])[0]))
        except ValueError:
            return self.reply(400, {"error": "bad page"})
        n = self.st.page_size
        chunk = rows[(page - 1) * n: page * n]
        headers = []
        if page * n < len(rows):
            nq = {k: v[0] for k, v in q.items()}
            nq["page"] = str(page + 1)
            # Lower-case header name and mixed-case rel: clients must not care.
            headers.append(("link", '<%s%s?%s>; rel="Next"' % (self.base(), path, urlencode(nq))))
        self.reply(200, json.dumps(chunk), ctype, headers)

    def do_POST(self):
        parts = urlsplit(self.path)
        route = parts.path
        body = self.read_body()
        if body is None:
            self.close_connection = True
            return self.reply(413, {"error": "request too large"})
        if route == "/token":
            return self.token(body)
        m = SCORES_RE.match(route)
        if m and m.group(2) == "scores":
            return self.score(m.group(1), parse_qs(parts.query), body)
        if route == "/faults":
            try:
                faults = json.loads(body or b"[]")
                if isinstance(faults, dict):
                    faults = [faults]
                assert isinstance(faults, list) and all(isinstance(f, dict) for f in faults)
            except Exception:
                return self.reply(400, {"error": "faults must be a JSON list of objects"})
            with self.st.lock:
                self.st.faults.extend(faults)
            return self.reply(204, b"")
        if route == "/put-score":
            try:
                v = json.loads(body)
                at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=float(v.get("ahead_s") or 0))
                row = {"userId": v["userId"], "scoreGiven": v["scoreGiven"], "scoreMaximum": v["scoreMaximum"],
                       "comment": "", "timestamp": at.isoformat(), "_at": at, "activityProgress": "Completed",
                       "gradingProgress": "FullyGraded", "canvas_new_submission": None, "writes": 1}
                key = (str(v["lineitem"]), v["userId"])
            except Exception:
                return self.reply(400, {"error": "put-score wants lineitem, userId, scoreGiven, scoreMaximum"})
            with self.st.lock:
                self.st.scores[key] = row
            return self.reply(204, b"")
        if route in ("/expire-tokens", "/rotate-key"):
            # A rotated platform key makes every token it signed fail to
            # verify: to the tool that is the same as revoking them all.
            with self.st.lock:
                self.st.tokens.clear()
            return self.reply(204, b"")
        if route == "/shutdown":
            self.reply(200, {"bye": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        self.reply(404, {"error": "not found"})

    def token(self, body):
        with self.st.lock:
            self.st.stats["token_requests"] += 1
        if self.apply_fault("token") is True:
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return self.reply(400, {"error": "invalid_request", "error_description": "want a form body"})
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type"})
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return self.reply(400, {"error": "invalid_request", "error_description": "bad client_assertion_type"})
        scopes = set((form.get("scope") or "").split())
        if self.st.platform == "edx":
            # edX grants whatever known scopes are asked for, whether or not
            # the tool's configuration enables the service.
            scopes &= KNOWN_SCOPES
        if not scopes or not scopes <= KNOWN_SCOPES:
            return self.reply(400, {"error": "invalid_scope"})
        err = self.check_assertion(form.get("client_assertion") or "")
        if err:
            with self.st.lock:
                self.st.stats["assertion_failures"] += 1
            return self.reply(401, {"error": "invalid_client", "error_description": err})
        tok = secrets.token_urlsafe(24)
        with self.st.lock:
            self.st.tokens[tok] = (time.time() + self.st.ttl, scopes)
            self.st.stats["tokens_issued"] += 1
        self.reply(200, {"access_token": tok, "token_type": "Bearer", "expires_in": self.st.ttl,
                         "scope": " ".join(sorted(scopes))})

    def check_assertion(self, assertion):
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as e:
            return "malformed assertion: %s" % e
        if header.get("alg") != "RS256":
            return "alg must be RS256"
        kid = header.get("kid")
        keys = [k for k in self.st.jwks.keys if k.key_id == kid]
        if not kid or len(keys) != 1:
            return "unknown kid"
        try:
            claims = jwt.decode(assertion, keys[0].key, algorithms=["RS256"],
                                audience=self.base() + "/token", issuer=self.st.client_id,
                                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
                                leeway=5)
        except jwt.PyJWTError as e:
            return "assertion rejected: %s" % e
        if claims["sub"] != self.st.client_id:
            return "sub must be the client_id"
        if not isinstance(claims["exp"], int) or not isinstance(claims["iat"], int) or claims["exp"] - claims["iat"] > 300:
            return "assertion lifetime too long"
        now = time.time()
        with self.st.lock:
            for j in [j for j, e in self.st.jtis.items() if e < now - 10]:
                del self.st.jtis[j]
            if claims["jti"] in self.st.jtis:
                return "jti replayed"
            self.st.jtis[claims["jti"]] = claims["exp"]
        return None

    def score(self, li, q, body):
        with self.st.lock:
            self.st.stats["score_requests"] += 1
        fault = self.apply_fault("scores")
        if fault is True:
            return
        lose = fault == "lose"
        err = self.bearer(SCOPE_BASE + "score")
        if err:
            return self.reply(*err)
        if li not in {i for i, _ in self.st.lineitems}:
            return self.reply(404, {"error": "no such line item"})
        if not self.query_ok(q):
            return self.reply(400, {"error": "type_id lost from the query"})
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != SCORE_TYPE:
            return self.reply(415, {"error": "Content-Type must be " + SCORE_TYPE})
        try:
            s = json.loads(body)
            assert isinstance(s, dict)
        except Exception:
            return self.reply(400, {"error": "body is not a JSON object"})
        problems = []
        if not isinstance(s.get("userId"), str) or not s["userId"]:
            problems.append("userId")
        given, maximum = s.get("scoreGiven"), s.get("scoreMaximum")
        if not isinstance(given, (int, float)) or isinstance(given, bool) or given < 0:
            problems.append("scoreGiven")
        if not isinstance(maximum, (int, float)) or isinstance(maximum, bool) or maximum <= 0:
            problems.append("scoreMaximum")
        if s.get("activityProgress") not in ACTIVITY:
            problems.append("activityProgress")
        if s.get("gradingProgress") not in GRADING:
            problems.append("gradingProgress")
        if "comment" in s and not (isinstance(s["comment"], str) and s["comment"]):
            problems.append("comment")
        ext = s.get("https://canvas.instructure.com/lti/submission")
        if ext is not None and not (isinstance(ext, dict) and isinstance(ext.get("new_submission"), bool)):
            problems.append("canvas submission extension")
        ts = s.get("timestamp")
        at = None
        try:
            if not isinstance(ts, str) or not SUBSECOND.search(ts):
                raise ValueError
            at = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError
        except ValueError:
            problems.append("timestamp (ISO 8601 with sub-second precision and offset)")
        if problems:
            return self.reply(400, {"error": "invalid score: " + ", ".join(problems)})
        key = (li, s["userId"])
        with self.st.lock:
            old = self.st.scores.get(key)
            refused = old is not None and not self.newer(at, old["_at"])
            if refused:
                self.st.stats["ordering_refusals"] += 1
            else:
                self.st.scores[key] = {
                    "userId": s["userId"], "scoreGiven": given, "scoreMaximum": maximum,
                    "comment": s.get("comment", ""), "timestamp": ts, "_at": at,
                    "activityProgress": s["activityProgress"], "gradingProgress": s["gradingProgress"],
                    "canvas_new_submission": None if ext is None else ext["new_submission"],
                    "writes": (old["writes"] + 1) if old else 1,
                }
                self.st.stats["scores_stored"] += 1
                if lose:
                    self.st.stats["lost_replies"] += 1
        if refused:
            status, body, reason = self.refusal(li, s["userId"], at == old["_at"])
            return self.reply(status, body, reason=reason)
        if lose:
            return self.drop()
        if self.st.platform == "moodle":
            return self.reply(200, b"")
        if self.st.platform == "edx":
            return self.reply(201, {k: s[k] for k in ("timestamp", "scoreGiven", "scoreMaximum", "comment",
                                                       "activityProgress", "gradingProgress", "userId") if k in s})
        self.reply(200, {"resultUrl": "%s/lineitems/%s/lineitem/results/%s" % (self.base(), li, s["userId"])})

    def newer(self, at, stored):
        if self.st.platform == "moodle":
            # Moodle compares whole seconds: a later score in the same
            # second is refused too.
            return int(at.timestamp()) > int(stored.timestamp())
        return at > stored

    def refusal(self, li, user, equal):
        """The answer to a score not newer than the stored one: (status,
        body, reason phrase)."""
        if self.st.platform == "moodle":
            # Moodle 4.3 gradebookservices: the reason travels only in the
            # status line (also for equal timestamps, compared to the second).
            return 409, b"[]", "Refusing score with an earlier timestamp for item %s and user %s" % (li, user)
        if self.st.platform == "edx":
            # LtiAgsScoreSerializer.validate_timestamp, a DRF field error.
            if equal:
                return 400, {"timestamp": ["Score already exists for the provided timestamp"]}, None
            return 400, {"timestamp": ["Score timestamp can only be updated to a later point in time"]}, None
        # Moodle-like (409 also for equal timestamps) with a readable body.
        return 409, {"error": "score timestamp not after the stored one"}, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--jwks", required=True, help="file holding the tool's public JWKS")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--lineitem", action="append", default=[], help="ID:RESOURCE_LINK_ID")
    ap.add_argument("--token-ttl", type=int, default=3600)
    ap.add_argument("--page-size", type=int, default=2)
    ap.add_argument("--platform", choices=("generic", "moodle", "edx"), default="generic",
                    help="reproduce a real platform's behaviour (see above)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    with open(args.jwks) as f:
        jwks = PyJWKSet.from_json(f.read())
    items = []
    for spec in args.lineitem or ["%d:rl-%d" % (i, i) for i in range(1, 6)]:
        i, sep, r = spec.partition(":")
        if not sep or not i or "/" in i:
            ap.error("--lineitem wants ID:RESOURCE_LINK_ID")
        items.append((i, r))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(jwks, args.client_id, items, args.token_ttl, max(1, args.page_size), args.platform)
    server.verbose = args.verbose
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
