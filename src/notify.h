/* SPDX-License-Identifier: MIT */
/* The sd_notify protocol, spoken without ever blocking: a datagram socket
 * queues only a few unread messages, and a slow service manager must not
 * stall the loop. State changes (READY, RELOADING, STOPPING) that cannot go
 * now are kept in order and retried, each for NOTIFY_RETRY_MS at most; a
 * STATUS= that cannot go is dropped. An error that retrying cannot cure (no
 * such socket, nobody bound to it, permission denied) ends notifying for
 * good: the caller learns it once from notify_take_error(). Never logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* How long a state change is retried before it is dropped: a manager
 * that has not read its socket for this long is not coming back for it. */
#define NOTIFY_RETRY_MS 60000u

struct notifier;

/* From $NOTIFY_SOCKET (a path or "@abstract"); *ret is NULL when it is unset,
 * and every function below accepts NULL as "nobody listens". */
/* NOTIFY_SOCKET as an address ("@..." abstract): 1, 0 if it is not set, or
 * -EINVAL if it is not a path or an abstract name that fits. */
int notify_address(struct sockaddr_un *ret, socklen_t *ret_len);
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
/* The error that stopped notifying, once (-errno), else 0. */
int notify_take_error(struct notifier *n);
/* Is notifying over for good? */
bool notify_disabled(const struct notifier *n);
/* Retry for ms instead of NOTIFY_RETRY_MS (tests). */
void notify_set_retry_ms(struct notifier *n, unsigned ms);
