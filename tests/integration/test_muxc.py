# SPDX-License-Identifier: MIT
"""Integration tests for muxc, the muxd client.

muxc runs against small echo servers started inside the test (127.0.0.1 and
::1 only, ephemeral ports), and, when $MUXD names a built daemon, once against
the real muxd. Environment: MUXC (path to muxc, required), MUXD (optional).
Every wait has a deadline; nothing sleeps and hopes.
"""

import os
import queue
import re
import select
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

MUXC = os.environ.get("MUXC", "")
MUXD = os.environ.get("MUXD", "")
# a command line muxd runs under, e.g. valgrind (see muxdtest.py)
MUXD_WRAPPER = shlex.split(os.environ.get("MUXD_WRAPPER", ""))
REPORT_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|^==\d+== ")

# Upper bound for any single muxc run: generous for a loaded CI machine and
# sanitizer builds, yet a hang still fails instead of blocking the suite.
RUN_TIMEOUT = 20


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def closed_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port nothing listens on: bind port 0, read the port, close."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EchoServer:
    """The lesson's server B in miniature: greet each client, answer every
    line with line + suffix (keeping its line ending), close after the
    client's EOF once everything is answered.

    greeting_parts: the greeting sent in several writes (partial lines).
    close_after_greeting: hang up right after greeting (like a oneshot
    server that already got bored). ignore_eof: never close on client EOF.
    """

    def __init__(self, family=socket.AF_INET, host="127.0.0.1", port=0,
                 greeting_parts=(b"hello...\n",), suffix=b"hi...",
                 close_after_greeting=False, ignore_eof=False):
        self.greeting_parts = greeting_parts
        self.suffix = suffix
        self.close_after_greeting = close_after_greeting
        self.ignore_eof = ignore_eof
        self.received = []              # every line received, without line ending
        self.lock = threading.Lock()
        self.connections = 0
        self.stopping = threading.Event()
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)       # lets the accept loop notice stop()
        self.port = self.sock.getsockname()[1]
        self.threads = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(RUN_TIMEOUT)
        try:
            for i, part in enumerate(self.greeting_parts):
                if i > 0:
                    # Separate writes, so muxc sees the pieces apart; the
                    # assertions hold however the bytes are chunked.
                    time.sleep(0.05)
                conn.sendall(part)
            if self.close_after_greeting:
                return
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    eol = b"\n"
                    if line.endswith(b"\r"):
                        line, eol = line[:-1], b"\r\n"
                    with self.lock:
                        self.received.append(line)
                    conn.sendall(line + self.suffix + eol)
            if buf:
                with self.lock:
                    self.received.append(buf)
                conn.sendall(buf + self.suffix)
            if self.ignore_eof:
                self.stopping.wait(RUN_TIMEOUT)
        except OSError:
            pass
        finally:
            conn.close()

    def lines(self):
        with self.lock:
            return list(self.received)

    def stop(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(RUN_TIMEOUT)
        for t in self.threads:
            t.join(RUN_TIMEOUT)


def run_muxc(args, stdin=b"", timeout=RUN_TIMEOUT):
    return subprocess.run([MUXC] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def prefixed(lines, prefix):
    return [l[len(prefix):] for l in lines if l.startswith(prefix)]


@unittest.skipUnless(MUXC and os.access(MUXC, os.X_OK), "MUXC not set or not executable")
class MuxcTest(unittest.TestCase):

    def server(self, **kw):
        s = EchoServer(**kw)
        self.addCleanup(s.stop)
        return s

    # ---- one server ---------------------------------------------------

    def test_pipe_round_trip(self):
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], b"abc\n")
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertEqual(p.stderr, b"")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(s.lines(), [b"abc"])

    def test_connected_notice_on_stderr(self):
        s = self.server()
        p = run_muxc(["127.0.0.1:%d" % s.port], b"abc\n")
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertIn(b"connected to 127.0.0.1:%d" % s.port, p.stderr)
        self.assertEqual(p.returncode, 0)

    def test_several_lines_and_line_endings(self):
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], b"one\ntwo\r\n\nlast")
        self.assertEqual(p.stdout, b"hello...\nonehi...\ntwohi...\r\nhi...\nlasthi...")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(s.lines(), [b"one", b"two", b"", b"last"])

    def test_empty_input(self):
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], b"")
        self.assertEqual(p.stdout, b"hello...\n")
        self.assertEqual(p.returncode, 0)

    def test_q_quits(self):
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], b"abc\nq\nxyz\n")
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(s.lines(), [b"abc"])

    def test_q_crlf_quits(self):
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], b"abc\r\nq\r\nxyz\r\n")
        self.assertEqual(p.stdout, b"hello...\nabchi...\r\n")
        self.assertEqual(s.lines(), [b"abc"])

    def test_q_is_only_a_whole_line(self):
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], b"qq\n q\nq \n")
        self.assertEqual(p.stdout, b"hello...\nqqhi...\n qhi...\nq hi...\n")
        self.assertEqual(s.lines(), [b"qq", b" q", b"q "])

    def test_q_quits_with_stdin_still_open(self):
        # As at a terminal: "q" must end muxc without waiting for EOF.
        # (Not communicate(): it would close stdin. Outputs are small, so
        # reading them after the exit cannot fill a pipe.)
        s = self.server()
        p = subprocess.Popen([MUXC, "-q", "127.0.0.1:%d" % s.port],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            p.stdin.write(b"abc\nq\n")
            p.stdin.flush()
            rc = p.wait(timeout=RUN_TIMEOUT)
            out = p.stdout.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 0)
        self.assertEqual(out, b"hello...\nabchi...\n")

    def test_bare_port_means_localhost(self):
        # localhost may resolve to ::1 first: muxc must go on to 127.0.0.1.
        s = self.server()
        p = run_muxc(["-q", str(s.port)], b"abc\n")
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertEqual(p.returncode, 0)

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback")
    def test_ipv6(self):
        s = self.server(family=socket.AF_INET6, host="::1")
        p = run_muxc(["[::1]:%d" % s.port], b"abc\n")
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertIn(b"connected to [::1]:%d" % s.port, p.stderr)
        self.assertEqual(p.returncode, 0)

    def test_server_closes_first(self):
        # stdin stays open: muxc must notice the close, say so, and exit 0.
        s = self.server(close_after_greeting=True)
        p = subprocess.Popen([MUXC, "-q", "127.0.0.1:%d" % s.port],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            rc = p.wait(timeout=RUN_TIMEOUT)
            out, err = p.stdout.read(), p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 0)
        self.assertEqual(out, b"hello...\n")
        self.assertEqual(err, b"muxc: 127.0.0.1:%d: connection closed by server\n" % s.port)

    def test_waits_for_server_at_most_the_timeout(self):
        # A server that never closes after our EOF: -w bounds the wait.
        s = self.server(ignore_eof=True)
        start = time.monotonic()
        p = run_muxc(["-q", "-w", "1", "127.0.0.1:%d" % s.port], b"abc\n")
        elapsed = time.monotonic() - start
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertEqual(p.returncode, 0)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, RUN_TIMEOUT / 2)

    def test_large_input(self):
        # More than socket buffers hold in both directions: sends must be
        # queued, never block, and nothing may be lost.
        s = self.server()
        lines = [b"line %06d %s" % (i, b"x" * 100) for i in range(20000)]
        data = b"\n".join(lines) + b"\n"
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port], data)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"hello...\n" + b"".join(l + b"hi...\n" for l in lines))

    # ---- several servers ------------------------------------------------

    def test_two_servers_prefix(self):
        a, b = self.server(), self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port], b"abc\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines(keepends=True)
        pa, pb = "[%d] " % a.port, "[%d] " % b.port
        self.assertEqual(prefixed(lines, pa), ["hello...\n", "abchi...\n"])
        self.assertEqual(prefixed(lines, pb), ["hello...\n", "abchi...\n"])
        self.assertEqual(len(lines), 4)
        self.assertEqual(a.lines(), [b"abc"])
        self.assertEqual(b.lines(), [b"abc"])

    def test_partial_lines_keep_their_prefix(self):
        a = self.server(greeting_parts=(b"hel", b"lo", b"...\n"))
        b = self.server(greeting_parts=(b"wel", b"come\n"))
        p = run_muxc(["-q", "127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port], b"")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = sorted(p.stdout.decode().splitlines(keepends=True))
        self.assertEqual(lines, sorted(["[%d] hello...\n" % a.port, "[%d] welcome\n" % b.port]))

    def test_shared_port_uses_host_prefix(self):
        # The same server twice under two names: the port alone is ambiguous.
        s = self.server()
        p = run_muxc(["-q", "127.0.0.1:%d" % s.port, "localhost:%d" % s.port], b"abc\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines(keepends=True)
        self.assertEqual(prefixed(lines, "[127.0.0.1:%d] " % s.port), ["hello...\n", "abchi...\n"])
        self.assertEqual(prefixed(lines, "[localhost:%d] " % s.port), ["hello...\n", "abchi...\n"])
        self.assertEqual(len(lines), 4)

    def test_one_refused_one_good(self):
        s = self.server()
        bad = closed_port()
        p = run_muxc(["-q", "127.0.0.1:%d" % bad, "127.0.0.1:%d" % s.port], b"abc\n")
        # Only one server connected: its bytes come through unchanged.
        self.assertEqual(p.stdout, b"hello...\nabchi...\n")
        self.assertIn(b"muxc: 127.0.0.1:%d: Connection refused" % bad, p.stderr)
        self.assertEqual(p.returncode, 1)

    def test_one_closes_the_other_carries_on(self):
        a = self.server(close_after_greeting=True)
        b = self.server()
        p = subprocess.Popen([MUXC, "-q", "127.0.0.1:%d" % a.port, "127.0.0.1:%d" % b.port],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            # Only once a's close was reported is it surely gone; then b
            # must still answer.
            err = b""
            deadline = time.monotonic() + RUN_TIMEOUT
            while b"connection closed by server" not in err:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "no close notice")
                r, _, _ = select.select([p.stderr], [], [], left)
                if r:
                    chunk = os.read(p.stderr.fileno(), 4096)
                    self.assertNotEqual(chunk, b"", "muxc exited early")
                    err += chunk
            p.stdin.write(b"abc\n")
            p.stdin.close()
            rc = p.wait(timeout=RUN_TIMEOUT)
            out = p.stdout.read()
            err += p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(rc, 0)
        self.assertIn(b"muxc: 127.0.0.1:%d: connection closed by server" % a.port, err)
        lines = out.decode().splitlines(keepends=True)
        self.assertEqual(prefixed(lines, "[%d] " % a.port), ["hello...\n"])
        self.assertEqual(prefixed(lines, "[%d] " % b.port), ["hello...\n", "abchi...\n"])
        self.assertEqual(b.lines(), [b"abc"])

    # ---- failures -------------------------------------------------------

    def test_refused(self):
        port = closed_port()
        p = run_muxc(["127.0.0.1:%d" % port], b"abc\n")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertIn(b"Connection refused", p.stderr)
        self.assertIn(b"127.0.0.1:%d" % port, p.stderr)

    def test_connect_timeout(self):
        # A listener with a full accept queue: Linux drops further SYNs, so
        # the connect neither succeeds nor fails; -w must end it.
        lsock = socket.socket()
        self.addCleanup(lsock.close)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        filler = socket.socket()
        self.addCleanup(filler.close)
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        _, w, _ = select.select([], [filler], [], RUN_TIMEOUT)
        self.assertTrue(w, "filler connection did not complete")
        start = time.monotonic()
        p = run_muxc(["-w", "1", "127.0.0.1:%d" % port], b"")
        elapsed = time.monotonic() - start
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"muxc: 127.0.0.1:%d: connection timed out" % port, p.stderr)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, RUN_TIMEOUT / 2)

    def test_unknown_host(self):
        p = run_muxc(["nosuch.invalid:80"], b"")
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith(b"muxc: nosuch.invalid:80: "), p.stderr)

    # ---- command line ---------------------------------------------------

    def assertUsageError(self, args):
        p = run_muxc(args, b"")
        self.assertEqual(p.returncode, 2, args)
        self.assertEqual(p.stdout, b"")
        err = p.stderr.decode().splitlines()
        self.assertEqual(len(err), 2, p.stderr)
        self.assertTrue(err[0].startswith("muxc: "), err)
        self.assertEqual(err[1], "Try 'muxc --help' for more information.")

    def test_no_arguments(self):
        self.assertUsageError([])

    def test_bad_option(self):
        self.assertUsageError(["--no-such-option", "1"])
        self.assertUsageError(["-x", "1"])

    def test_missing_option_argument(self):
        self.assertUsageError(["1", "-w"])
        self.assertUsageError(["1", "--timeout"])

    def test_bad_values(self):
        self.assertUsageError(["-w", "soon", "1"])
        self.assertUsageError(["127.0.0.1:0"])
        self.assertUsageError(["127.0.0.1:65536"])
        self.assertUsageError(["127.0.0.1"])
        self.assertUsageError(["::1:80"])

    def test_help_and_version(self):
        p = run_muxc(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"Usage: muxc "))
        p = run_muxc(["-V"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^muxc( \S+)?\n$")

    # ---- the real daemon ------------------------------------------------

    @unittest.skipUnless(MUXD and os.access(MUXD, os.X_OK), "MUXD not set or not built")
    def test_against_muxd(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        conf = os.path.join(tmp.name, "muxd.conf")
        with open(conf, "w") as f:
            f.write('ports = [ 0 ];\nlog_level = "info";\n')

        d = subprocess.Popen(MUXD_WRAPPER + [MUXD, "-c", conf, "--log-target", "stderr"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        lines = queue.Queue()

        def pump():
            for line in d.stderr:
                lines.put(line.decode(errors="replace"))
            lines.put(None)

        pump_thread = threading.Thread(target=pump, daemon=True)
        pump_thread.start()
        log = []
        try:
            port = None
            ready = False
            deadline = time.monotonic() + RUN_TIMEOUT
            while not (ready and port):
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "muxd not ready:\n" + "".join(log))
                try:
                    line = lines.get(timeout=left)
                except queue.Empty:
                    continue
                self.assertIsNotNone(line, "muxd exited:\n" + "".join(log))
                log.append(line)
                m = re.search(r"listening on (\[[^\]]*\]|[^\s\[\]]+):(\d+)", line)
                if m and port is None:
                    port = int(m.group(2))
                if "ready" in line:
                    ready = True

            p = run_muxc(["-q", "127.0.0.1:%d" % port], b"abc\n")
            self.assertEqual(p.stdout, b"hello...\nabchi...\n", "".join(log))
            self.assertEqual(p.returncode, 0, p.stderr)

            d.send_signal(signal.SIGTERM)
            self.assertEqual(d.wait(timeout=RUN_TIMEOUT), 0)
        finally:
            if d.poll() is None:
                d.kill()
                d.wait()
            pump_thread.join(RUN_TIMEOUT)
            d.stderr.close()
        while True:
            line = lines.get_nowait() if not lines.empty() else None
            if line is None:
                break
            log.append(line)
        reports = [l for l in log if REPORT_RE.search(l)]
        self.assertEqual(reports, [], "sanitizer/valgrind reports from muxd:\n" + "".join(log))


if __name__ == "__main__":
    if not MUXC:
        raise SystemExit("MUXC must name the muxc binary to test")
    unittest.main()
