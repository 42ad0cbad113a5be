/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "systemd.h"

int systemd_listen_fds(struct passed_socket **ret, size_t *n, int *bad_fd)
{
        char **names = NULL;
        struct passed_socket *p;
        int r;

        *ret = NULL;
        *n = 0;
        r = sd_listen_fds_with_names(1, &names);
        if (r <= 0)
                return r;
        p = calloc((size_t) r, sizeof(*p));
        for (int i = 0; p && i < r; i++) {
                p[i].fd = SD_LISTEN_FDS_START + i;
                p[i].name = names && names[i] ? names[i] : strdup("unknown");
                if (names)
                        names[i] = NULL;        /* p owns it now */
        }
        for (int i = 0; names && i < r; i++)
                free(names[i]);                 /* those p did not take */
        free(names);
        for (int i = 0; p && i < r; i++)
                if (!p[i].name) {
                        systemd_passed_sockets_free(p, (size_t) r);
                        p = NULL;
                }
        if (!p)
                return -ENOMEM;
        for (int i = 0; i < r; i++)
                if (sd_is_socket_inet(p[i].fd, AF_UNSPEC, SOCK_STREAM, 1, 0) <= 0) {
                        /* on failure the caller gets nothing to free */
                        *bad_fd = p[i].fd;
                        systemd_passed_sockets_free(p, (size_t) r);
                        return -ENOTSOCK;
                }
        *ret = p;
        *n = (size_t) r;
        return r;
}

void systemd_passed_sockets_free(struct passed_socket *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(p[i].name);
        free(p);
}

bool systemd_stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

uint64_t systemd_watchdog_usec(void)
{
        uint64_t usec = 0;

        if (sd_watchdog_enabled(0, &usec) <= 0)
                return 0;
        return usec;
}
