/* SPDX-License-Identifier: MIT */
/* The control socket (muxctl's): a UNIX stream socket served by the main
 * thread's own loop, never by a worker. One request per connection (see
 * control-proto.h for its form, muxctl(8) for the commands); only root,
 * muxd's own user and the socket's group may use it. Nothing a client does
 * can stall the loop: every descriptor is non-blocking, requests and
 * answers are bounded, queries to the workers complete on a later pass of
 * the loop, and a client that does not read its answer is dropped. */
#pragma once

#include <stdint.h>

struct server;
struct control;

/* Listen on path (mode 0660, group "muxd" when that group exists). A stale
 * socket file (nothing accepts on it) is replaced; one a live process
 * serves is not. Returns 0, or -errno with *error saying what failed
 * (malloc'd; NULL if out of memory). */
int control_open(struct server *s, const char *path, struct control **ret, char **error);
/* Close every control connection and the socket, and remove its file.
 * Accepts NULL. */
/* The same on the listening socket fd a previous image handed over (a live
 * upgrade: the path stays bound to it); fd is the control's from now on. */
int control_open_fd(struct server *s, const char *path, int fd, struct control **ret, char **error);
/* The live upgrade is complete: the path is this image's to remove at exit. */
void control_claim_path(struct control *c);
/* Its listening socket (a live upgrade hands it to the next image). */
int control_fd(const struct control *c);
void control_free(struct control *c);
/* Milliseconds until control_tick() has something to do (-1: nothing);
 * c may be NULL. */
int control_next_timeout(struct control *c, uint64_t now_ms);
/* Finish the requests whose queries the workers have answered (or that
 * waited long enough), drop clients past their deadlines. c may be NULL. */
void control_tick(struct control *c, uint64_t now_ms);
const char *control_path(const struct control *c);
