/* SPDX-License-Identifier: MIT */
/* The event loop: one small interface over interchangeable backends
 * (epoll, poll, select, io_uring). A backend only translates: it fills the loop's
 * neutral fired[] array; the loop dispatches once, re-checking each fd's
 * mask because an earlier callback may have removed it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EV_NONE     0
#define EV_READABLE 1
#define EV_WRITABLE 2
/* ev_add() hint: when several loops watch this fd, wake only one of them
 * (EPOLLEXCLUSIVE); backends without such a mode ignore it. */
#define EV_EXCLUSIVE 4
/* ev_add() hint: in each round, dispatch this fd after every other one that
 * fired (listeners: the clients already connected are served before new ones
 * are taken, so a burst of connections does not delay their replies). */
#define EV_LAST 8

struct ev_loop;
typedef void ev_proc(struct ev_loop *loop, int fd, void *data, int mask);

struct ev_backend {
        const char *name;
        size_t max_fds;                 /* highest fd + 1 it can watch; 0: no limit of its own */
        int (*probe)(void);             /* 0 if usable here, else -errno */
        int (*create)(struct ev_loop *loop);
        void (*destroy)(struct ev_loop *loop);
        int (*add)(struct ev_loop *loop, int fd, int oldmask, int addmask);
        int (*del)(struct ev_loop *loop, int fd, int oldmask, int delmask);
        /* wait at most timeout_ms (-1: forever); fill loop->fired; return count or -errno */
        int (*poll)(struct ev_loop *loop, int timeout_ms);
        /* optional, completion-based backends: run what the last poll reaped
         * besides readiness (called by ev_dispatch after the callbacks) */
        void (*complete)(struct ev_loop *loop);
        /* Closing a descriptor ends the kernel's watch of it (epoll, when no
         * other descriptor shares its file): ev_close() needs no del. */
        bool close_forgets;
};

/* Backend registry. */
const struct ev_backend *ev_backend_find(const char *name);
const char *ev_backend_names(void);     /* "epoll, poll, select[, io_uring]" */
const struct ev_backend *ev_backend_default(void);
/* Can this kernel run b (io_uring: a seccomp filter such as the unit's
 * SystemCallFilter=, kernel.io_uring_disabled or an old kernel may refuse
 * it)? Tries it: 0, or -errno with *why (malloc'd, NULL without memory) saying
 * why and what to do instead, for a "FILE:LINE: backend: " prefix. */
int ev_backend_check(const struct ev_backend *b, char **why);

/* setsize: one more than the highest fd the loop may watch. */
int ev_loop_new(const struct ev_backend *b, int setsize, struct ev_loop **ret);
void ev_loop_free(struct ev_loop *loop);         /* accepts NULL */
int ev_loop_setsize(const struct ev_loop *loop);
const struct ev_backend *ev_loop_backend(const struct ev_loop *loop);

/* Watch fd for mask (added to what is already watched); proc/data replace earlier ones.
 * Returns 0, -ERANGE if fd is beyond the loop's size, or a backend -errno. */
int ev_add(struct ev_loop *loop, int fd, int mask, ev_proc *proc, void *data);
/* Stop watching mask on fd (EV_READABLE|EV_WRITABLE forgets fd). Never fails. */
void ev_del(struct ev_loop *loop, int fd, int mask);
/* Stop watching fd and close it, without a system call for the former where
 * closing does it (epoll): for a descriptor that no other one shares. */
void ev_close(struct ev_loop *loop, int fd);
int ev_mask(const struct ev_loop *loop, int fd);

/* Wait at most timeout_ms (-1: forever); returns the number of fired events
 * (0 on timeout or EINTR) or -errno. Split from ev_dispatch so the caller can
 * read the clock once per wakeup, before any callback runs. */
int ev_wait(struct ev_loop *loop, int timeout_ms);
/* Run the callbacks of the n events ev_wait() returned (and, on a
 * completion-based backend, the completions it reaped; call it even for n = 0). */
void ev_dispatch(struct ev_loop *loop, int n);
/* Both. */
int ev_run_once(struct ev_loop *loop, int timeout_ms);
