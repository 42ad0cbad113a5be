# SPDX-License-Identifier: MIT
"""Faults injected into a running muxd's system calls with strace
(`strace -p TID -e inject=...`, attached to one worker thread only), for
each backend:

- a worker whose event loop fails for good stops the whole daemon with a
  clear log line and exit status 1 (systemd's Restart=on-failure then starts
  it again); it never stays half alive with a dead worker;
- transient errors of the loop's wait (EAGAIN, EBUSY, EINTR) are retried: the
  worker keeps running and serving.

Needs root (ptrace) and strace; skipped without them or under valgrind."""

import os
import shutil
import subprocess
import time

import muxdtest as mt

# the wait of every backend (glibc may use either of each pair); a wait with
# a timeout that strace interrupts to attach resumes as restart_syscall
WAIT_SYSCALLS = ("epoll_wait,epoll_pwait,poll,ppoll,select,pselect6,io_uring_enter,"
                 "restart_syscall")


class LoopFaultsMixin:

    def setUp(self):
        super().setUp()
        if not shutil.which("strace"):
            self.skipTest("strace not installed (scripts/install-deps installs it)")
        if os.geteuid() != 0:
            self.skipTest("attaching strace to muxd needs root here")
        if os.environ.get("MUXD_WRAPPER"):
            self.skipTest("muxd runs under a wrapper (valgrind): strace cannot attach as well")

    def start_two_workers(self):
        m = self.start_muxd(workers=2, shutdown_timeout=1)
        self.wait_for(lambda: len(os.listdir("/proc/%d/task" % m.pid)) >= 3, 5,
                      "the worker threads")
        return m

    def worker_tid(self, m):
        """A worker thread: muxd names them muxd-worker-N (a sanitizer's
        runtime may run threads of its own)."""
        for t in sorted(os.listdir("/proc/%d/task" % m.pid)):
            with open("/proc/%d/task/%s/comm" % (m.pid, t)) as f:
                if f.read().startswith("muxd-worker-"):
                    return int(t)
        self.fail("no muxd-worker-N thread in muxd %d" % m.pid)

    def inject(self, tid, spec, out="/dev/null"):
        """Attach strace to thread tid only, injecting spec into the loop's
        wait (its trace written to out); returns once it is attached."""
        p = subprocess.Popen(["strace", "-qq", "-o", out, "-p", str(tid),
                              "-e", "trace=" + WAIT_SYSCALLS,
                              "-e", "inject=%s:%s" % (WAIT_SYSCALLS, spec)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self.detach, p)

        def attached():
            if p.poll() is not None:
                # its tracee is gone already (or it could not attach: what
                # the test waits for next will not come, and it fails there)
                return True
            try:
                with open("/proc/%d/status" % tid) as f:
                    return any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f)
            except FileNotFoundError:
                return True     # the thread is gone already: it was attached
        self.wait_for(attached, 10, "strace attached to thread %d" % tid)
        return p

    @staticmethod
    def detach(p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def test_fatal_loop_error_stops_the_daemon(self):
        m = self.start_two_workers()
        c = self.client(m)
        self.roundtrip(c, b"before\n")
        tid = self.worker_tid(m)
        m.stopped_by_us = True      # it is to stop on its own: not a crash for the harness
        self.inject(tid, "error=EBADF:when=1+")
        m.wait_log(r"^muxd: err: worker \d+: the %s event loop failed: Bad file descriptor; "
                   r"stopping muxd$" % self.backend, timeout=10)
        rc = m.wait_exit(20)
        self.assertEqual(rc, 1, "muxd must exit with status 1 after a worker failed\n%s"
                         % m.log_tail())
        self.assertTrue([l for l in m.log_lines() if "a worker failed: stopping" in l],
                        m.log_tail())

    def test_transient_loop_errors_are_retried(self):
        m = self.start_two_workers()
        tid = self.worker_tid(m)
        err = "EBUSY" if self.backend == "io_uring" else "EINTR"
        for e in (err, "EAGAIN"):
            out = os.path.join(self.tmpdir, "strace-%s.out" % e)
            p = self.inject(tid, "error=%s:when=1..20" % e, out=out)
            # 20 waits failed, then the worker waited a 21st time: it went on
            self.wait_for(lambda: self.waits_after_injections(out) >= 1, 10,
                          "the worker to wait again after 20 injected %s" % e)
            self.detach(p)
        self.assertTrue(os.path.exists("/proc/%d/task/%d" % (m.pid, tid)),
                        "the worker thread exited on a transient error\n%s" % m.log_tail())
        self.assertFalse([l for l in m.log_lines() if "failed" in l], m.log_tail())
        # both workers still accept and serve
        clients = [self.client(m) for _ in range(20)]
        for i, c in enumerate(clients):
            self.roundtrip(c, b"after %d\n" % i)
        self.assertAlive(m)

    @staticmethod
    def waits_after_injections(out):
        """Calls strace shows after the 20th injected one (-1 before it)."""
        with open(out) as f:
            lines = f.read().splitlines()
        injected = [i for i, l in enumerate(lines) if l.endswith("(INJECTED)")]
        if len(injected) < 20:
            return -1
        return len(lines) - 1 - injected[19]


mt.for_each_backend(LoopFaultsMixin)

if __name__ == "__main__":
    mt.main()
