/* SPDX-License-Identifier: MIT */
/* Idle timeouts without scanning every connection: all clients share one
 * timeout, so a list kept in order of last activity (touch = move to the tail)
 * expires from its head in O(expired) and a touch is O(1). The clock is
 * passed in, so tests drive it by hand. Never logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct idle_link {
        struct idle_link *prev, *next;
        uint64_t last_ms;       /* last activity, monotonic milliseconds */
};

struct idle_queue {
        struct idle_link head;  /* sentinel: head.next is the least recently active */
        uint32_t count;
};

void idle_queue_init(struct idle_queue *q);
/* Insert (or move) link at the tail, active now. */
void idle_touch(struct idle_queue *q, struct idle_link *l, uint64_t now_ms);
void idle_remove(struct idle_queue *q, struct idle_link *l);    /* no-op if not queued */
/* Insert l (not queued) with last_ms = t, keeping q in order of last_ms: for
 * deadlines that may differ per link (PROXY headers: proxy_timeout is per
 * listener). It walks back from the tail past the later links only, so it
 * is O(1) when every link has the same timeout. */
void idle_insert_sorted(struct idle_queue *q, struct idle_link *l, uint64_t t);
bool idle_queued(const struct idle_link *l);
/* The least recently active link, or NULL. */
struct idle_link *idle_oldest(const struct idle_queue *q);
/* Milliseconds until the oldest link has been idle timeout_ms (0 if already),
 * or -1 if the queue is empty or timeout_ms is 0. Capped at INT32_MAX. */
int idle_next_timeout(const struct idle_queue *q, uint64_t now_ms, uint64_t timeout_ms);
/* Remove and return the oldest link if it has been idle at least timeout_ms, else NULL. */
struct idle_link *idle_pop_expired(struct idle_queue *q, uint64_t now_ms, uint64_t timeout_ms);

