# SPDX-License-Identifier: MIT
"""Slowloris: thousands of clients that each send one byte every 1-2 s and
never finish a line, with `timeout = 3;` and `max_message = 256;`.

muxd counts only complete messages as activity, so each of them must be
closed about `timeout` seconds after it connected, although it keeps sending
(max_message alone would take 257 bytes x 1-2 s = 4-9 minutes).  Attackers
that are closed reconnect at once for the length of the attack, so about
N_LORIS of them are connected all along.  Meanwhile a normal client does
round trips every 20 ms: its latency during the attack must stay normal
(max < 1 s), muxd's RSS stays under a bound, and once the attack stops every
attacker is closed within `timeout` + 2 s of its connect."""

import heapq
import itertools
import random
import selectors
import socket
import time

import stresslib as sl
from stresslib import mt

TIMEOUT = 3
MAX_MESSAGE = 256
N_LORIS = 2000                  # concurrent attackers (select: see below)
N_LORIS_SELECT = 900            # select() watches descriptors < FD_SETSIZE (1024) only
ATTACK_SECONDS = 12.0           # 4 x timeout: every attacker is closed (and replaced) 3-4 times
LIFETIME_BOUND = TIMEOUT + 2.0  # connect -> closed by muxd, seconds
RSS_BOUND_KB = 64 * 1024
LATENCY_BOUND = 1.0             # seconds, normal client, max round trip during the attack
N_BURST = 20                    # clients that send max_message + 1 bytes at once


class Loris:
    __slots__ = ("sock", "t_connect", "sent", "got", "closed_at", "how")


@sl.for_backends()
class Slowloris:

    def setUp(self):
        super().setUp()
        self.nofile = mt.raise_nofile(16384)

    def test_slowloris(self):
        n_loris = N_LORIS_SELECT if self.backend == "select" else N_LORIS
        if self.nofile < n_loris + 200:
            # a hard limit below what the attack needs: as many as it allows
            n_loris = self.nofile - 200
            self.figure("RLIMIT_NOFILE hard limit %d: only %d attackers", self.nofile, n_loris)
            self.assertGreater(n_loris, 100, "RLIMIT_NOFILE too low for this test")
        max_conn = 950 if self.backend == "select" else 5000
        m = self.start_muxd(timeout=TIMEOUT, max_message=MAX_MESSAGE,
                            max_connections=max_conn)
        port = m.port
        rng = random.Random(1234)

        # The normal client, and its latency before the attack.  It must keep
        # completing messages to stay (timeout = 3): 20 ms apart.
        pacer = sl.Pacer(port, interval=0.02, tag=b"normal")
        pacer.start()
        self.addCleanup(pacer.stop)
        self.wait_for(lambda: len(pacer.latencies) >= 100 or pacer.error, 20,
                      "100 round trips before the attack")
        self.assertIsNone(pacer.error)
        before = pacer.take()
        base_fds = mt.num_fds(m.pid)
        sampler = sl.Sampler(m.pid)
        sampler.start()
        self.addCleanup(sampler.stop)
        cpu = sl.CpuMeter(m.pid)

        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)
        heap = []               # (time of next byte, seq, loris)
        seq = itertools.count()
        open_loris = set()
        done = []               # closed by muxd
        problems = []

        def open_one(now):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", port))
            except OSError as e:
                s.close()
                problems.append("connect: %r" % e)
                return
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            lo = Loris()
            lo.sock, lo.t_connect, lo.sent, lo.got = s, time.monotonic(), 0, b""
            lo.closed_at, lo.how = None, None
            sel.register(s, selectors.EVENT_READ, lo)
            open_loris.add(lo)
            heapq.heappush(heap, (now + rng.uniform(1.0, 2.0), next(seq), lo))

        def closed(lo, how):
            lo.closed_at, lo.how = time.monotonic(), how
            sel.unregister(lo.sock)
            lo.sock.close()
            open_loris.discard(lo)
            done.append(lo)
            if not mt.DEFAULT_GREETING.startswith(lo.got):
                problems.append("attacker got %r" % lo.got)

        def pump(until, reconnect):
            """Run the attack until `until` (monotonic), or until every
            attacker is closed when not reconnecting."""
            while time.monotonic() < until and (reconnect or open_loris):
                now = time.monotonic()
                wait = heap[0][0] - now if heap else 0.05
                for key, _ in sel.select(max(0.0, min(wait, 0.05))):
                    lo = key.data
                    try:
                        data = lo.sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        closed(lo, "reset")
                        if reconnect:
                            open_one(time.monotonic())
                        continue
                    if data:
                        lo.got += data
                    else:
                        closed(lo, "eof")
                        if reconnect:
                            open_one(time.monotonic())
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    _, _, lo = heapq.heappop(heap)
                    if lo.closed_at is not None:
                        continue
                    try:
                        lo.sock.send(b"x")      # never a newline
                        lo.sent += 1
                    except BlockingIOError:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        closed(lo, "send failed")
                        if reconnect:
                            open_one(now)
                        continue
                    heapq.heappush(heap, (now + rng.uniform(1.0, 2.0), next(seq), lo))

        t0 = time.monotonic()
        for _ in range(n_loris):
            open_one(time.monotonic())
        t_open = time.monotonic() - t0
        self.assertEqual(problems, [])

        # A few clients that send max_message + 1 bytes at once: error line, close.
        burst = [self.client(m) for _ in range(N_BURST)]
        for s in burst:
            s.sendall(b"y" * (MAX_MESSAGE + 1))
        for s in burst:
            self.assertEqual(mt.recv_all(s, timeout=10), mt.TOO_LONG)

        pump(t0 + ATTACK_SECONDS, reconnect=True)
        during = pacer.take()
        peak_open = len(open_loris)
        t_stop = time.monotonic()
        pump(t_stop + LIFETIME_BOUND + 5, reconnect=False)
        t_drain = time.monotonic() - t_stop
        cpu_s, wall = cpu.seconds(), cpu.wall()
        rss_peak = sampler.stop()
        self.check_alive(m, "during the slowloris attack")

        lifetimes = [lo.closed_at - lo.t_connect for lo in done]
        bytes_sent = sum(lo.sent for lo in done) + sum(lo.sent for lo in open_loris)
        max_bytes = max([lo.sent for lo in done] + [0])
        hows = {}
        for lo in done:
            hows[lo.how] = hows.get(lo.how, 0) + 1
        self.figure("%d attackers (%d connections over %.0fs, opened %d in %.2fs), "
                    "%d one-byte sends, at most %d bytes per connection",
                    n_loris, len(done) + len(open_loris), ATTACK_SECONDS, n_loris, t_open,
                    bytes_sent, max_bytes)
        self.figure("attacker lifetime (connect -> closed by muxd): %s; closed by %s; "
                    "still open %.1fs after the attack: %d",
                    sl.lat_summary(lifetimes), hows, t_drain, len(open_loris))
        self.figure("normal client before: %s", sl.lat_summary(before))
        self.figure("normal client during: %s", sl.lat_summary(during))
        self.figure("muxd RSS start %d KiB, peak %d KiB; CPU %.2fs over %.1fs",
                    sampler.start_kb, rss_peak, cpu_s, wall)

        self.assertEqual(problems, [])
        self.assertIsNone(pacer.error, "normal client failed during the attack")
        self.assertGreater(len(during), 100, "normal client starved during the attack")
        self.assertLess(max(during), LATENCY_BOUND,
                        "normal client's round trip took %.3fs during the attack" % max(during))
        self.assertEqual(len(open_loris), 0,
                         "%d slowloris clients still open %.1fs after the attack stopped "
                         "(timeout = %d); bytes sent by them: %s"
                         % (len(open_loris), t_drain, TIMEOUT,
                            sorted(lo.sent for lo in open_loris)[:20]))
        self.assertLess(max(lifetimes), LIFETIME_BOUND,
                        "a slowloris client lived %.2fs (timeout = %d)" % (max(lifetimes), TIMEOUT))
        self.assertGreaterEqual(min(lifetimes), TIMEOUT - 0.5,
                                "a slowloris client was closed after %.2fs, before the timeout"
                                % min(lifetimes))
        self.assertGreaterEqual(peak_open, n_loris * 0.9, "the attack was not sustained")
        self.assertLess(rss_peak, RSS_BOUND_KB, "muxd RSS peaked at %d KiB" % rss_peak)
        # Everything released; the normal client is still served.
        self.fds_settle(m, base_fds)
        self.assertIsNone(pacer.stop())
        self.roundtrip(self.client(m), b"after the attack\n")


if __name__ == "__main__":
    mt.main()
