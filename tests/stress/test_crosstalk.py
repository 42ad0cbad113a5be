# SPDX-License-Identifier: MIT
"""Cross-talk: no client ever gets another client's bytes, and no client's
bytes are taken by another connection, under connection churn, idle
timeouts and errors, with `workers = 2`.

A descriptor number muxd closes is reused by the very next accept (the
lowest free number), in this worker or the other one.  Should an operation
of the closed connection still name that number (say, on io_uring, a send
or a receive queued in the same pass and submitted after the close), it acts
on the new client's socket: a reply sent to the wrong client, or a client's
bytes taken by a dead connection.  This test makes many connections end
while replies to them are being queued, with new ones accepted all along,
and checks every byte every client gets.

N_SLOTS client threads run for CHURN_SECONDS, each one client after
another, every client with a tag of its own (`c0001234`) in every message:

- talker:   1-8 rounds of 1-4 pipelined lines (some up to 1 KiB, some sent
            in fragments), every reply checked byte for byte against its
            own lines, in order; then it closes, half-closes (and must get
            EOF and nothing else), or resets after a last unread burst;
- idler:    a round trip or two, then silent: muxd must close it after
            `timeout` (TIMEOUT s); nothing at all may arrive meanwhile;
- resetter: sends a burst of lines and resets at once (SO_LINGER 0), so
            that muxd queues replies for a connection that dies in the same
            pass;
- vanisher: sends lines and half a line, then closes without reading (the
            kernel resets: the greeting is unread), or vanishes mid-line.

Every greeting and reply is exact for its own client; any byte that is not
is reported with the tag it carries (whose it was).  A talker that gets EOF
while waiting for a reply failed (its message was taken), unless it had
itself been silent for about `timeout` (a starved client thread: counted,
not failed).  Afterwards muxd is alive, its descriptors are back to what
they were, and a fresh client is served."""

import itertools
import random
import re
import socket
import struct
import threading
import time

import stresslib as sl
from stresslib import mt

TIMEOUT = 2                     # muxd's idle timeout, seconds
N_SLOTS = 240                   # client threads (so at most that many clients at once)
CHURN_SECONDS = 14.0
IDLE_SLACK = 3.0                # an idler must be closed within TIMEOUT + this
STARVED = TIMEOUT - 0.4         # a talker silent this long may be closed: not a failure
KINDS = (("talker", 40), ("idler", 12), ("resetter", 28), ("vanisher", 20))
TAG_RE = re.compile(rb"c\d{7}")
GREETING = mt.DEFAULT_GREETING
SUFFIX = mt.DEFAULT_SUFFIX


class Clients:
    """The client threads and what they found."""

    def __init__(self, port, seed):
        self.port = port
        self.seed = seed
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.kind_of = {}           # tag -> kind, to tell whose a stray byte was
        self.count = {k: 0 for k, _ in KINDS}
        self.stats = {"roundtrips": 0, "reply_bytes": 0, "idle_closed": 0, "starved": 0,
                      "half_closed": 0}
        self.idle_lifetimes = []
        self.failures = []
        self.stop = threading.Event()

    def add(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def fail(self, tag, what):
        with self.lock:
            self.failures.append("%s (%s): %s" % (tag.decode(), self.kind_of.get(tag, "?"), what))

    def whose(self, data):
        """The tags other clients' bytes in data carry, with their kinds."""
        with self.lock:
            return ", ".join(sorted({"%s (%s)" % (t.decode(), self.kind_of.get(t, "?"))
                                     for t in TAG_RE.findall(data)}))

    # ------------------------------------------------------------ one client

    def new_client(self, rng):
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        tag = b"c%07d" % next(self.ids)
        with self.lock:
            self.kind_of[tag] = kind
            self.count[kind] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", self.port))
            getattr(self, kind)(s, tag, rng)
        except (AssertionError, OSError) as e:
            self.fail(tag, repr(e))
        finally:
            s.close()

    def expect(self, s, tag, want, what, last_sent=None):
        """Read exactly want (the client's own next bytes) and compare."""
        got = bytearray()
        deadline = time.monotonic() + 10
        while len(got) < len(want):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(len(want) - len(got))
            except socket.timeout:
                raise AssertionError("%s: timed out after %d of %d bytes"
                                     % (what, len(got), len(want))) from None
            except ConnectionResetError:
                chunk = None
            if not chunk:
                if (last_sent is not None and len(got) == 0 and
                        time.monotonic() - last_sent[1] >= TIMEOUT and
                        last_sent[0] - last_sent[1] >= STARVED):
                    # this thread was silent about `timeout` before it sent:
                    # muxd closed an idle client, rightly
                    self.add("starved")
                    return False
                raise AssertionError("%s: %s after %d of %d bytes (got %r)"
                                     % (what, "reset" if chunk is None else "EOF",
                                        len(got), len(want), bytes(got)))
            got += chunk
            if not want.startswith(bytes(got)):
                break
        if bytes(got) != want:
            got += self.drain(s)
            raise AssertionError("%s: got %r, expected %r; foreign tags: %s"
                                 % (what, bytes(got[:300]), want[:300],
                                    self.whose(bytes(got).replace(tag, b"")) or "none"))
        self.add("reply_bytes", len(want))
        return True

    @staticmethod
    def drain(s):
        """Whatever else is there at once (for a failure's message)."""
        try:
            s.settimeout(0.05)
            return s.recv(4096)
        except OSError:
            return b""

    @staticmethod
    def reset(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def line(self, tag, k, rng):
        n = rng.choice((0, 0, 8, 40, 200, 1000))
        return b"%s %d %s\n" % (tag, k, b"x" * rng.randrange(n + 1))

    def talker(self, s, tag, rng):
        prev = time.monotonic()         # muxd's idle clock starts at the accept
        self.expect(s, tag, GREETING, "greeting")
        k = 0
        for _ in range(rng.randint(1, 8)):
            lines = [self.line(tag, k + j, rng) for j in range(rng.randint(1, 4))]
            k += len(lines)
            out = b"".join(lines)
            if rng.random() < 0.2:
                # in two parts, cut anywhere (mid-line too)
                cut = rng.randrange(1, len(out))
                s.sendall(out[:cut])
                time.sleep(rng.uniform(0, 0.02))
                s.sendall(out[cut:])
            else:
                s.sendall(out)
            now = time.monotonic()
            want = b"".join(mt.echo_reply(l, SUFFIX) for l in lines)
            if not self.expect(s, tag, want, "replies to lines %d-%d" % (k - len(lines), k - 1),
                               last_sent=(now, prev)):
                return
            self.add("roundtrips")
            prev = time.monotonic()
        end = rng.random()
        if end < 0.2:
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            try:
                rest = s.recv(4096)
            except ConnectionResetError:
                raise AssertionError("reset after a half-close") from None
            if rest:
                raise AssertionError("after a half-close: got %r, expected EOF; foreign "
                                     "tags: %s" % (rest[:300], self.whose(rest) or "none"))
            self.add("half_closed")
        elif end < 0.4:
            s.sendall(b"".join(self.line(tag, k + j, rng) for j in range(rng.randint(1, 6))))
            self.reset(s)

    def idler(self, s, tag, rng):
        self.expect(s, tag, GREETING, "greeting")
        for k in range(rng.randint(0, 2)):
            line = self.line(tag, k, rng)
            s.sendall(line)
            self.expect(s, tag, mt.echo_reply(line, SUFFIX), "reply to line %d" % k)
            self.add("roundtrips")
        quiet = time.monotonic()
        s.settimeout(TIMEOUT + IDLE_SLACK)
        try:
            data = s.recv(4096)
        except socket.timeout:
            raise AssertionError("silent for %.1fs and not closed (timeout = %d)"
                                 % (time.monotonic() - quiet, TIMEOUT)) from None
        except ConnectionResetError:
            raise AssertionError("reset while idle, after %.2fs" % (time.monotonic() - quiet)) \
                from None
        if data:
            data += self.drain(s)
            raise AssertionError("got %r while silent (%.2fs); foreign tags: %s"
                                 % (data[:300], time.monotonic() - quiet,
                                    self.whose(data) or "none"))
        with self.lock:
            self.stats["idle_closed"] += 1
            self.idle_lifetimes.append(time.monotonic() - quiet)

    def resetter(self, s, tag, rng):
        if rng.random() < 0.5:
            self.expect(s, tag, GREETING, "greeting")
        s.sendall(b"".join(self.line(tag, k, rng) for k in range(rng.randint(1, 20))))
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.003))
        self.reset(s)

    def vanisher(self, s, tag, rng):
        if rng.random() < 0.5:
            s.sendall(b"".join(self.line(tag, k, rng) for k in range(rng.randint(1, 10))))
        s.sendall(b"%s partial line, never finished" % tag)
        s.close()

    def slot(self, i):
        rng = random.Random(self.seed * 100003 + i)
        while not self.stop.is_set():
            self.new_client(rng)


@sl.for_backends()
class CrossTalk:

    def setUp(self):
        super().setUp()
        mt.raise_nofile(4096)

    def test_crosstalk(self):
        workers = max(2, int(mt.WORKERS or 0))
        m = self.start_muxd(workers=workers, timeout=TIMEOUT, max_connections=4 * N_SLOTS,
                            max_message=4096)
        base_fds = mt.num_fds(m.pid)
        warm = self.client(m)
        self.roundtrip(warm, b"warm-up\n")
        warm.close()
        ct = Clients(m.port, sl.SEED)
        cpu = sl.CpuMeter(m.pid)
        threads = [threading.Thread(target=ct.slot, args=(i,), daemon=True)
                   for i in range(N_SLOTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        deadline = sl.Deadline(CHURN_SECONDS)
        while not deadline.passed() and len(ct.failures) < 50 and m.running():
            time.sleep(0.1)
        ct.stop.set()
        for t in threads:
            t.join(TIMEOUT + IDLE_SLACK + 15)
        hung = sum(t.is_alive() for t in threads)
        elapsed = time.monotonic() - t0
        self.check_alive(m, "under churn")
        clients = sum(ct.count.values())
        self.figure("workers = %d, %d client threads, %d clients in %.1fs (%.0f/s): %s",
                    workers, N_SLOTS, clients, elapsed, clients / elapsed, ct.count)
        self.figure("%d round trips verified (%.1f MiB of replies), %d half-closes answered by "
                    "EOF, %d idlers closed by muxd (%s), %d talkers starved past the timeout",
                    ct.stats["roundtrips"], ct.stats["reply_bytes"] / 2**20,
                    ct.stats["half_closed"], ct.stats["idle_closed"],
                    sl.lat_summary(ct.idle_lifetimes), ct.stats["starved"])
        self.figure("%d failures; muxd CPU %.2fs", len(ct.failures), cpu.seconds())
        self.assertEqual(hung, 0, "client threads hung")
        if ct.failures:
            self.fail("%d client failures, the first ones:\n  %s\n%s"
                      % (len(ct.failures), "\n  ".join(ct.failures[:15]), m.log_tail(20)))
        self.assertGreater(ct.stats["idle_closed"], 0, "no idler was closed by muxd")
        self.assertGreater(ct.stats["roundtrips"], 1000, "too little traffic to tell")
        self.fds_settle(m, base_fds, timeout=15, what="descriptors after the churn")
        self.roundtrip(self.client(m), b"fresh after the churn\n")


if __name__ == "__main__":
    mt.main()
