# SPDX-License-Identifier: MIT
"""Descriptor exhaustion: muxd runs with RLIMIT_NOFILE soft = hard = 64 and
200 clients connect at once (plus some that give up while waiting).

muxd must neither exit nor spin: over a 5 s episode at the limit its CPU time
(utime + stime from /proc) stays near zero (< 0.5 s).  It serves the clients
it has (round trips), and as they leave it accepts the waiting ones: every
one of the 200 eventually gets its greeting and round trips, in bounded
time.  The waiting clients are connected in the kernel's backlog all along:
none is refused or reset."""

import select
import time

import stresslib as sl
from stresslib import mt

NOFILE = 64
N_CLIENTS = 200
N_QUITTERS = 20                 # give up while waiting in the backlog
EPISODE = 5.0                   # seconds at the limit, CPU measured
CPU_BOUND = 0.5                 # seconds of CPU over the episode
ALL_SERVED_BOUND = 60.0         # seconds for the waiting ones once others leave
N_TIMED_LEAVES = 10             # leaves timed one by one: leave -> a waiting client greeted
ADMIT_BOUND = 0.5               # seconds; muxd's blind retry is every 1 s, a leave must not wait for it
ROUNDS = 3                      # round trips per client


class Waiting:
    """Clients connected (kernel backlog), watched for their greeting."""

    def __init__(self, test, socks):
        self.test = test
        self.buf = {s: b"" for s in socks}
        self.t_greeted = {}

    def waiting(self):
        return [s for s in self.buf if s not in self.t_greeted]

    def poll(self, timeout):
        """Read what arrived within timeout; returns the newly greeted."""
        new = []
        socks = self.waiting()
        if not socks:
            time.sleep(timeout)
            return new
        r, _, _ = select.select(socks, [], [], timeout)
        for s in r:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                self.test.fail("a waiting client was reset")
            if not data:
                self.test.fail("a waiting client got EOF after %r" % self.buf[s])
            self.buf[s] += data
            if not mt.DEFAULT_GREETING.startswith(self.buf[s]):
                self.test.fail("bad greeting %r" % self.buf[s])
            if self.buf[s] == mt.DEFAULT_GREETING:
                self.t_greeted[s] = time.monotonic()
                new.append(s)
        return new


@sl.for_backends()
class FdExhaustion:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(4096)

    def rounds(self, s, tag):
        for k in range(ROUNDS):
            self.roundtrip(s, b"%s round %d\n" % (tag, k))

    def test_descriptor_exhaustion(self):
        m = self.start_muxd(rlimit_nofile=NOFILE, max_connections=1000, timeout=300)
        with open("/proc/%d/limits" % m.pid) as f:
            lim = [l for l in f if l.startswith("Max open files")][0].split()
        self.assertEqual((lim[3], lim[4]), (str(NOFILE), str(NOFILE)), "muxd's RLIMIT_NOFILE")
        own_fds = mt.num_fds(m.pid)

        t0 = time.monotonic()
        socks = [self.connect(m.port, timeout=10) for _ in range(N_CLIENTS)]
        quitters = [mt.connect(m.port, timeout=10) for _ in range(N_QUITTERS)]
        w = Waiting(self, socks)
        # Settle: greetings arrive for as many as muxd has descriptors.
        last = time.monotonic()
        settle = sl.Deadline(20)
        while time.monotonic() - last < 1.0:
            self.assertFalse(settle.passed(), "greetings still trickling in after 20s")
            if w.poll(0.1):
                last = time.monotonic()
        # The quitters give up while waiting (those muxd already took count too).
        for q in quitters:
            q.close()
        served = list(w.t_greeted)
        self.check_alive(m, "at the descriptor limit")
        self.assertGreater(len(served), 0, "no client served at all")
        self.assertLess(len(served), N_CLIENTS, "all clients served with %d descriptors?" % NOFILE)
        at_limit = mt.num_fds(m.pid)

        # The episode: at the limit, the served ones do round trips, nobody
        # new gets in, and muxd does not spin.
        cpu = sl.CpuMeter(m.pid)
        ep = sl.Deadline(EPISODE)
        trips = 0
        while not ep.passed():
            for i, s in enumerate(served):
                self.rounds(s, b"served %d" % i)
                trips += ROUNDS
            self.assertEqual(w.poll(min(0.5, max(0.0, ep.left()))), [],
                             "a client got in while muxd was at its descriptor limit")
        cpu_s, wall = cpu.seconds(), cpu.wall()
        self.check_alive(m, "after the episode at the descriptor limit")
        warnings = [l for l in m.log_lines() if "pausing accepts" in l]

        # Clients leave one by one; the waiting ones get in and are served.
        # The first leaves are timed: a freed descriptor must be used at once
        # ("retry after 1 s or when a client leaves"), not at the next retry.
        t_leave = time.monotonic()
        queue = list(served)
        done = 0
        admit = []
        for _ in range(N_TIMED_LEAVES):
            t = time.monotonic()
            queue.pop(0).close()
            done += 1
            new = []
            d = sl.Deadline(3)
            while not new and not d.passed():
                new = w.poll(0.01)
            admit.append(time.monotonic() - t if new else float("inf"))
            for s in new:
                self.rounds(s, b"late")
                queue.append(s)
        deadline = sl.Deadline(ALL_SERVED_BOUND)
        while done < N_CLIENTS:
            if deadline.passed():
                self.fail("only %d of %d clients served %.0fs after the first left"
                          % (done, N_CLIENTS, ALL_SERVED_BOUND))
            if queue:
                s = queue.pop(0)
                s.close()
                done += 1
            for s in w.poll(0.05):
                self.rounds(s, b"late")
                queue.append(s)
        t_all = time.monotonic() - t_leave
        greet_wait = [w.t_greeted[s] - t0 for s in socks]
        self.check_alive(m)
        self.figure("RLIMIT_NOFILE %d: %d descriptors of muxd's own, %d at the limit; "
                    "%d of %d clients served at first (+%d quitters waiting)",
                    NOFILE, own_fds, at_limit, len(served), N_CLIENTS, N_QUITTERS)
        self.figure("%.0fs episode at the limit: muxd CPU %.3fs, %d round trips by the "
                    "served clients, %d 'pausing accepts' warnings logged",
                    wall, cpu_s, trips, len(warnings))
        self.figure("a client leaves -> a waiting one greeted: %s", sl.lat_summary(admit))
        self.figure("all %d clients greeted and served %.2fs after the first left "
                    "(longest wait for a greeting %.1fs)", N_CLIENTS, t_all, max(greet_wait))
        self.assertLess(cpu_s, CPU_BOUND, "muxd used %.3fs of CPU in %.1fs at its descriptor "
                        "limit: spinning" % (cpu_s, wall))
        self.assertLess(max(admit), ADMIT_BOUND,
                        "at its descriptor limit, muxd took up to %.3fs to accept a waiting "
                        "client after another one left (leave -> greeting: %s)"
                        % (max(admit), ", ".join("%.3f" % a for a in admit)))
        # Everyone gone: back to muxd's own descriptors, and a fresh client is served.
        self.fds_settle(m, own_fds)
        self.roundtrip(self.client(m), b"fresh\n")


if __name__ == "__main__":
    mt.main()
