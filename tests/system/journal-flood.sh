# SPDX-License-Identifier: MIT
# A measurement, not a check: sourced by tests/system/run --flood SECS, in the
# container, with the package installed and muxd active. A oneshot listener
# (every message logged at info, to journald) is flooded with connections for
# SECS seconds by muxbench --connect-rate while a persistent echo client on
# another port measures its latency; the same client alone first gives the
# baseline. Prints "# flood: ..." lines: the client's p99 without and with
# the flood, muxd's CPU, the connections served, how many message entries
# journald kept, how many muxd dropped ("N log messages dropped" and the
# SIGUSR1 statistics) and how many journald suppressed (its rate limit).
# Uses cx, diag, poll, active and CONF from tests/system/run.

flood_secs=$1
cat >"$CONF" <<'EOF'
log_level = "info";
max_connections = 10000;
greeting = "hello...\n";
suffix = "hi...";
listen = (
        { port = 8088; },
        { port = 8090; mode = "oneshot"; }
);
EOF
cx systemctl restart muxd
poll 10 active muxd active || { echo "# flood: muxd did not restart"; return 0 2>/dev/null || exit 0; }
poll 10 cx sh -c 'ss -Hltn "sport = :8090" | grep -q .'
mpid=$(cx systemctl show -p MainPID --value muxd)
hz=$(cx getconf CLK_TCK)
cpu_ticks() { cx awk '{ print $14 + $15 }' "/proc/$mpid/stat"; }
base=$(cx muxbench -q --json -c 1 -d "$(( flood_secs / 3 + 1 ))" 127.0.0.1:8088)
since=$(cx date +%s)
t0=$(cpu_ticks)
cx sh -c "muxbench -q --json --connect-rate --oneshot -c 50 -d $flood_secs 127.0.0.1:8090 >/tmp/flood.json 2>/tmp/flood.err &"
during=$(cx muxbench -q --json -c 1 -d "$flood_secs" 127.0.0.1:8088)
poll 10 cx sh -c 'grep -q connections /tmp/flood.json'
t1=$(cpu_ticks)
flood=$(cx cat /tmp/flood.json)
cx systemctl kill -s USR1 --kill-whom=main muxd
sleep 2         # journald takes what waits (a measurement: nothing is asserted)
served=$(printf '%s' "$flood" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("completed", "?"))' 2>/dev/null)
kept=$(cx journalctl -u muxd --since "@$since" -o json --no-pager 2>/dev/null |
        python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if json.loads(l).get("MUXD_EVENT") == "message"))')
dropped=$(cx muxctl --json stats 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["log_messages_dropped"])' 2>/dev/null)
suppressed=$(cx journalctl --since "@$since" -o cat --no-pager 2>/dev/null |
        sed -n 's/^Suppressed \([0-9]*\) messages from muxd.service.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
p99() { printf '%s' "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lat_p99_us"])' 2>/dev/null; }
echo "# flood: ${flood_secs}s of oneshot connections (muxbench --connect-rate --oneshot -c 50) on 8090"
echo "# flood: persistent echo client on 8088: p99 $(p99 "$base") us alone, $(p99 "$during") us during the flood"
cps=$(printf '%s' "$flood" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("cps", "?"))' 2>/dev/null)
echo "# flood: muxd CPU $(( (t1 - t0) * 1000 / hz )) ms over ${flood_secs}s; connections served: ${served} (${cps}/s)"
echo "# flood: message entries kept by journald: $kept; dropped by muxd: ${dropped:-?}; suppressed by journald: $suppressed"
{ printf '%s\n' "$flood"; cx cat /tmp/flood.err; } | diag
