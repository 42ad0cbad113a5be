/* SPDX-License-Identifier: MIT */
/* Unit tests for src/config.c: every invalid configuration is checked against
 * the exact "FILE:LINE: message" strings, every valid one against every value. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testcidr.h"
#include "testmain.h"

/* not "config.h": the build's -I. would find autoconf's header first */
#include "../src/config.h"

#ifdef HAVE_LIBURING
#define BACKEND_NAMES "epoll, poll, select, io_uring"
#else
#define BACKEND_NAMES "epoll, poll, select"
#endif

/* cmocka passes every test a state it may ignore */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MAX_ERRORS 8

#define NO_LISTENERS "test.conf: no listeners: set \"ports\" or \"listen\" (muxd needs at least " \
        "one; sockets passed by systemd are matched to these entries)"

/* ---- helpers --------------------------------------------------------------- */

static void dump_errors(const struct config_errors *e)
{
        for (size_t i = 0; i < e->n; i++)
                print_message("  got: %s\n", e->msgs[i]);
}

/* Check that loading gave exactly the expected messages, in order. */
static void assert_errors(const struct config_errors *e, const char *const *expected, size_t n)
{
        bool same = e->n == n;

        for (size_t i = 0; same && i < n; i++)
                same = strcmp(e->msgs[i], expected[i]) == 0;
        if (!same) {
                for (size_t i = 0; i < n; i++)
                        print_message("  expected: %s\n", expected[i]);
                dump_errors(e);
        }
        assert_int_equal(e->n, n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(e->msgs[i], expected[i]);
}

static void assert_invalid(const char *text, const char *const *expected, size_t n)
{
        struct config_errors e = {};
        struct config *c = NULL;
        int r;

        r = config_load_string(text, "test.conf", &c, &e);
        assert_errors(&e, expected, n);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        config_errors_clear(&e);
        assert_int_equal(e.n, 0);
        assert_null(e.msgs);
}

static void assert_invalid1(const char *text, const char *expected)
{
        assert_invalid(text, &expected, 1);
}

static struct config *load_ok(const char *text)
{
        struct config_errors e = {};
        struct config *c = NULL;
        int r;

        r = config_load_string(text, "test.conf", &c, &e);
        if (r != 0)
                dump_errors(&e);
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);
        assert_non_null(c);
        assert_string_equal(c->path, "test.conf");
        config_errors_clear(&e);
        return c;
}

static char *repeat(char ch, size_t n)
{
        char *s = malloc(n + 1);

        assert_non_null(s);
        memset(s, ch, n);
        s[n] = '\0';
        return s;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        s = malloc((size_t) n + 1);
        assert_non_null(s);
        va_start(ap, fmt);
        vsnprintf(s, (size_t) n + 1, fmt, ap);
        va_end(ap);
        return s;
}

static void assert_acl(const struct acl *a, const char *const *expected, size_t n)
{
        char buf[INET6_ADDRSTRLEN + 8];

        assert_int_equal(a->n, n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(cidr_str(&a->entries[i], buf, sizeof(buf)), expected[i]);
        if (n == 0)
                assert_null(a->entries);
}

static void assert_default_opts(const struct listener_opts *o)
{
        assert_string_equal(o->greeting, "hello...\n");
        assert_int_equal(o->greeting_len, 9);
        assert_string_equal(o->suffix, "hi...");
        assert_int_equal(o->suffix_len, 5);
        assert_int_equal(o->mode, MODE_ECHO);
        assert_int_equal(o->framing, FRAMING_LINE);
        assert_int_equal(o->max_message, 4096);
        assert_int_equal(o->allow.n, 0);
        assert_int_equal(o->deny.n, 0);
        assert_int_equal(o->max_per_source, 0);
        assert_int_equal(o->max_rate_per_source, 0);
        assert_int_equal(o->rate_burst, 0);
        assert_int_equal(o->source_prefix_v4, 32);
        assert_int_equal(o->source_prefix_v6, 64);
        assert_int_equal(o->proxy_protocol, PROXY_OFF);
        assert_int_equal(o->proxy_from.n, 0);
        assert_int_equal(o->proxy_timeout, 3);
}

static void assert_entry(const struct listener_conf *l, const char *address, unsigned port,
                         const char *name, int line)
{
        if (address)
                assert_string_equal(l->address, address);
        else
                assert_null(l->address);
        if (name)
                assert_string_equal(l->name, name);
        else
                assert_null(l->name);
        assert_int_equal(l->port, port);
        assert_int_equal(l->line, line);
}

/* ---- invalid configurations ------------------------------------------------- */

struct invalid_case {
        const char *name;
        const char *text;
        const char *errors[MAX_ERRORS];
};

/* Most cases leave the listeners out to stay short: they end with NO_LISTENERS. */
static struct invalid_case invalid_cases[] = {
        /* integers */
        { "timeout_string", "timeout = \"60\";\n",
          { "test.conf:1: timeout: expected an integer", NO_LISTENERS } },
        { "timeout_negative", "# idle\ntimeout = -1;\n",
          { "test.conf:2: timeout: must be between 0 and 2592000, got -1", NO_LISTENERS } },
        { "timeout_too_big", "timeout = 2592001;\n",
          { "test.conf:1: timeout: must be between 0 and 2592000, got 2592001", NO_LISTENERS } },
        { "timeout_float", "timeout = 1.5;\n",
          { "test.conf:1: timeout: expected an integer", NO_LISTENERS } },
        { "timeout_bool", "timeout = true;\n",
          { "test.conf:1: timeout: expected an integer", NO_LISTENERS } },
        { "timeout_group", "timeout = { seconds = 5; };\n",
          { "test.conf:1: timeout: expected an integer", NO_LISTENERS } },
        { "timeout_list", "timeout = [ 5 ];\n",
          { "test.conf:1: timeout: expected an integer", NO_LISTENERS } },
        /* libconfig 1.5 would silently store these as 60 and 1 */
        { "timeout_wraps_32_bits", "\ntimeout = 4294967356;\n",
          { "test.conf:2: timeout: must be between 0 and 2592000, got 4294967356", NO_LISTENERS } },
        { "timeout_wraps_on_next_line", "timeout =\n  4294967356;\n",
          { "test.conf:1: timeout: must be between 0 and 2592000, got 4294967356", NO_LISTENERS } },
        /* wraps to 60, the value of timeout: only max_connections is wrong */
        { "wrapped_value_of_other_setting", "timeout = 60;\nmax_connections =\n 4294967356;\n",
          { "test.conf:2: max_connections: must be between 1 and 1000000, got 4294967356",
            NO_LISTENERS } },
        { "max_connections_hex_wraps", "max_connections = 0x100000001;\n",
          { "test.conf:1: max_connections: must be between 1 and 1000000, got 0x100000001",
            NO_LISTENERS } },
        { "timeout_int64_too_big", "timeout = 5000000000L;\n",
          { "test.conf:1: timeout: must be between 0 and 2592000, got 5000000000", NO_LISTENERS } },
        { "max_connections_zero", "max_connections = 0;\n",
          { "test.conf:1: max_connections: must be between 1 and 1000000, got 0", NO_LISTENERS } },
        { "max_connections_too_big", "max_connections = 1000001;\n",
          { "test.conf:1: max_connections: must be between 1 and 1000000, got 1000001",
            NO_LISTENERS } },
        { "shutdown_timeout_too_big", "shutdown_timeout = 3601;\n",
          { "test.conf:1: shutdown_timeout: must be between 0 and 3600, got 3601", NO_LISTENERS } },
        { "shutdown_timeout_negative", "shutdown_timeout = -5;\n",
          { "test.conf:1: shutdown_timeout: must be between 0 and 3600, got -5", NO_LISTENERS } },
        { "preserve_connections_int", "preserve_connections = 1;\n",
          { "test.conf:1: preserve_connections: expected true or false", NO_LISTENERS } },
        { "preserve_connections_in_entry", "listen = ( { port = 0; preserve_connections = true; } );\n",
          { "test.conf:1: preserve_connections: not allowed in a listen entry" } },
        { "workers_zero", "workers = 0;\n",
          { "test.conf:1: workers: must be between 1 and 64, got 0", NO_LISTENERS } },
        { "workers_too_many", "workers = 65;\n",
          { "test.conf:1: workers: must be between 1 and 64, got 65", NO_LISTENERS } },
        { "max_message_zero", "max_message = 0;\n",
          { "test.conf:1: max_message: must be between 1 and 1048576, got 0", NO_LISTENERS } },
        { "max_message_too_big", "max_message = 1048577;\n",
          { "test.conf:1: max_message: must be between 1 and 1048576, got 1048577",
            NO_LISTENERS } },
        { "max_per_source_negative", "max_per_source = -1;\n",
          { "test.conf:1: max_per_source: must be between 0 and 1000000, got -1", NO_LISTENERS } },
        { "max_per_source_string", "max_per_source = \"10\";\n",
          { "test.conf:1: max_per_source: expected an integer", NO_LISTENERS } },
        { "max_rate_per_source_negative", "\nmax_rate_per_source = -1;\n",
          { "test.conf:2: max_rate_per_source: must be between 0 and 1000000, got -1", NO_LISTENERS } },
        { "max_rate_per_source_too_big", "max_rate_per_source = 1000001;\n",
          { "test.conf:1: max_rate_per_source: must be between 0 and 1000000, got 1000001",
            NO_LISTENERS } },
        { "max_rate_per_source_float", "max_rate_per_source = 2.5;\n",
          { "test.conf:1: max_rate_per_source: expected an integer", NO_LISTENERS } },
        { "rate_burst_too_big", "rate_burst = 1000001;\n",
          { "test.conf:1: rate_burst: must be between 0 and 1000000, got 1000001", NO_LISTENERS } },
        { "rate_burst_string", "rate_burst = \"5\";\n",
          { "test.conf:1: rate_burst: expected an integer", NO_LISTENERS } },
        { "source_prefix_v4_zero", "source_prefix_v4 = 0;\n",
          { "test.conf:1: source_prefix_v4: must be between 1 and 32, got 0", NO_LISTENERS } },
        { "source_prefix_v4_too_big", "source_prefix_v4 = 33;\n",
          { "test.conf:1: source_prefix_v4: must be between 1 and 32, got 33", NO_LISTENERS } },
        /* 288 would be 32 cut to 8 bits: the range is checked before */
        { "source_prefix_v4_wraps", "source_prefix_v4 = 288;\n",
          { "test.conf:1: source_prefix_v4: must be between 1 and 32, got 288", NO_LISTENERS } },
        { "source_prefix_v6_zero", "source_prefix_v6 = 0;\n",
          { "test.conf:1: source_prefix_v6: must be between 1 and 128, got 0", NO_LISTENERS } },
        { "source_prefix_v6_too_big", "source_prefix_v6 = 129;\n",
          { "test.conf:1: source_prefix_v6: must be between 1 and 128, got 129", NO_LISTENERS } },
        { "max_sources_zero", "max_sources = 0;\n",
          { "test.conf:1: max_sources: must be between 1 and 4194304, got 0", NO_LISTENERS } },
        { "max_sources_too_big", "max_sources = 4194305;\n",
          { "test.conf:1: max_sources: must be between 1 and 4194304, got 4194305", NO_LISTENERS } },

        /* strings and enumerations */
        { "backend_unknown", "\n\nbackend = \"kqueue\";\n",
          { "test.conf:3: backend: unknown backend \"kqueue\" (valid: " BACKEND_NAMES ")",
            NO_LISTENERS } },
        { "backend_not_string", "backend = 1;\n",
          { "test.conf:1: backend: expected a string", NO_LISTENERS } },
        { "log_level_unknown", "\n\n\nlog_level = \"verbose\";\n",
          { "test.conf:4: log_level: unknown level \"verbose\" (valid: debug, info, notice, warning, err)",
            NO_LISTENERS } },
        { "log_level_case", "log_level = \"INFO\";\n",
          { "test.conf:1: log_level: unknown level \"INFO\" (valid: debug, info, notice, warning, err)",
            NO_LISTENERS } },
        { "log_level_number", "log_level = 7;\n",
          { "test.conf:1: log_level: expected a string", NO_LISTENERS } },
        { "mode_unknown", "\n\n\n\nmode = \"chat\";\n",
          { "test.conf:5: mode: unknown mode \"chat\" (valid: echo, oneshot)", NO_LISTENERS } },
        { "framing_unknown", "framing = \"bytes\";\n",
          { "test.conf:1: framing: unknown framing \"bytes\" (valid: line, raw)", NO_LISTENERS } },
        { "greeting_not_string", "greeting = 5;\n",
          { "test.conf:1: greeting: expected a string", NO_LISTENERS } },
        { "suffix_list", "suffix = ( \"hi\" );\n",
          { "test.conf:1: suffix: expected a string", NO_LISTENERS } },
        { "value_escaped_in_message", "mode = \"a\\tb\\n\\\"c\\\\\";\n",
          { "test.conf:1: mode: unknown mode \"a\\tb\\n\\\"c\\\\\" (valid: echo, oneshot)",
            NO_LISTENERS } },

        /* access control */
        { "allow_bad_prefix", "\n\n\n\n\n\nallow = [ \"127.0.0.0/8\", \"10.0.0.0/33\" ];\n",
          { "test.conf:7: allow: invalid address or CIDR \"10.0.0.0/33\"", NO_LISTENERS } },
        { "deny_hostname", "deny = [\n  \"localhost\",\n  \"::1/129\"\n];\n",
          { "test.conf:2: deny: invalid address or CIDR \"localhost\"",
            "test.conf:3: deny: invalid address or CIDR \"::1/129\"", NO_LISTENERS } },
        { "allow_scalar", "allow = \"10.0.0.0/8\";\n",
          { "test.conf:1: allow: expected a list of addresses or CIDRs", NO_LISTENERS } },
        { "allow_number_element", "allow = ( \"10.0.0.0/8\",\n 10 );\n",
          { "test.conf:2: allow: expected a list of addresses or CIDRs", NO_LISTENERS } },
        { "deny_in_listen_entry", "listen = (\n  { port = 1;\n    deny = [ \"1.2.3.4/\" ]; }\n);\n",
          { "test.conf:3: deny: invalid address or CIDR \"1.2.3.4/\"" } },

        { "allow_multiline_lines",
          "allow = [\n"
          "  \"10.0.0.0/8\",\n"
          "  \"10.0.0.0/33\",\n"
          "  # \"a comment\"\n"
          "  \"1.2.3.4/\" \"99\"\n"
          "  ,\n"
          "  \"x\" /* not a \" quote */\n"
          "];\n",
          { "test.conf:3: allow: invalid address or CIDR \"10.0.0.0/33\"",
            "test.conf:5: allow: invalid address or CIDR \"1.2.3.4/99\"",
            "test.conf:7: allow: invalid address or CIDR \"x\"", NO_LISTENERS } },

        /* ports */
        { "ports_scalar", "\nports = 8088;\n",
          { "test.conf:2: ports: expected a list of port numbers" } },
        { "ports_strings", "ports = [ \"8088\" ];\n",
          { "test.conf:1: ports: expected a list of port numbers" } },
        { "ports_out_of_range", "ports = [ 8088,\n  70000, -1 ];\n",
          { "test.conf:2: ports: must be between 0 and 65535, got 70000",
            "test.conf:2: ports: must be between 0 and 65535, got -1" } },
        { "ports_duplicate", "ports = [ 8088, 8008,\n  8088 ];\n",
          { "test.conf:2: port 8088 on all addresses is already listed at line 1" } },

        /* a file names at least one listener, so that start, reload and -t agree */
        { "no_listeners_empty", "", { NO_LISTENERS } },
        { "no_listeners_comment", "# nothing but a comment\n", { NO_LISTENERS } },
        { "no_listeners_empty_lists", "timeout = 5;\nports = [];\nlisten = ( );\n", { NO_LISTENERS } },
        /* invalid entries are not "no listeners" */
        { "no_listeners_not_claimed_for_bad_ports", "ports = [ 70000 ];\n",
          { "test.conf:1: ports: must be between 0 and 65535, got 70000" } },

        /* listen */
        { "listen_needs_port",
          "listen = (\n  { port = 1; },\n  { address = \"127.0.0.1\"; }\n);\n",
          { "test.conf:3: listen: entry needs a \"port\"" } },
        { "listen_hostname",
          "listen = (\n\n\n\n\n\n\n\n  { port = 8088; address = \"localhost\"; }\n);\n",
          { "test.conf:9: address: not a numeric IPv4 or IPv6 address: \"localhost\"" } },
        { "listen_address_with_port", "listen = ( { port = 1; address = \"127.0.0.1:80\"; } );\n",
          { "test.conf:1: address: not a numeric IPv4 or IPv6 address: \"127.0.0.1:80\"" } },
        { "listen_address_not_string", "listen = ( { port = 1; address = 127; } );\n",
          { "test.conf:1: address: expected a string" } },
        { "listen_duplicate_ipv4",
          "timeout = 5;\n\nlisten = (\n\n\n  { port = 8088; address = \"127.0.0.1\"; },\n"
          "  { port = 8088; address = \"127.0.0.2\"; },\n  { port = 8089; address = \"127.0.0.1\"; },\n"
          "  { port = 8088; address = \"127.0.0.1\"; }\n);\n",
          { "test.conf:9: port 8088 on 127.0.0.1 is already listed at line 6" } },
        { "listen_duplicate_ipv6_spelling",
          "listen = (\n  { port = 9000; address = \"::1\"; },\n  { port = 9000; address = \"0:0::1\"; }\n);\n",
          { "test.conf:3: port 9000 on 0:0::1 is already listed at line 2" } },
        { "listen_duplicate_of_ports",
          "ports = [ 8088 ];\nlisten = (\n  { port = 8088; name = \"x\"; }\n);\n",
          { "test.conf:3: port 8088 on all addresses is already listed at line 1" } },
        /* what the kernel refuses to bind together on one port (EADDRINUSE):
         * all addresses (one dual-stack socket) and anything else, 0.0.0.0 and
         * an IPv4 address, :: (IPv6 only) and an IPv6 address */
        { "listen_all_and_ipv4",
          "ports = [ 8088 ];\nlisten = (\n  { port = 8088; address = \"127.0.0.1\"; }\n);\n",
          { "test.conf:3: port 8088 on 127.0.0.1 conflicts with port 8088 on all addresses at line 1 "
            "(all addresses is one dual-stack socket for every IPv4 and IPv6 address)" } },
        { "listen_ipv6_then_all",
          "listen = (\n  { port = 8088; address = \"::1\"; },\n  { port = 8088; name = \"any\"; }\n);\n",
          { "test.conf:3: port 8088 on all addresses conflicts with port 8088 on ::1 at line 2 "
            "(all addresses is one dual-stack socket for every IPv4 and IPv6 address)" } },
        { "listen_all_and_wildcards",
          "ports = [ 7, 8088 ];\nlisten = (\n  { port = 8088; address = \"::\"; },\n"
          "  { port = 8088; address = \"0.0.0.0\"; }\n);\n",
          { "test.conf:3: port 8088 on :: conflicts with port 8088 on all addresses at line 1 "
            "(all addresses is one dual-stack socket for every IPv4 and IPv6 address)",
            "test.conf:4: port 8088 on 0.0.0.0 conflicts with port 8088 on all addresses at line 1 "
            "(all addresses is one dual-stack socket for every IPv4 and IPv6 address)" } },
        { "listen_ipv4_wildcard_and_ipv4",
          "listen = (\n  { port = 80; address = \"10.1.2.3\"; },\n  { port = 80; address = \"::1\"; },\n"
          "  { port = 80; address = \"0.0.0.0\"; }\n);\n",
          { "test.conf:4: port 80 on 0.0.0.0 conflicts with port 80 on 10.1.2.3 at line 2 "
            "(0.0.0.0 is every IPv4 address)" } },
        { "listen_ipv6_wildcard_and_ipv6",
          "listen = (\n  { port = 80; address = \"0:0::0\"; },\n  { port = 80; address = \"127.0.0.1\"; },\n"
          "  { port = 80; address = \"fd00::2\"; }\n);\n",
          { "test.conf:4: port 80 on fd00::2 conflicts with port 80 on 0:0::0 at line 2 "
            "(:: is every IPv6 address)" } },
        /* bound IPv6 only, an IPv4-mapped address fails with EINVAL */
        { "listen_ipv4_mapped",
          "listen = (\n  { port = 80;\n    address = \"::ffff:127.0.0.1\"; },\n"
          "  { port = 80; address = \"::\"; }\n);\n",
          { "test.conf:3: address: \"::ffff:127.0.0.1\" is an IPv4-mapped IPv6 address, which muxd "
            "cannot listen on (IPv6 listeners are IPv6 only): write \"127.0.0.1\"" } },
        { "listen_ipv4_mapped_any", "listen = ( { port = 0; address = \"::FFFF:0.0.0.0\"; } );\n",
          { "test.conf:1: address: \"::FFFF:0.0.0.0\" is an IPv4-mapped IPv6 address, which muxd "
            "cannot listen on (IPv6 listeners are IPv6 only): write \"0.0.0.0\"" } },
        { "listen_invalid_address_not_a_duplicate",
          "listen = (\n  { port = 1; address = \"::1\"; },\n  { port = 1; address = \"::1x\"; }\n);\n",
          { "test.conf:3: address: not a numeric IPv4 or IPv6 address: \"::1x\"" } },
        { "listen_not_list", "listen = { port = 1; };\n",
          { "test.conf:1: listen: expected a list of groups" } },
        { "listen_element_not_group", "listen = (\n  { port = 1; },\n  8088\n);\n",
          { "test.conf:3: listen: expected a list of groups" } },
        { "listen_port_out_of_range", "listen = (\n  {\n    port = 65536;\n  }\n);\n",
          { "test.conf:3: port: must be between 0 and 65535, got 65536" } },
        { "listen_port_string", "listen = ( { port = \"80\"; } );\n",
          { "test.conf:1: port: expected an integer" } },
        { "listen_name_space", "listen = ( { port = 1;\n name = \"my probe\"; } );\n",
          { "test.conf:2: name: invalid listener name \"my probe\" (1 to 255 printable ASCII "
            "characters, no spaces or colons)" } },
        { "listen_name_colon", "listen = ( { port = 1; name = \"a:b\"; } );\n",
          { "test.conf:1: name: invalid listener name \"a:b\" (1 to 255 printable ASCII "
            "characters, no spaces or colons)" } },
        { "listen_name_empty", "listen = ( { port = 1; name = \"\"; } );\n",
          { "test.conf:1: name: invalid listener name \"\" (1 to 255 printable ASCII "
            "characters, no spaces or colons)" } },
        { "listen_name_duplicate",
          "listen = (\n  { port = 1; name = \"probe\"; },\n  { port = 2;\n    name = \"probe\"; }\n);\n",
          { "test.conf:4: name: \"probe\" is already used by the entry at line 2" } },
        { "listen_entry_override_invalid",
          "listen = (\n  {\n    port = 1;\n    mode = \"chat\";\n    max_message = 0;\n  }\n);\n",
          { "test.conf:4: mode: unknown mode \"chat\" (valid: echo, oneshot)",
            "test.conf:5: max_message: must be between 1 and 1048576, got 0" } },
        /* PROXY protocol */
        { "proxy_protocol_unknown", "proxy_protocol = \"v3\";\n",
          { "test.conf:1: proxy_protocol: unknown value \"v3\" (valid: off, v1, v2, any)", NO_LISTENERS } },
        { "proxy_protocol_bool", "proxy_protocol = true;\n",
          { "test.conf:1: proxy_protocol: expected a string", NO_LISTENERS } },
        { "proxy_timeout_zero", "proxy_timeout = 0;\n",
          { "test.conf:1: proxy_timeout: must be between 1 and 3600, got 0", NO_LISTENERS } },
        { "proxy_timeout_too_big", "proxy_timeout = 3601;\n",
          { "test.conf:1: proxy_timeout: must be between 1 and 3600, got 3601", NO_LISTENERS } },
        { "proxy_from_bad", "proxy_from = [ \"10.0.0.0/33\" ];\n",
          { "test.conf:1: proxy_from: invalid address or CIDR \"10.0.0.0/33\"", NO_LISTENERS } },
        /* on without proxy_from: every entry that inherits it, at its own line */
        { "proxy_protocol_without_proxy_from",
          "proxy_protocol = \"v2\";\nports = [ 7000 ];\nlisten = (\n  { port = 7001; },\n"
          "  { port = 7002; proxy_protocol = \"off\"; },\n  { port = 7003; proxy_from = [ \"::1\" ]; }\n);\n",
          { "test.conf:2: port 7000: proxy_protocol is \"v2\" but proxy_from is empty: list the load "
            "balancers' addresses",
            "test.conf:4: port 7001: proxy_protocol is \"v2\" but proxy_from is empty: list the load "
            "balancers' addresses" } },
        { "proxy_protocol_entry_without_proxy_from",
          "listen = (\n  { port = 7001;\n    proxy_protocol = \"any\"; }\n);\n",
          { "test.conf:2: port 7001: proxy_protocol is \"any\" but proxy_from is empty: list the load "
            "balancers' addresses" } },
        { "listen_entry_unknown_setting", "listen = ( { port = 1;\n  colour = \"red\"; } );\n",
          { "test.conf:2: unknown setting \"colour\"" } },
        { "listen_entry_global_setting", "listen = ( { port = 1; timeout = 5; ports = [ 2 ]; } );\n",
          { "test.conf:1: timeout: not allowed in a listen entry",
            "test.conf:1: ports: not allowed in a listen entry" } },
        /* one table for every listener */
        { "listen_entry_max_sources", "listen = (\n  { port = 1;\n    max_sources = 5; } );\n",
          { "test.conf:3: max_sources: not allowed in a listen entry" } },
        { "listen_entry_source_limits_invalid",
          "listen = ( { port = 1;\n  max_rate_per_source = 2000000;\n  rate_burst = -3;\n"
          "  source_prefix_v4 = 40;\n  source_prefix_v6 = 200; } );\n",
          { "test.conf:2: max_rate_per_source: must be between 0 and 1000000, got 2000000",
            "test.conf:3: rate_burst: must be between 0 and 1000000, got -3",
            "test.conf:4: source_prefix_v4: must be between 1 and 32, got 40",
            "test.conf:5: source_prefix_v6: must be between 1 and 128, got 200" } },

        /* what looks like numbers or quotes in strings and comments */
        { "lines_after_tricky_strings",
          "greeting = \"two\\nlines\n"
          "still # \\\" 99999999999\";\n"
          "/* 99999999999\n"
          "   \"not a string */ suffix = \"\\\\\";\n"
          "timeout = 99999999999;\n",
          { "test.conf:5: timeout: must be between 0 and 2592000, got 99999999999",
            NO_LISTENERS } },
        { "wrapped_port_in_list", "ports = [ 1, 4294967297 ];\n",
          { "test.conf:1: ports: must be between 0 and 65535, got 4294967297" } },
        { "crlf_line_endings", "timeout = 5;\r\nmode = \"x\";\r\n",
          { "test.conf:2: mode: unknown mode \"x\" (valid: echo, oneshot)", NO_LISTENERS } },

        /* libconfig 1.5 drops a \x00 ("ab\x00cd\n" would greet with "abcd\n") */
        { "nul_escape_greeting", "ports = [ 1 ];\ngreeting = \"ab\\x00cd\\n\";\n",
          { "test.conf:2: greeting: \\x00 (a NUL byte) is not allowed in a string" } },
        { "nul_escape_every_string",
          "ports = [ 1 ];\n"
          "suffix = \"a\" \"\\X00\";\n"
          "mode = \"echo\\x00\";\n"
          "framing =\n  \"\\x00line\";\n"
          "backend = \"\\x00\";\n"
          "log_level = \"info\\x00\";\n"
          "listen = (\n"
          "  { port = 2; address = \"127.0.0.1\\x00\"; },\n"
          "  { port = 3; name = \"a\\x00\";\n"
          "    greeting = \"\\x00\"; }\n"
          ");\n",
          { "test.conf:2: suffix: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:3: mode: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:4: framing: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:6: backend: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:7: log_level: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:9: address: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:10: name: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:11: greeting: \\x00 (a NUL byte) is not allowed in a string" } },
        { "nul_escape_list_element",
          "ports = [ 1 ];\nallow = [\n  \"1.2.3.4\",\n  \"1.2.3.4\\x00\"\n];\ndeny = ( \"\\x00\" );\n",
          { "test.conf:4: allow: \\x00 (a NUL byte) is not allowed in a string",
            "test.conf:6: deny: \\x00 (a NUL byte) is not allowed in a string" } },

        /* control_socket: an absolute path, or "" */
        { "control_socket_relative", "ports = [ 1 ];\ncontrol_socket = \"run/muxd/control\";\n",
          { "test.conf:2: control_socket: not an absolute path: \"run/muxd/control\" (write \"\" to "
            "turn the control socket off)" } },
        { "control_socket_not_a_string", "ports = [ 1 ];\ncontrol_socket = 1;\n",
          { "test.conf:2: control_socket: expected a string" } },
        { "control_socket_in_listen_entry", "listen = (\n  { port = 1; control_socket = \"/x\"; }\n);\n",
          { "test.conf:2: control_socket: not allowed in a listen entry" } },
        /* metrics_listen */
        { "metrics_listen_not_string", "metrics_listen = 9188;\nports = [ 1 ];\n",
          { "test.conf:1: metrics_listen: expected a string" } },
        { "metrics_listen_no_port", "ports = [ 1 ];\nmetrics_listen = \"127.0.0.1\";\n",
          { "test.conf:2: metrics_listen: expected ADDRESS:PORT with a numeric address "
            "(\"127.0.0.1:9188\", \"[::1]:9188\"), got \"127.0.0.1\"" } },
        { "metrics_listen_hostname", "metrics_listen = \"localhost:9188\";\nports = [ 1 ];\n",
          { "test.conf:1: metrics_listen: expected ADDRESS:PORT with a numeric address "
            "(\"127.0.0.1:9188\", \"[::1]:9188\"), got \"localhost:9188\"" } },
        { "metrics_listen_ipv6_without_brackets", "metrics_listen = \"::1:9188\";\nports = [ 1 ];\n",
          { "test.conf:1: metrics_listen: expected ADDRESS:PORT with a numeric address "
            "(\"127.0.0.1:9188\", \"[::1]:9188\"), got \"::1:9188\"" } },
        { "metrics_listen_port_range", "metrics_listen = \"127.0.0.1:65536\";\nports = [ 1 ];\n",
          { "test.conf:1: metrics_listen: expected ADDRESS:PORT with a numeric address "
            "(\"127.0.0.1:9188\", \"[::1]:9188\"), got \"127.0.0.1:65536\"" } },
        { "metrics_listen_v4mapped", "metrics_listen = \"[::ffff:127.0.0.1]:9188\";\nports = [ 1 ];\n",
          { "test.conf:1: metrics_listen: \"[::ffff:127.0.0.1]:9188\" is an IPv4-mapped address: "
            "write the IPv4 address" } },
        { "metrics_listen_in_entry", "listen = ( { port = 1; metrics_listen = \"127.0.0.1:9188\"; } );\n",
          { "test.conf:1: metrics_listen: not allowed in a listen entry" } },
        { "metrics_listen_port_of_a_listener",
          "listen = (\n  { port = 9188; address = \"127.0.0.1\"; }\n);\nmetrics_listen = \"127.0.0.1:9188\";\n",
          { "test.conf:4: metrics_listen: port 9188 is the port of the listener at line 2" } },
        { "metrics_listen_port_of_all_addresses",
          "ports = [ 9188 ];\nmetrics_listen = \"[::1]:9188\";\n",
          { "test.conf:2: metrics_listen: port 9188 is the port of the listener at line 1" } },

        /* unknown and misplaced settings */
        { "unknown_setting", "timeout = 1;\n\ntimout = 5;\n",
          { "test.conf:3: unknown setting \"timout\"", NO_LISTENERS } },
        { "port_at_top_level", "port = 8088;\n",
          { "test.conf:1: port: only allowed in a listen entry", NO_LISTENERS } },

        /* libconfig's own errors come alone */
        { "syntax_error_alone", "timeout = ;\nbackend = \"kqueue\";\n",
          { "test.conf:1: syntax error" } },
        /* libconfig reports where it gave up: the end of the file */
        { "syntax_error_unterminated_string", "timeout = 5;\ngreeting = \"abc;\n\n",
          { "test.conf:4: syntax error" } },
        { "duplicate_setting", "timeout = 1;\ntimeout = 2;\n",
          { "test.conf:2: duplicate setting name" } },
        { "mixed_array", "ports = [ 1, \"2\" ];\n",
          { "test.conf:1: mismatched element type in array" } },
        { "include_missing", "timeout = 1;\n@include \"/nonexistent/muxd-test.conf\"\n",
          { "test.conf:2: cannot open include file" } },

        /* every semantic error is reported, in file order, listeners last */
        { "many_errors",
          "timeout = -1;\nbackend = \"kqueue\";\nworkers = 99;\nbogus = 1;\n"
          "listen = (\n  { port = 1; },\n  { port = 1; mode = \"x\"; }\n);\n"
          "ports = [ 99999 ];\ngreeting = 1;\n",
          { "test.conf:1: timeout: must be between 0 and 2592000, got -1",
            "test.conf:2: backend: unknown backend \"kqueue\" (valid: " BACKEND_NAMES ")",
            "test.conf:3: workers: must be between 1 and 64, got 99",
            "test.conf:4: unknown setting \"bogus\"",
            "test.conf:10: greeting: expected a string",
            "test.conf:9: ports: must be between 0 and 65535, got 99999",
            "test.conf:7: mode: unknown mode \"x\" (valid: echo, oneshot)",
            "test.conf:7: port 1 on all addresses is already listed at line 6" } },
};

static void test_invalid(void **state)
{
        const struct invalid_case *t = *state;
        size_t n = 0;

        while (n < MAX_ERRORS && t->errors[n])
                n++;
        assert_true(n > 0);
        assert_invalid(t->text, t->errors, n);
}

/* The limits on lengths and counts, just below and just above. */
static void test_invalid_lengths(void **state)
{
        char *s, *text;
        struct config *c;

        s = repeat('x', CONFIG_GREETING_MAX);
        text = xasprintf("greeting = \"%s\";\nports = [ 0 ];\n", s);
        c = load_ok(text);
        assert_int_equal(c->defaults.greeting_len, CONFIG_GREETING_MAX);
        assert_string_equal(c->defaults.greeting, s);
        config_free(c);
        free(text);
        text = xasprintf("\ngreeting = \"%sx\";\nports = [ 0 ];\n", s);
        assert_invalid1(text, "test.conf:2: greeting: longer than 4096 bytes");
        free(text);
        text = xasprintf("listen = ( { port = 1;\n greeting = \"%s\" \"y\"; } );\n", s);
        assert_invalid1(text, "test.conf:2: greeting: longer than 4096 bytes");
        free(text);
        free(s);

        s = repeat('s', CONFIG_SUFFIX_MAX);
        text = xasprintf("suffix = \"%s\";\nports = [ 0 ];\n", s);
        c = load_ok(text);
        assert_int_equal(c->defaults.suffix_len, CONFIG_SUFFIX_MAX);
        config_free(c);
        free(text);
        text = xasprintf("suffix = \"%ss\";\nports = [ 0 ];\n", s);
        assert_invalid1(text, "test.conf:1: suffix: longer than 1024 bytes");
        free(text);
        free(s);

        /* a UNIX socket's path: 107 bytes at most */
        s = repeat('c', CONFIG_CONTROL_SOCKET_MAX);
        s[0] = '/';
        text = xasprintf("control_socket = \"%s\";\nports = [ 0 ];\n", s);
        c = load_ok(text);
        assert_string_equal(c->control_socket, s);
        config_free(c);
        free(text);
        text = xasprintf("ports = [ 0 ];\ncontrol_socket = \"%sc\";\n", s);
        assert_invalid1(text, "test.conf:2: control_socket: longer than 107 bytes (the limit of a UNIX "
                        "socket's path)");
        free(text);
        free(s);

        s = repeat('n', CONFIG_NAME_MAX);
        text = xasprintf("listen = ( { port = 1; name = \"%s\"; } );\n", s);
        c = load_ok(text);
        assert_string_equal(c->listeners[0].name, s);
        config_free(c);
        free(text);
        text = xasprintf("listen = ( { port = 1; name = \"%sn\"; } );\n", s);
        {
                /* long values are cut in messages */
                char *cut = repeat('n', 79);
                char *msg = xasprintf("test.conf:1: name: invalid listener name \"%s...\" (1 to 255 "
                                      "printable ASCII characters, no spaces or colons)", cut);

                assert_invalid1(text, msg);
                free(msg);
                free(cut);
        }
        free(text);
        free(s);
}

static char *acl_text(const char *setting, size_t n)
{
        size_t size = 48 + n * 24, o;
        char *t = malloc(size);

        assert_non_null(t);
        o = (size_t) snprintf(t, size, "%s = [", setting);
        for (size_t i = 0; i < n; i++)
                o += (size_t) snprintf(t + o, size - o, "%s\"10.%zu.%zu.0/24\"", i ? ", " : " ",
                                       i / 256, i % 256);
        snprintf(t + o, size - o, " ];\nports = [ 0 ];\n");
        return t;
}

static void test_invalid_acl_count(void **state)
{
        struct config *c;
        char *text;

        text = acl_text("allow", CONFIG_ACL_MAX);
        c = load_ok(text);
        assert_int_equal(c->defaults.allow.n, CONFIG_ACL_MAX);
        config_free(c);
        free(text);

        text = acl_text("deny", CONFIG_ACL_MAX + 1);
        assert_invalid1(text, "test.conf:1: deny: more than 1024 entries");
        free(text);
}

/* select can watch FD_SETSIZE descriptors: clients + listeners + reserved +
 * each worker's own. */
#define FDS1 (CONFIG_RESERVED_FDS + CONFIG_FDS_PER_WORKER)      /* one worker */
static void test_invalid_select_capacity(void **state)
{
        unsigned at_most = FD_SETSIZE - 3 - FDS1;
        struct config *c;
        char *text, *msg;

        text = xasprintf("backend = \"select\";\nmax_connections = 10000;\nports = [ 1, 2, 3 ];\n");
        msg = xasprintf("test.conf:2: max_connections: 10000 is more than backend \"select\" can "
                        "watch (FD_SETSIZE %u): at most %u with 3 listeners and 1 worker", FD_SETSIZE, at_most);
        assert_invalid1(text, msg);
        free(text);
        free(msg);

        /* the order in the file does not matter */
        text = xasprintf("max_connections = %u;\nports = [ 1 ];\nbackend = \"select\";\n",
                         FD_SETSIZE - 1 - FDS1 + 1);
        msg = xasprintf("test.conf:1: max_connections: %u is more than backend \"select\" can "
                        "watch (FD_SETSIZE %u): at most %u with 1 listener and 1 worker",
                        FD_SETSIZE - 1 - FDS1 + 1, FD_SETSIZE,
                        FD_SETSIZE - 1 - FDS1);
        assert_invalid1(text, msg);
        free(text);
        free(msg);

        /* exactly at the limit is fine */
        text = xasprintf("backend = \"select\";\nmax_connections = %u;\nports = [ 1, 2, 3 ];\n",
                         at_most);
        c = load_ok(text);
        assert_int_equal(c->max_connections, at_most);
        assert_int_equal(c->n_listeners, 3);
        config_free(c);
        free(text);

        /* not set: the default is lowered to what fits */
        c = load_ok("backend = \"select\";\nports = [ 0 ];\n");
        assert_string_equal(c->backend, "select");
        assert_int_equal(c->max_connections, FD_SETSIZE - 1 - FDS1);
        config_free(c);
        c = load_ok("backend = \"select\";\nports = [ 0, 0, 8088 ];\n");
        assert_int_equal(c->max_connections, at_most);
        config_free(c);

        /* every worker's loop and wake-up descriptors count too */
        c = load_ok("backend = \"select\";\nworkers = 64;\nports = [ 8088 ];\n");
        assert_int_equal(c->max_connections,
                         FD_SETSIZE - 1 - CONFIG_RESERVED_FDS - 64 * CONFIG_FDS_PER_WORKER);
        assert_false(c->max_connections_set);
        config_free(c);
        text = xasprintf("backend = \"select\";\nworkers = 64;\nports = [ 8088 ];\nmax_connections = %u;\n",
                         FD_SETSIZE - 1 - CONFIG_RESERVED_FDS);
        msg = xasprintf("test.conf:4: max_connections: %u is more than backend \"select\" can "
                        "watch (FD_SETSIZE %u): at most %u with 1 listener and 64 workers",
                        FD_SETSIZE - 1 - CONFIG_RESERVED_FDS, FD_SETSIZE,
                        FD_SETSIZE - 1 - CONFIG_RESERVED_FDS - 64 * CONFIG_FDS_PER_WORKER);
        assert_invalid1(text, msg);
        free(text);
        free(msg);

        /* other backends have no limit of their own */
        c = load_ok("backend = \"poll\";\nmax_connections = 1000000;\nports = [ 1, 2, 3 ];\n");
        assert_int_equal(c->max_connections, 1000000);
        config_free(c);
}

/* ---- valid configurations ---------------------------------------------------- */

/* Every setting but a listener may be left out. */
static void test_defaults(void **state)
{
        static const char *const texts[] = {
                "ports = [ 0 ];",
                "# a comment\nports = [ 0 ];\n",
                "ports = [ 0 ];\n// a comment without a final newline",
                "/* a block\n comment */\nports = [];\nlisten = ( { port = 0; } );\nallow = [];\n"
                "deny = ( );\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                struct config *c = load_ok(texts[i]);

                assert_int_equal(c->timeout, 60);
                assert_string_equal(c->backend, "epoll");
                assert_null(c->backend_file);
                assert_int_equal(c->backend_line, 0);
                assert_int_equal(c->max_connections, 10000);
                assert_int_equal(c->log_level, LOG_LEVEL_INFO);
                assert_int_equal(c->shutdown_timeout, 5);
                assert_int_equal(c->workers, 1);
                assert_false(c->preserve_connections);
                assert_null(c->control_socket);        /* the compiled-in default */
                assert_default_opts(&c->defaults);
                assert_int_equal(c->n_listeners, 1);
                assert_null(c->listeners[0].address);
                assert_int_equal(c->listeners[0].port, 0);
                assert_default_opts(&c->listeners[0].opts);
                config_free(c);
        }
}

static void test_preserve_connections(void **state)
{
        struct config *c = load_ok("preserve_connections = true;\nports = [ 0 ];\n");

        (void) state;
        assert_true(c->preserve_connections);
        config_free(c);
        c = load_ok("preserve_connections = false;\nports = [ 0 ];\n");
        assert_false(c->preserve_connections);
        config_free(c);
}

/* control_socket: a path, or "" (no control socket). */
static void test_control_socket(void **state)
{
        struct config *c = load_ok("control_socket = \"/run/muxd/control\";\nports = [ 0 ];\n");

        assert_string_equal(c->control_socket, "/run/muxd/control");
        config_free(c);
        c = load_ok("control_socket = \"\";\nports = [ 0 ];\n");
        assert_string_equal(c->control_socket, "");
        config_free(c);
}

/* The example of SPEC.md section 3, as shipped in etc/muxd.conf. */
static const char spec_example[] =
        "# Idle seconds before a silent client is disconnected (0: never).\n"
        "timeout = 60;\n"
        "backend = \"epoll\";          # \"epoll\" | \"poll\" | \"select\"\n"
        "max_connections = 10000;    # when reached, muxd stops accepting until a client leaves\n"
        "log_level = \"info\";         # \"debug\" | \"info\" | \"notice\" | \"warning\" | \"err\"\n"
        "shutdown_timeout = 5;       # seconds to flush replies on stop before closing anyway\n"
        "workers = 1;                # event-loop threads sharing the listeners\n"
        "\n"
        "# Defaults for every listener; each may be overridden inside a listen entry.\n"
        "greeting = \"hello...\\n\";    # sent on connect; \"\" sends nothing\n"
        "suffix = \"hi...\";           # appended to every echoed message\n"
        "mode = \"echo\";              # \"echo\" | \"oneshot\"\n"
        "framing = \"line\";           # \"line\": a message ends at \\n\n"
        "max_message = 4096;         # longest message in bytes\n"
        "\n"
        "allow = [ \"127.0.0.0/8\", \"::1/128\" ];\n"
        "deny = [ ];\n"
        "max_per_source = 0;         # concurrent connections per client address; 0: no limit\n"
        "\n"
        "ports = [ 8088, 8008, 8080 ];          # the short form\n"
        "listen = (                             # the long form, per-listener overrides\n"
        "  { port = 9000; address = \"127.0.0.1\"; greeting = \"\"; mode = \"oneshot\"; name = \"probe\"; }\n"
        ");\n";

static void test_spec_example(void **state)
{
        static const char *const allow[] = { "127.0.0.0/8", "::1/128" };
        struct config *c = load_ok(spec_example);
        const struct listener_conf *l;

        assert_int_equal(c->timeout, 60);
        assert_string_equal(c->backend, "epoll");
        assert_int_equal(c->max_connections, 10000);
        assert_int_equal(c->log_level, LOG_LEVEL_INFO);
        assert_int_equal(c->shutdown_timeout, 5);
        assert_int_equal(c->workers, 1);
        assert_int_equal(c->max_sources, 65536);
        assert_string_equal(c->defaults.greeting, "hello...\n");
        assert_string_equal(c->defaults.suffix, "hi...");
        assert_int_equal(c->defaults.mode, MODE_ECHO);
        assert_int_equal(c->defaults.framing, FRAMING_LINE);
        assert_int_equal(c->defaults.max_message, 4096);
        assert_acl(&c->defaults.allow, allow, 2);
        assert_acl(&c->defaults.deny, NULL, 0);
        assert_int_equal(c->defaults.max_per_source, 0);

        assert_int_equal(c->n_listeners, 4);
        assert_entry(&c->listeners[0], NULL, 8088, NULL, 20);
        assert_entry(&c->listeners[1], NULL, 8008, NULL, 20);
        assert_entry(&c->listeners[2], NULL, 8080, NULL, 20);
        for (size_t i = 0; i < 3; i++) {
                assert_true(listener_opts_equal(&c->listeners[i].opts, &c->defaults));
                /* a deep copy, not shared */
                assert_ptr_not_equal(c->listeners[i].opts.greeting, c->defaults.greeting);
                assert_ptr_not_equal(c->listeners[i].opts.allow.entries, c->defaults.allow.entries);
        }

        l = &c->listeners[3];
        assert_entry(l, "127.0.0.1", 9000, "probe", 22);
        assert_string_equal(l->opts.greeting, "");
        assert_int_equal(l->opts.greeting_len, 0);
        assert_int_equal(l->opts.mode, MODE_ONESHOT);
        assert_string_equal(l->opts.suffix, "hi...");
        assert_int_equal(l->opts.framing, FRAMING_LINE);
        assert_int_equal(l->opts.max_message, 4096);
        assert_acl(&l->opts.allow, allow, 2);
        assert_int_equal(l->opts.deny.n, 0);
        assert_false(listener_opts_equal(&l->opts, &c->defaults));
        config_free(c);
}

static void test_every_setting(void **state)
{
        static const char *const allow[] = { "10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32" };
        static const char *const deny[] = { "10.66.0.0/16", "::/0" };
        struct config *c;

        c = load_ok("timeout = 0;\n"
                    "backend = \"poll\";\n"
                    "max_connections = 1000000;\n"
                    "log_level = \"debug\";\n"
                    "shutdown_timeout = 3600;\n"
                    "workers = 1;\n"
                    "greeting = \"\";\n"
                    "suffix = \" \\\"ok\\\"\\t\" \"!\";\n"
                    "mode = \"oneshot\";\n"
                    "framing = \"raw\";\n"
                    "max_message = 1048576;\n"
                    "allow = ( \"10.1.2.3/8\", \"192.168.1.7\", \"2001:db8:ffff::1/32\" );\n"
                    "deny = [ \"10.66.255.255/16\", \"::/0\" ];\n"
                    "max_per_source = 1000000;\n"
                    "max_rate_per_source = 1000000;\n"
                    "rate_burst = 1000000;\n"
                    "source_prefix_v4 = 32;\n"
                    "source_prefix_v6 = 128;\n"
                    "max_sources = 4194304;\n"
                    "listen = ( { port = 0; } );\n");
        assert_int_equal(c->timeout, 0);
        assert_string_equal(c->backend, "poll");
        assert_null(c->backend_file);
        assert_int_equal(c->backend_line, 2);   /* for main.c's message if the kernel refuses it */
        assert_int_equal(c->max_connections, 1000000);
        assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
        assert_int_equal(c->shutdown_timeout, 3600);
        assert_int_equal(c->workers, 1);
        assert_string_equal(c->defaults.greeting, "");
        assert_int_equal(c->defaults.greeting_len, 0);
        assert_string_equal(c->defaults.suffix, " \"ok\"\t!");
        assert_int_equal(c->defaults.suffix_len, 7);
        assert_int_equal(c->defaults.mode, MODE_ONESHOT);
        assert_int_equal(c->defaults.framing, FRAMING_RAW);
        assert_int_equal(c->defaults.max_message, 1048576);
        assert_acl(&c->defaults.allow, allow, 3);
        assert_acl(&c->defaults.deny, deny, 2);
        assert_int_equal(c->defaults.max_per_source, 1000000);
        assert_int_equal(c->defaults.max_rate_per_source, 1000000);
        assert_int_equal(c->defaults.rate_burst, 1000000);
        assert_int_equal(c->defaults.source_prefix_v4, 32);
        assert_int_equal(c->defaults.source_prefix_v6, 128);
        assert_int_equal(c->max_sources, 4194304);
        assert_int_equal(c->n_listeners, 1);
        assert_true(listener_opts_equal(&c->listeners[0].opts, &c->defaults));
        config_free(c);

        /* the other ends of the ranges, and each remaining level and backend */
        c = load_ok("timeout = 2592000;\nmax_connections = 1;\nshutdown_timeout = 0;\n"
                    "max_message = 1;\nlog_level = \"err\";\nbackend = \"select\";\n"
                    "workers = 64;\nmax_rate_per_source = 0;\nrate_burst = 0;\n"
                    "source_prefix_v4 = 1;\nsource_prefix_v6 = 1;\nmax_sources = 1;\nports = [ 0 ];\n");
        assert_int_equal(c->defaults.max_rate_per_source, 0);
        assert_int_equal(c->defaults.rate_burst, 0);
        assert_int_equal(c->defaults.source_prefix_v4, 1);
        assert_int_equal(c->defaults.source_prefix_v6, 1);
        assert_int_equal(c->max_sources, 1);
        assert_int_equal(c->timeout, 2592000);
        assert_int_equal(c->workers, 64);
        assert_int_equal(c->max_connections, 1);
        assert_int_equal(c->shutdown_timeout, 0);
        assert_int_equal(c->defaults.max_message, 1);
        assert_int_equal(c->log_level, LOG_LEVEL_ERR);
        assert_string_equal(c->backend, "select");
        assert_int_equal(c->backend_line, 6);
        config_free(c);

        c = load_ok("log_level = \"warning\";\nbackend = \"epoll\";\nports = [ 0 ];\n");
        assert_int_equal(c->log_level, LOG_LEVEL_WARNING);
        assert_string_equal(c->backend, "epoll");
        config_free(c);
        c = load_ok("log_level = \"notice\";\nports = [ 0 ];\n");
        assert_int_equal(c->log_level, LOG_LEVEL_NOTICE);
        config_free(c);
        c = load_ok("log_level = \"info\";\nports = [ 0 ];\n");
        assert_int_equal(c->log_level, LOG_LEVEL_INFO);
        config_free(c);
}

/* 64-bit and hex literals are integers too; settings may be written with ':' */
static void test_integer_forms_values(void **state)
{
        struct config *c;

        c = load_ok("timeout = 30L;\nmax_message = 0x1000;\nmax_per_source: 2;\n"
                    "ports = ( 0x1F90, 8009L );\nmax_connections = +7;\n");
        assert_int_equal(c->timeout, 30);
        assert_int_equal(c->defaults.max_message, 4096);
        assert_int_equal(c->defaults.max_per_source, 2);
        assert_int_equal(c->max_connections, 7);
        assert_int_equal(c->n_listeners, 2);
        assert_entry(&c->listeners[0], NULL, 8080, NULL, 4);
        assert_entry(&c->listeners[1], NULL, 8009, NULL, 4);
        config_free(c);

        /* every byte but NUL may be written as \xHH; "\\x00" is a backslash and "x00" */
        c = load_ok("greeting = \"\\x01\\xff\\\\x00\";\nsuffix = \"\\x0\";\nports = [ 0 ];\n");
        assert_string_equal(c->defaults.greeting, "\x01\xff\\x00");
        assert_string_equal(c->defaults.suffix, "\\x0");
        config_free(c);

        /* big literals in strings and comments are not numbers */
        c = load_ok("# 99999999999\ngreeting = \"99999999999\";\n/* 0x1FFFFFFFF */ timeout = 7;\n"
                    "// 5000000000\nports = [ 0 ];\n");
        assert_string_equal(c->defaults.greeting, "99999999999");
        assert_int_equal(c->timeout, 7);
        config_free(c);
}

/* The per-source limits: global defaults, overridden per listen entry. */
static void test_source_limits_override(void **state)
{
        struct config *c;
        const struct listener_opts *o;

        c = load_ok("max_rate_per_source = 10;\n"
                    "rate_burst = 40;\n"
                    "source_prefix_v4 = 24;\n"
                    "source_prefix_v6 = 48;\n"
                    "max_sources = 1000;\n"
                    "listen = (\n"
                    "  { port = 1000; },\n"
                    "  { port = 1001; max_rate_per_source = 0; source_prefix_v4 = 32; },\n"
                    "  { port = 1002; max_rate_per_source = 5; rate_burst = 0; source_prefix_v6 = 128; }\n"
                    ");\n");
        assert_int_equal(c->max_sources, 1000);
        assert_int_equal(c->n_listeners, 3);
        o = &c->listeners[0].opts;
        assert_true(listener_opts_equal(o, &c->defaults));
        assert_int_equal(o->max_rate_per_source, 10);
        assert_int_equal(o->rate_burst, 40);
        assert_int_equal(o->source_prefix_v4, 24);
        assert_int_equal(o->source_prefix_v6, 48);
        o = &c->listeners[1].opts;
        assert_int_equal(o->max_rate_per_source, 0);
        assert_int_equal(o->rate_burst, 40);
        assert_int_equal(o->source_prefix_v4, 32);
        assert_int_equal(o->source_prefix_v6, 48);
        o = &c->listeners[2].opts;
        assert_int_equal(o->max_rate_per_source, 5);
        assert_int_equal(o->rate_burst, 0);     /* the same as max_rate_per_source */
        assert_int_equal(o->source_prefix_v4, 24);
        assert_int_equal(o->source_prefix_v6, 128);
        config_free(c);
}

static void test_listen_overrides(void **state)
{
        static const char *const global_allow[] = { "10.0.0.0/8" };
        static const char *const entry_allow[] = { "192.168.0.0/16", "fd00::/8" };
        static const char *const global_deny[] = { "10.9.9.9/32" };
        struct config *c;
        const struct listener_conf *l;

        c = load_ok("greeting = \"G\\n\";\n"                                  /* 1 */
                    "suffix = \"S\";\n"                                       /* 2 */
                    "mode = \"oneshot\";\n"                                   /* 3 */
                    "framing = \"raw\";\n"                                    /* 4 */
                    "max_message = 100;\n"                                    /* 5 */
                    "allow = [ \"10.0.0.0/8\" ];\n"                           /* 6 */
                    "deny = [ \"10.9.9.9\" ];\n"                              /* 7 */
                    "max_per_source = 3;\n"                                   /* 8 */
                    "listen = (\n"                                            /* 9 */
                    "  {\n"                                                   /* 10 */
                    "    port = 1000; greeting = \"g\"; suffix = \"\"; mode = \"echo\";\n"
                    "    framing = \"line\"; max_message = 200; max_per_source = 0;\n"
                    "    allow = [ \"192.168.3.4/16\", \"fd00::1/8\" ]; deny = ( );\n"
                    "  },\n"                                                  /* 14 */
                    "  { port = 1001; },\n"                                   /* 15 */
                    "  { port = 1002; mode = \"echo\"; name = \"web-1_a.b\"; }\n" /* 16 */
                    ");\n"
                    "ports = [ 2000 ];\n");                                   /* 18 */

        assert_int_equal(c->n_listeners, 4);
        /* ports entries come first, whatever the order in the file */
        l = &c->listeners[0];
        assert_entry(l, NULL, 2000, NULL, 18);
        assert_true(listener_opts_equal(&l->opts, &c->defaults));
        assert_string_equal(l->opts.greeting, "G\n");
        assert_string_equal(l->opts.suffix, "S");
        assert_int_equal(l->opts.mode, MODE_ONESHOT);
        assert_int_equal(l->opts.framing, FRAMING_RAW);
        assert_int_equal(l->opts.max_message, 100);
        assert_acl(&l->opts.allow, global_allow, 1);
        assert_acl(&l->opts.deny, global_deny, 1);
        assert_int_equal(l->opts.max_per_source, 3);

        /* everything overridden; an empty deny list inherits */
        l = &c->listeners[1];
        assert_entry(l, NULL, 1000, NULL, 10);
        assert_string_equal(l->opts.greeting, "g");
        assert_int_equal(l->opts.greeting_len, 1);
        assert_string_equal(l->opts.suffix, "");
        assert_int_equal(l->opts.suffix_len, 0);
        assert_int_equal(l->opts.mode, MODE_ECHO);
        assert_int_equal(l->opts.framing, FRAMING_LINE);
        assert_int_equal(l->opts.max_message, 200);
        assert_int_equal(l->opts.max_per_source, 0);
        assert_acl(&l->opts.allow, entry_allow, 2);
        assert_acl(&l->opts.deny, global_deny, 1);

        /* nothing overridden */
        l = &c->listeners[2];
        assert_entry(l, NULL, 1001, NULL, 15);
        assert_true(listener_opts_equal(&l->opts, &c->defaults));

        /* one override */
        l = &c->listeners[3];
        assert_entry(l, NULL, 1002, "web-1_a.b", 16);
        assert_int_equal(l->opts.mode, MODE_ECHO);
        assert_string_equal(l->opts.greeting, "G\n");
        assert_int_equal(l->opts.max_message, 100);
        assert_false(listener_opts_equal(&l->opts, &c->defaults));

        /* the global values are untouched by the overrides */
        assert_int_equal(c->defaults.mode, MODE_ONESHOT);
        assert_int_equal(c->defaults.max_message, 100);
        assert_string_equal(c->defaults.greeting, "G\n");
        config_free(c);
}

static void test_listen_addresses(void **state)
{
        struct config *c;

        /* what the kernel binds together on one port: "::" (IPv6 only) and
         * "0.0.0.0"; "::" and IPv4 addresses; "0.0.0.0" and IPv6 addresses;
         * different addresses; port 0 (ephemeral) never conflicts */
        c = load_ok("ports = [ 8090, 0, 0 ];\n"
                    "listen = (\n"
                    "  { port = 8088; address = \"::\"; },\n"
                    "  { port = 8088; address = \"0.0.0.0\"; },\n"
                    "  { port = 8089; address = \"::1\"; },\n"
                    "  { port = 8089; address = \"127.0.0.1\"; },\n"
                    "  { port = 8089; address = \"127.0.0.2\"; },\n"
                    "  { port = 8089; address = \"0:0::2\"; },\n"
                    "  { port = 8091; address = \"::\"; },\n"
                    "  { port = 8091; address = \"10.0.0.1\"; },\n"
                    "  { port = 8092; address = \"0.0.0.0\"; },\n"
                    "  { port = 8092; address = \"fd00::1\"; },\n"
                    "  { port = 0; address = \"::1\"; },\n"
                    "  { port = 0; address = \"::\"; },\n"
                    "  { port = 0; address = \"127.0.0.1\"; },\n"
                    "  { port = 65535; address = \"2001:DB8::42\"; }\n"
                    ");\n");
        assert_int_equal(c->n_listeners, 17);
        assert_entry(&c->listeners[0], NULL, 8090, NULL, 1);
        assert_entry(&c->listeners[1], NULL, 0, NULL, 1);
        assert_entry(&c->listeners[2], NULL, 0, NULL, 1);
        assert_entry(&c->listeners[3], "::", 8088, NULL, 3);
        assert_entry(&c->listeners[4], "0.0.0.0", 8088, NULL, 4);
        assert_entry(&c->listeners[5], "::1", 8089, NULL, 5);
        assert_entry(&c->listeners[6], "127.0.0.1", 8089, NULL, 6);
        assert_entry(&c->listeners[7], "127.0.0.2", 8089, NULL, 7);
        /* stored as written */
        assert_entry(&c->listeners[8], "0:0::2", 8089, NULL, 8);
        assert_entry(&c->listeners[9], "::", 8091, NULL, 9);
        assert_entry(&c->listeners[10], "10.0.0.1", 8091, NULL, 10);
        assert_entry(&c->listeners[11], "0.0.0.0", 8092, NULL, 11);
        assert_entry(&c->listeners[12], "fd00::1", 8092, NULL, 12);
        assert_entry(&c->listeners[13], "::1", 0, NULL, 13);
        assert_entry(&c->listeners[14], "::", 0, NULL, 14);
        assert_entry(&c->listeners[15], "127.0.0.1", 0, NULL, 15);
        assert_entry(&c->listeners[16], "2001:DB8::42", 65535, NULL, 16);
        config_free(c);
}

/* ---- config_load on files ----------------------------------------------------- */

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        return 0;
}

static int teardown_tmpdir(void **state)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

static char *write_bytes(const char *name, const char *content, size_t len)
{
        char *path = xasprintf("%s/%s", tmpdir, name);
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fwrite(content, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        return path;
}

static char *write_file(const char *name, const char *content)
{
        return write_bytes(name, content, strlen(content));
}

static void test_metrics_listen(void **state)
{
        struct config *c;
        uint8_t v6[16];

        c = load_ok("ports = [ 8088 ];\n");
        assert_false(c->metrics);                       /* off by default */
        config_free(c);
        c = load_ok("ports = [ 8088 ];\nmetrics_listen = \"\";\n");
        assert_false(c->metrics);                       /* "" is off too */
        config_free(c);
        c = load_ok("ports = [ 8088 ];\nmetrics_listen = \"127.0.0.1:9188\";\n");
        assert_true(c->metrics);
        assert_int_equal(c->metrics_key.family, AF_INET);
        assert_int_equal(c->metrics_key.port, 9188);
        assert_memory_equal(c->metrics_key.addr, "\x7f\0\0\x01", 4);
        assert_string_equal(c->metrics_listen, "127.0.0.1:9188");
        assert_int_equal(c->metrics_line, 2);
        assert_null(c->metrics_file);
        config_free(c);
        /* another address on a listener's port is fine; port 0 picks one */
        c = load_ok("listen = ( { port = 9188; address = \"127.0.0.1\"; } );\n"
                    "metrics_listen = \"[::1]:0\";\n");
        assert_int_equal(c->metrics_key.family, AF_INET6);
        assert_int_equal(c->metrics_key.port, 0);
        assert_int_equal(inet_pton(AF_INET6, "::1", v6), 1);
        assert_memory_equal(c->metrics_key.addr, v6, 16);
        config_free(c);
        c = load_ok("listen = ( { port = 9188; address = \"127.0.0.1\"; } );\n"
                    "metrics_listen = \"127.0.0.2:9188\";\n");
        assert_true(c->metrics);
        config_free(c);
}

static void test_load_file(void **state)
{
        struct config_errors e = {};
        struct config *c = NULL;
        char *path, *msg;
        int r;

        path = write_file("ok.conf", spec_example);
        r = config_load(path, &c, &e);
        dump_errors(&e);
        assert_int_equal(r, 0);
        assert_int_equal(e.n, 0);
        assert_non_null(c);
        assert_string_equal(c->path, path);
        assert_int_equal(c->n_listeners, 4);
        assert_entry(&c->listeners[3], "127.0.0.1", 9000, "probe", 22);
        config_free(c);
        c = NULL;
        free(path);

        /* messages name the file as given */
        path = write_file("bad.conf", "timeout = 1;\nmode = \"chat\";\nports = [ 1, 1 ];\n");
        r = config_load(path, &c, &e);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        assert_int_equal(e.n, 2);
        msg = xasprintf("%s:2: mode: unknown mode \"chat\" (valid: echo, oneshot)", path);
        assert_string_equal(e.msgs[0], msg);
        free(msg);
        msg = xasprintf("%s:3: port 1 on all addresses is already listed at line 3", path);
        assert_string_equal(e.msgs[1], msg);
        free(msg);
        config_errors_clear(&e);
        free(path);

        path = write_file("syntax.conf", "timeout = 1;\n\nmode = ;\n");
        r = config_load(path, &c, &e);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        msg = xasprintf("%s:3: syntax error", path);
        assert_errors(&e, (const char *const[]) { msg }, 1);
        free(msg);
        config_errors_clear(&e);
        free(path);

        /* libconfig would stop reading at a NUL byte */
        {
                static const char nul[] = "timeout = 1;\nmode = \"echo\0\";\n";

                path = write_bytes("nul.conf", nul, sizeof(nul) - 1);
        }
        r = config_load(path, &c, &e);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        msg = xasprintf("%s:2: unexpected NUL byte", path);
        assert_errors(&e, (const char *const[]) { msg }, 1);
        free(msg);
        config_errors_clear(&e);
        free(path);
}

static void test_load_file_unreadable(void **state)
{
        struct config_errors e = {};
        struct config *c = NULL;
        char *path, *msg;
        int r;

        path = xasprintf("%s/missing.conf", tmpdir);
        r = config_load(path, &c, &e);
        assert_int_equal(r, -ENOENT);
        assert_null(c);
        msg = xasprintf("%s: cannot read: %s", path, strerror(ENOENT));
        assert_errors(&e, (const char *const[]) { msg }, 1);
        free(msg);
        config_errors_clear(&e);
        free(path);

        r = config_load(tmpdir, &c, &e);
        assert_int_equal(r, -EISDIR);
        assert_null(c);
        msg = xasprintf("%s: cannot read: %s", tmpdir, strerror(EISDIR));
        assert_errors(&e, (const char *const[]) { msg }, 1);
        free(msg);
        config_errors_clear(&e);

        /* errs may be NULL */
        r = config_load("/nonexistent/muxd.conf", &c, NULL);
        assert_int_equal(r, -ENOENT);
        assert_null(c);
        r = config_load_string("timeout = -1;\n", "test.conf", &c, NULL);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
}

/* @include is libconfig's: relative to the including file's directory; messages
 * name the included file. */
static void test_load_include(void **state)
{
        struct config_errors e = {};
        struct config *c = NULL;
        char *path, *inc, *msg;
        int r;

        inc = write_file("listeners.inc", "ports = [ 7000 ];\nmode = \"oneshot\";\n");
        path = write_file("main.conf", "timeout = 9;\n@include \"listeners.inc\"\n");
        r = config_load(path, &c, &e);
        dump_errors(&e);
        assert_int_equal(r, 0);
        assert_int_equal(c->timeout, 9);
        assert_int_equal(c->defaults.mode, MODE_ONESHOT);
        assert_int_equal(c->n_listeners, 1);
        assert_int_equal(c->listeners[0].port, 7000);
        config_free(c);
        c = NULL;
        free(path);
        free(inc);

        inc = write_file("bad.inc", "\nmode = \"chat\";\n");
        path = write_file("main2.conf", "@include \"bad.inc\"\ntimeout = -2;\nports = [ 0 ];\n");
        r = config_load(path, &c, &e);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        msg = xasprintf("%s:2: timeout: must be between 0 and 2592000, got -2", path);
        assert_errors(&e, (const char *const[]) {
                "bad.inc:2: mode: unknown mode \"chat\" (valid: echo, oneshot)", msg }, 2);
        free(msg);
        config_errors_clear(&e);
        free(path);
        free(inc);
}

/* The backend's place, which main.c names when the kernel refuses it: the
 * included file and its line there. */
static void test_load_include_backend(void **state)
{
        struct config_errors e = {};
        struct config *c = NULL;
        char *path, *inc;
        int r;

        inc = write_file("backend.inc", "\n\nbackend = \"poll\";\n");
        path = write_file("main3.conf", "ports = [ 0 ];\n@include \"backend.inc\"\n");
        r = config_load(path, &c, &e);
        dump_errors(&e);
        assert_int_equal(r, 0);
        assert_string_equal(c->backend, "poll");
        assert_string_equal(c->backend_file, "backend.inc");
        assert_int_equal(c->backend_line, 3);
        config_free(c);
        free(path);
        free(inc);
}

/* config_load(path) fails with exactly these messages. */
static void assert_load_invalid(const char *path, const char *const *expected, size_t n)
{
        struct config_errors e = {};
        struct config *c = NULL;
        int r;

        r = config_load(path, &c, &e);
        assert_errors(&e, expected, n);
        assert_int_equal(r, -EINVAL);
        assert_null(c);
        config_errors_clear(&e);
}

/* Included files get the checks of the main file: integers libconfig 1.5
 * wraps, the lines of string list elements, NUL bytes; nested, and matched by
 * file as well as by line. */
static void test_load_include_checked(void **state)
{
        char *path, *inc, *inc2, *msg, *sub, *cwd;
        struct config *c;

        /* 4294994298 and 4294967298 would become port 27002 and timeout 2 */
        inc = write_file("wrap.inc", "ports = [ 4294994298 ];\ntimeout = 4294967298;\n"
                         "max_connections = 4294967297;\n");
        path = write_file("wrap.conf", "@include \"wrap.inc\"\n");
        assert_load_invalid(path, (const char *const[]) {
                "wrap.inc:2: timeout: must be between 0 and 2592000, got 4294967298",
                "wrap.inc:3: max_connections: must be between 1 and 1000000, got 4294967297",
                "wrap.inc:1: ports: must be between 0 and 65535, got 4294994298" }, 3);
        free(path);

        /* the same, without an include directory (config_load_string) */
        {
                char *text = xasprintf("@include \"%s\"\n", inc);
                char *expected[] = {
                        xasprintf("%s:2: timeout: must be between 0 and 2592000, got 4294967298", inc),
                        xasprintf("%s:3: max_connections: must be between 1 and 1000000, got 4294967297",
                                  inc),
                        xasprintf("%s:1: ports: must be between 0 and 65535, got 4294994298", inc),
                };

                assert_invalid(text, (const char *const *) expected, ELEMENTSOF(expected));
                for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                        free(expected[i]);
                free(text);
        }
        free(inc);

        /* nested: a file included by an included file (libconfig 1.5 takes
         * every relative path from the main file's directory) */
        sub = xasprintf("%s/sub", tmpdir);
        assert_int_equal(mkdir(sub, 0700), 0);
        inc2 = write_file("sub/inner.inc", "\n\nshutdown_timeout = 0x100000005;\n");
        inc = write_file("sub/outer.inc", "workers = 1;\n@include \"sub/inner.inc\"\n"
                         "max_message = 4294967396;\n");
        path = write_file("nested.conf", "ports = [ 1 ];\n@include \"sub/outer.inc\"\n"
                          "timeout = 4294967306;\n");
        msg = xasprintf("%s:3: timeout: must be between 0 and 2592000, got 4294967306", path);
        assert_load_invalid(path, (const char *const[]) {
                "sub/inner.inc:3: shutdown_timeout: must be between 0 and 3600, got 0x100000005",
                "sub/outer.inc:3: max_message: must be between 1 and 1048576, got 4294967396",
                msg }, 3);
        free(msg);
        free(path);
        free(inc);
        free(inc2);

        /* by file as well as by line: the included "port" wraps to 5 on line 2,
         * like the main file's own "port = 5" on line 2, which is fine */
        inc = write_file("entry.inc", "\nport = 4294967301;\n");
        path = write_file("entry.conf", "listen = (\n  { port = 5; },\n  {\n"
                          "@include \"entry.inc\"\n  }\n);\n");
        assert_load_invalid(path, (const char *const[]) {
                "entry.inc:2: port: must be between 0 and 65535, got 4294967301" }, 1);
        free(path);
        free(inc);

        /* a string element is reported at its own line, not at the next token's */
        inc = write_file("acl.inc", "allow = [\n  \"10.0.0.0/8\",\n  \"bad\"\n];\n");
        path = write_file("acl.conf", "ports = [ 1 ];\n@include \"acl.inc\"\n");
        assert_load_invalid(path, (const char *const[]) {
                "acl.inc:3: allow: invalid address or CIDR \"bad\"" }, 1);
        free(path);
        free(inc);

        /* libconfig would silently cut "echo\0" to "echo" in an included file too */
        {
                static const char nul[] = "ports = [ 1 ];\ngreeting = \"hi\0there\";\n";

                inc = write_bytes("nul.inc", nul, sizeof(nul) - 1);
        }
        path = write_file("nul-inc.conf", "@include \"nul.inc\"\n");
        assert_load_invalid(path, (const char *const[]) { "nul.inc:2: unexpected NUL byte" }, 1);
        free(path);
        free(inc);

        /* \x00 is refused in an included file too */
        inc = write_file("nul-escape.inc", "\nsuffix = \"\\x00\";\nallow = [ \"::1\",\n  \"\\x00\" ];\n");
        path = write_file("nul-escape.conf", "ports = [ 1 ];\n@include \"nul-escape.inc\"\n");
        assert_load_invalid(path, (const char *const[]) {
                "nul-escape.inc:2: suffix: \\x00 (a NUL byte) is not allowed in a string",
                "nul-escape.inc:4: allow: \\x00 (a NUL byte) is not allowed in a string" }, 2);
        free(path);
        free(inc);

        /* a relative path to the main file: includes are read from its directory */
        cwd = getcwd(NULL, 0);
        assert_non_null(cwd);
        assert_int_equal(chdir(tmpdir), 0);
        inc = write_file("sub/rel.inc", "timeout = 4294967296;\n");
        path = write_file("sub/rel.conf", "ports = [ 1 ];\n@include \"rel.inc\"\n");
        assert_load_invalid("sub/rel.conf", (const char *const[]) {
                "rel.inc:1: timeout: must be between 0 and 2592000, got 4294967296" }, 1);
        assert_int_equal(chdir(cwd), 0);
        free(cwd);
        free(path);
        free(inc);

        /* and what fits is taken as written */
        inc = write_file("fine.inc", "timeout = 0x10;\nports = [ 65535, 0x1F90 ];\n");
        path = write_file("fine.conf", "@include \"fine.inc\"\n");
        {
                struct config_errors e = {};

                c = NULL;
                assert_int_equal(config_load(path, &c, &e), 0);
                assert_int_equal(e.n, 0);
        }
        assert_int_equal(c->timeout, 16);
        assert_int_equal(c->n_listeners, 2);
        assert_int_equal(c->listeners[0].port, 65535);
        assert_int_equal(c->listeners[1].port, 8080);
        config_free(c);
        free(path);
        free(inc);
        free(sub);
}

/* Entries written in an included file are reported with its name and lines. */
static void test_load_include_listeners(void **state)
{
        char *path, *inc, *msg;

        inc = write_file("more.inc", "# more listeners\nlisten = (\n"
                         "  { port = 8088; address = \"127.0.0.1\"; name = \"a\"; },\n"
                         "  { port = 9; },\n  { port = 9; name = \"a\"; }\n);\n");
        path = write_file("more.conf", "ports = [ 8088 ];\n@include \"more.inc\"\n");
        msg = xasprintf("more.inc:3: port 8088 on 127.0.0.1 conflicts with port 8088 on all addresses "
                        "at %s:1 (all addresses is one dual-stack socket for every IPv4 and IPv6 "
                        "address)", path);
        assert_load_invalid(path, (const char *const[]) {
                "more.inc:5: name: \"a\" is already used by the entry at line 3",
                msg,
                "more.inc:5: port 9 on all addresses is already listed at line 4" }, 3);
        free(msg);
        free(path);
        free(inc);
}

/* ---- listener_opts, log levels -------------------------------------------------- */

/* proxy_protocol, proxy_from, proxy_timeout: global defaults, per-entry overrides. */
static void test_proxy_settings(void **state)
{
        static const char *const global_from[] = { "10.0.0.1/32", "fd00::/64" };
        static const char *const entry_from[] = { "127.0.0.0/8" };
        struct config *c;
        const struct listener_conf *l;

        (void) state;
        c = load_ok("proxy_protocol = \"v1\";\n"
                    "proxy_from = [ \"10.0.0.1\", \"fd00::/64\" ];\n"
                    "proxy_timeout = 10;\n"
                    "ports = [ 7000 ];\n"
                    "listen = (\n"
                    "  { port = 7001; proxy_protocol = \"v2\"; proxy_from = [ \"127.0.0.0/8\" ]; },\n"
                    "  { port = 7002; proxy_protocol = \"any\"; proxy_timeout = 1; },\n"
                    "  { port = 7003; proxy_protocol = \"off\"; }\n"
                    ");\n");
        assert_int_equal(c->n_listeners, 4);
        l = &c->listeners[0];
        assert_int_equal(l->opts.proxy_protocol, PROXY_V1);
        assert_acl(&l->opts.proxy_from, global_from, 2);
        assert_int_equal(l->opts.proxy_timeout, 10);
        l = &c->listeners[1];
        assert_int_equal(l->opts.proxy_protocol, PROXY_V2);
        assert_acl(&l->opts.proxy_from, entry_from, 1);
        assert_int_equal(l->opts.proxy_timeout, 10);
        l = &c->listeners[2];
        assert_int_equal(l->opts.proxy_protocol, PROXY_ANY);
        assert_acl(&l->opts.proxy_from, global_from, 2);
        assert_int_equal(l->opts.proxy_timeout, 1);
        l = &c->listeners[3];
        assert_int_equal(l->opts.proxy_protocol, PROXY_OFF);
        assert_int_equal(c->defaults.proxy_protocol, PROXY_V1);
        config_free(c);

        /* proxy_from alone (proxy_protocol off) is no error: it is unused */
        c = load_ok("proxy_from = [ \"10.0.0.1\" ];\nports = [ 7000 ];\n");
        assert_int_equal(c->listeners[0].opts.proxy_protocol, PROXY_OFF);
        config_free(c);
}

static void test_listener_opts_copy_equal(void **state)
{
        struct config *c = load_ok("allow = [ \"10.0.0.0/8\" ];\ndeny = [ \"10.1.0.0/16\" ];\n"
                                   "proxy_from = [ \"10.2.0.0/16\" ];\nports = [ 0 ];\n");
        struct listener_opts a, b;

        assert_int_equal(listener_opts_copy(&a, &c->defaults), 0);
        assert_true(listener_opts_equal(&a, &c->defaults));
        assert_ptr_not_equal(a.greeting, c->defaults.greeting);
        assert_ptr_not_equal(a.suffix, c->defaults.suffix);
        assert_ptr_not_equal(a.allow.entries, c->defaults.allow.entries);
        assert_ptr_not_equal(a.deny.entries, c->defaults.deny.entries);
        assert_ptr_not_equal(a.proxy_from.entries, c->defaults.proxy_from.entries);

#define CHANGED(stmt) do {                                              \
                assert_int_equal(listener_opts_copy(&b, &a), 0);          \
                assert_true(listener_opts_equal(&a, &b));                 \
                stmt;                                                   \
                assert_false(listener_opts_equal(&a, &b));                \
                assert_false(listener_opts_equal(&b, &a));                \
                listener_opts_done(&b);                                   \
        } while (0)

        CHANGED(b.greeting_len--);
        CHANGED(b.greeting[0] = 'H');
        CHANGED(b.suffix[4] = '!');
        CHANGED(b.suffix_len = 0);
        CHANGED(b.mode = MODE_ONESHOT);
        CHANGED(b.framing = FRAMING_RAW);
        CHANGED(b.max_message++);
        CHANGED(b.max_per_source = 1);
        CHANGED(b.max_rate_per_source = 9);
        CHANGED(b.rate_burst = 9);
        CHANGED(b.source_prefix_v4 = 24);
        CHANGED(b.source_prefix_v6 = 48);
        CHANGED(b.allow.n = 0);
        CHANGED(b.allow.entries[0].prefix = 9);
        CHANGED(b.deny.entries[0].addr[1] = 2);
        CHANGED(b.deny.entries[0].family = AF_INET6);
        CHANGED(b.proxy_protocol = PROXY_ANY);
        CHANGED(b.proxy_from.entries[0].prefix = 24);
        CHANGED(b.proxy_from.n = 0);
        CHANGED(b.proxy_timeout = 4);
#undef CHANGED

        listener_opts_done(&a);
        assert_null(a.greeting);
        assert_null(a.allow.entries);
        listener_opts_done(&a);           /* zeroed: fine */
        listener_opts_done(NULL);
        config_free(c);
        config_free(NULL);
        config_errors_clear(NULL);
}

static void test_log_levels(void **state)
{
        static const struct {
                const char *name;
                enum log_level level;
        } levels[] = {
                { "err", LOG_LEVEL_ERR }, { "warning", LOG_LEVEL_WARNING },
                { "notice", LOG_LEVEL_NOTICE }, { "info", LOG_LEVEL_INFO },
                { "debug", LOG_LEVEL_DEBUG },
        };

        for (size_t i = 0; i < ELEMENTSOF(levels); i++) {
                assert_string_equal(log_level_to_string(levels[i].level), levels[i].name);
                assert_int_equal(log_level_from_string(levels[i].name), levels[i].level);
        }
        assert_int_equal(LOG_LEVEL_ERR, 3);
        assert_int_equal(LOG_LEVEL_DEBUG, 7);
        assert_int_equal(log_level_from_string("error"), -EINVAL);
        assert_int_equal(log_level_from_string("Debug"), -EINVAL);
        assert_int_equal(log_level_from_string(""), -EINVAL);
        assert_int_equal(log_level_from_string(NULL), -EINVAL);
        assert_null(log_level_to_string((enum log_level) 2));
        assert_null(log_level_to_string((enum log_level) 8));
}

/* ---- main -------------------------------------------------------------------- */

int main(int argc, char **argv)
{
        struct CMUnitTest invalid_configs[ELEMENTSOF(invalid_cases)];
        const struct CMUnitTest other_invalid_configs[] = {
                cmocka_unit_test(test_invalid_lengths),
                cmocka_unit_test(test_invalid_acl_count),
                cmocka_unit_test(test_invalid_select_capacity),
        };
        const struct CMUnitTest valid_configs[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_control_socket),
                cmocka_unit_test(test_preserve_connections),
                cmocka_unit_test(test_spec_example),
                cmocka_unit_test(test_every_setting),
                cmocka_unit_test(test_integer_forms_values),
                cmocka_unit_test(test_listen_overrides),
                cmocka_unit_test(test_source_limits_override),
                cmocka_unit_test(test_proxy_settings),
                cmocka_unit_test(test_listen_addresses),
                cmocka_unit_test(test_metrics_listen),
        };
        const struct CMUnitTest files[] = {
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_load_file_unreadable),
                cmocka_unit_test(test_load_include),
                cmocka_unit_test(test_load_include_backend),
                cmocka_unit_test(test_load_include_checked),
                cmocka_unit_test(test_load_include_listeners),
        };
        const struct CMUnitTest helpers[] = {
                cmocka_unit_test(test_listener_opts_copy_equal),
                cmocka_unit_test(test_log_levels),
        };
        int failed = 0;

        test_main_args(argc, argv);
        for (size_t i = 0; i < ELEMENTSOF(invalid_cases); i++)
                invalid_configs[i] = (struct CMUnitTest) {
                        .name = invalid_cases[i].name,
                        .test_func = test_invalid,
                        .initial_state = &invalid_cases[i],
                };

        failed += cmocka_run_group_tests(invalid_configs, NULL, NULL);
        failed += cmocka_run_group_tests(other_invalid_configs, NULL, NULL);
        failed += cmocka_run_group_tests(valid_configs, NULL, NULL);
        failed += cmocka_run_group_tests(files, setup_tmpdir, teardown_tmpdir);
        failed += cmocka_run_group_tests(helpers, NULL, NULL);
        return failed == 0 ? 0 : 1;
}
