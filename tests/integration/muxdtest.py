# SPDX-License-Identifier: MIT
"""Shared harness for muxd's integration tests (Python 3 standard library only).

Environment (set by `make check`, and by tests/integration/run for a test run
by hand):
  MUXD         absolute path of the built daemon
  MUXC         absolute path of the built client
  MUXCTL       absolute path of the built control client
  MUXD_SRCDIR  top source directory
Optional:
  MUXDTEST_BACKENDS   run only these backends (comma-separated), e.g. io_uring;
                      by default every backend muxd was built with
  MUXDTEST_VERBOSE=1  copy every line muxd logs to our stderr as it arrives
  MUXD_WRAPPER        a command line every muxd runs under (split like a shell
                      would), e.g. "valgrind --leak-check=full --error-exitcode=1
                      --quiet" (make check-valgrind).  Its reports on muxd's
                      stderr ("==PID== ...") fail the test like sanitizer reports.
  MUXDTEST_TIME_SCALE factor for every deadline waiting for muxd to do something
                      (default 1; 4 under valgrind).  Durations of silence and
                      CPU-time bounds are not scaled.

Every muxd is started in the foreground with `--log-target stderr`; a reader
thread collects its log lines.  The harness waits for the `ready` line and
reads the actual (ephemeral) ports from the `listening on ADDR:PORT` lines.
Every wait has a deadline; no muxd outlives its test (cleanups + atexit).
"""

import atexit
import errno
import fcntl
import os
import random
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

MUXD = os.environ.get("MUXD", "")
MUXC = os.environ.get("MUXC", "")
MUXCTL = os.environ.get("MUXCTL", "")
SRCDIR = os.environ.get("MUXD_SRCDIR", "")
VERBOSE = os.environ.get("MUXDTEST_VERBOSE", "") not in ("", "0")
# MUXD_TEST_WORKERS=N runs every test config with `workers = N` (make check-workers).
WORKERS = os.environ.get("MUXD_TEST_WORKERS", "")
# what the "ready:" log line ends with when more than one worker runs
READY_SUFFIX = ", %s workers" % WORKERS if WORKERS and int(WORKERS) > 1 else ""
WRAPPER = shlex.split(os.environ.get("MUXD_WRAPPER", ""))
UNDER_VALGRIND = bool(WRAPPER) and "valgrind" in os.path.basename(WRAPPER[0])
TIME_SCALE = float(os.environ.get("MUXDTEST_TIME_SCALE", "") or (4 if UNDER_VALGRIND else 1))



def _built_backends():
    """The backends this muxd has, from its own "unknown backend" error:
    io_uring is among them only when muxd was built with liburing, and then
    every test runs on it too (a kernel that refuses it fails them)."""
    if not MUXD:
        return ("epoll", "poll", "select")
    with tempfile.TemporaryDirectory(prefix="muxdtest-") as d:
        path = os.path.join(d, "backends.conf")
        with open(path, "w") as f:
            f.write('backend = "?";\n')
        p = subprocess.run([MUXD, "-t", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    m = re.search(r"\(valid: ([a-z_, ]+)\)", p.stdout)
    if not m:
        raise RuntimeError("cannot tell the backends of %s from: %r" % (MUXD, p.stdout))
    return tuple(b.strip() for b in m.group(1).split(","))


# every backend muxd was built with, as "muxd -t" lists them (from its one
# table, src/event.c)
BUILT_BACKENDS = _built_backends()
BACKENDS = BUILT_BACKENDS
if os.environ.get("MUXDTEST_BACKENDS"):
    BACKENDS = tuple(b for b in os.environ["MUXDTEST_BACKENDS"].split(",") if b)
    for b in BACKENDS:
        if b not in BUILT_BACKENDS:
            raise RuntimeError("MUXDTEST_BACKENDS: %s was not built (have: %s)"
                               % (b, ", ".join(BUILT_BACKENDS)))

LOG_LINE_RE = re.compile(r"^muxd: (debug|info|notice|warning|err): ")
LISTEN_RE = re.compile(r"listening on (\[[0-9A-Fa-f:.]*\]|[0-9.]+):(\d+)")
READY_RE = re.compile(r"^muxd: info: .*\bready\b")
SANITIZER_RE = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                          r"runtime error:|WARNING: ThreadSanitizer|"
                          r"^==\d+== )")     # valgrind (--quiet: errors only)

DEFAULT_GREETING = b"hello...\n"
DEFAULT_SUFFIX = b"hi..."
TOO_LONG = b"error: message too long\n"

# Variables that would make muxd talk to systemd or take passed sockets.
_SYSTEMD_ENV = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID",
                "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID")


def muxd_path():
    if not MUXD:
        raise AssertionError("MUXD is not set: run through `make check`, or set MUXD to "
                             "the daemon's path and PYTHONPATH to tests/integration")
    if not os.access(MUXD, os.X_OK):
        raise AssertionError("MUXD=%s is not an executable file" % MUXD)
    return MUXD


def muxd_argv():
    """The command that runs muxd: MUXD_WRAPPER's words, then muxd's path."""
    return WRAPPER + [muxd_path()]


def scaled(seconds):
    """A deadline for something muxd must do, stretched by MUXDTEST_TIME_SCALE."""
    return seconds * TIME_SCALE


def tool_reports(text):
    """Sanitizer or valgrind report lines in a muxd's stderr (text)."""
    return [l for l in text.splitlines() if SANITIZER_RE.search(l)]


def skip_under_valgrind(reason):
    """Decorator: skip a test when muxd runs under valgrind (MUXD_WRAPPER)."""
    return unittest.skipIf(UNDER_VALGRIND, "under valgrind: " + reason)


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_ENV}
    if extra:
        env.update(extra)
    return env


def raise_nofile(want=8192):
    """Raise our own RLIMIT_NOFILE soft limit (towards the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def have_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


# Ports for muxd to listen on come from below the kernel's ephemeral range:
# a port taken by bind(0) comes from that range, and so does the source port
# of every client socket the tests open, so under `make check -j` another
# test's client could take such a port between the pick and muxd's bind
# ("Address already in use"). Ports below the range are never given to a
# client. Test processes running side by side agree through one lock file
# per port, held (flock) until the process ends.
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "muxdtest-ports")
_held_ports = {}        # port -> the open lock file that reserves it


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_bindable(port):
    """Nothing listens on or is bound to port, on any address."""
    for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
        except OSError as e:
            if fam == socket.AF_INET6 and e.errno == errno.EADDRNOTAVAIL:
                continue        # no IPv6 here
            return False
        finally:
            s.close()
    return True


def _port_reserve(port):
    """Take the lock of port for this process; False if another holds it."""
    try:
        os.makedirs(PORT_LOCK_DIR, mode=0o1777, exist_ok=True)
        fd = os.open(os.path.join(PORT_LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        return True             # no lock directory: the bind check alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held_ports[port] = fd
    return True


def free_port(host="127.0.0.1"):
    """A port for muxd to listen on: below the ephemeral range, free on every
    address, and reserved for this test process (see PORT_LOCK_DIR)."""
    high = _ephemeral_low() - 1
    low = max(1024, high - 20000)
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randint(low, high)
        if port in _held_ports or not _port_reserve(port):
            continue
        if _port_bindable(port):
            return port
    raise AssertionError("no free port in %d-%d" % (low, high))


def free_ports(n):
    """n distinct ports (free_port())."""
    return [free_port() for _ in range(n)]


# ---------------------------------------------------------------- config text

def cstr(value):
    """A libconfig string literal."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    out = ['"']
    for ch in value:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or 0x7f <= o <= 0xff:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (str, bytes)):
        return cstr(v)
    if isinstance(v, dict):
        return "{ " + " ".join("%s = %s;" % (k, _value(x)) for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, dict) for x in v):
            return "(\n  " + ",\n  ".join(_value(x) for x in v) + "\n)"
        return "[ " + ", ".join(_value(x) for x in v) + " ]"
    raise TypeError("cannot render %r" % (v,))


def render_config(settings):
    """dict -> libconfig text, one setting per line, in insertion order."""
    return "".join("%s = %s;\n" % (k, _value(v)) for k, v in settings.items())


def base_settings(backend, **over):
    """A complete config: echo/line on 127.0.0.1:ephemeral.  Keyword arguments
    override or add settings; a value of None removes the setting."""
    s = {
        "backend": backend,
        "timeout": 60,
        "log_level": "info",
        "max_connections": 100,
        "shutdown_timeout": 5,
        "greeting": "hello...\n",
        "suffix": "hi...",
        "mode": "echo",
        "framing": "line",
        "max_message": 4096,
        "listen": [{"port": 0, "address": "127.0.0.1"}],
        # no control socket: the host's /run/muxd is not the tests' (test_control.py
        # gives muxd one in its temporary directory)
        "control_socket": "",
    }
    if WORKERS:
        s["workers"] = int(WORKERS)
    for k, v in over.items():
        if v is None:
            s.pop(k, None)
        else:
            s[k] = v
    return s


# ---------------------------------------------------------------- /proc

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    """utime + stime of the process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def num_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _hex_port(addr):
    return int(addr.rsplit(":", 1)[1], 16)


def tcp_rx_queue(local_port, remote_port):
    """Bytes received but not yet read by the application on the TCP socket
    local_port <-> remote_port (as seen in /proc/net/tcp{,6}); None if absent."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if (_hex_port(p[1]) == local_port and _hex_port(p[2]) == remote_port
                            and p[3] == "01"):
                        return int(p[4].split(":")[1], 16)
        except FileNotFoundError:
            continue
    return None


def sock_outq(sock):
    """Bytes in our socket's send queue not yet acknowledged (SIOCOUTQ)."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return struct.unpack("i", buf)[0]


# ---------------------------------------------------------------- sockets

def connect(port, host="127.0.0.1", timeout=5.0, rcvbuf=None):
    """A connected TCP socket with a timeout (rcvbuf: SO_RCVBUF set before connect)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(scaled(timeout))
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def _recv_deadline(sock, deadline, n):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout()
    sock.settimeout(remaining)
    return sock.recv(n)


def recv_exact(sock, n, timeout=5.0):
    """Exactly n bytes; AssertionError on EOF, reset or timeout."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = _recv_deadline(sock, deadline, min(n - len(buf), 1 << 20))
        except socket.timeout:
            raise AssertionError("timed out after %.1fs waiting for %d bytes; got %d: %r"
                                 % (timeout, n, len(buf), _short(buf))) from None
        except ConnectionResetError:
            raise AssertionError("connection reset after %d of %d bytes: %r"
                                 % (len(buf), n, _short(buf))) from None
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes: %r" % (len(buf), n, _short(buf)))
        buf += chunk
    return bytes(buf)


def recv_until(sock, delim, timeout=5.0, limit=1 << 24):
    """Bytes up to and including the first delim (reads byte-exactly: nothing
    after delim is consumed)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while not buf.endswith(delim):
        if len(buf) > limit:
            raise AssertionError("no %r within %d bytes" % (delim, limit))
        try:
            chunk = _recv_deadline(sock, deadline, 1)
        except socket.timeout:
            raise AssertionError("timed out waiting for %r; got %r" % (delim, _short(buf))) from None
        except ConnectionResetError:
            raise AssertionError("connection reset waiting for %r; got %r"
                                 % (delim, _short(buf))) from None
        if not chunk:
            raise AssertionError("EOF waiting for %r; got %r" % (delim, _short(buf)))
        buf += chunk
    return bytes(buf)


def recv_all(sock, timeout=10.0, allow_reset=False):
    """Everything until EOF."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        try:
            chunk = _recv_deadline(sock, deadline, 1 << 16)
        except socket.timeout:
            raise AssertionError("no EOF within %.1fs; got %d bytes: %r"
                                 % (timeout, len(buf), _short(buf))) from None
        except ConnectionResetError:
            if allow_reset:
                return bytes(buf)
            raise AssertionError("connection reset instead of EOF after %d bytes: %r"
                                 % (len(buf), _short(buf))) from None
        if not chunk:
            return bytes(buf)
        buf += chunk


def expect_eof(sock, timeout=5.0, allow_reset=False):
    """The peer closes without sending anything more.  allow_reset: a TCP reset
    also counts as closed (a peer that closes with our unread data in its
    receive queue resets the connection; that is the kernel, not muxd)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    try:
        chunk = _recv_deadline(sock, deadline, 4096)
    except socket.timeout:
        raise AssertionError("connection still open after %.1fs" % timeout) from None
    except ConnectionResetError:
        if allow_reset:
            return
        raise AssertionError("connection reset instead of a clean EOF") from None
    if chunk:
        raise AssertionError("expected EOF, got data: %r" % _short(chunk))


def expect_silence(sock, duration):
    """Nothing at all arrives (no data, no EOF) for `duration` seconds."""
    r, _, _ = select.select([sock], [], [], duration)
    if r:
        sock.settimeout(1.0)
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            raise AssertionError("expected silence, got a connection reset") from None
        if chunk:
            raise AssertionError("expected silence, got data: %r" % _short(chunk))
        raise AssertionError("expected silence, got EOF")


def _short(b, n=200):
    b = bytes(b)
    return b if len(b) <= n else b[:n // 2] + b"..." + b[-n // 2:]


def echo_reply(line, suffix=DEFAULT_SUFFIX):
    """The reply muxd sends to one message in line framing."""
    if line.endswith(b"\r\n"):
        return line[:-2] + suffix + b"\r\n"
    if line.endswith(b"\n"):
        return line[:-1] + suffix + b"\n"
    return line + suffix


# ---------------------------------------------------------------- systemd

# argv: FDS ("5,9": become 3,4) PIDVARS ("LISTEN_PID,WATCHDOG_PID") PROGRAM ARGS...
_EXEC_WRAPPER = r"""
import fcntl, os, sys
fds = [int(x) for x in sys.argv[1].split(",") if x]
high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i, inheritable=True)
    os.close(fd)
for name in sys.argv[2].split(","):
    if name:
        os.environ[name] = str(os.getpid())
os.execvp(sys.argv[3], sys.argv[3:])
"""


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET.  `address`
    is the value for NOTIFY_SOCKET ("/path" or "@abstract").  With read=True
    a thread collects every datagram as (monotonic time, text); with
    read=False nothing is read (the queue fills) until start_reading()."""

    def __init__(self, directory=None, abstract=False, read=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        if abstract:
            name = "muxdtest-notify-%d-%d-%x" % (os.getpid(), threading.get_ident(),
                                                 time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(directory, "notify.sock")
            self.sock.bind(self.address)
        self.messages = []
        self.cond = threading.Condition()
        self.closed = False
        self._thread = None
        if read:
            self.start_reading()

    def start_reading(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self):
        self.sock.settimeout(0.1)
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            with self.cond:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))
                self.cond.notify_all()

    def close(self):
        self.closed = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()

    def count(self):
        with self.cond:
            return len(self.messages)

    def texts(self, since=0):
        with self.cond:
            return [t for _, t in self.messages[since:]]

    def states(self, since=0):
        """The datagrams that are neither STATUS= nor WATCHDOG=1."""
        return [t for t in self.texts(since)
                if not t.startswith("STATUS=") and t != "WATCHDOG=1"]

    def wait(self, match, timeout=5.0, since=0):
        """Wait for a datagram (index >= since) equal to `match` (a str) or
        matching it (a compiled regex, searched); returns (index, text)."""
        if isinstance(match, str):
            def ok(t):
                return t == match
        else:
            def ok(t):
                return match.search(t) is not None
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.messages):
                    if ok(self.messages[i][1]):
                        return i, self.messages[i][1]
                    i += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no notify datagram %r within %.1fs; got %r"
                                         % (getattr(match, "pattern", match), timeout,
                                            [t for _, t in self.messages[since:]][-20:]))
                self.cond.wait(remaining)


# ---------------------------------------------------------------- the daemon

_live = set()


def _kill_all_at_exit():
    for m in list(_live):
        m.kill()


atexit.register(_kill_all_at_exit)


class Muxd:
    """One muxd process started in the foreground, stderr collected line by line."""

    def __init__(self, config_path, args=(), rlimit_nofile=None, env=None,
                 pass_fds=None, pid_env=(), log_target="stderr", wrapper=()):
        """pass_fds: descriptors of ours that muxd gets as 3, 4, ... (socket
        activation: set LISTEN_FDS etc. in env).  pid_env: variables set to
        muxd's own pid (LISTEN_PID, WATCHDOG_PID).  log_target: the value of
        --log-target (None: no option).  wrapper: argv that execs muxd's argv
        appended to it (e.g. systemd-socket-activate); it must keep the pid."""
        self.config_path = config_path
        self.args = list(args)
        self.rlimit_nofile = rlimit_nofile
        self.env = clean_env(env)
        self.pass_fds = list(pass_fds or ())
        self.pid_env = list(pid_env)
        self.log_target = log_target
        self.wrapper = list(wrapper)
        self.lines = []
        self.stdout = bytearray()
        self.cond = threading.Condition()
        self.eof = False
        self.proc = None
        self.listeners = []     # [(addr, port)] in the order of the listening lines
        self.stopped_by_us = False
        self.reading = threading.Event()    # cleared: stderr is not read (it fills up)
        self.reading.set()

    # -- process
    def start(self, wait_ready=True, timeout=10.0):
        argv = muxd_argv() + ["-c", self.config_path]
        if self.log_target is not None:
            argv += ["--log-target", self.log_target]
        argv = self.wrapper + argv + self.args
        if self.pass_fds or self.pid_env:
            # exec muxd through a tiny wrapper that moves our descriptors to
            # 3, 4, ... and sets the pid variables to its own pid (exec keeps it)
            argv = [sys.executable, "-S", "-c", _EXEC_WRAPPER,
                    ",".join(str(fd) for fd in self.pass_fds), ",".join(self.pid_env)] + argv
        preexec = None
        if self.rlimit_nofile is not None:
            n = self.rlimit_nofile

            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env,
                                     preexec_fn=preexec, close_fds=True,
                                     pass_fds=self.pass_fds)
        _live.add(self)
        self._t_err = threading.Thread(target=self._read_stderr, daemon=True)
        self._t_out = threading.Thread(target=self._read_stdout, daemon=True)
        self._t_err.start()
        self._t_out.start()
        if wait_ready:
            self.wait_log(READY_RE, timeout=timeout)     # scaled by wait_log
            with self.cond:
                for line in self.lines:
                    m = LISTEN_RE.search(line)
                    if m:
                        self.listeners.append((m.group(1), int(m.group(2))))
            if not self.listeners:
                raise AssertionError("muxd is ready but logged no 'listening on' line:\n"
                                     + self.log_tail())
        return self

    def pause_log_reading(self):
        """Stop reading muxd's stderr (after the line being read): the pipe
        fills up as behind a log reader that does not keep up."""
        self.reading.clear()

    def resume_log_reading(self):
        self.reading.set()

    def _read_stderr(self):
        for raw in self.proc.stderr:
            self.reading.wait()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if VERBOSE:
                sys.stderr.write("  [muxd %d] %s\n" % (self.proc.pid, line))
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _read_stdout(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                break
            with self.cond:
                self.stdout += chunk

    @property
    def pid(self):
        return self.proc.pid

    @property
    def ports(self):
        return [p for _, p in self.listeners]

    @property
    def port(self):
        return self.listeners[0][1]

    def port_of(self, addr):
        """Port of the (only) listener logged with this address ("127.0.0.1",
        "[::1]"; "*" for the all-addresses one: "[::]" or "0.0.0.0")."""
        want = ("[::]", "0.0.0.0") if addr == "*" else (addr,)
        found = [p for a, p in self.listeners if a in want]
        if len(found) != 1:
            raise AssertionError("expected one listener on %s, have %s" % (addr, self.listeners))
        return found[0]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self.stopped_by_us = True       # the test expects it to exit
        if self.running():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit status, or None if still running after timeout (scaled)."""
        timeout = scaled(timeout)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_readers()
        _live.discard(self)
        return rc

    def _join_readers(self):
        self._t_err.join(timeout=5)
        self._t_out.join(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            if not f.closed and not (self._t_err.is_alive() or self._t_out.is_alive()):
                f.close()

    def stop(self, timeout=15.0):
        """SIGTERM, wait (bounded) and return the exit status.  If muxd does not
        exit in time it is killed and AssertionError raised."""
        self.stopped_by_us = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            raise AssertionError("muxd did not exit within %.1fs of SIGTERM; killed\n%s"
                                 % (scaled(timeout), self.log_tail()))
        return rc

    def kill(self):
        self.stopped_by_us = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is not None:
            self._join_readers()
        _live.discard(self)

    # -- log
    def wait_log(self, regex, timeout=5.0, since=0):
        """Wait for a log line (index >= since) matching regex; returns
        (index, match).  Fails early if muxd exits first."""
        rx = re.compile(regex) if isinstance(regex, str) else regex
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self.cond:
            i = since
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return i, m
                    i += 1
                if self.eof:
                    rc = self.proc.wait(timeout=5)
                    raise AssertionError("muxd exited (status %s) before logging /%s/\n%s"
                                         % (rc, rx.pattern, self._tail_locked()))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no log line /%s/ within %.1fs\n%s"
                                         % (rx.pattern, timeout, self._tail_locked()))
                self.cond.wait(remaining)

    def log_count(self):
        with self.cond:
            return len(self.lines)

    def log_lines(self, since=0):
        with self.cond:
            return list(self.lines[since:])

    def _tail_locked(self, n=30):
        return "--- muxd log (last %d lines) ---\n%s\n---" % (n, "\n".join(self.lines[-n:]))

    def log_tail(self, n=30):
        with self.cond:
            return self._tail_locked(n)

    def sanitizer_reports(self):
        with self.cond:
            return [l for l in self.lines if SANITIZER_RE.search(l)]


# ---------------------------------------------------------------- test cases

class MuxdTestCase(unittest.TestCase):
    """Base class.  Subclasses set `backend`.  Helpers start muxd and open
    client sockets that are all cleaned up after the test (sockets first, then
    muxd: it must exit with status 0 on SIGTERM)."""

    backend = None
    maxDiff = 4000

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="muxdtest-")
        self.addCleanup(shutil.rmtree, self.tmpdir, True)

    def assertLogged(self, muxd, line, since=0, timeout=5.0):
        """muxd logged exactly line (at index >= since). A thread reads
        muxd's stderr, so a line muxd wrote before what the test just saw
        (a reply, say) may not be in yet: wait for it, bounded."""
        muxd.wait_log("^%s$" % re.escape(line), timeout=timeout, since=since)

    def write_file(self, name, text):
        path = os.path.join(self.tmpdir, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)       # atomic: a reload never reads half a file
        return path

    def write_config(self, settings=None, text=None, name="muxd.conf"):
        if text is None:
            text = render_config(settings)
        return self.write_file(name, text)

    def start_muxd(self, text=None, rlimit_nofile=None, args=(), wait_ready=True,
                   name="muxd.conf", env=None, pass_fds=None, pid_env=(),
                   log_target="stderr", wrapper=(), **over):
        """Start muxd on base_settings(self.backend, **over) (or on `text`).
        env, pass_fds, pid_env, log_target, wrapper: see Muxd."""
        if text is None:
            text = render_config(base_settings(self.backend, **over))
        path = self.write_config(text=text, name=name)
        m = Muxd(path, args=args, rlimit_nofile=rlimit_nofile, env=env, pass_fds=pass_fds,
                 pid_env=pid_env, log_target=log_target, wrapper=wrapper)
        self.addCleanup(self._cleanup_muxd, m)
        m.start(wait_ready=wait_ready)
        return m

    def _cleanup_muxd(self, m):
        if m.proc is None:
            return
        try:
            if m.running() and m.stopped_by_us:
                # The test signalled it already: let it finish (bounded).
                if m.wait_exit(20) is None:
                    raise AssertionError("muxd still running 20s after the test stopped it\n%s"
                                         % m.log_tail())
            elif m.running():
                rc = m.stop()
                if rc != 0:
                    raise AssertionError("muxd exited with status %s on SIGTERM\n%s"
                                         % (rc, m.log_tail()))
            elif not m.stopped_by_us:
                raise AssertionError("muxd exited unexpectedly with status %s\n%s"
                                     % (m.proc.returncode, m.log_tail()))
        finally:
            m.kill()
        reports = m.sanitizer_reports()
        if reports:
            raise AssertionError("sanitizer reports:\n%s\n%s"
                                 % ("\n".join(reports), m.log_tail(60)))

    def notify_socket(self, abstract=False, read=True):
        """A NotifySocket closed after the test (after muxd has stopped)."""
        n = NotifySocket(self.tmpdir, abstract=abstract, read=read)
        self.addCleanup(n.close)
        return n

    def connect(self, port, host="127.0.0.1", timeout=5.0, rcvbuf=None):
        s = connect(port, host, timeout=timeout, rcvbuf=rcvbuf)
        self.addCleanup(s.close)
        return s

    def client(self, muxd, host="127.0.0.1", port=None, greeting=DEFAULT_GREETING, **kw):
        """Connect and read the greeting (exact bytes)."""
        s = self.connect(port if port is not None else muxd.port, host, **kw)
        if greeting:
            self.assertEqual(recv_exact(s, len(greeting)), greeting)
        return s

    def assertRecv(self, sock, expected, timeout=5.0):
        self.assertEqual(recv_exact(sock, len(expected), timeout), expected)

    def roundtrip(self, sock, line, suffix=DEFAULT_SUFFIX, timeout=5.0):
        sock.sendall(line)
        self.assertRecv(sock, echo_reply(line, suffix), timeout)

    def assertAlive(self, muxd):
        if not muxd.running():
            self.fail("muxd exited with status %s\n%s" % (muxd.proc.returncode, muxd.log_tail()))

    def wait_for(self, predicate, timeout, what, interval=0.05):
        """Poll predicate() until true (bounded; the bound is scaled)."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v:
                return v
            if time.monotonic() >= deadline:
                self.fail("timed out after %.1fs waiting for %s" % (timeout, what))
            time.sleep(interval)


class ReloadTraffic:
    """Clients that keep talking to muxd while it is reloaded between two
    configs, checking every greeting and reply against the config(s) that
    may be in force.

    greet maps (config name, port) -> (greeting, suffix).  The driver calls
    begin_reload() before each SIGHUP and end_reload(config) once the reload
    is over: a client that connected while no reload was in progress must see
    exactly the config in force, the others either one."""

    def __init__(self, greet, config):
        self.greet = greet
        self.lock = threading.Lock()
        self.seq = 0                # odd while a reload is in progress
        self.config = config
        self.stats = {"roundtrips": 0, "fresh": 0, "strict": 0, "refused": 0}
        self.errors = []
        self.stop = threading.Event()
        self.per_client = []
        self.threads = []

    def begin_reload(self):
        with self.lock:
            self.seq += 1

    def end_reload(self, config):
        with self.lock:
            self.config = config
            self.seq += 1

    def traffic(self):
        with self.lock:
            return self.stats["roundtrips"] + self.stats["fresh"]

    def fail(self, what):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)
        self.stop.set()

    def open_client(self, port):
        """Connect, read the greeting, check it; returns (sock, suffix)."""
        with self.lock:
            s1, c1 = self.seq, self.config
        try:
            sock = connect(port, timeout=5)
        except ConnectionRefusedError:
            with self.lock:
                self.stats["refused"] += 1
            raise
        try:
            g = recv_until(sock, b"\n", timeout=10)
        except BaseException:
            sock.close()
            raise
        with self.lock:
            s2 = self.seq
        names = {name for name, p in self.greet if p == port}
        allowed = {self.greet[(name, port)] for name in names}
        if s1 == s2 and s1 % 2 == 0:
            allowed = {self.greet[(c1, port)]}      # no reload in between: exactly this one
            with self.lock:
                self.stats["strict"] += 1
        match = [sfx for gr, sfx in allowed if gr == g]
        if not match:
            sock.close()
            raise AssertionError("port %d: greeting %r, expected one of %r (seq %d..%d)"
                                 % (port, g, sorted(allowed), s1, s2))
        return sock, match[0]

    @staticmethod
    def _round_trip(sock, line, suffix):
        """Send line; (got, expected) if the reply is wrong, else None."""
        sock.sendall(line)
        want = echo_reply(line, suffix)
        got = recv_exact(sock, len(want), timeout=10)
        return None if got == want else (got, want)

    def _persistent(self, i, sock, suffix):
        k = 0
        try:
            while not self.stop.is_set():
                line = b"client %d line %d %s\n" % (i, k, b"z" * (i % 11))
                wrong = self._round_trip(sock, line, suffix)
                if wrong:
                    self.fail("client %d: sent %r, got %r, expected %r" % ((i, line) + wrong))
                    return
                k += 1
                self.per_client[i] = k
                with self.lock:
                    self.stats["roundtrips"] += 1
        except (AssertionError, OSError) as e:
            self.fail("persistent client %d after %d round trips: %r" % (i, k, e))
        finally:
            sock.close()

    def _churn(self, j, ports):
        k = 0
        try:
            while not self.stop.is_set():
                port = ports[(k + j) % len(ports)]
                sock, suffix = self.open_client(port)
                try:
                    wrong = self._round_trip(sock, b"fresh %d %d\n" % (j, k), suffix)
                    if wrong:
                        self.fail("fresh %d on %d: got %r, expected %r" % ((j, port) + wrong))
                        return
                finally:
                    sock.close()
                k += 1
                with self.lock:
                    self.stats["fresh"] += 1
        except (AssertionError, OSError) as e:
            self.fail("fresh connections %d after %d: %r" % (j, k, e))

    def start(self, persistent_ports, n_churn, churn_ports):
        """One persistent client per entry of persistent_ports doing round
        trips, and n_churn threads opening fresh connections in turn on
        churn_ports."""
        self.per_client = [0] * len(persistent_ports)
        socks = [self.open_client(p) for p in persistent_ports]
        self.threads = [threading.Thread(target=self._persistent, args=(i, sock, sfx), daemon=True)
                        for i, (sock, sfx) in enumerate(socks)]
        self.threads += [threading.Thread(target=self._churn, args=(j, churn_ports), daemon=True)
                         for j in range(n_churn)]
        for t in self.threads:
            t.start()

    def stop_all(self, timeout=15):
        """Stop every client; returns the threads still alive (hung)."""
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        return [t for t in self.threads if t.is_alive()]


def for_each_backend(mixin):
    """Class decorator: create one TestCase per backend, named
    <Mixin>_<backend>, in the mixin's module.  The mixin itself is not a
    TestCase and is not collected."""
    mod = sys.modules[mixin.__module__]
    for b in BACKENDS:
        name = "%s_%s" % (mixin.__name__, b)
        cls = type(name, (mixin, MuxdTestCase),
                   {"backend": b, "__module__": mixin.__module__, "__qualname__": name})
        setattr(mod, name, cls)
    return mixin


def main():
    unittest.main(verbosity=2)
