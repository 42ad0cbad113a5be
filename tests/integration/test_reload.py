# SPDX-License-Identifier: MIT
"""SIGHUP reload, for each backend: ports added and removed, invalid files,
bind conflicts (all or nothing), which settings apply to whom and when, and
50 reloads under load without a lost, wrong or refused reply.

A reload is complete when muxd logs `configuration reloaded` (or `reload
failed`), or when READY=1 follows RELOADING=1 on the notify socket; config
files are replaced atomically so muxd never reads half of one."""

import os
import re
import signal
import socket
import sys
import time

import muxdtest as mt
from muxdtest import recv_exact, expect_eof

RELOADED_RE = re.compile(r"^muxd: info: configuration reloaded from ")
RELOAD_FAILED_RE = re.compile(r"^muxd: err: reload failed")
RELOADING_RE = re.compile(r"^RELOADING=1\nMONOTONIC_USEC=\d+$")


def entry(port, **over):
    e = {"port": port, "address": "127.0.0.1"}
    e.update(over)
    return e


def refused(port, host="127.0.0.1"):
    """True if a connect to host:port is refused (nothing listens)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def tcp_listener(host="127.0.0.1", port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(16)
    return s


class ReloadHelpers:

    def settings(self, **over):
        return mt.base_settings(over.pop("backend", self.backend), **over)

    def reload(self, muxd, settings=None, text=None, expect_ok=True, timeout=5.0):
        """Rewrite the config, SIGHUP, wait for the outcome; returns the log
        index where the wait started."""
        if text is None:
            text = mt.render_config(settings)
        self.write_config(text=text, name=os.path.basename(muxd.config_path))
        since = muxd.log_count()
        muxd.signal(signal.SIGHUP)
        if expect_ok is None:       # either outcome
            rx = re.compile("%s|%s" % (RELOADED_RE.pattern, RELOAD_FAILED_RE.pattern))
        else:
            rx = RELOADED_RE if expect_ok else RELOAD_FAILED_RE
        muxd.wait_log(rx, timeout=timeout, since=since)
        if expect_ok:
            self.assertFalse([l for l in muxd.log_lines(since) if RELOAD_FAILED_RE.search(l)],
                             muxd.log_tail())
        return since

    def assertRefused(self, port):
        self.assertTrue(refused(port), "127.0.0.1:%d still accepts connections" % port)


class ReloadMixin(ReloadHelpers):

    # ------------------------------------------------------------ listeners

    def test_port_added(self):
        p1, p2 = mt.free_ports(2)
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address}, listen=[entry(p1, suffix="1")])
        n.wait("READY=1")
        old = self.client(m, port=p1)
        self.roundtrip(old, b"before\n", suffix=b"1")
        self.assertRefused(p2)
        since_n = n.count()
        self.write_config(self.settings(listen=[entry(p1, suffix="1"),
                                                entry(p2, suffix="2", greeting="two\n")]))
        since = m.log_count()
        m.signal(signal.SIGHUP)
        # completion seen on the notify socket this time
        i, _ = n.wait(RELOADING_RE, since=since_n)
        n.wait("READY=1", since=i + 1)
        m.wait_log(RELOADED_RE, since=since)    # the notify datagram may overtake the log
        self.assertLogged(m, "muxd: info: listening on 127.0.0.1:%d (echo, line framing)" % p2,
                          since)
        self.assertLogged(m, "muxd: info: configuration reloaded from %s: 2 listeners"
                          % m.config_path, since)
        # the unchanged listener was not reopened
        self.assertFalse([l for l in m.log_lines(since) if "127.0.0.1:%d" % p1 in l],
                         m.log_tail())
        self.roundtrip(self.client(m, port=p2, greeting=b"two\n"), b"new port\n", suffix=b"2")
        self.roundtrip(self.client(m, port=p1), b"old port\n", suffix=b"1")
        self.roundtrip(old, b"after\n", suffix=b"1")

    def test_port_removed(self):
        p1, p2 = mt.free_ports(2)
        m = self.start_muxd(listen=[entry(p1, suffix="1"), entry(p2, suffix="2")])
        on_removed = self.client(m, port=p2)
        self.roundtrip(on_removed, b"before\n", suffix=b"2")
        since = self.reload(m, self.settings(listen=[entry(p1, suffix="1")]))
        self.assertLogged(m, "muxd: info: no longer listening on 127.0.0.1:%d" % p2, since)
        self.assertLogged(m, "muxd: info: configuration reloaded from %s: 1 listener"
                          % m.config_path, since)
        self.assertRefused(p2)
        # established connections on the removed port are never dropped
        for k in range(20):
            self.roundtrip(on_removed, b"still here %d\n" % k, suffix=b"2")
        self.roundtrip(self.client(m, port=p1), b"p1\n", suffix=b"1")
        # ... nor by further reloads
        self.reload(m, self.settings(listen=[entry(p1, suffix="x")]))
        self.roundtrip(on_removed, b"and now\n", suffix=b"2")

    def test_port_removed_while_paused(self):
        # At max_connections: a client waiting on a port a reload removes is
        # let go (as a removed listener's backlog is), one waiting on a port
        # kept is served when there is room. On io_uring the first waiting
        # client is already accepted (a multishot accept), and held by muxd.
        p1, p2 = mt.free_ports(2)
        m = self.start_muxd(max_connections=2, listen=[entry(p1), entry(p2, suffix="2")])
        served = [self.client(m, port=p1) for _ in range(2)]
        on_removed = self.connect(p2)
        mt.expect_silence(on_removed, 0.5)
        on_kept = self.connect(p1)
        mt.expect_silence(on_kept, 0.2)
        self.reload(m, self.settings(max_connections=2, listen=[entry(p1)]))
        self.assertEqual(mt.recv_all(on_removed, timeout=5, allow_reset=True), b"",
                         "a client waiting on a removed port got data")
        mt.expect_silence(on_kept, 0.3)
        for s in served:
            self.roundtrip(s, b"still\n")
        served[0].close()
        self.assertEqual(recv_exact(on_kept, len(mt.DEFAULT_GREETING)), mt.DEFAULT_GREETING)
        self.roundtrip(on_kept, b"kept\n")

    def test_unchanged_listeners_keep_their_socket(self):
        # port 0 entries too: the same entry keeps the same (ephemeral) port
        p1 = mt.free_ports(1)[0]
        settings = self.settings(listen=[entry(p1), entry(0, suffix="E")])
        m = self.start_muxd(text=mt.render_config(settings))
        p_eph = [p for p in m.ports if p != p1][0]
        c1, c2 = self.client(m, port=p1), self.client(m, port=p_eph)
        for k in range(3):
            since = self.reload(m, settings)
            self.assertFalse([l for l in m.log_lines(since) if "listening on" in l],
                             m.log_tail())
            self.roundtrip(self.client(m, port=p_eph), b"same port %d\n" % k, suffix=b"E")
        self.roundtrip(c1, b"c1\n")
        self.roundtrip(c2, b"c2\n", suffix=b"E")

    # ------------------------------------------------------------ failures

    def test_invalid_config_keeps_the_old_one(self):
        p1, p2 = mt.free_ports(2)
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address},
                            listen=[entry(p1, suffix="1"), entry(p2, suffix="2")])
        old = self.client(m, port=p1)
        cases = [
            # (text, first error without the "FILE:" prefix)
            (mt.render_config(self.settings(backend="kqueue", listen=[entry(p1, suffix="X")])),
             '1: backend: unknown backend "kqueue" (valid: %s)' % ", ".join(mt.BUILT_BACKENDS)),
            ("timeout = 60;\nlisten = ( { port = %d; address = \"127.0.0.1\"; }\n" % p1,
             "3: syntax error"),
            # libconfig 1.5 leaks the string here (see tests/lsan.supp)
            ("timeout = 60 \"oops\";\n", "1: syntax error"),
        ]
        for text, err in cases:
            with self.subTest(error=err):
                since = self.reload(m, text=text, expect_ok=False)
                first = "%s:%s" % (m.config_path, err)
                self.assertLogged(m, "muxd: err: " + first, since)
                self.assertLogged(m, "muxd: err: reload failed: keeping the running "
                                     "configuration", since)
                self.assertFalse([l for l in m.log_lines(since) if RELOADED_RE.search(l)])
                n.wait(re.compile("^STATUS=reload failed: %s; 2 listeners, " % re.escape(first)))
                self.roundtrip(old, b"old %s\n" % err[:1].encode(), suffix=b"1")
                self.roundtrip(self.client(m, port=p1), b"new p1\n", suffix=b"1")
                self.roundtrip(self.client(m, port=p2), b"new p2\n", suffix=b"2")
        # a missing file fails the same way
        os.unlink(m.config_path)
        since = m.log_count()
        m.signal(signal.SIGHUP)
        m.wait_log(RELOAD_FAILED_RE, since=since)
        self.assertLogged(m, "muxd: err: %s: cannot read: No such file or directory"
                          % m.config_path, since)
        self.roundtrip(old, b"no file\n", suffix=b"1")
        # and the next good file is taken
        self.reload(m, self.settings(listen=[entry(p1, suffix="good")]))
        self.roundtrip(self.client(m, port=p1), b"good\n", suffix=b"good")
        self.assertRefused(p2)

    def test_bind_conflict_rolls_back(self):
        held = tcp_listener()
        self.addCleanup(held.close)
        p_held = held.getsockname()[1]
        p1, p_new, p_after = mt.free_ports(3)
        n = self.notify_socket()
        m = self.start_muxd(env={"NOTIFY_SOCKET": n.address}, listen=[entry(p1, suffix="1")])
        old = self.client(m, port=p1)
        # p_new is opened first, then p_held fails: p_new must be closed again,
        # p_after never opened, and nothing else changed
        bad = self.settings(listen=[entry(p1, suffix="2"), entry(p_new, suffix="N"),
                                    entry(p_held, suffix="H"), entry(p_after, suffix="A")])
        text = mt.render_config(bad)
        since = self.reload(m, text=text, expect_ok=False)
        held_line = [i + 1 for i, l in enumerate(text.splitlines())
                     if "port = %d;" % p_held in l][0]
        first = "%s:%d: cannot listen on 127.0.0.1:%d: Address already in use" % (
            m.config_path, held_line, p_held)
        self.assertLogged(m, "muxd: err: reload failed: %s; keeping the running configuration"
                          % first, since)
        self.assertFalse([l for l in m.log_lines(since) if "listening on" in l], m.log_tail())
        n.wait(re.compile("^STATUS=reload failed: %s; 1 listener, 1 client, " % re.escape(first)))
        self.assertRefused(p_new)
        self.assertRefused(p_after)
        self.roundtrip(old, b"old\n", suffix=b"1")
        self.roundtrip(self.client(m, port=p1), b"new\n", suffix=b"1")     # old settings
        # once the port is free, the same file loads
        held.close()
        self.reload(m, bad)
        for p, sfx in ((p1, b"2"), (p_new, b"N"), (p_held, b"H"), (p_after, b"A")):
            self.roundtrip(self.client(m, port=p), b"all\n", suffix=sfx)
        n.wait(re.compile(r"^STATUS=4 listeners, "), timeout=5)

    def test_address_change_in_one_reload(self):
        # All addresses -> 127.0.0.1 on the same port: the new socket cannot be
        # bound while the old one listens, so the old one is closed first and
        # the new one bound at once; connections on the old one stay.
        p = mt.free_ports(1)[0]
        m = self.start_muxd(listen=[{"port": p}])
        old = self.client(m, port=p)
        since = self.reload(m, self.settings(listen=[entry(p, suffix="L")]))
        self.assertLogged(m, "muxd: info: listening on 127.0.0.1:%d (echo, line framing)" % p, since)
        self.assertLogged(m, "muxd: info: configuration reloaded from %s: 1 listener"
                          % m.config_path, since)
        self.roundtrip(self.client(m, port=p), b"swapped\n", suffix=b"L")
        self.roundtrip(old, b"old\n")
        if mt.have_ipv6():
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(5)
            with self.assertRaises(ConnectionRefusedError):
                s.connect(("::1", p))
            s.close()
        # and back: 127.0.0.1 -> all addresses
        since = self.reload(m, self.settings(listen=[{"port": p, "suffix": "W"}]))
        self.roundtrip(self.client(m, port=p), b"back\n", suffix=b"W")
        self.roundtrip(old, b"still\n")

    def test_no_listeners_refused(self):
        # A file that would leave muxd listening on nothing is refused; the
        # running listeners stay.
        p = mt.free_ports(1)[0]
        m = self.start_muxd(listen=[entry(p)])
        c = self.client(m, port=p)
        since = self.reload(m, text="", expect_ok=False)
        m.wait_log(r"no listeners", since=since)
        self.roundtrip(self.client(m, port=p), b"still listening\n")
        self.roundtrip(c, b"old\n")

    # ------------------------------------------------------------ settings

    def test_suffix_and_greeting_apply_to_new_connections(self):
        p = mt.free_ports(1)[0]
        m = self.start_muxd(greeting="v1\n", suffix="-1", listen=[entry(p)])
        old = self.client(m, port=p, greeting=b"v1\n")
        self.reload(m, self.settings(greeting="v2\n", suffix="-2", listen=[entry(p)]))
        new = self.client(m, port=p, greeting=b"v2\n")
        self.roundtrip(old, b"old\n", suffix=b"-1")
        self.roundtrip(new, b"new\n", suffix=b"-2")
        # per-listener override, the same way
        self.reload(m, self.settings(greeting="v2\n", suffix="-2",
                                     listen=[entry(p, suffix="-3", greeting="v3\n")]))
        newer = self.client(m, port=p, greeting=b"v3\n")
        self.roundtrip(newer, b"newer\n", suffix=b"-3")
        self.roundtrip(new, b"new\n", suffix=b"-2")
        self.roundtrip(old, b"old\n", suffix=b"-1")

    def test_timeout_applies_at_once(self):
        p = mt.free_ports(1)[0]
        m = self.start_muxd(timeout=60, listen=[entry(p)])
        c = self.client(m, port=p)
        self.roundtrip(c, b"x\n")
        t = time.monotonic()
        self.reload(m, self.settings(timeout=2, listen=[entry(p)]))
        expect_eof(c, timeout=5)
        self.assertLess(time.monotonic() - t, 4.0)
        # and back: a connection made under timeout = 2 is kept once it is 0
        c2 = self.client(m, port=p)
        self.reload(m, self.settings(timeout=0, listen=[entry(p)]))
        mt.expect_silence(c2, 2.0)
        self.roundtrip(c2, b"kept\n")

    def test_log_level_applies_at_once(self):
        p = mt.free_ports(1)[0]
        n = self.notify_socket()
        m = self.start_muxd(log_level="info", listen=[entry(p)], env={"NOTIFY_SOCKET": n.address})
        c = self.client(m, port=p)
        cport = c.getsockname()[1]
        self.roundtrip(c, b"quiet\n")
        self.reload(m, self.settings(log_level="debug", listen=[entry(p)]))
        self.roundtrip(c, b"loud\n")
        m.wait_log('^muxd: debug: message from 127.0.0.1:%d: "loud\\\\n"$' % cport)
        self.assertFalse([l for l in m.log_lines() if "quiet" in l], m.log_tail())
        # to err: the reload itself (info) is not logged any more: wait for READY=1
        self.write_config(self.settings(log_level="err", listen=[entry(p)]))
        since, since_n = m.log_count(), n.count()
        m.signal(signal.SIGHUP)
        i, _ = n.wait(RELOADING_RE, since=since_n)
        n.wait("READY=1", since=i + 1)
        self.roundtrip(c, b"silent\n")
        self.roundtrip(self.client(m, port=p), b"silent too\n")
        m.signal(signal.SIGUSR1)        # statistics are info
        self.assertEqual(m.stop(), 0)   # "stopping", "stopped" are info
        self.assertEqual(m.log_lines(since), [], "log_level err still logs lower levels")

    def test_oneshot_below_info_logs_no_message(self):
        # A oneshot message is logged at info: below that it is served (the
        # client closed) but neither logged nor formatted for nothing.
        p = mt.free_ports(1)[0]
        n = self.notify_socket()
        m = self.start_muxd(log_level="info", mode="oneshot", listen=[entry(p)],
                            env={"NOTIFY_SOCKET": n.address})
        c = self.client(m, port=p)
        c.sendall(b"logged\n")
        mt.expect_eof(c)
        m.wait_log(r'^muxd: info: message from 127\.0\.0\.1:\d+: "logged\\n"$')
        self.write_config(self.settings(log_level="notice", mode="oneshot", listen=[entry(p)]))
        since, since_n = m.log_count(), n.count()
        m.signal(signal.SIGHUP)
        i, _ = n.wait(RELOADING_RE, since=since_n)
        n.wait("READY=1", since=i + 1)
        for k in range(3):
            c = self.client(m, port=p)
            c.sendall(b"quiet %d\n" % k)
            mt.expect_eof(c)
        self.assertEqual(m.stop(), 0)
        self.assertEqual([l for l in m.log_lines(since) if "message from" in l], [], m.log_tail())

    def test_backend_change_at_next_start(self):
        other = [b for b in mt.BUILT_BACKENDS if b != self.backend][0]
        p = mt.free_ports(1)[0]
        m = self.start_muxd(listen=[entry(p)])
        c = self.client(m, port=p)
        since = self.reload(m, self.settings(backend=other, suffix="S", listen=[entry(p)]))
        self.assertLogged(m, 'muxd: notice: backend "%s" takes effect at the next start; '
                             'still running "%s"' % (other, self.backend), since)
        self.roundtrip(c, b"old\n")
        self.roundtrip(self.client(m, port=p), b"new\n", suffix=b"S")
        # reloading the same file again says it again (it is still not in effect)
        since = self.reload(m, self.settings(backend=other, suffix="S", listen=[entry(p)]))
        self.assertLogged(m, 'muxd: notice: backend "%s" takes effect at the next start; '
                             'still running "%s"' % (other, self.backend), since)
        since = self.reload(m, self.settings(backend=self.backend, listen=[entry(p)]))
        self.assertFalse([l for l in m.log_lines(since) if "takes effect" in l], m.log_tail())

    # ------------------------------------------------------------ under load

    N_CLIENTS = 30          # persistent connections doing round trips
    N_CHURN = 2             # threads opening fresh connections
    N_RELOADS = 50

    def test_reload_under_load(self):
        p1, p2, px, py = mt.free_ports(4)
        greet = {}      # (config, port) -> (greeting, suffix)

        def config(which):
            g, s = "hello %s\n" % which, "-%s" % which
            extra = px if which == "A" else py
            entries = [entry(p1), entry(p2, greeting="P2 %s\n" % which, suffix="-%s2" % which),
                       entry(extra, greeting="X %s\n" % which, suffix="-%sX" % which)]
            greet[(which, p1)] = (g.encode(), s.encode())
            greet[(which, p2)] = (b"P2 %s\n" % which.encode(), b"-%s2" % which.encode())
            greet[(which, extra)] = (b"X %s\n" % which.encode(), b"-%sX" % which.encode())
            # 900: select's budget leaves room for up to 64 workers' descriptors
            return mt.render_config(self.settings(greeting=g, suffix=s, listen=entries,
                                                  max_connections=900))
        texts = {"A": config("A"), "B": config("B")}
        mt.raise_nofile(4096)
        n = self.notify_socket()
        m = self.start_muxd(text=texts["A"], env={"NOTIFY_SOCKET": n.address})
        n.wait("READY=1")

        load = mt.ReloadTraffic(greet, "A")
        load.start([(p1, p2, px)[i % 3] for i in range(self.N_CLIENTS)], self.N_CHURN, (p1, p2))

        t_start = time.monotonic()
        try:
            for r in range(self.N_RELOADS):
                # let some traffic through under the current config (bounded)
                base = load.traffic()
                self.wait_for(lambda: load.traffic() >= base + 50 or load.stop.is_set(), 10,
                              "round trips between reloads (reload %d)" % r)
                if load.stop.is_set():
                    break
                which = "B" if r % 2 == 0 else "A"
                self.write_config(text=texts[which], name=os.path.basename(m.config_path))
                since, since_n = m.log_count(), n.count()
                load.begin_reload()
                m.signal(signal.SIGHUP)
                if r % 2:
                    # the (r + 1)th "reloaded" line: log lines may reach us later
                    # than the notifications (muxd never blocks on a slow reader of
                    # its stderr), so one of the previous reload may come now
                    self.wait_for(lambda: sum(1 for l in m.log_lines() if re.search(RELOADED_RE, l))
                                  >= r + 1, 10, "reload %d logged" % r)
                else:
                    i, _ = n.wait(RELOADING_RE, since=since_n, timeout=10)
                    n.wait("READY=1", since=i + 1, timeout=10)
                load.end_reload(which)
                # the extra port moved: the new one serves, the old one refuses
                added, removed = (py, px) if which == "B" else (px, py)
                try:
                    sock, suffix = load.open_client(added)
                except OSError as e:
                    self.fail("reload %d: the added port %d: %s\n%s" % (r, added, e, m.log_tail()))
                try:
                    self.assertEqual(suffix, greet[(which, added)][1])
                    sock.sendall(b"extra\n")
                    self.assertEqual(recv_exact(sock, len(b"extra\n") + len(suffix)),
                                     b"extra" + suffix + b"\n")
                finally:
                    sock.close()
                self.assertRefused(removed)
        finally:
            hung = load.stop_all()
        elapsed = time.monotonic() - t_start
        stats = load.stats
        self.assertFalse(hung, "client threads hung")
        self.assertEqual(load.errors, [], "errors under reload (%s)" % stats)
        self.assertEqual(stats["refused"], 0)
        self.assertEqual([l for l in m.log_lines() if RELOAD_FAILED_RE.search(l)], [])
        self.assertTrue(all(k > 0 for k in load.per_client), load.per_client)
        reloads = [l for l in m.log_lines() if RELOADED_RE.search(l)]
        self.assertEqual(len(reloads), self.N_RELOADS)
        self.assertEqual(m.stop(), 0, m.log_tail())
        n.wait("STOPPING=1")
        states = ["RELOADING" if RELOADING_RE.match(t) else t for t in n.states()]
        self.assertEqual(states, ["READY=1"] + ["RELOADING", "READY=1"] * self.N_RELOADS
                         + ["STOPPING=1"])
        bad = [l for l in m.log_lines() if l.startswith(("muxd: warning:", "muxd: err:"))]
        self.assertEqual(bad, [])
        sys.stderr.write("\n  [%s] %d reloads in %.1fs under load: %d round trips on %d "
                         "persistent connections, %d fresh connections (%d checked against "
                         "a stable config), 0 errors ... " % (
                             self.backend, self.N_RELOADS, elapsed, stats["roundtrips"],
                             self.N_CLIENTS, stats["fresh"], stats["strict"]))


mt.for_each_backend(ReloadMixin)


class ReloadEdgeCases(ReloadHelpers, mt.MuxdTestCase):
    """Backend-independent cases, run once."""

    backend = "epoll"

    def test_select_limits_of_the_running_backend(self):
        # Running select: a file naming another backend takes effect at the
        # next start only, so its max_connections must fit select's
        # FD_SETSIZE now, or listeners and clients would land on descriptors
        # select cannot watch.
        if "select" not in mt.BUILT_BACKENDS:
            self.skipTest("select not built")
        p1, p2 = mt.free_ports(2)
        m = self.start_muxd(text=mt.render_config(
            self.settings(backend="select", max_connections=500, listen=[entry(p1)])))
        c = self.client(m, port=p1)
        since = self.reload(m, self.settings(backend="epoll", max_connections=5000,
                                             listen=[entry(p1), entry(p2)]), expect_ok=False)
        m.wait_log(r'max_connections: 5000 is more than the running backend "select" can watch',
                   since=since)
        self.assertRefused(p2)
        self.roundtrip(c, b"old\n")
        # without max_connections the default is lowered to what select can watch
        since = self.reload(m, self.settings(backend="epoll", max_connections=None,
                                             listen=[entry(p1), entry(p2)]))
        self.roundtrip(self.client(m, port=p2), b"new\n")

    def test_ephemeral_port_written_into_the_config(self):
        # Started with port = 0; the operator writes the port muxd got into the
        # file.  Same (address, port) as the running listener: it is kept.
        m = self.start_muxd(listen=[entry(0)])
        p = m.port
        c = self.client(m, port=p)
        since = self.reload(m, self.settings(listen=[entry(p, suffix="P")]), expect_ok=None)
        self.assertFalse([l for l in m.log_lines(since) if RELOAD_FAILED_RE.search(l)],
                         "a reload naming the running listener's own address and port "
                         "must keep it\n" + m.log_tail())
        self.roundtrip(self.client(m, port=p), b"pinned\n", suffix=b"P")
        self.roundtrip(c, b"old\n")


if __name__ == "__main__":
    mt.main()
