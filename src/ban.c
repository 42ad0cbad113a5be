/* SPDX-License-Identifier: MIT */
/* Runtime bans (see ban.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ban.h"

static bool ban_expired(const struct ban *b, uint64_t now_ms)
{
        return b->until_ms != 0 && b->until_ms <= now_ms;
}

static bool ban_same_net(const struct cidr *a, const struct cidr *b)
{
        return a->family == b->family && a->prefix == b->prefix &&
                memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static struct ban_list *ban_list_alloc(size_t n)
{
        struct ban_list *l = malloc(sizeof(*l) + n * sizeof(struct ban));

        if (!l)
                return NULL;
        atomic_init(&l->refs, 1);
        l->n = 0;
        return l;
}

/* old's live entries but net, into a new list with room for one more. */
static struct ban_list *ban_list_copy_without(const struct ban_list *old, const struct cidr *net,
                                              uint64_t now_ms, bool *found)
{
        size_t n_old = old ? old->n : 0;
        struct ban_list *l = ban_list_alloc(n_old + 1);

        *found = false;
        if (!l)
                return NULL;
        for (size_t i = 0; i < n_old; i++) {
                const struct ban *b = &old->bans[i];

                if (ban_same_net(&b->net, net)) {
                        *found = *found || !ban_expired(b, now_ms);
                        continue;
                }
                if (!ban_expired(b, now_ms))
                        l->bans[l->n++] = *b;
        }
        return l;
}

int ban_list_add(const struct ban_list *old, const struct cidr *net, uint64_t until_ms,
                 uint64_t now_ms, struct ban_list **ret)
{
        struct ban_list *l;
        bool found;

        l = ban_list_copy_without(old, net, now_ms, &found);
        if (!l)
                return -ENOMEM;
        if (l->n >= BAN_MAX) {
                ban_list_unref(l);
                return -ENOSPC;
        }
        l->bans[l->n++] = (struct ban) { .net = *net, .until_ms = until_ms };
        *ret = l;
        return 0;
}

int ban_list_remove(const struct ban_list *old, const struct cidr *net, uint64_t now_ms,
                    struct ban_list **ret)
{
        struct ban_list *l;
        bool found;

        l = ban_list_copy_without(old, net, now_ms, &found);
        if (!l)
                return -ENOMEM;
        if (!found) {
                ban_list_unref(l);
                return -ENOENT;
        }
        *ret = l;
        return 0;
}

bool ban_list_match(const struct ban_list *l, int family, const void *addr, uint64_t now_ms)
{
        if (!l)
                return false;
        for (size_t i = 0; i < l->n; i++)
                if (!ban_expired(&l->bans[i], now_ms) && cidr_match(&l->bans[i].net, family, addr))
                        return true;
        return false;
}

size_t ban_list_active(const struct ban_list *l, uint64_t now_ms)
{
        size_t n = 0;

        for (size_t i = 0; l && i < l->n; i++)
                n += !ban_expired(&l->bans[i], now_ms);
        return n;
}

struct ban_list *ban_list_ref(struct ban_list *l)
{
        if (l)
                atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
        return l;
}

void ban_list_unref(struct ban_list *l)
{
        if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) > 1)
                return;
        free(l);
}
