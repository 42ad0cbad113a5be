#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Load for the system test's hand-overs: N clients doing round trips with
unique tags, H clients holding a half-sent line, on 127.0.0.1:PORT.

  load.py PORT SUFFIX DIR [--clients N] [--half H] [--think MS] [--limit S]

Writes DIR/ready once every client has its greeting and a first reply.
Runs until DIR/stop exists (bounded by --limit seconds): then the half-sent
lines are finished, each client does a last round trip and closes, and one
JSON document goes to stdout: connections closed by the server, wrong,
lost (no reply within 5 s) and duplicated replies, half lines completed,
round trips, and the longest reply delay, in total, between DIR/mark and
DIR/stop (the window the hand-overs happen in) and before DIR/mark (the
baseline: the same load without a hand-over). Exits 0 only if nothing was
closed, wrong, lost or duplicated and every half line was answered.
--expect-close: the server is being stopped; ends once every client is
closed, exits 0 if all were closed and nothing was wrong, lost (a client
left hanging) or duplicated."""

import argparse
import collections
import json
import os
import resource
import selectors
import socket
import sys
import time

REPLY_TIMEOUT = 5.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("suffix")
    ap.add_argument("dir")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--half", type=int, default=100)
    ap.add_argument("--think", type=float, default=100.0)
    ap.add_argument("--limit", type=float, default=300.0)
    ap.add_argument("--expect-close", action="store_true",
                    help="the server is stopped: end once every client is closed")
    a = ap.parse_args()
    need = a.clients + a.half + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(need, min(hard, need)), max(hard, need)))
    suffix = a.suffix.encode()
    think = a.think / 1000.0
    sel = selectors.DefaultSelector()
    st = collections.Counter()
    maxd = [0.0, 0.0, 0.0]          # longest delay: total, in the window, before it
    t0 = time.monotonic()
    # client state: [sock, idx, buf, greeted, expect, sent_at, seq, half]
    cl = []
    for i in range(a.clients + a.half):
        s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s.setblocking(False)
        c = [s, i, b"", False, None, 0.0, 0, i >= a.clients]
        cl.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    due = collections.deque()       # (time, client) of the next round trip
    in_window = False
    stopping = False
    ready = False
    last_check = 0.0

    def send(c, now):
        c[6] += 1
        tag = b"c%d-%d" % (c[1], c[6])
        c[4] = tag + suffix + b"\n"
        c[5] = now
        c[0].sendall(tag + b"\n")

    def closed(c, why):
        st[why] += 1
        sel.unregister(c[0])
        c[0].close()
        c[4] = None
        c[0] = None

    while True:
        now = time.monotonic()
        if now - last_check > 0.05:
            last_check = now
            if not in_window and os.path.exists(os.path.join(a.dir, "mark")):
                in_window = True
            if a.expect_close and all(c[0] is None for c in cl):
                break
            if os.path.exists(os.path.join(a.dir, "stop")) or now - t0 > a.limit:
                if now - t0 > a.limit:
                    st["limit"] += 1
                break
            for c in cl:            # lost replies
                if c[0] is not None and c[4] is not None and now - c[5] > REPLY_TIMEOUT:
                    closed(c, "lost")
            if not ready and all(c[0] is None or (c[3] and (c[7] or c[6] > 0)) for c in cl):
                ready = True
                open(os.path.join(a.dir, "ready"), "w").close()
        while due and due[0][0] <= now:
            c = due.popleft()[1]
            if c[0] is not None and c[4] is None:
                send(c, now)
        for key, _ in sel.select(0.01):
            c = key.data
            try:
                data = c[0].recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                if a.expect_close and c[4] is not None:
                    st["unanswered"] += 1   # sent, not read: the drain does not read
                closed(c, "closed")
                continue
            c[2] += data
            now = time.monotonic()
            while b"\n" in c[2]:
                line, c[2] = c[2].split(b"\n", 1)
                line += b"\n"
                if not c[3]:
                    c[3] = True
                    if c[7]:
                        c[0].sendall(b"h%d-first" % c[1])
                        c[5] = now
                    else:
                        send(c, now)
                    continue
                if c[4] is None:
                    st["duplicated"] += 1
                    continue
                if line != c[4]:
                    st["wrong"] += 1
                    print("wrong reply: %r, want %r" % (line, c[4]), file=sys.stderr)
                d = now - c[5]
                maxd[0] = max(maxd[0], d)
                if in_window:
                    maxd[1] = max(maxd[1], d)
                else:
                    maxd[2] = max(maxd[2], d)
                st["round_trips"] += 1
                c[4] = None
                due.append((now + think, c))
    def read_line(c):
        """The next whole line of c (blocking), with its newline."""
        while b"\n" not in c[2]:
            data = c[0].recv(65536)
            if not data:
                raise ConnectionError("closed")
            c[2] += data
        line, c[2] = c[2].split(b"\n", 1)
        return line + b"\n"

    # the end: finish the half lines, a last round trip each, close
    for c in cl:
        if c[0] is None:
            continue
        c[0].setblocking(True)
        c[0].settimeout(REPLY_TIMEOUT)
        try:
            if c[4] is not None:    # a reply still due
                if read_line(c) != c[4]:
                    st["wrong"] += 1
            if c[7]:
                c[0].sendall(b"-second\n")
                want = b"h%d-first-second" % c[1] + suffix + b"\n"
            else:
                tag = b"c%d-last" % c[1]
                c[0].sendall(tag + b"\n")
                want = tag + suffix + b"\n"
            line = read_line(c)
            if line != want:
                st["wrong"] += 1
                print("wrong reply: %r, want %r" % (line, want), file=sys.stderr)
            elif c[7]:
                st["half_completed"] += 1
            if c[2]:
                st["duplicated"] += 1
            c[0].close()
        except socket.timeout:
            st["lost"] += 1
        except (ConnectionError, OSError):
            st["closed"] += 1
    r = {k: st[k] for k in ("closed", "wrong", "lost", "duplicated", "limit",
                            "half_completed", "round_trips", "unanswered")}
    r.update(clients=a.clients, half=a.half, ready=ready,
             max_delay_ms=round(maxd[0] * 1000, 1),
             max_delay_window_ms=round(maxd[1] * 1000, 1),
             max_delay_before_ms=round(maxd[2] * 1000, 1))
    print(json.dumps(r))
    if a.expect_close:
        good = (ready and r["closed"] == a.clients + a.half
                and not (r["wrong"] or r["lost"] or r["duplicated"] or r["limit"]))
        sys.exit(0 if good else 1)
    good = (ready and not (r["closed"] or r["wrong"] or r["lost"] or r["duplicated"] or r["limit"])
            and r["half_completed"] == a.half)
    sys.exit(0 if good else 1)


if __name__ == "__main__":
    main()
