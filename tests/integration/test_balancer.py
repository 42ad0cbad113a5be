# SPDX-License-Identifier: MIT
"""muxd behind real balancers (issue 16): Debian's HAProxy and nginx (stream
module) in front of muxd, run from the shipped examples in doc/examples/
(their addresses, ports and paths replaced; a replacement that finds nothing
fails the test, so the examples and the test stay in step).

Loopback: HAProxy (send-proxy-v2, tcp-check expecting the greeting) and
nginx (proxy_protocol on) in front of one muxd, clients bound to 127.0.0.2,
127.0.0.3, ... so that allow/deny and max_per_source act on the real client
from the PROXY header, and the log shows both addresses.

Scale-out (root only: network namespaces): three muxd instances, each in
its own namespace, behind one HAProxy in a fourth, under load from clients
in the balancer's namespace; one is drained (HAProxy's drain state, then
muxctl drain), then one is killed with SIGKILL.  The figures (round trips,
connections, errors, time until HAProxy marks the dead host DOWN) are
printed.

Every balancer runs in the foreground with its config in the test's
temporary directory, on loopback or namespace-only addresses, and is killed
in the cleanup.  One backend is enough here (the balancers are what is
tested): the first of MUXDTEST_BACKENDS, else epoll."""

import ctypes
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import muxdtest as mt

EXAMPLES = os.path.join(mt.SRCDIR or ".", "doc", "examples")
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
# Debian's libnginx-mod-stream
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"
IP = shutil.which("ip") or ("/usr/sbin/ip" if os.access("/usr/sbin/ip", os.X_OK) else
                            "/sbin/ip" if os.access("/sbin/ip", os.X_OK) else None)
BACKEND = "epoll" if "epoll" in mt.BACKENDS else mt.BACKENDS[0]


def _muxd_accepts(setting_text):
    """Does this muxd know a setting (muxd -t on a config that has it)?"""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="muxdtest-") as d:
        path = os.path.join(d, "probe.conf")
        with open(path, "w") as f:
            f.write(mt.render_config(mt.base_settings(BACKEND)).replace(
                'address = "127.0.0.1";', 'address = "127.0.0.1"; ' + setting_text))
        p = subprocess.run([mt.muxd_path(), "-t", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
        return p.returncode == 0


HAVE_PROXY = _muxd_accepts('proxy_protocol = "v2"; proxy_from = [ "127.0.0.1/32" ];')
HAVE_RATE = _muxd_accepts("max_rate_per_source = 5;")


def example(name, replacements, workers=True):
    """The text of doc/examples/NAME with each (old, new) replaced; every old
    must occur (else the example changed and the test must follow)."""
    with open(os.path.join(EXAMPLES, name)) as f:
        text = f.read()
    for old, new in replacements:
        if old not in text:
            raise AssertionError("doc/examples/%s no longer has %r: update the test with it"
                                 % (name, old))
        text = text.replace(old, new)
    return text


def set_settings(text, settings):
    """Top-level settings of a libconfig text set to {name: libconfig value
    text}: the example's line replaced, or a line added (libconfig refuses a
    name twice)."""
    for name, value in settings.items():
        line = "%s = %s;" % (name, value)
        text, n = re.subn(r"(?m)^%s = [^\n]*;" % re.escape(name), lambda _: line, text)
        if n == 0:
            text += line + "\n"
    return text


def muxd_config(address, port, control, balancer_cidr, protocol="v2", settings=None, greeting=None):
    """doc/examples/muxd-behind-balancer.conf for one test instance;
    settings: {name: value text} replacing or adding top-level settings."""
    rep = [('address = "10.0.0.11";', 'address = "%s";' % address),
           ("port = 8088;", "port = %d;" % port),
           ('control_socket = "/run/muxd/control";', 'control_socket = %s;' % mt.cstr(control)),
           ('proxy_from = [ "10.0.0.2/32" ];', 'proxy_from = [ "%s" ];' % balancer_cidr),
           ('proxy_protocol = "v2";', 'proxy_protocol = "%s";' % protocol)]
    if greeting is not None:
        rep.append(('greeting = "hello...\\n";', "greeting = %s;" % mt.cstr(greeting)))
    text = example("muxd-behind-balancer.conf", rep)
    if not HAVE_PROXY:
        # this muxd has no PROXY protocol: the same file without it
        text = re.sub(r"\n *proxy_(protocol|from) = [^\n]*", "", text)
    settings = dict(settings or {}, backend='"%s"' % BACKEND)
    if mt.WORKERS:
        settings["workers"] = str(int(mt.WORKERS))
    return set_settings(text, settings)


def haproxy_config(bind, servers, stats_socket, log_to="stdout format raw local0"):
    """doc/examples/haproxy.cfg: bind ADDR:PORT, servers [(addr, port)] (one to three)."""
    rep = [("log /dev/log local0", "log %s" % log_to),
           ("stats socket /run/haproxy/admin.sock", "stats socket %s" % stats_socket),
           ("bind :8088", "bind %s" % bind),
           # within the test's descriptor limit
           ("maxconn 20000", "maxconn 1000")]
    for i in range(3):
        old = "        server muxd%d 10.0.0.1%d:8088\n" % (i + 1, i + 1)
        new = ("        server muxd%d %s:%d\n" % ((i + 1,) + servers[i])) if i < len(servers) else ""
        rep.append((old, new))
    if not HAVE_PROXY:
        rep.append(("default-server send-proxy-v2 check", "default-server check"))
    return example("haproxy.cfg", rep)


def nginx_config(tmpdir, listen, servers):
    """A main nginx.conf (module, events, paths in tmpdir) including
    doc/examples/nginx-stream.conf with its addresses replaced."""
    rep = [("listen 8088;", "listen %s;" % listen)]
    for i in range(3):
        old = "                server 10.0.0.1%d:8088 max_fails" % (i + 1)
        if i < len(servers):
            rep.append((old, "                server %s:%d max_fails" % servers[i]))
        else:
            rep.append((old, "                #server unused max_fails"))
    if not HAVE_PROXY:
        rep.append(("proxy_protocol on;", "proxy_protocol off;"))
    stream = os.path.join(tmpdir, "muxd-stream.conf")
    with open(stream, "w") as f:
        f.write(example("nginx-stream.conf", rep))
    main = ("load_module %s;\n"
            "error_log %s/nginx-error.log info;\n"
            "pid %s/nginx.pid;\n"
            "worker_processes 1;\n"
            "events { worker_connections 256; }\n"
            "include %s;\n") % (NGINX_STREAM, tmpdir, tmpdir, stream)
    path = os.path.join(tmpdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(main)
    return path


class Proc:
    """A balancer in the foreground, its output in a file; killed in the cleanup."""

    def __init__(self, test, argv, name):
        self.name = name
        self.out_path = os.path.join(test.tmpdir, name + ".out")
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, close_fds=True,
                                     start_new_session=True)
        test.addCleanup(self.kill)

    def output(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def running(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.out.close()


def haproxy_cmd(stats_socket, command, timeout=5.0):
    """One command on HAProxy's admin socket; its answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(stats_socket)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return buf.decode()
            buf += chunk
    finally:
        s.close()


def haproxy_states(stats_socket):
    """{server name: srv_op_state} of backend muxd (0 stopped/DOWN, 2 running/UP),
    or {} while the socket does not answer yet."""
    try:
        text = haproxy_cmd(stats_socket, "show servers state muxd")
    except OSError:
        return {}
    lines = text.splitlines()
    header = next((l for l in lines if l.startswith("# be_id")), None)
    if header is None:
        return {}
    cols = header[2:].split()
    out = {}
    for l in lines:
        if l and not l.startswith("#") and len(l.split()) >= len(cols):
            row = dict(zip(cols, l.split()))
            out[row["srv_name"]] = int(row["srv_op_state"])
    return out


def bound_client(src, port, dst="127.0.0.1", timeout=5.0):
    """A socket bound to src (a loopback address), connected to dst:port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((src, 0))
        s.settimeout(mt.scaled(timeout))
        s.connect((dst, port))
    except BaseException:
        s.close()
        raise
    return s


class BalancerMixin:
    """Shared by the HAProxy and nginx loopback tests: start_balancer(muxd)
    returns the port clients connect to, once the balancer serves."""

    protocol = "v2"

    def start_muxd_behind(self, **settings):
        text = muxd_config("127.0.0.1", 0, os.path.join(self.tmpdir, "ctl"), "127.0.0.1/32",
                           protocol=self.protocol,
                           settings=dict(settings, log_level='"debug"'))
        return self.start_muxd(text=text)

    def client_via(self, port, src):
        s = bound_client(src, port)
        self.addCleanup(s.close)
        return s

    def served(self, port, src, line=b"ping\n"):
        s = self.client_via(port, src)
        self.assertRecv(s, mt.DEFAULT_GREETING, timeout=10)
        self.roundtrip(s, line)
        return s

    def refused(self, port, src):
        """The balancer accepts, muxd refuses: EOF (or a reset) without a greeting."""
        s = self.client_via(port, src)
        mt.expect_eof(s, timeout=10, allow_reset=True)

    def test_served_through_balancer(self):
        m = self.start_muxd_behind()
        port = self.start_balancer(m)
        for i in range(2, 6):
            src = "127.0.0.%d" % i
            s = self.served(port, src, b"from %s\n" % src.encode())
            s.close()
        if HAVE_PROXY:
            # the log names the real client and the balancer
            for i in range(2, 6):
                m.wait_log(r"^muxd: debug: connection from 127\.0\.0\.%d:\d+ via 127\.0\.0\.1:\d+ "
                           r"\(PROXY v%s\)$" % (i, self.protocol[1]), timeout=5)
                m.wait_log(r'^muxd: debug: message from 127\.0\.0\.%d:\d+ via 127\.0\.0\.1:\d+: '
                           r'"from 127\.0\.0\.%d\\n"$' % (i, i), timeout=5)

    @unittest.skipUnless(HAVE_PROXY, "this muxd has no proxy_protocol")
    def test_only_through_balancer(self):
        """A client that skips the balancer is refused: it is not in proxy_from."""
        m = self.start_muxd_behind()
        port = self.start_balancer(m)
        s = self.client_via(m.port, "127.0.0.2")
        mt.expect_eof(s, timeout=10, allow_reset=True)
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.2:\d+ on 127\.0\.0\.1:%d: not in proxy_from"
                   % m.port)
        self.served(port, "127.0.0.2")

    @unittest.skipUnless(HAVE_PROXY, "this muxd has no proxy_protocol: the policy would see the balancer")
    def test_allow_deny_on_real_client(self):
        # allow names the clients, and the balancer for its health checks
        # (HAProxy's come with a v2 LOCAL header: the balancer's own address)
        m = self.start_muxd_behind(allow='[ "127.0.0.2/31", "127.0.0.4/32", "127.0.0.1/32" ]',
                                   deny='[ "127.0.0.3/32" ]')
        port = self.start_balancer(m)
        self.served(port, "127.0.0.2")
        self.refused(port, "127.0.0.3")
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.3:\d+ via 127\.0\.0\.1:\d+ on 127\.0\.0\.1:%d: "
                   r"denied$" % m.port)
        self.served(port, "127.0.0.4")
        self.refused(port, "127.0.0.5")
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.5:\d+ via 127\.0\.0\.1:\d+ on .*: not allowed$")

    @unittest.skipUnless(HAVE_PROXY, "this muxd has no proxy_protocol: the policy would see the balancer")
    def test_max_per_source_on_real_client(self):
        m = self.start_muxd_behind(max_per_source="2")
        port = self.start_balancer(m)
        a = [self.served(port, "127.0.0.4") for _ in range(2)]
        self.refused(port, "127.0.0.4")
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.4:\d+ via 127\.0\.0\.1:\d+ on .*: "
                   r"too many connections from")
        # another real client behind the same balancer is not throttled
        b = [self.served(port, "127.0.0.5") for _ in range(2)]
        for s in a + b:
            self.roundtrip(s, b"still\n")
        a[0].close()
        self.wait_for(lambda: self._served_once(port, "127.0.0.4"), 10,
                      "127.0.0.4 served again once one of its clients left")

    def _served_once(self, port, src):
        s = bound_client(src, port)
        try:
            data = s.recv(len(mt.DEFAULT_GREETING))
            return data == mt.DEFAULT_GREETING
        except OSError:
            return False
        finally:
            s.close()

    @unittest.skipUnless(HAVE_PROXY and HAVE_RATE, "this muxd has no proxy_protocol or no max_rate_per_source")
    def test_rate_per_source_on_real_client(self):
        # a bucket of 3, refilled at 3 a second: 10 connections in a row from
        # one client (each waits for its greeting or its end: well under a
        # second in all) are 3 served, perhaps one more, and the rest refused
        m = self.start_muxd_behind(max_rate_per_source="3")
        port = self.start_balancer(m)
        served = 0
        for _ in range(10):
            s = bound_client("127.0.0.6", port)
            try:
                s.settimeout(mt.scaled(5))
                served += s.recv(len(mt.DEFAULT_GREETING)) == mt.DEFAULT_GREETING
            except ConnectionResetError:
                pass
            finally:
                s.close()
        self.assertIn(served, (3, 4), "connections of 127.0.0.6 served out of 10 at max_rate_per_source = 3")
        m.wait_log(r"^muxd: notice: refused 127\.0\.0\.6:\d+ via 127\.0\.0\.1:\d+ on ", timeout=5)
        # the others behind the same balancer are not limited by it
        for _ in range(3):
            self.served(port, "127.0.0.7")


@unittest.skipUnless(HAPROXY, "haproxy is not installed (scripts/install-deps installs it)")
class HAProxyLoopback(BalancerMixin, mt.MuxdTestCase):
    backend = BACKEND
    protocol = "v2"

    def start_balancer(self, m):
        port = mt.free_port()
        stats = os.path.join(self.tmpdir, "haproxy.sock")
        cfg = os.path.join(self.tmpdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config("127.0.0.1:%d" % port, [("127.0.0.1", m.port)], stats))
        p = Proc(self, [HAPROXY, "-f", cfg, "-db"], "haproxy")
        # up: its health check (connect, PROXY v2 LOCAL, expect "hello") passed
        self.wait_for(lambda: not p.running() or haproxy_states(stats).get("muxd1") == 2, 15,
                      "HAProxy's health check to mark muxd UP")
        if not p.running():
            self.fail("haproxy exited:\n%s" % p.output())
        if HAVE_PROXY:
            # its checks send a v2 LOCAL header: muxd takes the balancer's own address
            m.wait_log(r"^muxd: debug: connection from 127\.0\.0\.1:\d+ via 127\.0\.0\.1:\d+ "
                       r"\(PROXY v2, no client address: the peer's\)$", timeout=5)
        self.haproxy = p
        return port

    def test_health_check_needs_greeting(self):
        """The check expects the greeting: a muxd that does not greet is DOWN."""
        text = muxd_config("127.0.0.1", 0, os.path.join(self.tmpdir, "ctl"), "127.0.0.1/32",
                           settings={"greeting": '""'})
        m = self.start_muxd(text=text)
        port = mt.free_port()
        stats = os.path.join(self.tmpdir, "haproxy.sock")
        cfg = os.path.join(self.tmpdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config("127.0.0.1:%d" % port, [("127.0.0.1", m.port)], stats))
        p = Proc(self, [HAPROXY, "-f", cfg, "-db"], "haproxy")
        self.wait_for(lambda: haproxy_states(stats).get("muxd1") is not None, 10,
                      "HAProxy's admin socket")
        # HAProxy starts servers UP and needs `fall` failed checks to mark them DOWN
        self.wait_for(lambda: haproxy_states(stats).get("muxd1") == 0, 10,
                      "HAProxy to mark a muxd without greeting DOWN")
        self.assertTrue(p.running())


@unittest.skipUnless(NGINX and os.path.exists(NGINX_STREAM),
                     "nginx or its stream module is not installed (scripts/install-deps installs them)")
class NginxLoopback(BalancerMixin, mt.MuxdTestCase):
    backend = BACKEND
    protocol = "v1"

    def start_balancer(self, m):
        port = mt.free_port()
        cfg = nginx_config(self.tmpdir, "127.0.0.1:%d" % port, [("127.0.0.1", m.port)])
        p = Proc(self, [NGINX, "-c", cfg, "-p", self.tmpdir, "-e", os.path.join(self.tmpdir, "nginx-error.log"),
                        "-g", "daemon off;"], "nginx")

        def listening():
            if not p.running():
                self.fail("nginx exited:\n%s" % p.output())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        self.wait_for(listening, 15, "nginx to listen")
        self.nginx = p
        return port


class Examples(unittest.TestCase):
    """The shipped files as they are (not the tests' copies) pass each
    program's own check."""

    def check(self, argv):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60)
        self.assertEqual(p.returncode, 0, "%s:\n%s" % (" ".join(argv), p.stdout))

    def test_muxd_conf(self):
        self.check([mt.muxd_path(), "-t", "-c", os.path.join(EXAMPLES, "muxd-behind-balancer.conf")])

    def test_muxd_knows_the_settings(self):
        # The tests below adapt to a muxd without these settings (to run
        # against an older build); this one does not let that hide a muxd
        # that lost them.
        self.assertTrue(HAVE_PROXY, "muxd -t refuses proxy_protocol/proxy_from")
        self.assertTrue(HAVE_RATE, "muxd -t refuses max_rate_per_source")

    @unittest.skipUnless(HAPROXY, "haproxy is not installed")
    def test_haproxy_cfg(self):
        self.check([HAPROXY, "-c", "-f", os.path.join(EXAMPLES, "haproxy.cfg")])

    @unittest.skipUnless(NGINX and os.path.exists(NGINX_STREAM), "nginx or its stream module is not installed")
    def test_nginx_stream_conf(self):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="muxdtest-") as d:
            main = os.path.join(d, "nginx.conf")
            with open(main, "w") as f:
                # as in Debian's nginx.conf: the module, then the include at top level
                f.write("load_module %s;\nerror_log %s/error.log;\npid %s/nginx.pid;\n"
                        "events {}\ninclude %s;\n"
                        % (NGINX_STREAM, d, d, os.path.join(EXAMPLES, "nginx-stream.conf")))
            self.check([NGINX, "-t", "-c", main, "-p", d, "-e", os.path.join(d, "error.log")])


# ---------------------------------------------------------------- scale-out

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NsSockets:
    """Sockets created in a network namespace: a thread of ours enters it
    (setns acts on the calling thread only) and makes them; a socket stays
    in the namespace it was made in, whichever thread uses it."""

    def __init__(self, ns):
        self.requests = queue.Queue()
        started = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(ns, started), daemon=True)
        self.thread.start()
        err = started.get(timeout=10)
        if err:
            raise OSError(err, "setns into %s: %s" % (ns, os.strerror(err)))

    def _run(self, ns, started):
        fd = os.open("/run/netns/" + ns, os.O_RDONLY | os.O_CLOEXEC)
        r = _libc.setns(fd, CLONE_NEWNET)
        err = ctypes.get_errno() if r else 0
        os.close(fd)
        started.put(err)
        if err:
            return
        while True:
            reply = self.requests.get()
            if reply is None:
                return
            try:
                reply.put(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            except OSError as e:
                reply.put(e)

    def socket(self):
        reply = queue.Queue()
        self.requests.put(reply)
        v = reply.get(timeout=10)
        if isinstance(v, Exception):
            raise v
        return v

    def close(self):
        self.requests.put(None)
        self.thread.join(timeout=5)


GREETING_RE = re.compile(rb"^hello\.\.\. (muxd\d)\n$")


class Load:
    """Clients in the balancer's namespace: persistent ones doing a round trip
    every 20 ms (reconnecting at once when their connection ends) and churning
    ones opening a connection, doing one round trip and closing it, in a loop.
    Each muxd greets with its name, so every connection knows its host.
    Times are time.monotonic() (one clock with the test's)."""

    def __init__(self, ns_sockets, host, port, n_persistent, n_churn):
        self.ns, self.host, self.port = ns_sockets, host, port
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.roundtrips = {}            # host -> count
        self.sessions = []              # (t, client, host) for each persistent connection
        self.current = [None] * n_persistent
        self.progress = [0] * n_persistent
        self.churn = []                 # (t_start, host or None, error or None)
        # (t, client, host or None, what, t_failed): t is when the
        # connection was opened, or when an established one failed
        self.errors = []
        self.threads = [threading.Thread(target=self._persistent, args=(i,), daemon=True)
                        for i in range(n_persistent)]
        self.threads += [threading.Thread(target=self._churn, args=(j,), daemon=True)
                         for j in range(n_churn)]
        for t in self.threads:
            t.start()

    def _open(self, src):
        s = self.ns.socket()
        try:
            s.bind((src, 0))
            s.settimeout(5)
            s.connect((self.host, self.port))
            g = mt.recv_until(s, b"\n", timeout=5, limit=100)
            m = GREETING_RE.match(g)
            if not m:
                raise AssertionError("greeting %r" % g)
            return s, m.group(1).decode()
        except BaseException:
            s.close()
            raise

    @staticmethod
    def source(i):
        """The address persistent client i connects from (each its own: the
        hosts must see it through the PROXY header)."""
        return "127.0.1.%d" % (i + 1)

    def _roundtrip(self, s, line):
        s.sendall(line)
        want = mt.echo_reply(line)
        got = mt.recv_exact(s, len(want), timeout=5)
        if got != want:
            raise AssertionError("sent %r, got %r" % (line, got))

    def _persistent(self, i):
        k = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                s, host = self._open(self.source(i))
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.errors.append((t0, "p%d" % i, None, "connect: %r" % e, time.monotonic()))
                self.stop.wait(0.05)
                continue
            with self.lock:
                self.sessions.append((time.monotonic(), i, host))
                self.current[i] = host
            try:
                while not self.stop.is_set():
                    self._roundtrip(s, b"client %d line %d\n" % (i, k))
                    k += 1
                    with self.lock:
                        self.roundtrips[host] = self.roundtrips.get(host, 0) + 1
                        self.progress[i] += 1
                    self.stop.wait(0.02)
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.errors.append((time.monotonic(), "p%d" % i, host, "session: %r" % e,
                                        time.monotonic()))
                    self.current[i] = None
            finally:
                s.close()

    def _churn(self, j):
        k = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            host = None
            try:
                s, host = self._open("127.0.2.%d" % (j + 1))
                try:
                    self._roundtrip(s, b"fresh %d %d\n" % (j, k))
                finally:
                    s.close()
                with self.lock:
                    self.churn.append((t0, host, None))
                    self.roundtrips[host] = self.roundtrips.get(host, 0) + 1
            except (OSError, AssertionError) as e:
                with self.lock:
                    self.churn.append((t0, host, repr(e)))
                    self.errors.append((t0, "c%d" % j, host, "churn: %r" % e, time.monotonic()))
            k += 1
            self.stop.wait(0.01)

    def snapshot(self):
        with self.lock:
            return {"roundtrips": dict(self.roundtrips), "sessions": list(self.sessions),
                    "current": list(self.current), "progress": list(self.progress),
                    "churn": list(self.churn), "errors": list(self.errors)}

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)
        return [t for t in self.threads if t.is_alive()]


@unittest.skipUnless(HAPROXY, "haproxy is not installed (scripts/install-deps installs it)")
@unittest.skipUnless(IP, "ip (iproute2) is not installed")
@unittest.skipUnless(os.geteuid() == 0, "not root: network namespaces need root")
@mt.skip_under_valgrind("the recipe's health-check timings are HAProxy's, for a muxd at full speed")
class ScaleOut(mt.MuxdTestCase):
    """The recipe of README.md, "More than one host": three muxd hosts behind
    one HAProxy, each in its own network namespace (10.77.N.2, HAProxy at
    10.77.N.1), clients in HAProxy's namespace on its 127.0.0.1:8088."""

    backend = BACKEND
    HOSTS = 3
    PERSISTENT = 9
    CHURN = 3

    def ip(self, *args):
        p = subprocess.run([IP] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("ip %s: %s" % (" ".join(args), p.stdout.strip()))

    def make_namespaces(self):
        tag = "muxdt%d" % os.getpid()
        self.lb = tag + "lb"
        self.hosts = [tag + "h%d" % (i + 1) for i in range(self.HOSTS)]
        for ns in [self.lb] + self.hosts:
            try:
                self.ip("netns", "add", ns)
            except AssertionError as e:
                if ns == self.lb:
                    self.skipTest("cannot create a network namespace: %s" % e)
                raise
            # deleted after everything that runs in it (cleanups run last-in first-out)
            self.addCleanup(subprocess.run, [IP, "netns", "del", ns], timeout=30,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.ip("-n", ns, "link", "set", "lo", "up")
        for i, ns in enumerate(self.hosts, 1):
            # a veth pair straight into the two namespaces: nothing on the host
            self.ip("link", "add", "h%d" % i, "netns", self.lb, "type", "veth",
                    "peer", "name", "lb", "netns", ns)
            self.ip("-n", self.lb, "addr", "add", "10.77.%d.1/24" % i, "dev", "h%d" % i)
            self.ip("-n", self.lb, "link", "set", "h%d" % i, "up")
            self.ip("-n", ns, "addr", "add", "10.77.%d.2/24" % i, "dev", "lb")
            self.ip("-n", ns, "link", "set", "lb", "up")

    def start_host(self, i):
        ns = self.hosts[i - 1]
        text = muxd_config("10.77.%d.2" % i, 8088, os.path.join(self.tmpdir, "ctl%d" % i),
                           "10.77.0.0/16", greeting="hello... muxd%d\n" % i)
        return self.start_muxd(text=text, name="muxd%d.conf" % i,
                               wrapper=[IP, "netns", "exec", ns])

    def muxctl(self, i, *args):
        p = subprocess.run([mt.MUXCTL, "-s", os.path.join(self.tmpdir, "ctl%d" % i)] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=30)
        if p.returncode != 0:
            self.fail("muxctl %s: %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.stdout

    def wait_state(self, server, state, timeout):
        """Wait until HAProxy's operational state of server is state; the
        seconds it took (polled every 10 ms)."""
        t0 = time.monotonic()
        self.wait_for(lambda: haproxy_states(self.stats).get(server) == state, timeout,
                      "HAProxy to mark %s %s" % (server, {0: "DOWN", 2: "UP"}.get(state, state)),
                      interval=0.01)
        return time.monotonic() - t0

    def test_scale_out(self):
        if not mt.MUXCTL:
            self.fail("MUXCTL is not set")
        self.make_namespaces()
        muxds = [self.start_host(i) for i in range(1, self.HOSTS + 1)]
        self.stats = os.path.join(self.tmpdir, "haproxy.sock")
        cfg = os.path.join(self.tmpdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config("127.0.0.1:8088", [("10.77.%d.2" % i, 8088)
                                                     for i in range(1, self.HOSTS + 1)],
                                   self.stats))
        hap = Proc(self, [IP, "netns", "exec", self.lb, HAPROXY, "-f", cfg, "-db"], "haproxy")
        for i in range(1, self.HOSTS + 1):
            self.wait_state("muxd%d" % i, 2, 15)
        ns = NsSockets(self.lb)
        self.addCleanup(ns.close)
        load = Load(ns, "127.0.0.1", 8088, self.PERSISTENT, self.CHURN)
        self.addCleanup(load.finish)
        t_start = time.monotonic()

        def all_connected():
            snap = load.snapshot()
            return all(snap["current"]) and snap["roundtrips"] or None
        self.wait_for(all_connected, 15, "every persistent client to be served")
        time.sleep(1.0)     # load runs undisturbed for a second: a baseline
        snap = load.snapshot()
        self.assertEqual(snap["errors"], [], "errors with every host up")
        on = {h: [i for i, c in enumerate(snap["current"]) if c == h]
              for h in ("muxd%d" % i for i in range(1, self.HOSTS + 1))}
        for h, clients in on.items():
            self.assertTrue(clients, "no persistent client on %s (leastconn): %s" % (h, on))
        figures = []

        # (b) drain muxd3: HAProxy first (no new connection goes there), then
        # muxd itself (a balancer that was not told fails its checks).
        t_drain = time.monotonic()
        haproxy_cmd(self.stats, "set server muxd/muxd3 state drain")
        # HAProxy answers once the state is set: a connection begun before
        # that may still have been sent to muxd3
        t_routed = time.monotonic()
        self.muxctl(3, "drain", "lb")
        progress0 = load.snapshot()["progress"]
        drained_down = self.wait_state("muxd3", 0, 10)
        time.sleep(1.0)
        snap = load.snapshot()
        clients3 = json.loads(self.muxctl(3, "--json", "clients", "lb"))
        peers = {c["peer"].rsplit(":", 1)[0]: c.get("proxy") for c in clients3["clients"]}
        self.assertGreaterEqual(clients3["count"], len(on["muxd3"]), clients3)
        for i in on["muxd3"]:
            if HAVE_PROXY:
                # the real client, through the balancer's address on muxd3's link
                self.assertIn(Load.source(i), peers, clients3)
                self.assertRegex(peers[Load.source(i)] or "", r"^10\.77\.3\.1:\d+$", clients3)
        errors = [e for e in snap["errors"] if e[0] >= t_drain]
        self.assertEqual(errors, [], "errors while muxd3 was drained")
        new3 = [c for c in snap["churn"] if c[0] >= t_routed and c[1] == "muxd3"]
        self.assertEqual(new3, [], "new connections reached the drained muxd3")
        fresh = [c for c in snap["churn"] if c[0] >= t_routed]
        self.assertTrue(fresh, "no new connection during the drain")
        for i in on["muxd3"]:
            self.assertEqual(snap["current"][i], "muxd3")
            self.assertGreater(snap["progress"][i], progress0[i],
                               "client %d of the drained muxd3 was not served" % i)
        figures.append("drain muxd3: %d new connections served by muxd1/2 and none by muxd3, "
                       "its %d persistent clients still served (%d round trips since), 0 errors; "
                       "its health check failed %.2f s after muxctl drain"
                       % (len(fresh), len(on["muxd3"]),
                          sum(snap["progress"][i] - progress0[i] for i in on["muxd3"]), drained_down))
        # back in rotation
        self.muxctl(3, "undrain", "lb")
        haproxy_cmd(self.stats, "set server muxd/muxd3 state ready")
        self.wait_state("muxd3", 2, 15)

        # (a) kill -9 muxd1 under load
        snap = load.snapshot()
        victims = [i for i, c in enumerate(snap["current"]) if c == "muxd1"]
        self.assertTrue(victims, "no persistent client on muxd1")
        t_kill = time.monotonic()
        muxds[0].signal(signal.SIGKILL)
        self.assertIsNotNone(muxds[0].wait_exit(10))
        # gone, and its sockets with it: from now on HAProxy's connections
        # to it are refused (and redispatched); one opened before may have
        # been in its backlog, established, when it died
        t_dead = time.monotonic()
        t_down = self.wait_state("muxd1", 0, 10) + t_dead - t_kill
        t_after = time.monotonic()
        time.sleep(1.0)
        t_end = time.monotonic()
        hung = load.finish()
        self.assertEqual(hung, [], "client threads still running")
        snap = load.snapshot()
        for i in victims:
            later = [h for t, c, h in snap["sessions"] if c == i and t > t_kill]
            self.assertTrue(later, "client %d of the killed muxd1 was not served again" % i)
            self.assertNotIn("muxd1", later)
        # only connections muxd1 held when it died may fail: those it had
        # greeted, and those opened before it was gone (in its backlog)
        held = [e for e in snap["errors"] if e[4] >= t_kill and
                (e[2] == "muxd1" or (e[2] is None and e[0] < t_dead))]
        others = [e for e in snap["errors"] if e not in held]
        # (kill() returns before a busy muxd1 has stopped: a connection
        # opened in between may still be greeted by it; once it has exited,
        # none may reach it)
        late = [c for c in snap["churn"] if c[0] >= t_dead and c[1] == "muxd1"]
        self.assertEqual(late, [], "new connections reached the dead muxd1")
        self.assertLess(t_down, 5.0)
        served_after = [c for c in snap["churn"] if c[0] >= t_after and c[2] is None]
        failed_after = [c for c in snap["churn"] if c[0] >= t_after and c[2] is not None]
        self.assertEqual(failed_after, [], "connections failed after muxd1 was marked DOWN")
        self.assertTrue(served_after)
        self.assertEqual(others[:5], [], "%d errors that muxd1's death does not explain"
                         % len(others))
        total_rt = sum(snap["roundtrips"].values())
        churn_ok = sum(1 for c in snap["churn"] if c[2] is None)
        figures.append("kill -9 muxd1: marked DOWN by HAProxy after %.2f s; %d of its persistent "
                       "clients lost their connection and were served again by muxd2/3; "
                       "errors: %d, all connections muxd1 held (%d greeted, %d opened "
                       "before it was gone), none elsewhere"
                       % (t_down, len(victims), len(held),
                          sum(1 for e in held if e[2] == "muxd1"),
                          sum(1 for e in held if e[2] is None)))
        figures.append("whole run %.1f s: %d round trips (%s), %d new connections served, "
                       "%d failed, %d errors in all (all at muxd1's kill)"
                       % (t_end - t_start, total_rt,
                          ", ".join("%s %d" % kv for kv in sorted(snap["roundtrips"].items())),
                          churn_ok, len(snap["churn"]) - churn_ok, len(snap["errors"])))
        print("\n  " + "\n  ".join(figures))
        self.assertTrue(hap.running(), hap.output())


if __name__ == "__main__":
    mt.main()
