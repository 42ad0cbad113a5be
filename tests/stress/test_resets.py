# SPDX-License-Identifier: MIT
"""Resets and vanishing clients, 500 of them in waves of 100:

- rst:       floods lines without reading until muxd throttles it (more than
             256 KiB of replies queued, the socket buffers full), then closes
             with SO_LINGER 0 (a TCP reset) while muxd has all that queued;
- vanish:    floods the same way and closes normally (half of them after
             reading a little): the kernel resets, muxd finds out mid-write;
- halfclose: sends lines and a last line without newline, shutdown(SHUT_WR),
             and must still receive every reply (the last one answered at
             EOF), then EOF.

Floods go to a listener with a 256-byte suffix (a 20-byte line is answered
with 277 bytes), so little input fills muxd's queue.  A well-behaved client
does a verified round trip every 10 ms all along; muxd never dies; afterwards
its descriptor count is back to exactly what it was and its RSS within 2 MiB
of the baseline (taken after a warm-up that grows muxd's scratch buffers)."""

import os
import select
import socket
import struct
import threading
import time
import unittest

import stresslib as sl
from stresslib import mt

N_WAVES = int(os.environ.get("MUXD_STRESS_WAVES", "5"))
WAVE = 100
AMP_SUFFIX = b"S" * 256
FLOOD_LINE = b"flood flood flood!\n"          # 19 bytes -> 275-byte reply
FLOOD_CHUNK = FLOOD_LINE * 3449               # ~64 KiB
FLOOD_CAP = 16 << 20                          # give up on throttling after this much
STALL = 0.3                                   # not writable this long: throttled
HALF_LINES = 300
RSS_TOLERANCE_KB = 2048
LATENCY_BOUND = 1.0


def kind_of(i):
    k = i % 10
    return "rst" if k < 4 else "vanish" if k < 7 else "halfclose"


class Flooder:
    __slots__ = ("sock", "kind", "sent", "last", "stalled", "i")


@sl.for_backends()
class Resets:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(8192)

    def start(self):
        m = self.start_muxd(max_connections=900, timeout=60, listen=[
            {"port": 0, "address": "127.0.0.1"},
            {"port": 0, "address": "127.0.0.1", "suffix": AMP_SUFFIX, "name": "amp"}])
        return m, m.ports[0], m.ports[1]

    def flood(self, port, clients):
        """Connect `clients` (list of (i, kind)), flood them all at once until
        each is throttled (or FLOOD_CAP), then make each vanish its way.
        Returns (bytes sent, throttled count, not throttled count)."""
        fl = []
        for i, kind in clients:
            s = mt.connect(port, timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            got = mt.recv_exact(s, len(mt.DEFAULT_GREETING), timeout=5)
            self.assertEqual(got, mt.DEFAULT_GREETING)
            s.setblocking(False)
            f = Flooder()
            f.sock, f.kind, f.sent, f.last, f.stalled, f.i = s, kind, 0, time.monotonic(), False, i
            fl.append(f)
        active = {f.sock: f for f in fl}
        deadline = sl.Deadline(60)
        while active:
            self.assertFalse(deadline.passed(), "flooding did not finish in 60s")
            _, w, _ = select.select([], list(active), [], 0.05)
            now = time.monotonic()
            for s in w:
                f = active[s]
                try:
                    n = s.send(FLOOD_CHUNK)
                except BlockingIOError:
                    n = 0
                if n:
                    f.sent += n
                    f.last = now
                if f.sent >= FLOOD_CAP:
                    del active[s]
            for s, f in list(active.items()):
                if now - f.last > STALL:
                    f.stalled = True
                    del active[s]
        for f in fl:
            if f.kind == "rst":
                f.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif f.i % 2:
                # read a little of the queued replies first, then vanish
                f.sock.setblocking(True)
                mt.recv_exact(f.sock, 10000, timeout=5)
            f.sock.close()
        return (sum(f.sent for f in fl), sum(f.stalled for f in fl),
                sum(not f.stalled for f in fl))

    def halfclose(self, port, i, suffix):
        """Send lines and a tail without newline, SHUT_WR, read all until EOF."""
        lines = [b"half %d line %d %s\n" % (i, k, b"h" * (k % 23)) for k in range(HALF_LINES)]
        tail = b"tail of %d without newline" % i
        out = b"".join(lines) + tail
        want = mt.DEFAULT_GREETING + b"".join(mt.echo_reply(l, suffix) for l in lines) \
            + tail + suffix
        s = mt.connect(port, timeout=5)
        try:
            s.setblocking(False)
            got = bytearray()
            sent, shut = 0, False
            deadline = sl.Deadline(20)
            while True:
                if deadline.passed():
                    raise AssertionError("half-closed client %d: %d of %d reply bytes after 20s"
                                         % (i, len(got), len(want)))
                r, w, _ = select.select([s], [] if shut else [s], [], 0.5)
                if w and not shut:
                    try:
                        sent += s.send(out[sent:sent + 65536])
                    except BlockingIOError:
                        pass
                    if sent == len(out):
                        s.shutdown(socket.SHUT_WR)
                        shut = True
                if r:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        break
                    got += data
            if bytes(got) != want:
                k = next((j for j in range(min(len(got), len(want))) if got[j] != want[j]),
                         min(len(got), len(want)))
                raise AssertionError("half-closed client %d: %d reply bytes, expected %d; "
                                     "first difference at %d: got %r, expected %r"
                                     % (i, len(got), len(want), k, bytes(got[k:k + 40]),
                                        want[k:k + 40]))
            return len(got)
        finally:
            s.close()

    def test_resets_and_vanishing(self):
        m, p_norm, p_amp = self.start()
        pacer = sl.Pacer(p_norm, interval=0.01, tag=b"steady")
        pacer.start()
        self.addCleanup(pacer.stop)
        base_fds = mt.num_fds(m.pid)
        rss_start = mt.rss_kb(m.pid)

        # Warm-up: a few floods, so muxd's scratch buffers reach their working size.
        self.flood(p_amp, [(k, ("rst", "vanish")[k % 2]) for k in range(6)])
        self.fds_settle(m, base_fds, what="descriptors after the warm-up")
        rss_base = mt.rss_kb(m.pid)
        sampler = sl.Sampler(m.pid)
        sampler.start()
        self.addCleanup(sampler.stop)
        cpu = sl.CpuMeter(m.pid)

        totals = {"rst": 0, "vanish": 0, "halfclose": 0}
        flood_bytes = throttled = unthrottled = half_bytes = 0
        half_errors = []
        wave_lat = []
        t0 = time.monotonic()
        for wv in range(N_WAVES):
            ids = range(wv * WAVE, (wv + 1) * WAVE)
            floods = [(i, kind_of(i)) for i in ids if kind_of(i) != "halfclose"]
            halves = [i for i in ids if kind_of(i) == "halfclose"]
            for i in ids:
                totals[kind_of(i)] += 1
            # the half-closers run in threads while the floods go on
            results = []

            def half_worker(chunk):
                for i in chunk:
                    port, sfx = (p_norm, mt.DEFAULT_SUFFIX) if i % 2 else (p_amp, AMP_SUFFIX)
                    try:
                        results.append(self.halfclose(port, i, sfx))
                    except (AssertionError, OSError) as e:
                        half_errors.append(repr(e))
            workers = [threading.Thread(target=half_worker, args=(halves[k::3],), daemon=True)
                       for k in range(3)]
            for t in workers:
                t.start()
            b, th, un = self.flood(p_amp, floods)
            flood_bytes += b
            throttled += th
            unthrottled += un
            for t in workers:
                t.join(60)
            self.assertFalse([t for t in workers if t.is_alive()], "half-closed clients hung")
            half_bytes += sum(results)
            self.check_alive(m, "in wave %d" % wv)
            self.assertIsNone(pacer.error, "the well-behaved client failed in wave %d" % wv)
            wave_lat.append(pacer.take())
        elapsed = time.monotonic() - t0
        rss_peak = sampler.stop()
        cpu_s = cpu.seconds()

        # Everything closed by muxd: descriptors exactly as before, RSS back.
        self.fds_settle(m, base_fds, timeout=15, what="descriptors after the waves")
        d = sl.Deadline(5)          # muxd frees as it closes: give it a moment (bounded)
        while mt.rss_kb(m.pid) > rss_base + RSS_TOLERANCE_KB and not d.passed():
            time.sleep(0.05)
        rss_end = mt.rss_kb(m.pid)
        lat = [x for w in wave_lat for x in w]
        self.figure("%d clients in %d waves in %.1fs: %s; floods sent %.1f MiB, %d throttled "
                    "before vanishing, %d not throttled within %d MiB",
                    sum(totals.values()), N_WAVES, elapsed, totals, flood_bytes / 2**20,
                    throttled, unthrottled, FLOOD_CAP >> 20)
        self.figure("half-closed clients: %d replies bytes verified, %d errors",
                    half_bytes, len(half_errors))
        self.figure("well-behaved client: %s; worst per wave: %s", sl.lat_summary(lat),
                    ", ".join("%.1fms" % sl.ms(max(w)) for w in wave_lat if w))
        self.figure("muxd fds %d before and after; RSS %d KiB at start, %d after warm-up, "
                    "peak %d, end %d; CPU %.2fs", base_fds, rss_start, rss_base, rss_peak,
                    rss_end, cpu_s)
        self.assertLessEqual(rss_end, rss_base + RSS_TOLERANCE_KB,
                             "RSS not back within %d KiB of %d KiB after the waves"
                             % (RSS_TOLERANCE_KB, rss_base))
        self.assertEqual(half_errors, [])
        self.assertEqual(unthrottled, 0, "some flooding clients were never throttled")
        self.assertLess(max(lat), LATENCY_BOUND)
        self.assertIsNone(pacer.stop())
        self.roundtrip(self.client(m), b"fresh after the waves\n")


@sl.for_backends("epoll")
class Amplification:
    """One client that never reads, on a listener with the longest suffix
    (1024 bytes), sends 64 KiB of empty lines: 65,536 messages, each answered
    with 1,025 bytes.  Throttling is meant to cap what muxd queues for a
    client at about 256 KiB (SPEC 4.3: "never buffers without limit"; 3: "no
    setting lets a client make muxd use unbounded memory").  Bound asserted:
    muxd grows by less than 16 MiB for this one client, and is back within
    2 MiB of its baseline once the client has gone."""

    GROWTH_BOUND_KB = 16 * 1024

    def test_amplified_replies_are_bounded(self):
        m = self.start_muxd(max_connections=100, timeout=60,
                            listen=[{"port": 0, "address": "127.0.0.1", "suffix": "A" * 1024}])
        rss0 = mt.rss_kb(m.pid)
        sampler = sl.Sampler(m.pid, interval=0.02)
        sampler.start()
        self.addCleanup(sampler.stop)
        s = mt.connect(m.port)
        self.assertEqual(mt.recv_exact(s, len(mt.DEFAULT_GREETING)), mt.DEFAULT_GREETING)
        s.setblocking(False)
        sent = 0
        payload = b"\n" * 65536
        last = time.monotonic()
        deadline = sl.Deadline(20)
        stalled = False
        while sent < FLOOD_CAP and not deadline.passed():
            try:
                n = s.send(payload)
            except BlockingIOError:
                n = 0
            if n:
                sent += n
                last = time.monotonic()
            elif time.monotonic() - last > STALL:
                stalled = True      # muxd stopped reading: it has queued what it read
                break
            else:
                select.select([], [s], [], 0.05)
        peak = sampler.stop()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        t = sl.Deadline(3)
        while not t.passed() and mt.rss_kb(m.pid) > rss0 + RSS_TOLERANCE_KB:
            time.sleep(0.1)
        after = mt.rss_kb(m.pid)
        self.figure("amplification (1024-byte suffix, %d KiB of empty lines sent, never read): "
                    "muxd RSS %d KiB -> peak %d KiB (+%d), %d KiB after the client left (+%d)",
                    sent >> 10, rss0, peak, peak - rss0, after, after - rss0)
        self.check_alive(m)
        self.assertTrue(stalled, "muxd never throttled the client")
        self.assertLess(peak - rss0, self.GROWTH_BOUND_KB,
                        "one client made muxd grow by %d KiB" % (peak - rss0))
        self.assertLess(after - rss0, RSS_TOLERANCE_KB,
                        "muxd kept %d KiB after the client left" % (after - rss0))


if __name__ == "__main__":
    mt.main()
