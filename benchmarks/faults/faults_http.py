"""What the fault scripts of benchmarks/faults/ share: one HTTP request that returns the status
and body whatever the status."""
import urllib.error, urllib.request

def http(url, method="GET", body=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
