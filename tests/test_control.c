/* SPDX-License-Identifier: MIT */
/* Unit tests for the control socket's pieces that stand alone: the request
 * parser muxd and muxctl share (src/control-proto.c), the runtime ban lists
 * (src/ban.c) and cidr_to_string (src/acl.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "testmain.h"

#include "acl.h"
#include "ban.h"
#include "control-proto.h"

/* cmocka passes every test a state it may ignore */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* ---- the request parser ---------------------------------------------------- */

struct good_request {
        const char *line;
        const char *cmd;
        unsigned n_args;
        const char *args[CONTROL_ARGS_MAX];
        bool json;
        bool prometheus;
};

static void test_parse_good(void **state)
{
        static const struct good_request good[] = {
                { "status", "status", 0, { NULL }, false, false },
                { "status\r", "status", 0, { NULL }, false, false },           /* telnet, socat crlf */
                { "  stats  ", "stats", 0, { NULL }, false, false },
                { "stats --json", "stats", 0, { NULL }, true, false },
                { "--json stats", "stats", 0, { NULL }, true, false },
                { "stats --prometheus", "stats", 0, { NULL }, false, true },
                { "--json\tclients\tprobe", "clients", 1, { "probe" }, true, false },
                { "clients 127.0.0.1:8088", "clients", 1, { "127.0.0.1:8088" }, false, false },
                { "kick all-from 10.0.0.0/8", "kick", 2, { "all-from", "10.0.0.0/8" }, false, false },
                { "kick [::1]:5000", "kick", 1, { "[::1]:5000" }, false, false },
                { "ban 192.0.2.0/24 60", "ban", 2, { "192.0.2.0/24", "60" }, false, false },
                { "ban 192.0.2.7", "ban", 1, { "192.0.2.7" }, false, false },
                { "unban 192.0.2.7 --json", "unban", 1, { "192.0.2.7" }, true, false },
                { "bans", "bans", 0, { NULL }, false, false },
                { "reload", "reload", 0, { NULL }, false, false },
                { "check", "check", 0, { NULL }, false, false },
                { "drain probe", "drain", 1, { "probe" }, false, false },
                { "undrain [::]:8088", "undrain", 1, { "[::]:8088" }, false, false },
                { "help", "help", 0, { NULL }, false, false },
                { "version", "version", 0, { NULL }, false, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                struct control_request req;
                char line[128], why[512] = "";
                size_t len = strlen(good[i].line);

                memcpy(line, good[i].line, len + 1);
                if (control_request_parse(line, len, &req, why, sizeof(why)) != 0)
                        fail_msg("\"%s\": %s", good[i].line, why);
                assert_string_equal(req.cmd->name, good[i].cmd);
                assert_int_equal(req.n_args, good[i].n_args);
                for (unsigned k = 0; k < req.n_args; k++)
                        assert_string_equal(req.args[k], good[i].args[k]);
                assert_int_equal(req.json, good[i].json);
                assert_int_equal(req.prometheus, good[i].prometheus);
        }
}

static void test_parse_bad(void **state)
{
        static const struct {
                const char *line;
                size_t len;     /* 0: strlen */
                const char *why;
        } bad[] = {
                { "", 0, "usage: empty request; commands: status, stats, clients, kick, ban, unban, bans, "
                         "reload, check, upgrade, drain, undrain, help, version" },
                { " \t ", 0, "usage: empty request; commands: status, stats, clients, kick, ban, unban, bans, "
                             "reload, check, upgrade, drain, undrain, help, version" },
                { "statsu", 0, "usage: unknown command \"statsu\"; commands: status, stats, clients, kick, ban, "
                               "unban, bans, reload, check, upgrade, drain, undrain, help, version" },
                { "STATUS", 0, "usage: unknown command \"STATUS\"; commands: status, stats, clients, kick, ban, "
                               "unban, bans, reload, check, upgrade, drain, undrain, help, version" },
                { "status now", 0, "usage: status" },
                { "kick", 0, "usage: kick PEER | all-from CIDR" },
                { "kick a b c", 0, "usage: kick PEER | all-from CIDR" },
                { "ban", 0, "usage: ban CIDR [SECONDS]" },
                { "ban 1.2.3.4 5 6 7 8 9", 0, "usage: ban CIDR [SECONDS]" },
                { "drain", 0, "usage: drain LISTENER" },
                { "stats --yaml", 0, "usage: unknown option \"--yaml\" (valid: --json, --prometheus)" },
                { "--", 0, "usage: unknown option \"--\" (valid: --json, --prometheus)" },
                { "stat\x01us", 0, "usage: the request has a control or non-ASCII byte (0x01 at offset 4)" },
                { "st\xc3\xa4tus", 0, "usage: the request has a control or non-ASCII byte (0xc3 at offset 2)" },
                { "status\0x", 8, "usage: the request has a control or non-ASCII byte (0x00 at offset 6)" },
                { "status\r\r", 0, "usage: the request has a control or non-ASCII byte (0x0d at offset 6)" },
                { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0,
                  "usage: unknown command \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"; commands: status, stats, "
                  "clients, kick, ban, unban, bans, reload, check, upgrade, drain, undrain, help, version" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct control_request req;
                char line[128], why[512] = "";
                size_t len = bad[i].len ? bad[i].len : strlen(bad[i].line);

                memcpy(line, bad[i].line, len);
                line[len] = 'Z';        /* the parser ends the line itself */
                assert_int_equal(control_request_parse(line, len, &req, why, sizeof(why)), -EINVAL);
                assert_string_equal(why, bad[i].why);
        }
}

/* The longest line muxd reads, every word a command would take, and a why
 * buffer too small: cut, never overrun. */
static void test_parse_limits(void **state)
{
        static char line[CONTROL_LINE_MAX + 1];
        struct control_request req;
        char why[16];

        memset(line, ' ', CONTROL_LINE_MAX);
        memcpy(line, "status", 6);
        assert_int_equal(control_request_parse(line, CONTROL_LINE_MAX, &req, why, sizeof(why)), 0);
        assert_string_equal(req.cmd->name, "status");

        memset(line, 'x', CONTROL_LINE_MAX);
        assert_int_equal(control_request_parse(line, CONTROL_LINE_MAX, &req, why, sizeof(why)), -EINVAL);
        assert_int_equal(strlen(why), sizeof(why) - 1);
        assert_memory_equal(why, "usage: unknown ", sizeof(why) - 1);
}

static void test_commands(void **state)
{
        char names[CONTROL_NAMES_MAX];

        assert_non_null(control_command_find("reload"));
        assert_null(control_command_find("reloa"));
        assert_null(control_command_find(""));
        for (size_t i = 0; i < control_n_commands; i++) {
                assert_ptr_equal(control_command_find(control_commands[i].name), &control_commands[i]);
                assert_true(control_commands[i].min_args <= control_commands[i].max_args);
                assert_true(control_commands[i].max_args <= CONTROL_ARGS_MAX);
        }
        /* the list fits, whole */
        control_command_names(names, sizeof(names));
        assert_true(strlen(names) < sizeof(names) - 1);
        assert_non_null(strstr(names, "version"));
}

/* ---- bans -------------------------------------------------------------------- */

static struct cidr net(const char *s)
{
        struct cidr c;

        assert_int_equal(cidr_parse(s, &c), 0);
        return c;
}

static bool banned(const struct ban_list *l, const char *addr, uint64_t now)
{
        uint8_t a[16];

        if (inet_pton(AF_INET, addr, a) == 1)
                return ban_list_match(l, AF_INET, a, now);
        assert_int_equal(inet_pton(AF_INET6, addr, a), 1);
        return ban_list_match(l, AF_INET6, a, now);
}

static void test_ban_match_and_expiry(void **state)
{
        struct ban_list *a = NULL, *b = NULL, *c = NULL;
        struct cidr n1 = net("10.0.0.0/8"), n2 = net("2001:db8::/32");

        assert_false(banned(NULL, "10.1.2.3", 0));
        assert_int_equal(ban_list_add(NULL, &n1, 2000, 1000, &a), 0);         /* for a second */
        assert_int_equal(ban_list_add(a, &n2, 0, 1000, &b), 0);               /* until removed */
        assert_int_equal(b->n, 2);
        assert_true(banned(b, "10.1.2.3", 1000));
        assert_true(banned(b, "::ffff:10.1.2.3", 1000));        /* IPv4-mapped: as IPv4 */
        assert_true(banned(b, "2001:db8::1", 1000));
        assert_false(banned(b, "11.0.0.1", 1000));
        assert_false(banned(b, "2001:db9::1", 1000));
        assert_int_equal(ban_list_active(b, 1999), 2);
        /* expired at its deadline; the other stays */
        assert_false(banned(b, "10.1.2.3", 2000));
        assert_true(banned(b, "2001:db8::1", 2000000));
        assert_int_equal(ban_list_active(b, 2000), 1);
        /* the old list is untouched: workers may still read it */
        assert_int_equal(a->n, 1);
        assert_true(banned(a, "10.9.9.9", 1500));

        /* the next change drops what expired */
        assert_int_equal(ban_list_add(b, &n1, 0, 5000, &c), 0);
        assert_int_equal(c->n, 2);
        assert_true(banned(c, "10.1.2.3", 99999999));
        ban_list_unref(a);
        ban_list_unref(b);
        ban_list_unref(c);
}

static void test_ban_replace_remove(void **state)
{
        struct ban_list *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        struct cidr n1 = net("192.0.2.7"), n1b = net("192.0.2.7/32"), n2 = net("192.0.2.0/24");

        assert_int_equal(ban_list_add(NULL, &n1, 0, 0, &a), 0);
        /* the same network again replaces the entry: its new deadline wins */
        assert_int_equal(ban_list_add(a, &n1b, 500, 0, &b), 0);
        assert_int_equal(b->n, 1);
        assert_int_equal(b->bans[0].until_ms, 500);
        /* a different prefix is a different ban */
        assert_int_equal(ban_list_add(b, &n2, 0, 0, &c), 0);
        assert_int_equal(c->n, 2);
        assert_int_equal(ban_list_remove(c, &n1, 0, &d), 0);
        assert_int_equal(d->n, 1);
        assert_true(banned(d, "192.0.2.8", 0));                 /* still the /24 */
        ban_list_unref(d);
        d = NULL;
        assert_int_equal(ban_list_remove(c, &n2, 0, &d), 0);
        assert_true(banned(d, "192.0.2.7", 100));
        assert_false(banned(d, "192.0.2.7", 500));
        ban_list_unref(d);
        d = NULL;
        /* not banned, or expired: -ENOENT, nothing made */
        assert_int_equal(ban_list_remove(a, &n2, 0, &d), -ENOENT);
        assert_null(d);
        assert_int_equal(ban_list_remove(b, &n1, 500, &d), -ENOENT);
        assert_null(d);
        ban_list_unref(a);
        ban_list_unref(b);
        ban_list_unref(c);
        ban_list_unref(NULL);
}

static void test_ban_limit(void **state)
{
        struct ban_list *l = NULL, *next;
        struct cidr n;

        for (unsigned i = 0; i < BAN_MAX; i++) {
                char s[32];

                snprintf(s, sizeof(s), "10.%u.%u.0/24", i / 256, i % 256);
                n = net(s);
                /* the last 10 expire at 1000 */
                assert_int_equal(ban_list_add(l, &n, i >= BAN_MAX - 10 ? 1000 : 0, 0, &next), 0);
                ban_list_unref(l);
                l = next;
        }
        assert_int_equal(l->n, BAN_MAX);
        n = net("172.16.0.0/12");
        assert_int_equal(ban_list_add(l, &n, 0, 999, &next), -ENOSPC);
        /* an existing network may still be changed */
        n = net("10.0.0.0/24");
        assert_int_equal(ban_list_add(l, &n, 0, 999, &next), 0);
        ban_list_unref(next);
        /* once some expired, there is room */
        n = net("172.16.0.0/12");
        assert_int_equal(ban_list_add(l, &n, 0, 1000, &next), 0);
        assert_int_equal(next->n, BAN_MAX - 9);
        ban_list_unref(next);
        ban_list_unref(l);
}

static void test_cidr_to_string(void **state)
{
        static const char *const cases[][2] = {
                { "10.1.2.3/8", "10.0.0.0/8" },
                { "192.0.2.7", "192.0.2.7/32" },
                { "::1", "::1/128" },
                { "::ffff:10.1.2.3", "10.1.2.3/32" },
                { "2001:db8:abcd:12::1/50", "2001:db8:abcd::/50" },
                { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct cidr c = net(cases[i][0]), back;
                char buf[CIDR_STR_MAX];

                assert_string_equal(cidr_to_string(&c, buf), cases[i][1]);
                /* and it reads back the same */
                assert_int_equal(cidr_parse(buf, &back), 0);
                assert_memory_equal(&back, &c, sizeof(c));
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest parser[] = {
                cmocka_unit_test(test_parse_good),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_parse_limits),
                cmocka_unit_test(test_commands),
        };
        const struct CMUnitTest bans[] = {
                cmocka_unit_test(test_ban_match_and_expiry),
                cmocka_unit_test(test_ban_replace_remove),
                cmocka_unit_test(test_ban_limit),
                cmocka_unit_test(test_cidr_to_string),
        };
        int failed = 0;

        test_main_args(argc, argv);
        failed += cmocka_run_group_tests_name("request parser", parser, NULL, NULL);
        failed += cmocka_run_group_tests_name("bans", bans, NULL, NULL);
        return failed ? 1 : 0;
}
