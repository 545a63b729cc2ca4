#!/usr/bin/env python3
"""Signs one request with oauthlib's own client and prints the result as JSON.

    python sign.py --url URL --key KEY --secret SECRET [--method POST]
                   [--content-type application/xml] < body

Prints {"authorization": ..., "url": ..., "body_hash": ...}. ltigrade's tests
feed this to the Go verifier, so Go's Verify is checked against an
implementation that shares no code with Go's Signer.
"""

import argparse
import base64
import hashlib
import json
import sys

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER, Client


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--method", default="POST")
    ap.add_argument("--content-type", default="application/xml")
    args = ap.parse_args()
    body = sys.stdin.buffer.read()
    client = Client(args.key, client_secret=args.secret,
                    signature_method=SIGNATURE_HMAC_SHA1,
                    signature_type=SIGNATURE_TYPE_AUTH_HEADER)
    headers = {"Content-Type": args.content_type}
    form = args.content_type.startswith("application/x-www-form-urlencoded")
    # oauthlib adds oauth_body_hash itself for non-form bodies, hashing the
    # body as text; the body is decoded as UTF-8 for it and checked below.
    uri, headers, _ = client.sign(args.url, http_method=args.method,
                                  body=body.decode("utf-8"), headers=headers)
    want = base64.b64encode(hashlib.sha1(body).digest()).decode("ascii")
    auth = headers["Authorization"]
    if not form and "oauth_body_hash" not in auth:
        sys.exit("oauthlib did not add oauth_body_hash")
    json.dump({"authorization": auth, "url": uri, "body_hash": want}, sys.stdout)


if __name__ == "__main__":
    main()
