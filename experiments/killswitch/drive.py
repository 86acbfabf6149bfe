#!/usr/bin/env python3
"""Drives and checks the kill-switch end-to-end run (scripts/killswitch-e2e.sh
starts every process; this file only talks HTTP to them, standard library only).

Steps, each asserted:
  setup      flag shop/checkout-v2 (string, variants stable and v2) ENABLED on
             `stable`, served so by both replicas; steady load on the demo;
             Prometheus scraping all three targets
  wrong token   a firing webhook with a wrong bearer token gets 401 and changes
             nothing (both replicas still serve `stable`, no new audit entry)
  per run    baseline error rate low -> bad release (default variant v2) ->
             the page burn-rate alert fires in Prometheus -> Alertmanager calls
             Ensign -> both replicas serve the flag DISABLED (polled every few ms)
             -> the demo is back on its safe path and its error rate at baseline
             -> the flag is restored by hand and the alert resolves
  repeat     the same webhook delivered twice acts once (audit count)
Figures (per run, milliseconds): bad release -> alert firing (the alert's
activeAt); webhook received -> flag served DISABLED on each replica (each
replica's own ensign_killswitch_propagation_seconds observation, cross-checked
by polling both replicas' OFREP every few ms from the kill's audit entry) and
on every replica (the slower one); webhook received -> the demo's first answer
on its safe path (received = replica 1's first DISABLED answer minus its
propagation).
"""

import argparse
import datetime
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

FLAG_SET = "shop"
FLAG = "checkout-v2"
ENVIRONMENT = "production"
ALERT = "CheckoutAvailabilityBurn"
SAFE, NEW = "stable", "v2"


def now_ms():
    return time.time() * 1000.0


def fail(message):
    print(f"killswitch-e2e: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def step(message):
    print(f"-- {message}", flush=True)


class Http:
    """One keep-alive connection to one loopback server."""

    def __init__(self, base, timeout=5.0):
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.timeout = timeout
        self.connection = None

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.connection is None:
                    self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
                return response.status, dict(response.getheaders()), raw
            except (OSError, http.client.HTTPException):
                if self.connection is not None:
                    self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def json(self, method, path, body=None, headers=None):
        status, _, raw = self.request(method, path, body, headers)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")


def wait_for(what, predicate, timeout_s, interval_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    fail(f"{what}: not within {timeout_s} s")


class Load(threading.Thread):
    """Steady bounded load on the demo: one request every `gap` seconds, each
    answer kept as (time ms, status, path)."""

    def __init__(self, base, rate, max_seconds):
        super().__init__(daemon=True)
        self.http = Http(base, timeout=5.0)
        self.gap = 1.0 / rate
        self.max_seconds = max_seconds
        self.samples = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def run(self):
        started = time.monotonic()
        user = 0
        while not self.stop_event.is_set() and time.monotonic() - started < self.max_seconds:
            user += 1
            try:
                status, headers, _ = self.http.request("GET", f"/checkout?user=u{user % 1000}")
                path = headers.get("x-checkout-path", "")
            except (OSError, http.client.HTTPException):
                status, path = 0, ""
            with self.lock:
                self.samples.append((now_ms(), status, path))
            self.stop_event.wait(self.gap)

    def window(self, since_ms, until_ms=None):
        with self.lock:
            return [s for s in self.samples if s[0] >= since_ms and (until_ms is None or s[0] < until_ms)]

    def error_ratio(self, since_ms, until_ms=None):
        window = self.window(since_ms, until_ms)
        if not window:
            fail("the load loop got no answers")
        return sum(1 for s in window if s[1] != 200) / len(window), len(window)


class DisabledWatch(threading.Thread):
    """Polls one replica's OFREP every few ms; notes the first time the flag is
    served DISABLED."""

    def __init__(self, name, base, interval_s, timeout_s):
        super().__init__(daemon=True)
        self.name_, self.http = name, Http(base, timeout=2.0)
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.disabled_at = None
        self.stop_event = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.timeout_s
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            if ofrep_reason(self.http) == "DISABLED":
                self.disabled_at = now_ms()
                return
            time.sleep(self.interval_s)


def ofrep(conn):
    status, body = conn.json("POST", f"/ofrep/v1/evaluate/flags/{FLAG}", {"context": {"targetingKey": "probe"}})
    return status, body if isinstance(body, dict) else {}


def ofrep_reason(conn):
    try:
        _, body = ofrep(conn)
    except (OSError, http.client.HTTPException):
        return None
    return body.get("reason")


def serves(conn, value):
    try:
        _, body = ofrep(conn)
    except (OSError, http.client.HTTPException):
        return False
    return body.get("value") == value


def propagation_histogram(conn):
    """(sum seconds, count) of ensign_killswitch_propagation_seconds."""
    status, _, raw = conn.request("GET", "/metrics")
    if status != 200:
        fail(f"/metrics answered {status}")
    values = {}
    for line in raw.decode().splitlines():
        for part in ("sum", "count"):
            if line.startswith(f"ensign_killswitch_propagation_seconds_{part} "):
                values[part] = float(line.split()[-1])
    return values.get("sum", 0.0), values.get("count", 0.0)


def parse_rfc3339_ms(text):
    # Prometheus writes nanoseconds; Python parses at most microseconds.
    head, _, rest = text.partition(".")
    fraction = "".join(c for c in rest if c.isdigit())
    zone = rest[len(fraction):] or "Z"
    base = datetime.datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    return base.timestamp() * 1000.0 + (float("0." + fraction) * 1000.0 if fraction else 0.0)


def page_alerts(prometheus):
    status, body = prometheus.json("GET", "/api/v1/alerts")
    if status != 200:
        fail(f"Prometheus /api/v1/alerts answered {status}")
    return [
        a for a in body["data"]["alerts"]
        if a["labels"].get("alertname") == ALERT and a["labels"].get("severity") == "page"
    ]


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class Run:
    def __init__(self, args):
        self.args = args
        self.admin = Http(args.admin)
        self.auth = {"authorization": f"Bearer {args.admin_token}"}
        self.replicas = [(f"replica-{i + 1}", url) for i, url in enumerate(args.ofrep)]
        self.ofreps = [Http(url) for _, url in self.replicas]
        self.managements = [Http(url) for url in args.management]
        self.prometheus = Http(args.prometheus)
        self.load = Load(args.demo, args.rate, args.max_seconds)

    def api(self, method, path, body=None, expect=(200, 201)):
        status, answer = self.admin.json(method, f"/api/v1{path}", body, self.auth)
        if status not in expect:
            fail(f"{method} {path} answered {status}: {answer}")
        return answer

    def configure(self, state, default_variant, comment):
        self.api("PUT", f"/flags/{FLAG_SET}/{FLAG}/environments/{ENVIRONMENT}", {
            "state": state, "variants": {SAFE: SAFE, NEW: NEW},
            "defaultVariant": default_variant, "comment": comment,
        })

    def restore_safe(self, comment):
        """Closes the kill switch's record (the restore endpoint puts back the
        configuration from before the action), then serves the safe variant."""
        path = f"/api/v1/flags/{FLAG_SET}/{FLAG}/environments/{ENVIRONMENT}/kill-switch/restore"
        status, answer = self.admin.json("POST", path, {}, self.auth)
        if status >= 500:
            fail(f"POST {path} answered {status}: {answer}")
        self.configure("ENABLED", SAFE, comment)
        wait_for("both replicas serve the safe variant", lambda: self.all_serve(SAFE), 10)

    def audit(self):
        query = urllib.parse.urlencode({"resourceType": "flag", "resourceKey": f"{FLAG_SET}/{FLAG}", "limit": 500})
        answer = self.api("GET", f"/audit?{query}")
        return answer["items"]

    def all_serve(self, value):
        return all(serves(http, value) for http in self.ofreps)

    def webhook(self, token, payload):
        status, _, raw = self.admin.request(
            "POST", "/api/v1/integrations/alertmanager", payload, {"authorization": f"Bearer {token}"})
        return status, raw

    def setup(self):
        step("setup: flag set, flag on the safe variant, load, scrapes")
        self.api("POST", "/flag-sets", {"key": FLAG_SET}, expect=(200, 201, 409))
        self.api("POST", "/flags", {
            "flagSet": FLAG_SET, "key": FLAG, "state": "ENABLED",
            "variants": {SAFE: SAFE, NEW: NEW}, "defaultVariant": SAFE,
            "description": "The new checkout (kill-switch e2e)",
        }, expect=(200, 201, 409))
        self.configure("ENABLED", SAFE, "e2e: start on the safe variant")
        wait_for("both replicas serve the safe variant", lambda: self.all_serve(SAFE), 10)
        self.load.start()

        def targets_up():
            status, body = self.prometheus.json("GET", "/api/v1/query?query=" + urllib.parse.quote("up"))
            results = body["data"]["result"] if status == 200 else []
            return len(results) >= 3 and all(r["value"][1] == "1" for r in results)
        wait_for("Prometheus scrapes the demo and both replicas", targets_up, 30, 0.2)

    def firing_payload(self, fingerprint):
        labels = {
            "alertname": ALERT, "severity": "page", "sloth_id": "checkout-availability",
            "sloth_severity": "page", "ensign_flag": FLAG, "ensign_flag_set": FLAG_SET,
            "ensign_environment": ENVIRONMENT, "ensign_action": "disable",
        }
        return {
            "version": "4", "groupKey": f"{{}}:{{alertname=\"{ALERT}\"}}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "ensign", "groupLabels": {"alertname": ALERT},
            "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{
                "status": "firing", "labels": labels, "annotations": {},
                "startsAt": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": fingerprint,
            }],
        }

    def wrong_token_changes_nothing(self):
        step("a wrong token gets 401 and changes nothing")
        before = len(self.audit())
        status, raw = self.webhook("not-the-token", self.firing_payload(f"e2e-wrong-{int(now_ms())}"))
        if status != 401:
            fail(f"webhook with a wrong token answered {status}: {raw[:200]!r}")
        time.sleep(0.3)
        if not self.all_serve(SAFE):
            fail("a webhook with a wrong token changed what is served")
        if len(self.audit()) != before:
            fail("a webhook with a wrong token wrote to the audit log")

    def one_run(self, index):
        step(f"run {index}: waiting for a quiet start (no page alert, safe variant everywhere)")
        self.restore_safe(f"e2e run {index}: restore")
        wait_for("the page alert resolves", lambda: not any(
            a["state"] == "firing" for a in page_alerts(self.prometheus)), 90, 0.25)
        time.sleep(self.args.baseline_seconds)
        baseline, count = self.load.error_ratio(now_ms() - self.args.baseline_seconds * 1000)
        if baseline > self.args.baseline_max:
            fail(f"baseline error rate {baseline:.3f} over {count} requests")
        step(f"run {index}: baseline error rate {baseline:.3f} ({count} requests); bad release")

        watches = [DisabledWatch(name, url, self.args.poll_ms / 1000.0, 120) for name, url in self.replicas]
        for watch in watches:
            watch.start()
        audit_before = {e["id"] for e in self.audit()}
        histograms_before = [propagation_histogram(m) for m in self.managements]
        bad_at = now_ms()
        self.configure("ENABLED", NEW, f"e2e run {index}: bad release")

        def firing():
            alerts = [a for a in page_alerts(self.prometheus) if a["state"] == "firing"]
            return alerts[0] if alerts else None
        alert = wait_for("the page burn-rate alert fires", firing, 90, 0.1)
        firing_at = parse_rfc3339_ms(alert["activeAt"])
        step(f"run {index}: alert firing {firing_at - bad_at:.0f} ms after the bad release")

        for watch in watches:
            watch.join(60)
            if watch.disabled_at is None:
                fail(f"{watch.name_} never served {FLAG} DISABLED")
        bad_actor = None
        kill = None
        for entry in sorted(self.audit(), key=lambda e: e["id"]):
            if entry["id"] in audit_before:
                continue
            if bad_actor is None:
                bad_actor = entry["actor"]  # the bad release, by the admin token
            elif entry["actor"] != bad_actor:
                kill = entry
                break
        if kill is None:
            fail("no audit entry of the kill switch's change")
        recorded_at = float(kill["at"])
        polled = {w.name_: w.disabled_at - recorded_at for w in watches}
        propagation = {}
        for (name, _), management, (sum_before, count_before) in zip(
                self.replicas, self.managements, histograms_before):
            def observed():
                total, count = propagation_histogram(management)
                return (total, count) if count > count_before else None
            total, count = wait_for(f"{name} observes its propagation", observed, 10)
            if count != count_before + 1:
                fail(f"{name} observed {count - count_before:.0f} propagations for one kill")
            propagation[name] = (total - sum_before) * 1000.0
        every = max(propagation.values())
        first = watches[0]
        received_at = min(first.disabled_at - propagation[first.name_], recorded_at)
        step(f"run {index}: kill switch by {kill['actor']} ({kill['action']}); served DISABLED "
             + ", ".join(f"{n} +{v:.0f} ms" for n, v in propagation.items())
             + " after the webhook (OFREP polls: "
             + ", ".join(f"{n} +{v:.0f} ms" for n, v in polled.items()) + " after the audit entry)")

        safe = wait_for("the demo answers on its safe path", lambda: next(
            (s for s in self.load.window(received_at) if s[2] == SAFE), None), 10, 0.02)
        safe_ms = safe[0] - received_at
        time.sleep(self.args.recovery_seconds)
        after, count = self.load.error_ratio(now_ms() - self.args.recovery_seconds * 1000 + 500)
        if after > max(self.args.baseline_max, baseline):
            fail(f"error rate {after:.3f} after the kill switch (baseline {baseline:.3f})")
        step(f"run {index}: demo on its safe path +{safe_ms:.0f} ms; error rate back to {after:.3f} ({count} requests)")
        return {
            "run": index, "release_to_firing_ms": firing_at - bad_at,
            "webhook_to_disabled_ms": propagation, "webhook_to_disabled_all_ms": every,
            "audit_to_ofrep_disabled_ms": polled,
            "webhook_to_safe_path_ms": safe_ms, "baseline_error_ratio": baseline,
            "after_error_ratio": after,
        }

    def repeat_acts_once(self):
        step("a repeated webhook delivery acts once")
        self.restore_safe("e2e: restore before the repeat check")
        payload = self.firing_payload(f"e2e-repeat-{int(now_ms())}")
        before = len(self.audit())
        status, raw = self.webhook(self.args.alertmanager_token, payload)
        if not 200 <= status < 300:
            fail(f"first delivery answered {status}: {raw[:300]!r}")
        wait_for("both replicas serve the flag DISABLED",
                 lambda: all(ofrep_reason(h) == "DISABLED" for h in self.ofreps), 10, 0.01)
        once = len(self.audit())
        if once <= before:
            fail("the first delivery wrote no audit entry")
        self.restore_safe("e2e: restore between deliveries")
        restored = len(self.audit())
        status, raw = self.webhook(self.args.alertmanager_token, payload)
        if not 200 <= status < 300:
            fail(f"repeated delivery answered {status}: {raw[:300]!r}")
        time.sleep(0.5)
        if len(self.audit()) != restored:
            fail("the repeated delivery acted again (new audit entries)")
        if not self.all_serve(SAFE):
            fail("the repeated delivery disabled the flag again")
        step(f"first delivery: {once - before} audit entr(y/ies); repeat: none")

    def main(self):
        self.setup()
        self.wrong_token_changes_nothing()
        results = [self.one_run(i + 1) for i in range(self.args.runs)]
        self.repeat_acts_once()
        self.load.stop_event.set()
        self.load.join(10)
        summary = {"runs": results}
        series = {
            "bad release -> alert firing": [r["release_to_firing_ms"] for r in results],
            "webhook -> served DISABLED, replica-1": [r["webhook_to_disabled_ms"]["replica-1"] for r in results],
            "webhook -> served DISABLED, replica-2": [r["webhook_to_disabled_ms"]["replica-2"] for r in results],
            "webhook -> served DISABLED, every replica": [r["webhook_to_disabled_all_ms"] for r in results],
            "kill's audit entry -> DISABLED polled on every replica": [
                max(r["audit_to_ofrep_disabled_ms"].values()) for r in results],
            "webhook -> demo on its safe path": [r["webhook_to_safe_path_ms"] for r in results],
        }
        print(f"\n| step ({len(results)} runs) | p50 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|")
        for name, values in series.items():
            print(f"| {name} | {percentile(values, 50):.0f} | {percentile(values, 99):.0f} | {max(values):.0f} |")
            summary[name] = {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values)}
        with open(self.args.out, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
        every = summary["webhook -> served DISABLED, every replica"]["p99"]
        one = summary["webhook -> served DISABLED, replica-1"]["max"]
        print(f"targets: one replica max {one:.0f} ms (<= 200), every replica p99 {every:.0f} ms (<= 1000)")
        if self.args.enforce_targets and (one > 200 or every > 1000):
            fail("propagation targets missed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True, help="replica 1's admin API base URL")
    parser.add_argument("--admin-token", required=True)
    parser.add_argument("--alertmanager-token", required=True)
    parser.add_argument("--ofrep", action="append", required=True, help="each replica's OFREP base URL")
    parser.add_argument("--management", action="append", required=True,
                        help="each replica's management base URL, in --ofrep order")
    parser.add_argument("--demo", required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="demo requests per second")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="load loop bound")
    parser.add_argument("--poll-ms", type=float, default=3.0)
    parser.add_argument("--baseline-seconds", type=float, default=2.0)
    parser.add_argument("--recovery-seconds", type=float, default=2.5)
    parser.add_argument("--baseline-max", type=float, default=0.01)
    parser.add_argument("--enforce-targets", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if not 1 <= args.runs <= 50:
        fail("RUNS must be 1 to 50")
    Run(args).main()


if __name__ == "__main__":
    main()
