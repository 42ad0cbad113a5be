/* SPDX-License-Identifier: MIT */
/* Private to server.c (the main thread: loop, signals, reload, notify) and
 * server-listeners.c (the listener set). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "server.h"

/* How long the main thread waits for every worker to take a listener list. */
#define SERVER_SYNC_WAIT_MS 2000u

/* server.c */
/* Wait (at most SERVER_SYNC_WAIT_MS) until every worker has taken the
 * current listener generation; false if one did not. */
bool server_wait_synced(struct server *s);
/* Ask every worker to take the current listener list, then wait as above. */
bool server_resync_workers(struct server *s);

/* server-listeners.c */
/* Make the listeners match cfg, all or nothing (see there). Returns 0, or
 * -errno with *error a "FILE:LINE: ..." text (NULL if out of memory). */
int server_apply_listeners(struct server *s, const struct config *cfg, bool starting, char **error);
/* The same checks without applying anything (the control socket's check). */
int server_check_listeners(struct server *s, const struct config *cfg, char **error);
/* Take the sockets systemd passed (LISTEN_FDS) as listeners. */
int server_adopt_passed(struct server *s);
/* Close l once no worker watches it any more (l leaves the list first). */
void server_retire_listener(struct server *s, struct listener *l);
bool server_retired_pending(const struct server *s);
/* Close the retired listeners every worker has let go of (all, if force). */
void server_free_retired(struct server *s, bool force);

/* server-upgrade.c */
/* The new image: read and check the state, adopt its listeners (before the
 * configuration's are applied). 0, or -errno with *error (NULL: no memory). */
int server_upgrade_adopt(struct server *s, char **error);
/* ... then give its connections to the workers (before they start). */
int server_upgrade_distribute(struct server *s);
/* ... ready: tell the previous image, which exits. */
void server_upgrade_done(struct server *s);
void server_upgrade_free(struct server *s);
const char *server_upgrade_from(void);
/* How many connections the previous image handed over. */
size_t server_upgrade_n_conns(const struct server *s);
/* The control socket the previous image handed over, if it listens on path
 * (then it is the caller's); else -1. */
int server_upgrade_control_fd(const char *path);
/* The old image: pause every worker until each has described its
 * connections; un-pause them if the upgrade fails. */
int server_upgrade_pause(struct server *s, char **why);
void server_upgrade_unpause(struct server *s);
/* Write the state, start the new image, wait for its verdict. 0 with
 * *ret_pid, or -errno with *why (to free). */
int server_upgrade_spawn(struct server *s, char **why, pid_t *ret_pid);

/* server-fdstore.c */
/* Keep the connection fd passed by systemd (LISTEN_FDS, named as a stored
 * one, id) for server_fdstore_distribute(). 0 or -ENOMEM. */
int server_fdstore_retake(struct server *s, int fd, uint64_t id);
/* Give the connections retaken to the workers (before they start), each to
 * the listener its local address belongs to; one whose listener is gone is
 * closed, with a log line. 0 or -ENOMEM. */
int server_fdstore_distribute(struct server *s);
void server_fdstore_free(struct server *s);
