/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"

#define LISTENER_BACKLOG 4096

static uint64_t listener_next_serial(void)
{
        static _Atomic uint64_t serial;

        return atomic_fetch_add_explicit(&serial, 1, memory_order_relaxed) + 1;
}

struct listener_settings *listener_settings_new(const struct listener_opts *o)
{
        struct listener_settings *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        if (listener_opts_copy(&s->o, o) < 0) {
                free(s);
                return NULL;
        }
        s->refs = 1;
        return s;
}

struct listener_settings *listener_settings_ref(struct listener_settings *s)
{
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
        return s;
}

void listener_settings_unref(struct listener_settings *s)
{
        if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) > 1)
                return;
        stats_listener_unref(s->stats);
        listener_opts_done(&s->o);
        free(s);
}

bool listener_key_equal(const struct listener_key *a, const struct listener_key *b)
{
        return a->family == b->family && a->port == b->port &&
                memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static int listener_bind(const struct listener_key *k, int *ret_fd)
{
        _cleanup_close_ int fd = -1;
        struct sockaddr_storage ss = { 0 };
        socklen_t len;
        int family = k->family == AF_UNSPEC ? AF_INET6 : k->family;
        int one = 1, v6only;

        fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 && k->family == AF_UNSPEC && errno == EAFNOSUPPORT) {
                /* no IPv6 on this host: all addresses means 0.0.0.0 */
                family = AF_INET;
                fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        }
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
                return -errno;

        if (family == AF_INET6) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;

                /* no address: one dual-stack socket; an explicit "::" is IPv6 only */
                v6only = k->family != AF_UNSPEC;
                if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
                        return -errno;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(k->port);
                if (k->family == AF_INET6)
                        memcpy(&sin6->sin6_addr, k->addr, 16);
                len = sizeof(*sin6);
        } else {
                struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

                sin->sin_family = AF_INET;
                sin->sin_port = htons(k->port);
                if (k->family == AF_INET)
                        memcpy(&sin->sin_addr, k->addr, 4);
                len = sizeof(*sin);
        }
        if (bind(fd, (struct sockaddr *) &ss, len) < 0)
                return -errno;
        if (listen(fd, LISTENER_BACKLOG) < 0)
                return -errno;
        *ret_fd = fd;
        fd = -1;
        return 0;
}

/* Fill l->addr_str and l->bound_port from the socket itself. */
static int listener_describe(struct listener *l, struct sockaddr_storage *ss)
{
        socklen_t len = sizeof(*ss);

        if (getsockname(l->fd, (struct sockaddr *) ss, &len) < 0)
                return -errno;
        if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
                return -EAFNOSUPPORT;
        sockaddr_to_string((struct sockaddr *) ss, len, l->addr_str);
        l->bound_port = ntohs(ss->ss_family == AF_INET6 ?
                              ((struct sockaddr_in6 *) ss)->sin6_port :
                              ((struct sockaddr_in *) ss)->sin_port);
        return 0;
}

/* Accepted sockets inherit TCP_NODELAY from their listener (Linux): set
 * once here, it saves a system call per connection. */
static bool listener_set_nodelay(int fd)
{
        int one = 1;

        return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
}

int listener_adopt(int fd, const char *name, struct listener **ret)
{
        struct sockaddr_storage ss;
        struct listener *l;
        int flags, r, v6only = 1;
        socklen_t optlen = sizeof(v6only);

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->fd = fd;
        l->serial = listener_next_serial();
        l->passed = true;
        l->nodelay = listener_set_nodelay(fd);
        r = listener_describe(l, &ss);
        if (r < 0)
                goto fail;
        r = -ENOMEM;
        if (name && !(l->name = strdup(name)))
                goto fail;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = -errno;
                goto fail;
        }
        l->key.port = l->bound_port;
        if (ss.ss_family == AF_INET) {
                l->key.family = AF_INET;
                memcpy(l->key.addr, &((struct sockaddr_in *) &ss)->sin_addr, 4);
        } else {
                const struct in6_addr *a = &((struct sockaddr_in6 *) &ss)->sin6_addr;

                l->key.family = AF_INET6;
                memcpy(l->key.addr, a, 16);
                if (IN6_IS_ADDR_UNSPECIFIED(a) &&
                    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen) == 0 && !v6only) {
                        l->key.family = AF_UNSPEC;      /* ListenStream=PORT: dual-stack */
                        memset(l->key.addr, 0, sizeof(l->key.addr));
                        l->dual_stack = true;
                }
        }
        *ret = l;
        return 0;
fail:
        l->fd = -1;     /* the caller still owns the passed fd */
        listener_free(l);
        return r;
}

bool listener_matches(const struct listener *l, const struct listener_key *k, bool exact)
{
        static const uint8_t zero[16];

        if (k->port == 0 && l->passed)
                return false;   /* port 0 asks for a fresh ephemeral port */
        if (listener_key_equal(&l->key, k))
                return true;
        /* an ephemeral listener whose port is now written in the file */
        if (l->key.port == 0 && k->port == l->bound_port && l->key.family == k->family &&
            memcmp(l->key.addr, k->addr, sizeof(k->addr)) == 0)
                return true;
        if (exact || k->family != AF_UNSPEC || l->key.port != k->port)
                return false;
        /* an entry for all addresses may take a passed 0.0.0.0 or IPv6-only :: socket */
        return l->passed && memcmp(l->key.addr, zero, sizeof(zero)) == 0;
}

bool listener_overlaps(const struct listener *l, const struct listener_key *k)
{
        static const uint8_t zero[16];

        if (k->port == 0 || l->bound_port != k->port)
                return false;
        if (l->key.family == AF_UNSPEC || k->family == AF_UNSPEC)
                return true;    /* a dual-stack socket takes every address */
        if (l->key.family != k->family)
                return false;
        return memcmp(l->key.addr, zero, sizeof(zero)) == 0 || memcmp(k->addr, zero, sizeof(zero)) == 0 ||
                memcmp(l->key.addr, k->addr, sizeof(zero)) == 0;
}

int listener_reopen(struct listener *l)
{
        struct listener_key k = l->key;
        int fd = -1, r;

        k.port = l->bound_port;
        r = listener_bind(&k, &fd);
        if (r < 0)
                return r;
        if (l->fd >= 0)
                close(l->fd);
        l->fd = fd;
        l->nodelay = true;
        return 0;
}

int listener_open(const struct listener_key *k, struct listener **ret)
{
        struct sockaddr_storage ss;
        struct listener *l;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->key = *k;
        l->fd = -1;
        l->serial = listener_next_serial();
        r = listener_bind(k, &l->fd);
        if (r < 0)
                goto fail;
        r = listener_describe(l, &ss);
        if (r < 0)
                goto fail;
        l->dual_stack = k->family == AF_UNSPEC && ss.ss_family == AF_INET6;
        l->nodelay = true;      /* listener_bind() set it */
        *ret = l;
        return 0;
fail:
        listener_free(l);
        return r;
}

void listener_stop(struct listener *l)
{
        if (l->fd < 0)
                return;
        /* shutdown() takes a listening socket out of the listening state
         * (the kernel disconnects it), and SO_REUSEADDR lets a new socket
         * bind next to one that no longer listens. */
        if (!l->passed && !l->handed)
                (void) shutdown(l->fd, SHUT_RDWR);
        close(l->fd);
        l->fd = -1;
}

void listener_free(struct listener *l)
{
        if (!l)
                return;
        if (l->fd >= 0)
                close(l->fd);
        listener_settings_unref(l->settings);
        stats_listener_unref(l->stats);
        free(l->name);
        free(l);
}
