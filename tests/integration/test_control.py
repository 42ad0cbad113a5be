# SPDX-License-Identifier: MIT
"""The control socket and muxctl, for each backend: every command with good
and bad arguments, garbage and oversized requests, who may connect, drain,
kick, bans that expire, reload and check verdicts with FILE:LINE, and that
neither a busy nor a stuck control client stalls muxd. ControlScale lists
20,000 clients while a control client that never reads holds an answer.

muxd runs with control_socket in the test's temporary directory."""

import json
import os
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

import muxdtest as mt
from muxdtest import recv_all, expect_eof, expect_silence

RELOADED_RE = re.compile(r"^muxd: info: configuration reloaded from ")
USAGE_PREFIX = b"error: usage: "


def muxctl_path():
    if not mt.MUXCTL or not os.access(mt.MUXCTL, os.X_OK):
        raise AssertionError("MUXCTL is not set to the built muxctl: run through `make check` "
                             "or tests/integration/run")
    return mt.MUXCTL


def nobody():
    """(uid, gid) of the unprivileged user the permission tests run as."""
    try:
        p = pwd.getpwnam("nobody")
        return p.pw_uid, p.pw_gid
    except KeyError:
        return 65534, 65534


def can_switch_user():
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def clients_table(text):
    """The rows of a text `clients` answer: [(peer, listener, connected, idle, queued, via)]."""
    rows, started = [], False
    for line in text.splitlines():
        if line.startswith("PEER"):
            started = True
        elif line.startswith(("count:", "not_listed:", "warning:")):
            break
        elif started:
            rows.append(tuple(line.split()))
    return rows


def field(text, key):
    """The value of a `key: value` line of a text answer."""
    m = re.search(r"^%s: (.*)$" % re.escape(key), text, re.M)
    if not m:
        raise AssertionError("no %r in the answer:\n%s" % (key, text))
    return m.group(1)


class ControlHelpers:

    def start(self, listen=None, **over):
        """muxd with two listeners, "alpha" and one without a name."""
        self.ctl_path = os.path.join(self.tmpdir, "control")
        if listen is None:
            listen = [{"port": 0, "address": "127.0.0.1", "name": "alpha"},
                      {"port": 0, "address": "127.0.0.1"}]
        return self.start_muxd(control_socket=self.ctl_path, listen=listen, **over)

    def ctl(self, *args, rc=None, user=None, groups=None, path=None, timeout=30):
        """Run muxctl; rc: the exit status it must have."""
        argv = [muxctl_path(), "-s", path or self.ctl_path] + list(args)
        if user is not None:
            uid, gid = user
            argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                    "--groups=%s" % ",".join(str(g) for g in groups) if groups else "--clear-groups"] + argv
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=mt.scaled(timeout))
        if rc is not None and p.returncode != rc:
            self.fail("muxctl %s: exit status %d, expected %d\nstdout: %s\nstderr: %s"
                      % (" ".join(args), p.returncode, rc, p.stdout, p.stderr))
        return p

    def ctl_json(self, *args, rc=0):
        p = self.ctl("--json", *args, rc=rc)
        try:
            return json.loads(p.stdout)
        except ValueError:
            self.fail("muxctl --json %s: not JSON: %r" % (" ".join(args), p.stdout))

    def total(self):
        """The muxd-wide counters of "muxctl --json stats"."""
        return self.ctl_json("stats")["stats"]["total"]

    def unix(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(mt.scaled(10))
        s.connect(self.ctl_path)
        return s

    def raw(self, data, shut=False):
        """Send bytes as they are, read the answer until muxd closes."""
        s = self.unix()
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass        # muxd answered and closed before reading it all
        if shut:
            s.shutdown(socket.SHUT_WR)
        return recv_all(s, allow_reset=True)

    def assertServing(self, m, port=None):
        """muxd answers a new client and a control request."""
        self.assertAlive(m)
        self.roundtrip(self.client(m, port=port or m.port), b"still here\n")
        self.ctl("version", rc=0)


class ControlMixin(ControlHelpers):

    # ------------------------------------------------------------ status, stats, help

    def test_status(self):
        m = self.start()
        p = self.ctl("status", rc=0)
        self.assertEqual(p.stderr, "")
        self.assertEqual(field(p.stdout, "pid"), str(m.pid))
        self.assertEqual(field(p.stdout, "backend"), self.backend)
        self.assertEqual(field(p.stdout, "config"), m.config_path)
        self.assertEqual(field(p.stdout, "control_socket"), self.ctl_path)
        self.assertEqual(field(p.stdout, "last_reload"), "none")
        self.assertEqual(field(p.stdout, "listeners"), "2")
        self.assertIn("listener: alpha 127.0.0.1:%d accepting\n" % m.ports[0], p.stdout)
        self.assertIn("listener: - 127.0.0.1:%d accepting\n" % m.ports[1], p.stdout)
        version = subprocess.run([mt.muxd_path(), "-V"], stdout=subprocess.PIPE,
                                 universal_newlines=True).stdout.split()[1]
        self.assertEqual(field(p.stdout, "version"), version)
        self.assertEqual(self.ctl("version", rc=0).stdout, "version: %s\n" % version)

        c = self.client(m)
        doc = self.ctl_json("status")
        self.assertTrue(doc["ok"])
        self.assertEqual(doc["pid"], m.pid)
        self.assertEqual(doc["clients"], 1)
        self.assertEqual(doc["workers"], int(mt.WORKERS or 1))
        self.assertIsNone(doc["last_reload"])
        self.assertEqual([(l["name"], l["address"], l["draining"]) for l in doc["listener_list"]],
                         [("alpha", "127.0.0.1:%d" % m.ports[0], False),
                          (None, "127.0.0.1:%d" % m.ports[1], False)])
        self.assertGreaterEqual(doc["uptime_seconds"], 0)
        c.close()

    def test_stats_and_help(self):
        m = self.start()
        c = self.client(m)
        for k in range(3):
            self.roundtrip(c, b"msg %d\n" % k)
        doc = self.wait_for(lambda: (lambda d: d if d["messages"] == 3 else None)(self.total()),
                            5, "3 messages counted")
        self.assertEqual(doc["clients"], 1)
        self.assertEqual(doc["accepted"], 1)
        self.assertEqual(doc["received_bytes"], sum(len(b"msg %d\n" % k) for k in range(3)))
        listeners = self.ctl_json("stats")["stats"]["listeners"]
        self.assertEqual([(l["listener"], l["messages"]) for l in listeners],
                         [("alpha", 3), ("127.0.0.1:%d" % m.ports[1], 0)])
        text = self.ctl("stats", rc=0).stdout
        self.assertRegex(text, r"(?m)^listener alpha \(127\.0\.0\.1:%d\)$" % m.ports[0])
        self.assertRegex(text, r"(?m)^  clients +1 +accepted +1 +messages +3$")
        # "stats --json" as the issue writes it, and "--json stats"
        a = json.loads(self.ctl("stats", "--json", rc=0).stdout)
        b = self.ctl_json("stats")
        for d in (a, b):
            d["stats"].pop("uptime_seconds")
            for part in [d["stats"]["total"]] + d["stats"]["listeners"]:
                part.pop("connection_seconds", None)    # the held client's age differs
        self.assertEqual(a, b)
        # "stats --prometheus": what /metrics serves, for a textfile collector
        prom = self.ctl("stats", "--prometheus", rc=0).stdout
        self.assertIn('muxd_messages_total{listener="alpha"} 3\n', prom)
        self.assertIn("# TYPE muxd_connections_accepted_total counter\n", prom)
        helptext = self.ctl("help", rc=0).stdout
        for cmd in ("status", "stats", "clients [LISTENER]", "kick PEER | all-from CIDR",
                    "ban CIDR [SECONDS]", "unban CIDR", "bans", "reload", "check",
                    "drain LISTENER", "undrain LISTENER", "help", "version"):
            self.assertRegex(helptext, r"(?m)^%s  " % re.escape(cmd))
        self.assertEqual(len(self.ctl_json("help")["commands"]), 14)

    # ------------------------------------------------------------ clients, kick

    def test_clients(self):
        m = self.start()
        on_alpha = [self.client(m, port=m.ports[0]) for _ in range(7)]
        on_other = [self.client(m, port=m.ports[1]) for _ in range(4)]
        rows = clients_table(self.ctl("clients", rc=0).stdout)
        self.assertEqual(len(rows), 11, rows)
        self.assertEqual(sorted(r[0] for r in rows),
                         sorted("127.0.0.1:%d" % s.getsockname()[1] for s in on_alpha + on_other))
        self.assertEqual(sorted(r[1] for r in rows),
                         sorted(["alpha"] * 7 + ["127.0.0.1:%d" % m.ports[1]] * 4))
        # by name, or by ADDRESS:PORT as status shows them
        self.assertEqual(len(clients_table(self.ctl("clients", "alpha", rc=0).stdout)), 7)
        text = self.ctl("clients", "127.0.0.1:%d" % m.ports[1], rc=0).stdout
        self.assertEqual(len(clients_table(text)), 4)
        self.assertEqual(field(text, "count"), "4")
        # JSON: every field, queued bytes of a client that does not read
        doc = self.ctl_json("clients", "alpha")
        self.assertEqual(doc["count"], 7)
        one = doc["clients"][0]
        self.assertEqual(set(one), {"peer", "address", "port", "listener", "proxy", "connected_seconds",
                                    "idle_seconds", "queued_bytes"})
        self.assertIsNone(one["proxy"])
        self.assertEqual({r[5] for r in rows}, {"-"})       # no load balancer
        self.assertEqual(one["address"], "127.0.0.1")
        self.assertEqual(one["listener"], "alpha")
        p = self.ctl("clients", "nosuch", rc=1)
        self.assertIn('muxctl: no listener "nosuch"', p.stderr)

    def test_kick(self):
        m = self.start()
        a, b, c = (self.client(m) for _ in range(3))
        other = self.client(m, port=m.ports[1])
        peer = "127.0.0.1:%d" % a.getsockname()[1]
        p = self.ctl("kick", peer, rc=0)
        self.assertEqual(p.stdout, "kicked: 1\n")
        expect_eof(a, allow_reset=True)
        m.wait_log(r"^muxd: notice: closing the connection from %s on 127\.0\.0\.1:%d: kicked through "
                   r"the control socket$" % (re.escape(peer), m.ports[0]))
        self.roundtrip(b, b"b is still served\n")
        # nobody there: zero, not an error
        self.assertEqual(self.ctl("kick", "192.0.2.1", rc=0).stdout, "kicked: 0\n")
        self.assertEqual(self.ctl("kick", peer, rc=0).stdout, "kicked: 0\n")
        # a whole network, on every listener
        self.assertEqual(self.ctl_json("kick", "all-from", "127.0.0.0/8")["kicked"], 3)
        for s in (b, c, other):
            expect_eof(s, allow_reset=True)
        self.assertServing(m)
        # wrong arguments: usage errors, nothing kicked
        d = self.client(m)
        for args in (("10.0.0.0/8",), ("all-from",), ("everyone", "10.0.0.0/8"), ("all-from", "10.0.0.0/33"),
                     ("127.0.0.1:99999",), ("[::1",), ("host.example",)):
            p = self.ctl("kick", *args)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
        self.roundtrip(d, b"d was not kicked\n")

    # ------------------------------------------------------------ bans

    def test_ban_expires(self):
        m = self.start()
        held = self.client(m)
        p = self.ctl("ban", "127.0.0.1", "1", rc=0)
        self.assertEqual(p.stdout, "banned: 127.0.0.1/32\nseconds: 1\n")
        self.assertIn("127.0.0.1/32", self.ctl("bans", rc=0).stdout)
        refused_before = self.total()["refused"]["access"]
        s = mt.connect(m.port)
        self.assertEqual(recv_all(s, allow_reset=True), b"")    # closed, not greeted
        s.close()
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.1:\d+ on 127\.0\.0\.1:%d: banned \(control socket\)$"
                   % m.port)
        self.assertEqual(self.total()["refused"]["access"], refused_before + 1)
        # an established client is not touched by a ban
        self.roundtrip(held, b"held\n")

        def greeted():
            s = mt.connect(m.port)
            try:
                return s.recv(64) == mt.DEFAULT_GREETING
            except OSError:
                return False
            finally:
                s.close()
        self.wait_for(greeted, 10, "the ban to expire")
        self.assertEqual(self.ctl_json("bans"), {"ok": True, "bans": [], "count": 0})

    def test_ban_until_unban_survives_reload(self):
        m = self.start()
        self.ctl("ban", "127.0.0.0/8", rc=0)
        self.ctl("ban", "2001:db8::/32", "3600", rc=0)
        doc = self.ctl_json("bans")
        self.assertEqual(doc["count"], 2)
        self.assertEqual(doc["bans"][0], {"net": "127.0.0.0/8", "seconds_left": None})
        self.assertEqual(doc["bans"][1]["net"], "2001:db8::/32")
        self.assertTrue(3590 <= doc["bans"][1]["seconds_left"] <= 3600)
        since = m.log_count()
        self.ctl("reload", rc=0)
        m.wait_log(RELOADED_RE, since=since)
        s = mt.connect(m.port)
        self.assertEqual(recv_all(s, allow_reset=True), b"")
        s.close()
        self.assertEqual(self.ctl("unban", "127.0.0.1/8", rc=0).stdout, "unbanned: 127.0.0.0/8\n")
        self.roundtrip(self.client(m), b"welcome back\n")
        p = self.ctl("unban", "127.0.0.0/8", rc=1)
        self.assertIn("127.0.0.0/8 is not banned", p.stderr)
        # usage errors change nothing
        for args in (("ban", "not-a-cidr"), ("ban", "10.0.0.0/8", "0"), ("ban", "10.0.0.0/8", "-5"),
                     ("ban", "10.0.0.0/8", "31536001"), ("ban", "10.0.0.0/8", "1s"), ("unban", "x")):
            p = self.ctl(*args)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
        self.assertEqual(self.ctl_json("bans")["count"], 1)

    # ------------------------------------------------------------ drain

    def test_drain(self):
        m = self.start()
        alpha, other = m.ports
        old = self.client(m, port=alpha)
        p = self.ctl("drain", "alpha", rc=0)
        self.assertEqual(p.stdout, "listener: alpha\naddress: 127.0.0.1:%d\nstate: draining\n" % alpha)
        m.wait_log(r"^muxd: notice: listener alpha \(127\.0\.0\.1:%d\): draining" % alpha)
        # the kernel completes the handshake (backlog), muxd does not accept
        waiting = self.connect(alpha)
        expect_silence(waiting, 0.5)
        self.roundtrip(old, b"existing clients are served\n")
        self.roundtrip(self.client(m, port=other), b"the other listener accepts\n")
        self.assertIn("listener: alpha 127.0.0.1:%d draining" % alpha, self.ctl("status", rc=0).stdout)
        # a reload that keeps the listener keeps it drained
        self.ctl("reload", rc=0)
        self.assertTrue(self.ctl_json("status")["listener_list"][0]["draining"])
        expect_silence(waiting, 0.3)
        # draining twice is fine; undrain accepts what waited in the backlog
        self.ctl("drain", "127.0.0.1:%d" % alpha, rc=0)
        self.ctl("undrain", "alpha", rc=0)
        self.assertRecv(waiting, mt.DEFAULT_GREETING)
        self.roundtrip(waiting, b"accepted at last\n")
        p = self.ctl("drain", "nosuch", rc=1)
        self.assertIn('no listener "nosuch"', p.stderr)
        self.assertEqual(self.ctl("undrain", rc=2).stdout, "")

    # ------------------------------------------------------------ reload, check

    def broken_config(self, m):
        """The running config with two errors; returns their expected messages."""
        text = mt.render_config(mt.base_settings(self.backend, control_socket=self.ctl_path,
                                                 timeout=-1, mode="sideways",
                                                 listen=[{"port": 0, "address": "127.0.0.1", "name": "alpha"}]))
        self.write_config(text=text, name=os.path.basename(m.config_path))
        lines = text.splitlines()
        return ["%s:%d: timeout: must be between 0 and 2592000, got -1"
                % (m.config_path, lines.index("timeout = -1;") + 1),
                "%s:%d: mode: unknown mode \"sideways\" (valid: echo, oneshot)"
                % (m.config_path, lines.index('mode = "sideways";') + 1)]

    def test_reload(self):
        m = self.start()
        c = self.client(m)
        since = m.log_count()
        p = self.ctl("reload", rc=0)
        self.assertEqual(p.stdout, "reloaded: %s\nlisteners: 2\n" % m.config_path)
        m.wait_log(RELOADED_RE, since=since)
        # every FILE:LINE error, on stderr, exit status 1
        errors = self.broken_config(m)
        p = self.ctl("reload", rc=1)
        self.assertEqual(p.stdout, "")
        self.assertEqual(p.stderr, "muxctl: reload failed: keeping the running configuration\n"
                         + "".join(e + "\n" for e in errors))
        doc = self.ctl_json("reload", rc=1)
        self.assertEqual(doc, {"ok": False, "error": "reload failed: keeping the running configuration",
                               "errors": errors})
        status = self.ctl("status", rc=0).stdout
        self.assertRegex(status, r"(?m)^last_reload: failed \d{4}-\d\d-\d\d ")
        for e in errors:
            self.assertIn("\n  %s\n" % e, status)
        self.assertEqual(self.ctl_json("status")["last_reload"]["errors"], errors)
        # still the running configuration: both listeners
        self.roundtrip(c, b"kept\n")
        self.roundtrip(self.client(m, port=m.ports[1]), b"kept too\n")
        # SIGHUP still works, and is what status reports last
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path, suffix="new",
                                           listen=[{"port": m.ports[0], "address": "127.0.0.1"}]),
                          name=os.path.basename(m.config_path))
        since = m.log_count()
        m.signal(signal.SIGHUP)
        m.wait_log(RELOADED_RE, since=since)
        doc = self.ctl_json("status")
        self.assertTrue(doc["last_reload"]["ok"])
        self.assertEqual(doc["last_reload"]["errors"], [])
        self.roundtrip(self.client(m, port=m.ports[0]), b"x\n", suffix=b"new")

    def test_check(self):
        m = self.start()
        errors = self.broken_config(m)
        since = m.log_count()
        p = self.ctl("check", rc=1)
        self.assertEqual(p.stderr, "muxctl: %s: the configuration is not valid\n%s"
                         % (m.config_path, "".join(e + "\n" for e in errors)))
        self.assertEqual(self.ctl_json("check", rc=1)["errors"], errors)
        # changed nothing, reloaded nothing
        self.assertEqual(self.ctl_json("status")["last_reload"], None)
        self.assertFalse([l for l in m.log_lines(since) if "reload" in l], m.log_lines(since))
        # a valid file: valid, and still not applied
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path, suffix="new"),
                          name=os.path.basename(m.config_path))
        self.assertEqual(self.ctl("check", rc=0).stdout, "valid: %s\n" % m.config_path)
        self.roundtrip(self.client(m), b"old suffix\n")
        # what only the running daemon knows: a port that cannot be bound
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path,
                                           listen=[{"port": busy.getsockname()[1], "address": "127.0.0.1"}]),
                          name=os.path.basename(m.config_path))
        p = self.ctl("check", rc=1)
        self.assertRegex(p.stderr, r"%s:\d+: cannot listen on 127\.0\.0\.1:%d: Address already in use"
                         % (re.escape(m.config_path), busy.getsockname()[1]))
        self.assertServing(m)

    # ------------------------------------------------------------ bad requests

    def test_bad_requests(self):
        m = self.start()
        c = self.client(m)
        cases = [
            (b"\x00\xff\xfe\x01garbage\n", b"error: usage: the request has a control or non-ASCII byte "
                                            b"(0x00 at offset 0)\n\n"),
            (b"frobnicate now\n", b"error: usage: unknown command \"frobnicate\"; commands: status, stats, "
                                  b"clients, kick, ban, unban, bans, reload, check, upgrade, drain, undrain, help, "
                                  b"version\n\n"),
            (b"\n", b"error: usage: empty request; commands: status, stats, clients, kick, ban, unban, "
                    b"bans, reload, check, upgrade, drain, undrain, help, version\n\n"),
            (b"status extra\n", b"error: usage: status\n\n"),
            (b"stats --yaml\n", b"error: usage: unknown option \"--yaml\" (valid: --json, --prometheus)\n\n"),
            (b"ban\n", b"error: usage: ban CIDR [SECONDS]\n\n"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"error: usage: unknown command \"GET\"; commands: "
                                                  b"status, stats, clients, kick, ban, unban, bans, reload, "
                                                  b"check, upgrade, drain, undrain, help, version\n\n"),
        ]
        for data, answer in cases:
            self.assertEqual(self.raw(data), answer, data)
        doc = json.loads(self.raw(b"--json frobnicate\n"))
        self.assertEqual(doc["ok"], False)
        self.assertTrue(doc["error"].startswith("usage: unknown command"))
        # a line longer than 4096 bytes: an error, then the connection is closed
        for size in (4097, 1 << 20):
            out = self.raw(b"s" * size + b"\n")
            self.assertEqual(out, USAGE_PREFIX + b"request longer than 4096 bytes\n\n")
        # 4096 bytes is fine
        self.assertTrue(self.raw(b"status" + b" " * 4090 + b"\n").startswith(b"ok\nversion: "))
        # half a command, then the client leaves: nothing to answer
        s = self.unix()
        s.sendall(b"sta")
        s.close()
        # half a command, then the end of input: that is the request
        self.assertTrue(self.raw(b"status", shut=True).startswith(b"ok\nversion: "))
        # only the first line is a request
        self.assertEqual(self.raw(b"version\nreload\nreload\n"),
                         b"ok\nversion: %s\n\n" % self.ctl("version").stdout.split()[1].encode())
        self.assertFalse([l for l in m.log_lines() if "reloaded" in l])
        # muxctl checks its words before it connects
        for args, msg in ((("frobnicate",), "unknown command"), (("status", "x"), "usage: muxctl [OPTIONS] status"),
                          (("ban", "a b"), "single words"), ((), "no command given"),
                          (("--bogus", "status"), "unrecognized option")):
            p = self.ctl(*args, rc=2)
            self.assertIn(msg, p.stderr)
        self.roundtrip(c, b"unaffected\n")
        self.assertServing(m)

    def test_busy_and_stuck_clients(self):
        m = self.start()
        c = self.client(m)
        held = [self.unix() for _ in range(16)]
        # the 17th: muxd accepts it after the 16 (in order) and turns it away
        self.assertEqual(recv_all(self.unix(), allow_reset=True),
                         b"error: busy: too many control connections, try again\n\n")
        m.wait_log(r"^muxd: notice: control socket: 16 connections already: turning one away$")
        for s in held:
            s.close()
        self.wait_for(lambda: self.ctl("version").returncode == 0, 5, "a free control slot")
        # clients that ask and never read, or ask half a question and wait
        stuck = self.unix()
        stuck.sendall(b"clients\n")
        half = self.unix()
        half.sendall(b"stat")
        for k in range(5):
            self.roundtrip(c, b"served %d\n" % k)
            self.ctl("status", rc=0, timeout=5)
        self.assertServing(m)

    # ------------------------------------------------------------ who may connect

    @unittest.skipUnless(can_switch_user(), "needs root and setpriv to run muxctl as another user")
    def test_permission(self):
        m = self.start()
        uid, gid = nobody()
        # the socket's mode (0660) and directory: the kernel refuses
        p = self.ctl("status", user=(uid, gid), rc=1)
        self.assertIn("Permission denied", p.stderr)
        st = os.stat(self.ctl_path)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        # past the file's mode, muxd itself refuses (SO_PEERCRED)
        os.chmod(self.tmpdir, 0o755)
        os.chmod(self.ctl_path, 0o666)
        since = m.log_count()
        p = self.ctl("status", user=(uid, gid), rc=1)
        self.assertEqual((p.stdout, p.stderr), ("", "muxctl: permission denied\n"))
        m.wait_log(r"^muxd: notice: control socket: refused uid %d, gid %d, pid \d+: neither root" % (uid, gid),
                   since=since)
        # a member of the socket's group may (SO_PEERGROUPS)
        os.chmod(self.ctl_path, 0o660)
        p = self.ctl("status", user=(uid, gid), groups=[st.st_gid], rc=0)
        self.assertEqual(field(p.stdout, "pid"), str(m.pid))
        self.assertServing(m)

    # ------------------------------------------------------------ the socket file

    def test_socket_file(self):
        m = self.start()
        # a second muxd on the same path: a live one keeps it, the start fails
        path = self.write_config(mt.base_settings(self.backend, control_socket=self.ctl_path), name="b.conf")
        p = subprocess.run([mt.muxd_path(), "-c", path, "--log-target", "stderr"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=mt.scaled(20),
                           env=mt.clean_env())
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("control_socket: cannot listen on %s: another process (a muxd still running?) serves it"
                      % self.ctl_path, p.stdout)
        self.assertServing(m)
        # killed: the file stays, stale; the next muxd takes its place
        m.kill()
        self.assertTrue(os.path.exists(self.ctl_path))
        m2 = self.start()
        self.assertEqual(self.ctl_json("status")["pid"], m2.pid)
        # a clean stop removes it
        self.assertEqual(m2.stop(), 0)
        self.assertFalse(os.path.exists(self.ctl_path))
        p = self.ctl("status", rc=1)
        self.assertIn("cannot connect to %s: No such file or directory" % self.ctl_path, p.stderr)
        # a directory that does not exist: a configured path is an error
        bad = os.path.join(self.tmpdir, "missing", "control")
        path = self.write_config(mt.base_settings(self.backend, control_socket=bad), name="c.conf")
        p = subprocess.run([mt.muxd_path(), "-c", path, "--log-target", "stderr"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=mt.scaled(20),
                           env=mt.clean_env())
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("control_socket: cannot listen on %s: No such file or directory (its directory does "
                      "not exist)" % bad, p.stdout)


mt.for_each_backend(ControlMixin)


class ControlDefault(ControlHelpers, mt.MuxdTestCase):
    """The compiled-in path: where its directory is missing (no RuntimeDirectory=,
    not installed), muxd says so and runs without a control socket."""

    backend = "epoll"

    def test_default_path_missing_directory(self):
        out = subprocess.run([muxctl_path(), "--help"], stdout=subprocess.PIPE, universal_newlines=True).stdout
        default = re.search(r"--socket PATH .*\(default (\S+)\)", out).group(1)
        if os.path.exists(os.path.dirname(default)):
            self.skipTest("%s exists on this host" % os.path.dirname(default))
        m = self.start_muxd(control_socket=None)
        m.wait_log(r"^muxd: notice: running without a control socket: cannot listen on %s: No such file or "
                   r"directory \(its directory does not exist\)" % re.escape(default))
        self.roundtrip(self.client(m), b"fine\n")


@mt.skip_under_valgrind("20,000 connections")
class ControlScale(ControlHelpers, mt.MuxdTestCase):
    """`clients` with 20,000 clients (bounded, and fast), while a control
    client that asked for it never reads: muxd serves on and drops it."""

    backend = "epoll"
    N = 20000
    FDS_SPARE = 600         # muxd's and this process's own descriptors

    def setUp(self):
        super().setUp()
        want = self.N + self.FDS_SPARE
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < want:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))     # root may raise it
            except (ValueError, OSError):
                pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # a host whose hard limit is lower (and no privilege to raise it):
        # as many as it allows
        self.N = min(self.N, hard - self.FDS_SPARE)
        if self.N < 5000:
            self.skipTest("needs at least %d descriptors (hard limit %d)" % (5000 + self.FDS_SPARE, hard))
        mt.raise_nofile(self.N + self.FDS_SPARE)

    def connect_many(self, port, n):
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            socks.append(s)
        return socks

    def test_20000_clients_and_a_stuck_reader(self):
        m = self.start(max_connections=self.N + 100, rlimit_nofile=self.N + self.FDS_SPARE)
        t0 = time.monotonic()
        socks = self.connect_many(m.ports[0], self.N - 1)
        socks += self.connect_many(m.ports[1], 1)
        self.wait_for(lambda: self.total()["clients"] == self.N, 60, "%d clients" % self.N)
        connect_s = time.monotonic() - t0

        t0 = time.monotonic()
        p = self.ctl("clients", rc=0)
        text_s = time.monotonic() - t0
        rows = clients_table(p.stdout)
        self.assertEqual(len(rows), self.N)
        self.assertEqual(field(p.stdout, "count"), str(self.N))
        self.assertEqual(len(set((r[0], r[1]) for r in rows)), self.N)   # a port may serve two listeners
        t0 = time.monotonic()
        doc = self.ctl_json("clients")
        json_s = time.monotonic() - t0
        self.assertEqual(doc["count"], self.N)
        self.assertEqual(len(doc["clients"]), self.N)
        self.assertEqual(len(clients_table(self.ctl("clients", "alpha", rc=0).stdout)), self.N - 1)
        print("\n%d clients: connected in %.1fs; clients %.3fs (%d bytes), clients --json %.3fs"
              % (self.N, connect_s, text_s, len(p.stdout), json_s), file=sys.stderr)
        self.assertLess(text_s, mt.scaled(5))

        # a client that asks for the 1.5 MB listing and never reads
        stuck = self.unix()
        stuck.sendall(b"clients\n")
        served = time.monotonic()
        c = self.client(m, port=m.ports[1])
        for k in range(3):
            t0 = time.monotonic()
            self.ctl("status", rc=0, timeout=5)
            self.assertLess(time.monotonic() - t0, mt.scaled(2))
            self.roundtrip(c, b"not stalled %d\n" % k)
        # after 10 s without reading, muxd closes it (the data already in our
        # queue stays readable: then EOF, not the whole answer)
        poller = select.poll()
        poller.register(stuck, select.POLLRDHUP)
        self.assertTrue(poller.poll(mt.scaled(20) * 1000), "muxd did not drop a client that does not read")
        self.assertGreater(time.monotonic() - served, 8)
        rest = recv_all(stuck, allow_reset=True)
        self.assertFalse(rest.endswith(b"\n\n"))
        self.assertLess(len(rest), len(p.stdout))
        self.assertServing(m, port=m.ports[1])


if __name__ == "__main__":
    mt.main()
