# SPDX-License-Identifier: MIT
"""muxd's command line: options, usage errors, -t/--check-config, start-up failures."""

import os
import signal
import re
import socket
import subprocess
import unittest

import muxdtest as mt


def run_muxd(args, timeout=10.0, env=None):
    """Run muxd to completion (bounded): (status, stdout, stderr) as text.
    Sanitizer or valgrind reports on its stderr fail the test whatever the
    status (a status of 1 is also what valgrind's --error-exitcode gives)."""
    timeout = mt.scaled(timeout)
    try:
        p = subprocess.run(mt.muxd_argv() + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=mt.clean_env(env), timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("muxd %s did not exit within %.1fs (stderr: %r)"
                             % (" ".join(args), timeout, e.stderr)) from None
    err = p.stderr.decode("utf-8", "replace")
    reports = mt.tool_reports(err)
    if reports:
        raise AssertionError("muxd %s: sanitizer/valgrind reports:\n%s"
                             % (" ".join(args), err))
    return (p.returncode, p.stdout.decode("utf-8", "replace"), err)


class CliMixin:

    def good_config(self, **over):
        return self.write_config(mt.base_settings(self.backend, **over), name="good.conf")

    def assertUsageError(self, args, must_contain=None):
        rc, out, err = run_muxd(args)
        self.assertEqual(rc, 2, "muxd %s: status %d\nstderr: %s" % (args, rc, err))
        lines = err.splitlines()
        self.assertEqual(len(lines), 2,
                         "expected one error line and a usage hint, got: %r" % err)
        self.assertIn("Try 'muxd --help'", lines[1])
        if must_contain:
            self.assertIn(must_contain, lines[0])
        self.assertEqual(out, "", "nothing on stdout for a usage error")

    # -- informational options
    def test_version(self):
        for opt in ("-V", "--version"):
            rc, out, err = run_muxd([opt])
            self.assertEqual(rc, 0, err)
            self.assertTrue(out.startswith("muxd "), "%s printed %r" % (opt, out))
            self.assertRegex(out.splitlines()[0], r"^muxd \S*\d")

    def test_help(self):
        for opt in ("-h", "--help"):
            rc, out, err = run_muxd([opt])
            self.assertEqual(rc, 0, err)
            self.assertIn("--config", out)
            self.assertIn("--check-config", out)
            self.assertIn("--log-target", out)
            self.assertRegex(out, r"(?i)usage")

    # -- usage errors: exit 2, one line and a hint on stderr
    def test_unknown_option(self):
        self.assertUsageError(["--bogus"], must_contain="bogus")

    def test_unknown_short_option(self):
        self.assertUsageError(["-Z"])

    def test_config_without_argument(self):
        self.assertUsageError(["-c"])

    def test_long_config_without_argument(self):
        self.assertUsageError(["--config"])

    def test_usage_error_names_the_option(self):
        # a short option by its letter, even inside "-xt" or "-tc"; a long
        # option as written
        cases = [
            (["-xt"], "unknown option '-x'"),
            (["-tx"], "unknown option '-x'"),
            (["--check-config", "-xt"], "unknown option '-x'"),
            (["-t", "-Z"], "unknown option '-Z'"),
            (["--bogus"], "unknown option '--bogus'"),
            (["--bogus=1", "-t"], "unknown option '--bogus=1'"),
            (["--check-config=yes"], "option '--check-config' takes no argument"),
            (["-tc"], "missing argument for option '-c'"),
            (["-t", "-c"], "missing argument for option '-c'"),
            (["--config"], "missing argument for option '--config'"),
            (["-t", "--log-target"], "missing argument for option '--log-target'"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                rc, out, err = run_muxd(args)
                self.assertEqual(rc, 2, err)
                self.assertEqual(err, "muxd: %s\nTry 'muxd --help' for more information.\n" % msg)

    def test_positional_argument(self):
        self.assertUsageError(["-c", self.good_config(), "extra"])

    # -- -t
    def test_check_good(self):
        path = self.good_config()
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 0, err)
        rc, out, err = run_muxd(["--check-config", "--config", path])
        self.assertEqual(rc, 0, err)
        rc, out, err = run_muxd(["--check-config", "--config=" + path])
        self.assertEqual(rc, 0, err)

    def test_check_good_full_example(self):
        # The example of SPEC section 3 (ports changed to be free and backend ours).
        p1, p2 = mt.free_port(), mt.free_port()
        text = (
            "# comment\n"
            "timeout = 60;\n"
            "backend = \"%s\";\n"
            "max_connections = 500;\n"
            "log_level = \"info\";\n"
            "shutdown_timeout = 5;\n"
            "workers = 1;\n"
            "greeting = \"hello...\\n\";\n"
            "suffix = \"hi...\";\n"
            "mode = \"echo\";\n"
            "framing = \"line\";\n"
            "max_message = 4096;\n"
            "allow = [ \"127.0.0.0/8\", \"::1/128\" ];\n"
            "deny = [ ];\n"
            "max_per_source = 0;\n"
            "ports = [ %d ];\n"
            "listen = (\n"
            "  { port = %d; address = \"127.0.0.1\"; greeting = \"\"; mode = \"oneshot\"; name = \"probe\"; }\n"
            ");\n" % (self.backend, p1, p2))
        path = self.write_config(text=text, name="full.conf")
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 0, err)

    def test_check_bad_timeout(self):
        path = self.write_config(text="timeout = -1;\nbackend = \"%s\";\nports = [ 0 ];\n"
                                 % self.backend)
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn("%s:1: timeout: must be between 0 and 2592000, got -1" % path,
                      err.splitlines())

    def test_check_bad_backend(self):
        path = self.write_config(text="timeout = 5;\nbackend = \"kqueue\";\nports = [ 0 ];\n")
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn('%s:2: backend: unknown backend "kqueue" (valid: %s)'
                      % (path, ", ".join(mt.BUILT_BACKENDS)), err.splitlines())

    def test_check_reports_every_error(self):
        path = self.write_config(text="timeout = -1;\nbackend = \"kqueue\";\n"
                                 "max_message = 4096;\nports = [ 0 ];\n")
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        lines = err.splitlines()
        self.assertIn("%s:1: timeout: must be between 0 and 2592000, got -1" % path, lines)
        self.assertIn('%s:2: backend: unknown backend "kqueue" (valid: %s)'
                      % (path, ", ".join(mt.BUILT_BACKENDS)), lines)

    def test_check_errors_name_file_line_setting(self):
        # Out-of-range and wrong values: each named by file, line and setting.
        cases = [
            ("workers = 65;", "workers"),
            ("mode = \"proxy\";", "mode"),
            ("framing = \"json\";", "framing"),
            ("log_level = \"loud\";", "log_level"),
            ("max_message = 0;", "max_message"),
            ("timeout = 2592001;", "timeout"),
            ("timeout = \"60\";", "timeout"),
            ("allow = [ \"300.1.2.3/8\" ];", "allow"),
            ("greeting = 5;", "greeting"),
        ]
        for i, (line, setting) in enumerate(cases):
            with self.subTest(line=line):
                path = self.write_config(
                    text="backend = \"%s\";\n%s\nports = [ 0 ];\n" % (self.backend, line),
                    name="bad%d.conf" % i)
                rc, out, err = run_muxd(["-t", "-c", path])
                self.assertEqual(rc, 1, "%r accepted: %s" % (line, err))
                self.assertRegex(err, r"(?m)^%s:2: %s\b" % (re.escape(path), setting))

    def test_check_duplicate_listener(self):
        port = mt.free_port()
        path = self.write_config(text=(
            "backend = \"%s\";\n"
            "listen = (\n"
            "  { port = %d; address = \"127.0.0.1\"; },\n"
            "  { port = %d; address = \"127.0.0.1\"; }\n"
            ");\n" % (self.backend, port, port)))
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"(?m)^%s:\d+: " % re.escape(path))

    def test_check_no_listeners(self):
        # start, reload and -t agree: a file that names no listener is refused
        texts = ("", "# nothing\n",
                 "backend = \"%s\";\nports = [ ];\nlisten = ( );\n" % self.backend)
        for i, text in enumerate(texts):
            with self.subTest(text=text):
                path = self.write_config(text=text, name="none%d.conf" % i)
                msg = ('%s: no listeners: set "ports" or "listen" (muxd needs at least one; '
                       'sockets passed by systemd are matched to these entries)' % path)
                rc, out, err = run_muxd(["-t", "-c", path])
                self.assertEqual((rc, err), (1, msg + "\n"))
                self.assertEqual(out, "")
                rc, out, err = run_muxd(["-c", path, "--log-target", "stderr"])
                self.assertEqual(rc, 1, err)
                self.assertIn(msg, err.splitlines())
                self.assertNotRegex(err, r"\bready\b")

    def test_check_conflicting_listeners(self):
        # -t refuses what the kernel would refuse to bind (EADDRINUSE, EINVAL)
        p = mt.free_port()
        cases = [
            ("all addresses and an IPv4 address",
             ['port = %d;' % p, 'port = %d; address = "127.0.0.1";' % p],
             r"4: port %d on 127\.0\.0\.1 conflicts with port %d on all addresses at line 3 " % (p, p)),
            ("an IPv6 address and all addresses",
             ['port = %d; address = "::1";' % p, 'port = %d;' % p],
             r"4: port %d on all addresses conflicts with port %d on ::1 at line 3 " % (p, p)),
            ("0.0.0.0 and an IPv4 address",
             ['port = %d; address = "0.0.0.0";' % p, 'port = %d; address = "127.0.0.1";' % p],
             r"4: port %d on 127\.0\.0\.1 conflicts with port %d on 0\.0\.0\.0 at line 3 " % (p, p)),
            (":: and an IPv6 address",
             ['port = %d; address = "::1";' % p, 'port = %d; address = "::";' % p],
             r"4: port %d on :: conflicts with port %d on ::1 at line 3 " % (p, p)),
            ("an IPv4-mapped address",
             ['port = %d; address = "::ffff:127.0.0.1";' % p],
             r'3: address: "::ffff:127\.0\.0\.1" is an IPv4-mapped IPv6 address, .*: '
             r'write "127\.0\.0\.1"$'),
        ]
        for i, (what, entries, error) in enumerate(cases):
            with self.subTest(what=what):
                text = ('backend = "%s";\nlisten = (\n%s\n);\n'
                        % (self.backend, ",\n".join("  { %s }" % e for e in entries)))
                path = self.write_config(text=text, name="conflict%d.conf" % i)
                rc, out, err = run_muxd(["-t", "-c", path])
                self.assertEqual(rc, 1, "%s accepted: %s" % (what, err))
                self.assertRegex(err, r"(?m)^%s:%s" % (re.escape(path), error))
                self.assertEqual(len(err.splitlines()), 1, err)

    @unittest.skipUnless(mt.have_ipv6(), "no IPv6 on this host")
    def test_check_agrees_with_the_kernel(self):
        # what -t accepts on one port, muxd binds: :: (IPv6 only) with 0.0.0.0,
        # :: with an IPv4 address, 0.0.0.0 with an IPv6 address
        p1, p2, p3 = mt.free_port(), mt.free_port(), mt.free_port()
        entries = [{"port": p1, "address": "::"}, {"port": p1, "address": "0.0.0.0"},
                   {"port": p2, "address": "::"}, {"port": p2, "address": "127.0.0.1"},
                   {"port": p3, "address": "0.0.0.0"}, {"port": p3, "address": "::1"},
                   {"port": 0}, {"port": 0, "address": "127.0.0.1"}]
        path = self.write_config(mt.base_settings(self.backend, listen=entries))
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 0, err)
        m = self.start_muxd(listen=entries)
        self.assertEqual(len(m.listeners), len(entries), m.log_tail())
        self.roundtrip(self.client(m, port=p2), b"v4\n")
        self.roundtrip(self.client(m, host="::1", port=p3), b"v6\n")
        self.assertEqual(m.stop(), 0)

    def test_check_nul_escape(self):
        # libconfig 1.5 would drop the \x00: the greeting would be "abcd\n"
        path = self.write_config(text='backend = "%s";\nports = [ 0 ];\ngreeting = "ab\\x00cd\\n";\n'
                                 % self.backend)
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual((rc, err), (1, "%s:3: greeting: \\x00 (a NUL byte) is not allowed in a "
                                        "string\n" % path))

    def test_check_syntax_error(self):
        path = self.write_config(text="timeout = 5;\nbackend = \"%s\";\ntimeout = ;\n"
                                 % self.backend)
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"(?m)^%s:3: " % re.escape(path))

    def test_check_syntax_error_after_a_string(self):
        # libconfig 1.5 leaks the discarded string token here (its bug
        # #142): tests/lsan.supp and tests/valgrind.supp must cover it
        for text in ('timeout = 5 "oops";\n', 'timeout = 5 "";\n'):
            with self.subTest(text=text):
                path = self.write_config(text=text, name="string.conf")
                rc, out, err = run_muxd(["-t", "-c", path])
                self.assertEqual(rc, 1, err)
                self.assertEqual(err, "%s:1: syntax error\n" % path)

    def test_check_missing_file(self):
        path = os.path.join(self.tmpdir, "does-not-exist.conf")
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn("%s: cannot read:" % path, err)

    def test_check_has_no_side_effects(self):
        port = mt.free_port()
        path = self.write_config(mt.base_settings(
            self.backend, listen=[{"port": port, "address": "127.0.0.1"}]))
        # A notify socket: -t must not tell systemd anything.
        nsock_path = os.path.join(self.tmpdir, "notify")
        nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(nsock.close)
        nsock.bind(nsock_path)
        rc, out, err = run_muxd(["-t", "-c", path], env={"NOTIFY_SOCKET": nsock_path})
        self.assertEqual(rc, 0, err)
        self.assertNotRegex(err, r"listening on|ready")
        # No socket was left bound: the port is free right after.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        # And -t does not try to bind at all: it passes while the port is taken.
        rc, out, err = run_muxd(["-t", "-c", path], env={"NOTIFY_SOCKET": nsock_path})
        self.assertEqual(rc, 0, "-t failed while the configured port was in use: " + err)
        nsock.setblocking(False)
        try:
            msg = nsock.recv(4096)
        except BlockingIOError:
            msg = None
        self.assertIsNone(msg, "-t sent a notification: %r" % (msg,))

    # -- starting for real
    def test_start_with_bad_config(self):
        path = self.write_config(text="timeout = -1;\nbackend = \"%s\";\nports = [ 0 ];\n"
                                 % self.backend)
        rc, out, err = run_muxd(["-c", path, "--log-target", "stderr"])
        self.assertEqual(rc, 1, err)
        self.assertIn("%s:1: timeout: must be between 0 and 2592000, got -1" % path, err)

    def test_start_with_missing_config(self):
        path = os.path.join(self.tmpdir, "nope.conf")
        rc, out, err = run_muxd(["-c", path, "--log-target", "stderr"])
        self.assertEqual(rc, 1, err)
        self.assertIn("%s: cannot read:" % path, err)

    def test_start_with_port_in_use(self):
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        path = self.write_config(mt.base_settings(
            self.backend, listen=[{"port": port, "address": "127.0.0.1"}]))
        rc, out, err = run_muxd(["-c", path, "--log-target", "stderr"])
        self.assertEqual(rc, 1, err)
        self.assertIn("127.0.0.1:%d" % port, err)
        self.assertNotRegex(err, r"\bready\b")

    def test_start_and_stop(self):
        m = self.start_muxd()
        self.assertEqual(m.listeners, [("127.0.0.1", m.port)])
        s = self.client(m)
        self.roundtrip(s, b"x\n")
        s.close()
        self.assertEqual(m.stop(), 0)
        bad = [l for l in m.log_lines() if not mt.LOG_LINE_RE.match(l)]
        self.assertEqual(bad, [], "log lines not of the form 'muxd: LEVEL: message'")
        self.assertEqual(bytes(m.stdout), b"", "muxd wrote to stdout")


mt.for_each_backend(CliMixin)


@unittest.skipUnless("io_uring" in mt.BUILT_BACKENDS, "muxd was built without io_uring")
class IoUringRefused(mt.MuxdTestCase):
    """A kernel that refuses io_uring (here: a seccomp filter making
    io_uring_setup fail with EPERM, as the unit's SystemCallFilter= does
    unless io_uring is added) gets one clear line and exit status 1."""

    backend = "io_uring"
    REFUSED = ('%s:2: backend: the kernel refused io_uring (Operation not permitted); '
               'use backend "epoll", or allow io_uring in the unit (SystemCallFilter='
               'io_uring_setup io_uring_enter io_uring_register)')

    def deny(self):
        tool = os.environ.get("MUXD_DENY_IO_URING", "")
        if not tool:
            raise AssertionError("MUXD_DENY_IO_URING is not set: run through `make check` "
                                 "or tests/integration/run")
        return [tool]

    def run_denied(self, args, timeout=10.0):
        p = subprocess.run(self.deny() + mt.muxd_argv() + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=mt.clean_env(None), timeout=mt.scaled(timeout))
        return p.returncode, p.stderr.decode("utf-8", "replace")

    @staticmethod
    def text(backend):
        return ('timeout = 5;\nbackend = "%s";\n'
                'listen = ( { port = 0; address = "127.0.0.1"; } );\n' % backend)

    def config(self, backend):
        return self.write_config(text=self.text(backend), name=backend + ".conf")

    def test_start_refused(self):
        path = self.config("io_uring")
        rc, err = self.run_denied(["-c", path, "--log-target", "stderr"])
        self.assertEqual(rc, 1, err)
        self.assertIn(self.REFUSED % path, err.splitlines())
        self.assertNotRegex(err, r"\bready\b")

    def test_check_refused(self):
        path = self.config("io_uring")
        rc, err = self.run_denied(["-t", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn(self.REFUSED % path, err.splitlines())
        # not refused without the filter: the line above is the filter's doing
        rc, out, err = run_muxd(["-t", "-c", path])
        self.assertEqual(rc, 0, err)

    def test_epoll_starts_under_the_same_filter(self):
        m = self.start_muxd(text=self.text("epoll"), wrapper=self.deny())
        self.roundtrip(self.client(m), b"x\n")
        self.assertEqual(m.stop(), 0)

    def test_reload_refused(self):
        # a reload to io_uring is refused as the start and -t refuse it,
        # though the backend would only change at the next start
        m = self.start_muxd(text=self.text("epoll"), wrapper=self.deny())
        c = self.client(m)
        self.write_config(text=self.text("io_uring"), name=os.path.basename(m.config_path))
        since = m.log_count()
        m.signal(signal.SIGHUP)
        self.assertLogged(m, "muxd: err: reload failed: %s; keeping the running configuration"
                          % (self.REFUSED % m.config_path), since)
        self.roundtrip(c, b"still\n")
        self.assertEqual(m.stop(), 0)

if __name__ == "__main__":
    mt.main()
