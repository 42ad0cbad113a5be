# SPDX-License-Identifier: MIT
# Shared by bench/run and bench/profile (sourced): a free loopback port,
# waiting until a server started in the background listens on it, and
# stopping what was started. The caller defines die() and PIDS (the
# background processes it started).

# A free loopback port below the ephemeral range, so no client socket takes it.
NEXT_PORT=$((20000 + RANDOM % 5000))
free_port() {           # -> PORT
        while [ -n "$(ss -Htan "sport = :$NEXT_PORT" 2>/dev/null)" ]; do
                NEXT_PORT=$((NEXT_PORT + 1))
        done
        PORT=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1))
}

wait_listening() {      # PORT PID NAME [LOGDIR]
        local i
        for i in $(seq 100); do
                kill -0 "$2" 2>/dev/null || die "$3 exited at start${4:+ (log in $4)}"
                [ -n "$(ss -Hltn "sport = :$1")" ] && return 0
                sleep 0.05
        done
        die "$3 does not listen on port $1"
}

stop_started() {        # kill and reap every process in PIDS
        local p
        for p in "${PIDS[@]}"; do
                kill "$p" 2>/dev/null || true
        done
        for p in "${PIDS[@]}"; do
                wait "$p" 2>/dev/null || true
        done
}
