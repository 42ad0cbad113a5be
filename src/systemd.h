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
        uint64_t store_id;      /* a connection from the fd store (its name's id), 0: a listener */
};

/* Take the sockets systemd passed (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) and
 * unset those variables. Each must be a listening TCP socket, or a connected
 * one named as systemd_fdstore_name() does (from the fd store): if one is not,
 * *bad_fd is set to it and -ENOTSOCK returned (all fds are left open for the
 * caller to report and exit). Returns the number of sockets (0 if none); on
 * any failure *ret is NULL and *n 0, so the caller frees nothing. */
int systemd_listen_fds(struct passed_socket **ret, size_t *n, int *bad_fd);
void systemd_passed_sockets_free(struct passed_socket *p, size_t n);

/* Is stderr connected to the journal (JOURNAL_STREAM names its device:inode)? */
bool systemd_stderr_is_journal(void);


/* The watchdog interval systemd asked for (WATCHDOG_USEC for this pid), 0 if none. */
uint64_t systemd_watchdog_usec(void);

/* systemd's file descriptor store (preserve_connections): a connection kept
 * there outlives a crash, and is passed again to the restarted service.
 * Sent on a datagram socket of its own with MSG_DONTWAIT, so that any thread
 * may store or remove without ever blocking (one sendmsg() is one whole
 * datagram: threads need no lock); a message that cannot go now is not sent
 * (-EAGAIN): the caller counts it. */
struct fdstore;

/* The names of stored connections: "c-INODE", the inode number of the
 * socket (unique among the sockets that exist, the same in every process
 * that holds it: a live upgrade's new image and a restarted one find the
 * name again without being told), within systemd's FDNAME= rules (printable
 * ASCII, no ':', at most 255 bytes). */
#define SYSTEMD_FDSTORE_NAME_MAX 32
void systemd_fdstore_name(uint64_t id, char buf[SYSTEMD_FDSTORE_NAME_MAX]);
/* Is name one of those? Then *id is its id (never 0). */
bool systemd_fdstore_parse(const char *name, uint64_t *id);

/* From $NOTIFY_SOCKET: *ret NULL when it is unset. */
int systemd_fdstore_open(struct fdstore **ret);
void systemd_fdstore_free(struct fdstore *st);          /* accepts NULL */
/* FDSTORE=1, FDNAME=, FDPOLL=0 with fd attached. 0 or -errno. */
int systemd_fdstore_add(struct fdstore *st, int fd, uint64_t id);
/* FDSTOREREMOVE=1, FDNAME=. 0 or -errno. */
int systemd_fdstore_remove(struct fdstore *st, uint64_t id);
