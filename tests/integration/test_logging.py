# SPDX-License-Identifier: MIT
"""Logging never stalls the event loop (issue: a full journal or stderr
pipe used to block the worker that logs, and every client of it with it).

For each backend: muxd logs every oneshot message at info to a stderr pipe
that nobody reads for a while. The oneshot clients are all served and
closed, a persistent client on another listener keeps getting its replies,
and once the pipe is read again muxd says how many lines it had to drop,
the same number its statistics count."""

import json
import os
import re
import subprocess

import muxdtest as mt

FLOOD = 1500                    # oneshot connections while stderr is not read
TEXT = b"x" * 500               # each logged as a line of about 540 bytes


class LoggingMixin:

    def start_two_listeners(self):
        self.ctl_path = os.path.join(self.tmpdir, "control")
        return self.start_muxd(control_socket=self.ctl_path, listen=[
            {"port": 0, "address": "127.0.0.1", "name": "echo"},
            {"port": 0, "address": "127.0.0.1", "name": "oneshot", "mode": "oneshot",
             "greeting": ""},
        ])

    def oneshot(self, port, i):
        s = mt.connect(port)
        try:
            s.sendall(b"%d %s\n" % (i, TEXT))
            mt.expect_eof(s, timeout=10, allow_reset=True)
        finally:
            s.close()

    def test_full_stderr_pipe_does_not_stall_clients(self):
        m = self.start_two_listeners()
        echo_port, oneshot_port = m.ports
        c = self.client(m, port=echo_port)
        self.roundtrip(c, b"before\n")

        m.pause_log_reading()
        for i in range(FLOOD):
            self.oneshot(oneshot_port, i)       # each closed by muxd within 10 s
            if i % 100 == 0:
                self.roundtrip(c, b"during %d\n" % i)
        self.roundtrip(c, b"after\n")

        m.resume_log_reading()
        _, match = m.wait_log(r"^muxd: warning: (\d+) log messages? dropped: the log output "
                              r"did not keep up$", timeout=10)
        dropped = int(match.group(1))
        self.assertGreater(dropped, 0)
        logged = [l for l in m.log_lines() if l.startswith("muxd: info: message from")]
        self.assertEqual(len(logged) + dropped, FLOOD, m.log_tail())
        # in order: the lines kept are a subsequence of the messages sent
        numbers = [int(re.search(r': "(\d+) ', l).group(1)) for l in logged]
        self.assertEqual(numbers, sorted(numbers))

        m.signal(mt.signal.SIGUSR1)
        _, match = m.wait_log(r"statistics: .*, (\d+) log messages dropped$", timeout=10)
        self.assertEqual(int(match.group(1)), dropped)
        # and in the statistics of muxctl (and /metrics)
        if mt.MUXCTL:
            p = subprocess.run([mt.MUXCTL, "-s", self.ctl_path, "--json", "stats"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(json.loads(p.stdout)["stats"]["log_messages_dropped"], dropped, p.stderr)
            p = subprocess.run([mt.MUXCTL, "-s", self.ctl_path, "stats", "--prometheus"],
                               capture_output=True, text=True, timeout=30)
            self.assertIn("muxd_log_messages_dropped_total %d\n" % dropped, p.stdout)
        self.assertAlive(m)


mt.for_each_backend(LoggingMixin)

if __name__ == "__main__":
    mt.main()
