#!/usr/bin/env python3
"""Rows 7 and 11 of the hardening table in benchmarks/RESULTS.md ("Faults and hostile input"),
against a live `freshet serve --brokers` and a `freshet broker`, on loopback:

  row 7   POST /v1/events times out (504) while the broker is frozen (SIGSTOP); once it thaws the
          event is delivered and learnt; the client's retry with the same Idempotency-Key is
          dropped as a repeat, so the event counts once.
  row 11  with the broker gone (SIGKILL), /readyz answers 503 naming it within
          serve.unready_after_ms (3 s here) plus the client's one-second statistics.

Prints one JSON object per step and exits non-zero if an outcome is not the expected one.

    benchmarks/faults/retry_and_readiness.py [--freshet build/cli/freshet]
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time
from faults_http import http

def wait_line(path, prefix, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
        time.sleep(0.1)
    raise RuntimeError(f"no '{prefix}' line in {path}")

def main():
    p = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--freshet", default=os.path.join(root, "build/cli/freshet"))
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="freshet-retry.")
    failures = 0

    def record(row, what, ok, **detail):
        nonlocal failures
        failures += 0 if ok else 1
        print(json.dumps({"row": row, "what": what, "ok": ok, **detail}), flush=True)

    broker = subprocess.Popen([a.freshet, "broker", "--topics", "events", "--partitions", "4"],
                              stdout=open(os.path.join(work, "broker.out"), "w"),
                              stderr=open(os.path.join(work, "broker.err"), "w"))
    bootstrap = wait_line(os.path.join(work, "broker.out"), "bootstrap=")
    serve_out = os.path.join(work, "serve.out")
    server = subprocess.Popen(
        [a.freshet, "serve", "--brokers", bootstrap, "--topic", "events", "--data-dir",
         os.path.join(work, "state"), "--port", "0", "--status-interval", "0",
         "--set", "serve.unready_after_ms=3000"],
        stdout=open(serve_out, "w"), stderr=open(os.path.join(work, "serve.err"), "w"))
    try:
        url = "http://" + wait_line(serve_out, "http=")
        end = time.time() + 60
        while time.time() < end and http(url + "/readyz")[0] != 200:
            time.sleep(0.2)
        record(11, "ready with the broker up", http(url + "/readyz")[0] == 200)

        def events_of(user):
            status, body = http(url + f"/v1/users/{user}")
            return json.loads(body)["events"] if status == 200 else 0

        def post(key):
            t = time.time()
            status, body = http(url + "/v1/events", "POST",
                                b'{"user":"retry-user","item":"i1"}',
                                {"Idempotency-Key": key, "Content-Type": "application/json"},
                                timeout=30)  # longer than the producer's 10 s
            return status, body, round(time.time() - t, 1)

        status, body, _ = post("k1")
        end = time.time() + 30
        while time.time() < end and events_of("retry-user") < 1:
            time.sleep(0.1)
        record(7, "POST with the broker up", status == 202 and events_of("retry-user") == 1,
               status=status, body=body.decode())

        broker.send_signal(signal.SIGSTOP)
        status, body, took = post("k2")
        record(7, "POST while the broker is frozen", status == 504, status=status, seconds=took,
               body=body.decode()[:160])
        broker.send_signal(signal.SIGCONT)
        end = time.time() + 60
        while time.time() < end and events_of("retry-user") < 2:
            time.sleep(0.1)
        record(7, "the timed-out event is delivered and learnt once the broker thaws",
               events_of("retry-user") == 2, events=events_of("retry-user"))
        status, body, _ = post("k2")
        time.sleep(3)
        _, metrics = http(url + "/metrics")
        repeated = [l for l in metrics.decode().splitlines()
                    if l.startswith("freshet_events_repeated_id ")]
        record(7, "the client's retry with the same Idempotency-Key is not learnt again",
               status == 202 and events_of("retry-user") == 2 and
               repeated == ["freshet_events_repeated_id 1"],
               status=status, events=events_of("retry-user"), metric=repeated)

        t0 = time.time()
        broker.kill()
        broker.wait()
        ready = 200
        end = time.time() + 60
        while time.time() < end:
            ready, body = http(url + "/readyz")
            if ready == 503:
                break
            time.sleep(0.2)
        record(11, "/readyz with the broker gone", ready == 503 and b"broker" in body,
               seconds=round(time.time() - t0, 1), body=body.decode()[:200])
    finally:
        if broker.poll() is None:
            broker.send_signal(signal.SIGCONT)
            broker.kill()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            server.kill()
    print(json.dumps({"failures": failures, "work": work}))
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())
