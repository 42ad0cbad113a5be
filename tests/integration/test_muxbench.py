# SPDX-License-Identifier: MIT
"""muxbench, the load generator: against the real muxd on every backend (all
replies right, JSON output, pipelining, idle mode, connection mode in echo
and oneshot, the server's CPU and RSS), and against small servers made here
that answer wrongly, close, or speak another protocol. Runs are short (a fraction of a second); every run has a
deadline. Environment: MUXBENCH (required), MUXD (through muxdtest)."""

import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import muxdtest as mt

MUXBENCH = os.environ.get("MUXBENCH", "")
RUN_TIMEOUT = 60


def muxbench(*args, timeout=RUN_TIMEOUT):
    if not MUXBENCH or not os.access(MUXBENCH, os.X_OK):
        raise AssertionError("MUXBENCH is not set to the built muxbench")
    return subprocess.run([MUXBENCH] + [str(a) for a in args], capture_output=True,
                          timeout=mt.scaled(timeout), env=mt.clean_env())


def run_json(testcase, *args, status=0):
    p = muxbench("--json", "-q", *args)
    testcase.assertEqual(p.returncode, status, "muxbench %s: %r %r" % (args, p.stdout, p.stderr))
    lines = p.stdout.decode().splitlines()
    testcase.assertEqual(len(lines), 1, p.stdout)
    r = json.loads(lines[0])
    r["_stderr"] = p.stderr.decode()    # for failure messages
    return r


class LineServer:
    """A tiny threaded line server: greets, then answers each line through
    answer(n, line) -> bytes or None (None: close the connection)."""

    def __init__(self, answer, greeting=b"hello...\n"):
        self.answer = answer
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.lock = threading.Lock()
        self.conns = []
        self.peers = set()      # client addresses seen
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.peers.add(peer[0])
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.greeting:
                c.sendall(self.greeting)
            buf = b""
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self.lock:
                        self.count += 1
                        n = self.count
                    out = self.answer(n, line + b"\n")
                    if out is None:
                        c.close()
                        return
                    c.sendall(out)
        except OSError:
            return

    def close(self):
        # shutdown() first: it wakes the threads blocked in accept() and
        # recv() on these sockets, which close() alone would leave blocked
        # on sockets no descriptor names any more (still listening, still
        # connected) while later tests run.
        for s in [self.sock] + self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def echo(n, line):
    return line[:-1] + b"hi...\n"


class MuxdBench:
    """Against the real muxd, on each backend."""

    def test_round_trips_all_right(self):
        m = self.start_muxd(max_connections=200)
        r = run_json(self, "-c", 20, "-d", 0.5, "-w", 0.2, "--pid", m.pid, "127.0.0.1:%d" % m.port)
        self.assertEqual((r["mode"], r["connections"], r["connected"]), ("run", 20, 20))
        self.assertEqual((r["wrong_replies"], r["connect_errors"], r["disconnects"]), (0, 0, 0))
        self.assertGreater(r["requests"], 0)
        self.assertGreater(r["rps"], 0)
        self.assertEqual(r["payload"], 16)
        self.assertLessEqual(r["lat_p50_us"], r["lat_p99_us"])
        self.assertLessEqual(r["lat_p99_us"], r["lat_p999_us"])
        self.assertLessEqual(r["lat_p999_us"], r["lat_max_us"])
        self.assertGreater(r["server_cpu_us_per_req"], 0)
        self.assertGreaterEqual(r["server_sleeps_per_req"], 0)
        self.assertGreater(r["server_rss_kib"], 0)
        self.assertAlive(m)

    def test_pipelined_long_lines(self):
        m = self.start_muxd(max_connections=200)
        r = run_json(self, "-c", 4, "-P", 16, "-s", 1024, "-d", 0.5, "-w", 0, "127.0.0.1:%d" % m.port)
        self.assertEqual((r["wrong_replies"], r["disconnects"], r["pipeline"], r["payload"]), (0, 0, 16, 1024))
        self.assertGreater(r["requests"], 16)
        self.assertIsNone(r["server_cpu_us_per_req"])
        self.assertIsNone(r["server_sleeps_per_req"])

    def test_wrong_suffix_is_counted(self):
        m = self.start_muxd(max_connections=200)
        r = run_json(self, "-c", 2, "-d", 0.3, "-w", 0, "--suffix", "ho...", "127.0.0.1:%d" % m.port, status=1)
        self.assertGreater(r["wrong_replies"], 0)
        self.assertEqual(r["requests"], 0)

    def test_idle_mode_holds_connections(self):
        m = self.start_muxd(max_connections=300)
        r = run_json(self, "-i", "-c", 200, "-d", 0.5, "--pid", m.pid, "127.0.0.1:%d" % m.port)
        self.assertEqual((r["mode"], r["connected"], r["connect_errors"]), ("idle", 200, 0))
        self.assertEqual(r["requests"], 0)

    def assertChurnClean(self, r):
        """A connection-mode run with exchanges completed and nothing wrong."""
        self.assertEqual(r["mode"], "churn")
        self.assertGreater(r["completed"], 0, r)
        self.assertGreater(r["cps"], 0)
        # duration_s is rounded to the millisecond
        self.assertAlmostEqual(r["cps"], r["completed"] / r["duration_s"], delta=1 + r["cps"] / 500)
        self.assertEqual((r["connect_errors"], r["exchange_errors"], r["early_closes"],
                          r["wrong_replies"], r["wrong_greetings"]), (0, 0, 0, 0, 0), r)
        self.assertEqual((r["connect_errors_by_errno"], r["exchange_errors_by_errno"]), ({}, {}))
        self.assertGreater(r["lat_p50_us"], 0)
        self.assertLessEqual(r["lat_p50_us"], r["lat_p99_us"])
        self.assertLessEqual(r["lat_p99_us"], r["lat_p999_us"])
        self.assertLessEqual(r["lat_p999_us"], r["lat_max_us"])

    def test_connect_rate_echo(self):
        m = self.start_muxd(max_connections=200)
        r = run_json(self, "--connect-rate", "-c", 10, "-d", 1, "-w", 0.2, "--pid", m.pid,
                     "127.0.0.1:%d" % m.port)
        self.assertChurnClean(r)
        self.assertEqual((r["connections"], r["round_trips"], r["oneshot"], r["rst"], r["payload"]),
                         (10, 1, False, False, 16))
        self.assertEqual(r["source_addrs"], "127.0.0.2-127.0.0.254")
        # a reply and the end of its exchange are the same moment
        self.assertEqual(r["requests"], r["completed"])
        self.assertGreater(r["server_cpu_us_per_conn"], 0)
        self.assertGreaterEqual(r["server_sleeps_per_conn"], 0)
        self.assertGreater(r["server_rss_kib"], 0)
        self.assertNotIn("server_cpu_us_per_req", r)
        self.assertAlive(m)

    def test_connect_rate_oneshot(self):
        # every oneshot message is logged at info: a short run
        m = self.start_muxd(max_connections=200, mode="oneshot")
        r = run_json(self, "--connect-rate", "--oneshot", "-c", 4, "-d", 0.5, "-w", 0.1,
                     "--pid", m.pid, "127.0.0.1:%d" % m.port)
        self.assertChurnClean(r)
        self.assertEqual((r["oneshot"], r["requests"]), (True, 0))
        self.assertGreater(r["server_cpu_us_per_conn"], 0)
        # each exchange was one message that muxd read, logged, and closed
        self.wait_for(lambda: sum("message from 127.0.0." in line for line in m.log_lines())
                      >= r["completed"], 10, "a logged message per exchange")
        self.assertAlive(m)

    def test_connect_rate_round_trips_and_rst(self):
        m = self.start_muxd(max_connections=200)
        r = run_json(self, "--connect-rate", "--round-trips", 3, "--rst", "-c", 5, "-d", 0.5, "-w", 0.1,
                     "127.0.0.1:%d" % m.port)
        self.assertChurnClean(r)
        self.assertEqual((r["round_trips"], r["rst"]), (3, True))
        # exchanges astride the window's edges: at most 2 round trips each
        self.assertAlmostEqual(r["requests"], 3 * r["completed"], delta=2 * 2 * 5)
        r = run_json(self, "--connect-rate", "--round-trips", 0, "-c", 5, "-d", 0.3, "-w", 0,
                     "127.0.0.1:%d" % m.port)
        self.assertChurnClean(r)
        self.assertEqual(r["requests"], 0)
        self.assertAlive(m)

    def test_connect_rate_ipv6(self):
        if not mt.have_ipv6():
            self.skipTest("no IPv6 loopback")
        m = self.start_muxd(max_connections=200, listen=[{"port": 0, "address": "::1"}])
        r = run_json(self, "--connect-rate", "-c", 4, "-d", 0.3, "-w", 0, "[::1]:%d" % m.port)
        self.assertChurnClean(r)
        self.assertEqual(r["source_addrs"], "none")     # ::1 has no sibling to spread over

    def test_connect_rate_proxy(self):
        # behind a "load balancer": each connection starts with a PROXY header
        # naming a made-up client (oneshot: muxd logs it)
        m = self.start_muxd(max_connections=200, mode="oneshot", listen=[
            {"port": 0, "address": "127.0.0.1", "proxy_protocol": "any", "proxy_from": ["127.0.0.0/8"]}])
        for v in ("v1", "v2"):
            since = m.log_count()
            r = run_json(self, "--connect-rate", "--oneshot", "--proxy", v, "-c", 4, "-d", 0.3, "-w", 0,
                         "127.0.0.1:%d" % m.port)
            self.assertChurnClean(r)
            self.assertGreater(r["completed"], 0)
            m.wait_log(r'^muxd: info: message from 198\.1[89]\.\d+\.\d+:\d+ via 127\.0\.0\.\d+:\d+: ',
                       since=since)
        self.assertAlive(m)


mt.for_each_backend(MuxdBench)


class OtherServers(unittest.TestCase):

    def server(self, answer, greeting=b"hello...\n"):
        s = LineServer(answer, greeting)
        self.addCleanup(s.close)
        return s

    def test_every_wrong_reply_counted_and_skipped(self):
        # every 5th reply is wrong: each one is counted, the rest still match
        s = self.server(lambda n, line: b"nope\n" if n % 5 == 0 else echo(n, line))
        r = run_json(self, "-c", 1, "-d", 0.3, "-w", 0, "127.0.0.1:%d" % s.port, status=1)
        self.assertGreater(r["requests"], 0)
        total = r["requests"] + r["wrong_replies"]
        self.assertAlmostEqual(r["wrong_replies"], total / 5, delta=3)
        self.assertEqual(r["disconnects"], 0)

    def test_reply_to_the_wrong_request(self):
        # replies must follow the requests: an answer to an old line is wrong
        # (the first one answers a line of the same length never sent, so
        # that a single round trip in the window is enough on a busy machine)
        prev = {}

        def answer(n, line):
            old = prev.get("line", b"x" * (len(line) - 1) + b"\n")
            prev["line"] = line
            return echo(n, old)
        s = self.server(answer)
        r = run_json(self, "-c", 1, "-d", 0.5, "-w", 0, "127.0.0.1:%d" % s.port, status=1)
        self.assertGreater(r["wrong_replies"], 0, r)
        self.assertEqual(r["requests"], 0, r)       # not one right

    def test_server_closing_is_counted(self):
        s = self.server(lambda n, line: None if n == 10 else echo(n, line))
        r = run_json(self, "-c", 3, "-d", 0.3, "-w", 0, "127.0.0.1:%d" % s.port, status=1)
        self.assertEqual(r["disconnects"], 1)
        self.assertEqual(r["wrong_replies"], 0)

    def test_wrong_greeting(self):
        s = self.server(echo, greeting=b"welcome\n")
        r = run_json(self, "-c", 2, "-d", 0.2, "127.0.0.1:%d" % s.port, status=1)
        self.assertEqual((r["wrong_greetings"], r["connect_errors"], r["connected"]), (2, 2, 0), r)

    def test_request_and_reply_templates(self):
        # a redis-like server: PING\r\n -> +PONG\r\n, no greeting
        s = self.server(lambda n, line: b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR\r\n", greeting=b"")
        r = run_json(self, "-c", 3, "-d", 0.3, "-w", 0, "--no-greeting", "--request", "PING\\r\\n",
                     "--reply", "+PONG\\r\\n", "127.0.0.1:%d" % s.port)
        self.assertEqual((r["wrong_replies"], r["payload"]), (0, 6))
        self.assertGreater(r["requests"], 0)

    def test_request_echoed_with_suffix_before_crlf(self):
        s = self.server(lambda n, line: line[:-2] + b"!!\r\n", greeting=b"")
        r = run_json(self, "-c", 1, "-d", 0.2, "-w", 0, "--no-greeting", "--suffix", "!!",
                     "--request", "abc\\r\\n", "127.0.0.1:%d" % s.port)
        self.assertEqual(r["wrong_replies"], 0)
        self.assertGreater(r["requests"], 0)

    def test_idle_without_greeting_makes_one_round_trip(self):
        s = self.server(echo, greeting=b"")
        r = run_json(self, "-i", "-c", 5, "-d", 0.2, "--no-greeting", "127.0.0.1:%d" % s.port)
        self.assertEqual(r["connected"], 5)
        self.assertEqual(s.count, 5)

    def test_nothing_listening(self):
        port = mt.free_port()
        r = run_json(self, "-c", 3, "-d", 0.2, "127.0.0.1:%d" % port, status=1)
        self.assertEqual((r["connect_errors"], r["connected"], r["requests"]), (3, 0, 0))

    def test_connect_rate_refused_by_errno(self):
        port = mt.free_port()
        r = run_json(self, "--connect-rate", "-c", 2, "-d", 0.3, "-w", 0, "127.0.0.1:%d" % port, status=1)
        self.assertEqual((r["mode"], r["completed"]), ("churn", 0))
        self.assertGreater(r["connect_errors"], 0)
        self.assertEqual(r["connect_errors_by_errno"], {"ECONNREFUSED": r["connect_errors"]})
        # a failed slot waits 1 ms before it tries again: no busy loop
        self.assertLess(r["connect_errors"], 2 * 0.3 * 1000 * 1.5)
        self.assertEqual((r["exchange_errors"], r["early_closes"]), (0, 0))

    def test_connect_rate_source_addresses(self):
        s = self.server(echo)
        r = run_json(self, "--connect-rate", "--source-addrs", "127.0.0.5-127.0.0.7", "-c", 1,
                     "-d", 0.3, "-w", 0, "127.0.0.1:%d" % s.port)
        self.assertEqual(r["source_addrs"], "127.0.0.5-127.0.0.7")
        self.assertGreaterEqual(r["completed"], 3)
        self.assertEqual(s.peers, {"127.0.0.5", "127.0.0.6", "127.0.0.7"})
        s = self.server(echo)
        r = run_json(self, "--connect-rate", "--source-addrs", "none", "-c", 1,
                     "-d", 0.2, "-w", 0, "127.0.0.1:%d" % s.port)
        self.assertEqual((r["source_addrs"], s.peers), ("none", {"127.0.0.1"}))

    def test_connect_rate_server_closing_early(self):
        # closes instead of answering: counted as early closes, not errors by errno
        s = self.server(lambda n, line: None)
        r = run_json(self, "--connect-rate", "-c", 2, "-d", 0.3, "-w", 0, "127.0.0.1:%d" % s.port, status=1)
        self.assertGreater(r["early_closes"], 0)
        self.assertEqual((r["completed"], r["connect_errors"], r["wrong_replies"]), (0, 0, 0))

    def test_connect_rate_wrong_greeting_and_reply(self):
        s = self.server(echo, greeting=b"welcome\n")
        r = run_json(self, "--connect-rate", "-c", 1, "-d", 0.2, "-w", 0, "127.0.0.1:%d" % s.port, status=1)
        self.assertGreater(r["wrong_greetings"], 0)
        self.assertEqual(r["wrong_greetings"], r["wrong_replies"])
        # oneshot expects the close, not a reply
        s = self.server(echo)
        r = run_json(self, "--connect-rate", "--oneshot", "-c", 1, "-d", 0.2, "-w", 0,
                     "127.0.0.1:%d" % s.port, status=1)
        self.assertGreater(r["wrong_replies"], 0)
        self.assertEqual((r["wrong_greetings"], r["completed"]), (0, 0))

    def test_connect_rate_redis_like(self):
        # connect, PING, close: no greeting
        s = self.server(lambda n, line: b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR\r\n", greeting=b"")
        r = run_json(self, "--connect-rate", "-c", 2, "-d", 0.3, "-w", 0, "--no-greeting",
                     "--request", "PING\\r\\n", "--reply", "+PONG\\r\\n", "127.0.0.1:%d" % s.port)
        self.assertEqual((r["wrong_replies"], r["early_closes"], r["payload"]), (0, 0, 6))
        self.assertGreater(r["completed"], 0)
        self.assertEqual(r["requests"], r["completed"])

    def test_connect_rate_text_report(self):
        s = self.server(echo)
        p = muxbench("-q", "--connect-rate", "-c", 1, "-d", 0.2, "-w", 0, "127.0.0.1:%d" % s.port)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        for word in ("1 connection slot, from 127.0.0.2-127.0.0.254",
                     "connect, greeting, 1 round trip of 16 bytes, close", "connections ",
                     "p99.9", "(whole exchange)", "0 connect errors, 0 closed early"):
            self.assertIn(word, out)
        port = mt.free_port()
        p = muxbench("-q", "--connect-rate", "-c", 1, "-d", 0.1, "-w", 0, "127.0.0.1:%d" % port)
        self.assertEqual(p.returncode, 1)
        self.assertIn("connect errors: ECONNREFUSED ", p.stdout.decode())
        self.assertIn(b"no exchange with 127.0.0.1:%d completed" % port, p.stderr)

    def test_connect_rate_usage_errors(self):
        for args, says in ((["--oneshot"], b"need --connect-rate"),
                           (["--round-trips", "2"], b"need --connect-rate"),
                           (["--source-addrs", "3"], b"need --connect-rate"),
                           (["--rst"], b"need --connect-rate"),
                           (["--proxy", "v1"], b"need --connect-rate"),
                           (["--connect-rate", "--proxy", "v3"], b"neither v1 nor v2"),
                           (["--connect-rate", "-i"], b"exclude each other"),
                           (["--connect-rate", "-P", "2"], b"no -P"),
                           (["--connect-rate", "--oneshot", "--round-trips", "1"], b"no --round-trips"),
                           (["--connect-rate", "--round-trips", "x"], b"invalid round trips"),
                           (["--connect-rate", "--source-addrs", "::1"], b"must be IPv4"),
                           (["--connect-rate", "--source-addrs", "127.0.0.9-127.0.0.3"], b"ends before"),
                           (["--connect-rate", "--source-addrs"], b"")):
            p = muxbench(*(args + ["127.0.0.1:1"]))
            self.assertEqual(p.returncode, 2, "%s: %r" % (args, p.stderr))
            self.assertIn(says, p.stderr, args)
            self.assertIn(b"Try 'muxbench --help'", p.stderr, args)

    def test_too_many_connections_for_the_descriptor_limit(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > 10000000:
            self.skipTest("no finite descriptor limit")
        p = muxbench("-c", min(hard + 1, 1000000), "127.0.0.1:1")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"descriptors", p.stderr)
        self.assertIn(b"use -c", p.stderr)

    def test_usage_errors(self):
        for args in (["-c", "0", "127.0.0.1:1"], ["-d", "x", "127.0.0.1:1"], ["-P", "0", "127.0.0.1:1"],
                     ["--bogus", "127.0.0.1:1"], ["-s", "10", "--request", "a\n", "127.0.0.1:1"],
                     ["127.0.0.1:1", "127.0.0.1:2"], [], ["-c"], ["host-without-port"]):
            p = muxbench(*args)
            self.assertEqual(p.returncode, 2, "%s: %r" % (args, p.stderr))
            self.assertIn(b"Try 'muxbench --help'", p.stderr, args)

    def test_help_and_version(self):
        p = muxbench("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"Usage: muxbench", p.stdout)
        p = muxbench("--version")
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"muxbench"))

    def test_text_report(self):
        s = self.server(echo)
        p = muxbench("-q", "-c", 2, "-d", 0.2, "-w", 0, "127.0.0.1:%d" % s.port)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        for word in ("requests", "p50", "p99", "p99.9", "0 wrong replies"):
            self.assertIn(word, out)
        self.assertEqual(p.stderr, b"")     # no progress line when stderr is no terminal



def bench_script(name, *args):
    """Run bench/NAME with args; its exit status and output."""
    return subprocess.run([os.path.join(mt.SRCDIR, "bench", name)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30)


@unittest.skipUnless(mt.SRCDIR, "MUXD_SRCDIR not set")
class BenchRunOptions(unittest.TestCase):
    """bench/run refuses bad options before it measures or needs its tools."""

    def bench_run(self, *args):
        return bench_script("run", *args)

    def test_unknown_server(self):
        p = self.bench_run("--servers", "muxd-epoll nginx")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("unknown server 'nginx' in --servers", p.stderr)
        self.assertIn("muxd-epoll-w2 floor redis", p.stderr)      # the valid ones

    def test_unknown_option_and_missing_argument(self):
        p = self.bench_run("--frobnicate")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown option '--frobnicate'", p.stderr)
        p = self.bench_run("--conns")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--conns needs a list", p.stderr)
        p = self.bench_run("--churn-slots")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--churn-slots needs a list", p.stderr)

    def test_churn_slots_must_be_positive_numbers(self):
        for value in ("50 x", "0", "-5"):
            p = self.bench_run("--churn-only", "--churn-slots", value)
            self.assertEqual(p.returncode, 1, value)
            self.assertIn("--churn-slots takes positive whole numbers", p.stderr)

    @unittest.skipUnless(shutil.which("gnuplot") and shutil.which("jq"), "--report needs gnuplot and jq")
    def test_report_of_nothing(self):
        with tempfile.TemporaryDirectory(prefix="muxdtest-") as d:
            p = self.bench_run("--report", d)
            self.assertEqual(p.returncode, 1)
            self.assertIn("holds no measurements (meta.env, raw.jsonl or churn.jsonl)", p.stderr)


@unittest.skipUnless(mt.SRCDIR, "MUXD_SRCDIR not set")
class BenchProfileOptions(unittest.TestCase):
    """bench/profile refuses bad options before it profiles or needs perf."""

    def bench_profile(self, *args):
        return bench_script("profile", *args)

    def test_unknown_option_and_missing_value(self):
        p = self.bench_profile("--frobnicate")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown option '--frobnicate'", p.stderr)
        self.assertIn("Usage: bench/profile", p.stderr)
        p = self.bench_profile("--backend")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--backend needs a value", p.stderr)

    def test_counts_must_be_positive_numbers(self):
        for opt, value in (("--conns", "many"), ("--size", "0"), ("--seconds", "-3")):
            p = self.bench_profile(opt, value)
            self.assertEqual(p.returncode, 2, (opt, value))
            self.assertIn("%s needs a positive whole number, not '%s'" % (opt, value), p.stderr)


if __name__ == "__main__":
    mt.main()
