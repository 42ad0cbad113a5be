/* SPDX-License-Identifier: MIT */
/* The control socket's commands (see control-proto.c for the list and
 * muxctl(8) for what each answers). Each writes its whole answer, or puts
 * a query to the workers and finishes once they have answered. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ban.h"
#include "control-internal.h"
#include "server-internal.h"
#include "stats.h"
#include "util.h"

static struct server *control_server(const struct control_client *cl)
{
        return cl->ctl->srv;
}

/* A listener as status shows it: the entry's name, else ADDRESS:PORT. */
static const char *control_listener_name(const struct listener *l)
{
        return l->conf && l->conf->name ? l->conf->name : l->addr_str;
}

/* A LISTENER argument: the entry's name or ADDRESS:PORT as status shows it
 * (names never hold a colon, so the two never clash). */
static struct listener *control_find_listener(struct server *s, const char *arg)
{
        for (struct listener *l = s->listeners; l; l = l->next)
                if ((l->conf && l->conf->name && strcmp(l->conf->name, arg) == 0) ||
                    strcmp(l->addr_str, arg) == 0)
                        return l;
        return NULL;
}

static int control_no_listener(struct control_client *cl, const char *arg)
{
        control_error(&cl->answer, "no listener \"%.80s\" (a name or ADDRESS:PORT as status shows them)", arg);
        return 0;
}

/* ---- status, stats, help, version ------------------------------------------------ */

static void control_status_reload(struct control_answer *a, const struct server_reload_result *r)
{
        char when[40];

        if (!r->done) {
                control_text(a, "last_reload: none\n");
                control_json(a, ",\"last_reload\":null");
                return;
        }
        control_time(r->when, when);
        control_text(a, "last_reload: %s %s\n", r->ok ? "ok" : "failed", when);
        for (size_t i = 0; i < r->errors.n; i++)
                control_text(a, "  %s\n", r->errors.msgs[i]);
        control_json(a, ",\"last_reload\":{\"ok\":%s,\"time\":", r->ok ? "true" : "false");
        control_json_string(a, when);
        control_json(a, ",\"time_unix\":%lld,\"errors\":[", (long long) r->when);
        for (size_t i = 0; i < r->errors.n; i++) {
                control_json(a, i ? "," : "");
                control_json_string(a, r->errors.msgs[i]);
        }
        control_json(a, "]}");
}

static void control_status_listeners(struct control_answer *a, const struct server *s)
{
        bool first = true;

        control_field_u64(a, "listeners", s->n_listeners);
        control_json(a, ",\"listener_list\":[");
        for (const struct listener *l = s->listeners; l; l = l->next) {
                const char *state = l->draining ? "draining" : "accepting";

                control_text(a, "listener: %s %s %s%s\n", l->conf && l->conf->name ? l->conf->name : "-",
                             l->addr_str, state, l->passed ? " (passed by systemd)" : "");
                control_json(a, "%s{\"name\":", first ? "" : ",");
                if (l->conf && l->conf->name)
                        control_json_string(a, l->conf->name);
                else
                        control_json(a, "null");
                control_json(a, ",\"address\":");
                control_json_string(a, l->addr_str);
                control_json(a, ",\"draining\":%s,\"passed\":%s}", l->draining ? "true" : "false",
                             l->passed ? "true" : "false");
                first = false;
        }
        control_json(a, "]");
}

static int control_cmd_status(struct control_client *cl)
{
        struct server *s = control_server(cl);
        struct control_answer *a = &cl->answer;
        uint64_t up_s = (monotonic_ms() - s->start_ms) / 1000u;
        char t[40], d[32];

        control_ok(a);
        control_field(a, "version", "%s", PACKAGE_VERSION);
        control_field_u64(a, "pid", (uint64_t) getpid());
        control_field(a, "started", "%s", control_time((time_t) s->start_time_s, t));
        control_text(a, "uptime: %s\n", control_duration(up_s, d));
        control_json(a, ",\"uptime_seconds\":%llu", (unsigned long long) up_s);
        control_field(a, "backend", "%s", s->backend->name);
        control_field_u64(a, "workers", s->n_workers);
        control_field(a, "state", "%s", s->stopping ? "stopping" : "running");
        control_field(a, "config", "%s", s->cfg->path);
        control_field(a, "config_loaded", "%s", control_time(s->cfg_loaded, t));
        control_field_u64(a, "clients", atomic_load(&s->n_conns_total));
        control_field_u64(a, "max_connections", atomic_load(&s->max_connections));
        control_field(a, "control_socket", "%s", control_path(cl->ctl));
        control_field_u64(a, "bans", ban_list_active(s->bans, monotonic_ms()));
        control_status_reload(a, &s->last_reload);
        control_status_listeners(a, s);
        return 0;
}

/* The muxd-wide totals the workers count, and the clients now. The one
 * place that says what "stats" shows: per-listener counters replace this
 * body once they exist. */
/* Every line of text as a body line: the answer ends at the first empty
 * line, so a renderer's blank separators are left out. */
static void control_body_lines(struct control_answer *a, const char *text, size_t len)
{
        while (len > 0) {
                const char *nl = memchr(text, '\n', len);
                size_t n = nl ? (size_t) (nl - text) : len;

                if (n > 0)
                        control_text(a, "%.*s\n", (int) n, text);
                n += nl ? 1 : 0;
                text += n;
                len -= n;
        }
}

/* stats: the per-listener counters (stats.c) as a table, JSON
 * ({"ok":true,"stats":{...}}) or, with --prometheus, the text exposition
 * format of /metrics (for node_exporter's textfile collector). */
static int control_cmd_stats(struct control_client *cl)
{
        struct control_answer *a = &cl->answer;
        struct stats_snapshot snap;
        struct buffer out = BUFFER_INIT;
        int r;

        r = stats_snapshot(control_server(cl), &snap);
        if (r < 0) {
                control_error(a, "cannot read the statistics: %s", errno_text(-r));
                return 0;
        }
        if (cl->req.prometheus)
                r = stats_render_prometheus(&snap, &out);
        else if (a->json)
                r = stats_render_json(&snap, &out);
        else
                r = stats_render_text(&snap, &out);
        stats_snapshot_free(&snap);
        if (r < 0) {
                buffer_free(&out);
                control_error(a, "cannot render the statistics: %s", errno_text(-r));
                return 0;
        }
        control_ok(a);
        if (a->json && cl->req.prometheus) {
                control_json(a, ",\"prometheus\":");
                if (buffer_append(&out, "", 1, 0) == 0)         /* a C string */
                        control_json_string(a, buffer_head(&out));
        } else if (a->json) {
                size_t n = buffer_len(&out);

                while (n > 0 && buffer_head(&out)[n - 1] == '\n')
                        n--;
                control_json(a, ",\"stats\":%.*s", (int) n, buffer_head(&out));
        } else {
                control_body_lines(a, buffer_head(&out), buffer_len(&out));
        }
        buffer_free(&out);
        return 0;
}

static int control_cmd_help(struct control_client *cl)
{
        struct control_answer *a = &cl->answer;

        control_ok(a);
        control_json(a, ",\"commands\":[");
        for (size_t i = 0; i < control_n_commands; i++) {
                const struct control_command *c = &control_commands[i];
                char usage[64];

                snprintf(usage, sizeof(usage), "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
                control_text(a, "%-26s %s\n", usage, c->help);
                control_json(a, "%s{\"name\":\"%s\",\"usage\":\"%s\",\"help\":", i ? "," : "", c->name, usage);
                control_json_string(a, c->help);
                control_json(a, "}");
        }
        control_json(a, "]");
        control_text(a, "Any request: --json for the answer as one JSON document.\n");
        return 0;
}

static int control_cmd_version(struct control_client *cl)
{
        control_ok(&cl->answer);
        control_field(&cl->answer, "version", "%s", PACKAGE_VERSION);
        return 0;
}

/* ---- reload, check ------------------------------------------------------------------ */

static void control_errors(struct control_answer *a, const struct config_errors *e)
{
        control_json(a, ",\"errors\":[");
        for (size_t i = 0; i < e->n; i++) {
                control_text(a, "%s\n", e->msgs[i]);
                control_json(a, i ? "," : "");
                control_json_string(a, e->msgs[i]);
        }
        control_json(a, "]");
}

static int control_cmd_reload(struct control_client *cl)
{
        struct server *s = control_server(cl);
        const struct server_reload_result *r = &s->last_reload;

        if (s->stopping) {
                control_error(&cl->answer, "muxd is stopping: no reload");
                return 0;
        }
        (void) server_reload(s);
        if (r->ok) {
                control_ok(&cl->answer);
                control_field(&cl->answer, "reloaded", "%s", s->cfg->path);
                control_field_u64(&cl->answer, "listeners", s->n_listeners);
        } else {
                control_error(&cl->answer, "reload failed: keeping the running configuration");
        }
        control_errors(&cl->answer, &r->errors);
        return 0;
}

/* The verdict comes once the new image has taken over (this process then
 * exits) or refused (it goes on serving). */
static int control_cmd_upgrade(struct control_client *cl)
{
        struct server *s = control_server(cl);
        char *why = NULL;

        if (s->stopping || s->handed_over) {
                control_error(&cl->answer, "muxd is stopping: no upgrade");
                return 0;
        }
        if (server_upgrade(s, &why) >= 0) {
                control_ok(&cl->answer);
                control_field(&cl->answer, "upgraded", "process %ld serves every client now", s->successor);
                control_field_u64(&cl->answer, "pid", (uint64_t) s->successor);
        } else {
                control_error(&cl->answer, "upgrade failed: %s; the running process goes on serving",
                              why ? why : "out of memory");
        }
        free(why);
        return 0;
}

static int control_cmd_check(struct control_client *cl)
{
        struct server *s = control_server(cl);
        struct config_errors errs = { 0 };

        if (server_check(s, &errs) >= 0) {
                control_ok(&cl->answer);
                control_field(&cl->answer, "valid", "%s", s->cfg->path);
        } else {
                control_error(&cl->answer, "%s: the configuration is not valid", s->cfg->path);
        }
        control_errors(&cl->answer, &errs);
        config_errors_clear(&errs);
        return 0;
}

/* ---- drain, undrain --------------------------------------------------------------------- */

static int control_cmd_drain(struct control_client *cl, bool on)
{
        struct server *s = control_server(cl);
        struct listener *l = control_find_listener(s, cl->req.args[0]);
        const char *name;

        if (!l)
                return control_no_listener(cl, cl->req.args[0]);
        if (s->stopping) {
                control_error(&cl->answer, "muxd is stopping: every listener is closed already");
                return 0;
        }
        name = control_listener_name(l);
        if (l->draining != on) {
                if (!server_set_draining(s, l, on))
                        log_warning("a worker did not take the change within %u ms: it will on its own",
                                    SERVER_SYNC_WAIT_MS);
                log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = on ? "drain" : "undrain",
                                                                         .listen = l->addr_str },
                         on ? "listener %s (%s): draining: new clients wait in the kernel's backlog"
                            : "listener %s (%s): accepting again", name, l->addr_str);
        }
        control_ok(&cl->answer);
        control_field(&cl->answer, "listener", "%s", name);
        control_field(&cl->answer, "address", "%s", l->addr_str);
        control_field(&cl->answer, "state", "%s", on ? "draining" : "accepting");
        return 0;
}

static int control_cmd_drain_on(struct control_client *cl)
{
        return control_cmd_drain(cl, true);
}

static int control_cmd_drain_off(struct control_client *cl)
{
        return control_cmd_drain(cl, false);
}

/* ---- ban, unban, bans ------------------------------------------------------------------------ */

static int control_parse_net(struct control_client *cl, const char *arg, struct cidr *net)
{
        if (cidr_parse(arg, net) == 0)
                return 0;
        control_error(&cl->answer, "%sinvalid address or CIDR \"%.80s\" (e.g. 192.0.2.7, 10.0.0.0/8, "
                      "2001:db8::/32)", CONTROL_USAGE_PREFIX, arg);
        return -EINVAL;
}

static int control_cmd_ban(struct control_client *cl)
{
        struct server *s = control_server(cl);
        struct ban_list *next = NULL;
        unsigned long seconds = 0;
        uint64_t now = monotonic_ms();
        char net_s[CIDR_STR_MAX], d[32];
        struct cidr net;
        int r;

        if (control_parse_net(cl, cl->req.args[0], &net) < 0)
                return 0;
        if (cl->req.n_args > 1 && parse_uint(cl->req.args[1], 1, BAN_SECONDS_MAX, &seconds) < 0) {
                control_error(&cl->answer, "%sban CIDR [SECONDS]: SECONDS must be 1 to %u, got \"%.20s\"",
                              CONTROL_USAGE_PREFIX, BAN_SECONDS_MAX, cl->req.args[1]);
                return 0;
        }
        r = ban_list_add(s->bans, &net, seconds ? now + seconds * 1000u : 0, now, &next);
        if (r == -ENOSPC) {
                control_error(&cl->answer, "too many bans (at most %u): unban some first", BAN_MAX);
                return 0;
        }
        if (r < 0) {
                control_error(&cl->answer, "out of memory");
                return 0;
        }
        (void) server_set_bans(s, next);
        cidr_to_string(&net, net_s);
        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "ban" },
                 "banned %s %s%s (control socket)", net_s, seconds ? "for " : "until unbanned",
                 seconds ? control_duration(seconds, d) : "");
        control_ok(&cl->answer);
        control_field(&cl->answer, "banned", "%s", net_s);
        if (seconds)
                control_field_u64(&cl->answer, "seconds", seconds);
        else
                control_text(&cl->answer, "seconds: until unban\n");
        return 0;
}

static int control_cmd_unban(struct control_client *cl)
{
        struct server *s = control_server(cl);
        struct ban_list *next = NULL;
        char net_s[CIDR_STR_MAX];
        struct cidr net;
        int r;

        if (control_parse_net(cl, cl->req.args[0], &net) < 0)
                return 0;
        cidr_to_string(&net, net_s);
        r = ban_list_remove(s->bans, &net, monotonic_ms(), &next);
        if (r < 0) {
                if (r == -ENOENT)
                        control_error(&cl->answer, "%s is not banned (bans lists the bans)", net_s);
                else
                        control_error(&cl->answer, "out of memory");
                return 0;
        }
        (void) server_set_bans(s, next);
        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "unban" },
                 "unbanned %s (control socket)", net_s);
        control_ok(&cl->answer);
        control_field(&cl->answer, "unbanned", "%s", net_s);
        return 0;
}

static int control_cmd_bans(struct control_client *cl)
{
        struct server *s = control_server(cl);
        struct control_answer *a = &cl->answer;
        uint64_t now = monotonic_ms();
        size_t n = 0;

        control_ok(a);
        control_json(a, ",\"bans\":[");
        for (size_t i = 0; s->bans && i < s->bans->n; i++) {
                const struct ban *b = &s->bans->bans[i];
                char net_s[CIDR_STR_MAX], d[32];
                uint64_t left;

                if (b->until_ms && b->until_ms <= now)
                        continue;       /* expired: dropped by the next change */
                left = b->until_ms ? (b->until_ms - now + 999u) / 1000u : 0;
                cidr_to_string(&b->net, net_s);
                control_text(a, "%-43s %s\n", net_s, b->until_ms ? control_duration(left, d) : "until unban");
                control_json(a, "%s{\"net\":\"%s\",\"seconds_left\":", n ? "," : "", net_s);
                control_json(a, b->until_ms ? "%llu}" : "null}", (unsigned long long) left);
                n++;
        }
        control_json(a, "]");
        control_field_u64(a, "count", n);
        return 0;
}

/* ---- clients, kick: queries to the workers ----------------------------------------------------- */

static int control_query(struct control_client *cl, enum worker_query_kind kind, const struct worker_match *m)
{
        struct server *s = control_server(cl);
        struct worker_query *q = worker_query_new(kind, s->n_workers);

        if (!q) {
                control_error(&cl->answer, "out of memory");
                return 0;
        }
        q->match = *m;
        q->max_clients = CONTROL_LIST_MAX / (s->n_workers ? s->n_workers : 1);
        for (unsigned i = 0; i < s->n_workers; i++)
                worker_query_submit(s->workers[i], q);
        cl->query = q;
        return 1;
}

static int control_cmd_clients(struct control_client *cl)
{
        struct worker_match m = { 0 };

        if (cl->req.n_args > 0) {
                struct listener *l = control_find_listener(control_server(cl), cl->req.args[0]);

                if (!l)
                        return control_no_listener(cl, cl->req.args[0]);
                m.listener = l->serial;
        }
        return control_query(cl, WORKER_QUERY_LIST, &m);
}

/* PEER: ADDRESS, ADDRESS:PORT, [IPV6] or [IPV6]:PORT. */
static int control_parse_peer(const char *arg, struct worker_match *m)
{
        char addr[64];
        const char *end = NULL, *colon = strchr(arg, ':');
        unsigned long port = 0;
        size_t len;

        if (arg[0] == '[') {
                end = strchr(arg, ']');
                if (!end || (end[1] && end[1] != ':'))
                        return -EINVAL;
                len = (size_t) (end - arg - 1);
                arg++;
                colon = end[1] ? end + 1 : NULL;
        } else if (colon && !strchr(colon + 1, ':')) {
                len = (size_t) (colon - arg);   /* IPv4:PORT */
        } else {
                len = strlen(arg);              /* IPv4, or IPv6 without a port */
                colon = NULL;
        }
        if (len == 0 || len >= sizeof(addr) || memchr(arg, '/', len))
                return -EINVAL;
        memcpy(addr, arg, len);
        addr[len] = '\0';
        if (cidr_parse(addr, &m->net) < 0 || (colon && parse_uint(colon + 1, 1, 65535, &port) < 0))
                return -EINVAL;
        m->by_net = true;
        m->port = (uint16_t) port;
        return 0;
}

static int control_cmd_kick(struct control_client *cl)
{
        struct worker_match m = { 0 };
        const char *arg = cl->req.args[0];

        if (cl->req.n_args == 2) {
                if (strcmp(arg, "all-from") != 0) {
                        control_error(&cl->answer, "%skick PEER | kick all-from CIDR", CONTROL_USAGE_PREFIX);
                        return 0;
                }
                if (control_parse_net(cl, cl->req.args[1], &m.net) < 0)
                        return 0;
                m.by_net = true;
        } else if (control_parse_peer(arg, &m) < 0) {
                control_error(&cl->answer, "%skick PEER: \"%.80s\" is not ADDRESS or ADDRESS:PORT "
                              "(IPv6 as [ADDRESS]:PORT; a network: kick all-from CIDR)", CONTROL_USAGE_PREFIX, arg);
                return 0;
        }
        return control_query(cl, WORKER_QUERY_KICK, &m);
}

/* ---- their answers ------------------------------------------------------------------------------- */

struct control_name {
        uint64_t serial;
        const char *name;
};

static int control_name_cmp(const void *a, const void *b)
{
        uint64_t x = ((const struct control_name *) a)->serial, y = ((const struct control_name *) b)->serial;

        return x < y ? -1 : x > y;
}

/* "127.0.0.1:5000", "[::1]:5000" (no port: the address alone) */
static const char *control_addr_port(int family, const uint8_t *bin, uint16_t port, char *buf, size_t size,
                                     char *addr)
{
        if (!inet_ntop(family, bin, addr, INET6_ADDRSTRLEN))
                strcpy(addr, "?");
        if (!port)
                snprintf(buf, size, "%s", addr);
        else
                snprintf(buf, size, family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr, port);
        return buf;
}

static const char *control_peer(const struct worker_client *c, char *buf, size_t size, char *addr)
{
        return control_addr_port(c->family, c->addr, c->port, buf, size, addr);
}

static void control_list_one(struct control_answer *a, const struct worker_client *c, const char *listener,
                             bool first)
{
        char peer[SOCKADDR_STR_MAX], addr[INET6_ADDRSTRLEN], conn_d[32], idle_d[32];
        char via[SOCKADDR_STR_MAX], via_addr[INET6_ADDRSTRLEN];

        control_peer(c, peer, sizeof(peer), addr);
        if (c->proxy_family)
                control_addr_port(c->proxy_family, c->proxy_addr, c->proxy_port, via, sizeof(via), via_addr);
        else
                strcpy(via, "-");
        control_text(a, "%-23s %-23s %9s %9s %9llu %s\n", peer, listener, control_duration(c->connected_s, conn_d),
                     control_duration(c->idle_ms / 1000u, idle_d), (unsigned long long) c->queued, via);
        if (!a->json)
                return;
        control_json(a, "%s{\"peer\":\"%s\",\"address\":\"%s\",\"port\":%u,\"listener\":", first ? "" : ",",
                     peer, addr, c->port);
        control_json_string(a, listener);
        if (c->proxy_family)
                control_json(a, ",\"proxy\":\"%s\"", via);
        else
                control_json(a, ",\"proxy\":null");
        control_json(a, ",\"connected_seconds\":%u,\"idle_seconds\":%.3f,\"queued_bytes\":%llu}",
                     c->connected_s, (double) c->idle_ms / 1000.0, (unsigned long long) c->queued);
}

static void control_finish_list(struct control_client *cl, struct control_name *names, size_t n_names)
{
        struct worker_query *q = cl->query;
        struct control_answer *a = &cl->answer;
        size_t listed = 0, more = 0;

        control_text(a, "%-23s %-23s %9s %9s %9s %s\n", "PEER", "LISTENER", "CONNECTED", "IDLE", "QUEUED", "VIA");
        control_json(a, ",\"clients\":[");
        for (unsigned i = 0; i < q->n_jobs; i++) {
                const struct worker_job *job = &q->jobs[i];

                if (!atomic_load_explicit(&job->done, memory_order_acquire))
                        continue;
                more += job->n_more;
                for (size_t k = 0; k < job->n_clients; k++) {
                        struct control_name key = { .serial = job->clients[k].listener }, *found;

                        if (!control_room(a)) {
                                more += job->n_clients - k;
                                break;
                        }
                        found = bsearch(&key, names, n_names, sizeof(*names), control_name_cmp);
                        control_list_one(a, &job->clients[k], found ? found->name : "(removed)", listed == 0);
                        listed++;
                }
        }
        control_json(a, "]");
        control_field_u64(a, "count", listed);
        if (more)
                control_field_u64(a, "not_listed", more);
}

void control_cmd_finish(struct control_client *cl, bool complete)
{
        struct server *s = control_server(cl);
        struct worker_query *q = cl->query;
        struct control_name *names;
        size_t n = 0, kicked = 0;

        control_ok(&cl->answer);
        if (q->kind == WORKER_QUERY_KICK) {
                for (unsigned i = 0; i < q->n_jobs; i++)
                        if (atomic_load_explicit(&q->jobs[i].done, memory_order_acquire))
                                kicked += q->jobs[i].n_kicked;
                control_field_u64(&cl->answer, "kicked", kicked);
        } else {
                names = calloc(s->n_listeners + 1, sizeof(*names));
                for (const struct listener *l = s->listeners; names && l; l = l->next)
                        names[n++] = (struct control_name) { l->serial, control_listener_name(l) };
                if (names)
                        qsort(names, n, sizeof(*names), control_name_cmp);
                control_finish_list(cl, names, n);
                free(names);
        }
        if (!complete)
                control_field(&cl->answer, "warning", "a worker did not answer within %u ms: "
                              "its clients are left out", CONTROL_QUERY_MS);
}

/* ---- the table ------------------------------------------------------------------------------------ */

static const struct {
        const char *name;
        int (*run)(struct control_client *cl);
        bool changes;           /* logged at notice */
} control_handlers[] = {
        { "status",  control_cmd_status,    false },
        { "stats",   control_cmd_stats,     false },
        { "clients", control_cmd_clients,   false },
        { "kick",    control_cmd_kick,      true },
        { "ban",     control_cmd_ban,       true },
        { "unban",   control_cmd_unban,     true },
        { "bans",    control_cmd_bans,      false },
        { "reload",  control_cmd_reload,    true },
        { "check",   control_cmd_check,     false },
        { "upgrade", control_cmd_upgrade,   true },
        { "drain",   control_cmd_drain_on,  true },
        { "undrain", control_cmd_drain_off, true },
        { "help",    control_cmd_help,      false },
        { "version", control_cmd_version,   false },
};

int control_cmd_run(struct control_client *cl)
{
        for (size_t i = 0; i < ELEMENTSOF(control_handlers); i++)
                if (strcmp(control_handlers[i].name, cl->req.cmd->name) == 0)
                        return control_handlers[i].run(cl);
        control_error(&cl->answer, "%s: not implemented", cl->req.cmd->name);
        return 0;
}

bool control_cmd_changes(const struct control_command *cmd)
{
        for (size_t i = 0; i < ELEMENTSOF(control_handlers); i++)
                if (strcmp(control_handlers[i].name, cmd->name) == 0)
                        return control_handlers[i].changes;
        return false;
}
