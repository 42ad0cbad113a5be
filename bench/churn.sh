# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2153 # SERVERS, REPS, ... are bench/run's
# Sourced by bench/run: the connection churn points and their report. Each
# muxbench slot (muxbench --connect-rate) connects, reads the greeting,
# makes one round trip (echo) or sends one message and waits for the
# server's close (oneshot: muxd's mode = "oneshot", bench/echo-floor
# --oneshot), closes, and starts again; client sockets are spread over
# 127.0.0.2-127.0.0.254, so the client's ports and TIME_WAIT sockets do not
# cap the rate. Redis: connect, PING, close (it has no oneshot mode).
# Uses bench/run's SERVERS, REPS, DUR, WARM, CHURN_SLOTS, OUT, WORK and its
# functions start_server, stop_server, bench, rotate, log.

CHURN_MODES="echo oneshot"

churn_args() {          # SERVER MODE
        case $1:$2 in
        # muxbench itself turns the \r\n escapes into bytes
        redis:*) printf '%s\n' '--no-greeting --request PING\r\n --reply +PONG\r\n' ;;
        *:oneshot) echo "--oneshot" ;;
        *) echo "--round-trips 1" ;;
        esac
}

churn_servers() {       # MODE -> the servers measured in that mode
        local s
        for s in $SERVERS; do
                [ "$s:$1" = redis:oneshot ] || printf '%s ' "$s"
        done
}

# Every point into churn.jsonl: one muxbench --json object per run, with the
# server, the mode and the round added. The servers of a mode run side by
# side, started in that mode, and take turns in a different order each round.
churn_measure() {
        local mode servers s c rep order json
        : >"$OUT/churn.jsonl"
        for mode in $CHURN_MODES; do
                servers=$(churn_servers "$mode")
                for s in $servers; do
                        start_server "$s" "$mode"
                done
                for rep in $(seq "$REPS"); do
                        # shellcheck disable=SC2086 # the list of words is meant to split
                        order=$(rotate $((rep - 1)) $servers)
                        for c in $CHURN_SLOTS; do
                                for s in $order; do
                                        # shellcheck disable=SC2046
                                        json=$(bench "$s" --connect-rate -c "$c" -d "$DUR" -w "$WARM" $(churn_args "$s" "$mode"))
                                        if [ -z "$json" ]; then
                                                log "churn $mode $s c=$c: muxbench gave no result"
                                                continue
                                        fi
                                        echo "$json" | jq -c --arg s "$s" --arg m "$mode" --argjson rep "$rep" \
                                                '. + {server: $s, churn: $m, rep: $rep}' >>"$OUT/churn.jsonl"
                                        echo "$json" | jq -r --arg s "$s" --arg m "$mode" --arg rep "$rep" \
                                                '"churn \($m) \($s) c=\(.connections) run \($rep): \(.cps|floor) connections/s, p99 \(.lat_p99_us) us, cpu \(.server_cpu_us_per_conn) us/connection, errors \(.connect_errors + .exchange_errors + .early_closes + .wrong_replies), retransmits \(.tcp_retrans)"' |
                                                while read -r line; do log "$line"; done
                                        sleep 0.3
                                done
                        done
                done
                for s in $servers; do
                        stop_server "$s"
                done
        done
}

# churn.csv: the median of each measure over the runs of a point.
churn_aggregate() {
        jq -s -r --arg order "$SERVERS" '
                def median: sort | .[(length - 1) / 2 | floor];
                def med(f): map(f) | map(select(. != null)) | if length > 0 then median else null end;
                ($order | split(" ")) as $o
                | group_by([.churn, .server, .connections])
                | map({server: .[0].server, mode: .[0].churn, c: .[0].connections, n: length,
                       cps: med(.cps), p50: med(.lat_p50_us), p99: med(.lat_p99_us),
                       p999: med(.lat_p999_us), cpu: med(.server_cpu_us_per_conn),
                       sleeps: med(.server_sleeps_per_conn),
                       cps_min: (map(.cps) | min), cps_max: (map(.cps) | max),
                       errors: (map(.connect_errors + .exchange_errors + .early_closes + .wrong_replies) | add)})
                | sort_by([.mode != "echo", (.server as $s | $o | index($s)), .c])
                | (["server","mode","slots","runs","cps","p50_us","p99_us","p999_us",
                    "server_cpu_us_per_conn","cps_min","cps_max","errors","server_sleeps_per_conn"] | join(",")),
                  (.[] | [.server, .mode, .c, .n, (.cps | floor), .p50, .p99, .p999,
                          (if .cpu == null then "" else (.cpu * 100 | round / 100) end),
                          (.cps_min | floor), (.cps_max | floor), .errors,
                          (if .sleeps == null then "" else (.sleeps * 1000 | round / 1000) end)]
                         | map(tostring) | join(","))
        ' "$OUT/churn.jsonl" >"$OUT/churn.csv"
}

# churn.png (connections/s and server CPU per connection) and
# churn-latency.png (p50, p99, p99.9 of the whole exchange), echo and oneshot.
churn_plots() {
        local s mode servers=""
        mkdir -p "$WORK/churn"
        for mode in $CHURN_MODES; do
                for s in $SERVERS; do
                        awk -F, -v s="$s" -v m="$mode" 'NR > 1 && $1 == s && $2 == m { print $3, $5, $6, $7, $8, $9 }' \
                                "$OUT/churn.csv" >"$WORK/churn/$s-$mode.dat"
                done
        done
        for s in $SERVERS; do
                [ -s "$WORK/churn/$s-echo.dat" ] || [ -s "$WORK/churn/$s-oneshot.dat" ] && servers="$servers $s"
        done
        cat >"$WORK/churn/plots.gp" <<GP
set terminal pngcairo noenhanced size 1400,900 font "sans,11"
set datafile separator " "
set logscale x
set xlabel "connection slots (concurrent connections)"
set grid
set key below
set xtics ("5" 5, "50" 50, "500" 500, "5000" 5000)
set xrange [30:800]
servers = "${servers# }"
exchange(m) = m eq "echo" ? "connect, greeting, 1 round trip, close (redis: PING)" : "connect, greeting, 1 message, server closes"
set output "$OUT/churn.png"
set multiplot layout 2,2 title "Connection churn, median of $REPS"
do for [mode in "echo oneshot"] {
        set title sprintf("%s: %s", mode, exchange(mode))
        set ylabel "connections/s"
        set yrange [0:*]
        plot for [i=1:words(servers)] sprintf("$WORK/churn/%s-%s.dat", word(servers, i), mode) \\
                using 1:2 with linespoints lw 2 pt 7 title word(servers, i)
}
do for [mode in "echo oneshot"] {
        set title sprintf("%s: server CPU per connection", mode)
        set ylabel "us"
        set yrange [0:*]
        plot for [i=1:words(servers)] sprintf("$WORK/churn/%s-%s.dat", word(servers, i), mode) \\
                using 1:6 with linespoints lw 2 pt 7 title word(servers, i)
}
unset multiplot
set output "$OUT/churn-latency.png"
set logscale y
set yrange [*:*]
set multiplot layout 2,3 title "Latency of the whole exchange (microseconds, log scale), median of $REPS"
do for [mode in "echo oneshot"] {
        do for [col=3:5] {
                set title sprintf("%s, %s", mode, col == 3 ? "p50" : col == 4 ? "p99" : "p99.9")
                set ylabel "us"
                plot for [i=1:words(servers)] sprintf("$WORK/churn/%s-%s.dat", word(servers, i), mode) \\
                        using 1:col with linespoints lw 2 pt 7 title word(servers, i)
        }
}
unset multiplot
GP
        gnuplot "$WORK/churn/plots.gp" 2>"$WORK/churn/gnuplot.err" || log "gnuplot failed: $(cat "$WORK/churn/gnuplot.err")"
}

# One row per (mode, slots), one column per server: cps | cpu | lat | sleeps.
churn_table() {
        awk -F, -v servers="$SERVERS" -v what="$1" '
                function thousands(n,   s) { s = sprintf("%d", n); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]([,]|$)/, ",&", s); return s }
                function us(v) { return v < 100 ? sprintf("%.1f", v) : sprintf("%d", v + 0.5) }
                NR > 1 {
                        key = $2 SUBSEP $3
                        if (!(key in seen)) { seen[key] = 1; rows[++nr] = key }
                        if (what == "cps") cell[key, $1] = thousands($5) ($4 > 1 ? " (" thousands($10) "–" thousands($11) ")" : "")
                        else if (what == "lat") cell[key, $1] = us($6) " / " us($7) " / " us($8)
                        else if (what == "cpu") cell[key, $1] = ($9 == "" ? "-" : sprintf("%.2f", $9))
                        else if (what == "sleeps") cell[key, $1] = ($13 == "" ? "-" : sprintf("%.3f", $13))
                        if ($12 > 0) cell[key, $1] = cell[key, $1] " (" $12 " errors)"
                }
                END {
                        n = split(servers, s, " ")
                        h = "| exchange | slots |"; d = "|---|---:|"
                        for (i = 1; i <= n; i++) { h = h " " s[i] " |"; d = d "---:|" }
                        print h; print d
                        for (r = 1; r <= nr; r++) {
                                split(rows[r], k, SUBSEP)
                                line = "| " k[1] " | " k[2] " |"
                                for (i = 1; i <= n; i++) line = line " " ((rows[r], s[i]) in cell ? cell[rows[r], s[i]] : "-") " |"
                                print line
                        }
                }' "$OUT/churn.csv"
}

churn_ratios() {
        awk -F, '
                function r(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
                NR > 1 {
                        key = $2 SUBSEP $3
                        if (!(key in seen)) { seen[key] = 1; rows[++nr] = key }
                        cps[key, $1] = $5; cpu[key, $1] = $9
                }
                END {
                        print "| exchange | slots | CPU/conn epoll ÷ floor | io_uring ÷ epoll | epoll ÷ redis | conn/s epoll ÷ floor | conn/s epoll ÷ redis | conn/s workers=2 ÷ 1 |"
                        print "|---|---:|---:|---:|---:|---:|---:|---:|"
                        for (i = 1; i <= nr; i++) {
                                k = rows[i]; split(k, f, SUBSEP)
                                e = "muxd-epoll"
                                printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2],
                                        r(cpu[k, e], cpu[k, "floor"]), r(cpu[k, "muxd-io_uring"], cpu[k, e]),
                                        r(cpu[k, e], cpu[k, "redis"]), r(cps[k, e], cps[k, "floor"]),
                                        r(cps[k, e], cps[k, "redis"]), r(cps[k, "muxd-epoll-w2"], cps[k, e])
                        }
                }' "$OUT/churn.csv"
}

# The churn sections of results.md.
churn_markdown() {
        echo "## Connection churn"
        echo
        echo "\`muxbench --connect-rate\`: each of the slots connects, reads the greeting, and"
        echo "then either makes one round trip and closes (**echo**; redis: \`PING\`, no"
        echo "greeting) or sends one message and waits for the server to close (**oneshot**:"
        echo "muxd's \`mode = \"oneshot\"\`, \`bench/echo-floor --oneshot\`; redis has no such"
        echo "mode), then starts again. Client sockets are bound in turn to 127.0.0.2 to"
        echo "127.0.0.254 (\`IP_BIND_ADDRESS_NO_PORT\`), so that the client's ports and"
        echo "TIME_WAIT sockets do not cap the rate. muxd runs with \`log_level = \"warning\"\`:"
        echo "the oneshot messages (logged at info) are not written, and the floor logs"
        echo "nothing either. Each point is the median of $REPS run(s) of ${WARM} s warm-up +"
        echo "${DUR} s measured; errors are connect errors, errors after the connect, early"
        echo "closes and wrong replies, summed over the runs."
        echo
        echo "### Connections/s"
        echo
        [ "$REPS" -le 1 ] || { echo "Median of the $REPS runs, (lowest–highest) after it."; echo; }
        churn_table cps
        echo
        echo "### Server CPU per connection (µs)"
        echo
        echo "The server's CPU time over the window (all its threads) divided by the"
        echo "exchanges completed in it."
        echo
        churn_table cpu
        echo
        echo "### Latency of the whole exchange, p50 / p99 / p99.9 (µs)"
        echo
        echo "From the client's \`socket()\` to the last byte of the reply (echo) or the"
        echo "server's close (oneshot)."
        echo
        churn_table lat
        echo
        echo "### Ratios (medians of this run)"
        echo
        echo "Below 1 is better for CPU per connection, above 1 for connections/s."
        echo
        churn_ratios
        echo
        if [ "$(awk -F, 'NR > 1 && $13 != "" { n++ } END { print n + 0 }' "$OUT/churn.csv")" -gt 0 ]; then
                echo "### Server sleeps per connection"
                echo
                churn_table sleeps
                echo
        fi
        echo "Plots: [churn.png](churn.png), [churn-latency.png](churn-latency.png)."
        echo "Raw runs: churn.jsonl; medians: churn.csv."
}
