#!/usr/bin/env python3
"""The operator dashboard (serving/dashboard/) in a real browser: Debian's headless Chromium,
driven through Selenium (python3-selenium, chromium-driver), against a running `freshet serve`.

The server learns a stream at a steady rate: MovieLens 100K from shared/data when it is there,
with its catalog when `freshet serve --help` offers --catalog, else a generated clickstream. The
test loads /dashboard and checks that
  - the page logs no console error (SEVERE entries of the browser log: script errors, refused
    requests to other origins under the page's Content-Security-Policy, failed loads);
  - every chart received data points from /metrics (window.freshetDashboard.state);
  - the user view shows a user's recommendations (with titles when there is a catalog); after an
    event for that user is posted to POST /v1/events, the view changes by itself: the posted item,
    the user's top recommendation, leaves the recommendations (exclude-seen) and, with a catalog,
    heads the user's latest events under its title;
  - the page's own "send a test event" control reports the event learnt;
  - a similar-items view loads; without the admin token the snapshots section is read-only and
    the page sends nothing to /admin; with it, the list loads.
It saves two screenshots (the dashboard, the user view) in --out-dir and prints their paths.

Exit status: 0 passed, 1 failed, 77 skipped (CTest SKIP_RETURN_CODE) when Chromium, its driver or
Selenium is missing, unless FRESHET_REQUIRE_BROWSER=1, which makes that a failure.

  dashboard_test.py --freshet build/cli/freshet --source-dir . --out-dir build/tests/browser
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SKIP = 77
ADMIN_TOKEN = "dashboard-test-token"
RATE = 4000  # events/s the server learns while the page watches


class Failure(Exception):
    pass


def unavailable(what):
    hint = "scripts/bootstrap.sh installs chromium, chromium-driver and python3-selenium"
    if os.environ.get("FRESHET_REQUIRE_BROWSER") == "1":
        print(f"dashboard_test: FAILED: {what} ({hint}); FRESHET_REQUIRE_BROWSER=1 requires them",
              flush=True)
        sys.exit(1)
    print(f"dashboard_test: SKIPPED: {what} ({hint})", flush=True)
    sys.exit(SKIP)


def log(message):
    print(f"dashboard_test: {message}", flush=True)


def wait_for(what, predicate, timeout_s, interval_s=0.2):
    """Polls predicate() until it returns a true value, which is returned; Failure on timeout."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Failure:
            raise
        except Exception as e:  # a page still loading, a server still starting
            last_error = e
        time.sleep(interval_s)
    raise Failure(f"timed out after {timeout_s} s waiting for {what}"
                  + (f" (last error: {last_error})" if last_error else ""))


def http(url, body=None, token=None):
    request = urllib.request.Request(url, data=body)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


class Data:
    """The stream the server learns, the user the test watches, and the catalog if any."""

    def __init__(self, freshet, workdir, source_dir, has_catalog):
        ml = os.environ.get("FRESHET_ML100K",
                            os.path.join(source_dir, "..", "shared", "data", "ml-100k"))
        self.titles = None
        self.serve_args = []
        if os.path.isfile(os.path.join(ml, "u.data")):
            self.path = os.path.join(ml, "u.data")
            self.format = "movielens-100k"
            # The user whose last event comes first in time order: learnt completely within a
            # second, so nothing but the test's own events changes their view afterwards.
            rows = [line.split("\t") for line in open(self.path)]
            order = sorted(range(len(rows)), key=lambda i: (int(rows[i][3]), i))
            last, counts = {}, {}
            for position, i in enumerate(order):
                user = rows[i][0]
                last[user] = position
                counts[user] = counts.get(user, 0) + 1
            self.user = min(last, key=last.get)
            self.user_events = counts[self.user]
            self.seed_items = []
            item_file = os.path.join(ml, "u.item")
            if has_catalog and os.path.isfile(item_file):
                self.serve_args = ["--catalog", item_file, "--catalog-format", "movielens-100k"]
                self.titles = {}
                with open(item_file, encoding="iso-8859-1") as f:
                    for line in f:
                        fields = line.rstrip("\n").split("|")
                        if len(fields) > 1:
                            self.titles[fields[0]] = fields[1]
            self.description = f"MovieLens 100K ({ml}), user {self.user}"
        else:
            self.path = os.path.join(workdir, "generated.jsonl")
            self.format = "jsonl"
            subprocess.run([freshet, "generate", "--output", self.path, "--events", "100000",
                            "--users", "1000", "--items", "1000", "--seed", "7"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # A user of the test's own, absent from the stream, given a history through the API.
            self.user = "dashboard-user"
            self.seed_items = []
            with open(self.path) as f:
                for line in f:
                    item = str(json.loads(line)["item"])
                    if item not in self.seed_items:
                        self.seed_items.append(item)
                    if len(self.seed_items) == 5:
                        break
            self.user_events = len(self.seed_items)
            self.description = f"a generated clickstream, user {self.user}"

    def title(self, item):
        return self.titles.get(item) if self.titles is not None else None


class Server:
    def __init__(self, freshet, workdir, data):
        self.out = open(os.path.join(workdir, "serve.out"), "w+")
        self.err_path = os.path.join(workdir, "serve.log")
        self.err = open(self.err_path, "w")
        env = dict(os.environ, FRESHET_ADMIN_TOKEN=ADMIN_TOKEN)
        self.process = subprocess.Popen(
            [freshet, "serve", "--data-dir", os.path.join(workdir, "state"),
             "--source", f"file:{data.path}", "--format", data.format, "--rate", str(RATE),
             "--port", "0", "--status-interval", "0"] + data.serve_args,
            stdout=self.out, stderr=self.err, env=env)

        def address():
            if self.process.poll() is not None:
                raise Failure(f"freshet serve exited with status {self.process.returncode}: "
                              f"{self.log_tail()}")
            self.out.seek(0)
            for line in self.out.read().splitlines():
                if line.startswith("http="):
                    return line[len("http="):]
            return None

        self.url = "http://" + wait_for("freshet serve to print http=", address, 30)

    def log_tail(self):
        with open(self.err_path) as f:
            return " | ".join(f.read().strip().splitlines()[-5:])

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Page:
    """The dashboard in headless Chromium; collects the browser log as it goes."""

    def __init__(self, chromium, chromedriver):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1200",
                         "--hide-scrollbars", "--lang=en-GB"]:
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        self.log = []

    def state(self):
        return self.driver.execute_script(
            "return window.freshetDashboard ? window.freshetDashboard.state : null;")

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def texts(self, selector):
        return self.js("return Array.from(document.querySelectorAll(arguments[0]))"
                       ".map((e) => e.textContent);", selector)

    def state_if(self, predicate):
        """The page's state when predicate(state) holds, else None (for wait_for)."""
        s = self.state()
        return s if s is not None and predicate(s) else None

    def user_view(self):
        """The page's state with the names the user view shows, read at one instant (the page
        renders what it reads in the same task, so the two agree)."""
        return self.js("""
            const names = (selector) => Array.from(document.querySelectorAll(selector))
                .map((e) => e.textContent);
            const s = window.freshetDashboard.state;
            s.shown = {recs: names('#user-recs li .name'), recent: names('#user-recent li .name')};
            return s;""")

    def collect_log(self):
        self.log.extend(self.driver.get_log("browser"))

    def severe(self):
        self.collect_log()
        return [entry for entry in self.log if entry.get("level") == "SEVERE"]

    def quit(self):
        self.driver.quit()


def check(condition, message):
    if not condition:
        raise Failure(message)


def rec_ids(state):
    return [r["item"] for r in state["user"]["recs"]]


def run(args, page, data, server):
    url = server.url
    log(f"server {url}; data: {data.description}; "
        + ("titles from the catalog" if data.titles is not None else
           "titles NOT checked (no --catalog in `freshet serve --help`, or no MovieLens u.item)"))

    if data.seed_items:
        body = json.dumps([{"user": data.user, "item": i, "type": "view"} for i in data.seed_items])
        status, text = http(url + "/v1/events", body.encode())
        check(status == 202, f"POST /v1/events (seed) answered {status}: {text}")

    def user_learnt():
        status, text = http(f"{url}/v1/users/{data.user}")
        return status == 200 and json.loads(text)["events"] >= data.user_events

    wait_for(f"user {data.user}'s {data.user_events} events to be learnt", user_learnt, 30)

    # --- The page loads and its charts fill.
    page.driver.get(url + "/dashboard?interval=1")
    check(page.driver.title == "freshet dashboard", f"page title is '{page.driver.title}'")
    wait_for("the page to poll /metrics", lambda: page.state_if(lambda s: s["polls"] >= 1), 15)

    # --- The user view.
    page.driver.find_element("id", "user-id").send_keys(data.user)
    page.driver.find_element("css selector", "#user-form button").click()
    def view_shown():
        s = page.user_view()
        return s if s["user"]["recs"] and s["user"]["events"] else None

    before = wait_for("the user view to show recommendations", view_shown, 15)
    check(before["user"]["error"] is None, f"user view error: {before['user']['error']}")
    check(before["user"]["events"] >= data.user_events,
          f"user view says {before['user']['events']} events, expected >= {data.user_events}")
    recs_before = rec_ids(before)
    names_before = before["shown"]["recs"]
    check(len(names_before) == len(recs_before),
          f"{len(names_before)} recommendations shown, {len(recs_before)} in the answer")
    if data.titles is not None:
        recent = before["user"]["recent"]
        check(recent, "no latest events in GET /v1/users/{user} (\"recent\") with a catalog")
        for r in before["user"]["recs"]:
            check(r.get("title") == data.title(r["item"]),
                  f"recommendation {r['item']} has title {r.get('title')!r}, "
                  f"the catalog says {data.title(r['item'])!r}")
        check(names_before == [data.title(i) or i for i in recs_before],
              f"the user view shows {names_before}, not the recommendations' titles")
    else:
        check(names_before == recs_before,
              f"without titles the view should show the item ids {recs_before}, shows "
              f"{names_before}")

    # The charts: a few points each (rates need two scrapes, a line two points). The lag chart has
    # no Kafka source to read and says so.
    def charts_filled():
        s = page.state()
        points = {k: v["points"] for k, v in s["charts"].items()}
        needed = ["chart-events", "chart-requests", "chart-latency", "chart-version",
                  "chart-freshness"]
        return s if all(points[k] >= 4 for k in needed) else None

    s = wait_for("every chart to have four data points", charts_filled, 20)
    events_per_s = s["charts"]["chart-events"]["last"][0]
    check(events_per_s is not None and events_per_s > 0,
          f"events/s chart's latest value is {events_per_s} while the server learns {RATE}/s")
    check("No Kafka source" in s["charts"]["chart-lag"]["note"],
          f"lag chart note is {s['charts']['chart-lag']['note']!r}")
    check(s["pollErrors"] == 0, f"polling failed: {s['lastError']}")
    routes = page.texts("#routes-body td")
    check("/v1/users/{user}/recommendations" in routes, f"route table lacks recommendations: "
          f"{routes[:12]}")

    page.driver.save_screenshot(args.dashboard_png)
    log(f"screenshot of the dashboard: {args.dashboard_png}")

    # --- An event for the user, posted through the API: the view changes by itself.
    item = recs_before[0]
    events_before = before["user"]["events"]
    status, text = http(url + "/v1/events",
                        json.dumps({"user": data.user, "item": item, "type": "view"}).encode())
    check(status == 202, f"POST /v1/events answered {status}: {text}")
    log(f"posted an event for user {data.user} on item {item} "
        f"({data.title(item) or 'no title'}), their top recommendation")

    # A server that lists a user's latest events ("recent", with the catalog API) must list the
    # posted item first.
    lists_recent = data.titles is not None or before["user"]["recent"] is not None
    if not lists_recent:
        log("latest events NOT checked: GET /v1/users/{user} has no \"recent\" on this server")

    def view_changed():
        s = page.user_view()
        u = s["user"]
        if u["events"] is None or u["events"] <= events_before or item in rec_ids(s):
            return None
        if lists_recent and not (u["recent"] and u["recent"][0]["item"] == item):
            return None
        return s

    after = wait_for("the user view to show the new event", view_changed, 10)
    check(after["user"]["error"] is None, f"user view error: {after['user']['error']}")
    check(after["user"]["changes"] >= 1, "the page did not count the change of its lists")
    names_after = after["shown"]["recs"]
    check(names_after != names_before, f"the recommendations shown did not change: {names_after}")
    if lists_recent:
        recent_names = after["shown"]["recent"]
        check(recent_names and recent_names[0] == (data.title(item) or item),
              f"latest events shown {recent_names[:3]}, expected {data.title(item) or item!r} "
              "first")
    # What is shown is the new answer, which no longer holds the item (view_changed).
    expected = [data.title(i) or i for i in rec_ids(after)]
    check(names_after == expected, f"the user view shows {names_after}, not {expected}")
    log(f"the user view changed: top recommendations were {names_before[:3]}, are now "
        f"{names_after[:3]}")
    page.js("document.getElementById('user-view').scrollIntoView();")
    page.driver.find_element("id", "user-view").screenshot(args.user_png)
    log(f"screenshot of the user view: {args.user_png}")

    # --- The page's own test-event control.
    page.driver.find_element("css selector", "#event-form button").click()
    sent = wait_for("the test event control to report",
                    lambda: page.state()["user"].get("lastTestEvent"), 15)
    check(sent["visibleMs"] is not None, f"the test event was not seen learnt: {sent}")
    log(f"the page's test event (item {sent['item']}) was visible after {sent['visibleMs']:.0f} ms")

    # --- Similar items of a recommended item, by clicking it.
    # The lists are drawn again on every refresh: find and click the link in one step.
    clicked = page.js("const a = document.querySelector('#user-recs li .name');"
                      "a.click(); return a.title;")
    similar = wait_for("the similar-items view",
                       lambda: page.state_if(lambda s: s["similar"]["updates"] > 0), 10)["similar"]
    check(similar["error"] is None, f"similar items: {similar['error']}")
    check(clicked == f"item {similar['id']}: show similar items",
          f"similar items of {similar['id']}, but the link clicked was {clicked!r}")
    check(similar["items"], f"no similar items for item {similar['id']}")
    if data.titles is not None:
        check(all(r.get("title") == data.title(r["item"]) for r in similar["items"]),
              f"similar items without their catalog titles: {similar['items'][:3]}")

    # --- Snapshots: read-only and silent without the token; listed with it.
    check(page.state()["snapshots"]["mode"] == "read-only", "snapshots not read-only by default")
    status, metrics = http(url + "/metrics")
    admin_calls = [line for line in metrics.splitlines()
                   if line.startswith("freshet_http_requests_total") and "/admin" in line]
    check(not admin_calls, f"the page called /admin without a token: {admin_calls}")
    page.driver.find_element("id", "admin-token").send_keys(ADMIN_TOKEN)
    page.driver.find_element("css selector", "#token-form button[type=submit]").click()
    snap = wait_for("the snapshot list with the token",
                    lambda: page.state_if(lambda s: s["snapshots"]["list"] is not None
                                          or s["snapshots"]["error"]), 10)
    check(snap["snapshots"]["error"] is None, f"snapshots: {snap['snapshots']['error']}")

    severe = page.severe()
    check(not severe, "console errors:\n  " + "\n  ".join(e["message"] for e in severe))
    log(f"{len(page.log)} browser log entries, none SEVERE")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--freshet", required=True, help="the freshet binary")
    parser.add_argument("--source-dir", required=True, help="the repository root")
    parser.add_argument("--out-dir", required=True, help="where the screenshots go")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    args.dashboard_png = os.path.join(os.path.abspath(args.out_dir), "dashboard.png")
    args.user_png = os.path.join(os.path.abspath(args.out_dir), "dashboard_user_view.png")
    failure_png = os.path.join(os.path.abspath(args.out_dir), "dashboard_failure.png")
    for stale in (args.dashboard_png, args.user_png, failure_png):
        if os.path.exists(stale):
            os.remove(stale)

    try:
        import selenium  # noqa: F401  (Debian's python3-selenium, for /usr/bin/python3)
    except ImportError:
        unavailable(f"the Python module selenium is not importable by {sys.executable}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium:
        unavailable("Chromium (chromium) is not on PATH")
    if not chromedriver:
        unavailable("ChromeDriver (chromedriver, Debian chromium-driver) is not on PATH")
    if not os.access(args.freshet, os.X_OK):
        print(f"dashboard_test: FAILED: {args.freshet} is not an executable (build it first)")
        return 1

    help_text = subprocess.run([args.freshet, "serve", "--help"], capture_output=True,
                               text=True).stdout
    has_catalog = "--catalog" in help_text and "--catalog-format" in help_text

    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="freshet-dashboard-test.")
    server = page = None
    try:
        data = Data(args.freshet, workdir, args.source_dir, has_catalog)
        server = Server(args.freshet, workdir, data)
        try:
            page = Page(chromium, chromedriver)
        except Exception as e:
            unavailable(f"Chromium did not start under ChromeDriver: {e}")
        run(args, page, data, server)
    except Exception as e:
        what = str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}"
        print(f"dashboard_test: FAILED: {what}", flush=True)
        if server is not None:
            print(f"dashboard_test: server log: {server.log_tail()}", flush=True)
        if page is not None:
            try:
                page.driver.save_screenshot(failure_png)
                print(f"dashboard_test: screenshot at the failure: {failure_png}")
                for entry in page.log + page.driver.get_log("browser"):
                    print(f"dashboard_test: browser log: {entry.get('level')} {entry['message']}")
            except Exception:
                pass
        return 1
    finally:
        if page is not None:
            page.quit()
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
