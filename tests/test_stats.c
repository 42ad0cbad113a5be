/* SPDX-License-Identifier: MIT */
/* Unit tests for src/stats.c: summing the per-worker blocks, the registry
 * (order, folding removed listeners into the totals), the histograms'
 * buckets, and the three renderings (text, JSON, Prometheus) of a snapshot
 * made by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "testmain.h"

#include "stats.h"

static struct stats *st;

static int setup(void **state)
{
        (void) state;
        assert_int_equal(stats_new(3, &st), 0);
        return 0;
}

static int teardown(void **state)
{
        (void) state;
        stats_free(st);
        st = NULL;
        return 0;
}

/* A rendering as a string (freed at the next call). */
static char *rendered;

static const char *render(int (*fn)(const struct stats_snapshot *, struct buffer *),
                          const struct stats_snapshot *snap)
{
        struct buffer b = BUFFER_INIT;

        assert_int_equal(fn(snap, &b), 0);
        free(rendered);
        rendered = malloc(buffer_len(&b) + 1);
        assert_non_null(rendered);
        memcpy(rendered, buffer_head(&b), buffer_len(&b));
        rendered[buffer_len(&b)] = '\0';
        buffer_free(&b);
        return rendered;
}

static size_t count_of(const char *hay, const char *needle)
{
        size_t n = 0;

        for (const char *p = hay; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

/* The number at the end of the line that starts with prefix. */
static uint64_t value_of(const char *text, const char *prefix)
{
        const char *p = text;

        while (p && *p) {
                if (strncmp(p, prefix, strlen(prefix)) == 0)
                        return strtoull(p + strlen(prefix), NULL, 10);
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        fail_msg("no line starting with %s", prefix);
        return 0;
}

/* ---- counting and summing ---- */

static void test_blocks_are_summed(void **state)
{
        struct stats_listener *l;
        struct stats_counts c = { 0 };

        (void) state;
        assert_int_equal(stats_listener_new(st, &l), 0);
        assert_int_equal(l->n_blocks, 3);
        /* each on a cache line of its own */
        assert_int_equal((uintptr_t) &l->blocks[0] % 64, 0);
        assert_int_equal((uintptr_t) &l->blocks[1] % 64, 0);
        for (unsigned w = 0; w < 3; w++) {
                struct stats_block *b = stats_block(l, w);

                STATS_ADD(b, accepted, w + 1);          /* 1 + 2 + 3 */
                STATS_ADD(b, bytes_in, 100);
                STATS_ADD(b, refused[STATS_REFUSED_ACCESS], 1);
                STATS_ADD(b, queued, 10);
                stats_messages(b, 2, 1000);
        }
        STATS_SUB(stats_block(l, 2), queued, 10);
        stats_closed(stats_block(l, 1), STATS_CLOSED_IDLE, 1500);
        stats_closed(stats_block(l, 2), STATS_CLOSED_CLIENT, 20);
        stats_listener_read(l, &c);
        assert_int_equal(c.accepted, 6);
        assert_int_equal(c.clients, 4);
        assert_int_equal(c.bytes_in, 300);
        assert_int_equal(c.refused[STATS_REFUSED_ACCESS], 3);
        assert_int_equal(c.queued, 20);
        assert_int_equal(c.messages, 6);
        assert_int_equal(c.message_hist[0], 6);
        assert_int_equal(c.message_ns, 6000);
        assert_int_equal(c.closed[STATS_CLOSED_IDLE], 1);
        assert_int_equal(c.closed[STATS_CLOSED_CLIENT], 1);
        assert_int_equal(c.conn_ms, 1520);
        stats_listener_unref(l);
}

/* The clients gauge never goes below 0, per block. */
static void test_clients_per_block(void **state)
{
        struct stats_listener *l;
        struct stats_counts c = { 0 };

        (void) state;
        assert_int_equal(stats_listener_new(st, &l), 0);
        STATS_ADD(stats_block(l, 0), accepted, 5);
        stats_closed(stats_block(l, 0), STATS_CLOSED_CLIENT, 1);
        stats_closed(stats_block(l, 0), STATS_CLOSED_ERROR, 1);
        STATS_ADD(stats_block(l, 1), accepted, 1);
        stats_closed(stats_block(l, 1), STATS_CLOSED_SHUTDOWN, 1);
        stats_listener_read(l, &c);
        assert_int_equal(c.clients, 3);
        stats_listener_unref(l);
}

static void test_histogram_buckets(void **state)
{
        struct stats_listener *l;
        struct stats_counts c = { 0 };
        struct stats_block *b;

        (void) state;
        assert_int_equal(stats_listener_new(st, &l), 0);
        b = stats_block(l, 0);
        stats_messages(b, 1, 0);                /* le 0.000005 */
        stats_messages(b, 1, 5000);             /* le 0.000005: bounds are inclusive */
        stats_messages(b, 1, 5001);             /* le 0.00001 */
        stats_messages(b, 4, 1000000000);       /* le 1 */
        stats_messages(b, 1, 1000000001);       /* +Inf */
        stats_closed(b, STATS_CLOSED_CLIENT, 1);                /* le 0.001 */
        stats_closed(b, STATS_CLOSED_CLIENT, 2);                /* le 0.01 */
        stats_closed(b, STATS_CLOSED_CLIENT, 700000000);        /* +Inf: over a week */
        stats_listener_read(l, &c);
        assert_int_equal(c.message_hist[0], 2);
        assert_int_equal(c.message_hist[1], 1);
        assert_int_equal(c.message_hist[STATS_MESSAGE_BUCKETS - 1], 4);
        assert_int_equal(c.message_hist[STATS_MESSAGE_BUCKETS], 1);
        assert_int_equal(c.messages, 8);
        assert_int_equal(c.message_ns, 5000 + 5001 + 4000000000ull + 1000000001ull);
        assert_int_equal(c.conn_hist[0], 1);
        assert_int_equal(c.conn_hist[1], 1);
        assert_int_equal(c.conn_hist[STATS_CONNECTION_BUCKETS], 1);
        stats_listener_unref(l);
}

/* A listener gone for good: its counts move to the totals, which never go back. */
static void test_collect_folds_into_totals(void **state)
{
        struct stats_listener *a, *b;
        struct stats_counts before, after;

        (void) state;
        assert_int_equal(stats_listener_new(st, &a), 0);
        assert_int_equal(stats_listener_new(st, &b), 0);
        STATS_ADD(stats_block(a, 0), accepted, 7);
        STATS_ADD(stats_block(b, 1), accepted, 3);
        stats_closed(stats_block(a, 0), STATS_CLOSED_CLIENT, 5);
        stats_listener_ref(a);                  /* a connection's settings, say */
        stats_listener_unref(a);                /* the listener goes */
        stats_collect(st);
        assert_ptr_equal(st->first, a);         /* still referenced: kept */
        stats_total(st, &before);
        stats_listener_unref(a);                /* its last connection goes */
        stats_collect(st);
        assert_ptr_equal(st->first, b);
        assert_ptr_equal(st->last, b);
        stats_total(st, &after);
        assert_int_equal(after.accepted, 10);
        assert_int_equal(before.accepted, after.accepted);
        assert_int_equal(after.closed[STATS_CLOSED_CLIENT], 1);
        assert_int_equal(after.clients, 3);     /* b's, still open */
        stats_listener_unref(b);
}

static void test_move_keeps_listener_order(void **state)
{
        struct stats_listener *a, *b, *c;

        (void) state;
        assert_int_equal(stats_listener_new(st, &a), 0);
        assert_int_equal(stats_listener_new(st, &b), 0);
        assert_int_equal(stats_listener_new(st, &c), 0);
        stats_listener_move(st, c, NULL);       /* c a b */
        stats_listener_move(st, b, c);          /* c b a */
        stats_listener_move(st, b, c);          /* there already */
        assert_ptr_equal(st->first, c);
        assert_ptr_equal(c->next, b);
        assert_ptr_equal(b->next, a);
        assert_null(a->next);
        assert_ptr_equal(st->last, a);
        assert_ptr_equal(a->prev, b);
        assert_null(c->prev);
}

/* ---- renderings ---- */

static struct stats_listener_snapshot two[2];
static struct stats_snapshot snap;

static int setup_snapshot(void **state)
{
        (void) state;
        memset(two, 0, sizeof(two));
        two[0].label = (char *) "we\"ird\\name\nx";
        two[0].address = (char *) "127.0.0.1:7000";
        two[0].c.accepted = 5;
        two[0].c.clients = 2;
        two[0].c.closed[STATS_CLOSED_IDLE] = 3;
        two[0].c.refused[STATS_REFUSED_MAX_PER_SOURCE] = 4;
        two[0].c.messages = 10;
        two[0].c.bytes_in = 123;
        two[0].c.bytes_out = 456;
        two[0].c.message_hist[0] = 6;
        two[0].c.message_hist[3] = 3;
        two[0].c.message_hist[STATS_MESSAGE_BUCKETS] = 1;
        two[0].c.message_ns = 1500;
        two[0].c.conn_hist[4] = 3;
        two[0].c.conn_ms = 12345;
        two[1].label = (char *) "[::]:7001";
        two[1].address = (char *) "[::]:7001";
        two[1].c.pauses[STATS_PAUSE_DESCRIPTORS] = 2;
        snap = (struct stats_snapshot) {
                .version = "1.2.3", .backend = "epoll", .workers = 2, .max_connections = 100,
                .clients = 2, .start_time_s = 1700000000, .uptime_ms = 61500,
                .listeners = two, .n_listeners = 2,
        };
        snap.total = two[0].c;
        snap.total.accepted += 1;               /* a removed listener's */
        return 0;
}

static int teardown_snapshot(void **state)
{
        (void) state;
        free(rendered);
        rendered = NULL;
        return 0;
}

static void test_prometheus_families_once_and_escaped(void **state)
{
        const char *t;

        (void) state;
        t = render(stats_render_prometheus, &snap);
        assert_int_equal(count_of(t, "# TYPE muxd_connections_accepted_total counter\n"), 1);
        assert_int_equal(count_of(t, "# TYPE muxd_message_seconds histogram\n"), 1);
        assert_int_equal(count_of(t, "# TYPE muxd_clients gauge\n"), 1);
        assert_int_equal(count_of(t, "# HELP muxd_connections_refused_total "), 1);
        /* \, " and a line feed escaped in the label value */
        assert_int_equal(value_of(t, "muxd_connections_accepted_total{listener=\"we\\\"ird\\\\name\\nx\"} "), 5);
        assert_int_equal(value_of(t, "muxd_connections_accepted_total{listener=\"[::]:7001\"} "), 0);
        assert_int_equal(value_of(t, "muxd_connections_refused_total{listener=\"we\\\"ird\\\\name\\nx\",reason=\"max_per_source\"} "), 4);
        assert_int_equal(value_of(t, "muxd_connections_closed_total{listener=\"we\\\"ird\\\\name\\nx\",reason=\"idle\"} "), 3);
        assert_int_equal(value_of(t, "muxd_connections_closed_total{listener=\"we\\\"ird\\\\name\\nx\",reason=\"reload\"} "), 0);
        assert_int_equal(value_of(t, "muxd_accept_pauses_total{listener=\"[::]:7001\",reason=\"descriptors\"} "), 2);
        assert_int_equal(value_of(t, "muxd_clients{listener=\"we\\\"ird\\\\name\\nx\"} "), 2);
        assert_int_equal(value_of(t, "muxd_received_bytes_total{listener=\"we\\\"ird\\\\name\\nx\"} "), 123);
        assert_int_equal(value_of(t, "muxd_sent_bytes_total{listener=\"we\\\"ird\\\\name\\nx\"} "), 456);
        assert_non_null(strstr(t, "muxd_build_info{version=\"1.2.3\",backend=\"epoll\"} 1\n"));
        /* no raw line feed inside a label: every line is a comment or NAME{...} VALUE or NAME VALUE */
        for (const char *p = t; *p; p = strchr(p, '\n') + 1)
                assert_true(*p == '#' || strncmp(p, "muxd_", 5) == 0);
}

static void test_prometheus_histogram_is_cumulative(void **state)
{
        const char *pre = "muxd_message_seconds_bucket{listener=\"we\\\"ird\\\\name\\nx\",le=\"";
        const char *t;
        char line[256];

        (void) state;
        t = render(stats_render_prometheus, &snap);
        snprintf(line, sizeof(line), "%s0.000005\"} ", pre);
        assert_int_equal(value_of(t, line), 6);
        snprintf(line, sizeof(line), "%s0.00001\"} ", pre);
        assert_int_equal(value_of(t, line), 6);
        snprintf(line, sizeof(line), "%s0.00005\"} ", pre);
        assert_int_equal(value_of(t, line), 9);
        snprintf(line, sizeof(line), "%s1\"} ", pre);
        assert_int_equal(value_of(t, line), 9);
        snprintf(line, sizeof(line), "%s+Inf\"} ", pre);
        assert_int_equal(value_of(t, line), 10);
        assert_int_equal(value_of(t, "muxd_message_seconds_count{listener=\"we\\\"ird\\\\name\\nx\"} "), 10);
        assert_non_null(strstr(t, "muxd_message_seconds_sum{listener=\"we\\\"ird\\\\name\\nx\"} 0.000001500\n"));
        assert_non_null(strstr(t, "muxd_connection_seconds_sum{listener=\"we\\\"ird\\\\name\\nx\"} 12.345\n"));
        assert_int_equal(value_of(t, "muxd_connection_seconds_bucket{listener=\"we\\\"ird\\\\name\\nx\",le=\"1\"} "), 0);
        assert_int_equal(value_of(t, "muxd_connection_seconds_bucket{listener=\"we\\\"ird\\\\name\\nx\",le=\"10\"} "), 3);
        assert_int_equal(value_of(t, "muxd_connection_seconds_count{listener=\"[::]:7001\"} "), 0);
}

static void test_json(void **state)
{
        const char *t;

        (void) state;
        t = render(stats_render_json, &snap);
        assert_non_null(strstr(t, "{\"version\":\"1.2.3\",\"backend\":\"epoll\",\"workers\":2,"));
        assert_non_null(strstr(t, "\"uptime_seconds\":61.500,"));
        assert_non_null(strstr(t, "\"last_reload\":null,"));
        /* " and \ escaped, the line feed as \u000a */
        assert_non_null(strstr(t, "{\"listener\":\"we\\\"ird\\\\name\\u000ax\",\"address\":\"127.0.0.1:7000\","));
        assert_non_null(strstr(t, "\"refused\":{\"access\":0,\"max_per_source\":4,"));
        assert_non_null(strstr(t, "\"message_seconds\":{\"buckets\":[{\"le\":\"0.000005\",\"count\":6},"));
        assert_non_null(strstr(t, "{\"le\":\"+Inf\",\"count\":10}],\"sum\":0.000001500,\"count\":10}"));
        /* the total: the listeners' and a removed one's */
        assert_non_null(strstr(t, "\"total\":{\"clients\":2,\"accepted\":6,"));
        assert_int_equal(t[strlen(t) - 1], '\n');
        assert_int_equal(count_of(t, "{"), count_of(t, "}"));
        assert_int_equal(count_of(t, "["), count_of(t, "]"));
}

static void test_json_last_reload(void **state)
{
        const char *t;

        (void) state;
        snap.reloaded = true;
        snap.reload_ok = false;
        snap.reload_time_s = 1700000100;
        snap.reload_error = (char *) "/etc/muxd.conf:3: bad";
        t = render(stats_render_json, &snap);
        assert_non_null(strstr(t, "\"last_reload\":{\"ok\":false,\"time\":1700000100,\"error\":\"/etc/muxd.conf:3: bad\"}"));
        t = render(stats_render_prometheus, &snap);
        assert_int_equal(value_of(t, "muxd_last_reload_successful "), 0);
        assert_int_equal(value_of(t, "muxd_last_reload_timestamp_seconds "), 1700000100);
        t = render(stats_render_text, &snap);
        assert_non_null(strstr(t, "last reload: failed at "));
        assert_non_null(strstr(t, ": /etc/muxd.conf:3: bad\n"));
}

static void test_text(void **state)
{
        const char *t;

        (void) state;
        t = render(stats_render_text, &snap);
        assert_non_null(strstr(t, "muxd 1.2.3, backend epoll, 2 workers, up 61s, 2 clients (max_connections 100)\n"));
        assert_non_null(strstr(t, "\nlistener we\"ird\\name\nx (127.0.0.1:7000)\n"));
        assert_non_null(strstr(t, "\nlistener [::]:7001\n"));
        assert_non_null(strstr(t, "  refused    access 0, max_per_source 4, max_connections 0, descriptors 0, rate 0, "
                                 "sources_full 0, proxy_from 0, proxy_header 0\n"));
        assert_non_null(strstr(t, "  closed     client 0, idle 3, max_message 0, error 0, reload 0, shutdown 0, oneshot 0\n"));
        assert_non_null(strstr(t, "  paused     max_connections 0, descriptors 2\n"));
        /* 6 of 10 within 5 us, 9 within 50 us, one past 1 s */
        assert_non_null(strstr(t, "  service    10 messages, mean 0.000000150s, 50% <= 0.000005s, 99% > 1s\n"));
        assert_non_null(strstr(t, "  lifetime   3 connections, mean 4.115s, 50% <= 10s, 99% <= 10s\n"));
        assert_non_null(strstr(t, "\ntotal (every listener, removed ones included)\n"));
        assert_int_equal(count_of(t, "accepted"), 3);
}

/* The table of sources (max_sources) in each rendering. */
static void test_sources(void **state)
{
        const char *t;

        (void) state;
        snap.sources = 7;
        snap.max_sources = 65536;
        snap.sources_evicted = 3;
        t = render(stats_render_text, &snap);
        assert_non_null(strstr(t, "\nsources: 7 of max_sources 65536, 3 evicted\n"));
        t = render(stats_render_json, &snap);
        assert_non_null(strstr(t, ",\"sources\":7,\"max_sources\":65536,\"sources_evicted\":3,"));
        t = render(stats_render_prometheus, &snap);
        assert_int_equal(value_of(t, "muxd_sources "), 7);
        assert_int_equal(value_of(t, "muxd_max_sources "), 65536);
        assert_int_equal(value_of(t, "muxd_sources_evicted_total "), 3);
        assert_non_null(strstr(t, "# TYPE muxd_sources_evicted_total counter\n"));
}

/* Nothing to show still renders every family once, and parses. */
static void test_no_listeners(void **state)
{
        const char *t;

        (void) state;
        snap.n_listeners = 0;
        t = render(stats_render_prometheus, &snap);
        assert_int_equal(count_of(t, "# TYPE muxd_connections_accepted_total counter\n"), 1);
        assert_null(strstr(t, "listener=\""));
        t = render(stats_render_json, &snap);
        assert_non_null(strstr(t, "\"listeners\":[],\"total\":{"));
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_blocks_are_summed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clients_per_block, setup, teardown),
                cmocka_unit_test_setup_teardown(test_histogram_buckets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_collect_folds_into_totals, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_keeps_listener_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prometheus_families_once_and_escaped, setup_snapshot,
                                                teardown_snapshot),
                cmocka_unit_test_setup_teardown(test_prometheus_histogram_is_cumulative, setup_snapshot,
                                                teardown_snapshot),
                cmocka_unit_test_setup_teardown(test_json, setup_snapshot, teardown_snapshot),
                cmocka_unit_test_setup_teardown(test_json_last_reload, setup_snapshot, teardown_snapshot),
                cmocka_unit_test_setup_teardown(test_text, setup_snapshot, teardown_snapshot),
                cmocka_unit_test_setup_teardown(test_sources, setup_snapshot, teardown_snapshot),
                cmocka_unit_test_setup_teardown(test_no_listeners, setup_snapshot, teardown_snapshot),
        };

        test_main_args(argc, argv);
        return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
