# SPDX-License-Identifier: MIT
"""Load: many concurrent clients, a flooding client, clients that vanish
mid-reply.  Every reply is verified byte for byte."""

import os
import re
import select
import selectors
import shutil
import subprocess
import socket
import struct
import threading
import time

import muxdtest as mt
from muxdtest import DEFAULT_GREETING, DEFAULT_SUFFIX

N_CLIENTS = 500
N_ROUNDS = 100
FLOOD_BYTES = 128 << 20   # twice the RSS bound: a daemon without throttling fails clearly
FLOOD_LINE = 1024
PATTERN = b"abcdefghijklmnopqrstuvwxyz0123456789" * 60


def flood_line(i):
    """Line i of the flood: 1024 bytes, unique prefix, varying filler."""
    head = b"%08d:" % i
    k = i % 36
    return head + PATTERN[k:k + FLOOD_LINE - len(head) - 1] + b"\n"


class LineStream:
    """Bytes of flood lines (or of their replies) generated on demand."""

    def __init__(self, reply):
        self.reply = reply
        self.next_line = 0
        self.buf = bytearray()

    def take(self, n):
        while len(self.buf) < n:
            line = flood_line(self.next_line)
            self.next_line += 1
            self.buf += mt.echo_reply(line) if self.reply else line
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class RssSampler(threading.Thread):
    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.max_kb = mt.rss_kb(pid)
        self.running = True

    def run(self):
        while self.running:
            try:
                self.max_kb = max(self.max_kb, mt.rss_kb(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(self.interval)

    def stop(self):
        self.running = False
        self.join(5)


class LoadMixin:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(8192)

    def test_many_clients(self):
        m = self.start_muxd(max_connections=900, timeout=120)
        base_fds = mt.num_fds(m.pid)
        t0 = time.monotonic()
        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)

        class C:
            __slots__ = ("i", "round", "expected", "buf")

        socks = []
        for i in range(N_CLIENTS):
            s = self.connect(m.port, timeout=10)
            s.setblocking(False)
            c = C()
            c.i, c.round, c.expected, c.buf = i, -1, DEFAULT_GREETING, b""
            sel.register(s, selectors.EVENT_READ, c)
            socks.append(s)
        t_conn = time.monotonic() - t0
        deadline = time.monotonic() + 90
        done = 0
        replies = 0
        while done < N_CLIENTS:
            if time.monotonic() > deadline:
                rounds = sorted(k.data.round for k in sel.get_map().values())
                self.fail("timed out: %d/%d clients done; rounds of the others: %s..."
                          % (done, N_CLIENTS, rounds[:20]))
            for key, _ in sel.select(timeout=1.0):
                c, s = key.data, key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    self.fail("client %d: connection reset in round %d" % (c.i, c.round))
                if not data:
                    self.fail("client %d: EOF in round %d (got %r, expected %r)"
                              % (c.i, c.round, c.buf, c.expected))
                c.buf += data
                if not c.expected.startswith(c.buf):
                    self.fail("client %d round %d: got %r, expected %r"
                              % (c.i, c.round, c.buf, c.expected))
                if len(c.buf) < len(c.expected):
                    continue
                replies += 1
                c.round += 1
                c.buf = b""
                if c.round == N_ROUNDS:
                    done += 1
                    sel.unregister(s)
                    continue
                msg = b"c%dr%d\n" % (c.i, c.round)
                self.assertEqual(s.send(msg), len(msg))
                c.expected = b"c%dr%dhi...\n" % (c.i, c.round)
        elapsed = time.monotonic() - t0
        rss = mt.rss_kb(m.pid)
        print("\n  [%s] %d clients x %d round trips: connect %.2fs, total %.2fs "
              "(%.0f replies/s), muxd RSS %d KiB"
              % (self.backend, N_CLIENTS, N_ROUNDS, t_conn, elapsed, replies / elapsed, rss))
        self.assertEqual(replies, N_CLIENTS * (N_ROUNDS + 1))
        for s in socks:
            s.close()
        self.wait_for(lambda: mt.num_fds(m.pid) <= base_fds, 10,
                      "muxd's descriptors to return to %d after all clients left (now %d)"
                      % (base_fds, mt.num_fds(m.pid)))
        self.roundtrip(self.client(m), b"after the crowd\n")

    def test_flooding_client(self):
        m = self.start_muxd(max_connections=900, timeout=300, shutdown_timeout=5)
        b = self.client(m)
        self.roundtrip(b, b"warm up\n")
        a = self.client(m)
        baseline = mt.rss_kb(m.pid)
        sampler = RssSampler(m.pid)
        sampler.start()
        self.addCleanup(sampler.stop)

        a.setblocking(False)
        out = LineStream(reply=False)
        state = {"sent": 0, "stuck": False, "pending": b"", "error": None}
        flood_deadline = time.monotonic() + 60

        def flood():
            try:
                pending = b""
                last_progress = time.monotonic()
                while time.monotonic() < flood_deadline:
                    if not pending:
                        if state["sent"] >= FLOOD_BYTES:
                            break
                        pending = out.take(64 * FLOOD_LINE)
                    try:
                        n = a.send(pending)
                    except BlockingIOError:
                        n = 0
                    if n:
                        pending = pending[n:]
                        state["sent"] += n
                        last_progress = time.monotonic()
                        continue
                    if time.monotonic() - last_progress > 1.5:
                        state["stuck"] = True
                        break
                    select.select([], [a], [], 0.1)
                state["pending"] = pending
            except Exception as e:          # reported by the main thread
                state["error"] = e

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        # Another client is served while A floods...
        t_b = time.monotonic()
        for i in range(100):
            self.roundtrip(b, b"b during flood %d\n" % i)
        t_b = time.monotonic() - t_b
        t.join(70)
        self.assertFalse(t.is_alive(), "flooding thread did not stop")
        self.assertIsNone(state["error"])
        # ... and while A is throttled.
        for i in range(100):
            self.roundtrip(b, b"b while throttled %d\n" % i)
        self.assertAlive(m)
        peak_flood = sampler.max_kb

        # A now reads everything: finish the current line, half-close, and
        # compare the whole reply stream.
        sent_lines_bytes = state["sent"]
        pending = state["pending"]
        # Bytes up to the end of the line in progress.
        partial = sent_lines_bytes % FLOOD_LINE
        tail = pending[:FLOOD_LINE - partial] if partial else b""
        total_sent = sent_lines_bytes + len(tail)
        self.assertEqual(total_sent % FLOOD_LINE, 0)
        n_lines = total_sent // FLOOD_LINE
        expect = LineStream(reply=True)
        expected_total = n_lines * (FLOOD_LINE + len(DEFAULT_SUFFIX))
        received = 0
        shut = False
        drain_deadline = time.monotonic() + 60
        while True:
            if time.monotonic() > drain_deadline:
                self.fail("reading the flood's replies: %d of %d bytes after 60s"
                          % (received, expected_total))
            want_w = bool(tail) or not shut
            r, w, _ = select.select([a], [a] if want_w else [], [], 1.0)
            if w:
                if tail:
                    try:
                        tail = tail[a.send(tail):]
                    except BlockingIOError:
                        pass
                if not tail and not shut:
                    a.shutdown(socket.SHUT_WR)
                    shut = True
            if r:
                try:
                    data = a.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    break
                exp = expect.take(len(data))
                if data != exp:
                    i = next(k for k in range(len(data)) if data[k] != exp[k])
                    self.fail("flood reply stream differs at byte %d: got %r, expected %r"
                              % (received + i, data[i:i + 60], exp[i:i + 60]))
                received += len(data)
        sampler.stop()
        print("\n  [%s] flood: sent %.1f MiB (%s), %d replies verified; B's 100 round "
              "trips took %.2fs; RSS baseline %d KiB, peak while flooding %d KiB, "
              "peak overall %d KiB"
              % (self.backend, total_sent / 2**20,
                 "throttled" if state["stuck"] else "not throttled", n_lines, t_b,
                 baseline, peak_flood, sampler.max_kb))
        self.assertEqual(received, expected_total,
                         "EOF after %d of %d reply bytes" % (received, expected_total))
        self.assertLess(sampler.max_kb - baseline, 64 * 1024,
                        "muxd grew by %d KiB serving a flooding client"
                        % (sampler.max_kb - baseline))
        self.roundtrip(b, b"b after\n")

    def test_amplified_replies_are_bounded(self):
        """Tiny messages with the longest suffix: 32 Ki empty lines sent in one
        write, then a half-close, before reading anything.  Each reply is
        1,025 bytes (32 MiB in all); muxd must build them a bounded batch at a
        time while the client does not read, answer every one in order once it
        does, and only then close."""
        suffix = b"A" * 1024
        m = self.start_muxd(suffix=suffix.decode(), timeout=120)
        s = self.client(m)
        baseline = mt.rss_kb(m.pid)
        sampler = RssSampler(m.pid, interval=0.01)
        sampler.start()
        self.addCleanup(sampler.stop)
        n_lines = 32 * 1024
        s.sendall(b"\n" * n_lines)
        s.shutdown(socket.SHUT_WR)
        got = mt.recv_all(s, timeout=60)
        sampler.stop()
        reply = suffix + b"\n"
        self.assertEqual(len(got), n_lines * len(reply),
                         "got %d reply bytes, expected %d" % (len(got), n_lines * len(reply)))
        self.assertEqual(got, reply * n_lines)
        print("\n  [%s] amplification: %d empty lines -> %.1f MiB of replies; RSS %d KiB, peak %d KiB"
              % (self.backend, n_lines, len(got) / 2**20, baseline, sampler.max_kb))
        self.assertLess(sampler.max_kb - baseline, 16 * 1024,
                        "muxd grew by %d KiB answering one client" % (sampler.max_kb - baseline))
        self.roundtrip(self.client(m), b"still served\n", suffix=suffix)

    def _heap_allocations(self, n_messages):
        """Run muxd under valgrind, send n_messages (10 lines per write) on one
        connection, stop muxd; returns the allocations valgrind counted over
        the whole run."""
        log = os.path.join(self.tmpdir, "valgrind-%d.log" % n_messages)
        over = {}
        if self.backend == "io_uring":
            # one worker: what is counted is per message, not per worker, and
            # under valgrind each io_uring worker wakes every 10 ms (ev_uring.c)
            over["workers"] = 1
        m = self.start_muxd(wrapper=["valgrind", "--log-file=" + log], **over)
        s = self.client(m)
        for i in range(0, n_messages, 10):
            lines = b"".join(b"message %d\n" % k for k in range(i, i + 10))
            s.sendall(lines)
            self.assertRecv(s, b"".join(b"message %dhi...\n" % k for k in range(i, i + 10)),
                            timeout=30)
        s.close()
        self.assertEqual(m.stop(), 0, m.log_tail())
        with open(log) as f:
            text = f.read()
        found = re.search(r"total heap usage: ([\d,]+) allocs", text)
        self.assertIsNotNone(found, "no heap summary in valgrind's log:\n" + text[-2000:])
        return int(found.group(1).replace(",", ""))

    @mt.skip_under_valgrind("it runs valgrind itself")
    def test_no_heap_allocation_per_message(self):
        """Steady state allocates nothing per message: 20,000 more messages
        on a connection cost (next to) no more heap allocations."""
        if not shutil.which("valgrind"):
            self.skipTest("valgrind is not installed (scripts/install-deps installs it)")
        libs = subprocess.run(["ldd", mt.muxd_path()], capture_output=True).stdout
        if b"libasan" in libs or b"libtsan" in libs:
            self.skipTest("muxd is built with a sanitizer, which valgrind cannot run")
        few, many = self._heap_allocations(1000), self._heap_allocations(21000)
        print("\n  [%s] heap allocations over a whole run: %d with 1,000 messages, "
              "%d with 21,000" % (self.backend, few, many))
        # a partial line split by a read boundary may buffer (one allocation)
        self.assertLess(many - few, 20, "%d more allocations for 20,000 more messages"
                        % (many - few))

    def _send_without_reading(self, s, nbytes, stall=0.5):
        """Send up to nbytes of lines without reading; stop early when muxd
        stops taking them for `stall` seconds.  Returns bytes sent."""
        s.setblocking(False)
        data = b"".join(b"%07d %s\n" % (i, b"r" * 120) for i in range(nbytes // 128 + 1))
        sent = 0
        last = time.monotonic()
        deadline = time.monotonic() + 10
        while sent < nbytes and time.monotonic() < deadline:
            try:
                n = s.send(data[sent:sent + 65536])
                sent += n
                last = time.monotonic()
                continue
            except BlockingIOError:
                pass
            if time.monotonic() - last > stall:
                break
            select.select([], [s], [], 0.05)
        return sent

    def test_disconnect_mid_reply(self):
        m = self.start_muxd(max_connections=900)
        other = self.client(m)
        base_fds = mt.num_fds(m.pid)
        for how in ("close", "rst", "close-after-partial-read", "shutdown-rd"):
            s = mt.connect(m.port)
            try:
                self.assertEqual(mt.recv_exact(s, len(DEFAULT_GREETING)), DEFAULT_GREETING)
                self._send_without_reading(s, 4 << 20)
                if how == "rst":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif how == "close-after-partial-read":
                    s.setblocking(True)
                    mt.recv_exact(s, 10000)
                elif how == "shutdown-rd":
                    s.shutdown(socket.SHUT_RDWR)
            finally:
                s.close()
            self.roundtrip(other, b"still served after %s\n" % how.encode())
            self.assertAlive(m)
        # Many at once.
        burst = []
        for i in range(40):
            s = mt.connect(m.port)
            burst.append(s)
            s.sendall(b"".join(b"burst %d line %d\n" % (i, j) for j in range(2000)))
        for i, s in enumerate(burst):
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.roundtrip(other, b"after the burst\n")
        self.assertAlive(m)
        self.wait_for(lambda: mt.num_fds(m.pid) <= base_fds, 10,
                      "muxd to close the vanished clients (fds now %d, before %d)"
                      % (mt.num_fds(m.pid), base_fds))
        self.roundtrip(self.client(m), b"fresh\n")
        self.roundtrip(other, b"last\n")


mt.for_each_backend(LoadMixin)

if __name__ == "__main__":
    mt.main()
