/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event-backend.h"
#include "util.h"

/* The registry: the first entry is the default. */
static const struct ev_backend *const ev_backends[] = {
        &ev_backend_epoll,
        &ev_backend_poll,
        &ev_backend_select,
#ifdef HAVE_LIBURING
        &ev_backend_uring,
#endif
};

const struct ev_backend *ev_backend_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(ev_backends); i++)
                if (strcmp(ev_backends[i]->name, name) == 0)
                        return ev_backends[i];
        return NULL;
}

/* "epoll, poll, select[, io_uring]", made once from the table above: the one
 * list of backends (messages, and the integration tests, which read it from
 * "muxd -t"). */
static char ev_names[128];
static pthread_once_t ev_names_once = PTHREAD_ONCE_INIT;

static void ev_backend_names_make(void)
{
        size_t o = 0;

        for (size_t i = 0; i < ELEMENTSOF(ev_backends) && o < sizeof(ev_names); i++)
                o += (size_t) snprintf(ev_names + o, sizeof(ev_names) - o, "%s%s",
                                       i > 0 ? ", " : "", ev_backends[i]->name);
}

const char *ev_backend_names(void)
{
        pthread_once(&ev_names_once, ev_backend_names_make);
        return ev_names;
}

const struct ev_backend *ev_backend_default(void)
{
        return ev_backends[0];
}

int ev_backend_check(const struct ev_backend *b, char **why)
{
        int r = b->probe ? b->probe() : 0, n = 0;

        *why = NULL;
        if (r == -EOPNOTSUPP)
                n = asprintf(why, "this kernel's %s lacks what muxd needs (Linux 6.0 or later); "
                             "use backend \"epoll\"", b->name);
        else if (r < 0)
                n = asprintf(why, "the kernel refused %s (%s); use backend \"epoll\"%s",
                             b->name, strerror(-r),
                             strcmp(b->name, "io_uring") == 0 ?
                             ", or allow io_uring in the unit (SystemCallFilter="
                             "io_uring_setup io_uring_enter io_uring_register)" : "");
        if (n < 0)
                *why = NULL;    /* undefined after a failed asprintf() */
        return r;
}

int ev_loop_new(const struct ev_backend *b, int setsize, struct ev_loop **ret)
{
        struct ev_loop *loop;
        int r;

        if (setsize <= 0)
                return -EINVAL;
        if (b->max_fds != 0 && (size_t) setsize > b->max_fds)
                setsize = (int) b->max_fds;
        if (b->probe) {
                r = b->probe();
                if (r < 0)
                        return r;
        }

        loop = calloc(1, sizeof(*loop));
        if (!loop)
                return -ENOMEM;
        loop->backend = b;
        loop->setsize = setsize;
        loop->maxfd = -1;
        loop->files = calloc((size_t) setsize, sizeof(*loop->files));
        loop->fired = calloc((size_t) setsize, sizeof(*loop->fired));
        if (!loop->files || !loop->fired) {
                r = -ENOMEM;
                goto fail;
        }
        r = b->create(loop);
        if (r < 0)
                goto fail;
        *ret = loop;
        return 0;
fail:
        free(loop->files);
        free(loop->fired);
        free(loop);
        return r;
}

void ev_loop_free(struct ev_loop *loop)
{
        if (!loop)
                return;
        loop->backend->destroy(loop);
        free(loop->files);
        free(loop->fired);
        free(loop);
}

int ev_loop_setsize(const struct ev_loop *loop)
{
        return loop->setsize;
}

const struct ev_backend *ev_loop_backend(const struct ev_loop *loop)
{
        return loop->backend;
}

int ev_add(struct ev_loop *loop, int fd, int mask, ev_proc *proc, void *data)
{
        struct ev_file *f;
        int r;

        if (fd < 0 || fd >= loop->setsize)
                return -ERANGE;
        f = &loop->files[fd];
        if ((f->mask | (mask & (EV_READABLE | EV_WRITABLE))) != f->mask) {
                r = loop->backend->add(loop, fd, f->mask, mask & ~EV_LAST);
                if (r < 0)
                        return r;
        }
        f->mask |= mask & (EV_READABLE | EV_WRITABLE);
        f->last = mask & EV_LAST;
        f->proc = proc;
        f->data = data;
        if (fd > loop->maxfd)
                loop->maxfd = fd;
        return 0;
}

/* The loop's own record of fd, for mask no longer watched. */
static void ev_file_clear(struct ev_loop *loop, int fd, int mask)
{
        struct ev_file *f = &loop->files[fd];

        f->mask &= ~mask;
        if (f->mask == EV_NONE) {
                f->last = false;
                f->proc = NULL;
                f->data = NULL;
                if (fd == loop->maxfd)
                        while (loop->maxfd >= 0 && loop->files[loop->maxfd].mask == EV_NONE)
                                loop->maxfd--;
        }
}

void ev_del(struct ev_loop *loop, int fd, int mask)
{
        struct ev_file *f;

        if (fd < 0 || fd >= loop->setsize)
                return;
        f = &loop->files[fd];
        if ((f->mask & mask) == 0)
                return;
        loop->backend->del(loop, fd, f->mask, mask);
        ev_file_clear(loop, fd, mask);
}

void ev_close(struct ev_loop *loop, int fd)
{
        if (fd >= 0 && fd < loop->setsize && loop->files[fd].mask != EV_NONE) {
                if (loop->backend->close_forgets)
                        ev_file_clear(loop, fd, EV_READABLE | EV_WRITABLE);
                else
                        ev_del(loop, fd, EV_READABLE | EV_WRITABLE);
        }
        close(fd);
}

int ev_mask(const struct ev_loop *loop, int fd)
{
        if (fd < 0 || fd >= loop->setsize)
                return EV_NONE;
        return loop->files[fd].mask;
}

int ev_wait(struct ev_loop *loop, int timeout_ms)
{
        int n = loop->backend->poll(loop, timeout_ms);

        return n == -EINTR ? 0 : n;
}

static void ev_fire(struct ev_loop *loop, struct ev_fired ev)
{
        const struct ev_file *f = &loop->files[ev.fd];
        /* An earlier callback of this round may have closed fd or
         * dropped interest: dispatch only what is still wanted. */
        int mask = ev.mask & f->mask;

        if (mask && f->proc)
                f->proc(loop, ev.fd, f->data, mask);
}

void ev_dispatch(struct ev_loop *loop, int n)
{
        int n_last = 0;

        for (int i = 0; i < n; i++) {
                struct ev_fired ev = loop->fired[i];

                if (loop->files[ev.fd].last)
                        loop->fired[n_last++] = ev;     /* an entry already read: n_last <= i */
                else
                        ev_fire(loop, ev);
        }
        for (int i = 0; i < n_last; i++)
                ev_fire(loop, loop->fired[i]);
        if (loop->backend->complete)
                loop->backend->complete(loop);
}

int ev_run_once(struct ev_loop *loop, int timeout_ms)
{
        int n = ev_wait(loop, timeout_ms);

        if (n >= 0)
                ev_dispatch(loop, n);
        return n;
}
