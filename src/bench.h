/* SPDX-License-Identifier: MIT */
/* muxbench's state, the one struct its modules share: the options
 * (muxbench.c sets them), what the run keeps (bench-request.c, bench-conn.c,
 * bench-loop.c) and the results (bench-report.c prints them). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench-errno.h"
#include "bench-hist.h"
#include "bench-proc.h"
#include "bench-srcaddr.h"
#include "util.h"

enum phase {
        PHASE_CONNECT,
        PHASE_WARMUP,
        PHASE_MEASURE,
        PHASE_DONE,
};

struct conn;    /* bench-conn.c's */
struct churn;   /* bench-churn.c's */

/* What connection mode counts (bench-churn.c); the exchanges completed in
 * the window are its histogram's count. */
struct churn_stats {
        uint64_t completed;             /* exchanges completed, warm-up included */
        uint64_t completed_at_tick;
        uint64_t round_trips;           /* replies right within the window */
        uint64_t early_closes;          /* server closed before the greeting or reply */
        struct errcount connect_errors; /* socket(), bind(), connect() */
        struct errcount exchange_errors;/* after the connect: resets, timeouts */
};

struct bench {
        /* options */
        char *target;
        unsigned n_conns;
        double duration, warmup;
        unsigned size;
        unsigned depth;
        bool size_set;
        char *greeting;
        size_t greeting_len;
        char *suffix;
        size_t suffix_len;
        char *request;          /* fixed request (--request); NULL: generated */
        size_t request_len;
        char *reply;            /* fixed reply (--reply, or derived from --request) */
        size_t reply_len;
        long server_pid;        /* 0: none */
        bool json;
        bool idle;
        bool quiet;
        /* connection mode (--connect-rate): a connection per exchange */
        bool churn;
        bool oneshot;           /* send one message, wait for the server's close */
        bool rst;               /* close with RST (SO_LINGER 0) */
        unsigned proxy;         /* 0, or 1 / 2: send a PROXY protocol header of that
                                 * version first, naming a made-up client */
        unsigned round_trips;
        char *source_spec;      /* --source-addrs; NULL: the default */

        /* run */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char addr_str[SOCKADDR_STR_MAX];
        int epfd;
        struct conn *conns;
        struct churn *churn_run;        /* connection mode's slots instead */
        struct srcaddr_list sources;
        uint64_t *send_ns;      /* n_conns * depth send times, a ring per connection */
        unsigned next_open;     /* next connection to open */
        unsigned handshaking;   /* connecting + awaiting greeting/handshake */
        unsigned ready;         /* connections in CONN_READY */
        unsigned open;          /* connections with a descriptor */
        char *rbuf;
        char *wbuf;             /* requests being built, depth of them */
        char *expect;           /* expected reply being compared */
        size_t body_len;        /* generated request: bytes before the "\n" */
        char *body;             /* a body template, padding included */
        bool reply_resync;      /* the reply ends with '\n': a wrong one can be skipped */
        bool progress;          /* a \r progress line on stderr */

        enum phase phase;
        uint64_t phase_end_ns;
        uint64_t measure_start_ns, measure_end_ns;
        uint64_t next_tick_ns;
        uint64_t replies_total, replies_at_tick;
        struct proc_sample server_start, server_end;    /* of the measured window */

        /* results */
        struct histogram hist;
        uint64_t wrong_replies;         /* wrong greetings included */
        uint64_t wrong_greetings;
        uint64_t connect_errors;
        uint64_t disconnects;
        int first_connect_errno;
        int first_disconnect_errno;
        struct churn_stats cs;
};

/* SIGINT or SIGTERM came (muxbench.c's handler): the run ends, and the
 * report covers what was measured. */
extern volatile sig_atomic_t bench_interrupted;

static inline bool bench_measuring(const struct bench *b)
{
        return b->phase == PHASE_MEASURE;
}
