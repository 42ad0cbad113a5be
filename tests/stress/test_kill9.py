# SPDX-License-Identifier: MIT
"""kill -9 under load, with socket activation.

This test is the launcher that systemd would be: it holds the listening
sockets (127.0.0.1 and, where usable, ::1) and starts muxd with them as
descriptors 3, 4 (LISTEN_FDS, LISTEN_PID = muxd's pid).  Client threads do
round trips on fresh and long-lived connections all along.  muxd is killed
with SIGKILL several times and restarted with the same sockets, at once or
after a gap of up to 2 s.

Expected and asserted:
- no connect is ever refused (the launcher's sockets stay open: the kernel
  backlog holds clients while no muxd runs);
- connections that muxd had accepted when it was killed see EOF or a reset:
  counted separately ("cut"), never counted as errors;
- every connection made after a kill (in the gap or later) gets its greeting
  and all its round trips from the restarted muxd;
- nothing else fails: no wrong reply, no timeout."""

import random
import signal
import socket
import threading
import time

import stresslib as sl
from stresslib import mt

GAPS = (0.0, 0.5, 1.0, 0.0, 2.0, 0.2)       # seconds without muxd, per kill
N_THREADS = 16
LOAD_BETWEEN = 300                          # round trips between restarts (at least)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"connections": 0, "roundtrips": 0, "cut": 0, "refused": 0, "gap_connects": 0}
        self.errors = []
        self.gap_waits = []

    def add(self, k, n=1):
        with self.lock:
            self.c[k] += n

    def get(self, k):
        with self.lock:
            return self.c[k]


@sl.for_backends()
class Kill9:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(4096)

    def test_kill9_with_socket_activation(self):
        # The launcher's sockets, as systemd's .socket unit would hold them.
        socks = []
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s4.bind(("127.0.0.1", 0))
        s4.listen(4096)
        socks.append(("127.0.0.1", s4))
        if mt.have_ipv6():
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", 0))
            s6.listen(4096)
            socks.append(("::1", s6))
        for _, s in socks:
            self.addCleanup(s.close)
        targets = [(host, s.getsockname()[1]) for host, s in socks]
        text = mt.render_config(mt.base_settings(
            self.backend, max_connections=1000, timeout=60,
            listen=[{"port": p, "address": h} for h, p in targets]))
        env = {"LISTEN_FDS": str(len(socks))}
        fds = [s.fileno() for _, s in socks]

        def launch():
            m = self.start_muxd(text=text, env=env, pass_fds=fds, pid_env=["LISTEN_PID"])
            passed = [l for l in m.log_lines() if "passed by systemd" in l and "listening on" in l]
            self.assertEqual(len(passed), len(socks), m.log_tail())
            return m

        st = Stats()
        kills = []                  # [[t_kill, t_dead, t_ready]] monotonic
        kills_lock = threading.Lock()
        stop = threading.Event()

        def cut_by_kill(t_connect, t_fail):
            """Connected before a muxd was dead (SIGKILL lands a little after
            we send it), failed after it was sent and no later than 1 s after
            its successor was ready (a cut connection sees EOF or a reset as
            the process dies)."""
            with kills_lock:
                return any(t_connect < (td or float("inf"))
                           and tk <= t_fail <= (tr or float("inf")) + 1.0
                           for tk, td, tr in kills)

        def in_gap(t_connect):
            """Connecting after a kill was sent, before the successor was ready."""
            with kills_lock:
                return any(tk < t_connect < (tr or float("inf")) for tk, _, tr in kills)

        def client(j):
            rng = random.Random(sl.SEED * 1000 + j)
            k = 0
            while not stop.is_set():
                host, port = targets[k % len(targets)]
                k += 1
                rounds = 200 if j % 4 == 0 else rng.randint(1, 10)     # long-lived or short
                t_connect = time.monotonic()       # before: the earliest it can be up
                try:
                    s = mt.connect(port, host, timeout=10)
                except ConnectionRefusedError:
                    st.add("refused")
                    continue
                except OSError as e:
                    with st.lock:
                        st.errors.append("connect to %s:%d: %r" % (host, port, e))
                    continue
                gap = in_gap(t_connect)
                st.add("connections")
                if gap:
                    st.add("gap_connects")
                step = "greeting"
                try:
                    g = mt.recv_exact(s, len(mt.DEFAULT_GREETING), timeout=15)
                    if g != mt.DEFAULT_GREETING:
                        raise AssertionError("greeting %r" % g)
                    if gap:
                        with st.lock:
                            st.gap_waits.append(time.monotonic() - t_connect)
                    for r in range(rounds):
                        if stop.is_set():
                            break
                        step = "round trip %d" % r
                        line = b"c%d conn %d round %d\n" % (j, k, r)
                        s.sendall(line)
                        got = mt.recv_exact(s, len(line) + len(mt.DEFAULT_SUFFIX), timeout=15)
                        if got != mt.echo_reply(line):
                            raise AssertionError("got %r for %r" % (got, line))
                        st.add("roundtrips")
                except (AssertionError, OSError) as e:
                    t_fail = time.monotonic()
                    closed = isinstance(e, (ConnectionResetError, BrokenPipeError)) or \
                        "EOF" in str(e) or "reset" in str(e)
                    if closed and cut_by_kill(t_connect, t_fail):
                        st.add("cut")
                    else:
                        with st.lock:
                            st.errors.append("%s:%d %s (connected %.3f, failed %.3f, kills %s): %r"
                                             % (host, port, step, t_connect, t_fail,
                                                [[round(x or 0, 3) for x in k] for k in kills],
                                                e))
                finally:
                    s.close()

        m = launch()
        threads = [threading.Thread(target=client, args=(j,), daemon=True)
                   for j in range(N_THREADS)]
        for t in threads:
            t.start()

        def stop_all():
            stop.set()
            for t in threads:
                t.join(20)
        self.addCleanup(stop_all)

        def wait_load(what):
            base = st.get("roundtrips")
            self.wait_for(lambda: st.get("roundtrips") >= base + LOAD_BETWEEN or st.errors,
                          30, "%d round trips %s" % (LOAD_BETWEEN, what))
            self.assertEqual(st.errors, [])

        wait_load("before the first kill")
        restart = []
        t0 = time.monotonic()
        for i, gap in enumerate(GAPS):
            self.check_alive(m, "before kill %d" % i)
            with kills_lock:
                kills.append([time.monotonic(), None, None])
            m.signal(signal.SIGKILL)
            self.assertIsNotNone(m.wait_exit(10), "muxd survived SIGKILL?")
            t_dead = time.monotonic()
            with kills_lock:
                kills[-1][1] = t_dead
            if gap:
                time.sleep(gap)     # the gap itself: clients connect meanwhile
            m = launch()
            t_ready = time.monotonic()
            with kills_lock:
                kills[-1][2] = t_ready
            restart.append(t_ready - t_dead)
            wait_load("after restart %d" % i)
        elapsed = time.monotonic() - t0
        wait_load("after the last restart")
        stop_all()
        self.assertFalse([t for t in threads if t.is_alive()], "client threads hung")
        self.check_alive(m)
        c = st.c
        self.figure("%d kills (gaps %s s) in %.1fs over %d listening sockets: %d connections, "
                    "%d round trips; %d cut by a kill (expected), %d refused, %d errors",
                    len(GAPS), "/".join("%g" % g for g in GAPS), elapsed, len(socks),
                    c["connections"], c["roundtrips"], c["cut"], c["refused"], len(st.errors))
        self.figure("restart (dead -> ready, including the gap): %s; %d connects during a gap "
                    "or restart, greeted after %s", sl.lat_summary(restart), c["gap_connects"],
                    sl.lat_summary(st.gap_waits))
        self.assertEqual(st.errors[:10], [])
        self.assertEqual(c["refused"], 0)
        self.assertGreater(c["gap_connects"], 0, "no client connected while muxd was down")
        # The last muxd stops cleanly (cleanup checks exit status 0) and the
        # launcher's sockets still work for a fresh one.
        self.roundtrip(self.client(m, host=targets[0][0], port=targets[0][1]), b"finally\n")


if __name__ == "__main__":
    mt.main()
