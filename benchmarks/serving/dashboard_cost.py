#!/usr/bin/env python3
"""What an open dashboard costs the server: benchmarks/serving/load.sh run alternately without and
with /dashboard open in headless Chromium, refreshing every second with a user watched (about
three requests a second: /metrics, the user, their recommendations).

  /usr/bin/python3 benchmarks/serving/dashboard_cost.py [--pairs 2] [LOAD_SH_ARGS...]
  e.g. benchmarks/serving/dashboard_cost.py --pairs 2 10000 10 32 18000

Each run prints load.sh's JSON line with "dashboard": false|true and, with the page, how many
refreshes it made during the run; the last line gives each pair's change and their median. The page opens as soon as the
server prints its address, before load.sh starts wrk (the run is refused otherwise). Chromium runs
at nice 19 on the same machine as the server and wrk, so requests/s also carries the browser's
own CPU; the server's CPU per request (load.sh reads it from /proc) does not.
Needs Debian's chromium, chromium-driver and python3-selenium (/usr/bin/python3).
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def open_page(url):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1200"]:
        options.add_argument(argument)
    # nice 19 for ChromeDriver and, through it, the browser it starts.
    service = Service("/usr/bin/chromedriver", popen_kw={"preexec_fn": lambda: os.nice(19)})
    driver = webdriver.Chrome(service=service, options=options)
    driver.get(url + "/dashboard?interval=1#user=u1")
    return driver


def polls(driver):
    return driver.execute_script("return window.freshetDashboard.state.polls;")


def run_once(load_args, with_page):
    before = set(glob.glob("/tmp/freshet-load.*"))
    load = subprocess.Popen([os.path.join(ROOT, "benchmarks", "serving", "load.sh")] + load_args,
                            stdout=subprocess.PIPE, text=True)
    driver = None
    first_polls = None
    try:
        if with_page:
            # load.sh's folder, then the address its server prints.
            deadline = time.monotonic() + 300
            url = None
            while url is None and time.monotonic() < deadline and load.poll() is None:
                for folder in set(glob.glob("/tmp/freshet-load.*")) - before:
                    try:
                        with open(os.path.join(folder, "s.out")) as f:
                            for line in f:
                                if line.startswith("http="):
                                    url, work = "http://" + line.strip()[5:], folder
                    except OSError:
                        pass
                time.sleep(0.1)
            if url is None:
                raise SystemExit("dashboard_cost: load.sh's server never printed its address")
            driver = open_page(url)
            while polls(driver) < 1:
                time.sleep(0.1)
            if os.path.exists(os.path.join(work, "wrk.out")):
                raise SystemExit("dashboard_cost: wrk started before the page was open")
            first_polls = polls(driver)
        out, _ = load.communicate()
        if load.returncode != 0:
            raise SystemExit(f"dashboard_cost: load.sh failed ({load.returncode})")
        result = json.loads(out.strip().splitlines()[-1])
        result["dashboard"] = with_page
        if driver is not None:
            # Refreshes from the page's first until load.sh stopped its server (wrk included).
            result["page_refreshes"] = polls(driver) - first_polls
        return result
    finally:
        if driver is not None:
            driver.quit()
        if load.poll() is None:
            load.terminate()
            load.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("load_args", nargs="*", default=["10000", "10", "32", "18000"])
    args = parser.parse_args()
    results = []
    for _ in range(args.pairs):
        for with_page in (False, True):
            r = run_once(args.load_args, with_page)
            print(json.dumps(r), flush=True)
            results.append(r)

    # Each pair's change (with / without - 1), then their median: the pairs run minutes apart on
    # a machine whose speed drifts, so a pair's own two runs compare best.
    def changes(key):
        off = [r[key] for r in results if not r["dashboard"]]
        on = [r[key] for r in results if r["dashboard"]]
        return sorted(round(100 * (b / a - 1), 2) for a, b in zip(off, on))

    def median(values):
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    qps, cpu = changes("qps"), changes("server_cpu_s_per_request")
    print(json.dumps({"bench": "dashboard_cost", "pairs": args.pairs,
                      "qps_change_pct_by_pair": qps, "qps_change_pct_median": median(qps),
                      "cpu_per_request_change_pct_by_pair": cpu,
                      "cpu_per_request_change_pct_median": median(cpu)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
