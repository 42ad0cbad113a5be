/* SPDX-License-Identifier: MIT */
/* The sd_notify protocol, spoken without ever blocking: a datagram socket
 * queues only a few unread messages, and a slow service manager must not
 * stall the loop. State changes (READY, RELOADING, STOPPING) that cannot go
 * now are kept in order and retried; a STATUS= that cannot go is dropped.
 * Never logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct notifier;

/* From $NOTIFY_SOCKET (a path or "@abstract"); *ret is NULL when it is unset,
 * and every function below accepts NULL as "nobody listens". */
int notify_open(struct notifier **ret);
void notify_free(struct notifier *n);           /* accepts NULL */

/* Send a state change ("READY=1", "STOPPING=1", ...), queued if it can't go now.
 * -ENOBUFS if too many are already waiting. */
int notify_state(struct notifier *n, const char *msg);
/* Send msg ("STATUS=...", "WATCHDOG=1") unless the socket is busy or state
 * changes are still waiting: then it is dropped (-EAGAIN). */
int notify_try(struct notifier *n, const char *msg);
/* Retry queued state changes; true if some are still waiting. */
bool notify_flush(struct notifier *n);
bool notify_pending(const struct notifier *n);
