/* SPDX-License-Identifier: MIT */
/* The server's listener set: a configuration's listeners applied all or
 * nothing (kept, bound, swapped or retired), systemd's sockets adopted,
 * removed listeners closed once no worker watches them. The main thread's
 * loop, signals, reload and notifications are server.c's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server-internal.h"
#include "systemd.h"
#include "util.h"

/* A removed listener is closed once no worker watches it any more: closing it
 * while another thread's loop still has its descriptor number registered
 * could let that number name a new connection there. */
void server_retire_listener(struct server *s, struct listener *l)
{
        l->next = s->retired;
        s->retired = l;
        s->retired_gen = s->listeners_gen + 1;  /* the generation being committed */
}

bool server_retired_pending(const struct server *s)
{
        return s->retired != NULL;
}

void server_free_retired(struct server *s, bool force)
{
        struct listener *l, *next;

        if (!s->retired)
                return;
        for (unsigned i = 0; !force && i < s->n_workers; i++)
                if (!worker_synced(s->workers[i], s->retired_gen))
                        return;
        for (l = s->retired; l; l = next) {
                next = l->next;
                listener_stop(l);       /* its port may be wanted again soon */
                listener_free(l);
        }
        s->retired = NULL;
}

/* Open a listener for k, with counters of its own (stats.h). */
static int server_open_listener(struct server *s, const struct listener_key *k, struct listener **ret)
{
        struct listener *l;
        int r = listener_open(k, &l);

        if (r < 0)
                return r;
        r = stats_listener_new(s->stats, &l->stats);
        if (r < 0) {
                listener_free(l);
                return r;
        }
        *ret = l;
        return 0;
}

static void server_log_listening(const struct listener *l, const struct listener_conf *e)
{
        const struct listener_opts *o = e ? &e->opts : &l->settings->o;
        const char *name = e ? e->name : l->name;

        log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "listening", .listen = l->addr_str },
                 "listening on %s%s%s%s%s (%s, %s framing)", l->addr_str,
                 name ? " \"" : "", name ? name : "", name ? "\"" : "",
                 l->passed ? ", passed by systemd" : "",
                 o->mode == MODE_ONESHOT ? "oneshot" : "echo",
                 o->framing == FRAMING_RAW ? "raw" : "line");
}

/* The listener already serving entry e, if any (not one claimed before). */
static struct listener *server_find_listener(struct server *s, const struct listener_conf *e,
                                             const struct listener_key *k, int pass)
{
        for (struct listener *l = s->listeners; l; l = l->next) {
                if (l->claimed)
                        continue;
                if (pass == 0 && e->name && l->passed && l->name && strcmp(e->name, l->name) == 0)
                        return l;       /* FileDescriptorName= claims first */
                if (pass == 1 && listener_matches(l, k, true))
                        return l;
                if (pass == 2 && listener_matches(l, k, false))
                        return l;
        }
        return NULL;
}

/* "FILE:LINE: cannot listen on ADDRESS:PORT: WHY" for entry e. */
static char *server_listen_error(const struct config *cfg, const struct listener_conf *e, const char *why)
{
        const char *a = e->address;
        bool v6 = a && strchr(a, ':');
        char *error;

        if (asprintf(&error, "%s:%d: cannot listen on %s%s%s:%u: %s", e->file ? e->file : cfg->path, e->line,
                     v6 ? "[" : "", a ? a : "*", v6 ? "]" : "", e->port, why) < 0)
                return NULL;
        return error;
}

/* A listener the running backend cannot watch would be bound and never
 * served (select: a descriptor at or above FD_SETSIZE). */
static int server_check_watchable(struct server *s, const struct config *cfg,
                                  const struct listener_conf *e, const struct listener *l, char **error)
{
        char why[128];

        if (s->backend->max_fds == 0 || (size_t) l->fd < s->backend->max_fds)
                return 0;
        snprintf(why, sizeof(why), "descriptor %d is beyond what backend \"%s\" can watch (%zu)",
                 l->fd, s->backend->name, s->backend->max_fds);
        *error = server_listen_error(cfg, e, why);
        return -EMFILE;
}

/* Entries whose port a listener going away in this reload still holds (an
 * address changed from all addresses to 127.0.0.1, say): binding them fails
 * with EADDRINUSE until that listener is closed. So: workers stop watching
 * those old listeners, they are closed, the new ones are bound at once; the
 * port refuses connections only for that swap. If a new one cannot be bound,
 * the old ones are bound again and put back, and -errno is returned with
 * *error set. The old listeners (fd -1 on success) stay in the caller's list
 * of old ones, which retires them at the commit. */
static int server_swap_listeners(struct server *s, const struct config *cfg, struct listener **match,
                                 bool *opened, const bool *swap, char **error)
{
        struct listener *moved = NULL, **p, *l;
        size_t n = cfg->n_listeners;
        int r;

        pthread_mutex_lock(&s->listeners_lock);
        for (p = &s->listeners; (l = *p); ) {
                bool take = false;

                for (size_t i = 0; i < n && !take && !l->claimed && !l->passed; i++) {
                        struct listener_key key;

                        take = swap[i] && config_listener_key(&cfg->listeners[i], &key) == 0 &&
                                listener_overlaps(l, &key);
                }
                if (take) {
                        *p = l->next;
                        l->next = moved;
                        moved = l;
                        s->n_listeners--;
                } else {
                        p = &l->next;
                }
        }
        s->listeners_gen++;
        pthread_mutex_unlock(&s->listeners_lock);
        if (!server_resync_workers(s)) {
                r = -ETIMEDOUT;
                if (asprintf(error, "a worker did not answer within %u ms: cannot close %s to listen anew",
                             SERVER_SYNC_WAIT_MS, moved ? moved->addr_str : "?") < 0)
                        *error = NULL;
                goto put_back;
        }

        /* No worker watches them now, but an io_uring poll still being
         * cancelled may hold the socket open: stop, not just close. */
        for (l = moved; l; l = l->next)
                listener_stop(l);
        for (size_t i = 0; i < n; i++) {
                const struct listener_conf *e = &cfg->listeners[i];
                struct listener_key key;

                if (!swap[i])
                        continue;
                r = config_listener_key(e, &key);
                if (r >= 0)
                        r = server_open_listener(s, &key, &match[i]);
                if (r < 0) {
                        *error = server_listen_error(cfg, e, errno_text(-r));
                        goto undo;
                }
                opened[i] = true;
                r = server_check_watchable(s, cfg, e, match[i], error);
                if (r < 0)
                        goto undo;
        }
        return 0;

undo:
        for (size_t i = 0; i < n; i++)
                if (swap[i] && opened[i]) {
                        listener_free(match[i]);
                        match[i] = NULL;
                        opened[i] = false;
                }
        for (l = moved; l; l = l->next) {
                int r2 = listener_reopen(l);

                if (r2 < 0)
                        log_err("cannot listen on %s again after a failed reload: %s",
                                l->addr_str, errno_text(-r2));
        }
put_back:
        pthread_mutex_lock(&s->listeners_lock);
        while ((l = moved)) {
                moved = l->next;
                if (l->fd < 0) {
                        l->stats->shown = false;
                        server_retire_listener(s, l);   /* lost: reported above */
                        continue;
                }
                l->next = s->listeners;
                s->listeners = l;
                s->n_listeners++;
        }
        s->listeners_gen++;
        pthread_mutex_unlock(&s->listeners_lock);
        server_resync_workers(s);
        return r;
}

/* What applying a configuration does to each of its entries: filled by
 * server_plan_open(), then committed or rolled back. Freed by
 * server_plan_done() (as a _cleanup_), whatever happened. */
struct listener_plan {
        size_t n, n_old;
        struct listener **match;                /* entry i's listener */
        struct listener **old;                  /* the listeners before */
        struct listener_settings **set;         /* entry i's new settings */
        bool *opened;                           /* match[i] was opened by this plan */
        bool *swap;                             /* entry i waits for an old listener's port */
        bool any_swap;
        /* old[j]'s settings should no entry claim it (a passed socket: the
         * global defaults); one each, as each holds its listener's counters */
        struct listener_settings **fallback;
};

static void server_plan_done(struct listener_plan *p)
{
        for (size_t i = 0; p->set && i < p->n; i++)
                listener_settings_unref(p->set[i]);
        for (size_t j = 0; p->fallback && j < p->n_old; j++)
                listener_settings_unref(p->fallback[j]);
        free(p->fallback);
        free(p->match);
        free(p->old);
        free(p->set);
        free(p->opened);
        free(p->swap);
}

static int server_plan_init(struct server *s, const struct config *cfg, struct listener_plan *p)
{
        size_t k = 0;

        p->n = cfg->n_listeners;
        p->n_old = s->n_listeners;
        p->match = calloc(p->n + 1, sizeof(*p->match));
        p->old = calloc(p->n_old + 1, sizeof(*p->old));
        p->set = calloc(p->n + 1, sizeof(*p->set));
        p->opened = calloc(p->n + 1, sizeof(*p->opened));
        p->swap = calloc(p->n + 1, sizeof(*p->swap));
        p->fallback = calloc(p->n_old + 1, sizeof(*p->fallback));
        if (!p->match || !p->old || !p->set || !p->opened || !p->swap || !p->fallback)
                return -ENOMEM;
        for (struct listener *l = s->listeners; l; l = l->next, k++) {
                p->old[k] = l;
                if (l->passed && !(p->fallback[k] = listener_settings_new(&cfg->defaults)))
                        return -ENOMEM;
        }
        for (size_t i = 0; i < p->n; i++) {
                p->set[i] = listener_settings_new(&cfg->listeners[i].opts);
                if (!p->set[i])
                        return -ENOMEM;
        }
        return 0;
}

/* Which running listener serves each entry: three passes so that a name or
 * an exact (address, port) wins over a wildcard socket that an entry for
 * all addresses could also take. */
static void server_plan_match(struct server *s, const struct config *cfg, struct listener_plan *p)
{
        for (int pass = 0; pass < 3; pass++)
                for (size_t i = 0; i < p->n; i++) {
                        const struct listener_conf *e = &cfg->listeners[i];
                        struct listener_key key;

                        if (p->match[i] || config_listener_key(e, &key) < 0)
                                continue;
                        p->match[i] = server_find_listener(s, e, &key, pass);
                        if (p->match[i])
                                p->match[i]->claimed = true;
                }
}

/* Bind the entries no running listener serves; an entry whose port a
 * listener going away still holds waits for server_swap_listeners(). */
static int server_plan_open(struct server *s, const struct config *cfg, bool starting,
                            struct listener_plan *p, char **error)
{
        for (size_t i = 0; i < p->n; i++) {
                const struct listener_conf *e = &cfg->listeners[i];
                struct listener_key key;
                int r;

                if (p->match[i])
                        continue;
                r = config_listener_key(e, &key);
                if (r >= 0)
                        r = server_open_listener(s, &key, &p->match[i]);
                if (r == -EADDRINUSE && !starting && server_retired_pending(s)) {
                        /* A listener an earlier reload removed may still hold
                         * the port: it is closed once every worker has let go
                         * of it, which a worker short of CPU may not have done
                         * yet. Wait for that (bounded), then try once more. */
                        (void) server_wait_synced(s);
                        if (!server_retired_pending(s))
                                r = server_open_listener(s, &key, &p->match[i]);
                }
                if (r == -EADDRINUSE && !starting) {
                        for (struct listener *l = s->listeners; l && !p->swap[i]; l = l->next)
                                p->swap[i] = !l->claimed && !l->passed && listener_overlaps(l, &key);
                        if (p->swap[i]) {
                                p->any_swap = true;
                                continue;
                        }
                }
                if (r < 0) {
                        *error = server_listen_error(cfg, e, errno_text(-r));
                        return r;
                }
                p->opened[i] = true;
                r = server_check_watchable(s, cfg, e, p->match[i], error);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* muxd must be left with a listening socket (the file's own, or one systemd
 * passed); the configuration refuses a file without listeners, so this only
 * guards. */
static int server_plan_check_left(const struct config *cfg, const struct listener_plan *p, char **error)
{
        size_t n_kept = p->n;

        for (size_t j = 0; j < p->n_old; j++)
                if (!p->old[j]->claimed && p->old[j]->passed)
                        n_kept++;
        if (n_kept > 0)
                return 0;
        if (asprintf(error, "%s: no listeners: set \"ports\" or \"listen\"", cfg->path) < 0)
                *error = NULL;
        return -EINVAL;
}

/* l's settings count into l's counters, shown under the entry's name if it
 * has one, else ADDRESS:PORT. */
static void server_listener_stats(struct listener *l, const char *name)
{
        struct stats_listener *st = l->stats;

        if (!l->settings->stats)
                l->settings->stats = stats_listener_ref(st);
        st->shown = true;
        snprintf(st->label, sizeof(st->label), "%s", name ? name : l->addr_str);
        snprintf(st->address, sizeof(st->address), "%s", l->addr_str);
}

/* A running listener no entry claims: a passed one keeps serving with the
 * global defaults (systemd holds it for us), any other is retired. Returns
 * whether it stays in the list. */
static bool server_plan_unclaimed(struct server *s, const struct config *cfg, bool starting,
                                  struct listener_plan *p, size_t j)
{
        struct listener *l = p->old[j];

        l->conf = NULL;
        if (!l->passed) {
                log_full(LOG_LEVEL_INFO, &(const struct log_fields) { .event = "unlistening", .listen = l->addr_str },
                         "no longer listening on %s", l->addr_str);
                l->stats->shown = false;        /* its connections still count in the totals */
                server_retire_listener(s, l);
                return false;
        }
        listener_settings_unref(l->settings);
        l->settings = p->fallback[j];
        p->fallback[j] = NULL;
        server_listener_stats(l, NULL);
        if (starting)
                server_log_listening(l, NULL);
        log_full(LOG_LEVEL_NOTICE, &(const struct log_fields) { .event = "unclaimed-socket", .listen = l->addr_str },
                 "socket %s (\"%s\") passed by systemd matches no entry in %s: serving it with the global defaults",
                 l->addr_str, l->name ? l->name : "", cfg->path);
        return true;
}

/* The new list, in the file's order, then the passed sockets kept; every
 * worker takes it. Nothing here can fail. */
static void server_plan_commit(struct server *s, const struct config *cfg, bool starting,
                               struct listener_plan *p)
{
        struct listener *list = NULL, **tail = &list, *l;

        pthread_mutex_lock(&s->listeners_lock);
        for (size_t i = 0; i < p->n; i++) {
                l = p->match[i];
                l->conf = &cfg->listeners[i];   /* cfg becomes the server's */
                listener_settings_unref(l->settings);
                l->settings = p->set[i];
                p->set[i] = NULL;
                server_listener_stats(l, cfg->listeners[i].name);
                if (starting || p->opened[i])
                        server_log_listening(l, &cfg->listeners[i]);
                *tail = l;
                tail = &l->next;
        }
        for (size_t j = 0; j < p->n_old; j++) {
                l = p->old[j];
                if (l->claimed || !server_plan_unclaimed(s, cfg, starting, p, j))
                        continue;
                *tail = l;
                tail = &l->next;
        }
        *tail = NULL;
        s->listeners = list;
        s->n_listeners = 0;
        for (struct listener *prev = NULL; (l = list); prev = l, list = l->next) {
                l->claimed = false;
                s->n_listeners++;
                /* snapshots list the listeners in this order */
                stats_listener_move(s->stats, l->stats, prev ? prev->stats : NULL);
        }
        s->listeners_gen++;
        pthread_mutex_unlock(&s->listeners_lock);
        server_resync_workers(s);
}

static void server_plan_rollback(struct server *s, struct listener_plan *p)
{
        for (size_t i = 0; p->match && p->opened && i < p->n; i++)
                if (p->opened[i])
                        listener_free(p->match[i]);
        for (struct listener *l = s->listeners; l; l = l->next)
                l->claimed = false;
}

/* What apply and check share: match the entries to the running listeners,
 * bind the others, make sure one would be left. 0 or -errno (*error set). */
static int server_plan_prepare(struct server *s, const struct config *cfg, bool starting,
                               struct listener_plan *p, char **error)
{
        int r;

        *error = NULL;
        for (struct listener *l = s->listeners; l; l = l->next)
                l->claimed = false;
        r = server_plan_init(s, cfg, p);
        if (r < 0)
                return r;
        server_plan_match(s, cfg, p);
        r = server_plan_open(s, cfg, starting, p, error);
        if (r < 0)
                return r;
        return server_plan_check_left(cfg, p, error);
}

/* Make the listeners match cfg, all or nothing: listeners with the same
 * (address, port) keep their socket, new ones are bound, removed ones stop
 * accepting (passed sockets fall back to the global defaults). If a new
 * listener cannot be bound or watched, or none would be left, the ones just
 * opened are closed, nothing else changed, and -errno is returned with
 * *error set to a "FILE:LINE: ..." text (NULL if out of memory). */
int server_apply_listeners(struct server *s, const struct config *cfg, bool starting, char **error)
{
        _cleanup_(server_plan_done) struct listener_plan p = { 0 };
        int r;

        r = server_plan_prepare(s, cfg, starting, &p, error);
        if (r >= 0 && p.any_swap)
                r = server_swap_listeners(s, cfg, p.match, p.opened, p.swap, error);
        if (r < 0) {
                server_plan_rollback(s, &p);
                return r;
        }
        server_plan_commit(s, cfg, starting, &p);
        return 0;
}

/* What server_apply_listeners() would refuse, changing nothing: the entries
 * no running listener serves are bound and closed again at once (an entry
 * that waits for the port of a listener going away passes: a reload swaps
 * them). Returns 0, or -errno with *error set as there. */
int server_check_listeners(struct server *s, const struct config *cfg, char **error)
{
        _cleanup_(server_plan_done) struct listener_plan p = { 0 };
        int r;

        r = server_plan_prepare(s, cfg, false, &p, error);
        server_plan_rollback(s, &p);
        return r;
}

/* Sockets systemd passed become listeners before any config entry is matched. */
int server_adopt_passed(struct server *s)
{
        struct passed_socket *p;
        struct listener **tail = &s->listeners;
        size_t n;
        int bad = -1, r;

        r = systemd_listen_fds(&p, &n, &bad);
        if (r == -ENOTSOCK) {
                log_err("descriptor %d passed by systemd is not a listening TCP socket", bad);
                goto out;
        }
        if (r < 0) {
                log_err("cannot take the sockets passed by systemd: %s", errno_text(-r));
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                struct listener *l;

                if (p[i].store_id) {
                        /* a connection from the fd store: served once the listeners are known */
                        r = server_fdstore_retake(s, p[i].fd, p[i].store_id);
                        if (r < 0) {
                                log_err("out of memory");
                                goto out;
                        }
                        continue;
                }
                r = listener_adopt(p[i].fd, p[i].name, &l);
                if (r >= 0 && (r = stats_listener_new(s->stats, &l->stats)) < 0) {
                        l->fd = -1;     /* still the caller's, as on the failure above */
                        listener_free(l);
                }
                if (r < 0) {
                        log_err("cannot use descriptor %d (\"%s\") passed by systemd: %s",
                                p[i].fd, p[i].name, errno_text(-r));
                        goto out;
                }
                *tail = l;
                tail = &l->next;
                s->n_listeners++;
        }
        r = 0;
out:
        systemd_passed_sockets_free(p, n);
        return r;
}
