# SPDX-License-Identifier: MIT
"""1,000 SIGHUP reloads in a row under sustained load.

Reloads alternate between a valid configuration and an invalid one.  The
valid ones alternate between A and B: the two stable ports keep their
sockets but change greeting and suffix (for connections accepted after the
reload), and an extra port moves (A listens on px, B on py: a port added and
one removed at every valid reload).  The invalid ones rotate through a syntax
error, a value out of range, a duplicate port, an unknown backend, and a bind
conflict that comes after a newly opened listener (so the rollback must close
it again).  Each reload is waited for (`configuration reloaded` or `reload
failed` in the log) before the next; READY=1 must follow each RELOADING=1 on
the notify socket.

All along, persistent clients do continuous round trips (on the stable ports,
and on the extra port of A: an established connection survives the removal
of its port), and threads open fresh connections on the stable ports.

Asserted: zero client errors, zero lost or wrong replies (each checked
against the settings in force when the connection was accepted), zero refused
connects on the stable ports, the new extra port serves and the removed one
refuses after every valid reload, the old configuration stays after every
invalid one; afterwards the descriptor count is exactly the baseline and RSS
is within 2 MiB of the RSS after a warm-up (no leak per reload)."""

import os
import re
import signal
import socket
import time

import stresslib as sl
from stresslib import mt

N_RELOADS = 1000
N_WARMUP = 40
N_PERSISTENT = 21           # 9 on p1, 9 on p2, 3 on px (removed and re-added all along)
N_CHURN = 2
MIN_TRAFFIC = 20            # round trips + fresh connections before each reload
RSS_TOLERANCE_KB = 2048
RELOADED_RE = re.compile(r"^muxd: info: configuration reloaded from ")
FAILED_RE = re.compile(r"^muxd: err: reload failed")
OUTCOME_RE = re.compile("%s|%s" % (RELOADED_RE.pattern, FAILED_RE.pattern))
RELOADING_RE = re.compile(r"^RELOADING=1\nMONOTONIC_USEC=\d+$")
INVALID_KINDS = ("syntax", "range", "duplicate", "backend", "bind-conflict")


def refused(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


@sl.for_backends()
class ReloadStorm:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(4096)

    def test_thousand_reloads_under_load(self):
        p1, p2, px, py = mt.free_ports(4)
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)     # the bind conflict
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        pc = holder.getsockname()[1]
        extra = {"A": px, "B": py}
        greet = {}          # (config, port) -> (greeting, suffix)

        def entry(port, **over):
            e = {"port": port, "address": "127.0.0.1"}
            e.update(over)
            return e

        def settings(which, entries):
            return mt.base_settings(self.backend, greeting="hello %s\n" % which,
                                    suffix="-%s" % which, max_connections=1000, timeout=60,
                                    listen=entries)

        def valid(which):
            g2, s2 = "P2 %s\n" % which, "-%s2" % which
            gx, sx = "X %s\n" % which, "-%sX" % which
            greet[(which, p1)] = (b"hello %s\n" % which.encode(), b"-%s" % which.encode())
            greet[(which, p2)] = (g2.encode(), s2.encode())
            greet[(which, extra[which])] = (gx.encode(), sx.encode())
            return mt.render_config(settings(which, [
                entry(p1), entry(p2, greeting=g2, suffix=s2),
                entry(extra[which], greeting=gx, suffix=sx)]))

        def invalid(kind, current):
            other = "B" if current == "A" else "A"
            base = [entry(p1), entry(p2)]
            if kind == "syntax":
                return valid(current).replace("timeout = 60;", "timeout = 60 oops")
            if kind == "range":
                return mt.render_config(dict(settings(current, base), max_message=0))
            if kind == "duplicate":
                return mt.render_config(settings(current, base + [entry(p1)]))
            if kind == "backend":
                return mt.render_config(dict(settings(current, base), backend="kqueue"))
            # a listener that would be new (the other config's extra port), then
            # one that cannot be bound: the new one is opened, then closed again
            return mt.render_config(settings(current, base + [entry(extra[other]), entry(pc)]))

        texts = {"A": valid("A"), "B": valid("B")}
        n = self.notify_socket()
        m = self.start_muxd(text=texts["A"], env={"NOTIFY_SOCKET": n.address})
        n.wait("READY=1")
        cfg_name = os.path.basename(m.config_path)
        fds0 = mt.num_fds(m.pid)
        rss_start = mt.rss_kb(m.pid)

        load = mt.ReloadTraffic(greet, "A")
        ports = [p1] * 9 + [p2] * 9 + [px] * 3
        load.start(ports[:N_PERSISTENT], N_CHURN, (p1, p2))
        self.addCleanup(load.stop_all)

        reload_times = []
        counts = {"ok": 0, "failed": 0}
        kinds = dict.fromkeys(INVALID_KINDS, 0)

        def do_reload(r):
            """Reload r: valid if even (B, A, B, ...), invalid if odd.  Some
            traffic first, so that every reload happens under load."""
            base = load.traffic()
            d = sl.Deadline(10)
            while load.traffic() < base + MIN_TRAFFIC and not load.errors:
                if d.passed():
                    self.fail("reload %d: fewer than %d round trips in 10s" % (r, MIN_TRAFFIC))
                time.sleep(0.0005)
            current = load.config
            if r % 2 == 0:
                which = "B" if current == "A" else "A"
                text, expect_ok = texts[which], True
            else:
                which = current
                kind = INVALID_KINDS[(r // 2) % len(INVALID_KINDS)]
                kinds[kind] += 1
                text, expect_ok = invalid(kind, current), False
            self.write_config(text=text, name=cfg_name)
            since, since_n = m.log_count(), n.count()
            load.begin_reload()
            t = time.monotonic()
            m.signal(signal.SIGHUP)
            _, mm = m.wait_log(OUTCOME_RE, timeout=10, since=since)
            reload_times.append(time.monotonic() - t)
            ok = RELOADED_RE.match(mm.string) is not None
            if ok != expect_ok:
                self.fail("reload %d: expected %s, got %r\n%s"
                          % (r, "success" if expect_ok else "failure", mm.string,
                             m.log_tail(20)))
            i, _ = n.wait(RELOADING_RE, since=since_n, timeout=10)
            n.wait("READY=1", since=i + 1, timeout=10)
            load.end_reload(which)
            counts["ok" if ok else "failed"] += 1
            # the extra port in force serves; the other one refuses
            here, gone = extra[which], extra["B" if which == "A" else "A"]
            sock, suffix = load.open_client(here)
            try:
                self.assertEqual(suffix, greet[(which, here)][1])
                sock.sendall(b"extra %d\n" % r)
                self.assertEqual(mt.recv_exact(sock, len(b"extra %d\n" % r) + len(suffix)),
                                 b"extra %d" % r + suffix + b"\n")
            finally:
                sock.close()
            self.assertTrue(refused(gone), "reload %d: port %d still accepts" % (r, gone))
            if load.errors:
                self.fail("client errors by reload %d: %s" % (r, load.errors))

        # warm-up, then the baseline RSS (clients connected and busy)
        for r in range(N_WARMUP):
            do_reload(r)
        rss_warm = mt.rss_kb(m.pid)
        fds_warm = mt.num_fds(m.pid)
        stats = load.stats
        with load.lock:
            rt0, fr0 = stats["roundtrips"], stats["fresh"]
        sampler = sl.Sampler(m.pid, interval=0.1)
        sampler.start()
        self.addCleanup(sampler.stop)
        cpu = sl.CpuMeter(m.pid)
        t0 = time.monotonic()
        for r in range(N_WARMUP, N_WARMUP + N_RELOADS):
            do_reload(r)
            self.check_alive(m, "at reload %d" % r)
        elapsed = time.monotonic() - t0
        cpu_s = cpu.seconds()
        rss_end = mt.rss_kb(m.pid)
        rss_peak = sampler.stop()
        with load.lock:
            rt, fr = stats["roundtrips"] - rt0, stats["fresh"] - fr0
        hung = load.stop_all()
        self.assertFalse(hung, "client threads hung")
        self.assertEqual(load.errors, [])
        self.assertEqual(stats["refused"], 0, "refused connects on stable ports")
        self.assertTrue(all(k > 0 for k in load.per_client), load.per_client)
        self.assertEqual(load.config, "A")
        # Every client gone: exactly the descriptors muxd had at start (same
        # listeners as then: config A).
        self.fds_settle(m, fds0, timeout=15)
        states = ["RELOADING" if RELOADING_RE.match(t) else t for t in n.states()]
        total = N_WARMUP + N_RELOADS
        self.assertEqual(states, ["READY=1"] + ["RELOADING", "READY=1"] * total)
        self.figure("%d reloads (+%d warm-up) in %.1fs: %d succeeded, %d failed as intended "
                    "(kinds, warm-up included: %s); "
                    "SIGHUP -> outcome logged: %s", N_RELOADS, N_WARMUP, elapsed,
                    counts["ok"] - N_WARMUP // 2, counts["failed"] - N_WARMUP // 2, kinds,
                    sl.lat_summary(reload_times[N_WARMUP:]))
        self.figure("load during them: %d round trips on %d persistent connections (min %d per "
                    "client), %d fresh connections; %d greetings checked against exactly the "
                    "config in force, 0 errors, 0 refused", rt, N_PERSISTENT, min(load.per_client), fr,
                    stats["strict"])
        self.figure("muxd fds %d at start, %d under load, %d at the end; RSS %d KiB at start, "
                    "%d after warm-up, %d after %d reloads (peak %d); CPU %.2fs",
                    fds0, fds_warm, mt.num_fds(m.pid), rss_start, rss_warm, rss_end, N_RELOADS,
                    rss_peak, cpu_s)
        self.assertLess(rss_end - rss_warm, RSS_TOLERANCE_KB,
                        "RSS grew by %d KiB over %d reloads" % (rss_end - rss_warm, N_RELOADS))
        self.roundtrip(self.client(m, port=p1, greeting=b"hello A\n"), b"after the storm\n",
                       suffix=b"-A")


if __name__ == "__main__":
    mt.main()
