"""Drives the Python `requests` library through a proxy for the warden proxy tests.

usage: requests_client.py PROXY_URL CA_FILE PLAN_JSON

PLAN_JSON is a list of {"method", "url", "body_hex"?}; one requests.Session (so
keep-alive connections are reused) runs them in order with proxies={"http","https"}.
Prints a JSON list with {"status", "body_hex", "headers"} or {"error", "detail"} each.
"""

import json
import sys

import requests


def main():
    proxy, ca, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    session = requests.Session()
    session.proxies = {"http": proxy, "https": proxy}
    out = []
    for step in plan:
        body = bytes.fromhex(step.get("body_hex", "")) or None
        try:
            r = session.request(step["method"], step["url"], data=body, verify=ca, timeout=30)
            out.append({
                "status": r.status_code,
                "body_hex": r.content.hex(),
                "headers": {k.lower(): v for k, v in r.headers.items()},
            })
        except requests.exceptions.ProxyError as e:
            out.append({"error": "proxy", "detail": str(e)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
