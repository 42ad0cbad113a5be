/* SPDX-License-Identifier: MIT */
/* Everything that needs libsystemd: the only module that includes
 * <systemd/sd-*.h>. Never logs; callers report with context. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct passed_socket {
        int fd;
        char *name;             /* FileDescriptorName=, never NULL */
};

/* Take the sockets systemd passed (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) and
 * unset those variables. Each must be a listening TCP socket: if one is not,
 * *bad_fd is set to it and -ENOTSOCK returned (all fds are left open for the
 * caller to report and exit). Returns the number of sockets (0 if none); on
 * any failure *ret is NULL and *n 0, so the caller frees nothing. */
int systemd_listen_fds(struct passed_socket **ret, size_t *n, int *bad_fd);
void systemd_passed_sockets_free(struct passed_socket *p, size_t n);

/* Is stderr connected to the journal (JOURNAL_STREAM names its device:inode)? */
bool systemd_stderr_is_journal(void);


/* The watchdog interval systemd asked for (WATCHDOG_USEC for this pid), 0 if none. */
uint64_t systemd_watchdog_usec(void);
