# SPDX-License-Identifier: MIT
"""preserve_connections: crash survival through systemd's fd store, without
systemd.  FdStore below plays systemd's part: a NOTIFY_SOCKET that keeps the
descriptors sent with FDSTORE=1 (SCM_RIGHTS) under their FDNAME=, drops them
on FDSTOREREMOVE=1, and passes them back, next to the listening socket, as
LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID when muxd is started again after a
kill -9 (as Restart=on-failure does)."""

import array
import json
import os
import socket
import sys
import subprocess
import threading
import time

import muxdtest as mt

N_CLIENTS = 200
N_HALF = 20     # of those, clients in the middle of a line when muxd dies


class FdStore:
    """systemd's notify socket and fd store (FileDescriptorStoreMax= unbounded)."""

    def __init__(self, directory):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.address = os.path.join(directory, "fdstore-notify.sock")
        self.sock.bind(self.address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.store = {}         # name -> [fd, ...] (systemd keeps duplicates too)
        self.messages = []
        self.fdstore_messages = 0
        self.ignore_remove = False      # as if every FDSTOREREMOVE=1 were lost
        self.held = threading.Event()   # set: nothing read (a manager busy elsewhere)
        self.cond = threading.Condition()
        self.closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        self.sock.settimeout(0.1)
        while not self.closed:
            if self.held.is_set():
                time.sleep(0.01)
                continue
            fds = array.array("i")
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
            except socket.timeout:
                continue
            except OSError:
                break
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
            fields = dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l)
            with self.cond:
                self.messages.append(fields)
                if fields.get("FDSTORE") == "1" or fields.get("FDSTOREREMOVE") == "1":
                    self.fdstore_messages += 1
                if fields.get("FDSTORE") == "1" and fds:
                    assert fields.get("FDPOLL") == "0", fields
                    self.store.setdefault(fields.get("FDNAME", "stored"), []).extend(fds)
                    fds = []
                elif fields.get("FDSTOREREMOVE") == "1" and not self.ignore_remove:
                    for fd in self.store.pop(fields.get("FDNAME"), []):
                        os.close(fd)
                for fd in fds:
                    os.close(fd)
                self.cond.notify_all()

    def count(self):
        with self.cond:
            return sum(len(v) for v in self.store.values())

    def items(self):
        """[(name, fd)] of everything stored."""
        with self.cond:
            return [(n, fd) for n, fds in self.store.items() for fd in fds]

    def close(self):
        self.closed = True
        self._thread.join(timeout=5)
        self.sock.close()
        for fds in self.store.values():
            for fd in fds:
                os.close(fd)
        self.store = {}


class PreserveMixin:

    def fdstore(self):
        st = FdStore(self.tmpdir)
        self.addCleanup(st.close)      # after muxd has stopped (cleanups run in reverse)
        return st

    def listener(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(512)
        self.addCleanup(s.close)
        return s

    def start(self, store, lsock, preserve=True, wait_ready=True):
        """muxd as systemd starts it: lsock ("main") and every stored
        descriptor passed, NOTIFY_SOCKET the store's."""
        items = store.items()
        socks = [lsock.fileno()] + [fd for _, fd in items]
        names = ["main"] + [n for n, _ in items]
        env = {"NOTIFY_SOCKET": store.address, "LISTEN_FDS": str(len(socks)),
               "LISTEN_FDNAMES": ":".join(names)}
        self.ctl_path = os.path.join(self.tmpdir, "control")
        return self.start_muxd(env=env, pass_fds=socks, pid_env=["LISTEN_PID"],
                               wait_ready=wait_ready, preserve_connections=preserve,
                               control_socket=self.ctl_path,
                               max_connections=1000, rlimit_nofile=4096,
                               listen=[{"port": lsock.getsockname()[1], "address": "127.0.0.1",
                                        "name": "main"}])

    def fd_store_stats(self):
        """The fd_store counters of muxctl stats."""
        p = subprocess.run([mt.MUXCTL, "-s", self.ctl_path, "-t", "30", "--json", "stats"],
                           capture_output=True, text=True, timeout=mt.scaled(60))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return json.loads(p.stdout)["stats"]["fd_store"]

    def clients(self, m, port, n):
        out = []
        for i in range(n):
            s = self.client(m, port=port)
            out.append(s)
        return out

    def test_crash_restart_serves_every_connection(self):
        store = self.fdstore()
        lsock = self.listener()
        port = lsock.getsockname()[1]
        m = self.start(store, lsock)
        cs = self.clients(m, port, N_CLIENTS)
        for i, s in enumerate(cs):
            self.roundtrip(s, b"before-%d\n" % i)
        self.wait_for(lambda: store.count() == N_CLIENTS, 10, "%d connections stored (%d; %s)" % (N_CLIENTS, store.count(), m.log_tail()))
        names = set(n for n, _ in store.items())
        self.assertEqual(len(names), N_CLIENTS)
        self.assertTrue(all(n.startswith("c-") for n in names), names)
        # some clients in the middle of a line: what muxd read of it dies with it
        for s in cs[:N_HALF]:
            s.sendall(b"half-")
        m.kill()        # kill -9: no goodbye
        t0 = time.monotonic()
        m2 = self.start(store, lsock)
        m2.wait_log(r"^muxd: notice: retook %d connections from systemd's fd store \(0 closed"
                    % N_CLIENTS, timeout=10)
        ok, lost_half = 0, 0
        for i, s in enumerate(cs):
            tag = b"after-%d\n" % i
            s.sendall(tag)
            if i < N_HALF:
                # either muxd had not read "half-" yet (the kernel kept it),
                # or it had and the crash lost it: both are answered
                reply = mt.recv_until(s, b"\n", timeout=10)
                self.assertIn(reply, (mt.echo_reply(b"half-" + tag), mt.echo_reply(tag)))
                lost_half += reply == mt.echo_reply(tag)
            else:
                self.assertRecv(s, mt.echo_reply(tag), timeout=10)
            ok += 1
        self.assertGreaterEqual(ok, N_CLIENTS * 999 // 1000)
        sys.stderr.write("\n  [%s] %d of %d clients answered after kill -9 and restart, %.0f ms from the "
                         "kill to the last answer; %d of %d half lines lost with the crash ... " % (
                             self.backend, ok, N_CLIENTS, (time.monotonic() - t0) * 1000, lost_half, N_HALF))
        # still stored under the same names: a second crash loses nothing either
        self.assertEqual(set(n for n, _ in store.items()), names)
        # a client that leaves is removed from the store
        cs[0].close()
        self.wait_for(lambda: store.count() == N_CLIENTS - 1, 10, "the closed client removed")
        # second crash, fresh clients too
        extra = self.client(m2, port=port)
        self.wait_for(lambda: store.count() == N_CLIENTS, 10, "the new client stored")
        m2.kill()
        m3 = self.start(store, lsock)
        m3.wait_log(r"^muxd: notice: retook %d connections" % N_CLIENTS, timeout=10)
        self.roundtrip(extra, b"again\n", timeout=10)
        for i, s in enumerate(cs[1:], 1):
            self.roundtrip(s, b"third-%d\n" % i, timeout=10)
        # a clean stop drains the clients and empties the store
        self.assertEqual(m3.stop(), 0)
        self.wait_for(lambda: store.count() == 0, 10, "the store emptied on a clean stop")
        for s in cs[1:] + [extra]:
            mt.recv_all(s, timeout=10, allow_reset=True)    # each sees its end: none hangs

    def test_burst_while_the_manager_reads_late(self):
        # systemd reads its notify socket slower the more it stores, and the
        # socket queues few datagrams (net.unix.max_dgram_qlen): a burst of
        # connections waits in muxd's queue, every one of them, however many
        # (more than the 512 per worker that muxd once held, then dropped).
        n = 1000        # as many as select watches (FD_SETSIZE)
        store = self.fdstore()
        lsock = self.listener()
        port = lsock.getsockname()[1]
        m = self.start(store, lsock)
        store.held.set()
        cs = self.clients(m, port, n)
        self.roundtrip(cs[-1], b"served while the stores wait\n")
        store.held.clear()
        self.wait_for(lambda: store.count() == n, 30, "%d connections stored" % n)
        self.assertEqual(self.fd_store_stats(), {"stored": n, "not_preserved": 0, "remove_failed": 0,
                                                 "retaken": 0})
        m.kill()
        m2 = self.start(store, lsock)
        m2.wait_log(r"^muxd: notice: retook %d connections from systemd's fd store \(0 closed" % n,
                    timeout=30)
        for i in (0, n // 2, n - 1):
            self.roundtrip(cs[i], b"after-%d\n" % i, timeout=10)
        # retaken, not stored again (they are, under the names they have)
        self.assertEqual(self.fd_store_stats(), {"stored": 0, "not_preserved": 0, "remove_failed": 0,
                                                 "retaken": n})
        self.assertEqual(m2.stop(), 0)
        for s in cs:
            s.close()

    def test_client_gone_while_muxd_was_down(self):
        store = self.fdstore()
        lsock = self.listener()
        port = lsock.getsockname()[1]
        m = self.start(store, lsock)
        a, b = self.clients(m, port, 2)
        self.wait_for(lambda: store.count() == 2, 10, "2 connections stored")
        m.kill()
        a.close()       # while nobody serves it: its socket ends in the store
        m2 = self.start(store, lsock)
        self.roundtrip(b, b"still here\n", timeout=10)
        # the one whose client left is closed and removed on its first read
        self.wait_for(lambda: store.count() == 1, 10, "the departed client removed")
        self.assertEqual(m2.stop(), 0)
        self.wait_for(lambda: store.count() == 0, 10, "the store emptied")

    def test_listener_gone_closes_with_a_log_line(self):
        store = self.fdstore()
        lsock = self.listener()
        other = self.listener()
        port = lsock.getsockname()[1]
        m = self.start(store, lsock)
        c = self.client(m, port=port)
        self.wait_for(lambda: store.count() == 1, 10, "stored")
        m.kill()
        # started again with another listener only: the connection's is gone
        m2 = self.start(store, other)
        m2.wait_log(r'^muxd: notice: closing connection "c-\d+" from systemd\'s fd store: no listener',
                    timeout=10)
        mt.recv_all(c, timeout=10, allow_reset=True)        # closed, not left hanging
        self.wait_for(lambda: store.count() == 0, 10, "removed from the store")
        self.assertEqual(m2.stop(), 0)

    def test_client_sees_the_end_although_the_store_holds_a_copy(self):
        store = self.fdstore()
        lsock = self.listener()
        m = self.start(store, lsock)
        c = self.client(m, port=lsock.getsockname()[1])
        self.wait_for(lambda: store.count() == 1, 10, "stored")
        store.ignore_remove = True
        self.assertEqual(m.stop(), 0)
        # muxd shut the socket down before closing it: EOF, not a hang
        mt.recv_all(c, timeout=10, allow_reset=True)
        self.assertEqual(store.count(), 1)

    def test_closed_client_the_store_still_holds_costs_nothing(self):
        # A removal systemd did not take (its queue full) leaves a copy in the
        # store after muxd closed the connection: muxd must not go on
        # watching that socket (with epoll, its registration would outlive
        # the close and report the closed peer in a busy loop).
        store = self.fdstore()
        lsock = self.listener()
        m = self.start(store, lsock)
        cs = self.clients(m, lsock.getsockname()[1], 20)
        self.wait_for(lambda: store.count() == 20, 10, "stored")
        store.ignore_remove = True
        for c in cs:
            c.close()
        removals = lambda: sum(1 for f in list(store.messages) if f.get("FDSTOREREMOVE") == "1")
        self.wait_for(lambda: removals() == 20, 10, "every connection closed (removal sent)")
        # a busy loop burns a whole CPU; an idle muxd next to nothing
        t0, cpu0 = time.monotonic(), mt.cpu_seconds(m.pid)
        time.sleep(1.0)         # the window measured, not a wait for a condition
        used = mt.cpu_seconds(m.pid) - cpu0
        self.assertLess(used, 0.5 * (time.monotonic() - t0),
                        "muxd used %.2f s of CPU in 1 s with no client" % used)
        self.assertEqual(store.count(), 20)

    def test_preserve_off_sends_nothing(self):
        store = self.fdstore()
        lsock = self.listener()
        port = lsock.getsockname()[1]
        m = self.start(store, lsock, preserve=False)
        for i, s in enumerate(self.clients(m, port, 10)):
            self.roundtrip(s, b"x%d\n" % i)
            s.close()
        self.assertEqual(m.stop(), 0)
        self.assertEqual(store.fdstore_messages, 0)
        self.assertEqual(store.count(), 0)


mt.for_each_backend(PreserveMixin)


if __name__ == "__main__":
    mt.main()
