#!/usr/bin/env python3
"""Serving replicas behind a real HAProxy (deploy/haproxy/haproxy.cfg, as shipped).

Starts a real redis-server, the development broker, a learner (`freshet serve` publishing to a
model topic and Redis) that learns a generated clickstream as it is produced, three replicas
(`freshet serve --follow --bootstrap`) and HAProxy in front of them. While client threads read
recommendations through HAProxy without pause, each replica in turn is restarted (SIGTERM, then
started again) and one is SIGKILLed and started again. Then it checks that
  - no request failed: every answer a 200, no connection error;
  - every replica answers every sampled user exactly as the learner does, once the stream is
    learnt (the same items, scores and event counts);
  - POST /v1/events through HAProxy reaches the learner (the write route), and the event shows in
    a replica's answer for that user.

Exit status: 0 passed, 1 failed, 77 skipped (CTest SKIP_RETURN_CODE) when haproxy or
redis-server is missing, unless FRESHET_REQUIRE_HAPROXY=1, which makes that a failure.

  replicas_haproxy_test.py --freshet build/cli/freshet --source-dir .
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SKIP = 77
TOKEN = "replicas-test-token"
USERS = 2000


class Failure(Exception):
    pass


def log(message):
    print(f"replicas_haproxy_test: {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (OSError, http.client.HTTPException):
        return 0, ""


def wait_until(what, check, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise Failure(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.procs = {}
        self.env = dict(os.environ, FRESHET_ADMIN_TOKEN=TOKEN)

    def start(self, name, argv, env=None):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                            env=env or self.env)
        return self.procs[name]

    def stop(self, name, sig=signal.SIGTERM, timeout=30):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure(f"{name} did not stop within {timeout} s of {sig.name}")

    def stop_all(self):
        for name in list(self.procs):
            try:
                self.stop(name, timeout=10)
            except Failure as e:
                log(str(e))


def replica_argv(args, broker, redis_port, learner_port, port):
    return [args.freshet, "serve", "--follow", "--brokers", broker, "--model-topic", "model",
            "--redis", f"redis://127.0.0.1:{redis_port}",
            "--bootstrap", f"http://127.0.0.1:{learner_port}", "--port", str(port),
            "--status-interval", "0"]


def ready(port):
    return get(f"http://127.0.0.1:{port}/readyz", timeout=1)[0] == 200


def answer(port, user):
    status, body = get(f"http://127.0.0.1:{port}/v1/users/{user}/recommendations?k=10")
    if status != 200:
        return None
    a = json.loads(body)
    return (a["items"], a["user_events"])


class Load:
    """Client threads reading recommendations through HAProxy, each on a keep-alive connection
    (opened again after an error, which is counted)."""

    def __init__(self, port, threads=3):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.bad = {}  # status -> count
        self.errors = []
        self.latencies = []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, index):
        conn = None
        n = index
        while not self.stop.is_set():
            n += 7
            path = f"/v1/users/u{n % USERS}/recommendations?k=10"
            start = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path)
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.latencies.append(time.time() - start)
                    if r.status == 200:
                        self.ok += 1
                    else:
                        self.bad[r.status] = self.bad.get(r.status, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append(repr(e))
                conn = None

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--freshet", required=True)
    parser.add_argument("--source-dir", required=True)
    args = parser.parse_args()

    haproxy = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    redis = shutil.which("redis-server")
    if haproxy is None or redis is None:
        what = "haproxy" if haproxy is None else "redis-server"
        if os.environ.get("FRESHET_REQUIRE_HAPROXY") == "1":
            log(f"FAILED: {what} is missing (scripts/bootstrap.sh installs it)")
            return 1
        log(f"SKIPPED: {what} is missing (scripts/bootstrap.sh installs it)")
        return SKIP

    work = tempfile.mkdtemp(prefix="freshet-replicas-")
    cluster = Cluster(args, work)
    try:
        redis_port = free_port()
        cluster.start("redis", [redis, "--port", str(redis_port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"])
        broker = cluster.start("broker", [args.freshet, "broker", "--topics", "clicks,model",
                                          "--partitions", "1"])
        broker_log = os.path.join(work, "broker.log")
        wait_until("the broker", lambda: "bootstrap=" in open(broker_log).read())
        bootstrap = open(broker_log).read().split("bootstrap=")[1].split()[0]
        del broker

        events = os.path.join(work, "events.jsonl")
        subprocess.run([args.freshet, "generate", "--output", events, "--events", "30000",
                        "--users", str(USERS), "--items", "1500", "--seed", "3"],
                       check=True, stdout=subprocess.DEVNULL)
        learner_port = free_port()
        cluster.start("learner", [args.freshet, "serve", "--brokers", bootstrap, "--topic",
                                  "clicks", "--model-topic", "model", "--redis",
                                  f"redis://127.0.0.1:{redis_port}", "--port", str(learner_port),
                                  "--status-interval", "0"])
        wait_until("the learner", lambda: ready(learner_port))
        # Half the stream before the replicas start, the rest while they serve.
        subprocess.run([args.freshet, "produce", "--brokers", bootstrap, "--topic", "clicks",
                        "--data", events, "--format", "jsonl", "--rate", "0"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        replica_ports = [free_port() for _ in range(3)]
        for i, port in enumerate(replica_ports):
            cluster.start(f"replica{i + 1}",
                          replica_argv(args, bootstrap, redis_port, learner_port, port))
        for port in replica_ports:
            wait_until(f"replica on {port}", lambda port=port: ready(port))

        lb_port = free_port()
        lb_env = dict(os.environ, FRESHET_LB_BIND=f"127.0.0.1:{lb_port}",
                      FRESHET_LEARNER=f"127.0.0.1:{learner_port}")
        for i, port in enumerate(replica_ports):
            lb_env[f"FRESHET_REPLICA_{i + 1}"] = f"127.0.0.1:{port}"
        cfg = os.path.join(args.source_dir, "deploy", "haproxy", "haproxy.cfg")
        cluster.start("haproxy", [haproxy, "-W", "-db", "-f", cfg], env=lb_env)
        wait_until("haproxy", lambda: get(f"http://127.0.0.1:{lb_port}/readyz", 1)[0] == 200)
        time.sleep(1.5)  # every replica's health checks pass (rise 2)

        with Load(lb_port) as load:
            time.sleep(1.0)
            for i, port in enumerate(replica_ports):
                name = f"replica{i + 1}"
                sig = signal.SIGKILL if i == 1 else signal.SIGTERM
                log(f"{sig.name} {name}")
                cluster.stop(name, sig)
                time.sleep(0.3)
                cluster.start(name, replica_argv(args, bootstrap, redis_port, learner_port, port))
                wait_until(f"{name} ready again", lambda port=port: ready(port))
                time.sleep(1.2)  # back in HAProxy's rotation before the next one goes
            time.sleep(1.0)
        lat = sorted(load.latencies)
        p99 = lat[int(len(lat) * 0.99)] * 1e3 if lat else 0
        log(f"through HAProxy during the restarts: {load.ok} answers of 200, non-200 "
            f"{load.bad}, connection errors {len(load.errors)}, p99 {p99:.1f} ms")
        if load.ok < 100:
            raise Failure(f"only {load.ok} requests answered")
        if load.bad or load.errors:
            raise Failure(f"failed requests reached the client: {load.bad} {load.errors[:3]}")

        # An event through HAProxy's write route reaches the learner, then a replica's answer.
        before = answer(replica_ports[0], "u17")
        status, body = post(lb_port, '{"user":"u17","item":"i1","type":"purchase"}')
        if status not in (200, 202):
            raise Failure(f"POST /v1/events through HAProxy answered {status} {body}")
        wait_until("the posted event in a replica's answer",
                   lambda: (answer(replica_ports[0], "u17") or ([], -1))[1] == before[1] + 1)

        # The same answers everywhere once everything is learnt and published.
        def same(user):
            want = answer(learner_port, user)
            return want is not None and all(answer(p, user) == want for p in replica_ports)

        for u in range(0, USERS, 97):
            wait_until(f"replicas answering u{u} as the learner", lambda u=u: same(f"u{u}"), 10)
        log(f"{len(range(0, USERS, 97))} users answered identically by the learner and 3 replicas")
        log("PASSED")
        return 0
    except Failure as e:
        log(f"FAILED: {e}")
        for name in ("learner", "replica1", "replica2", "replica3", "haproxy"):
            path = os.path.join(work, f"{name}.log")
            if os.path.exists(path):
                tail = open(path, errors="replace").read()[-1500:]
                log(f"--- {name}.log (tail)\n{tail}")
        return 1
    finally:
        cluster.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def post(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("POST", "/v1/events", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read().decode()


if __name__ == "__main__":
    sys.exit(main())
