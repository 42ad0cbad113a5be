# SPDX-License-Identifier: MIT
"""Garbage: random binary bytes (NUL, \\r without \\n, invalid UTF-8, every
byte value) and 1 MiB lines on every port of a config with three listeners:
line/echo, raw/echo and line/oneshot.

- line/echo: streams of random lines (random lengths, some over max_message)
  sent in random fragments, then a half-close; the reply stream must be
  exactly what the framing rules give (computed here by a model of them): a
  reply per line, the error line at the first oversized one and then EOF, the
  unterminated tail answered at EOF;
- raw/echo: random chunks, one at a time, each answered chunk + suffix;
- line/oneshot: one random message each, logged escaped (checked against the
  escaping rule), then EOF;
- 1 MiB lines on all three: the error line, then the connection is closed;
- a well-behaved client does round trips all along; muxd survives and logs
  no error."""

import random
import re
import select
import socket
import threading
import time

import stresslib as sl
from stresslib import mt

MAX_MESSAGE = 4096
RAW_SUFFIX = b"<raw>"
ONESHOT_GREETING = b"oneshot\n"
N_LINE_CLIENTS = 300
N_RAW_CLIENTS = 100
RAW_CHUNKS = 40
N_ONESHOT = 200
N_HUGE = 10                     # 1 MiB lines per port
HUGE = 1 << 20
THREADS = 6
INVALID_UTF8 = [b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80",
                b"\xe2\x82", b"\xf4\x90\x80\x80"]


def garbage(rng, n, newline=False):
    """n random bytes: a mix of uniform bytes, NULs, lone \\r, invalid UTF-8."""
    out = bytearray()
    while len(out) < n:
        r = rng.random()
        if r < 0.5:
            k = rng.randint(1, 16) if n < 65536 else 4096
            out += rng.getrandbits(8 * k).to_bytes(k, "little")
        elif r < 0.6:
            out += b"\0" * rng.randint(1, 4)
        elif r < 0.7:
            out += b"\r"
        elif r < 0.85:
            out += rng.choice(INVALID_UTF8)
        else:
            out += b"plain text "
    out = out[:n]
    if not newline:
        out = out.replace(b"\n", b"\r")
    return bytes(out)


def line_model(stream, max_message, suffix):
    """What muxd sends (after the greeting) for `stream` in line framing,
    followed by EOF (a half-close); True if it ends with the error line."""
    out = bytearray()
    pos = 0
    while True:
        nl = stream.find(b"\n", pos)
        if nl < 0:
            tail = stream[pos:]
            if not tail:
                return bytes(out), False
            if len(tail) > max_message:
                return bytes(out) + mt.TOO_LONG, True
            return bytes(out) + tail + suffix, False
        line = stream[pos:nl + 1]
        eol = 2 if line.endswith(b"\r\n") else 1
        if len(line) - eol > max_message:
            return bytes(out) + mt.TOO_LONG, True
        out += line[:-eol] + suffix + line[-eol:]
        pos = nl + 1


def escape(data, outsz=512):
    """muxd's escape_bytes() into a buffer of outsz bytes (util.c)."""
    limit = outsz - 1
    out, cut = [], 0
    pos = 0
    for c in data:
        if c == 0x0a:
            e = "\\n"
        elif c == 0x0d:
            e = "\\r"
        elif c == 0x09:
            e = "\\t"
        elif c == 0x5c:
            e = "\\\\"
        elif 0x20 <= c < 0x7f:
            e = chr(c)
        else:
            e = "\\x%02x" % c
        if pos + len(e) > limit:
            return "".join(out)[:cut] + "..."[:min(3, limit)]
        out.append(e)
        pos += len(e)
        if pos + 3 <= limit:
            cut = pos
    return "".join(out)


def exchange(port, data, fragments, rng, timeout=20.0):
    """Connect, send data in random fragments while reading, half-close,
    read until EOF.  Returns (received, bytes sent, reset seen): a reset
    after the error line counts as EOF (muxd may close while we still send)."""
    s = mt.connect(port, timeout=5)
    try:
        s.setblocking(False)
        got = bytearray()
        sent, shut, reset = 0, False, False
        deadline = sl.Deadline(timeout)
        while True:
            if deadline.passed():
                raise AssertionError("no EOF within %.0fs: sent %d of %d, got %d bytes"
                                     % (timeout, sent, len(data), len(got)))
            r, w, _ = select.select([s], [] if shut else [s], [], 0.5)
            if w and not shut:
                n = rng.choice(fragments)
                try:
                    sent += s.send(data[sent:sent + n])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    shut = reset = True     # muxd closed: read what came
                if sent == len(data) and not shut:
                    shut = True
                    try:
                        s.shutdown(socket.SHUT_WR)
                    except OSError:         # ENOTCONN: muxd closed and reset us
                        reset = True
            if r:
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    return bytes(got), sent, True
                if not chunk:
                    return bytes(got), sent, reset
                got += chunk
    finally:
        s.close()


@sl.for_backends()
class Garbage:

    def test_garbage_on_every_port(self):
        mt.raise_nofile(4096)
        m = self.start_muxd(max_connections=900, timeout=60, max_message=MAX_MESSAGE, listen=[
            {"port": 0, "address": "127.0.0.1", "name": "line-echo"},
            {"port": 0, "address": "127.0.0.1", "framing": "raw", "suffix": RAW_SUFFIX,
             "name": "raw-echo"},
            {"port": 0, "address": "127.0.0.1", "mode": "oneshot", "greeting": ONESHOT_GREETING,
             "name": "line-oneshot"}])
        p_line, p_raw, p_one = m.ports
        pacer = sl.Pacer(p_line, interval=0.01, tag=b"bystander")
        pacer.start()
        self.addCleanup(pacer.stop)
        base_fds = mt.num_fds(m.pid)
        cpu = sl.CpuMeter(m.pid)
        sampler = sl.Sampler(m.pid)
        sampler.start()
        self.addCleanup(sampler.stop)

        lock = threading.Lock()
        errors = []
        st = {"line_clients": 0, "line_bytes": 0, "line_replies": 0, "line_errors_expected": 0,
              "raw_chunks": 0, "raw_bytes": 0, "oneshot": 0, "huge": 0, "resets": 0}
        oneshot_expect = {}         # local port -> [expected escaped text, ...] (ports get reused)

        def add(k, n=1):
            with lock:
                st[k] += n

        def err(what):
            with lock:
                errors.append(what)

        def line_client(i):
            rng = random.Random(sl.SEED * 100003 + 1000 + i)
            lines = []
            for _ in range(rng.randint(5, 60)):
                n = rng.choice([0, 1, 2, rng.randint(3, 200), rng.randint(200, MAX_MESSAGE)])
                if rng.random() < 0.02:
                    n = rng.randint(MAX_MESSAGE + 1, 3 * MAX_MESSAGE)   # oversized
                if rng.random() < 0.01:
                    n = MAX_MESSAGE                                      # exactly the limit
                lines.append(garbage(rng, n) + rng.choice([b"\n", b"\r\n", b"\n", b"\r\r\n"]))
            tail = garbage(rng, rng.choice([0, 0, 5, 300]))
            stream = b"".join(lines) + tail
            want, too_long = line_model(stream, MAX_MESSAGE, mt.DEFAULT_SUFFIX)
            got, sent, reset = exchange(p_line, stream, [1, 7, 100, 1500, 65536], rng)
            want = mt.DEFAULT_GREETING + want
            if reset:
                add("resets")
            # muxd may close right after the error line and reset what we
            # still send; the error line is read before the reset all the same
            if got != want:
                k = next((j for j in range(min(len(got), len(want))) if got[j] != want[j]),
                         min(len(got), len(want)))
                err("line client %d: got %d bytes, expected %d (too long: %s, reset: %s); "
                    "first difference at %d: %r vs %r" % (i, len(got), len(want), too_long,
                                                         reset, k, got[k:k + 30], want[k:k + 30]))
                return
            add("line_clients")
            add("line_bytes", sent)
            add("line_replies", got.count(b"\n"))
            if too_long:
                add("line_errors_expected")

        def raw_client(i):
            rng = random.Random(sl.SEED * 100003 + 2000 + i)
            s = mt.connect(p_raw, timeout=5)
            try:
                g = mt.recv_exact(s, len(mt.DEFAULT_GREETING))
                if g != mt.DEFAULT_GREETING:
                    err("raw client %d: greeting %r" % (i, g))
                    return
                for k in range(RAW_CHUNKS):
                    chunk = garbage(rng, rng.randint(1, 1024), newline=True)
                    s.sendall(chunk)
                    got = mt.recv_exact(s, len(chunk) + len(RAW_SUFFIX), timeout=10)
                    if got != chunk + RAW_SUFFIX:
                        err("raw client %d chunk %d: got %r, expected %r"
                            % (i, k, got[:40], (chunk + RAW_SUFFIX)[:40]))
                        return
                    add("raw_chunks")
                    add("raw_bytes", len(chunk))
                s.shutdown(socket.SHUT_WR)
                rest = mt.recv_all(s, timeout=10)
                if rest:
                    err("raw client %d: %r after its half-close" % (i, rest[:40]))
            finally:
                s.close()

        def oneshot_client(i):
            rng = random.Random(sl.SEED * 100003 + 3000 + i)
            body = garbage(rng, rng.choice([0, 10, 100, 600, MAX_MESSAGE]))
            ending = rng.choice([b"\n", b"\r\n", b""])      # b"": the message ends at EOF
            extra = garbage(rng, 50, newline=True) if ending and rng.random() < 0.5 else b""
            s = mt.connect(p_one, timeout=5)
            try:
                # nothing at all before EOF is no message: nothing logged
                if body + ending:
                    with lock:
                        oneshot_expect.setdefault(s.getsockname()[1], []).append(
                            escape(body + ending))
                g = mt.recv_exact(s, len(ONESHOT_GREETING))
                if g != ONESHOT_GREETING:
                    err("oneshot client %d: greeting %r" % (i, g))
                    return
                s.sendall(body + ending + extra)
                if not ending:
                    s.shutdown(socket.SHUT_WR)
                rest = mt.recv_all(s, timeout=10, allow_reset=bool(extra))
                if rest:
                    err("oneshot client %d: got %r after its message" % (i, rest[:60]))
                    return
                add("oneshot")
            finally:
                s.close()

        def huge_client(i):
            rng = random.Random(sl.SEED * 100003 + 4000 + i)
            port, greeting = [(p_line, mt.DEFAULT_GREETING), (p_raw, mt.DEFAULT_GREETING),
                              (p_one, ONESHOT_GREETING)][i % 3]
            data = garbage(rng, HUGE) + b"\n"
            got, sent, reset = exchange(port, data, [65536, 1 << 20], rng)
            if got != greeting + mt.TOO_LONG:
                err("1 MiB line %d on port %d: got %r (reset: %s)" % (i, port, got[:80], reset))
                return
            add("huge")

        jobs = ([(line_client, i) for i in range(N_LINE_CLIENTS)]
                + [(raw_client, i) for i in range(N_RAW_CLIENTS)]
                + [(oneshot_client, i) for i in range(N_ONESHOT)]
                + [(huge_client, i) for i in range(3 * N_HUGE)])
        random.Random(sl.SEED).shuffle(jobs)

        def worker(k):
            for fn, i in jobs[k::THREADS]:
                try:
                    fn(i)
                except (AssertionError, OSError) as e:
                    err("%s %d: %r" % (fn.__name__, i, e))

        t0 = time.monotonic()
        workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(THREADS)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(120)
        elapsed = time.monotonic() - t0
        self.assertFalse([t for t in workers if t.is_alive()], "garbage clients hung")
        self.check_alive(m, "after the garbage")
        lat = pacer.take()
        rss_peak = sampler.stop()

        # Every oneshot message logged, escaped; no line of the log has a raw
        # control character; nothing logged at warning or above.
        rx = re.compile(r'^muxd: info: message from 127\.0\.0\.1:(\d+): "(.*)"$')
        n_want = sum(len(v) for v in oneshot_expect.values())

        def scan():
            out = {}
            for l in m.log_lines():
                mm = rx.match(l)
                if mm:
                    out.setdefault(int(mm.group(1)), []).append(mm.group(2))
            return out
        # muxd logs before it closes; our reader thread may lag behind a little
        d = sl.Deadline(5)
        logged = scan()
        while sum(len(v) for v in logged.values()) < n_want and not d.passed():
            time.sleep(0.05)
            logged = scan()
        bad_log = [l for l in m.log_lines() if re.search(r"[\x00-\x1f\x7f]", l)]
        loud = [l for l in m.log_lines() if l.startswith(("muxd: warning:", "muxd: err:"))]
        wrong_escape = [(p, logged.get(p), e) for p, e in oneshot_expect.items()
                        if logged.get(p) != e]
        wrong_escape += [(p, v, None) for p, v in logged.items() if p not in oneshot_expect]
        self.figure("seed %d, %.1fs, %d clients: line/echo %d clients, %d KiB of garbage, %d replies "
                    "verified (%d ended by the error line, %d reset after it); raw/echo %d "
                    "chunks (%d KiB) verified; oneshot %d messages, escaped log lines checked; "
                    "%d x 1 MiB lines answered by the error line",
                    sl.SEED, elapsed, len(jobs), st["line_clients"], st["line_bytes"] >> 10,
                    st["line_replies"], st["line_errors_expected"], st["resets"],
                    st["raw_chunks"], st["raw_bytes"] >> 10, st["oneshot"], st["huge"])
        self.figure("bystander: %s; muxd RSS peak %d KiB, CPU %.2fs",
                    sl.lat_summary(lat), rss_peak, cpu.seconds())
        self.assertEqual(errors, [])
        self.assertEqual(wrong_escape[:5], [], "oneshot messages logged wrongly "
                         "(port, logged, expected)")
        self.assertEqual(bad_log, [])
        self.assertEqual(loud, [])
        self.assertEqual(st["line_clients"], N_LINE_CLIENTS)
        self.assertEqual(st["oneshot"], N_ONESHOT)
        self.assertEqual(st["huge"], 3 * N_HUGE)
        self.assertIsNone(pacer.error)
        self.assertLess(max(lat), 1.0)
        self.assertIsNone(pacer.stop())
        self.fds_settle(m, base_fds - 1, what="descriptors after the garbage")
        self.roundtrip(self.client(m, port=p_line), b"clean line\n")


if __name__ == "__main__":
    mt.main()
