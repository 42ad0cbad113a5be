# SPDX-License-Identifier: MIT
"""The per-connection protocol: greeting, echo framing, oneshot, oversized
messages, EOF handling, idle timeout, IPv6, SIGTERM drain."""

import select
import signal
import socket
import threading
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING, DEFAULT_SUFFIX, TOO_LONG, expect_eof


class EchoMixin:
    """Line framing, the default."""

    def test_greeting_and_echo(self):
        m = self.start_muxd()
        s = self.client(m)
        self.roundtrip(s, b"abc\n")
        s.sendall(b"abc\n")
        self.assertRecv(s, b"abchi...\n")
        s.sendall(b"abc\r\n")
        self.assertRecv(s, b"abchi...\r\n")
        mt.expect_silence(s, 0.2)           # nothing more than the replies

    def test_empty_and_binary_lines(self):
        m = self.start_muxd()
        s = self.client(m)
        s.sendall(b"\n")
        self.assertRecv(s, b"hi...\n")
        s.sendall(b"\r\n")
        self.assertRecv(s, b"hi...\r\n")
        payload = bytes(b for b in range(256) if b != 0x0a) + b"\n"
        s.sendall(payload)
        self.assertRecv(s, payload[:-1] + b"hi...\n")
        # A lone \r inside a line is part of the body.
        s.sendall(b"a\rb\n")
        self.assertRecv(s, b"a\rbhi...\n")

    def test_several_lines_in_one_write(self):
        m = self.start_muxd()
        s = self.client(m)
        s.sendall(b"one\ntwo\r\nthree\n\nfour\n")
        self.assertRecv(s, b"onehi...\ntwohi...\r\nthreehi...\nhi...\nfourhi...\n")
        # Many small lines at once: all answered, in order.
        lines = b"".join(b"line %d\n" % i for i in range(1000))
        s.sendall(lines)
        self.assertRecv(s, b"".join(b"line %dhi...\n" % i for i in range(1000)))

    def test_line_split_across_writes(self):
        m = self.start_muxd()
        s = self.client(m)
        s.sendall(b"ab")
        mt.expect_silence(s, 0.3)           # no reply to a partial line
        s.sendall(b"c")
        mt.expect_silence(s, 0.2)
        s.sendall(b"d\nef")
        self.assertRecv(s, b"abcdhi...\n")
        mt.expect_silence(s, 0.2)
        s.sendall(b"\r")
        mt.expect_silence(s, 0.2)
        s.sendall(b"\n")
        self.assertRecv(s, b"efhi...\r\n")

    def test_eof_answers_remaining_lines(self):
        m = self.start_muxd()
        s = self.client(m)
        s.sendall(b"a\nb\r\nabc")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(mt.recv_all(s), b"ahi...\nbhi...\r\nabchi...")

    def test_eof_after_complete_lines(self):
        m = self.start_muxd()
        s = self.client(m)
        s.sendall(b"x\ny\n")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(mt.recv_all(s), b"xhi...\nyhi...\n")

    def test_eof_right_after_connect(self):
        m = self.start_muxd()
        s = self.connect(m.port)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(mt.recv_all(s), DEFAULT_GREETING)

    def test_custom_greeting_and_suffix(self):
        m = self.start_muxd(greeting="Welcome \"x\"\\\r\n", suffix=" <- you said")
        s = self.client(m, greeting=b"Welcome \"x\"\\\r\n")
        self.roundtrip(s, b"hey\n", suffix=b" <- you said")

    def test_empty_greeting_sends_nothing(self):
        m = self.start_muxd(greeting="")
        s = self.connect(m.port)
        mt.expect_silence(s, 0.3)
        s.sendall(b"first\n")
        self.assertRecv(s, b"firsthi...\n")

    def test_clients_are_independent(self):
        m = self.start_muxd()
        a = self.client(m)
        b = self.client(m)
        a.sendall(b"partial from a")
        self.roundtrip(b, b"from b\n")
        a.sendall(b"\n")
        self.assertRecv(a, b"partial from ahi...\n")
        mt.expect_silence(b, 0.2)

    def test_per_listener_overrides(self):
        # "ports" short form with the defaults, "listen" entries overriding.
        m = self.start_muxd(ports=[0], listen=[
            {"port": 0, "address": "127.0.0.1", "greeting": "G\n", "suffix": "!",
             "max_message": 8, "name": "custom"},
        ])
        self.assertEqual(len(m.listeners), 2, m.listeners)
        default_port, custom_port = m.port_of("*"), m.port_of("127.0.0.1")
        self.assertNotEqual(default_port, custom_port)
        s1 = self.client(m, port=default_port)
        self.roundtrip(s1, b"0123456789\n")
        s2 = self.client(m, port=custom_port, greeting=b"G\n")
        self.roundtrip(s2, b"01234567\n", suffix=b"!")
        s2.sendall(b"012345678\n")
        self.assertRecv(s2, TOO_LONG)
        expect_eof(s2, allow_reset=True)
        self.roundtrip(s1, b"still\n")

    def test_log_format(self):
        m = self.start_muxd(log_level="debug")
        s = self.client(m)
        self.roundtrip(s, b"hello\n")
        s.close()
        self.assertEqual(m.stop(), 0)
        bad = [l for l in m.log_lines() if not mt.LOG_LINE_RE.match(l)]
        self.assertEqual(bad, [], "log lines not of the form 'muxd: LEVEL: message'")


class RawMixin:
    """framing = "raw": each chunk read is a message."""

    def test_raw_echo(self):
        m = self.start_muxd(framing="raw")
        s = self.client(m)
        for chunk in (b"abc", b"with newline\n", b"x" * 1000, b"\r\n", b"\x00\xff"):
            s.sendall(chunk)
            self.assertRecv(s, chunk + DEFAULT_SUFFIX)

    def test_raw_eof(self):
        m = self.start_muxd(framing="raw")
        s = self.client(m)
        s.sendall(b"last")
        self.assertRecv(s, b"lasthi...")
        s.shutdown(socket.SHUT_WR)
        expect_eof(s)


class MaxMessageMixin:

    def test_sizes(self):
        m = self.start_muxd(max_message=4096)
        other = self.client(m)
        s = self.client(m)
        for n in (1024, 4095, 4096):
            body = bytes((ord("a") + i % 26) for i in range(n))
            self.roundtrip(s, body + b"\n")
            self.roundtrip(s, body + b"\r\n")
        self.roundtrip(other, b"other\n")

    def test_one_byte_too_long(self):
        m = self.start_muxd(max_message=4096)
        other = self.client(m)
        s = self.client(m)
        self.roundtrip(s, b"ok\n")
        s.sendall(b"z" * 4097 + b"\n")
        self.assertRecv(s, TOO_LONG)
        expect_eof(s, allow_reset=True)
        self.roundtrip(other, b"unaffected\n")
        self.assertAlive(m)

    def test_crlf_does_not_count(self):
        m = self.start_muxd(max_message=16)
        s = self.client(m)
        self.roundtrip(s, b"x" * 16 + b"\r\n")
        s.sendall(b"x" * 17 + b"\r\n")
        self.assertRecv(s, TOO_LONG)
        expect_eof(s, allow_reset=True)

    def test_huge_line_without_newline(self):
        m = self.start_muxd(max_message=4096)
        other = self.client(m)
        s = self.client(m)
        errors = []

        def flood():
            try:
                s.sendall(b"y" * (1 << 20))
            except OSError as e:           # muxd closed on us: expected
                errors.append(e)
        t = threading.Thread(target=flood, daemon=True)
        t.start()
        self.roundtrip(other, b"during\n")
        self.assertRecv(s, TOO_LONG, timeout=10)
        expect_eof(s, timeout=10, allow_reset=True)
        t.join(10)
        self.assertFalse(t.is_alive(), "sender still blocked after muxd closed")
        self.roundtrip(other, b"after\n")
        # A new client is served normally.
        self.roundtrip(self.client(m), b"new\n")
        self.assertAlive(m)

    def test_raw_chunk_limit(self):
        # raw framing: a chunk longer than max_message is an error too (muxd
        # reads at most max_message + 1 bytes at a time, so it sees it).
        m = self.start_muxd(framing="raw", max_message=8)
        s = self.client(m)
        s.sendall(b"12345678")
        self.assertRecv(s, b"12345678hi...")
        s.sendall(b"x" * 4000)
        self.assertRecv(s, TOO_LONG)
        expect_eof(s, allow_reset=True)


class OneshotMixin:

    def test_oneshot(self):
        # log_level debug: the message is logged whether muxd logs it at info or debug.
        m = self.start_muxd(mode="oneshot", log_level="debug")
        s = self.client(m)
        s.sendall(b"ping\n")
        expect_eof(s)
        m.wait_log(r"message from.*ping|ping.*message from")

    def test_oneshot_multiple_ports_and_no_greeting(self):
        m = self.start_muxd(ports=[0], mode="oneshot", log_level="debug", listen=[
            {"port": 0, "address": "127.0.0.1", "greeting": "", "name": "probe"}])
        p_default, p_probe = m.port_of("*"), m.port_of("127.0.0.1")
        a = self.client(m, port=p_default)
        a.sendall(b"first one\n")
        expect_eof(a)
        m.wait_log(r"message from.*first one")
        b = self.connect(p_probe)
        mt.expect_silence(b, 0.3)
        b.sendall(b"probe\n")
        expect_eof(b)
        m.wait_log(r"message from.*probe")

    def test_oneshot_next_to_echo(self):
        # The lesson's two servers in one process.
        m = self.start_muxd(mode="echo", log_level="debug", ports=[0], listen=[
            {"port": 0, "address": "127.0.0.1", "mode": "oneshot"}])
        p_echo, p_oneshot = m.port_of("*"), m.port_of("127.0.0.1")
        e = self.client(m, port=p_echo)
        o = self.client(m, port=p_oneshot)
        self.roundtrip(e, b"echoed\n")
        o.sendall(b"logged\n")
        expect_eof(o)
        m.wait_log(r"message from.*logged")
        self.roundtrip(e, b"again\n")


class TimeoutMixin:

    def test_idle_client_closed(self):
        m = self.start_muxd(timeout=1)
        s = self.client(m)
        t0 = time.monotonic()
        expect_eof(s, timeout=5)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 0.8, "closed after %.2fs, timeout is 1s" % elapsed)
        self.assertLess(elapsed, 5.0)

    def test_active_client_stays(self):
        m = self.start_muxd(timeout=1)
        idle = self.client(m)
        s = self.client(m)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 2.5:
            self.roundtrip(s, b"tick %d\n" % i)
            i += 1
            time.sleep(0.3)
        self.assertGreaterEqual(i, 7)
        # The idle one was closed meanwhile, the active one is still served.
        expect_eof(idle, timeout=0.5)
        self.roundtrip(s, b"still here\n")
        # And once it goes quiet, it is closed too.
        t1 = time.monotonic()
        expect_eof(s, timeout=5)
        self.assertGreaterEqual(time.monotonic() - t1, 0.8)

    def test_partial_line_does_not_keep_client(self):
        # A client that stops sending in the middle of a line is closed too.
        m = self.start_muxd(timeout=1)
        s = self.client(m)
        s.sendall(b"incompl")
        t0 = time.monotonic()
        data = mt.recv_all(s, timeout=5)
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)
        # Whether the fragment is answered on the way out is not specified.
        self.assertIn(data, (b"", b"incomplhi..."))

    def test_trickling_bytes_do_not_keep_client(self):
        # Slowloris: a byte every 0.3 s, never a whole line. Only complete
        # messages count as activity, so the client is closed after ~timeout.
        m = self.start_muxd(timeout=1)
        s = self.client(m)
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 5:
            try:
                s.sendall(b"x")
            except OSError:
                closed = True
                break
            r, _, _ = select.select([s], [], [], 0.3)
            if r:
                closed = True
                break
        elapsed = time.monotonic() - t0
        self.assertTrue(closed, "a client trickling bytes was kept for 5 s with timeout = 1")
        self.assertGreaterEqual(elapsed, 0.8, "closed after %.2fs, timeout is 1s" % elapsed)
        # closed without an answer to the fragment (a reset is possible if a
        # byte was still in flight when muxd closed)
        self.assertEqual(mt.recv_all(s, timeout=5, allow_reset=True), b"")

    def test_timeout_zero_never_closes(self):
        m = self.start_muxd(timeout=0)
        s = self.client(m)
        mt.expect_silence(s, 2.0)
        self.roundtrip(s, b"alive\n")


class Ipv6Mixin:

    def setUp(self):
        super().setUp()
        if not mt.have_ipv6():
            self.skipTest("IPv6 loopback (::1) not usable here")

    def test_listen_on_ipv6_loopback(self):
        m = self.start_muxd(listen=[{"port": 0, "address": "::1"}])
        self.assertEqual(m.listeners[0][0], "[::1]")
        s = self.client(m, host="::1")
        self.roundtrip(s, b"over ipv6\n")

    def test_dual_stack_port(self):
        m = self.start_muxd(ports=[0], listen=None)
        self.assertEqual(len(m.listeners), 1, m.listeners)
        addr, port = m.listeners[0]
        self.assertEqual(addr, "[::]", "ports = [0] should be one dual-stack IPv6 socket")
        s4 = self.client(m, host="127.0.0.1", port=port)
        s6 = self.client(m, host="::1", port=port)
        self.roundtrip(s4, b"v4\n")
        self.roundtrip(s6, b"v6\n")

    def test_ipv6_and_ipv4_listeners_together(self):
        m = self.start_muxd(listen=[{"port": 0, "address": "::1", "suffix": "6"},
                                    {"port": 0, "address": "127.0.0.1", "suffix": "4"}])
        self.assertEqual(sorted(a for a, _ in m.listeners), ["127.0.0.1", "[::1]"])
        p6, p4 = m.port_of("[::1]"), m.port_of("127.0.0.1")
        s6 = self.client(m, host="::1", port=p6)
        s4 = self.client(m, host="127.0.0.1", port=p4)
        self.roundtrip(s6, b"x\n", suffix=b"6")
        self.roundtrip(s4, b"x\n", suffix=b"4")


PENDING_LINE = 1024


_FILLER = b"pqrstuvwxyz" * 100


def pending_line(i):
    """Line i of a client that does not read: 1024 bytes."""
    k = i % 11
    return b"%08d " % i + _FILLER[k:k + PENDING_LINE - 10] + b"\n"


class ShutdownMixin:

    def _pending_client(self, m, max_bytes=32 << 20):
        """A client with a small receive buffer that sends lines without
        reading until muxd stops taking them (it throttles a client that does
        not read its replies), so that replies pile up in muxd.
        Returns (socket, bytes sent, the lines sent)."""
        s = self.connect(m.port, rcvbuf=4096)
        self.assertRecv(s, DEFAULT_GREETING)
        s.setblocking(False)
        lines = []
        sent = 0
        pending = b""
        deadline = time.monotonic() + 20
        last_progress = time.monotonic()
        while time.monotonic() < deadline:
            if not pending:
                if sent >= max_bytes:
                    break
                chunk = [pending_line(len(lines) + k) for k in range(64)]
                lines += chunk
                pending = b"".join(chunk)
            try:
                n = s.send(pending)
            except BlockingIOError:
                n = 0
            if n:
                pending = pending[n:]
                sent += n
                last_progress = time.monotonic()
                continue
            if time.monotonic() - last_progress > 1.0:
                break                        # throttled: replies are piling up in muxd
            select.select([], [s], [], 0.1)
        s.setblocking(True)
        s.settimeout(5)
        return s, sent, lines

    def _read_bytes_by_muxd(self, m, s, sent):
        """Bytes muxd has read from s (sent minus what is still in our send
        queue and in muxd's receive queue), once that is stable."""
        local = s.getsockname()[1]
        prev = None
        stable_since = time.monotonic()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            cur = (mt.sock_outq(s), mt.tcp_rx_queue(m.port, local))
            if cur == (0, 0):
                break
            if cur != prev:
                prev, stable_since = cur, time.monotonic()
            elif time.monotonic() - stable_since > 0.5:
                break
            time.sleep(0.05)
        outq, rxq = mt.sock_outq(s), mt.tcp_rx_queue(m.port, local)
        self.assertIsNotNone(rxq, "muxd's end of the connection not found in /proc/net/tcp")
        return sent - outq - rxq

    def _wait_stopping(self, m, since):
        """muxd logs that it is stopping (SPEC: a 'stopping' event)."""
        m.wait_log(r"(?i)stop|shut|drain|terminat|SIGTERM|SIGINT|signal", since=since,
                   timeout=3)

    def test_sigterm_flushes_pending_replies(self):
        m = self.start_muxd(shutdown_timeout=10)
        s, sent, lines = self._pending_client(m)
        read_by_muxd = self._read_bytes_by_muxd(m, s, sent)
        # Replies muxd must have queued: one for every complete line it has read.
        must = read_by_muxd // PENDING_LINE
        self.assertGreater(must, 0)
        m.signal(signal.SIGTERM)
        data, reset = self._recv_all_or_reset(s, timeout=15)
        rc = m.wait_exit(15)
        got = len(data) // (PENDING_LINE + len(DEFAULT_SUFFIX))
        print("\n  [%s] SIGTERM drain: sent %.1f MiB, muxd had read %.1f MiB, "
              "%d replies delivered%s, %d were owed"
              % (self.backend, sent / 2**20, read_by_muxd / 2**20, got,
                 " then RESET" if reset else " then EOF", must))
        n = got + 1
        expected = b"".join(mt.echo_reply(l) for l in lines[:n])
        if not expected.startswith(data):
            i = next(k for k in range(len(data)) if data[k] != expected[k])
            self.fail("replies corrupted at byte %d: %r" % (i, data[i:i + 40]))
        self.assertGreaterEqual(
            got, must, "only %d of the %d replies owed arrived before %s"
            % (got, must, "a connection reset (muxd closed the socket with unread input "
                          "in its receive queue: the kernel sends RST and discards the "
                          "replies not yet transmitted)" if reset else "EOF"))
        self.assertFalse(reset, "connection reset instead of EOF after the replies")
        self.assertTrue(data.endswith(b"\n"), "a reply was cut: ...%r" % data[-60:])
        self.assertEqual(rc, 0, m.log_tail())

    @staticmethod
    def _recv_all_or_reset(s, timeout):
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no EOF within %.1fs after %d bytes" % (timeout, len(buf)))
            s.settimeout(remaining)
            try:
                chunk = s.recv(1 << 16)
            except ConnectionResetError:
                return bytes(buf), True
            except socket.timeout:
                continue
            if not chunk:
                return bytes(buf), False
            buf += chunk

    def test_sigterm_idle_clients(self):
        m = self.start_muxd()
        a = self.client(m)
        b = self.client(m)
        self.roundtrip(a, b"x\n")
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        expect_eof(a, timeout=5)
        expect_eof(b, timeout=5)
        self.assertEqual(m.wait_exit(5), 0, m.log_tail())
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_sigterm_bounded_by_shutdown_timeout(self):
        m = self.start_muxd(shutdown_timeout=2)
        s, sent, lines = self._pending_client(m)
        t0 = time.monotonic()
        idx = m.log_count()
        m.signal(signal.SIGTERM)
        self._wait_stopping(m, idx)
        # During the drain, new clients are not served.
        try:
            late = mt.connect(m.port, timeout=1)
        except OSError:
            late = None                     # refused: listener closed
        if late is not None:
            try:
                data = mt.recv_all(late, timeout=4, allow_reset=True)
                self.assertEqual(data, b"", "a client was greeted after SIGTERM")
            finally:
                late.close()
        rc = m.wait_exit(6)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(rc, "muxd still draining %.1fs after SIGTERM with "
                             "shutdown_timeout = 2" % elapsed)
        self.assertEqual(rc, 0, m.log_tail())
        self.assertGreaterEqual(elapsed, 1.0, "gave up draining before shutdown_timeout")
        # What did arrive is a correct prefix of the replies.
        data = mt.recv_all(s, timeout=5, allow_reset=True)
        expected = b"".join(mt.echo_reply(l) for l in
                            lines[:len(data) // (PENDING_LINE + len(DEFAULT_SUFFIX)) + 1])
        self.assertTrue(expected.startswith(data), "replies corrupted")

    def test_second_sigterm_exits_at_once(self):
        m = self.start_muxd(shutdown_timeout=60)
        s, sent, lines = self._pending_client(m)
        idx = m.log_count()
        m.signal(signal.SIGTERM)
        self._wait_stopping(m, idx)
        rc = m.wait_exit(0.5)
        self.assertIsNone(rc, "exited before draining a client that is not reading")
        t0 = time.monotonic()
        m.signal(signal.SIGTERM)
        rc = m.wait_exit(5)
        self.assertIsNotNone(rc, "second SIGTERM: muxd still running after 5s")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertNotEqual(rc, -signal.SIGKILL)

    def test_sigint_like_sigterm(self):
        m = self.start_muxd()
        s = self.client(m)
        self.roundtrip(s, b"x\n")
        m.signal(signal.SIGINT)
        expect_eof(s, timeout=5)
        self.assertEqual(m.wait_exit(5), 0, m.log_tail())


for _mixin in (EchoMixin, RawMixin, MaxMessageMixin, OneshotMixin, TimeoutMixin, Ipv6Mixin,
               ShutdownMixin):
    mt.for_each_backend(_mixin)

if __name__ == "__main__":
    mt.main()
