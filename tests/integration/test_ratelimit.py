# SPDX-License-Identifier: MIT
"""Per-source limits (issue 16): max_rate_per_source and rate_burst (a
token bucket per source), source_prefix_v4 (the key of a source is the
client address cut to a prefix, for max_per_source too) and max_sources
(the bound of the table: sources_full, evictions). Clients come from
several loopback source addresses (127.0.0.2, 127.0.0.3, ...: the client
socket is bound before connect), so one source is limited while another is
not. The counters are read from /metrics and compared with what the
clients saw. IPv6 prefixes need more than ::1: tests/test_source.c covers
them. Loopback only; every wait is bounded."""

import re
import signal
import socket
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING
from test_control import ControlHelpers, clients_table
from test_stats import StatsHelpers, expected

RATE_REFUSED = r"too many new connections from this source \(max_rate_per_source\)"


class RateLimitMixin(StatsHelpers, ControlHelpers):

    def attempt(self, m, source, port=None, keep=True):
        """Connect from source: the socket if greeted (served), else None
        (closed without a greeting: refused)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind((source, 0))
        s.settimeout(mt.scaled(5))
        s.connect(("127.0.0.1", port or m.port))
        try:
            got = mt.recv_exact(s, len(DEFAULT_GREETING))
        except AssertionError as e:
            if "timed out" in str(e):
                raise           # neither served nor refused: a failure
            got = b""
        if not got:
            s.close()
            return None
        self.assertEqual(got, DEFAULT_GREETING)
        if not keep:
            s.close()
        return s

    def served(self, m, source, port=None):
        s = self.attempt(m, source, port)
        self.assertIsNotNone(s, "a client from %s was refused" % source)
        return s

    def refused(self, m, source, port=None):
        s = self.attempt(m, source, port)
        self.assertIsNone(s, "a client from %s was served" % source)

    def until_served(self, m, source, port=None, timeout=5.0):
        """Try every 50 ms until a client from source is served; returns
        (its socket, how many were refused before)."""
        n = [0]

        def once():
            s = self.attempt(m, source, port)
            if s is None:
                n[0] += 1
            return s
        s = self.wait_for(once, timeout, "a client from %s to be served" % source)
        return s, n[0]

    def wait_admissions(self, m, listener, **want):
        """Scrape until listener's admission counters (accepted, clients,
        closed_client, every refused_*) are exactly want (0 if not given)."""
        full = expected(**want)
        keys = [k for k in full if k in ("accepted", "clients", "closed_client") or k.startswith("refused_")]
        want = {k: full[k] for k in keys}
        last = {}

        def same():
            got = self.scrape(m).counters(listener)
            last["got"] = {k: got[k] for k in keys}
            return last["got"] == want
        try:
            self.wait_for(same, 5, "the counters of %s" % listener)
        except AssertionError:
            self.assertEqual(last.get("got"), want, "counters of %s" % listener)

    def wait_idle(self, m, listener):
        """muxd has seen every client of listener close."""
        self.wait_for(lambda: self.scrape(m).get("muxd_clients", listener) == 0, 5,
                      "the clients of %s to be closed" % listener)

    # ------------------------------------------------------------ rate

    def test_rate_limits_one_source_not_another(self):
        m = self.start_metrics(max_rate_per_source=1, rate_burst=3)
        label = "127.0.0.1:%d" % m.port
        # the burst at once, then refused: a quick loop, so at most the
        # tokens refilled meanwhile (1 a second) come on top of the burst
        t0 = time.monotonic()
        admitted = 0
        for _ in range(20):
            if self.attempt(m, "127.0.0.2") is None:
                break
            admitted += 1
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(admitted, 3)
        self.assertLessEqual(admitted, 3 + int(elapsed) + 1, "%d admitted in %.2fs" % (admitted, elapsed))
        self.assertLess(admitted, 20, "never refused")
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.2:\d+ on %s: %s$" % (re.escape(label), RATE_REFUSED))
        # another source has its own bucket, whenever it comes
        others = [self.served(m, "127.0.0.3") for _ in range(3)]
        self.refused(m, "127.0.0.3")
        # a second later 127.0.0.2 has a token again; those refused while
        # waiting took none
        s, waited = self.until_served(m, "127.0.0.2")
        self.roundtrip(s, b"refilled\n")
        for o in others:
            self.roundtrip(o, b"other\n")
        self.wait_admissions(m, label, accepted=admitted + 3 + 1, clients=admitted + 3 + 1,
                            refused_rate=1 + 1 + waited)
        self.assertEqual(self.scrape(m).get("muxd_sources"), 2)

    def test_rate_is_per_listener(self):
        # a listener without a rate limit, and one with its own
        m = self.start_metrics(max_rate_per_source=1, rate_burst=1, listen=[
            {"port": 0, "address": "127.0.0.1", "max_rate_per_source": 0},
            {"port": 0, "address": "127.0.0.1", "rate_burst": 2}])
        free, limited = m.ports
        for _ in range(5):
            self.served(m, "127.0.0.2", port=free)
        self.served(m, "127.0.0.2", port=limited)
        self.served(m, "127.0.0.2", port=limited)
        self.refused(m, "127.0.0.2", port=limited)
        self.wait_admissions(m, "127.0.0.1:%d" % free, accepted=5, clients=5)
        self.wait_admissions(m, "127.0.0.1:%d" % limited, accepted=2, clients=2, refused_rate=1)

    # ------------------------------------------------------------ prefixes

    def test_prefix_v4_aggregates_sources(self):
        # 127.0.0.2 and 127.0.0.3 are one /24 source; a listener that
        # overrides the prefix with 32 keeps them apart
        m = self.start_metrics(max_rate_per_source=1, rate_burst=1, source_prefix_v4=24, listen=[
            {"port": 0, "address": "127.0.0.1"},
            {"port": 0, "address": "127.0.0.1", "source_prefix_v4": 32}])
        wide, narrow = m.ports
        self.served(m, "127.0.0.2", port=wide)
        self.refused(m, "127.0.0.3", port=wide)
        self.served(m, "127.0.1.3", port=wide)          # another /24
        self.served(m, "127.0.0.2", port=narrow)
        self.served(m, "127.0.0.3", port=narrow)
        self.refused(m, "127.0.0.2", port=narrow)
        self.wait_admissions(m, "127.0.0.1:%d" % wide, accepted=2, clients=2, refused_rate=1)
        self.wait_admissions(m, "127.0.0.1:%d" % narrow, accepted=2, clients=2, refused_rate=1)

    def test_prefix_v4_with_max_per_source(self):
        m = self.start_metrics(max_per_source=2, source_prefix_v4=24)
        a = self.served(m, "127.0.0.2")
        self.served(m, "127.0.0.3")
        self.refused(m, "127.0.0.4")                    # the /24 has its two
        self.served(m, "127.0.1.4")
        a.close()
        s, waited = self.until_served(m, "127.0.0.4")   # once muxd saw a close
        self.roundtrip(s, b"room again\n")
        label = "127.0.0.1:%d" % m.port
        self.wait_admissions(m, label, accepted=4, clients=3, closed_client=1,
                            refused_max_per_source=1 + waited)

    def test_prefix_v4_on_dual_stack_listener(self):
        # IPv4 peers of a dual-stack socket (::ffff:127.0.0.2) count as IPv4
        if not mt.have_ipv6():
            self.skipTest("IPv6 loopback (::1) not usable here")
        m = self.start_metrics(ports=[0], listen=None, max_rate_per_source=1, rate_burst=1,
                               source_prefix_v4=24)
        port = m.port_of("*")
        self.served(m, "127.0.0.2", port=port)
        self.refused(m, "127.0.0.3", port=port)
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.3:\d+ on \S+: %s$" % RATE_REFUSED)

    def test_clients_and_kick_show_the_peer_not_the_prefix(self):
        # the table keeps 127.0.0.0/8; muxctl still lists and kicks each peer
        ctl_path = self.tmpdir + "/control"
        self.ctl_path = ctl_path
        m = self.start_muxd(control_socket=ctl_path, max_per_source=10, source_prefix_v4=8)
        a = self.served(m, "127.0.0.2")
        b = self.served(m, "127.0.0.3")
        rows = clients_table(self.ctl("clients", rc=0).stdout)
        self.assertEqual(sorted(r[0] for r in rows),
                         sorted(["127.0.0.2:%d" % a.getsockname()[1], "127.0.0.3:%d" % b.getsockname()[1]]))
        self.assertEqual(self.ctl_json("kick", "all-from", "127.0.0.3/32")["kicked"], 1)
        mt.expect_eof(b, allow_reset=True)
        self.roundtrip(a, b"a stays\n")

    # ------------------------------------------------------------ the table's bound

    def test_sources_full_refuses_new_sources(self):
        m = self.start_metrics(max_sources=2, max_per_source=10)
        label = "127.0.0.1:%d" % m.port
        m.wait_log(r"^muxd: notice: max_sources \(2\) is below max_connections \(100\): a new source is "
                   r"refused \(sources_full\) while every entry has clients$")
        a = self.served(m, "127.0.0.2")
        self.served(m, "127.0.0.3")
        self.served(m, "127.0.0.3")                     # a known source still comes in
        self.refused(m, "127.0.0.4")
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.4:\d+ on %s: max_sources reached, each source "
                   r"with connections open$" % re.escape(label))
        a.close()
        s, waited = self.until_served(m, "127.0.0.4")
        self.roundtrip(s, b"in\n")
        self.wait_admissions(m, label, accepted=4, clients=3, closed_client=1,
                            refused_sources_full=1 + waited)
        metrics = self.scrape(m)
        self.assertEqual(metrics.get("muxd_sources"), 2)
        self.assertEqual(metrics.get("muxd_max_sources"), 2)
        self.assertEqual(metrics.get("muxd_sources_evicted_total"), 0)

    def test_eviction_is_counted_and_logged(self):
        # five connections empty 127.0.0.2's bucket of 5: its rate state
        # lasts 5 s after they close; a third source then needs its place
        m = self.start_metrics(max_sources=2, max_rate_per_source=1, rate_burst=5)
        label = "127.0.0.1:%d" % m.port
        t0 = time.monotonic()
        for _ in range(5):
            self.served(m, "127.0.0.2").close()
        # muxd must see 127.0.0.2 idle first (with two workers, closes are
        # seen in any order), so that it is the least recently used
        self.wait_idle(m, label)
        self.served(m, "127.0.0.3").close()
        self.wait_idle(m, label)
        self.assertEqual(self.scrape(m).get("muxd_sources"), 2)
        self.served(m, "127.0.0.4")
        if time.monotonic() - t0 >= 4.5:
            self.skipTest("too slow here: the rate state would have expired by itself")
        m.wait_log(r"^muxd: warning: max_sources reached: forgot the connection rate of 1 idle source "
                   r"to make room for a new one on %s$" % re.escape(label))
        metrics = self.scrape(m)
        self.assertEqual(metrics.get("muxd_sources_evicted_total"), 1)
        self.assertEqual(metrics.get("muxd_sources"), 2)
        # the forgotten source starts again with a full bucket
        self.served(m, "127.0.0.2")

    def test_reload_changes_the_rate(self):
        m = self.start_metrics(max_rate_per_source=1, rate_burst=1)
        self.served(m, "127.0.0.2")
        self.refused(m, "127.0.0.2")
        self.write_config(mt.base_settings(self.backend, metrics_listen="127.0.0.1:%d" % m.metrics_port,
                                           max_rate_per_source=0))
        since = m.log_count()
        m.signal(signal.SIGHUP)
        m.wait_log(r"configuration reloaded", since=since)
        # each worker takes the new settings when it next wakes: the first
        # client may still meet the old ones; five in a row cannot
        self.until_served(m, "127.0.0.2")
        for _ in range(5):
            self.served(m, "127.0.0.2")


mt.for_each_backend(RateLimitMixin)

if __name__ == "__main__":
    mt.main()
