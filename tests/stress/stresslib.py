# SPDX-License-Identifier: MIT
"""Shared helpers for muxd's stress suite (Python 3 standard library only).

Builds on tests/integration/muxdtest.py (imported, not copied): a stress test
is a muxdtest.MuxdTestCase, so muxd is started, watched and stopped exactly as
in the integration tests.  Added here:

- figure(): a measured number, printed at once as a `FIGURE` line that the
  runner (tests/stress/run) collects into its summary;
- for_backends(): one TestCase per backend, restricted by MUXD_STRESS_BACKENDS
  (e.g. "epoll" or "epoll,poll"; default: every backend muxd was built
  with, io_uring included when it was);
- SEED: MUXD_STRESS_SEED (default 1) seeds the random data;
- samplers for muxd's RSS and CPU time, latency statistics, a deadline helper.

Every test runs on loopback only, and every wait has a deadline.
"""

import os
import sys
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_INTEGRATION = os.path.join(os.path.dirname(_HERE), "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)

import muxdtest as mt  # noqa: E402  (after the path set-up above)

ALL_BACKENDS = mt.BACKENDS

# Seed of the random data (garbage, timings); set MUXD_STRESS_SEED to vary it.
SEED = int(os.environ.get("MUXD_STRESS_SEED", "1"))


def selected_backends(wanted=ALL_BACKENDS):
    """The backends of `wanted` allowed by MUXD_STRESS_BACKENDS."""
    env = os.environ.get("MUXD_STRESS_BACKENDS", "").strip()
    if not env:
        return tuple(wanted)
    allowed = {b.strip() for b in env.split(",") if b.strip()}
    unknown = allowed - set(ALL_BACKENDS)
    if unknown:
        raise SystemExit("MUXD_STRESS_BACKENDS: unknown backend(s) %s" % ", ".join(sorted(unknown)))
    return tuple(b for b in wanted if b in allowed)


def for_backends(*backends):
    """Class decorator: one TestCase per backend (of `backends`, default all
    muxd has, filtered by MUXD_STRESS_BACKENDS), named <Mixin>_<backend>, in the
    mixin's module.  The mixin itself is not collected."""
    wanted = backends or ALL_BACKENDS

    def deco(mixin):
        mod = sys.modules[mixin.__module__]
        for b in selected_backends(wanted):
            name = "%s_%s" % (mixin.__name__, b)
            cls = type(name, (mixin, StressCase),
                       {"backend": b, "__module__": mixin.__module__, "__qualname__": name})
            setattr(mod, name, cls)
        return mixin
    return deco


class StressCase(mt.MuxdTestCase):
    """A MuxdTestCase that reports figures."""

    def figure(self, fmt, *args):
        """Print one measured figure (the runner shows these per test)."""
        text = fmt % args if args else fmt
        sys.stdout.write("FIGURE [%s] %s\n" % (self.backend, text))
        sys.stdout.flush()

    def check_alive(self, m, what=""):
        if not m.running():
            self.fail("muxd died%s: exit status %s\n%s"
                      % (" " + what if what else "", m.proc.returncode, m.log_tail(40)))

    def fds_settle(self, m, want, timeout=10.0, what="descriptors"):
        """Wait until muxd has exactly `want` descriptors open (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            n = mt.num_fds(m.pid)
            if n == want:
                return n
            if time.monotonic() > deadline:
                self.fail("muxd's %s did not return to %d within %.0fs: %d open\n%s"
                          % (what, want, timeout, n, m.log_tail()))
            time.sleep(0.05)


# ---------------------------------------------------------------- measuring

class Sampler(threading.Thread):
    """Samples muxd's RSS (KiB) every `interval` seconds; keeps the peak."""

    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.start_kb = self.max_kb = self.last_kb = mt.rss_kb(pid)
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            try:
                self.last_kb = mt.rss_kb(self.pid)
            except (OSError, AssertionError):
                return
            self.max_kb = max(self.max_kb, self.last_kb)
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(5)
        return self.max_kb


class CpuMeter:
    """muxd's utime + stime over an interval."""

    def __init__(self, pid):
        self.pid = pid
        self.t0 = time.monotonic()
        self.c0 = mt.cpu_seconds(pid)

    def seconds(self):
        return mt.cpu_seconds(self.pid) - self.c0

    def wall(self):
        return time.monotonic() - self.t0


def percentile(values, p):
    """The p-th percentile (0..100) of values, nearest rank; 0.0 if empty."""
    if not values:
        return 0.0
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def ms(seconds):
    return seconds * 1000.0


def lat_summary(values):
    """'n=…, p50 …ms, p99 …ms, max …ms' for a list of seconds."""
    if not values:
        return "n=0"
    return "n=%d, p50 %.2fms, p99 %.2fms, max %.2fms" % (
        len(values), ms(percentile(values, 50)), ms(percentile(values, 99)), ms(max(values)))


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def passed(self):
        return time.monotonic() >= self.end


class Pacer(threading.Thread):
    """A well-behaved client: one verified round trip every `interval` seconds
    on its own connection, recording round-trip times.  Any error (wrong
    reply, EOF, reset, timeout > `rt_timeout`) is recorded and stops it."""

    def __init__(self, port, interval=0.02, rt_timeout=5.0, host="127.0.0.1",
                 greeting=mt.DEFAULT_GREETING, suffix=mt.DEFAULT_SUFFIX, tag=b"pacer"):
        super().__init__(daemon=True)
        self.port, self.interval, self.rt_timeout, self.host = port, interval, rt_timeout, host
        self.greeting, self.suffix, self.tag = greeting, suffix, tag
        self.latencies = []
        self.error = None
        self._stop_ev = threading.Event()
        self.sock = mt.connect(port, host, timeout=5)
        if greeting:
            got = mt.recv_exact(self.sock, len(greeting), timeout=5)
            if got != greeting:
                raise AssertionError("pacer greeting %r" % got)

    def run(self):
        k = 0
        try:
            while not self._stop_ev.is_set():
                line = b"%s %d\n" % (self.tag, k)
                want = mt.echo_reply(line, self.suffix)
                t = time.monotonic()
                self.sock.sendall(line)
                got = mt.recv_exact(self.sock, len(want), timeout=self.rt_timeout)
                dt = time.monotonic() - t
                if got != want:
                    raise AssertionError("round trip %d: got %r, expected %r" % (k, got, want))
                self.latencies.append(dt)
                k += 1
                self._stop_ev.wait(self.interval)
        except (AssertionError, OSError) as e:
            self.error = "after %d round trips: %r" % (k, e)

    def take(self):
        """Latencies so far (and reset the list)."""
        out, self.latencies = self.latencies, []
        return out

    def stop(self):
        self._stop_ev.set()
        self.join(self.rt_timeout + 5)
        self.sock.close()
        return self.error
