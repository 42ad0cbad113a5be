/* SPDX-License-Identifier: MIT */
/* Unit tests for src/server.c's reload: all or nothing, with allocation
 * failures injected into every step that allocates a listener's settings
 * (listener_settings_new is wrapped with -Wl,--wrap: server.c's calls come here). */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "testmain.h"

struct listener_settings *__real_listener_settings_new(const struct listener_opts *o);
struct listener_settings *__wrap_listener_settings_new(const struct listener_opts *o);

static unsigned listener_settings_calls;        /* since the counter was reset */
static unsigned listener_settings_fail_at;      /* 0: never; else fail that call */

struct listener_settings *__wrap_listener_settings_new(const struct listener_opts *o)
{
        if (++listener_settings_calls == listener_settings_fail_at)
                return NULL;
        return __real_listener_settings_new(o);
}

static char dir[64], path[128];

static void write_config(const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static unsigned open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* no control socket: a unit test must not touch the host's /run/muxd */
static const char one_listener[] =
        "control_socket = \"\";\n"
        "listen = ( { address = \"127.0.0.1\"; port = 0; } );\n";
/* The running listener is kept, 127.0.0.2 and 127.0.0.3 are new: the
 * second new one's settings come after the first new socket is open. */
static const char three_listeners[] =
        "control_socket = \"\";\n"
        "suffix = \"new\";\n"
        "listen = ( { address = \"127.0.0.1\"; port = 0; },\n"
        "           { address = \"127.0.0.2\"; port = 0; },\n"
        "           { address = \"127.0.0.3\"; port = 0; } );\n";

/* Counters objects shown in snapshots, and every one the registry holds. */
static size_t shown_counters(const struct server *s)
{
        size_t shown = 0, all = 0;

        for (const struct stats_listener *l = s->stats->first; l; l = l->next) {
                shown += l->shown;
                all++;
        }
        assert_int_equal(all, shown);
        return shown;
}

static void test_reload_allocation_failure_rolls_back(void **state)
{
        struct config_errors errs = { 0 };
        struct config *cfg = NULL;
        struct server *s = NULL;
        unsigned fds, calls;

        (void) state;
        snprintf(dir, sizeof(dir), "/tmp/muxd-test-server-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/muxd.conf", dir);
        write_config(one_listener);
        assert_int_equal(config_load(path, &cfg, &errs), 0);
        assert_int_equal(server_new(cfg, &s), 0);
        assert_int_equal(s->n_listeners, 1);

        /* how many settings a successful reload allocates */
        write_config(three_listeners);
        fds = open_fds();
        listener_settings_calls = 0;
        listener_settings_fail_at = 0;
        server_reload(s);
        calls = listener_settings_calls;
        assert_true(calls >= 3);        /* one per entry (and per passed socket: none here) */
        assert_int_equal(s->n_listeners, 3);
        assert_int_equal(s->cfg->n_listeners, 3);
        assert_null(s->reload_error);

        /* back to one listener, then fail each allocation in turn */
        write_config(one_listener);
        server_reload(s);
        assert_int_equal(s->n_listeners, 1);
        write_config(three_listeners);
        for (unsigned k = 1; k <= calls; k++) {
                listener_settings_calls = 0;
                listener_settings_fail_at = k;
                server_reload(s);
                listener_settings_fail_at = 0;
                /* the running configuration stays, whole */
                assert_non_null(s->reload_error);
                assert_int_equal(s->cfg->n_listeners, 1);
                assert_string_equal(s->cfg->defaults.suffix, "hi...");
                assert_int_equal(s->n_listeners, 1);
                /* nothing opened for the failed reload stays open */
                assert_int_equal(open_fds(), fds);
                /* nor are its listeners' counters shown, or kept */
                stats_collect(s->stats);
                assert_int_equal(shown_counters(s), 1);
        }
        /* and the same file loads once memory is there */
        server_reload(s);
        assert_null(s->reload_error);
        assert_int_equal(s->n_listeners, 3);
        assert_string_equal(s->cfg->defaults.suffix, "new");

        server_free(s);
        unlink(path);
        rmdir(dir);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_reload_allocation_failure_rolls_back),
        };

        test_main_args(argc, argv);
        log_setup(LOG_TARGET_STDERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
