#!/usr/bin/env python3
"""Independent LTI 1.1 Basic Outcomes LMS double.

Verifies OAuth 1.0a HMAC-SHA1 signatures with oauthlib (not with ltigrade's
Go code), so a bug shared by our Go signer and Go verifier cannot hide.
The body hash is checked by recomputing base64(sha1(body)), since oauthlib's
signature functions only cover the parameters.

    python lms.py --port-file F --consumer KEY:SECRET [--consumer ...]
                  [--latency-ms N] [--max-skew-s S] [--verbose]

Binds 127.0.0.1:0 and writes the port to F (atomically) once listening.

  POST /outcomes     replaceResult / readResult / deleteResult
  GET  /grades.json  the grade table: [{sourced_id, score, result_data_text,
                     result_data_url, submitted_at, updated, writes}], sorted
  POST /faults       JSON list of faults, consumed in order by the next
                     outcome requests: {status, body, retry_after, delay_ms,
                     drop, repeat}; the same meaning as lmssim.Fault
  POST /shutdown     stop the server

Standard library plus oauthlib only.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature

NS = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"
MAX_BODY = 1 << 20  # outcome requests are under 2 KiB
MAX_FAULTS_BODY = 16 << 20  # room for oversized-response faults
DECIMAL = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


class State:
    def __init__(self, consumers, latency, max_skew):
        self.lock = threading.Lock()
        self.consumers = consumers
        self.latency = latency
        self.max_skew = max_skew
        self.grades = {}
        self.writes = {}
        self.nonces = {}
        self.faults = []
        self.requests = 0
        self.seq = 0

    def next_fault(self):
        if not self.faults:
            return None
        f = self.faults[0]
        repeat = int(f.get("repeat") or 0)
        if repeat > 1:
            f = dict(f)
            self.faults[0]["repeat"] = repeat - 1
        else:
            self.faults.pop(0)
        return f


def local(tag):
    return tag.rsplit("}", 1)[-1]


def child(el, name):
    if el is None:
        return None
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def path(el, *names):
    for n in names:
        el = child(el, n)
    return el


def text_of(el):
    return None if el is None else (el.text or "")


def envelope(state, ref, op, code, desc, body=None):
    state.seq += 1
    if body is None:
        body = "<%sResponse/>" % escape(op) if op else ""
    severity = "status" if code == "success" else "error"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<imsx_POXEnvelopeResponse xmlns="%s"><imsx_POXHeader><imsx_POXResponseHeaderInfo>'
        "<imsx_version>V1.0</imsx_version><imsx_messageIdentifier>py-%d</imsx_messageIdentifier>"
        "<imsx_statusInfo><imsx_codeMajor>%s</imsx_codeMajor><imsx_severity>%s</imsx_severity>"
        "<imsx_description>%s</imsx_description><imsx_messageRefIdentifier>%s</imsx_messageRefIdentifier>"
        "<imsx_operationRefIdentifier>%s</imsx_operationRefIdentifier></imsx_statusInfo>"
        "</imsx_POXResponseHeaderInfo></imsx_POXHeader><imsx_POXBody>%s</imsx_POXBody>"
        "</imsx_POXEnvelopeResponse>"
        % (NS, state.seq, code, severity, escape(desc), escape(ref or ""), escape(op or ""), body)
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY a
    # kept-alive connection waits ~40 ms for a delayed ACK before the body,
    # which no real LMS front end does.
    disable_nagle_algorithm = True
    server_version = "lmsdouble/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("lmsdouble: " + (fmt % args) + "\n")

    def reply(self, status, body, ctype="application/xml", headers=()):
        data = body.encode("utf-8") if isinstance(body, str) else body
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. timed out during a delay fault).
            self.close_connection = True

    def read_body(self, limit):
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if n < 0 or n > limit:
            return None
        return self.rfile.read(n)

    def do_GET(self):
        if urlsplit(self.path).path != "/grades.json":
            return self.reply(404, "not found", "text/plain")
        st = self.server.state
        with st.lock:
            rows = [dict(g) for _, g in sorted(st.grades.items())]
        self.reply(200, json.dumps(rows, indent=2), "application/json")

    def do_POST(self):
        route = urlsplit(self.path).path
        body = self.read_body(MAX_FAULTS_BODY if route == "/faults" else MAX_BODY)
        if body is None:
            self.close_connection = True
            return self.reply(413, "request too large", "text/plain")
        if route == "/outcomes":
            return self.outcome(body)
        if route == "/faults":
            try:
                faults = json.loads(body or b"[]")
                if isinstance(faults, dict):
                    faults = [faults]
                assert isinstance(faults, list) and all(isinstance(f, dict) for f in faults)
            except Exception:
                return self.reply(400, "faults must be a JSON list of objects", "text/plain")
            with self.server.state.lock:
                self.server.state.faults.extend(faults)
            return self.reply(204, b"", "text/plain")
        if route == "/shutdown":
            self.reply(200, "bye", "text/plain")
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        self.reply(404, "not found", "text/plain")

    # --- outcomes -------------------------------------------------------

    def outcome(self, body):
        st = self.server.state
        with st.lock:
            st.requests += 1
            fault = st.next_fault()
        delay = st.latency + (int(fault.get("delay_ms") or 0) / 1000.0 if fault else 0)
        if delay > 0:
            # The request is still processed after the delay even if the
            # client gave up, as a real LMS would.
            time.sleep(delay)
        if fault and fault.get("drop"):
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault and fault.get("status"):
            fbody = fault.get("body") or ""
            ctype = "application/xml" if fbody.lstrip().startswith("<") else "text/plain; charset=utf-8"
            headers = [("Retry-After", str(fault["retry_after"]))] if fault.get("retry_after") else []
            return self.reply(int(fault["status"]), fbody, ctype, headers)

        err, key, nonce, ts = self.verify(body)
        if err:
            return self.reply(401, err, "text/plain; charset=utf-8")
        now = time.time()
        with st.lock:
            nk = (key, nonce)
            exp = st.nonces.get(nk)
            if exp is not None and now < exp:
                return self.reply(401, "Duplicate nonce detected", "text/plain; charset=utf-8")
            st.nonces[nk] = ts + st.max_skew + 1
            if len(st.nonces) > 4096:
                for k in [k for k, e in st.nonces.items() if e <= now]:
                    del st.nonces[k]
            status, resp = self.execute(st, body)
        self.reply(status, resp)

    def verify(self, body):
        """Returns (error, key, nonce, timestamp) using oauthlib for the signature."""
        auth = self.headers.get("Authorization") or ""
        if not auth[:6].lower() == "oauth ":
            return "Invalid authorization header", None, None, None
        try:
            # collect_parameters percent-decodes the oauth_* values (the raw
            # parse_authorization_header does not).
            pairs = signature.collect_parameters(headers={"Authorization": auth}, exclude_oauth_signature=False)
        except Exception:
            return "Invalid authorization header", None, None, None
        params = dict(pairs)
        if len(params) != len(pairs):
            return "Invalid authorization header", None, None, None
        for name in ("oauth_consumer_key", "oauth_signature_method", "oauth_signature",
                     "oauth_timestamp", "oauth_nonce", "oauth_body_hash"):
            if not params.get(name):
                return "Invalid authorization header", None, None, None
        if params["oauth_signature_method"] != "HMAC-SHA1":
            return "Invalid authorization header", None, None, None
        if params.get("oauth_version", "1.0") != "1.0":
            return "Invalid authorization header", None, None, None
        key = params["oauth_consumer_key"]
        secret = self.server.state.consumers.get(key)
        if secret is None:
            return "Unknown consumer key", key, None, None
        try:
            ts = int(params["oauth_timestamp"])
        except ValueError:
            return "Invalid authorization header", key, None, None
        if abs(time.time() - ts) > self.server.state.max_skew:
            return "Expired timestamp", key, None, None
        want_hash = base64.b64encode(hashlib.sha1(body).digest()).decode("ascii")
        if not hmac.compare_digest(want_hash, params["oauth_body_hash"]):
            return "Invalid body hash", key, None, None
        # The URL the client signed: this server is plain HTTP on loopback,
        # and Host carries the host:port the client used.
        uri = "http://%s%s" % (self.headers.get("Host", ""), self.path)
        query = urlsplit(self.path).query
        req = OAuthRequest(uri, http_method=self.command, body=None, headers={"Authorization": auth})
        req.params = signature.collect_parameters(
            uri_query=query, headers={"Authorization": auth}, exclude_oauth_signature=True)
        req.signature = params["oauth_signature"]
        try:
            ok = signature.verify_hmac_sha1(req, secret, None)
        except Exception:
            ok = False
        if not ok:
            return "Invalid signature", key, None, None
        return None, key, params["oauth_nonce"], ts

    def execute(self, st, body):
        fail_status = 200  # Moodle-like: failures travel with HTTP 200
        if b"<!doctype" in body.lower():
            return fail_status, envelope(st, "", "", "failure", "DOCTYPE is not allowed")
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return fail_status, envelope(st, "", "", "failure", "Invalid XML")
        if local(root.tag) != "imsx_POXEnvelopeRequest":
            return fail_status, envelope(st, "", "", "failure", "Not an imsx_POXEnvelopeRequest")
        ref = text_of(path(root, "imsx_POXHeader", "imsx_POXRequestHeaderInfo", "imsx_messageIdentifier")) or ""
        pox_body = child(root, "imsx_POXBody")
        ops = list(pox_body) if pox_body is not None else []
        if len(ops) != 1:
            return fail_status, envelope(st, ref, "", "failure", "Expected exactly one operation")
        op_el = ops[0]
        op = local(op_el.tag)
        if op.endswith("Request"):
            op = op[: -len("Request")]
        record = child(op_el, "resultRecord")
        sid = text_of(path(record, "sourcedGUID", "sourcedId")) or ""
        if not sid.strip():
            return fail_status, envelope(st, ref, op, "failure", "Missing sourcedid")
        if op == "readResult":
            g = st.grades.get(sid)
            score = escape(g["score"]) if g else ""
            out = ("<readResultResponse><result><resultScore><language>en</language><textString>%s"
                   "</textString></resultScore></result></readResultResponse>" % score)
            return 200, envelope(st, ref, op, "success", "Result read" if g else "No result recorded", out)
        if op == "deleteResult":
            st.grades.pop(sid, None)
            return 200, envelope(st, ref, op, "success", "Result deleted")
        if op != "replaceResult":
            return fail_status, envelope(st, ref, op, "unsupported", op + " is not supported")
        result = child(record, "result")
        score = text_of(path(result, "resultScore", "textString"))
        if score is None:
            return fail_status, envelope(st, ref, op, "failure", "Missing score")
        score = score.strip()
        if not DECIMAL.match(score) or not 0.0 <= float(score) <= 1.0:
            return fail_status, envelope(st, ref, op, "failure", "Score must be a decimal between 0.0 and 1.0")
        submitted = text_of(path(op_el, "submissionDetails", "submittedAt"))
        if submitted:
            try:
                at = datetime.datetime.fromisoformat(submitted.strip().replace("Z", "+00:00"))
                if at.tzinfo is None:
                    raise ValueError("naive")
            except ValueError:
                return fail_status, envelope(st, ref, op, "failure", "Invalid submittedAt timestamp")
            if at.timestamp() > time.time() + 60:
                return fail_status, envelope(st, ref, op, "failure", "submittedAt is in the future")
        data = child(result, "resultData")
        st.writes[sid] = st.writes.get(sid, 0) + 1
        st.grades[sid] = {
            "sourced_id": sid,
            "score": score,
            "result_data_text": text_of(child(data, "text")) or "",
            "result_data_url": text_of(child(data, "url")) or "",
            "submitted_at": submitted or "",
            "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "writes": st.writes[sid],
        }
        return 200, envelope(st, ref, op, "success", "Score for %s is now %s" % (sid, score))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--consumer", action="append", required=True, help="KEY:SECRET")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--max-skew-s", type=int, default=90 * 60)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    consumers = {}
    for c in args.consumer:
        k, sep, s = c.partition(":")
        if not sep or not k:
            ap.error("--consumer wants KEY:SECRET")
        consumers[k] = s

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(consumers, args.latency_ms / 1000.0, args.max_skew_s)
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
