# SPDX-License-Identifier: MIT
"""systemd integration: socket activation (passed sockets matched by name,
by address and port, by wildcard; unclaimed and invalid ones), IPv4 peers on
dual-stack sockets, sd_notify (READY/RELOADING/STOPPING/STATUS/WATCHDOG, and a
notify socket nobody reads), log targets (stderr, auto, journal).

Sockets are "passed" the way systemd passes them: muxd is exec'ed with the
listening sockets on descriptors 3, 4, ..., LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID set to its own pid (see muxdtest.Muxd's pass_fds and pid_env).

The journald tests use, in order of preference: the host's journal through
journalctl (skipped if there is none); a private journal socket in a mount
namespace (`unshare -m`, needs root; skipped otherwise) that this test reads in
journald's native protocol."""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING

READY_LINE_RE = re.compile(r"^muxd: info: ready: ")
RELOADED_RE = re.compile(r"^muxd: info: configuration reloaded from ")
RELOAD_FAILED_RE = re.compile(r"^muxd: err: reload failed")
RELOADING_RE = re.compile(r"^RELOADING=1\nMONOTONIC_USEC=(\d+)$")
STATUS_RE = re.compile(r"^STATUS=(?:stopping; )?(?:reload failed: .*; )?(\d+) listeners?, (\d+) clients?, "
                       r"(\d+\.\d) accepted/s, (\d+\.\d) refused/s \(1 min\)"
                       r"(?:; reload ok at \d\d:\d\d:\d\d)?$")


def tcp_listener(host="127.0.0.1", port=0, v6only=None, listen=True):
    """A TCP socket bound to (host, port) (listening unless listen=False),
    as systemd would create it for ListenStream=."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    s.bind((host, port))
    if listen:
        s.listen(128)
    return s


def assert_refused(testcase, port, host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        with testcase.assertRaises(ConnectionRefusedError,
                                   msg="%s:%d should not be listening" % (host, port)):
            s.connect((host, port))
    finally:
        s.close()


def plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def status_re(listeners, clients, failed=None, reloaded=False):
    """STATUS= with these numbers, whatever the rates: after a failed reload
    (failed: its first error), after a good one (reloaded), or neither."""
    return re.compile("^STATUS=%s%s, %s, \\d+\\.\\d accepted/s, \\d+\\.\\d refused/s \\(1 min\\)%s$"
                      % (re.escape("reload failed: %s; " % failed) if failed else "",
                         plural(listeners, "listener"), plural(clients, "client"),
                         "; reload ok at \\d\\d:\\d\\d:\\d\\d" if reloaded else ""))


class SystemdHelpers:
    """Helpers shared by the test classes below (a mixin for MuxdTestCase)."""

    def own(self, sock):
        """Keep a socket of ours open until muxd has stopped (cleanups run in
        reverse order: register before start_muxd)."""
        self.addCleanup(sock.close)
        return sock

    def start_activated(self, socks, names=None, env=None, wait_ready=True, **over):
        """Start muxd with socks passed as systemd passes them."""
        e = {"LISTEN_FDS": str(len(socks))}
        if names is not None:
            e["LISTEN_FDNAMES"] = ":".join(names)
        e.update(env or {})
        fds = [s if isinstance(s, int) else s.fileno() for s in socks]
        return self.start_muxd(env=e, pass_fds=fds, pid_env=["LISTEN_PID"],
                               wait_ready=wait_ready, **over)

    def reload(self, muxd, settings=None, text=None, expect_ok=True, timeout=5.0):
        """Rewrite muxd's config, SIGHUP, wait for the outcome log line;
        returns the log index where the wait started."""
        if text is None:
            text = mt.render_config(settings)
        self.write_config(text=text, name=os.path.basename(muxd.config_path))
        since = muxd.log_count()
        muxd.signal(signal.SIGHUP)
        muxd.wait_log(RELOADED_RE if expect_ok else RELOAD_FAILED_RE, timeout=timeout,
                      since=since)
        return since


class SystemdCase(SystemdHelpers, mt.MuxdTestCase):
    backend = "epoll"


# ---------------------------------------------------------------- socket activation

class SocketActivationMixin(SystemdHelpers):

    def test_passed_and_self_bound_listeners(self):
        a = self.own(tcp_listener())
        p1 = a.getsockname()[1]
        p2 = mt.free_port()
        m = self.start_activated([a], ["muxd.socket"], listen=[
            {"port": p1, "address": "127.0.0.1", "suffix": "A"},
            {"port": p2, "address": "127.0.0.1", "suffix": "B"},
        ])
        self.assertLogged(m, "muxd: info: listening on 127.0.0.1:%d, passed by systemd "
                        "(echo, line framing)" % p1)
        self.assertLogged(m, "muxd: info: listening on 127.0.0.1:%d (echo, line framing)" % p2)
        self.assertLogged(m, "muxd: info: ready: 2 listeners, backend %s, max_connections 100%s"
                     % (self.backend, mt.READY_SUFFIX))
        sa = self.client(m, port=p1)
        sb = self.client(m, port=p2)
        self.roundtrip(sa, b"one\n", suffix=b"A")
        self.roundtrip(sb, b"two\n", suffix=b"B")
        self.roundtrip(sa, b"three\r\n", suffix=b"A")

    def test_name_claims_the_socket_first(self):
        web = self.own(tcp_listener())
        p_web = web.getsockname()[1]
        p_entry = mt.free_port()
        self.assertNotEqual(p_web, p_entry)
        # The entry named "web" says another port; FileDescriptorName=web wins.
        m = self.start_activated([web], ["web"], listen=[
            {"port": p_entry, "address": "127.0.0.1", "name": "web", "suffix": "W",
             "greeting": "web\n"},
        ])
        self.assertLogged(m, 'muxd: info: listening on 127.0.0.1:%d "web", passed by systemd '
                        '(echo, line framing)' % p_web)
        self.assertLogged(m, "muxd: info: ready: 1 listener, backend %s, max_connections 100%s"
                     % (self.backend, mt.READY_SUFFIX))
        s = self.client(m, port=p_web, greeting=b"web\n")
        self.roundtrip(s, b"named\n", suffix=b"W")
        assert_refused(self, p_entry)

    def test_names_and_addresses_together(self):
        # "first" is matched by its address and port, "api" by its name.
        sock_a = self.own(tcp_listener())
        sock_b = self.own(tcp_listener())
        p_a, p_b = sock_a.getsockname()[1], sock_b.getsockname()[1]
        m = self.start_activated([sock_a, sock_b], ["first", "api"], listen=[
            {"port": p_a, "address": "127.0.0.1", "suffix": "EXACT"},
            {"port": mt.free_port(), "address": "127.0.0.1", "name": "api", "suffix": "NAMED"},
        ])
        self.assertLogged(m, "muxd: info: ready: 2 listeners, backend %s, max_connections 100%s"
                     % (self.backend, mt.READY_SUFFIX))
        self.roundtrip(self.client(m, port=p_a), b"a\n", suffix=b"EXACT")
        self.roundtrip(self.client(m, port=p_b), b"b\n", suffix=b"NAMED")

    def test_name_claims_before_address_and_port(self):
        # The entry for p_b's exact address and port comes first in the file,
        # but "api" names p_b's socket: the name claims it, so the other entry
        # has to bind p_b itself, which the passed socket holds.
        sock_b = self.own(tcp_listener())
        p_b = sock_b.getsockname()[1]
        m = self.start_activated([sock_b], ["api"], wait_ready=False, listen=[
            {"port": p_b, "address": "127.0.0.1", "suffix": "EXACT"},
            {"port": mt.free_port(), "address": "127.0.0.1", "name": "api", "suffix": "NAMED"},
        ])
        m.stopped_by_us = True
        self.assertEqual(m.wait_exit(10), 1, m.log_tail())
        m.wait_log(r"^muxd: err: %s:\d+: cannot listen on 127\.0\.0\.1:%d: Address already in use$"
                   % (re.escape(m.config_path), p_b))

    def test_unclaimed_socket_gets_global_defaults(self):
        extra = self.own(tcp_listener())
        p_extra = extra.getsockname()[1]
        m = self.start_activated([extra], ["extra"], greeting="G-hello\n", suffix="G",
                                 listen=[{"port": 0, "address": "127.0.0.1", "suffix": "E",
                                          "greeting": "E-hello\n"}])
        notice = ('muxd: notice: socket 127.0.0.1:%d ("extra") passed by systemd matches no '
                  'entry in %s: serving it with the global defaults' % (p_extra, m.config_path))
        self.assertLogged(m, notice)
        self.assertLogged(m, "muxd: info: ready: 2 listeners, backend %s, max_connections 100%s"
                     % (self.backend, mt.READY_SUFFIX))
        s = self.client(m, port=p_extra, greeting=b"G-hello\n")
        self.roundtrip(s, b"unclaimed\n", suffix=b"G")
        own_port = [p for p in m.ports if p != p_extra][0]
        self.roundtrip(self.client(m, port=own_port, greeting=b"E-hello\n"), b"x\n", suffix=b"E")
        # ... and again after a reload (same configuration)
        with open(m.config_path) as f:
            same = f.read()
        since = self.reload(m, text=same)
        self.assertLogged(m, notice, since)
        self.roundtrip(s, b"kept\n", suffix=b"G")
        self.roundtrip(self.client(m, port=p_extra, greeting=b"G-hello\n"), b"new\n", suffix=b"G")

    def test_wildcard_sockets(self):
        # ListenStream=0.0.0.0:P (IPv4 only) and ListenStream=P (dual-stack ::):
        # entries without an address claim them.
        v4 = self.own(tcp_listener("0.0.0.0"))
        p4 = v4.getsockname()[1]
        socks, names = [v4], ["v4"]
        entries = [{"port": p4, "suffix": "V4"}]
        p6 = None
        if mt.have_ipv6():
            v6 = self.own(tcp_listener("::", v6only=False))
            p6 = v6.getsockname()[1]
            v6only = self.own(tcp_listener("::", v6only=True))
            p6only = v6only.getsockname()[1]
            socks += [v6, v6only]
            names += ["dual", "v6only"]
            entries += [{"port": p6, "suffix": "DUAL"}, {"port": p6only, "suffix": "V6"}]
        m = self.start_activated(socks, names, listen=entries, log_level="debug")
        self.assertLogged(m, "muxd: info: listening on 0.0.0.0:%d, passed by systemd "
                        "(echo, line framing)" % p4)
        self.roundtrip(self.client(m, port=p4), b"four\n", suffix=b"V4")
        if p6 is not None:
            self.assertLogged(m, "muxd: info: listening on [::]:%d, passed by systemd "
                            "(echo, line framing)" % p6)
            c4 = self.client(m, port=p6)
            self.roundtrip(c4, b"mapped\n", suffix=b"DUAL")
            self.roundtrip(self.client(m, host="::1", port=p6), b"six\n", suffix=b"DUAL")
            self.assertLogged(m, "muxd: info: listening on [::]:%d, passed by systemd "
                            "(echo, line framing)" % p6only)
            self.roundtrip(self.client(m, host="::1", port=p6only), b"v6\n", suffix=b"V6")
            cport = c4.getsockname()[1]
            m.wait_log("^muxd: debug: connection from 127\\.0\\.0\\.1:%d on \\[::\\]:%d$"
                       % (cport, p6))
        self.assertFalse([l for l in m.log_lines() if "::ffff:" in l],
                         "IPv4 peers must be logged as IPv4\n" + m.log_tail())

    def test_passed_socket_removed_and_readded_by_reload(self):
        a = self.own(tcp_listener())
        p = a.getsockname()[1]
        entry = {"port": p, "address": "127.0.0.1", "suffix": "A", "greeting": "A\n"}
        other = {"port": 0, "address": "127.0.0.1", "suffix": "O", "greeting": "O\n"}
        m = self.start_activated([a], ["muxd.socket"], listen=[entry, other])
        old = self.client(m, port=p, greeting=b"A\n")
        self.roundtrip(old, b"x\n", suffix=b"A")
        # the entry goes: the passed socket falls back to the defaults
        since = self.reload(m, mt.base_settings(self.backend, listen=[other]))
        self.assertLogged(m, 'muxd: notice: socket 127.0.0.1:%d ("muxd.socket") passed by systemd '
                        'matches no entry in %s: serving it with the global defaults'
                     % (p, m.config_path), since)
        self.assertFalse([l for l in m.log_lines(since) if "no longer listening" in l],
                         m.log_tail())
        self.roundtrip(self.client(m, port=p), b"defaults\n")
        self.roundtrip(old, b"old\n", suffix=b"A")
        # the entry comes back: claims the same passed socket (no bind: the
        # port is ours, binding it would fail)
        self.reload(m, mt.base_settings(self.backend, listen=[dict(entry, suffix="A2"), other]))
        self.roundtrip(self.client(m, port=p, greeting=b"A\n"), b"back\n", suffix=b"A2")
        self.roundtrip(old, b"old again\n", suffix=b"A")


mt.for_each_backend(SocketActivationMixin)


class SocketActivationOnce(SystemdCase):
    """Errors, the real systemd-socket-activate, backend-independent cases."""

    def test_every_listener_has_a_listening_line(self):
        # "ready: N listeners" and N "listening on" lines, also when a passed
        # socket is served with the defaults.
        extra = self.own(tcp_listener())
        p_extra = extra.getsockname()[1]
        m = self.start_activated([extra], ["extra"])
        _, ready = m.wait_log(re.compile(r"ready: (\d+) listeners?"))
        listening = [l for l in m.log_lines() if mt.LISTEN_RE.search(l)]
        self.assertEqual(int(ready.group(1)), 2)
        self.assertEqual(len(listening), 2,
                         "a 'listening on' line for each of the 2 listeners (the passed "
                         "127.0.0.1:%d included)\n%s" % (p_extra, m.log_tail()))


    def expect_bad_fd(self, socks, bad_fd):
        m = self.start_activated(socks, wait_ready=False)
        m.stopped_by_us = True      # it is expected to exit
        rc = m.wait_exit(10)
        self.assertIsNotNone(rc, "muxd kept running with a bad passed descriptor")
        self.assertEqual(rc, 1, m.log_tail())
        self.assertIn("muxd: err: descriptor %d passed by systemd is not a listening TCP socket"
                      % bad_fd, m.log_lines(), m.log_tail())
        self.assertFalse([l for l in m.log_lines() if READY_LINE_RE.search(l)])

    def test_udp_socket(self):
        u = self.own(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        u.bind(("127.0.0.1", 0))
        self.expect_bad_fd([u], 3)

    def test_pipe(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        self.expect_bad_fd([r], 3)

    def test_tcp_socket_not_listening(self):
        s = self.own(tcp_listener(listen=False))
        self.expect_bad_fd([s], 3)

    def test_unix_stream_listener(self):
        u = self.own(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        u.bind(os.path.join(self.tmpdir, "unix.sock"))
        u.listen(4)
        self.expect_bad_fd([u], 3)

    def test_second_descriptor_bad(self):
        good = self.own(tcp_listener())
        bad = self.own(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        bad.bind(("127.0.0.1", 0))
        self.expect_bad_fd([good, bad], 4)

    def test_listen_pid_of_another_process_is_ignored(self):
        # LISTEN_PID names someone else: the variables are not for muxd; it
        # binds its own sockets.
        a = self.own(tcp_listener())
        m = self.start_muxd(env={"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())},
                            pass_fds=[a.fileno()])
        self.assertFalse([l for l in m.log_lines() if "passed by systemd" in l], m.log_tail())
        self.roundtrip(self.client(m), b"x\n")

    def test_systemd_socket_activate(self):
        tool = "/usr/bin/systemd-socket-activate"
        if not os.access(tool, os.X_OK):
            self.skipTest("%s is not installed" % tool)
        port = mt.free_port()
        m = self.start_muxd(wait_ready=False,
                            wrapper=[tool, "-l", "127.0.0.1:%d" % port, "--fdname=act"],
                            listen=[{"port": port, "address": "127.0.0.1", "suffix": "S"}])
        m.wait_log(r"^Listening on 127\.0\.0\.1:%d" % port, timeout=10)
        self.assertFalse([l for l in m.log_lines() if l.startswith("muxd:")],
                         "muxd must not run before the first connection")
        s = self.connect(port)      # this connect makes the tool exec muxd
        self.assertRecv(s, DEFAULT_GREETING, timeout=10)
        self.roundtrip(s, b"activated\n", suffix=b"S")
        self.assertLogged(m, "muxd: info: listening on 127.0.0.1:%d, passed by systemd "
                        "(echo, line framing)" % port)
        self.roundtrip(self.client(m, port=port), b"second\n", suffix=b"S")


# ---------------------------------------------------------------- IPv4 on dual-stack

class DualStackLogging(SystemdCase):

    def test_ipv4_peer_logged_as_ipv4(self):
        if not mt.have_ipv6():
            self.skipTest("no IPv6: 'all addresses' is 0.0.0.0, nothing is mapped")
        m = self.start_muxd(log_level="debug", listen=None, ports=[0],
                            allow=["127.0.0.1/32"])
        self.assertEqual(m.listeners[0][0], "[::]", m.log_tail())
        p = m.port
        s = self.client(m, port=p)
        cport = s.getsockname()[1]
        self.roundtrip(s, b"v4\n")
        s.close()
        m.wait_log("^muxd: debug: connection from 127.0.0.1:%d closed$" % cport)
        self.assertLogged(m, "muxd: debug: connection from 127.0.0.1:%d on [::]:%d" % (cport, p))
        self.assertLogged(m, 'muxd: debug: message from 127.0.0.1:%d: "v4\\n"' % cport)
        self.assertFalse([l for l in m.log_lines() if "::ffff:" in l], m.log_tail())


# ---------------------------------------------------------------- sd_notify

class Notify(SystemdCase):

    def test_state_sequence_and_status(self):
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address}, suffix="1")
        n.wait("READY=1")
        n.wait(status_re(1, 0))
        c = self.client(m)
        self.roundtrip(c, b"a\n", suffix=b"1")

        # 1: a good reload
        since = n.count()
        t0 = time.monotonic_ns() // 1000
        self.reload(m, mt.base_settings(self.backend, suffix="2"))
        i, text = n.wait(re.compile(r"^RELOADING=1"), since=since)
        mo = RELOADING_RE.match(text)
        self.assertIsNotNone(mo, "RELOADING datagram: %r" % text)
        usec = int(mo.group(1))
        self.assertGreaterEqual(usec, t0, "MONOTONIC_USEC before the SIGHUP was sent")
        self.assertLess(usec - t0, 5_000_000, "MONOTONIC_USEC too far from CLOCK_MONOTONIC")
        n.wait("READY=1", since=i + 1)
        n.wait(status_re(1, 1, reloaded=True), since=since)

        # 2: a failed reload: STATUS says so, with the first error, until a good one
        since = n.count()
        bad = mt.render_config(mt.base_settings(self.backend, max_connections=0))
        bad_line = bad.splitlines().index("max_connections = 0;") + 1
        lsince = self.reload(m, text=bad, expect_ok=False)
        first_error = "%s:%d: max_connections: must be between 1 and 1000000, got 0" % (
            m.config_path, bad_line)
        self.assertLogged(m, "muxd: err: " + first_error, lsince)
        i, _ = n.wait(re.compile(r"^RELOADING=1"), since=since)
        i, _ = n.wait("READY=1", since=i + 1)
        n.wait(status_re(1, 1, failed=first_error), since=since)
        self.roundtrip(c, b"b\n", suffix=b"1")     # old config (and old suffix) serve
        self.roundtrip(self.client(m), b"c\n", suffix=b"2")
        # the error stays in STATUS= while the numbers change
        n.wait(status_re(1, 2, failed=first_error), since=since, timeout=5)

        # 3: a good reload clears it
        since = n.count()
        self.reload(m, mt.base_settings(self.backend, suffix="3"))
        i, _ = n.wait(re.compile(r"^RELOADING=1"), since=since)
        n.wait("READY=1", since=i + 1)
        n.wait(status_re(1, 2, reloaded=True), since=since)
        self.assertFalse([t for t in n.texts(since) if "reload failed" in t], n.texts(since))

        self.assertEqual(m.stop(), 0, m.log_tail())
        n.wait("STOPPING=1")
        states = ["RELOADING" if RELOADING_RE.match(t) else t for t in n.states()]
        self.assertEqual(states, ["READY=1", "RELOADING", "READY=1", "RELOADING", "READY=1",
                                  "RELOADING", "READY=1", "STOPPING=1"])
        for t in n.texts():
            self.assertTrue(t in ("READY=1", "STOPPING=1") or RELOADING_RE.match(t)
                            or STATUS_RE.match(t), "unexpected datagram %r" % t)

    def test_abstract_notify_socket(self):
        n = self.notify_socket(abstract=True)
        self.assertTrue(n.address.startswith("@"))
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address})
        n.wait("READY=1")
        since = n.count()
        self.reload(m, mt.base_settings(self.backend))
        i, _ = n.wait(RELOADING_RE, since=since)
        n.wait("READY=1", since=i + 1)
        self.assertEqual(m.stop(), 0)
        n.wait("STOPPING=1")

    def test_status_at_most_once_a_second_and_only_on_change(self):
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address})
        n.wait(status_re(1, 0))
        # idle from the start: nothing changes, nothing is sent
        count = n.count()
        time.sleep(1.5)     # a silence check: nothing may arrive in this window
        self.assertEqual(n.texts(count), [], "STATUS= sent without a change")
        # clients come every 0.2 s: the numbers change all the time
        socks = []
        t_end = time.monotonic() + 3.5
        while time.monotonic() < t_end:
            socks.append(self.client(m))
            self.roundtrip(socks[-1], b"r\n")
            time.sleep(0.2)
        n.wait(status_re(1, len(socks)), timeout=5)
        with n.cond:
            status = [(t, x) for t, x in n.messages if x.startswith("STATUS=")]
        self.assertGreaterEqual(len(status), 3, status)
        for (t1, x1), (t2, x2) in zip(status, status[1:]):
            self.assertNotEqual(x1, x2, "the same STATUS= twice")
            # receive times jitter a little; muxd spaces them by >= 1 s
            self.assertGreaterEqual(t2 - t1, 0.9, "STATUS= more than once a second: %r"
                                    % status)
        for _, x in status:
            self.assertRegex(x, STATUS_RE)

    def test_status_rates(self):
        # accepted/s and refused/s over the same window: 10 accepted and 5
        # refused show as a ratio of 2
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address}, allow=["127.0.0.1/32"])
        n.wait(status_re(1, 0))
        for _ in range(10):
            self.client(m).close()
        for _ in range(5):
            s = socket.socket()
            self.addCleanup(s.close)
            s.bind(("127.0.0.2", 0))
            s.settimeout(mt.scaled(5))
            s.connect(("127.0.0.1", m.port))
            self.assertEqual(mt.recv_all(s, allow_reset=True), b"")
        rx = re.compile(r"^STATUS=1 listener, 0 clients, (\d+\.\d) accepted/s, (\d+\.\d) refused/s")

        def latest_ratio_is_two():
            for t in reversed(n.texts()):
                mo = rx.match(t)
                if mo:
                    a, r = (float(x) for x in mo.groups())
                    return r > 0 and abs(a / r - 2) < 0.35
            return False
        self.wait_for(latest_ratio_is_two, 10, "STATUS= with accepted/s twice refused/s")

    def test_watchdog(self):
        # WATCHDOG_USEC = 1 s: muxd pings every 0.5 s from its loop. The
        # contract checked is systemd's: no gap as long as the watchdog
        # timeout while muxd keeps serving (generous for a loaded machine).
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address, "WATCHDOG_USEC": "1000000"},
                            pid_env=["WATCHDOG_PID"])
        i, _ = n.wait("READY=1")
        idx = i
        for k in range(2):
            idx, _ = n.wait("WATCHDOG=1", since=idx + 1, timeout=5)
        # keep serving meanwhile, and look at the spacing over two seconds
        s = self.client(m)
        t_end = time.monotonic() + 2.0
        k = 0
        while time.monotonic() < t_end:
            self.roundtrip(s, b"w%d\n" % k)
            k += 1
        with n.cond:
            times = [t for t, x in n.messages if x == "WATCHDOG=1"]
        self.assertGreaterEqual(len(times), 4, "WATCHDOG=1 every ~500 ms for 1000000 usec")
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertLess(max(gaps), 1.0, "a WATCHDOG=1 gap as long as WATCHDOG_USEC: %r" % gaps)

    def test_watchdog_for_another_pid_is_ignored(self):
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address, "WATCHDOG_USEC": "200000",
                                 "WATCHDOG_PID": "1"})
        n.wait("READY=1")
        time.sleep(0.6)     # a silence check
        self.assertNotIn("WATCHDOG=1", n.texts())

    def test_unusable_notify_socket_said_once_then_quiet(self):
        # NOTIFY_SOCKET names a path nobody is bound to (ENOENT, and a stale
        # socket file: ECONNREFUSED): said once, then muxd stops trying, so
        # it does not wake up to retry while idle.
        stale = os.path.join(self.tmpdir, "stale.sock")
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        gone.bind(stale)
        gone.close()
        for path in (os.path.join(self.tmpdir, "missing", "notify"), stale):
            m = self.start_muxd(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
                                pid_env=["WATCHDOG_PID"])
            m.wait_log(r"^muxd: warning: cannot notify the service manager \(NOTIFY_SOCKET=%s\): "
                       r"(No such file or directory|Connection refused); no more notifications"
                       % re.escape(path))
            self.roundtrip(self.client(m), b"served\n")
            before = self.wakeups(m)
            time.sleep(1.0)     # an idle window: count wake-ups in it
            woke = self.wakeups(m) - before
            # retrying every 100 ms (or pinging a dead watchdog every 100 ms)
            # would be about 10 here
            self.assertLessEqual(woke, 3, "muxd woke %d times in 1 s while idle" % woke)
            self.assertEqual(len([l for l in m.log_lines() if "cannot notify" in l]), 1,
                             m.log_tail())
            self.assertEqual(m.stop(), 0, m.log_tail())

    @staticmethod
    def wakeups(m):
        """Context switches of muxd's own threads so far (each wake-up is
        one): the main thread and the muxd-worker-N ones, not a sanitizer
        runtime's."""
        total = 0
        for tid in os.listdir("/proc/%d/task" % m.pid):
            with open("/proc/%d/task/%s/comm" % (m.pid, tid)) as f:
                if int(tid) != m.pid and not f.read().startswith("muxd-worker-"):
                    continue
            with open("/proc/%d/task/%s/status" % (m.pid, tid)) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        return total

    def test_full_notify_socket_never_stalls(self):
        n = self.notify_socket(read=False)
        # fill its queue before muxd starts: nobody reads it
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(filler.close)
        filler.setblocking(False)
        filled = 0
        while filled < 10000:
            try:
                filler.sendto(b"FILL", n.address)
            except BlockingIOError:
                break
            filled += 1
        self.assertLess(filled, 10000, "could not fill the notify socket")
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address, "WATCHDOG_USEC": "20000"},
                            pid_env=["WATCHDOG_PID"])
        clients = [self.client(m) for _ in range(3)]
        worst = 0.0
        for k in range(100):
            for i, c in enumerate(clients):
                t = time.monotonic()
                self.roundtrip(c, b"c%d-%d\n" % (i, k))
                worst = max(worst, time.monotonic() - t)
        self.assertLess(worst, 0.5, "a round trip took %.3fs with the notify socket full" % worst)
        t = time.monotonic()
        self.reload(m, mt.base_settings(self.backend, suffix="R"))
        self.assertLess(time.monotonic() - t, 2.0, "reload stalled by the full notify socket")
        for i, c in enumerate(clients):
            self.roundtrip(c, b"after %d\n" % i)
        self.roundtrip(self.client(m), b"new\n", suffix=b"R")
        # now read: the state changes that could not go were kept, in order
        n.start_reading()
        n.wait(re.compile(r"^RELOADING=1"), timeout=5)
        n.wait("READY=1", since=n.wait(re.compile(r"^RELOADING=1"))[0] + 1, timeout=5)
        self.assertEqual(n.texts()[:filled], ["FILL"] * filled)
        states = ["RELOADING" if RELOADING_RE.match(t) else t
                  for t in n.states(filled)]
        self.assertEqual(states, ["READY=1", "RELOADING", "READY=1"])
        self.assertEqual(m.stop(), 0, m.log_tail())
        n.wait("STOPPING=1")


# ---------------------------------------------------------------- log targets

class FakeJournal:
    """A socket standing in for /run/systemd/journal/socket; parses journald's
    native protocol into dicts (KEY=VALUE lines, or KEY\\n<le64 size><data>\\n)."""

    def __init__(self, directory):
        self.dir = os.path.join(directory, "journal")
        os.mkdir(self.dir)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.dir, "socket"))
        self.sock.settimeout(0.1)
        self.entries = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    @staticmethod
    def parse(data):
        e = {}
        pos = 0
        while pos < len(data):
            nl = data.index(b"\n", pos)
            line = data[pos:nl]
            if b"=" in line:
                k, v = line.split(b"=", 1)
                pos = nl + 1
            else:
                k = line
                size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
                v = data[nl + 9:nl + 9 + size]
                pos = nl + 9 + size + 1
            e[k.decode()] = v.decode("utf-8", "replace")
        return e

    def _read(self):
        while not self.closed:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                break
            with self.cond:
                self.entries.append(self.parse(data))
                self.cond.notify_all()

    def wait(self, pred, timeout=5.0, what="an entry"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.entries:
                    if pred(e):
                        return e
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no journal entry: %s; got %r" % (what, self.entries))
                self.cond.wait(remaining)

    def close(self):
        self.closed = True
        self.thread.join(timeout=5)
        self.sock.close()


_NS_OK = None


def mount_namespace_ok():
    global _NS_OK
    if _NS_OK is None:
        _NS_OK = False
        if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("mount"):
            try:
                _NS_OK = subprocess.run(
                    ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                     "mount -t tmpfs tmpfs /run 2>/dev/null || mount -t tmpfs tmpfs /mnt"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, timeout=10).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                pass
    return _NS_OK


# In a private mount namespace, put our journal socket at the well-known path,
# optionally point JOURNAL_STREAM at stderr (what systemd does for a service
# with StandardError=journal), then exec muxd (same pid).
_NS_SCRIPT = r"""
if [ -d /run/systemd ]; then top=/run/systemd; else top=/run; fi
mount -t tmpfs tmpfs "$top" &&
mkdir -p /run/systemd/journal &&
mount --bind "$0" /run/systemd/journal || exit 97
if [ -n "$MUXDTEST_STDERR_IS_JOURNAL" ]; then
    JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) || exit 98
    export JOURNAL_STREAM
    unset MUXDTEST_STDERR_IS_JOURNAL
fi
exec "$@"
"""


class LogTargets(SystemdCase):

    def test_stderr_format(self):
        m = self.start_muxd(log_level="debug")
        s = self.client(m)
        self.roundtrip(s, b"x\n")
        s.close()
        self.assertEqual(m.stop(), 0)
        lines = m.log_lines()
        self.assertEqual(lines[0], "muxd: info: listening on 127.0.0.1:%d (echo, line framing)"
                         % m.port)
        self.assertEqual(lines[1], "muxd: info: ready: 1 listener, backend epoll, "
                                   "max_connections 100" + mt.READY_SUFFIX)
        self.assertEqual(lines[-1], "muxd: info: stopped")
        self.assertEqual([l for l in lines if not mt.LOG_LINE_RE.match(l)], [])

    def test_auto_with_foreign_journal_stream_logs_to_stderr(self):
        st = os.stat(__file__)
        journal = None
        wrapper = ()
        if mount_namespace_ok():
            # a journal is reachable: muxd must still not use it
            journal = FakeJournal(self.tmpdir)
            self.addCleanup(journal.close)
            wrapper = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                       _NS_SCRIPT, journal.dir]
        for value in ("%d:%d" % (st.st_dev, st.st_ino), "0:0", "garbage"):
            with self.subTest(JOURNAL_STREAM=value):
                m = self.start_muxd(env={"JOURNAL_STREAM": value}, log_target="auto",
                                    wrapper=wrapper, name="auto.conf")
                self.assertEqual(m.log_lines()[-1], "muxd: info: ready: 1 listener, backend "
                                 "epoll, max_connections 100" + mt.READY_SUFFIX)
                self.assertEqual(m.stop(), 0)
        # no --log-target at all: auto is the default
        m = self.start_muxd(env={"JOURNAL_STREAM": "0:0"}, log_target=None, wrapper=wrapper,
                            name="default.conf")
        self.assertEqual(m.stop(), 0)
        self.assertEqual(m.log_lines()[-1], "muxd: info: stopped")
        if journal is not None:
            self.assertEqual(journal.entries, [])

    def test_journalctl(self):
        if not os.path.exists("/run/systemd/journal/socket"):
            self.skipTest("no journal here (/run/systemd/journal/socket does not exist)")
        if not shutil.which("journalctl"):
            self.skipTest("journalctl is not installed")
        try:
            ok = subprocess.run(["journalctl", "-n", "0", "--no-pager"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if not ok:
            self.skipTest("journalctl cannot read the journal")
        m = self.start_muxd(log_target="journal", wait_ready=False)
        pid = m.pid
        deadline = time.monotonic() + 15
        entries = []
        while True:
            p = subprocess.run(["journalctl", "-o", "json", "--no-pager", "_PID=%d" % pid],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=10)
            entries = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
            if any(e.get("MUXD_EVENT") == "started" for e in entries):
                break
            if time.monotonic() > deadline:
                self.skipTest("the journal did not show muxd's entries within 15 s "
                              "(journald not storing?); got %r" % entries)
            time.sleep(0.2)     # polling journalctl: there is nothing to wait on
        started = [e for e in entries if e.get("MUXD_EVENT") == "started"][0]
        self.assertEqual(started["SYSLOG_IDENTIFIER"], "muxd")
        self.assertEqual(started["PRIORITY"], "6")
        self.assertEqual(started["MESSAGE_ID"], "77c0d19eaa9a4c8ea30b9d1a8fbff292")
        self.assertTrue(started["MESSAGE"].startswith("ready: 1 listener, backend epoll"),
                        started)
        listening = [e for e in entries if e.get("MUXD_EVENT") == "listening"]
        self.assertEqual(len(listening), 1, entries)
        self.assertRegex(listening[0]["MUXD_LISTEN"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(m.stop(), 0)
        self.assertEqual(m.log_lines(), [], "nothing on stderr with --log-target journal")


class NativeJournal(SystemdCase):
    """journald's native protocol, read from our own socket at
    /run/systemd/journal/socket inside a private mount namespace."""

    def setUp(self):
        super().setUp()
        if not mount_namespace_ok():
            self.skipTest("needs root and `unshare -m` (a private mount namespace) "
                          "to stand in for journald")
        self.journal = FakeJournal(self.tmpdir)
        self.addCleanup(self.journal.close)

    def start_journal_muxd(self, log_target="journal", env=None, **over):
        m = self.start_muxd(wait_ready=False, log_target=log_target, env=env,
                            wrapper=["unshare", "-m", "--propagation", "private", "/bin/sh",
                                     "-c", _NS_SCRIPT, self.journal.dir], **over)
        self.journal.wait(lambda e: e.get("MUXD_EVENT") == "started", timeout=10,
                          what="MUXD_EVENT=started")
        return m

    def entry(self, message_re, timeout=5.0):
        rx = re.compile(message_re)
        return self.journal.wait(lambda e: rx.search(e.get("MESSAGE", "")), timeout,
                                 what="MESSAGE /%s/" % message_re)

    def test_fields(self):
        m = self.start_journal_muxd()
        listening = self.entry(r"^listening on ")
        port = int(listening["MESSAGE"].split(":")[1].split()[0])
        self.assertEqual(listening["MESSAGE"], "listening on 127.0.0.1:%d (echo, line framing)"
                         % port)
        self.assertEqual(listening["PRIORITY"], "6")
        self.assertEqual(listening["SYSLOG_IDENTIFIER"], "muxd")
        self.assertEqual(listening["MUXD_EVENT"], "listening")
        self.assertEqual(listening["MUXD_LISTEN"], "127.0.0.1:%d" % port)
        started = self.entry(r"^ready: ")
        self.assertEqual(started["MESSAGE"], "ready: 1 listener, backend epoll, "
                                             "max_connections 100" + mt.READY_SUFFIX)
        self.assertEqual(started["PRIORITY"], "6")
        self.assertEqual(started["SYSLOG_IDENTIFIER"], "muxd")
        self.assertEqual(started["MUXD_EVENT"], "started")
        self.assertEqual(started["MESSAGE_ID"], "77c0d19eaa9a4c8ea30b9d1a8fbff292")
        s = self.client(m, port=port)
        self.roundtrip(s, b"j\n")

        # reloaded
        self.write_config(mt.base_settings(self.backend))
        m.signal(signal.SIGHUP)
        e = self.entry(r"^configuration reloaded from ")
        self.assertEqual(e["MESSAGE"], "configuration reloaded from %s: 1 listener"
                         % m.config_path)
        self.assertEqual(e["MESSAGE_ID"], "d887a7bd349c48a3b964f9806df6247e")
        self.assertEqual(e["MUXD_EVENT"], "reloaded")
        self.assertEqual(e["PRIORITY"], "6")
        # reload failed
        self.write_config(text="ports = [ 0 \n")
        m.signal(signal.SIGHUP)
        e = self.entry(r"^reload failed")
        self.assertEqual(e["PRIORITY"], "3")
        self.assertEqual(e["MESSAGE_ID"], "ed663aa86d2d448b82d142807db83afe")
        self.assertEqual(e["MUXD_EVENT"], "reload-failed")
        e = self.entry(r"^%s:\d+: " % re.escape(m.config_path))
        self.assertEqual(e["PRIORITY"], "3")
        # stopping
        s.close()
        self.assertEqual(m.stop(), 0)
        e = self.entry(r"stopping")
        self.assertEqual(e["MESSAGE"], "Terminated: stopping, draining 0 connections (at most 5s)")
        self.assertEqual(e["MESSAGE_ID"], "db2e91152f82459f84dacefd06617bf9")
        self.assertEqual(e["MUXD_EVENT"], "stopping")
        for e in self.journal.entries:
            self.assertEqual(e["SYSLOG_IDENTIFIER"], "muxd", e)
            self.assertIn(e["PRIORITY"], ("3", "4", "5", "6", "7"), e)
            self.assertFalse(e["MESSAGE"].startswith("muxd:"), e)
        self.assertEqual(m.log_lines(), [], "nothing on stderr with --log-target journal")

    def test_notice_priority(self):
        extra = self.own(tcp_listener())
        p = extra.getsockname()[1]
        self.start_muxd(wait_ready=False, log_target="journal",
                        env={"LISTEN_FDS": "1", "LISTEN_FDNAMES": "extra"},
                        pass_fds=[extra.fileno()], pid_env=["LISTEN_PID"],
                        wrapper=["unshare", "-m", "--propagation", "private", "/bin/sh",
                                 "-c", _NS_SCRIPT, self.journal.dir])
        e = self.entry(r"^socket 127\.0\.0\.1:%d .*global defaults$" % p, timeout=10)
        self.assertEqual(e["PRIORITY"], "5")
        self.assertEqual(e["MUXD_LISTEN"], "127.0.0.1:%d" % p)

    def test_peer_field(self):
        m = self.start_journal_muxd(log_level="debug")
        port = int(self.entry(r"^listening on ")["MUXD_LISTEN"].rsplit(":", 1)[1])
        s = self.client(m, port=port)
        cport = s.getsockname()[1]
        self.roundtrip(s, b"p\n")
        e = self.entry(r"^connection from 127\.0\.0\.1:%d on " % cport)
        self.assertEqual(e["PRIORITY"], "7")
        self.assertEqual(e.get("MUXD_PEER"), "127.0.0.1:%d" % cport,
                         "a per-connection entry carries MUXD_PEER: %r" % e)

    def test_proxy_fields(self):
        # behind a load balancer: MUXD_PEER is the client its PROXY header
        # names, MUXD_PROXY the balancer (here the test itself)
        m = self.start_journal_muxd(mode="oneshot", listen=[
            {"port": 0, "address": "127.0.0.1", "proxy_protocol": "v1", "proxy_from": ["127.0.0.1"]}])
        port = int(self.entry(r"^listening on ")["MUXD_LISTEN"].rsplit(":", 1)[1])
        s = self.connect(port)
        s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 %d\r\nvia\n" % port)
        self.assertRecv(s, mt.DEFAULT_GREETING)
        e = self.entry(r"^message from 192\.0\.2\.7:40001 via 127\.0\.0\.1:%d: " % s.getsockname()[1])
        self.assertEqual(e.get("MUXD_PEER"), "192.0.2.7:40001", e)
        self.assertEqual(e.get("MUXD_PROXY"), "127.0.0.1:%d" % s.getsockname()[1], e)
        # a broken header: the balancer in MUXD_PROXY, at warning
        s = self.connect(port)
        s.sendall(b"GET / HTTP/1.0\r\n")
        e = self.entry(r"^load balancer 127\.0\.0\.1:%d: invalid PROXY header " % s.getsockname()[1])
        self.assertEqual((e["PRIORITY"], e.get("MUXD_EVENT"), e.get("MUXD_PROXY")),
                         ("4", "proxy-header", "127.0.0.1:%d" % s.getsockname()[1]))

    def test_auto_when_stderr_is_the_journal(self):
        m = self.start_journal_muxd(log_target="auto", env={"MUXDTEST_STDERR_IS_JOURNAL": "1"})
        self.entry(r"^listening on 127\.0\.0\.1:")
        self.assertEqual(m.stop(), 0)
        self.entry(r"^stopped$")
        self.assertEqual(m.log_lines(), [], "JOURNAL_STREAM matches stderr: journal, not stderr")


if __name__ == "__main__":
    mt.main()
