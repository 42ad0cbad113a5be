#!/bin/bash
# side by side: the same muxd, three listeners (off, v1, v2), rounds in rotating order
W=/work/wt-proxy; PID=$(cat muxd.pid)
for rep in 1 2 3 4 5; do
  case $rep in 1|4) order="off v1 v2";; 2|5) order="v1 v2 off";; 3) order="v2 off v1";; esac
  for v in $order; do
    case $v in off) a="127.0.0.1:19301";; v1) a="127.0.0.1:19302 --proxy v1";; v2) a="127.0.0.1:19303 --proxy v2";; esac
    $W/muxbench $a --connect-rate -c 50 -d 5 -w 1 --round-trips 1 -q --json --pid $PID | jq -c --arg v $v --arg r $rep '{v:$v, rep:$r, cps:(.cps|floor), cpu:.server_cpu_us_per_conn, sleeps:.server_sleeps_per_conn, p99:.lat_p99_us, errors:(.connect_errors+.exchange_errors+.early_closes+.wrong_replies)}'
    sleep 0.5
  done
done
