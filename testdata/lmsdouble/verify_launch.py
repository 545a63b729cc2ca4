#!/usr/bin/env python3
"""Checks an LTI 1.1 launch the way a JupyterHub with ltiauthenticator does.

    python verify_launch.py --key KEY --secret SECRET < launch.json

launch.json is what `ltigrade sandbox` serves at /launch.json:
{"action": "<hub>/hub/lti/launch?next=...", "params": {form fields}}.

Two independent checks, both with oauthlib (no code shared with ltigrade):

1. As ltiauthenticator's LTI11LaunchValidator (lti11/validator.py) does:
   the arguments are the launch URL's query merged with the form body, one
   value each, query first (tornado request.arguments, then
   utils.convert_request_to_dict); the oauth_* arguments it requires must be
   present and non-empty, so must lti_message_type, lti_version,
   resource_link_id and user_id; the timestamp has 10 digits and lies within
   30 s of now; the signature is HMAC-SHA1 over base_string_uri(launch URL)
   and every argument.
2. oauthlib's own Client signs the same parameters (SIGNATURE_TYPE_BODY,
   same nonce and timestamp) for the same URL and must get the same
   signature.

Prints {"username": ..., "auth_state": {...}} on success: the username the
authenticator would give the hub (username_key custom_canvas_user_id, else
user_id) and the auth_state it would return (every argument not starting
with oauth_). Exits 1 with a message otherwise.
"""

import argparse
import json
import sys
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

from oauthlib.common import safe_string_equals
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_BODY, Client
from oauthlib.oauth1.rfc5849 import signature

OAUTH_ARGS = ["oauth_consumer_key", "oauth_signature_method", "oauth_timestamp",
              "oauth_nonce", "oauth_callback", "oauth_version", "oauth_signature"]
LTI_REQUIRED = ["lti_message_type", "lti_version", "resource_link_id", "user_id"]
FORM = "application/x-www-form-urlencoded"


def fail(msg):
    sys.exit("verify_launch: " + msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--max-skew", type=float, default=30.0)
    a = ap.parse_args()
    launch = json.load(sys.stdin)
    action, form = launch["action"], launch["params"]

    # What the browser sends and tornado decodes.
    body = urlencode(sorted(form.items()))
    args = {}
    for k, v in parse_qsl(urlsplit(action).query, keep_blank_values=True):
        args.setdefault(k, v)
    for k, v in parse_qsl(body, keep_blank_values=True):
        args.setdefault(k, v)

    # 1. ltiauthenticator's checks.
    for p in OAUTH_ARGS + LTI_REQUIRED:
        if not args.get(p):
            fail("required argument %s missing or empty" % p)
    if args["oauth_consumer_key"] != a.key:
        fail("unknown oauth_consumer_key")
    if len(str(int(args["oauth_timestamp"]))) != 10:
        fail("invalid timestamp format")
    if abs(time.time() - int(args["oauth_timestamp"])) > a.max_skew:
        fail("timestamp outside the window")
    base = signature.signature_base_string(
        "POST",
        signature.base_string_uri(action),
        signature.normalize_parameters(
            signature.collect_parameters(body=list(args.items()), headers={"Content-Type": FORM})),
    )
    want = signature.sign_hmac_sha1_with_client(base, Client(a.key, client_secret=a.secret))
    if not safe_string_equals(want, args["oauth_signature"]):
        fail("invalid oauth_signature (ltiauthenticator's check)\nbase string: " + base)

    # 2. oauthlib's client signs the same request.
    plain = {k: v for k, v in form.items() if not k.startswith("oauth_")}
    client = Client(a.key, client_secret=a.secret, signature_method=SIGNATURE_HMAC_SHA1,
                    signature_type=SIGNATURE_TYPE_BODY, callback_uri=form["oauth_callback"],
                    nonce=form["oauth_nonce"], timestamp=form["oauth_timestamp"])
    _, _, signed_body = client.sign(action, http_method="POST", body=plain,
                                    headers={"Content-Type": FORM})
    theirs = dict(parse_qsl(signed_body, keep_blank_values=True))["oauth_signature"]
    if not safe_string_equals(theirs, form["oauth_signature"]):
        fail("oauthlib's client signs %s, the launch carries %s" % (theirs, form["oauth_signature"]))

    username = args.get("custom_canvas_user_id") or args.get("user_id")
    auth_state = {k: v for k, v in args.items() if not k.startswith("oauth_")}
    json.dump({"username": username, "auth_state": auth_state}, sys.stdout)


if __name__ == "__main__":
    main()
