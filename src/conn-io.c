/* SPDX-License-Identifier: MIT */
/* The table of connection I/Os, and a worker's choice among them. */
#include <errno.h>
#include <stddef.h>

#include "conn-io.h"
#include "worker.h"

/* In order of preference: the first that can run on a loop is its I/O. */
static const struct conn_io *const conn_io_table[] = {
#ifdef HAVE_LIBURING
        &conn_io_uring,
#endif
        &conn_io_socket,
};

int conn_io_setup(struct worker *w)
{
        for (size_t i = 0; i < sizeof(conn_io_table) / sizeof(conn_io_table[0]); i++) {
                const struct conn_io *io = conn_io_table[i];
                int r;

                if (!io->usable(w->loop))
                        continue;
                r = io->setup(w);
                if (r < 0)
                        return r;
                w->io = io;
                return 0;
        }
        return -EOPNOTSUPP;
}

void conn_io_free(struct worker *w)
{
        if (w->io)
                w->io->free(w);
        w->io = NULL;
        w->io_state = NULL;
}

bool conn_io_busy(struct worker *w)
{
        return w->io && w->io->busy && w->io->busy(w);
}
