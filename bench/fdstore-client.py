#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Clients for bench/fdstore-systemd, run inside the container.

  fdstore-client.py PORT SUFFIX DIR N [RATE]

Driven by files in DIR (written by bench/fdstore-systemd from outside), one
phase after the other; each phase prints one JSON line to stdout:
  connect: open N connections to 127.0.0.1:PORT (at most 256 connects in
           flight, so as not to overflow the backlog), read each greeting, do
           one round trip with a unique tag; RATE: at most RATE new
           connections per second (0, the default: as fast as they go);
           then DIR/connected.
  DIR/crash (contains the time of the kill -9, ns since the epoch): send the
           next message on every connection at once (muxd is dead or
           restarting: it waits in the socket) and wait for each reply. A
           client counts as answered (the right reply), wrong, closed (EOF or
           error) or hanging: no reply and no close within HANG seconds of
           DIR/retook (written once the restarted muxd logged "retook"), or
           within 60 s of the kill if that never comes. Then DIR/crashed.
  DIR/close: close every connection; then DIR/closed.
  DIR/reconnect: the connect phase again; then DIR/reconnected.
  DIR/drain: the server is being stopped: wait until every connection is
           closed (bounded by 60 s), count those that were not; exit.
The whole run is bounded by DIR/limit seconds (600 if absent)."""

import json
import os
import resource
import selectors
import socket
import sys
import time

HANG = 10.0


def now_ns():
    return time.time_ns()


def main():
    port, suffix, d, n = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3], int(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    limit = time.monotonic() + 600
    sel = selectors.DefaultSelector()

    def out(obj):
        print(json.dumps(obj), flush=True)

    def mark(name):
        with open(os.path.join(d, name), "w") as f:
            f.write("%d\n" % now_ns())

    def wait_file(name):
        p = os.path.join(d, name)
        while not os.path.exists(p):
            if time.monotonic() > limit:
                out({"error": "time limit waiting for " + name})
                sys.exit(1)
            time.sleep(0.02)
        with open(p) as f:
            return f.read().strip()

    def read_line(c):
        """Append what is readable to c["buf"]; return a complete line, b"" if
        none yet, None on EOF or error."""
        try:
            data = c["s"].recv(65536)
        except BlockingIOError:
            return b""
        except OSError:
            return None
        if not data:
            return None
        c["buf"] += data
        i = c["buf"].find(b"\n")
        if i < 0:
            return b""
        line, c["buf"] = c["buf"][:i + 1], c["buf"][i + 1:]
        return line

    def connect_all(tagbase):
        """Open n connections, each: greeting, then one round trip."""
        t0 = now_ns()
        start = time.monotonic()
        conns = []
        pending = 0      # connects in flight or waiting for greeting/reply
        i = 0
        errors = 0
        done = 0
        while done + errors < n:
            if time.monotonic() > limit:
                out({"error": "time limit while connecting", "done": done})
                sys.exit(1)
            while i < n and pending < 256 and (rate <= 0 or i < (time.monotonic() - start) * rate + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                c = {"s": s, "id": i, "buf": b"", "state": "greet", "tag": b"%s%d" % (tagbase, i)}
                sel.register(s, selectors.EVENT_READ, c)
                conns.append(c)
                i += 1
                pending += 1
            for key, _ in sel.select(0.01 if rate > 0 else 1.0):
                c = key.data
                line = read_line(c)
                if line == b"":
                    continue
                if line is None:
                    sel.unregister(c["s"]); c["s"].close(); c["state"] = "dead"
                    errors += 1; pending -= 1
                    continue
                if c["state"] == "greet":
                    c["state"] = "first"
                    c["s"].sendall(c["tag"] + b"\n")
                else:
                    if line != c["tag"] + suffix + b"\n":
                        errors += 1
                        c["state"] = "wrong"
                    else:
                        c["state"] = "idle"
                        done += 1
                    sel.unregister(c["s"])
                    pending -= 1
        return conns, {"connected": done, "connect_errors": errors,
                       "connect_s": (now_ns() - t0) / 1e9}

    conns, res = connect_all(b"a")
    out(dict(phase="connect", **res))
    mark("connected")

    # ---- crash: the next message on each connection, after the kill ----
    kill_ns = int(wait_file("crash"))
    live = [c for c in conns if c["state"] == "idle"]
    send_ns = now_ns()
    for c in live:
        c["tag"] = b"b%d" % c["id"]
        try:
            c["s"].sendall(c["tag"] + b"\n")
            c["state"] = "wait"
            sel.register(c["s"], selectors.EVENT_READ, c)
        except OSError:
            c["state"] = "closed"
    waiting = sum(1 for c in live if c["state"] == "wait")
    answered = wrong = closed = 0
    closed += len(live) - waiting
    last_ns = None
    delays = []
    hang_deadline = None
    abs_deadline = time.monotonic() + 60
    retook_p = os.path.join(d, "retook")
    while waiting > 0:
        t = time.monotonic()
        if hang_deadline is None and os.path.exists(retook_p):
            hang_deadline = t + HANG
        if t > (hang_deadline if hang_deadline is not None else abs_deadline) or t > limit:
            break
        for key, _ in sel.select(0.1):
            c = key.data
            line = read_line(c)
            if line == b"":
                continue
            sel.unregister(c["s"])
            waiting -= 1
            if line is None:
                c["state"] = "closed"; closed += 1
            elif line != c["tag"] + suffix + b"\n":
                c["state"] = "wrong"; wrong += 1
            else:
                c["state"] = "idle"; answered += 1
                last_ns = now_ns()
                delays.append((last_ns - kill_ns) / 1e9)
    hanging = waiting
    for c in live:
        if c["state"] == "wait":
            sel.unregister(c["s"])
            c["state"] = "hanging"
    delays.sort()
    out({"phase": "crash", "clients": len(live), "answered": answered, "wrong": wrong,
         "closed": closed, "hanging": hanging,
         "send_after_kill_s": (send_ns - kill_ns) / 1e9,
         "first_reply_after_kill_s": delays[0] if delays else None,
         "median_reply_after_kill_s": delays[len(delays) // 2] if delays else None,
         "last_reply_after_kill_s": delays[-1] if delays else None})
    mark("crashed")

    # ---- close every connection ----
    wait_file("close")
    t0 = now_ns()
    for c in conns:
        if c["state"] != "dead":
            c["s"].close()
            c["state"] = "dead"
    out({"phase": "close", "closed": len(conns), "close_s": (now_ns() - t0) / 1e9})
    mark("closed")

    # ---- connect again, then systemctl stop drains them ----
    wait_file("reconnect")
    conns, res = connect_all(b"c")
    out(dict(phase="reconnect", **res))
    mark("reconnected")
    wait_file("drain")
    open_ = 0
    for c in conns:
        if c["state"] == "idle":
            sel.register(c["s"], selectors.EVENT_READ, c)
            open_ += 1
    t0 = time.monotonic()
    while open_ > 0 and time.monotonic() - t0 < 60:
        for key, _ in sel.select(0.1):
            c = key.data
            line = read_line(c)
            if line is None:
                sel.unregister(c["s"]); c["s"].close(); c["state"] = "dead"
                open_ -= 1
    out({"phase": "drain", "still_open_after_60s": open_,
         "drain_s": time.monotonic() - t0})
    mark("drained")


if __name__ == "__main__":
    main()
