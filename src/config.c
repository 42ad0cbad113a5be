/* SPDX-License-Identifier: MIT */
/* Configuration: the schema. Parse /etc/muxd.conf with libconfig, check every
 * setting (types, ranges, listeners that can be bound together) into a
 * struct config, and collect every problem as a "FILE:LINE: message" string
 * (config-errors.c). What libconfig 1.5 reads wrong is read again by the
 * pre-pass (config-scan.c). Never logs, and never asks the kernel whether it
 * can run the backend (main.c does, see ev_backend_check()). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libconfig.h>

#include "config.h"
#include "config-internal.h"
#include "config-scan.h"
#include "event.h"
#include "util.h"

#define CONFIG_DEFAULT_GREETING "hello...\n"
#define CONFIG_DEFAULT_SUFFIX   "hi..."
#define CONFIG_DEFAULT_BACKEND  "epoll"

/* ---- typed values ----------------------------------------------------------- */

static bool setting_is_int(const config_setting_t *s)
{
        int t = config_setting_type(s);

        return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* An integer in [min, max] named name (for messages) from s. */
static int get_int_range(struct config_parser *p, const config_setting_t *s, const char *name,
                         long long min, long long max, long long *ret)
{
        const char *text;
        size_t len;
        long long v;

        if (!setting_is_int(s)) {
                config_error_at(p, s, "%s: expected an integer", name);
                return -EINVAL;
        }
        v = config_setting_get_int64(s);
        text = config_scan_wrapped_int(p, s, v, &len);
        if (text) {
                config_error_at(p, s, "%s: must be between %lld and %lld, got %.*s",
                                name, min, max, (int) len, text);
                return -ERANGE;
        }
        if (v < min || v > max) {
                config_error_at(p, s, "%s: must be between %lld and %lld, got %lld", name, min, max, v);
                return -ERANGE;
        }
        *ret = v;
        return 0;
}

static void get_bool(struct config_parser *p, const config_setting_t *s, bool *ret)
{
        if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
                config_error_at(p, s, "%s: expected true or false", config_setting_name(s));
                return;
        }
        *ret = config_setting_get_bool(s);
}

static int get_u32(struct config_parser *p, const config_setting_t *s, long long min, long long max,
                   uint32_t *ret)
{
        long long v;
        int r;

        r = get_int_range(p, s, config_setting_name(s), min, max, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t) v;
        return 0;
}

/* A string written with \x00 is refused: libconfig has dropped the NUL. */
static bool string_has_nul(struct config_parser *p, const config_setting_t *s, const char *name)
{
        if (!config_scan_string_had_nul(p, s))
                return false;
        config_error_at(p, s, "%s: \\x00 (a NUL byte) is not allowed in a string", name);
        return true;
}

static const char *get_string(struct config_parser *p, const config_setting_t *s)
{
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
                config_error_at(p, s, "%s: expected a string", config_setting_name(s));
                return NULL;
        }
        if (string_has_nul(p, s, config_setting_name(s)))
                return NULL;
        return config_setting_get_string(s);
}

/* "list" settings: a libconfig array or list (both written [..] / (..)). */
static bool setting_is_sequence(const config_setting_t *s)
{
        int t = config_setting_type(s);

        return t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST;
}

/* ---- enums -------------------------------------------------------------- */

static const char *const log_level_names[] = {
        [LOG_LEVEL_ERR] = "err",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_NOTICE] = "notice",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

const char *log_level_to_string(enum log_level l)
{
        if ((unsigned) l >= ELEMENTSOF(log_level_names))
                return NULL;
        return log_level_names[l];
}

int log_level_from_string(const char *s)
{
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(log_level_names); i++)
                if (log_level_names[i] && strcmp(log_level_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

/* ---- listener_opts ------------------------------------------------------------ */

void listener_opts_done(struct listener_opts *o)
{
        if (!o)
                return;
        free(o->greeting);
        free(o->suffix);
        acl_done(&o->allow);
        acl_done(&o->deny);
        acl_done(&o->proxy_from);
        *o = (struct listener_opts) {};
}

static char *memdup_nul(const char *s, size_t len)
{
        char *d = malloc(len + 1);

        if (!d)
                return NULL;
        memcpy(d, s, len);
        d[len] = '\0';
        return d;
}

int listener_opts_copy(struct listener_opts *dst, const struct listener_opts *src)
{
        struct listener_opts o = *src;

        o.greeting = memdup_nul(src->greeting ? src->greeting : "", src->greeting_len);
        o.suffix = memdup_nul(src->suffix ? src->suffix : "", src->suffix_len);
        o.allow = (struct acl) {};
        o.deny = (struct acl) {};
        o.proxy_from = (struct acl) {};
        if (!o.greeting || !o.suffix ||
            acl_copy(&o.allow, &src->allow) < 0 || acl_copy(&o.deny, &src->deny) < 0 ||
            acl_copy(&o.proxy_from, &src->proxy_from) < 0) {
                listener_opts_done(&o);
                *dst = (struct listener_opts) {};
                return -ENOMEM;
        }
        *dst = o;
        return 0;
}

static bool bytes_equal(const char *a, size_t alen, const char *b, size_t blen)
{
        return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

bool listener_opts_equal(const struct listener_opts *a, const struct listener_opts *b)
{
        return bytes_equal(a->greeting, a->greeting_len, b->greeting, b->greeting_len) &&
                bytes_equal(a->suffix, a->suffix_len, b->suffix, b->suffix_len) &&
                a->mode == b->mode &&
                a->framing == b->framing &&
                a->max_message == b->max_message &&
                acl_equal(&a->allow, &b->allow) &&
                acl_equal(&a->deny, &b->deny) &&
                a->max_per_source == b->max_per_source &&
                a->max_rate_per_source == b->max_rate_per_source &&
                a->rate_burst == b->rate_burst &&
                a->source_prefix_v4 == b->source_prefix_v4 &&
                a->source_prefix_v6 == b->source_prefix_v6 &&
                a->proxy_protocol == b->proxy_protocol &&
                acl_equal(&a->proxy_from, &b->proxy_from) &&
                a->proxy_timeout == b->proxy_timeout;
}

static int listener_opts_init_defaults(struct listener_opts *o)
{
        *o = (struct listener_opts) {
                .greeting = strdup(CONFIG_DEFAULT_GREETING),
                .greeting_len = strlen(CONFIG_DEFAULT_GREETING),
                .suffix = strdup(CONFIG_DEFAULT_SUFFIX),
                .suffix_len = strlen(CONFIG_DEFAULT_SUFFIX),
                .mode = MODE_ECHO,
                .framing = FRAMING_LINE,
                .max_message = CONFIG_DEFAULT_MAX_MESSAGE,
                .max_per_source = 0,
                .max_rate_per_source = 0,
                .rate_burst = 0,
                .source_prefix_v4 = CONFIG_DEFAULT_PREFIX_V4,
                .source_prefix_v6 = CONFIG_DEFAULT_PREFIX_V6,
                .proxy_protocol = PROXY_OFF,
                .proxy_timeout = CONFIG_DEFAULT_PROXY_TIMEOUT,
        };
        if (!o->greeting || !o->suffix) {
                listener_opts_done(o);
                return -ENOMEM;
        }
        return 0;
}

/* ---- config ---------------------------------------------------------------- */

void config_free(struct config *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->backend);
        free(c->backend_file);
        free(c->control_socket);
        free(c->metrics_listen);
        free(c->metrics_file);
        listener_opts_done(&c->defaults);
        for (size_t i = 0; i < c->n_listeners; i++) {
                free(c->listeners[i].name);
                free(c->listeners[i].address);
                free(c->listeners[i].file);
                listener_opts_done(&c->listeners[i].opts);
        }
        free(c->listeners);
        free(c);
}

static bool name_in(const char *name, const char *const *names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(name, names[i]) == 0)
                        return true;
        return false;
}

static const char *const global_only_names[] = {
        "timeout", "backend", "max_connections", "log_level", "shutdown_timeout", "workers",
        "max_sources", "ports", "listen", "control_socket", "metrics_listen", "preserve_connections",
};

static const char *const entry_only_names[] = { "port", "address", "name" };

/* A string setting of at most max bytes into *dst / *dst_len. */
static void parse_bytes(struct config_parser *p, const config_setting_t *s, size_t max,
                        char **dst, size_t *dst_len)
{
        const char *v = get_string(p, s);
        size_t len;
        char *d;

        if (!v)
                return;
        len = strlen(v);
        if (len > max) {
                config_error_at(p, s, "%s: longer than %zu bytes", config_setting_name(s), max);
                return;
        }
        d = strdup(v);
        if (!d) {
                p->oom = true;
                return;
        }
        free(*dst);
        *dst = d;
        *dst_len = len;
}

/* allow / deny: a non-empty list replaces *dst; an empty one leaves it alone. */
static void parse_acl(struct config_parser *p, const config_setting_t *s, struct acl *dst)
{
        const char *name = config_setting_name(s);
        struct acl a = {};
        int n;
        bool bad = false;

        if (!setting_is_sequence(s)) {
                config_error_at(p, s, "%s: expected a list of addresses or CIDRs", name);
                return;
        }
        n = config_setting_length(s);
        if (n == 0)
                return;
        if ((unsigned) n > CONFIG_ACL_MAX) {
                config_error_at(p, s, "%s: more than %u entries", name, CONFIG_ACL_MAX);
                return;
        }
        a.entries = calloc((size_t) n, sizeof(struct cidr));
        if (!a.entries) {
                p->oom = true;
                return;
        }
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                char q[CONFIG_QUOTE_BUF];
                const char *v;

                if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                        config_error_at(p, e, "%s: expected a list of addresses or CIDRs", name);
                        bad = true;
                        break;
                }
                if (string_has_nul(p, e, name)) {
                        bad = true;
                        continue;
                }
                v = config_setting_get_string(e);
                if (cidr_parse(v, &a.entries[a.n]) < 0) {
                        config_error_at(p, e, "%s: invalid address or CIDR %s", name, config_quote(v, q));
                        bad = true;
                        continue;
                }
                a.n++;
        }
        if (bad) {
                acl_done(&a);
                return;
        }
        acl_done(dst);
        *dst = a;
}

/* Per-listener settings (global defaults or inside a listen entry). Returns
 * false if name is not one. */
static bool parse_listen_opt(struct config_parser *p, const config_setting_t *s, struct listener_opts *o)
{
        const char *name = config_setting_name(s);
        char q[CONFIG_QUOTE_BUF];
        const char *v;
        uint32_t bits;

        if (strcmp(name, "greeting") == 0)
                parse_bytes(p, s, CONFIG_GREETING_MAX, &o->greeting, &o->greeting_len);
        else if (strcmp(name, "suffix") == 0)
                parse_bytes(p, s, CONFIG_SUFFIX_MAX, &o->suffix, &o->suffix_len);
        else if (strcmp(name, "mode") == 0) {
                v = get_string(p, s);
                if (!v)
                        return true;
                if (strcmp(v, "echo") == 0)
                        o->mode = MODE_ECHO;
                else if (strcmp(v, "oneshot") == 0)
                        o->mode = MODE_ONESHOT;
                else
                        config_error_at(p, s, "mode: unknown mode %s (valid: echo, oneshot)",
                                        config_quote(v, q));
        } else if (strcmp(name, "framing") == 0) {
                v = get_string(p, s);
                if (!v)
                        return true;
                if (strcmp(v, "line") == 0)
                        o->framing = FRAMING_LINE;
                else if (strcmp(v, "raw") == 0)
                        o->framing = FRAMING_RAW;
                else
                        config_error_at(p, s, "framing: unknown framing %s (valid: line, raw)",
                                        config_quote(v, q));
        } else if (strcmp(name, "max_message") == 0)
                (void) get_u32(p, s, 1, CONFIG_MAX_MESSAGE_MAX, &o->max_message);
        else if (strcmp(name, "max_per_source") == 0)
                (void) get_u32(p, s, 0, CONFIG_MAX_PER_SOURCE_MAX, &o->max_per_source);
        else if (strcmp(name, "max_rate_per_source") == 0)
                (void) get_u32(p, s, 0, CONFIG_MAX_RATE_MAX, &o->max_rate_per_source);
        else if (strcmp(name, "rate_burst") == 0)
                (void) get_u32(p, s, 0, CONFIG_MAX_RATE_MAX, &o->rate_burst);
        else if (strcmp(name, "source_prefix_v4") == 0) {
                if (get_u32(p, s, 1, 32, &bits) == 0)
                        o->source_prefix_v4 = (uint8_t) bits;
        } else if (strcmp(name, "source_prefix_v6") == 0) {
                if (get_u32(p, s, 1, 128, &bits) == 0)
                        o->source_prefix_v6 = (uint8_t) bits;
        } else if (strcmp(name, "allow") == 0)
                parse_acl(p, s, &o->allow);
        else if (strcmp(name, "deny") == 0)
                parse_acl(p, s, &o->deny);
        else if (strcmp(name, "proxy_protocol") == 0) {
                v = get_string(p, s);
                if (!v)
                        return true;
                if (proxy_version_from_string(v, &o->proxy_protocol) < 0)
                        config_error_at(p, s, "proxy_protocol: unknown value %s (valid: off, v1, v2, any)",
                                        config_quote(v, q));
        } else if (strcmp(name, "proxy_from") == 0)
                parse_acl(p, s, &o->proxy_from);
        else if (strcmp(name, "proxy_timeout") == 0)
                (void) get_u32(p, s, 1, CONFIG_PROXY_TIMEOUT_MAX, &o->proxy_timeout);
        else
                return false;
        return true;
}

static bool listener_name_valid(const char *s)
{
        size_t len = strlen(s);

        if (len < 1 || len > CONFIG_NAME_MAX)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 0x7f || *s == ':')
                        return false;
        return true;
}

/* The binary form of a numeric address, or of "all addresses" (NULL):
 * family AF_UNSPEC. The port is left alone. */
static int parse_address(const char *address, struct listener_key *k)
{
        k->family = AF_UNSPEC;
        memset(k->addr, 0, sizeof(k->addr));
        if (!address)
                return 0;
        if (inet_pton(AF_INET, address, k->addr) == 1)
                k->family = AF_INET;
        else if (inet_pton(AF_INET6, address, k->addr) == 1)
                k->family = AF_INET6;
        else
                return -EINVAL;
        return 0;
}

static bool key_is_v4mapped(const struct listener_key *k)
{
        return k->family == AF_INET6 && acl_addr_is_v4mapped(k->addr);
}

int config_listener_key(const struct listener_conf *e, struct listener_key *ret)
{
        struct listener_key k = { .port = e->port };
        int r = parse_address(e->address, &k);

        if (r < 0)
                return r;
        *ret = k;
        return 0;
}

/* A new entry for the setting s (the group, or the element of "ports"). */
/* Where e is, for a message about an entry written in file: "line N" in the
 * same file, else "FILE:N". */
static char *entry_where(const struct config_parser *p, const struct listener_conf *e, const char *file)
{
        if (config_same_file(e->file, file))
                return config_format("line %d", e->line);
        return config_format("%s:%d", e->file ? e->file : p->path, e->line);
}

static struct listener_conf *listeners_add(struct config_parser *p, struct config *c,
                                          const config_setting_t *s)
{
        const char *file = config_setting_source_file(s);
        struct listener_conf *l, *e;

        l = realloc(c->listeners, (c->n_listeners + 1) * sizeof(*l));
        if (!l) {
                p->oom = true;
                return NULL;
        }
        c->listeners = l;
        e = &l[c->n_listeners];
        *e = (struct listener_conf) { .line = config_line_of(s) };
        if ((file && !(e->file = strdup(file))) || listener_opts_copy(&e->opts, &c->defaults) < 0) {
                free(e->file);
                p->oom = true;
                return NULL;
        }
        c->n_listeners++;
        return e;
}

static void parse_ports(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        int n;

        if (!setting_is_sequence(s)) {
                config_error_at(p, s, "ports: expected a list of port numbers");
                return;
        }
        n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                struct listener_conf *l;
                long long port;

                if (!setting_is_int(e)) {
                        config_error_at(p, e, "ports: expected a list of port numbers");
                        return;
                }
                if (get_int_range(p, e, "ports", 0, 65535, &port) < 0)
                        continue;
                l = listeners_add(p, c, e);
                if (!l)
                        return;
                l->port = (uint16_t) port;
        }
}

static void parse_listener_conf(struct config_parser *p, struct config *c, const config_setting_t *g,
                               size_t first_listen)
{
        const config_setting_t *port_setting = NULL;
        struct listener_conf *l;
        size_t self;
        int n;

        l = listeners_add(p, c, g);
        if (!l)
                return;
        self = c->n_listeners - 1;

        n = config_setting_length(g);
        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(g, (unsigned) i);
                const char *name = config_setting_name(s);
                char q[CONFIG_QUOTE_BUF];
                const char *v;

                l = &c->listeners[self];
                if (strcmp(name, "port") == 0) {
                        long long port;

                        port_setting = s;
                        if (get_int_range(p, s, "port", 0, 65535, &port) == 0)
                                l->port = (uint16_t) port;
                } else if (strcmp(name, "address") == 0) {
                        struct listener_key k;

                        v = get_string(p, s);
                        if (!v)
                                continue;
                        /* kept even when invalid: check_duplicates() then skips the entry */
                        if (parse_address(v, &k) < 0)
                                config_error_at(p, s, "address: not a numeric IPv4 or IPv6 address: %s",
                                                config_quote(v, q));
                        else if (key_is_v4mapped(&k)) {
                                /* bound IPV6_V6ONLY (see listener.c), it fails with EINVAL */
                                char v4[INET_ADDRSTRLEN];

                                inet_ntop(AF_INET, k.addr + 12, v4, sizeof(v4));
                                config_error_at(p, s, "address: %s is an IPv4-mapped IPv6 address, which "
                                                "muxd cannot listen on (IPv6 listeners are IPv6 only): "
                                                "write \"%s\"",
                                                config_quote(v, q), v4);
                        }
                        l->address = strdup(v);
                        if (!l->address)
                                p->oom = true;
                } else if (strcmp(name, "name") == 0) {
                        v = get_string(p, s);
                        if (!v)
                                continue;
                        if (!listener_name_valid(v)) {
                                config_error_at(p, s, "name: invalid listener name %s (1 to %u printable "
                                                "ASCII characters, no spaces or colons)",
                                                config_quote(v, q), CONFIG_NAME_MAX);
                                continue;
                        }
                        for (size_t j = first_listen; j < self; j++)
                                if (c->listeners[j].name && strcmp(c->listeners[j].name, v) == 0) {
                                        _cleanup_free_ char *where =
                                                entry_where(p, &c->listeners[j], l->file);

                                        if (!where)
                                                p->oom = true;
                                        else
                                                config_error_at(p, s, "name: %s is already used by "
                                                                "the entry at %s",
                                                                config_quote(v, q), where);
                                        goto next;
                                }
                        l->name = strdup(v);
                        if (!l->name)
                                p->oom = true;
                } else if (parse_listen_opt(p, s, &l->opts))
                        ;
                else if (name_in(name, global_only_names, ELEMENTSOF(global_only_names)))
                        config_error_at(p, s, "%s: not allowed in a listen entry", name);
                else
                        config_error_at(p, s, "unknown setting \"%s\"", name);
        next:
                ;
        }

        if (!port_setting)
                config_error_at(p, g, "listen: entry needs a \"port\"");
}

static void parse_listen(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        size_t first = c->n_listeners;
        int n;

        if (!setting_is_sequence(s)) {
                config_error_at(p, s, "listen: expected a list of groups");
                return;
        }
        n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
                const config_setting_t *g = config_setting_get_elem(s, (unsigned) i);

                if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                        config_error_at(p, g, "listen: expected a list of groups");
                        continue;
                }
                parse_listener_conf(p, c, g, first);
                if (p->oom)
                        return;
        }
}

/* A "ports" or "listen" setting with entries (or not a list: already an error). */
static bool listeners_written(const config_setting_t *s)
{
        return s && (!setting_is_sequence(s) || config_setting_length(s) > 0);
}

/* Why the kernel refuses to bind two different addresses on the same port
 * (EADDRINUSE), or NULL if it does not: an entry for all addresses is one
 * dual-stack socket, "0.0.0.0" takes every IPv4 address and an explicit "::"
 * (bound IPv6 only) every IPv6 address. */
static const char *key_conflict(const struct listener_key *a, const struct listener_key *b)
{
        static const uint8_t any[16];

        if (a->family == AF_UNSPEC || b->family == AF_UNSPEC)
                return "all addresses is one dual-stack socket for every IPv4 and IPv6 address";
        if (a->family != b->family ||
            (memcmp(a->addr, any, sizeof(any)) != 0 && memcmp(b->addr, any, sizeof(any)) != 0))
                return NULL;
        return a->family == AF_INET ? "0.0.0.0 is every IPv4 address" : ":: is every IPv6 address";
}

/* Entries muxd could not bind together: the same address and port twice, or
 * addresses that overlap on a port (see above). Port 0 never conflicts. */
static void check_duplicates(struct config_parser *p, const struct config *c)
{
        for (size_t i = 0; i < c->n_listeners; i++) {
                const struct listener_conf *a = &c->listeners[i];
                const char *file = a->file ? a->file : p->path;
                const char *as = a->address ? a->address : "all addresses";
                struct listener_key ka;

                /* invalid and IPv4-mapped addresses have their error already */
                if (a->port == 0 || config_listener_key(a, &ka) < 0 || key_is_v4mapped(&ka))
                        continue;
                for (size_t j = 0; j < i; j++) {
                        const struct listener_conf *b = &c->listeners[j];
                        _cleanup_free_ char *where = NULL;
                        const char *why = NULL;
                        struct listener_key kb;
                        bool same;

                        if (b->port != a->port || config_listener_key(b, &kb) < 0 || key_is_v4mapped(&kb))
                                continue;
                        same = ka.family == kb.family && memcmp(ka.addr, kb.addr, sizeof(ka.addr)) == 0;
                        if (!same && !(why = key_conflict(&ka, &kb)))
                                continue;
                        where = entry_where(p, b, a->file);
                        if (!where)
                                p->oom = true;
                        else if (same)
                                config_error_file_line(p, file, a->line, "port %u on %s is already "
                                                       "listed at %s", a->port, as, where);
                        else
                                config_error_file_line(p, file, a->line, "port %u on %s conflicts with "
                                                       "port %u on %s at %s (%s)", a->port, as, b->port,
                                                       b->address ? b->address : "all addresses",
                                                       where, why);
                        break;
                }
        }
}

/* A listener that takes PROXY headers must say from whom: trusting any
 * peer's header would let every client claim any address (allow/deny and
 * max_per_source would mean nothing). */
static void check_proxy(struct config_parser *p, const struct config *c)
{
        for (size_t i = 0; i < c->n_listeners; i++) {
                const struct listener_conf *a = &c->listeners[i];

                if (a->opts.proxy_protocol != PROXY_OFF && a->opts.proxy_from.n == 0)
                        config_error_file_line(p, a->file ? a->file : p->path, a->line,
                                               "port %u: proxy_protocol is \"%s\" but proxy_from is "
                                               "empty: list the load balancers' addresses", a->port,
                                               proxy_version_to_string(a->opts.proxy_protocol));
        }
}

/* backend = "NAME": true if the name is known (c->backend set). */
static bool parse_backend(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        char q[CONFIG_QUOTE_BUF];
        const char *v = get_string(p, s), *file;

        if (!v)
                return false;
        if (!ev_backend_find(v)) {
                config_error_at(p, s, "backend: unknown backend %s (valid: %s)",
                                config_quote(v, q), ev_backend_names());
                return false;
        }
        free(c->backend);
        c->backend = strdup(v);
        c->backend_line = config_line_of(s);
        file = config_setting_source_file(s);
        if (!c->backend || (file && !(c->backend_file = strdup(file))))
                p->oom = true;
        return true;
}

/* control_socket = "PATH": absolute, short enough for a UNIX socket address;
 * "" turns the control socket off. */
static void parse_control_socket(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        char q[CONFIG_QUOTE_BUF];
        const char *v = get_string(p, s);

        if (!v)
                return;
        if (v[0] != '\0' && v[0] != '/') {
                config_error_at(p, s, "control_socket: not an absolute path: %s (write \"\" to turn "
                                "the control socket off)", config_quote(v, q));
                return;
        }
        if (strlen(v) > CONFIG_CONTROL_SOCKET_MAX) {
                config_error_at(p, s, "control_socket: longer than %u bytes (the limit of a UNIX "
                                "socket's path)", CONFIG_CONTROL_SOCKET_MAX);
                return;
        }
        free(c->control_socket);
        c->control_socket = strdup(v);
        if (!c->control_socket)
                p->oom = true;
}

static void parse_log_level(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        char q[CONFIG_QUOTE_BUF];
        const char *v = get_string(p, s);
        int l;

        if (!v)
                return;
        l = log_level_from_string(v);
        if (l < 0)
                config_error_at(p, s, "log_level: unknown level %s (valid: debug, "
                                "info, notice, warning, err)", config_quote(v, q));
        else
                c->log_level = (enum log_level) l;
}

/* A backend with a descriptor limit of its own (select) must be able to
 * watch every client, every listener and muxd's own descriptors: an explicit
 * max_connections above that is an error, the default is lowered to it.
 * max_conn and backend: the settings, NULL when not written. */
static void check_backend_capacity(struct config_parser *p, struct config *c, const struct ev_backend *b,
                                   const config_setting_t *max_conn, const config_setting_t *backend)
{
        size_t at_most = config_client_budget(b->max_fds, c->n_listeners, c->workers);
        char limit[64];

        if (strcmp(b->name, "select") == 0)
                snprintf(limit, sizeof(limit), "FD_SETSIZE %zu", b->max_fds);
        else
                snprintf(limit, sizeof(limit), "%zu descriptors", b->max_fds);

        if (max_conn) {
                if (c->max_connections > at_most)
                        config_error_at(p, max_conn, "max_connections: %u is more than backend "
                                        "\"%s\" can watch (%s): at most %zu with %zu listener%s "
                                        "and %u worker%s",
                                        c->max_connections, b->name, limit, at_most,
                                        c->n_listeners, c->n_listeners == 1 ? "" : "s",
                                        c->workers, c->workers == 1 ? "" : "s");
        } else if (at_most == 0)
                config_error_at(p, backend, "backend: \"%s\" can watch too few descriptors (%s) "
                                "for %zu listener%s and %u worker%s", b->name, limit,
                                c->n_listeners, c->n_listeners == 1 ? "" : "s",
                                c->workers, c->workers == 1 ? "" : "s");
        else if (c->max_connections > at_most)
                c->max_connections = (uint32_t) at_most;
}

/* "ADDRESS:PORT" or "[ADDRESS]:PORT" with a numeric address, port 0 to
 * 65535 (0: one the kernel picks, as for listeners); false if it is not. */
static bool parse_addr_port(const char *v, struct listener_key *k)
{
        char addr[INET6_ADDRSTRLEN + 2];
        const char *colon = strrchr(v, ':'), *a = addr;
        unsigned long port;
        size_t len;

        if (!colon || colon == v || colon - v >= (ptrdiff_t) sizeof(addr) ||
            parse_uint(colon + 1, 0, 65535, &port) < 0)
                return false;
        len = (size_t) (colon - v);
        memcpy(addr, v, len);
        addr[len] = '\0';
        *k = (struct listener_key) { .port = (uint16_t) port };
        if (addr[0] == '[' && addr[len - 1] == ']') {
                addr[len - 1] = '\0';
                a = addr + 1;
                k->family = AF_INET6;
                return inet_pton(AF_INET6, a, k->addr) == 1;
        }
        k->family = AF_INET;
        return inet_pton(AF_INET, a, k->addr) == 1;
}

/* metrics_listen = "127.0.0.1:9188": off when unset or "". */
static void parse_metrics_listen(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        char q[CONFIG_QUOTE_BUF];
        const char *v = get_string(p, s), *file = config_setting_source_file(s);

        if (!v || !*v)
                return;
        if (!parse_addr_port(v, &c->metrics_key)) {
                config_error_at(p, s, "metrics_listen: expected ADDRESS:PORT with a numeric address "
                                "(\"127.0.0.1:9188\", \"[::1]:9188\"), got %s", config_quote(v, q));
                return;
        }
        if (key_is_v4mapped(&c->metrics_key)) {
                config_error_at(p, s, "metrics_listen: %s is an IPv4-mapped address: write the IPv4 "
                                "address", config_quote(v, q));
                return;
        }
        c->metrics = true;
        c->metrics_line = config_line_of(s);
        c->metrics_listen = strdup(v);
        if (!c->metrics_listen || (file && !(c->metrics_file = strdup(file))))
                p->oom = true;
}

/* The metrics endpoint cannot share a port with a listener on an address
 * that overlaps (see key_conflict()). */
static void check_metrics_conflict(struct config_parser *p, const struct config *c)
{
        const struct listener_key *m = &c->metrics_key;

        if (!c->metrics || m->port == 0)
                return;
        for (size_t i = 0; i < c->n_listeners; i++) {
                const struct listener_conf *e = &c->listeners[i];
                _cleanup_free_ char *where = NULL;
                struct listener_key k;

                if (e->port != m->port || config_listener_key(e, &k) < 0 || key_is_v4mapped(&k))
                        continue;
                if (!(k.family == m->family && memcmp(k.addr, m->addr, sizeof(k.addr)) == 0) &&
                    !key_conflict(&k, m))
                        continue;
                where = entry_where(p, e, c->metrics_file);
                if (!where)
                        p->oom = true;
                else
                        config_error_file_line(p, c->metrics_file ? c->metrics_file : p->path, c->metrics_line,
                                               "metrics_listen: port %u is the port of the listener at %s",
                                               m->port, where);
                return;
        }
}

static void parse_root(struct config_parser *p, struct config *c, const config_setting_t *root)
{
        const config_setting_t *max_conn = NULL, *backend = NULL, *ports = NULL, *listen = NULL;
        bool backend_ok = true, max_conn_ok = true;
        const struct ev_backend *b;
        int n;

        n = config_setting_length(root);
        for (int i = 0; i < n && !p->oom; i++) {
                const config_setting_t *s = config_setting_get_elem(root, (unsigned) i);
                const char *name = config_setting_name(s);

                if (strcmp(name, "timeout") == 0)
                        (void) get_u32(p, s, 0, CONFIG_TIMEOUT_MAX, &c->timeout);
                else if (strcmp(name, "backend") == 0) {
                        backend = s;
                        backend_ok = parse_backend(p, c, s);
                } else if (strcmp(name, "max_connections") == 0) {
                        max_conn = s;
                        max_conn_ok = get_u32(p, s, 1, CONFIG_MAX_CONNECTIONS_MAX,
                                              &c->max_connections) == 0;
                } else if (strcmp(name, "log_level") == 0)
                        parse_log_level(p, c, s);
                else if (strcmp(name, "shutdown_timeout") == 0)
                        (void) get_u32(p, s, 0, CONFIG_SHUTDOWN_TIMEOUT_MAX, &c->shutdown_timeout);
                else if (strcmp(name, "workers") == 0)
                        (void) get_u32(p, s, 1, CONFIG_WORKERS_MAX, &c->workers);
                else if (strcmp(name, "max_sources") == 0)
                        (void) get_u32(p, s, 1, CONFIG_MAX_SOURCES_MAX, &c->max_sources);
                else if (strcmp(name, "ports") == 0)
                        ports = s;
                else if (strcmp(name, "listen") == 0)
                        listen = s;
                else if (strcmp(name, "control_socket") == 0)
                        parse_control_socket(p, c, s);
                else if (strcmp(name, "metrics_listen") == 0)
                        parse_metrics_listen(p, c, s);
                else if (strcmp(name, "preserve_connections") == 0)
                        get_bool(p, s, &c->preserve_connections);
                else if (parse_listen_opt(p, s, &c->defaults))
                        ;
                else if (name_in(name, entry_only_names, ELEMENTSOF(entry_only_names)))
                        config_error_at(p, s, "%s: only allowed in a listen entry", name);
                else
                        config_error_at(p, s, "unknown setting \"%s\"", name);
        }
        if (p->oom)
                return;

        /* listeners copy the defaults, so they come once those are complete */
        if (ports)
                parse_ports(p, c, ports);
        if (listen && !p->oom)
                parse_listen(p, c, listen);
        if (p->oom)
                return;
        /* always an error, so that start, reload and -t agree on the file */
        if (!listeners_written(ports) && !listeners_written(listen))
                config_error_file_line(p, p->path, 0, "no listeners: set \"ports\" or \"listen\" (muxd "
                                       "needs at least one; sockets passed by systemd are matched to "
                                       "these entries)");
        check_duplicates(p, c);
        check_proxy(p, c);
        check_metrics_conflict(p, c);

        b = backend_ok ? ev_backend_find(c->backend) : NULL;
        c->max_connections_set = max_conn != NULL;
        if (b && b->max_fds != 0 && max_conn_ok)
                check_backend_capacity(p, c, b, max_conn, backend);
        /* Whether this kernel lets muxd use the backend is asked where it is
         * opened (ev_backend_check(), main.c), not here: loading has no side
         * effects. backend_file and backend_line are for its message. */
}

size_t config_client_budget(size_t max_fds, size_t n_listeners, unsigned workers)
{
        size_t fixed = n_listeners + CONFIG_RESERVED_FDS + (size_t) workers * CONFIG_FDS_PER_WORKER;

        return max_fds > fixed ? max_fds - fixed : 0;
}

static int config_new(const char *path, struct config **ret)
{
        struct config *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct config) {
                .path = strdup(path),
                .timeout = CONFIG_DEFAULT_TIMEOUT,
                .backend = strdup(CONFIG_DEFAULT_BACKEND),
                .max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS,
                .log_level = LOG_LEVEL_INFO,
                .shutdown_timeout = CONFIG_DEFAULT_SHUTDOWN_TIMEOUT,
                .workers = 1,
                .max_sources = CONFIG_DEFAULT_MAX_SOURCES,
        };
        if (!c->path || !c->backend || listener_opts_init_defaults(&c->defaults) < 0) {
                config_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static int load_text(const char *text, const char *path, const char *include_dir,
                     struct config **ret, struct config_errors *errs)
{
        struct config_parser p = { .path = path, .include_dir = include_dir, .errs = errs };
        _cleanup_free_ char *copy = NULL;
        struct config *c = NULL;
        size_t len = strlen(text);
        config_t cfg;
        int r;

        /* libconfig 1.5 takes a comment on the last line for garbage unless a
         * newline ends it */
        if (len > 0 && text[len - 1] != '\n') {
                copy = malloc(len + 2);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, text, len);
                memcpy(copy + len, "\n", 2);
                text = copy;
        }

        config_init(&cfg);
        if (include_dir)
                config_set_include_dir(&cfg, include_dir);

        if (config_read_string(&cfg, text) != CONFIG_TRUE) {
                const char *file = config_error_file(&cfg);
                const char *msg = config_error_text(&cfg);

                config_error_file_line(&p, file ? file : path, config_error_line(&cfg), "%s",
                                       msg ? msg : "syntax error");
                r = p.oom ? -ENOMEM : -EINVAL;
                goto finish;
        }

        r = config_scan_literals(&p, text);
        if (r < 0)
                goto finish;
        if (p.n_errors > 0) {
                /* an included file unreadable or with a NUL byte: alone, as for the main file */
                r = p.oom ? -ENOMEM : -EINVAL;
                goto finish;
        }

        r = config_new(path, &c);
        if (r < 0)
                goto finish;

        parse_root(&p, c, config_root_setting(&cfg));

        /* a \x00 in a string no setting was matched to: refused all the same
         * (when nothing else is wrong, since it may belong to a setting in error) */
        if (p.n_errors == 0)
                config_scan_report_unmatched_nul(&p);

        if (p.oom)
                r = -ENOMEM;
        else if (p.n_errors > 0)
                r = -EINVAL;
        else {
                *ret = c;
                c = NULL;
                r = 0;
        }

finish:
        config_free(c);
        config_scan_done(&p);
        config_destroy(&cfg);
        return r;
}

int config_load_string(const char *text, const char *path, struct config **ret,
                       struct config_errors *errs)
{
        if (!text || !path || !ret)
                return -EINVAL;
        return load_text(text, path, NULL, ret, errs);
}

int config_load(const char *path, struct config **ret, struct config_errors *errs)
{
        _cleanup_free_ char *text = NULL, *dir = NULL;
        struct config_parser p = { .path = path, .errs = errs };
        const char *slash;
        size_t len = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = config_scan_read_file(path, &text, &len);
        if (r < 0) {
                config_error_file_line(&p, path, 0, "cannot read: %s", strerror(-r));
                return r;
        }

        if (config_scan_check_nul(&p, path, text, len))
                return p.oom ? -ENOMEM : -EINVAL;

        /* relative @include paths are relative to the file's directory */
        slash = strrchr(path, '/');
        if (slash) {
                dir = strndup(path, slash == path ? 1 : (size_t) (slash - path));
                if (!dir)
                        return -ENOMEM;
        }

        return load_text(text, path, dir, ret, errs);
}
