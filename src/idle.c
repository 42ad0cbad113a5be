/* SPDX-License-Identifier: MIT */
#include <stddef.h>
#include <stdint.h>

#include "idle.h"

void idle_queue_init(struct idle_queue *q)
{
        q->head.prev = q->head.next = &q->head;
        q->count = 0;
}

bool idle_queued(const struct idle_link *l)
{
        return l->next != NULL;
}

void idle_remove(struct idle_queue *q, struct idle_link *l)
{
        if (!idle_queued(l))
                return;
        l->prev->next = l->next;
        l->next->prev = l->prev;
        l->prev = l->next = NULL;
        q->count--;
}

void idle_touch(struct idle_queue *q, struct idle_link *l, uint64_t now_ms)
{
        l->last_ms = now_ms;
        if (q->head.prev == l)
                return;         /* already the most recent: the common case */
        idle_remove(q, l);
        l->prev = q->head.prev;
        l->next = &q->head;
        q->head.prev->next = l;
        q->head.prev = l;
        q->count++;
}

void idle_insert_sorted(struct idle_queue *q, struct idle_link *l, uint64_t t)
{
        struct idle_link *after = q->head.prev;

        while (after != &q->head && after->last_ms > t)
                after = after->prev;
        l->last_ms = t;
        l->prev = after;
        l->next = after->next;
        after->next->prev = l;
        after->next = l;
        q->count++;
}

struct idle_link *idle_oldest(const struct idle_queue *q)
{
        return q->head.next == &q->head ? NULL : q->head.next;
}

int idle_next_timeout(const struct idle_queue *q, uint64_t now_ms, uint64_t timeout_ms)
{
        const struct idle_link *l = idle_oldest(q);
        uint64_t deadline;

        if (!l || timeout_ms == 0)
                return -1;
        deadline = l->last_ms + timeout_ms;
        if (deadline <= now_ms)
                return 0;
        return deadline - now_ms > INT32_MAX ? INT32_MAX : (int) (deadline - now_ms);
}

struct idle_link *idle_pop_expired(struct idle_queue *q, uint64_t now_ms, uint64_t timeout_ms)
{
        struct idle_link *l = idle_oldest(q);

        if (!l || timeout_ms == 0 || l->last_ms + timeout_ms > now_ms)
                return NULL;
        idle_remove(q, l);
        return l;
}
