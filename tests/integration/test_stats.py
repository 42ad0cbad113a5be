# SPDX-License-Identifier: MIT
"""Statistics: the per-listener counters and the Prometheus endpoint
(metrics_listen).  Known traffic is driven through muxd -- clients admitted,
refused by the access list and by max_per_source, messages with exact byte
counts, closes by the client, by max_message, by the idle timeout, on stop --
and every counter of /metrics is compared with what was sent, on every
backend (and with MUXD_TEST_WORKERS, or workers = 2 where a test says so).
The output is checked with promtool and prometheus_client's parser; the
endpoint's access list, bad requests, slow clients, reloads and draining
are tested too.  Loopback only; every wait is bounded."""

import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING, DEFAULT_SUFFIX, TOO_LONG

METRICS_RE = re.compile(r"serving metrics on http://(\[[0-9A-Fa-f:.]*\]|[0-9.]+):(\d+)/metrics")
SERIES_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
REFUSED = ("access", "max_per_source", "max_connections", "descriptors", "rate", "sources_full",
           "proxy_from", "proxy_header")
CLOSED = ("client", "idle", "max_message", "error", "reload", "shutdown", "oneshot")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """{(name, frozenset of (label, value)): value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES_RE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        labels = frozenset((k, unescape(v)) for k, v in LABEL_RE.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        if key in out:
            raise AssertionError("series twice: %r" % line)
        out[key] = float(m.group(3))
    return out


class Metrics:
    """One scrape of /metrics, parsed."""

    def __init__(self, text):
        self.text = text
        self.samples = parse(text)

    def get(self, name, listener=None, **labels):
        want = dict(labels)
        if listener is not None:
            want["listener"] = listener
        key = (name, frozenset(want.items()))
        if key not in self.samples:
            raise KeyError("no sample %s%r in:\n%s" % (name, want, self.text[:3000]))
        return self.samples[key]

    def listeners(self):
        return sorted({dict(k[1])["listener"] for k in self.samples
                       if k[0] == "muxd_connections_accepted_total"})

    def counters(self, listener):
        """Every counter of one listener, as a dict (what the tests compare)."""
        c = {"accepted": self.get("muxd_connections_accepted_total", listener),
             "clients": self.get("muxd_clients", listener),
             "messages": self.get("muxd_messages_total", listener),
             "received": self.get("muxd_received_bytes_total", listener),
             "sent": self.get("muxd_sent_bytes_total", listener),
             "queued": self.get("muxd_queued_bytes", listener)}
        for r in REFUSED:
            c["refused_" + r] = self.get("muxd_connections_refused_total", listener, reason=r)
        for r in CLOSED:
            c["closed_" + r] = self.get("muxd_connections_closed_total", listener, reason=r)
        for r in ("max_connections", "descriptors"):
            c["paused_" + r] = self.get("muxd_accept_pauses_total", listener, reason=r)
        return {k: int(v) for k, v in c.items()}

    def histogram(self, name, listener):
        """([(le, cumulative count)], sum, count)"""
        buckets = sorted(((dict(k[1])["le"], v) for k, v in self.samples.items()
                          if k[0] == name + "_bucket" and dict(k[1])["listener"] == listener),
                         key=lambda b: float(b[0]))
        return (buckets, self.get(name + "_sum", listener), self.get(name + "_count", listener))


def expected(**over):
    c = {"accepted": 0, "clients": 0, "messages": 0, "received": 0, "sent": 0, "queued": 0}
    for r in REFUSED:
        c["refused_" + r] = 0
    for r in CLOSED:
        c["closed_" + r] = 0
    c["paused_max_connections"] = c["paused_descriptors"] = 0
    for k, v in over.items():
        assert k in c, k
        c[k] = v
    return c


def http_get(port, path="/metrics", method="GET", host="127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=mt.scaled(5))
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def raw_request(port, data, host="127.0.0.1", source=None, timeout=5.0):
    """Send data, read until the server closes; returns what came back."""
    s = socket.socket()
    try:
        if source:
            s.bind((source, 0))
        s.settimeout(mt.scaled(timeout))
        s.connect((host, port))
        if data:
            s.sendall(data)
        return mt.recv_all(s, timeout=timeout, allow_reset=True)
    finally:
        s.close()


def client_from(port, source, greeting=DEFAULT_GREETING):
    """A client bound to source (127.0.0.x), greeted."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(mt.scaled(5))
    s.connect(("127.0.0.1", port))
    if greeting:
        assert mt.recv_exact(s, len(greeting)) == greeting
    return s


class Flood:
    """A thread that sends `lines` lines of 1 KiB on sock without reading any
    reply: muxd queues replies, throttles the client, and the send blocks
    until the test reads them (8 MiB: more than any kernel buffers hold)."""

    def __init__(self, sock, lines=8192):
        self.sock, self.lines, self.line = sock, lines, b"f" * 1023 + b"\n"
        self.error = None
        self.progress = time.monotonic()        # when a send last returned
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        # the test reads from the same socket meanwhile and sets its timeout:
        # whatever mode the socket is in, a send that cannot go is retried
        data = memoryview(self.line * self.lines)
        deadline = time.monotonic() + mt.scaled(120)
        while data and time.monotonic() < deadline:
            try:
                data = data[self.sock.send(data):]
                self.progress = time.monotonic()
            except (BlockingIOError, socket.timeout, InterruptedError):
                select.select([], [self.sock], [], 0.1)
            except OSError as e:
                self.error = e
                return
        if data:
            self.error = AssertionError("%d bytes never sent" % len(data))

    def stalled(self, seconds):
        """Has everything gone, or no send for `seconds`? Then every buffer
        on the way is full or muxd has it all: more replies than the kernel
        holds for a client that reads nothing, so muxd keeps them queued."""
        return time.monotonic() - self.progress >= seconds or (not self.thread.is_alive() and self.error is None)

    def join(self, test, ok_if_broken=False):
        self.thread.join(mt.scaled(60))
        test.assertFalse(self.thread.is_alive(), "the sender still blocked")
        if not ok_if_broken:
            test.assertIsNone(self.error)


class StatsHelpers:

    def start_metrics(self, **over):
        over.setdefault("metrics_listen", "127.0.0.1:0")
        m = self.start_muxd(**over)
        _, mo = m.wait_log(METRICS_RE)
        m.metrics_port = int(mo.group(2))
        return m

    def scrape(self, m):
        status, headers, body = http_get(m.metrics_port)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("content-type"), CONTENT_TYPE)
        self.assertEqual(int(headers.get("content-length")), len(body))
        return Metrics(body.decode("utf-8"))

    def wait_counters(self, m, listener, want, timeout=5.0):
        """Scrape until listener's counters are exactly want (closes are seen
        by muxd a moment after the client's); fail with the difference."""
        last = {}

        def same():
            last["got"] = self.scrape(m).counters(listener)
            return last["got"] == want
        try:
            self.wait_for(same, timeout, "the counters of %s" % listener)
        except AssertionError:
            self.assertEqual(last.get("got"), want, "counters of %s" % listener)
        return last["got"]

    def check_histograms(self, metrics, listener, messages, closed):
        for name, count in (("muxd_message_seconds", messages), ("muxd_connection_seconds", closed)):
            buckets, total, n = metrics.histogram(name, listener)
            self.assertEqual(buckets[-1][0], "+Inf")
            self.assertEqual(n, count, name)
            self.assertEqual(buckets[-1][1], count, name)
            cums = [v for _, v in buckets]
            self.assertEqual(cums, sorted(cums), "%s buckets must be cumulative" % name)
            self.assertGreaterEqual(total, 0)

    def check_format(self, text, require=False):
        """promtool check metrics, and prometheus_client's parser, where they
        are installed (require: skip the test if promtool is not)."""
        promtool = shutil.which("promtool")
        if not promtool and require:
            self.skipTest("promtool not found (Debian package prometheus; scripts/install-deps "
                          "installs it): the output was not checked by Prometheus's own linter")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s" % p.stdout.decode())
        families = None
        if text_string_to_metric_families:
            families = {f.name: f for f in text_string_to_metric_families(text)}
        elif os.access("/usr/bin/python3", os.X_OK):
            # the Debian package's module, for a Python of another prefix
            prog = ("import sys\nfrom prometheus_client.parser import text_string_to_metric_families as t\n"
                    "for f in t(sys.stdin.read()): print(f.name, f.type, len(f.samples))\n")
            p = subprocess.run(["/usr/bin/python3", "-c", prog], input=text.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            if b"No module named" not in p.stderr:
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                families = {l.split()[0]: l.split()[1] for l in p.stdout.decode().splitlines()}
        if families is not None:
            for name in ("muxd_connections_accepted", "muxd_connections_refused",
                         "muxd_connections_closed", "muxd_messages", "muxd_received_bytes",
                         "muxd_sent_bytes", "muxd_message_seconds", "muxd_connection_seconds",
                         "muxd_clients"):
                self.assertIn(name, families)


class CountersMixin(StatsHelpers):

    def drive_known_traffic(self, workers=None):
        """Two listeners; every counter compared with what was sent."""
        over = {"max_message": 64, "listen": [
            {"port": 0, "address": "127.0.0.1", "name": "alpha", "max_per_source": 3},
            {"port": 0, "address": "127.0.0.1", "allow": ["127.0.0.1/32"]}]}
        if workers:
            over["workers"] = workers
        m = self.start_metrics(**over)
        p_a, p_b = m.ports
        beta = "127.0.0.1:%d" % p_b
        self.assertEqual(self.scrape(m).listeners(), sorted(["alpha", beta]))
        a = {"received": 0, "sent": 0, "messages": 0}
        b = dict(a)

        def talk(sock, counts, lines):
            for line in lines:
                sock.sendall(line)
                reply = mt.echo_reply(line)
                self.assertEqual(mt.recv_exact(sock, len(reply)), reply)
                counts["received"] += len(line)
                counts["sent"] += len(reply)
                counts["messages"] += 1

        # alpha: three clients admitted, the fourth from the same address refused
        c1, c2, c3 = (self.client(m, port=p_a) for _ in range(3))
        a["sent"] += 3 * len(DEFAULT_GREETING)
        self.assertEqual(mt.recv_all(self.connect(p_a), allow_reset=True), b"")
        talk(c1, a, [b"one\n", b"two\r\n"])
        # several messages in one write: one read batch
        batch = b"x1\ny22\nz333\n"
        c3.sendall(batch)
        replies = b"".join(mt.echo_reply(l + b"\n") for l in batch.split(b"\n")[:-1])
        self.assertEqual(mt.recv_exact(c3, len(replies)), replies)
        a["received"] += len(batch)
        a["sent"] += len(replies)
        a["messages"] += 3
        c1.close()                                  # closed by the client
        too_long = b"y" * 65                        # max_message is 64
        c2.sendall(too_long)
        self.assertEqual(mt.recv_all(c2), TOO_LONG)   # answered, then closed
        a["received"] += len(too_long)
        a["sent"] += len(TOO_LONG)
        # the other listener: refused by its allow list, then one client
        self.assertEqual(raw_request(p_b, b"", source="127.0.0.2"), b"")
        d = client_from(p_b, "127.0.0.1")
        self.addCleanup(d.close)
        b["sent"] += len(DEFAULT_GREETING)
        talk(d, b, [b"beta\n"])
        d.shutdown(socket.SHUT_WR)                  # the client's EOF
        mt.expect_eof(d)

        want_a = expected(accepted=3, clients=1, refused_max_per_source=1, closed_client=1,
                          closed_max_message=1, **a)
        want_b = expected(accepted=1, clients=0, refused_access=1, closed_client=1, **b)
        self.wait_counters(m, "alpha", want_a)
        self.wait_counters(m, beta, want_b)
        metrics = self.scrape(m)
        self.check_histograms(metrics, "alpha", a["messages"], 2)
        self.check_histograms(metrics, beta, b["messages"], 1)
        self.assertEqual(metrics.get("muxd_workers"), workers or int(mt.WORKERS or 1))
        self.check_format(metrics.text)
        c3.close()
        self.wait_counters(m, "alpha", dict(want_a, clients=0, closed_client=2))

    def test_known_traffic(self):
        self.drive_known_traffic()

    def test_known_traffic_two_workers(self):
        self.drive_known_traffic(workers=2)

    def test_format_checked_by_promtool(self):
        # every family with samples, names with quotes and backslashes
        m = self.start_metrics(timeout=1, listen=[
            {"port": 0, "address": "127.0.0.1", "name": 'q"uo\\te', "max_per_source": 1},
            {"port": 0, "address": "127.0.0.1", "mode": "oneshot"}])
        p1, p2 = m.ports
        c = self.client(m, port=p1)
        self.roundtrip(c, b"hello\n")
        self.assertEqual(mt.recv_all(self.connect(p1), allow_reset=True), b"")
        mt.expect_eof(c, timeout=5)                 # idle
        o = self.client(m, port=p2)
        o.sendall(b"one\n")
        mt.expect_eof(o)
        self.wait_for(lambda: self.scrape(m).counters('q"uo\\te')["closed_idle"] == 1, 5, "the idle close")
        text = self.scrape(m).text
        self.assertIn('listener="q\\"uo\\\\te"', text)
        self.check_format(text, require=True)

    def test_idle_timeout(self):
        m = self.start_metrics(timeout=1)
        label = "127.0.0.1:%d" % m.port
        s = self.client(m)
        mt.expect_eof(s, timeout=5)
        self.wait_counters(m, label, expected(accepted=1, closed_idle=1, sent=len(DEFAULT_GREETING)))
        buckets, total, n = self.scrape(m).histogram("muxd_connection_seconds", label)
        cum = dict(buckets)
        self.assertEqual(cum["0.1"], 0)             # it lived a second
        self.assertEqual(cum["10"], 1)
        self.assertGreaterEqual(total, 1.0)

    def test_oneshot(self):
        m = self.start_metrics(listen=[{"port": 0, "address": "127.0.0.1", "mode": "oneshot",
                                        "greeting": ""}])
        s = self.connect(m.port)
        s.sendall(b"only\n")
        mt.expect_eof(s)
        self.wait_counters(m, "127.0.0.1:%d" % m.port,
                           expected(accepted=1, messages=1, received=5, closed_oneshot=1))

    def test_queued_bytes(self):
        # a client that does not read: its replies wait in muxd, and the gauge
        # says how much; once it reads them all, 0 again
        m = self.start_metrics(max_message=4096)
        label = "127.0.0.1:%d" % m.port
        s = self.client(m, rcvbuf=4096)
        flood = Flood(s)
        self.wait_for(lambda: self.scrape(m).counters(label)["queued"] > 0, 30,
                      "reply bytes queued for a client that does not read")
        reply = mt.echo_reply(flood.line)
        mt.recv_exact(s, flood.lines * len(reply), timeout=60)
        flood.join(self)
        self.wait_counters(m, label, expected(accepted=1, clients=1, messages=flood.lines,
                                              received=flood.lines * len(flood.line),
                                              sent=len(DEFAULT_GREETING) + flood.lines * len(reply)))

    def test_accept_pauses_not_refusals(self):
        # max_connections: muxd stops accepting (the client waits in the
        # backlog); that is a pause, not a refusal
        m = self.start_metrics(max_connections=2)
        label = "127.0.0.1:%d" % m.port
        c1, c2 = self.client(m), self.client(m)
        waiting = self.connect(m.port)
        mt.expect_silence(waiting, 0.3)
        self.wait_for(lambda: self.scrape(m).counters(label)["paused_max_connections"] >= 1, 5,
                      "an accept pause counted")
        got = self.scrape(m).counters(label)
        self.assertEqual(got["refused_max_connections"], 0)
        self.assertEqual(got["accepted"], 2)
        c1.close()
        self.assertRecv(waiting, DEFAULT_GREETING)

        def admitted():
            got = self.scrape(m).counters(label)
            return (got["accepted"], got["closed_client"], got["refused_max_connections"],
                    got["sent"]) == (3, 1, 0, 3 * len(DEFAULT_GREETING))
        self.wait_for(admitted, 5, "the waiting client admitted, nobody refused")

    def test_counts_survive_a_reload(self):
        # a listener the reload keeps keeps its counts (under its new name);
        # one it removes leaves /metrics; the totals never go back
        m = self.start_metrics(listen=[{"port": 0, "address": "127.0.0.1", "name": "old"},
                                       {"port": 0, "address": "127.0.0.1", "name": "gone"}])
        p1, p2 = m.ports
        kept = self.client(m, port=p1)
        self.roundtrip(kept, b"before\n")
        self.client(m, port=p2).close()
        self.wait_counters(m, "gone", expected(accepted=1, closed_client=1, sent=len(DEFAULT_GREETING)))
        since = m.log_count()
        self.write_config(mt.base_settings(self.backend, metrics_listen="127.0.0.1:%d" % m.metrics_port,
                                           listen=[{"port": p1, "address": "127.0.0.1", "name": "new"}]))
        m.signal(signal.SIGHUP)
        m.wait_log(r"configuration reloaded", since=since)
        metrics = self.scrape(m)
        self.assertEqual(metrics.listeners(), ["new"])
        self.assertEqual(metrics.counters("new")["messages"], 1)
        self.roundtrip(kept, b"after\n")
        self.assertEqual(self.scrape(m).counters("new")["messages"], 2)


class EndpointMixin(StatsHelpers):

    def test_bad_requests(self):
        m = self.start_metrics()
        port = m.metrics_port
        status, headers, body = http_get(port, "/nope")
        self.assertEqual(status, 404)
        status, headers, body = http_get(port, "/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        status, headers, body = http_get(port, "/metrics", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertGreater(int(headers["content-length"]), 1000)
        self.assertEqual(http_get(port, "/metrics?x=1")[0], 200)
        for garbage in (b"hello\r\n\r\n", b"GET /metrics\r\n\r\n", b"GET /metrics HTTP/2.0\r\n\r\n",
                        b"GET  /metrics HTTP/1.1\r\n\r\n", b"\x00\x01\x02\n\n"):
            with self.subTest(request=garbage):
                self.assertTrue(raw_request(port, garbage).startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        big = b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 10000 + b"\r\n\r\n"
        self.assertTrue(raw_request(port, big).startswith(b"HTTP/1.1 431 "))
        # HTTP/1.0, with headers, answered and closed
        reply = raw_request(port, b"GET /metrics HTTP/1.0\r\nHost: x\r\nAccept: */*\r\n\r\n")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply[:100])
        self.assertIn(b"\r\nConnection: close\r\n", reply)
        self.assertIn(b"muxd_connections_accepted_total{", reply)
        self.assertAlive(m)
        self.roundtrip(self.client(m), b"still serving\n")

    def test_slow_client_is_closed_and_blocks_nothing(self):
        m = self.start_metrics()
        stuck = self.connect(m.metrics_port)               # says nothing
        half = self.connect(m.metrics_port)
        half.sendall(b"GET /metrics HTTP/1.1\r\n")          # never ends its request
        t0 = time.monotonic()
        self.scrape(m)                                      # others are served meanwhile
        self.roundtrip(self.client(m), b"served\n")
        mt.expect_eof(stuck, timeout=15, allow_reset=True)
        mt.expect_eof(half, timeout=15, allow_reset=True)
        self.assertGreater(time.monotonic() - t0, 3.0, "closed before its time")

    def test_access_list(self):
        # the global allow/deny applies to the endpoint: refused without an answer
        m = self.start_metrics(allow=["127.0.0.0/8"], deny=["127.0.0.3/32"])
        port = m.metrics_port
        self.assertEqual(raw_request(port, b"GET /metrics HTTP/1.1\r\n\r\n", source="127.0.0.3"), b"")
        reply = raw_request(port, b"GET /metrics HTTP/1.1\r\n\r\n", source="127.0.0.2")
        self.assertTrue(reply.startswith(b"HTTP/1.1 200 OK\r\n"))
        m.wait_log(r"refused 127\.0\.0\.3:\d+ on the metrics endpoint")
        m2 = self.start_metrics(allow=["10.0.0.0/8"], name="other.conf")
        self.assertEqual(raw_request(m2.metrics_port, b"GET /metrics HTTP/1.1\r\n\r\n"), b"")

    def test_reload_rebinds_or_fails_whole(self):
        m = self.start_metrics()
        old = m.metrics_port
        held = socket.socket()
        self.addCleanup(held.close)
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        busy = held.getsockname()[1]
        # a port in use: the reload fails with FILE:LINE, nothing changes
        settings = mt.base_settings(self.backend, metrics_listen="127.0.0.1:%d" % busy, suffix="2")
        text = mt.render_config(settings)
        line = [i + 1 for i, l in enumerate(text.splitlines()) if l.startswith("metrics_listen")][0]
        self.write_config(text=text)
        since = m.log_count()
        m.signal(signal.SIGHUP)
        m.wait_log(r"^muxd: err: reload failed: %s:%d: metrics_listen: cannot listen on "
                   r"127\.0\.0\.1:%d: Address already in use; keeping the running configuration$"
                   % (re.escape(m.config_path), line, busy), since=since)
        self.assertEqual(self.scrape(m).get("muxd_last_reload_successful"), 0)
        self.roundtrip(self.client(m), b"old\n")         # the old suffix: nothing changed
        # a free port: rebound, the old one closed
        held.close()
        self.write_config(mt.base_settings(self.backend, metrics_listen="127.0.0.1:%d" % busy))
        since = m.log_count()
        m.signal(signal.SIGHUP)
        m.wait_log(r"configuration reloaded", since=since)
        m.wait_log(r"serving metrics on http://127\.0\.0\.1:%d/metrics" % busy, since=since)
        m.metrics_port = busy
        self.assertEqual(self.scrape(m).get("muxd_last_reload_successful"), 1)
        with self.assertRaises(ConnectionRefusedError):
            http_get(old)
        # off
        self.write_config(mt.base_settings(self.backend))
        since = m.log_count()
        m.signal(signal.SIGHUP)
        m.wait_log(r"configuration reloaded", since=since)
        with self.assertRaises(ConnectionRefusedError):
            http_get(busy)

    def test_metrics_while_draining(self):
        # On stop, muxd drains: the endpoint still answers, says so, and
        # counts the clients closed on stop.
        m = self.start_metrics(shutdown_timeout=30)
        label = "127.0.0.1:%d" % m.port
        idle = self.client(m)
        stuck = self.client(m, rcvbuf=4096)     # reads nothing: its replies keep muxd draining
        flood = Flood(stuck)
        # queued > 0 alone can be a moment's (a short send the kernel takes
        # whole a moment later): the client is stuck once muxd stops reading it
        self.wait_for(lambda: flood.stalled(mt.scaled(0.5)) and self.scrape(m).counters(label)["queued"] > 0,
                      30, "muxd no longer reading a client that reads nothing, replies queued")
        m.signal(signal.SIGTERM)
        mt.expect_eof(idle)                     # nothing queued for it: closed at once
        self.wait_for(lambda: self.scrape(m).counters(label)["closed_shutdown"] == 1, 5,
                      "the idle client counted as closed on stop")
        metrics = self.scrape(m)
        self.assertEqual(metrics.get("muxd_stopping"), 1)
        got = metrics.counters(label)
        # the other still open: its replies queued, or written and muxd
        # waiting for the client's close (a lingering close)
        self.assertEqual(got["clients"], 1)
        self.assertEqual(got["accepted"], 2)
        self.check_format(metrics.text)
        stuck.shutdown(socket.SHUT_RDWR)        # stops the sender
        flood.join(self, ok_if_broken=True)
        stuck.close()                           # unread replies: a reset, and muxd may finish
        self.assertEqual(m.wait_exit(15), 0)


mt.for_each_backend(CountersMixin)
mt.for_each_backend(EndpointMixin)

if __name__ == "__main__":
    mt.main()
