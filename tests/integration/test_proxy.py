# SPDX-License-Identifier: MIT
"""PROXY protocol v1/v2 (issue 16): a listener behind a load balancer. The
test plays the balancer on 127.0.0.1 and writes the headers itself, naming
clients from documentation ranges (192.0.2.0/24, 198.51.100.0/24,
2001:db8::/32): muxd greets nobody before the header is complete, applies
allow/deny and max_per_source to the client the header names, logs both
addresses, and refuses (and counts) peers not in proxy_from, malformed
headers and headers that do not arrive within proxy_timeout."""

import json
import os
import socket
import struct
import subprocess
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING
from test_control import muxctl_path
from test_stats import METRICS_RE, http_get, parse

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst, sport, dport, proto="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v2(src, dst, sport, dport, tlvs=b"", cmd=0x21):
    """A v2 PROXY (or, cmd 0x20, LOCAL) header for TCP over IPv4 or IPv6."""
    if ":" in src:
        fam = 0x21
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!HH", sport, dport))
    else:
        fam = 0x11
        body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    body += tlvs
    return V2_SIG + struct.pack("!BBH", cmd, fam, len(body)) + body


def v2_local():
    return V2_SIG + struct.pack("!BBH", 0x20, 0x00, 0)


def tlv(kind, value):
    return struct.pack("!BH", kind, len(value)) + value


class ProxyMixin:

    def start_proxied(self, proxy_protocol="any", metrics=True, **entry):
        """muxd with one listener on 127.0.0.1 behind the test's 'balancer'."""
        e = {"port": 0, "address": "127.0.0.1", "proxy_protocol": proxy_protocol,
             "proxy_from": ["127.0.0.1"]}
        e.update(entry)
        over = {"listen": [e]}
        if metrics:
            over["metrics_listen"] = "127.0.0.1:0"
        m = self.start_muxd(**over)
        if metrics:
            _, mo = m.wait_log(METRICS_RE)
            m.metrics_port = int(mo.group(2))
        return m

    def refused(self, m):
        """{reason: count} of muxd_connections_refused_total (every listener)."""
        status, _, body = http_get(m.metrics_port)
        self.assertEqual(status, 200)
        out = {}
        for (name, labels), v in parse(body.decode()).items():
            if name == "muxd_connections_refused_total" and dict(labels).get("listener") is not None:
                r = dict(labels)["reason"]
                out[r] = out.get(r, 0) + int(v)
        return out

    def wait_refused(self, m, reason, n):
        self.wait_for(lambda: self.refused(m).get(reason) == n, 5,
                      "%d refused for %s (now %r)" % (n, reason, self.refused(m)))

    def through(self, m, header, greeting=DEFAULT_GREETING):
        """A connection from the balancer: header sent, greeting read."""
        s = self.connect(m.port)
        s.sendall(header)
        if greeting:
            self.assertRecv(s, greeting)
        return s

    def assertClosedSilently(self, s, timeout=5.0):
        self.assertEqual(mt.recv_all(s, timeout=timeout, allow_reset=True), b"",
                         "a refused connection got data")

    # ---- valid headers

    def test_v1_tcp4(self):
        m = self.start_proxied("v1")
        s = self.through(m, v1("192.0.2.7", "127.0.0.1", 40000, m.port))
        self.roundtrip(s, b"behind a balancer\n")

    def test_v1_tcp6_and_unknown(self):
        m = self.start_proxied("v1")
        s = self.through(m, v1("2001:db8::7", "2001:db8::1", 40000, 7000, proto="TCP6"))
        self.roundtrip(s, b"six\n")
        s = self.through(m, b"PROXY UNKNOWN\r\n")
        self.roundtrip(s, b"unknown\n")

    def test_v2_inet_inet6_local(self):
        m = self.start_proxied("v2")
        self.roundtrip(self.through(m, v2("192.0.2.7", "127.0.0.1", 40000, m.port)), b"four\n")
        self.roundtrip(self.through(m, v2("2001:db8::7", "::1", 40000, 7000)), b"six\n")
        # a balancer's health check: LOCAL, answered like any client
        self.roundtrip(self.through(m, v2_local()), b"health\n")

    def test_v2_tlvs_skipped(self):
        m = self.start_proxied("v2")
        tlvs = tlv(0x01, b"h2") + tlv(0x04, b"") + tlv(0x05, b"unique-id-0123456789" * 10)
        self.roundtrip(self.through(m, v2("192.0.2.7", "127.0.0.1", 40000, m.port, tlvs=tlvs)),
                       b"with tlvs\n")

    def test_any_takes_both(self):
        m = self.start_proxied("any")
        self.roundtrip(self.through(m, v1("192.0.2.1", "127.0.0.1", 1, 2)), b"one\n")
        self.roundtrip(self.through(m, v2("192.0.2.2", "127.0.0.1", 1, 2)), b"two\n")

    # ---- how the header arrives

    def test_no_greeting_before_the_header(self):
        m = self.start_proxied("v2")
        hdr = v2("192.0.2.7", "127.0.0.1", 40000, m.port)
        s = self.connect(m.port)
        mt.expect_silence(s, 0.3)                   # nothing before the header
        s.sendall(hdr[:20])
        mt.expect_silence(s, 0.3)                   # nor before it is complete
        s.sendall(hdr[20:])
        self.assertRecv(s, DEFAULT_GREETING)
        self.roundtrip(s, b"after\n")

    def test_header_split_across_writes(self):
        m = self.start_proxied("any")
        for hdr in (v1("192.0.2.7", "127.0.0.1", 40000, m.port),
                    v2("2001:db8::7", "::1", 40000, 7000, tlvs=tlv(0x01, b"h2"))):
            s = self.connect(m.port)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(hdr)):
                s.send(hdr[i:i + 1])
            self.assertRecv(s, DEFAULT_GREETING)
            self.roundtrip(s, b"split\n")

    def test_header_and_first_message_in_one_write(self):
        m = self.start_proxied("any")
        for hdr in (v1("192.0.2.7", "127.0.0.1", 40000, m.port), v2_local()):
            s = self.connect(m.port)
            s.sendall(hdr + b"first\nsecond\n")
            self.assertRecv(s, DEFAULT_GREETING + mt.echo_reply(b"first\n") + mt.echo_reply(b"second\n"))

    # ---- refused

    def test_peer_not_in_proxy_from(self):
        m = self.start_proxied("v2", proxy_from=["10.0.0.0/8", "::1"])
        s = self.connect(m.port)
        s.sendall(v2("192.0.2.7", "127.0.0.1", 40000, m.port))
        self.assertClosedSilently(s)
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.1:\d+ on 127\.0\.0\.1:%d: not in proxy_from "
                   r"\(PROXY protocol\)$" % m.port)
        self.wait_refused(m, "proxy_from", 1)
        self.assertAlive(m)

    def test_malformed_closes_with_a_log_line(self):
        cases = [
            (b"GET / HTTP/1.0\r\n\r\n", "not a PROXY protocol header"),
            (b"PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\n", "v1: invalid IPv4 address"),
            (b"PROXY TCP4 192.0.2.3 127.0.0.1 1 65536\r\n", "v1: invalid port"),
            (b"PROXY TCP4 " + b"1" * 120, "v1: no CRLF within 107 bytes"),
            (V2_SIG + b"\x21\x11\xff\xff", "v2: header longer than 2048 bytes"),
            (V2_SIG + b"\x31", "v2: version is not 2"),
            (v2("192.0.2.7", "127.0.0.1", 1, 2, tlvs=b"\x01\x00\x05ab"), "v2: TLV longer than the header"),
        ]
        for i, (data, reason) in enumerate(cases):
            if i % 5 == 0:
                # a new muxd every 5: the warning is rate-limited (5 per 10 s per worker)
                m = self.start_proxied("any")
            since = m.log_count()
            s = self.connect(m.port)
            s.sendall(data)
            self.assertClosedSilently(s)
            m.wait_log(r"^muxd: warning: load balancer 127\.0\.0\.1:\d+: invalid PROXY header "
                       r"\(%s\): closing" % reason.replace("(", r"\(").replace(")", r"\)"), since=since)
            self.wait_refused(m, "proxy_header", i % 5 + 1)
        self.assertAlive(m)

    def test_wrong_version(self):
        m = self.start_proxied("v2")
        s = self.connect(m.port)
        s.sendall(v1("192.0.2.7", "127.0.0.1", 40000, m.port))
        self.assertClosedSilently(s)
        m.wait_log(r"invalid PROXY header \(a v1 header where only v2 is accepted\): closing")

    def test_timeout_closes(self):
        m = self.start_proxied("v1", proxy_timeout=1)
        s = self.connect(m.port)
        s.sendall(b"PROXY TCP4 192.0.2.7")
        t0 = time.monotonic()
        self.assertClosedSilently(s, timeout=mt.scaled(10))
        took = time.monotonic() - t0
        self.assertGreater(took, 0.8, "closed before proxy_timeout")
        m.wait_log(r"^muxd: warning: load balancer 127\.0\.0\.1:\d+: no complete PROXY header within "
                   r"proxy_timeout \(1 s\): closing$")
        self.wait_refused(m, "proxy_header", 1)
        # a connection that never sends anything times out just the same
        s = self.connect(m.port)
        self.assertClosedSilently(s, timeout=mt.scaled(10))
        self.wait_refused(m, "proxy_header", 2)

    # ---- the policy acts on the client the header names

    def test_allow_deny_on_the_real_client(self):
        # the balancer (127.0.0.1) is neither allowed nor denied: only the clients count
        m = self.start_proxied("any", allow=["192.0.2.0/24", "198.51.100.0/24"],
                               deny=["198.51.100.66"], mode="oneshot")
        s = self.through(m, v1("192.0.2.7", "127.0.0.1", 40001, m.port))
        s.sendall(b"ok\n")
        m.wait_log(r'^muxd: info: message from 192\.0\.2\.7:40001 via 127\.0\.0\.1:\d+: "ok\\n"$')
        s = self.through(m, v1("198.51.100.66", "127.0.0.1", 40002, m.port), greeting=None)
        self.assertClosedSilently(s)
        m.wait_log(r"^muxd: notice: refused 198\.51\.100\.66:40002 via 127\.0\.0\.1:\d+ on "
                   r"127\.0\.0\.1:%d: denied$" % m.port)
        s = self.through(m, v1("203.0.113.1", "127.0.0.1", 40003, m.port), greeting=None)
        self.assertClosedSilently(s)
        m.wait_log(r"refused 203\.0\.113\.1:40003 via 127\.0\.0\.1:\d+ on .*: not allowed$")
        # LOCAL: the balancer's own address, which allow does not list
        s = self.through(m, v2_local(), greeting=None)
        self.assertClosedSilently(s)
        self.wait_refused(m, "access", 3)

    def test_max_per_source_on_the_real_client(self):
        m = self.start_proxied("v2", max_per_source=1)
        a = self.through(m, v2("192.0.2.1", "127.0.0.1", 1000, m.port))
        b = self.through(m, v2("192.0.2.2", "127.0.0.1", 1001, m.port))    # same balancer, another client
        again = self.through(m, v2("192.0.2.1", "127.0.0.1", 1002, m.port), greeting=None)
        self.assertClosedSilently(again)
        m.wait_log(r"refused 192\.0\.2\.1:1002 via 127\.0\.0\.1:\d+ on .*: too many connections from "
                   r"this address \(max_per_source\)$")
        self.roundtrip(a, b"a\n")
        self.roundtrip(b, b"b\n")
        self.wait_refused(m, "max_per_source", 1)

    def test_rate_limit_and_prefix_on_the_real_client(self):
        # one new connection per second per source (burst 1); sources are /24s: every
        # client comes through the same balancer, only the header tells them apart
        m = self.start_proxied("v1", max_rate_per_source=1, rate_burst=1, source_prefix_v4=24)
        a = self.through(m, v1("192.0.2.1", "127.0.0.1", 1000, m.port))
        again = self.through(m, v1("192.0.2.200", "127.0.0.1", 1001, m.port), greeting=None)
        self.assertClosedSilently(again)            # the same /24: no token left
        m.wait_log(r"refused 192\.0\.2\.200:1001 via 127\.0\.0\.1:\d+ on .*: too many new connections "
                   r"from this source \(max_rate_per_source\)$")
        b = self.through(m, v1("198.51.100.1", "127.0.0.1", 1002, m.port))     # another source
        self.roundtrip(a, b"a\n")
        self.roundtrip(b, b"b\n")
        self.wait_refused(m, "rate", 1)

    def test_stats_count_admitted_clients_only(self):
        m = self.start_proxied("v1")
        self.roundtrip(self.through(m, v1("192.0.2.7", "127.0.0.1", 1, 2)), b"x\n")
        s = self.connect(m.port)
        s.sendall(b"nonsense\n")
        self.assertClosedSilently(s)
        self.wait_refused(m, "proxy_header", 1)
        status, _, body = http_get(m.metrics_port)
        accepted = sum(v for (name, labels), v in parse(body.decode()).items()
                       if name == "muxd_connections_accepted_total" and dict(labels).get("listener"))
        self.assertEqual(accepted, 1)

    def test_muxctl_clients_and_kick(self):
        ctl_path = os.path.join(self.tmpdir, "control")
        m = self.start_muxd(control_socket=ctl_path, listen=[
            {"port": 0, "address": "127.0.0.1", "name": "lb", "proxy_protocol": "any",
             "proxy_from": ["127.0.0.1"]}])

        def ctl(*args):
            p = subprocess.run([muxctl_path(), "-s", ctl_path] + list(args), stdout=subprocess.PIPE,
                               universal_newlines=True, timeout=mt.scaled(30))
            self.assertEqual(p.returncode, 0, p.stdout)
            return p.stdout

        a = self.through(m, v1("192.0.2.7", "127.0.0.1", 40001, m.port))
        b = self.through(m, v2("2001:db8::9", "::1", 40002, 7000))
        waiting = self.connect(m.port)          # no header yet: not a client
        rows = [l.split() for l in ctl("clients").splitlines()[1:] if not l.startswith("count:")]
        self.assertEqual(sorted((r[0], r[1], r[5]) for r in rows),
                         sorted([("192.0.2.7:40001", "lb", "127.0.0.1:%d" % a.getsockname()[1]),
                                 ("[2001:db8::9]:40002", "lb", "127.0.0.1:%d" % b.getsockname()[1])]))
        doc = json.loads(ctl("--json", "clients"))
        self.assertEqual(sorted((c["address"], c["port"], c["proxy"]) for c in doc["clients"]),
                         sorted([("192.0.2.7", 40001, "127.0.0.1:%d" % a.getsockname()[1]),
                                 ("2001:db8::9", 40002, "127.0.0.1:%d" % b.getsockname()[1])]))
        # kick acts on the client the header named, too
        self.assertIn("kicked: 1", ctl("kick", "192.0.2.7"))
        self.assertEqual(mt.recv_all(a, allow_reset=True), b"")
        m.wait_log(r"closing the connection from 192\.0\.2\.7:40001 on 127\.0\.0\.1:%d: kicked" % m.port)
        self.roundtrip(b, b"still here\n")
        waiting.sendall(v2_local())
        self.assertRecv(waiting, DEFAULT_GREETING)
        # the refusal reasons in muxctl stats
        s = self.connect(m.port)
        s.sendall(b"bogus\r\n")
        self.assertClosedSilently(s)
        self.wait_for(lambda: "proxy_header 1" in ctl("stats"), 5, "proxy_header 1 in muxctl stats")

    def test_off_listener_next_to_a_proxied_one(self):
        # a PROXY header on a listener with proxy_protocol off is a message like any other
        m = self.start_muxd(listen=[
            {"port": 0, "address": "127.0.0.1"},
            {"port": 0, "address": "127.0.0.1", "proxy_protocol": "v1", "proxy_from": ["127.0.0.1"],
             "suffix": "+"}])
        p_off, p_on = m.ports
        s = self.client(m, port=p_off)
        self.roundtrip(s, b"PROXY UNKNOWN\r\n")
        s = self.connect(p_on)
        s.sendall(b"PROXY UNKNOWN\r\nhi\n")
        self.assertRecv(s, DEFAULT_GREETING + b"hi+\n")


mt.for_each_backend(ProxyMixin)

if __name__ == "__main__":
    mt.main()
