#!/usr/bin/env python3
"""Hostile input against a live `freshet serve`: each probe of the hardening table in
benchmarks/RESULTS.md ("Faults and hostile input") that needs only the HTTP API, the event paths
and the data directory, re-run. Prints one JSON object per probe and exits non-zero if any
outcome is not the expected one.

    benchmarks/faults/hostile_input.py [--freshet build/cli/freshet] [--idle 15000]

It starts its own server (bpr, a generated stream of 10,000 users x 2,000 items) on a free
loopback port with a temporary data directory, and stops it at the end. Only loopback is used.
"""
import argparse, json, os, resource, signal, socket, subprocess, sys, tempfile, time
from faults_http import http

def valid_json(raw):
    try:
        json.loads(raw.decode("utf-8", errors="strict"))
        return True
    except (UnicodeDecodeError, ValueError):
        return False

def main():
    p = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--freshet", default=os.path.join(root, "build/cli/freshet"))
    p.add_argument("--idle", type=int, default=15000, help="idle connections to open")
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="freshet-hostile.")
    stream = os.path.join(work, "events.jsonl")
    subprocess.run([a.freshet, "generate", "--output", stream, "--events", "200000", "--users",
                    "10000", "--items", "2000", "--seed", "3"], check=True, capture_output=True)
    # A delimited file with one line whose user id is not UTF-8 (row 6 of the table).
    csv = os.path.join(work, "bad.csv")
    with open(csv, "wb") as f:
        f.write(b"u1,i1,1700000000000\nu\xff,i2,1700000000001\nu2,i1,1700000000002\n")
    token = "s3cret-" + os.urandom(8).hex()
    env = dict(os.environ, FRESHET_ADMIN_TOKEN=token)
    out = open(os.path.join(work, "serve.out"), "w+")
    err = open(os.path.join(work, "serve.err"), "w+")
    server = subprocess.Popen(
        [a.freshet, "serve", "--data-dir", os.path.join(work, "state"), "--source", "file:" + stream,
         "--format", "jsonl", "--port", "0", "--status-interval", "0", "--set",
         "serve.max_connections=2000"], stdout=out, stderr=err, env=env)
    url = None
    for _ in range(300):
        out.seek(0)
        for line in out.read().splitlines():
            if line.startswith("http="):
                url = "http://" + line[5:]
        if url:
            break
        time.sleep(0.1)
    assert url, "server did not start"
    for _ in range(300):
        if http(url + "/readyz")[0] == 200 and b"u1" in http(url + "/v1/users/u1")[1]:
            break
        time.sleep(0.1)
    results, failed = [], False

    def record(row, what, ok, **detail):
        nonlocal failed
        failed = failed or not ok
        results.append(dict(row=row, probe=what, ok=ok, **detail))
        print(json.dumps(results[-1]), flush=True)

    # Row 1: a weight of 1e20 (and 1e300) for a new user must not empty anyone's answers.
    codes = [http(url + "/v1/events", "POST", json.dumps(
        {"user": "attacker", "item": "i7", "weight": w}).encode())[0] for w in (1e20, 1e300)]
    answers = [json.loads(http(url + "/v1/users/u%d/recommendations?k=10" % u)[1])
               for u in range(1, 200, 20)]
    nonempty = sum(1 for r in answers if len(r["items"]) == 10)
    record(1, "weight 1e20 / 1e300 over HTTP", codes == [400, 400] and nonempty == len(answers),
           http_status=codes, answers_with_10_items="%d/%d" % (nonempty, len(answers)))

    # Row 4: thousands of idle connections; normal requests still answered.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle = []
    for _ in range(min(a.idle, hard - 200)):
        s = socket.socket()
        s.connect((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])))
        idle.append(s)
    t0 = time.time()
    statuses = [http(url + "/healthz")[0] for _ in range(20)]
    rec = http(url + "/v1/users/u1/recommendations?k=5")[0]
    elapsed = time.time() - t0
    metrics = http(url + "/metrics")[1].decode()
    def metric(name):
        for line in metrics.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None
    record(4, "%d idle connections, then 21 requests" % len(idle),
           statuses == [200] * 20 and rec == 200, seconds_for_21_requests=round(elapsed, 3),
           open_connections=metric("freshet_http_open_connections"),
           idle_closed_at_cap=metric("freshet_http_idle_connections_closed_total"))
    for s in idle:
        s.close()

    # Row 6: ids that are not UTF-8, in a path and in a file.
    status, body = http(url + "/v1/users/%ff/recommendations")
    status2, body2 = http(url + "/v1/users/nobody-%c0%af/recommendations")
    record(6, "GET /v1/users/%ff/recommendations", status == 400 and valid_json(body)
           and status2 == 400 and valid_json(body2), status=[status, status2])
    popular = http(url + "/v1/users/never-seen/recommendations?k=50")[1]
    record(6, "popularity answer stays valid JSON", valid_json(popular))

    # Row 10: the admin token is not in the data directory, the config dump or a snapshot.
    auth = {"Authorization": "Bearer " + token}
    cfg = http(url + "/admin/config", headers=auth)[1].decode()
    snap = http(url + "/admin/snapshots", "POST", b"{}", headers=auth)
    time.sleep(1.5)  # a flush writes the stored config
    found = []
    for dirpath, _, files in os.walk(os.path.join(work, "state")):
        for name in files:
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    if token.encode() in f.read():
                        found.append(name)
            except OSError:
                pass
    record(10, "admin token stored or shown", token not in cfg and not found and
           snap[0] in (200, 201), files_with_token=found, config_shows_token=token in cfg)

    # Row 12: the same validation on every path.
    probes = {
        "ts -5": {"user": "u1", "item": "i1", "ts": -5},
        "ts 2^63-1": {"user": "u1", "item": "i1", "ts": 2**63 - 1},
        "100 kB id": {"user": "u" * 100000, "item": "i1"},
        "quoted ts accepted": {"user": "u1", "item": "i1", "ts": "1700000000123"},
    }
    codes = {k: http(url + "/v1/events", "POST", json.dumps(v).encode())[0]
             for k, v in probes.items()}
    record(12, "HTTP validation", codes == {"ts -5": 400, "ts 2^63-1": 400, "100 kB id": 400,
                                            "quoted ts accepted": 202}, status=codes)

    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    # The file path: the delimited file with a non-UTF-8 id, replayed through serve.
    replay = subprocess.run(
        [a.freshet, "serve", "--data-dir", os.path.join(work, "state2"), "--source", "file:" + csv,
         "--format", "csv", "--columns", "user,item,ts", "--exit-when-done", "--no-http",
         "--status-interval", "0"], capture_output=True, text=True, errors="replace")
    record(6, "csv line with a non-UTF-8 id", replay.returncode == 0 and
           "invalid utf-8: 1" in replay.stderr, exit=replay.returncode,
           log=[l for l in replay.stderr.splitlines() if "malformed" in l][:1])
    print(json.dumps({"passed": sum(r["ok"] for r in results), "failed":
                      sum(not r["ok"] for r in results)}))
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
