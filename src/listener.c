/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"

#define LISTENER_BACKLOG 4096

struct lsettings *lsettings_new(const struct listen_opts *o)
{
        struct lsettings *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        if (listen_opts_copy(&s->o, o) < 0) {
                free(s);
                return NULL;
        }
        s->refs = 1;
        return s;
}

struct lsettings *lsettings_ref(struct lsettings *s)
{
        s->refs++;
        return s;
}

void lsettings_unref(struct lsettings *s)
{
        if (!s || --s->refs > 0)
                return;
        listen_opts_done(&s->o);
        free(s);
}

int listen_key_from_entry(const struct listen_entry *e, struct listen_key *ret)
{
        struct listen_key k = { .family = AF_UNSPEC, .port = e->port };

        if (e->address) {
                if (inet_pton(AF_INET, e->address, k.addr) == 1)
                        k.family = AF_INET;
                else if (inet_pton(AF_INET6, e->address, k.addr) == 1)
                        k.family = AF_INET6;
                else
                        return -EINVAL;
        }
        *ret = k;
        return 0;
}

bool listen_key_equal(const struct listen_key *a, const struct listen_key *b)
{
        return a->family == b->family && a->port == b->port &&
                memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static int listener_bind(const struct listen_key *k, int *ret_fd)
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

int listener_open(const struct listen_entry *e, struct listener **ret)
{
        struct listener *l;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->fd = -1;
        r = listen_key_from_entry(e, &l->key);
        if (r < 0)
                goto fail;
        r = -ENOMEM;
        l->settings = lsettings_new(&e->opts);
        if (!l->settings)
                goto fail;
        if (e->name && !(l->name = strdup(e->name)))
                goto fail;
        r = listener_bind(&l->key, &l->fd);
        if (r < 0)
                goto fail;
        if (getsockname(l->fd, (struct sockaddr *) &ss, &len) < 0) {
                r = -errno;
                goto fail;
        }
        sockaddr_to_string((struct sockaddr *) &ss, len, l->addr_str);
        l->bound_port = ntohs(ss.ss_family == AF_INET6 ?
                              ((struct sockaddr_in6 *) &ss)->sin6_port :
                              ((struct sockaddr_in *) &ss)->sin_port);
        *ret = l;
        return 0;
fail:
        listener_free(l);
        return r;
}

void listener_free(struct listener *l)
{
        if (!l)
                return;
        if (l->fd >= 0)
                close(l->fd);
        lsettings_unref(l->settings);
        free(l->name);
        free(l);
}
