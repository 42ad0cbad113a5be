# SPDX-License-Identifier: MIT
"""Limits: max_connections pauses and resumes accepting; descriptor
exhaustion (EMFILE) is handled the same way, without spinning the CPU."""

import re
import select
import socket
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING


class Pending:
    """Clients connected through the kernel backlog, watched for their greeting."""

    def __init__(self, test, socks):
        self.test = test
        self.buf = {s: b"" for s in socks}
        self.greeted = []

    def waiting(self):
        return [s for s in self.buf if s not in self.greeted]

    def poll(self, timeout):
        """Read whatever arrived within timeout; returns the newly greeted."""
        new = []
        socks = self.waiting()
        if not socks:
            return new
        r, _, _ = select.select(socks, [], [], timeout)
        for s in r:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                self.test.fail("a waiting client was reset instead of waiting in the backlog")
            if not data:
                self.test.fail("a waiting client got EOF (after %r) instead of waiting in "
                               "the backlog" % self.buf[s])
            self.buf[s] += data
            if not DEFAULT_GREETING.startswith(self.buf[s]):
                self.test.fail("bad greeting %r" % self.buf[s])
            if self.buf[s] == DEFAULT_GREETING:
                self.greeted.append(s)
                new.append(s)
        return new

    def settle(self, quiet=1.0, timeout=15.0):
        """Collect greetings until none arrives for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if time.monotonic() > deadline:
                self.test.fail("greetings still trickling in after %.0fs" % timeout)
            if self.poll(0.1):
                last = time.monotonic()


class MaxConnectionsMixin:

    def test_pause_and_resume(self):
        m = self.start_muxd(max_connections=5)
        served = [self.client(m) for _ in range(5)]
        for i, s in enumerate(served):
            self.roundtrip(s, b"served %d\n" % i)
        waiting = self.connect(m.port)      # completes in the kernel backlog
        mt.expect_silence(waiting, 0.5)
        # No spinning while paused.
        cpu0 = mt.cpu_seconds(m.pid)
        mt.expect_silence(waiting, 1.0)
        cpu = mt.cpu_seconds(m.pid) - cpu0
        print("\n  [%s] CPU while paused at max_connections: %.3fs over 1s"
              % (self.backend, cpu))
        self.assertLess(cpu, 0.2, "muxd spins while max_connections is reached")
        # The served ones are still served.
        for s in served:
            self.roundtrip(s, b"still\n")
        served[0].close()
        self.assertRecv(waiting, DEFAULT_GREETING, timeout=5)
        self.roundtrip(waiting, b"my turn\n")
        # Full again.
        w2 = self.connect(m.port)
        mt.expect_silence(w2, 0.5)
        served[1].shutdown(socket.SHUT_WR)   # a clean EOF frees a slot too
        mt.expect_eof(served[1])
        self.assertRecv(w2, DEFAULT_GREETING, timeout=5)
        self.roundtrip(w2, b"w2\n")

    def test_many_waiting_clients(self):
        m = self.start_muxd(max_connections=5)
        served = [self.client(m) for _ in range(5)]
        waiting = Pending(self, [self.connect(m.port) for _ in range(20)])
        waiting.settle(quiet=0.5)
        self.assertEqual(waiting.greeted, [], "more than max_connections clients served")
        # A waiting client that gives up while still in the backlog.
        quitter = self.connect(m.port)
        quitter.close()
        for s in served:
            s.close()
        total = 0
        deadline = time.monotonic() + 20
        while total < 20:
            self.assertLess(time.monotonic(), deadline,
                            "only %d of 20 waiting clients served" % total)
            for s in waiting.poll(0.2):
                total += 1
                self.roundtrip(s, b"late\n")
                s.close()
            # Never more than max_connections at once.
            self.assertLessEqual(len(waiting.greeted) - total, 5)
        self.roundtrip(self.client(m), b"fresh\n")

    def test_burst_at_the_limit(self):
        self.burst_at_the_limit(self.start_muxd(max_connections=5))

    def test_burst_at_the_limit_many_workers(self):
        # Every worker accepts on its own: the last place must go to one of
        # them only (a check, then a count later, let two take it).
        m = self.start_muxd(max_connections=5, workers=4)
        for _ in range(3):
            self.burst_at_the_limit(m)

    def burst_at_the_limit(self, m):
        # 30 clients at once with room for 5: the others wait, none is
        # served beyond the limit, and all are served in turn. On io_uring
        # the kernel accepts some before muxd can pause: muxd holds them.
        waiting = Pending(self, [self.connect(m.port) for _ in range(30)])
        waiting.settle(quiet=0.5)
        self.assertEqual(len(waiting.greeted), 5, "max_connections is 5")
        total = 0
        deadline = time.monotonic() + 20
        while total < 30:
            self.assertLess(time.monotonic(), deadline,
                            "only %d of 30 clients served" % total)
            ready = list(waiting.greeted[total:])
            for s in ready:
                self.roundtrip(s, b"burst\n")
                s.close()
            total += len(ready)
            waiting.poll(0.2)
            self.assertLessEqual(len(waiting.greeted) - total, 5)
        fresh = self.client(m)
        self.roundtrip(fresh, b"fresh\n")
        fresh.close()


class DescriptorExhaustionMixin:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(8192)

    @mt.skip_under_valgrind(
        "valgrind keeps descriptors of its own just below RLIMIT_NOFILE; a socket "
        "accept() returns among them is closed by valgrind and reported as EMFILE, "
        "so that client gets EOF instead of waiting in the backlog")
    def test_emfile(self):
        max_conn = 900 if self.backend == "select" else 1000
        m = self.start_muxd(rlimit_nofile=40, max_connections=max_conn, timeout=120)
        n = 100
        socks = [self.connect(m.port, timeout=5) for _ in range(n)]
        pending = Pending(self, socks)
        pending.settle(quiet=1.0)
        served = list(pending.greeted)
        self.assertGreater(len(served), 0, "no client served at all")
        self.assertLess(len(served), n, "all %d clients served with 40 descriptors?" % n)
        self.assertAlive(m)
        # Exhausted: no spinning, and nobody else gets in.
        cpu0 = mt.cpu_seconds(m.pid)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            self.assertEqual(pending.poll(2.0 - (time.monotonic() - t0)), [])
        cpu = mt.cpu_seconds(m.pid) - cpu0
        print("\n  [%s] EMFILE: %d of %d clients served; muxd CPU over 2s while exhausted: "
              "%.3fs" % (self.backend, len(served), n, cpu))
        self.assertLess(cpu, 0.3, "muxd spins on EMFILE")
        self.assertAlive(m)
        for i, s in enumerate(served):
            self.roundtrip(s, b"served %d\n" % i)
        for s in served:
            s.close()
        # The waiting ones get in as descriptors free up.
        done = len(served)
        deadline = time.monotonic() + 30
        while done < n:
            self.assertLess(time.monotonic(), deadline,
                            "only %d of %d clients ever served" % (done, n))
            for s in pending.poll(0.2):
                self.roundtrip(s, b"late\n")
                s.close()
                done += 1
        self.assertAlive(m)
        self.roundtrip(self.client(m), b"fresh\n")


class AccessMixin:
    """allow / deny / max_per_source (SPEC section 3): a refused client is
    closed without a greeting; everyone else is unaffected."""

    def assertRefused(self, m, host="127.0.0.1", port=None):
        s = self.connect(port if port is not None else m.port, host)
        data = mt.recv_all(s, timeout=5, allow_reset=True)
        self.assertEqual(data, b"", "a refused client got data")

    def test_deny(self):
        m = self.start_muxd(deny=["127.0.0.0/8"])
        self.assertRefused(m)
        self.assertAlive(m)

    def test_allow_list(self):
        m = self.start_muxd(listen=[
            {"port": 0, "address": "127.0.0.1", "allow": ["10.0.0.0/8"]},
            {"port": 0, "address": "127.0.0.1", "allow": ["127.0.0.1/32"],
             "suffix": "+"}])
        p_other, p_ok = m.ports
        self.assertRefused(m, port=p_other)
        self.roundtrip(self.client(m, port=p_ok), b"allowed\n", suffix=b"+")

    def test_deny_wins_over_allow(self):
        m = self.start_muxd(allow=["127.0.0.0/8"], deny=["127.0.0.1/32"])
        self.assertRefused(m)

    def test_ipv4_mapped_peer_matches_ipv4(self):
        if not mt.have_ipv6():
            self.skipTest("IPv6 loopback (::1) not usable here")
        m = self.start_muxd(ports=[0], listen=None, allow=["127.0.0.0/8"])
        port = m.port_of("*")
        self.roundtrip(self.client(m, host="127.0.0.1", port=port), b"v4 allowed\n")
        self.assertRefused(m, host="::1", port=port)

    def test_max_per_source(self):
        m = self.start_muxd(max_per_source=2)
        a = self.client(m)
        b = self.client(m)
        self.assertRefused(m)
        self.roundtrip(a, b"a\n")
        self.roundtrip(b, b"b\n")
        a.close()
        # Once one leaves, the address may connect again (bounded retries: muxd
        # notices the close asynchronously).
        deadline = time.monotonic() + 5
        while True:
            s = mt.connect(m.port)
            s.settimeout(5)
            try:
                first = s.recv(len(DEFAULT_GREETING), socket.MSG_WAITALL)
            except ConnectionResetError:
                first = b""
            if first:                       # greeted: it was served
                self.assertEqual(first, DEFAULT_GREETING)
                self.roundtrip(s, b"c\n")
                s.close()
                break
            s.close()                       # refused (EOF or reset): try again
            self.assertLess(time.monotonic(), deadline, "slot not freed after a client left")

    def test_max_per_source_counts_per_listener(self):
        # An entry's max_per_source limits the connections on that entry:
        # clients on another listener do not count against it.
        m = self.start_muxd(listen=[
            {"port": 0, "address": "127.0.0.1"},
            {"port": 0, "address": "127.0.0.1", "max_per_source": 2, "suffix": "B"}])
        p_a, p_b = m.ports
        on_a = [self.client(m, port=p_a) for _ in range(3)]
        b1 = self.client(m, port=p_b)
        b2 = self.client(m, port=p_b)
        self.roundtrip(b1, b"b1\n", suffix=b"B")
        self.roundtrip(b2, b"b2\n", suffix=b"B")
        self.assertRefused(m, port=p_b)         # the third on B is one too many
        for i, s in enumerate(on_a):
            self.roundtrip(s, b"a%d\n" % i)


class SelectBudget(mt.MuxdTestCase):
    """select watches descriptors below FD_SETSIZE: the default
    max_connections must leave room for every descriptor muxd holds,
    each worker's included, so that every client it accepts is served."""
    backend = "select"

    def test_default_max_connections_fits_every_worker(self):
        if "select" not in mt.BACKENDS:
            self.skipTest("select not built")
        mt.raise_nofile(4096)
        m = self.start_muxd(workers=64, max_connections=None, rlimit_nofile=4096)
        _, match = m.wait_log(r"ready: .*max_connections (\d+)")
        n = int(match.group(1))
        self.assertLess(n, 1024)
        socks = []
        for i in range(n):
            s = mt.connect(m.port)
            self.addCleanup(s.close)
            socks.append(s)
        for i, s in enumerate(socks):
            got = mt.recv_exact(s, len(DEFAULT_GREETING), timeout=10)
            self.assertEqual(got, DEFAULT_GREETING, "client %d of %d not greeted" % (i + 1, n))
        self.roundtrip(socks[-1], b"last\n")
        for l in m.log_lines():
            self.assertNotIn("beyond what backend", l)


mt.for_each_backend(MaxConnectionsMixin)
mt.for_each_backend(AccessMixin)
mt.for_each_backend(DescriptorExhaustionMixin)

if __name__ == "__main__":
    mt.main()
