# SPDX-License-Identifier: MIT
"""Live upgrade (SIGUSR2, `muxctl upgrade`), for each backend: muxd
re-executes its binary and hands every listener and connection to the new
process.  Clients with unique tags do round trips throughout (one thread per
client during the upgrades); none may be closed, and no reply may be lost,
duplicated, wrong or out of order.  Clients holding half-sent lines finish
them against the new process; pipelined input and output a client has not
read yet carry over; five upgrades in a row; a new process that refuses
(the test hook MUXD_TEST_REFUSE_HANDOVER) leaves every client served by the
old one; the idle timeout still applies after an upgrade; listeners still
accept and a reload works.

An upgrade is complete when the notify socket gets "MAINPID=<new>\\nREADY=1"
and the old process has exited with status 0.  The new process is not our
child: this test process makes itself a child subreaper (prctl), so the new
processes are re-parented to it and are waited for like the first."""

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import muxdtest as mt
from muxdtest import recv_exact, recv_until

MAINPID_RE = re.compile(r"^MAINPID=(\d+)\nREADY=1\nSTATUS=upgraded from \S+$")
FAILED_RE = re.compile(r"^muxd: err: live upgrade failed: (.*); this process goes on serving")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def wait_pid_exit(pid, timeout):
    """Exit status of our child (or re-parented orphan) pid; None on timeout."""
    deadline = time.monotonic() + mt.scaled(timeout)
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)


class Client:
    """A connection with a tag of its own: every request is TAG-SEQ."""

    def __init__(self, port, tag, rcvbuf=None):
        self.tag = tag
        self.seq = 0
        self.sock = mt.connect(port, timeout=10, rcvbuf=rcvbuf)
        self.lock = threading.Lock()
        if recv_exact(self.sock, len(mt.DEFAULT_GREETING), 10) != mt.DEFAULT_GREETING:
            raise AssertionError("%s: bad greeting" % tag)

    def roundtrip(self):
        with self.lock:
            self.seq += 1
            line = b"%s-%d\n" % (self.tag.encode(), self.seq)
            self.sock.sendall(line)
            want = mt.echo_reply(line)
            got = recv_exact(self.sock, len(want), 10)
            if got != want:
                raise AssertionError("%s: sent %r, got %r" % (self.tag, line, got))

    def close(self):
        self.sock.close()


class Traffic:
    """One thread per client doing round trips until stopped; any error
    (a close, a wrong, lost, duplicated or reordered reply) is recorded."""

    def __init__(self, clients):
        self.clients = clients
        self.stop = threading.Event()
        self.errors = []
        self.count = 0
        self.max_gap = 0.0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(c,), daemon=True) for c in clients]

    def run(self, c):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                c.roundtrip()
            except Exception as e:      # noqa: B902 - recorded for the test to report
                with self.lock:
                    self.errors.append("%s: %r" % (c.tag, e))
                return
            gap = time.monotonic() - t0
            with self.lock:
                self.count += 1
                self.max_gap = max(self.max_gap, gap)
            time.sleep(0.002)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=mt.scaled(20))


class HandoverMixin:
    N_CLIENTS = 40
    N_HALF = 10

    @classmethod
    def setUpClass(cls):
        become_subreaper()

    def setUp(self):
        super().setUp()
        self.ctl_path = os.path.join(self.tmpdir, "control")
        self.hook = os.path.join(self.tmpdir, "refuse")
        self.notify = self.notify_socket()
        self.pid = None

    def start(self, **over):
        over.setdefault("control_socket", self.ctl_path)
        env = {"NOTIFY_SOCKET": self.notify.address, "MUXD_TEST_REFUSE_HANDOVER": self.hook}
        m = self.start_muxd(env=env, **over)
        m.stopped_by_us = True          # it exits by itself once upgraded
        self.m = m
        self.pid = m.pid
        self.notify.wait("READY=1")
        self.addCleanup(self.stop_current)
        return m

    def stop_current(self):
        """SIGTERM the process serving now (bounded wait, status 0)."""
        if self.pid is None:
            return
        if self.pid == self.m.pid:
            self.pid = None
            rc = self.m.stop()
            self.assertEqual(rc, 0, "muxd exited with status %s on SIGTERM" % rc)
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        rc = wait_pid_exit(pid, 20)
        if rc is None:
            os.kill(pid, signal.SIGKILL)
            wait_pid_exit(pid, 5)
            raise AssertionError("muxd %d did not exit on SIGTERM\n%s" % (pid, self.m.log_tail()))
        self.assertEqual(rc, 0, "muxd %d exited with status %s on SIGTERM" % (pid, rc))
        reports = self.m.sanitizer_reports()
        self.assertEqual(reports, [], "\n".join(reports))

    def muxctl(self, *args):
        return subprocess.run([mt.MUXCTL, "-s", self.ctl_path, "-t", "30"] + list(args),
                              capture_output=True, text=True, timeout=mt.scaled(60))

    def queued(self):
        """Output bytes muxd holds for its clients (muxctl clients)."""
        p = self.muxctl("--json", "clients")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return sum(c["queued_bytes"] for c in json.loads(p.stdout)["clients"])

    def upgrade(self, via="signal"):
        """Upgrade the process serving now; returns the new pid."""
        old = self.pid
        since = self.notify.count()
        t0 = time.monotonic()
        if via == "signal":
            os.kill(old, signal.SIGUSR2)
        else:
            p = self.muxctl("upgrade")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.m.log_tail())
            self.assertIn("upgraded: process", p.stdout)
        _, text = self.notify.wait(MAINPID_RE, timeout=20, since=since)
        new = int(MAINPID_RE.search(text).group(1))
        self.assertNotEqual(new, old)
        if old == self.m.pid:
            # not m.wait_exit(): its log readers go on with the new process
            try:
                rc = self.m.proc.wait(timeout=mt.scaled(20))
            except subprocess.TimeoutExpired:
                rc = None
        else:
            rc = wait_pid_exit(old, 20)
        self.assertEqual(rc, 0, "the old process %d exited with %s\n%s" % (old, rc, self.m.log_tail()))
        self.pid = new
        if via != "signal":
            self.assertIn("pid: %d" % new, p.stdout)
        self.last_upgrade_s = time.monotonic() - t0
        return new

    def clients(self, n, prefix):
        cs = [Client(self.m.port, "%s%d" % (prefix, i)) for i in range(n)]
        for c in cs:
            self.addCleanup(c.close)
        return cs

    def half_lines(self, n):
        """Clients that have sent the first half of a line."""
        hs = self.clients(n, "half")
        for i, h in enumerate(hs):
            h.sock.sendall(b"first-half-%d-" % i)
        return hs

    def finish_half_lines(self, hs):
        for i, h in enumerate(hs):
            h.sock.sendall(b"second-half\n")
            want = mt.echo_reply(b"first-half-%d-second-half\n" % i)
            self.assertEqual(recv_exact(h.sock, len(want), 10), want)

    # ------------------------------------------------------------------ tests

    def test_five_upgrades_under_load(self):
        m = self.start()
        cs = self.clients(self.N_CLIENTS, "c")
        hs = self.half_lines(self.N_HALF)
        pids = [self.pid]
        with Traffic(cs) as t:
            for i in range(5):
                # round trips before each upgrade: the traffic is running
                want = t.count + self.N_CLIENTS
                self.wait_for(lambda: t.count >= want or t.errors, 20, "traffic")
                pids.append(self.upgrade(via="signal" if i % 2 == 0 else "muxctl"))
        self.assertEqual(t.errors, [], m.log_tail())
        self.assertEqual(len(set(pids)), 6)
        # every half-sent line is finished against the last process
        self.finish_half_lines(hs)
        for c in cs:
            c.roundtrip()
        # the listener still accepts; statistics count the new clients
        self.clients(3, "late")[2].roundtrip()
        bad = [l for l in m.log_lines() if l.startswith(("muxd: warning:", "muxd: err:"))]
        self.assertEqual(bad, [])
        sys.stderr.write("\n  [%s] 5 upgrades, %d round trips on %d clients, longest round trip "
                         "%.0f ms, last upgrade %.0f ms ... " % (
                             self.backend, t.count, len(cs), t.max_gap * 1000,
                             self.last_upgrade_s * 1000))

    def fdstore_names(self, key, since=0):
        return [t.split("FDNAME=")[1].split("\n")[0] for t in self.notify.texts(since)
                if t.startswith(key + "=1\n")]

    def test_stored_connections_keep_their_names(self):
        # preserve_connections: the new process knows the connections are
        # stored (under their sockets' inodes), stores none again, and
        # removes each when it closes
        self.start(preserve_connections=True)
        cs = self.clients(5, "s")
        self.wait_for(lambda: len(self.fdstore_names("FDSTORE")) == 5, 10, "5 stores")
        names = set(self.fdstore_names("FDSTORE"))
        self.assertEqual(len(names), 5)
        since = self.notify.count()
        self.upgrade()
        for c in cs:
            c.roundtrip()
        late = self.clients(1, "late")[0]
        self.wait_for(lambda: self.fdstore_names("FDSTORE", since), 10, "the new client stored")
        self.assertNotIn(self.fdstore_names("FDSTORE", since)[0], names)
        self.assertEqual(len(self.fdstore_names("FDSTORE", since)), 1)
        cs[0].close()
        self.wait_for(lambda: self.fdstore_names("FDSTOREREMOVE", since), 10, "a removal")
        self.assertIn(self.fdstore_names("FDSTOREREMOVE", since)[0], names)
        late.roundtrip()
        self.stop_current()
        self.assertEqual(set(self.fdstore_names("FDSTOREREMOVE", since)),
                         names | set(self.fdstore_names("FDSTORE", since)))

    def test_many_connections(self):
        # more connections than an io_uring submission queue holds (1024),
        # all adopted by one worker as its loop starts
        if self.backend == "select":
            self.skipTest("select watches descriptors below FD_SETSIZE only")
        mt.raise_nofile(4096)
        self.start(max_connections=3000)
        cs = []
        for i in range(1300):
            s = mt.connect(self.m.port, timeout=10)
            self.addCleanup(s.close)
            cs.append(s)
        for s in cs:
            self.assertEqual(recv_exact(s, len(mt.DEFAULT_GREETING), 10), mt.DEFAULT_GREETING)
        for i, s in enumerate(cs):
            s.sendall(b"before-%d\n" % i)
        self.upgrade()
        for i, s in enumerate(cs):
            s.sendall(b"after-%d\n" % i)
        for i, s in enumerate(cs):
            want = mt.echo_reply(b"before-%d\n" % i) + mt.echo_reply(b"after-%d\n" % i)
            self.assertEqual(recv_exact(s, len(want), 10), want, "client %d" % i)

    def test_pipelined_and_unread_output_carry_over(self):
        self.start()
        # a client that sends many lines and reads none of the replies: its
        # unsent output (and, throttled, its unanswered input) is handed over
        c = Client(self.m.port, "pipe", rcvbuf=4096)
        self.addCleanup(c.close)
        lines = [b"pipelined-%05d-%s\n" % (i, b"x" * 200) for i in range(40000)]
        data = b"".join(lines)
        sender = threading.Thread(target=c.sock.sendall, args=(data,), daemon=True)
        sender.start()
        # muxd holds replies the client has not read: they are handed over
        self.wait_for(lambda: self.queued() > 0, 20, "replies queued in muxd")
        self.upgrade()
        want = b"".join(mt.echo_reply(l) for l in lines)
        got = recv_exact(c.sock, len(want), 30)
        sender.join(timeout=mt.scaled(10))
        self.assertEqual(got, want)
        c.seq = 0
        c.roundtrip()

    def test_refused_upgrade_keeps_every_client(self):
        m = self.start()
        cs = self.clients(10, "c")
        hs = self.half_lines(3)
        open(self.hook, "w").close()
        with Traffic(cs) as t:
            since = m.log_count()
            os.kill(self.pid, signal.SIGUSR2)
            _, match = m.wait_log(FAILED_RE, timeout=20, since=since)
            self.assertIn("MUXD_TEST_REFUSE_HANDOVER", match.group(1))
            self.notify.wait(re.compile(r"^READY=1$"), since=0)
            want = t.count + 20
            self.wait_for(lambda: t.count >= want or t.errors, 20, "traffic after the refusal")
        self.assertEqual(t.errors, [])
        self.assertTrue(m.running())
        self.assertFalse([x for x in self.notify.texts() if x.startswith("MAINPID=")])
        # muxctl says so too, and the old process goes on
        p = self.muxctl("upgrade")
        self.assertEqual(p.returncode, 1)
        self.assertIn("upgrade failed", p.stdout + p.stderr)
        p = self.muxctl("status")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.finish_half_lines(hs)
        hs = self.half_lines(2)
        # the hook gone, the next upgrade works
        os.unlink(self.hook)
        self.upgrade()
        self.finish_half_lines(hs)
        for c in cs:
            c.roundtrip()

    def test_config_error_refuses(self):
        # a file the new process cannot load: it refuses with the error, the
        # old process goes on with every client (no test hook involved)
        m = self.start()
        cs = self.clients(5, "c")
        hs = self.half_lines(2)
        self.write_config(text="timeout = ;\n")
        p = self.muxctl("upgrade")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("upgrade failed: the new process refused: ", p.stdout + p.stderr)
        self.assertIn("muxd.conf:1", p.stdout + p.stderr)
        self.assertTrue(m.running())
        self.finish_half_lines(hs)
        for c in cs:
            c.roundtrip()
        self.assertTrue(self.notify.wait(re.compile(r"^STATUS=upgrade failed: "), timeout=5))

    def test_other_workers_and_backend(self):
        # the new process reads the file: its workers and backend may differ
        self.start()
        cs = self.clients(9, "c")
        hs = self.half_lines(3)
        other = "poll" if self.backend != "poll" else "epoll"
        self.write_config(mt.base_settings(other, control_socket=self.ctl_path, workers=3))
        since = self.m.log_count()
        self.upgrade()
        self.m.wait_log(r"ready: 1 listener, backend %s, .*3 workers" % other, since=since)
        self.finish_half_lines(hs)
        for c in cs:
            c.roundtrip()
        self.clients(1, "late")[0].roundtrip()
        # and back
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path, workers=1))
        self.upgrade(via="muxctl")
        for c in cs:
            c.roundtrip()

    def test_connection_of_a_removed_listener(self):
        # a reload removed its listener, its connection stayed: the new
        # process closes it, saying so (muxd(8), UPGRADING)
        p1, p2 = mt.free_port(), mt.free_port()
        while p2 == p1:
            p2 = mt.free_port()
        ls = [{"port": p1, "address": "127.0.0.1"}, {"port": p2, "address": "127.0.0.1"}]
        self.start(listen=ls)
        keep = Client(p1, "keep")
        gone = Client(p2, "gone")
        self.addCleanup(keep.close)
        self.addCleanup(gone.close)
        since = self.m.log_count()
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path, listen=ls[:1]))
        os.kill(self.pid, signal.SIGHUP)
        self.m.wait_log(r"configuration reloaded", since=since)
        gone.roundtrip()
        self.upgrade()
        self.m.wait_log(r"1 connection handed over closed: the client left, or its listener is not in "
                        r"the configuration any more", since=since)
        gone.sock.settimeout(mt.scaled(5))
        self.assertEqual(gone.sock.recv(1), b"")
        keep.roundtrip()

    def test_control_socket_moved_or_off(self):
        # the new file moves the control socket, then turns it off: the new
        # process binds the new path, then lets go of the old socket
        self.start()
        c = self.clients(1, "c")[0]
        moved = os.path.join(self.tmpdir, "control2")
        self.write_config(mt.base_settings(self.backend, control_socket=moved))
        self.upgrade()
        self.ctl_path = moved
        p = self.muxctl("status")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.write_config(mt.base_settings(self.backend, control_socket=""))
        self.upgrade(via="muxctl")
        # nothing listens there any more (rather than a socket nobody accepts on)
        p = self.muxctl("status")
        self.assertEqual(p.returncode, 1)
        self.assertIn("Connection refused", p.stderr)
        c.roundtrip()

    # ---- behind a load balancer (proxy_protocol)

    def proxied_listener(self, port=0, proxy="v1", **over):
        e = {"port": port, "address": "127.0.0.1", "proxy_from": ["127.0.0.1/32"]}
        if proxy:
            e["proxy_protocol"] = proxy
        e.update(over)
        return [e]

    def proxied_clients(self, n, prefix, net="192.0.2"):
        """Clients through the 'balancer': each names 192.0.2.(i+1):(40000+i)."""
        cs = []
        for i in range(n):
            c = Client.__new__(Client)
            c.tag, c.seq, c.lock = "%s%d" % (prefix, i), 0, threading.Lock()
            c.sock = mt.connect(self.m.port, timeout=10)
            self.addCleanup(c.sock.close)
            c.sock.sendall(b"PROXY TCP4 %s.%d 127.0.0.1 %d %d\r\n"
                           % (net.encode(), i + 1, 40000 + i, self.m.port))
            self.assertEqual(recv_exact(c.sock, len(mt.DEFAULT_GREETING), 10), mt.DEFAULT_GREETING)
            cs.append(c)
        return cs

    def listed_clients(self):
        p = self.muxctl("--json", "clients")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return json.loads(p.stdout)["clients"]

    def assert_listed_behind_balancer(self, cs, net="192.0.2"):
        """muxctl clients names each client its header named, and the balancer."""
        listed = {c["peer"]: c["proxy"] for c in self.listed_clients()}
        for i, c in enumerate(cs):
            peer = "%s.%d:%d" % (net, i + 1, 40000 + i)
            self.assertIn(peer, listed, "%s not listed: %r" % (peer, listed))
            self.assertEqual(listed[peer], "127.0.0.1:%d" % c.sock.getsockname()[1])

    def test_behind_a_balancer_round_trips(self):
        # admitted clients behind a balancer carry over, under load, and keep
        # their addresses (the one their header named, and the balancer's)
        self.start(listen=self.proxied_listener())
        cs = self.proxied_clients(self.N_CLIENTS // 2, "px")
        self.assert_listed_behind_balancer(cs)
        with Traffic(cs) as t:
            self.wait_for(lambda: t.count >= len(cs), 20, "round trips before")
            self.upgrade()
            before = t.count
            self.wait_for(lambda: t.count >= before + 2 * len(cs) or t.errors, 20, "round trips after")
        self.assertEqual(t.errors, [])
        self.assert_listed_behind_balancer(cs)
        self.upgrade(via="muxctl")
        for c in cs:
            c.roundtrip()
        self.assert_listed_behind_balancer(cs)
        # the per-source counts are under the real clients: a new one is admitted
        self.proxied_clients(1, "late", net="198.51.100")[0].roundtrip()

    def test_half_received_proxy_header_completes(self):
        # a header half received by the old process is finished against the
        # new one: greeted then, its first line (sent with the rest) answered
        self.start(listen=self.proxied_listener(proxy_timeout=60))
        ss = []
        for i in range(5):
            s = mt.connect(self.m.port, timeout=10)
            self.addCleanup(s.close)
            s.sendall(b"PROXY TCP4 203.0.113.%d 127.0.0.1 " % (i + 1))
            ss.append(s)
        quiet = mt.connect(self.m.port, timeout=10)    # nothing sent yet at all
        self.addCleanup(quiet.close)
        # the halves are in the old process's memory, not in the sockets
        sent = 5 * len(b"PROXY TCP4 203.0.113.1 127.0.0.1 ")
        self.wait_for(lambda: self.received() >= sent, 20, "half headers read")
        self.upgrade()
        self.upgrade(via="muxctl")
        for i, s in enumerate(ss):
            s.sendall(b"%d %d\r\nline-%d\n" % (50000 + i, self.m.port, i))
            want = mt.DEFAULT_GREETING + mt.echo_reply(b"line-%d\n" % i)
            self.assertEqual(recv_exact(s, len(want), 10), want)
        quiet.sendall(b"PROXY TCP4 203.0.113.99 127.0.0.1 50099 %d\r\n" % self.m.port)
        self.assertEqual(recv_exact(quiet, len(mt.DEFAULT_GREETING), 10), mt.DEFAULT_GREETING)
        listed = {c["peer"] for c in self.listed_clients()}
        for i in range(5):
            self.assertIn("203.0.113.%d:%d" % (i + 1, 50000 + i), listed)
        self.assertIn("203.0.113.99:50099", listed)

    def received(self):
        """Bytes the process serving now has read from its clients."""
        p = self.muxctl("--json", "stats")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return json.loads(p.stdout)["stats"]["total"]["received_bytes"]

    def test_balancer_clients_waiting_at_max_connections(self):
        # At max_connections, a balancer's new connections wait in the
        # backlog or (io_uring) accepted and held, their header unread: they
        # are handed over as waiting for it, and admitted by the new process.
        self.start(max_connections=3, listen=self.proxied_listener(proxy_timeout=60))
        first = self.proxied_clients(3, "px")
        waiting = []
        for i in range(2):
            w = mt.connect(self.m.port, timeout=10)
            self.addCleanup(w.close)
            w.sendall(b"PROXY TCP4 198.51.100.%d 127.0.0.1 %d %d\r\nlate-%d\n"
                      % (i + 1, 42000 + i, self.m.port, i))
            waiting.append(w)
        self.m.wait_log(r"^muxd: notice: max_connections \(3\) reached", timeout=10)
        self.upgrade()
        for c in first:
            c.roundtrip()
        for i, w in enumerate(waiting):
            first[i].close()
            want = mt.DEFAULT_GREETING + mt.echo_reply(b"late-%d\n" % i)
            self.assertEqual(recv_exact(w, len(want), 10), want)
        listed = {c["peer"] for c in self.listed_clients()}
        self.assertIn("198.51.100.1:42000", listed)
        self.assertIn("198.51.100.2:42001", listed)

    def test_proxy_header_never_completes_times_out(self):
        # the proxy_timeout deadline is carried over: not restarted, not lost
        self.start(listen=self.proxied_listener(proxy_timeout=6))
        s = mt.connect(self.m.port, timeout=10)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        s.sendall(b"PROXY TCP4 192.0.2.9")
        self.wait_for(lambda: self.received() >= 20, 20, "half header read")
        # a deliberate delay, not a wait for a condition: most of the
        # deadline passes in the old process, so that one restarted would
        # show (at 10 s or later), with seconds of margin for a slow machine
        time.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
        since = self.m.log_count()
        self.upgrade()
        self.assertEqual(mt.recv_all(s, timeout=mt.scaled(10), allow_reset=True), b"")
        took = time.monotonic() - t0
        self.assertGreater(took, 5.8, "closed before proxy_timeout")
        self.assertLess(took, 9.0, "the deadline was restarted (it would be at 10 s or later)")
        self.m.wait_log(r"^muxd: warning: load balancer 127\.0\.0\.1:\d+: no complete PROXY header within "
                        r"proxy_timeout \(6 s\): closing$", since=since)

    def test_proxy_protocol_turned_off_or_on(self):
        # A connection keeps the rules it was accepted under when the new
        # configuration turns its listener's proxy_protocol off or on
        # (muxd(8), UPGRADING): admitted clients go on, a header begun is
        # finished, a plain client stays plain.
        self.start(listen=self.proxied_listener(proxy_timeout=60))
        port = self.m.port
        admitted = self.proxied_clients(2, "px")
        waiting = mt.connect(port, timeout=10)
        self.addCleanup(waiting.close)
        before = self.received()
        waiting.sendall(b"PROXY TCP4 198.51.100.7 127.0.0.1 ")
        self.wait_for(lambda: self.received() >= before + 10, 20, "half header read")
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path,
                                           listen=self.proxied_listener(port, proxy=None)))
        self.upgrade()
        for c in admitted:
            c.roundtrip()
        self.assert_listed_behind_balancer(admitted)
        waiting.sendall(b"41000 %d\r\nw\n" % port)
        want = mt.DEFAULT_GREETING + mt.echo_reply(b"w\n")
        self.assertEqual(recv_exact(waiting, len(want), 10), want)
        plain = self.clients(1, "plain")[0]     # no header now
        plain.roundtrip()
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path,
                                           listen=self.proxied_listener(port)))
        self.upgrade(via="muxctl")
        plain.roundtrip()                       # still served without a header
        for c in admitted:
            c.roundtrip()
        listed = {c["peer"]: c["proxy"] for c in self.listed_clients()}
        self.assertEqual(listed.get("198.51.100.7:41000"), "127.0.0.1:%d" % waiting.getsockname()[1])
        self.assertIn(None, listed.values())    # the plain one: no balancer

    def test_idle_timeout_after_upgrade(self):
        self.start(timeout=3)
        idle = self.clients(1, "idle")[0]
        t0 = time.monotonic()
        self.upgrade()
        # closed about 3 s after its last activity, by the new process
        idle.sock.settimeout(mt.scaled(10))
        self.assertEqual(idle.sock.recv(1), b"")
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 2.5)
        self.assertLess(elapsed, mt.scaled(6))

    def test_clients_waiting_at_max_connections(self):
        # At max_connections, new clients wait: in the listener's backlog,
        # or (io_uring's multishot accept) accepted and held, ungreeted.
        # Either way they are handed over and served once a client leaves.
        self.start(max_connections=3)
        first = self.clients(3, "c")
        waiting = [mt.connect(self.m.port, timeout=10) for _ in range(2)]
        for w in waiting:
            self.addCleanup(w.close)
        self.m.wait_log(r"^muxd: notice: max_connections \(3\) reached", timeout=10)
        self.upgrade()
        for c in first:
            c.roundtrip()
        for i, w in enumerate(waiting):
            first[i].close()
            self.assertEqual(recv_exact(w, len(mt.DEFAULT_GREETING), 10), mt.DEFAULT_GREETING)
            w.sendall(b"late-%d\n" % i)
            want = mt.echo_reply(b"late-%d\n" % i)
            self.assertEqual(recv_exact(w, len(want), 10), want)

    def test_reload_after_upgrade(self):
        self.start()
        c = self.clients(1, "c")[0]
        self.upgrade()
        since = self.m.log_count()
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path, suffix="new"))
        os.kill(self.pid, signal.SIGHUP)
        self.m.wait_log(r"^muxd: info: configuration reloaded from ", timeout=10, since=since)
        c.roundtrip()                   # keeps its settings
        fresh = mt.connect(self.m.port, timeout=10)
        self.addCleanup(fresh.close)
        recv_until(fresh, b"\n", 10)
        fresh.sendall(b"x\n")
        self.assertEqual(recv_exact(fresh, len(b"xnew\n"), 10), b"xnew\n")
        # and upgrades again, with the new file: the connection takes its
        # listener's settings as the new process reads them (they are not
        # part of the state: muxd(8), UPGRADING)
        self.upgrade(via="muxctl")
        c.sock.sendall(b"again\n")
        self.assertEqual(recv_exact(c.sock, len(b"againnew\n"), 10), b"againnew\n")


mt.for_each_backend(HandoverMixin)


if __name__ == "__main__":
    mt.main()
