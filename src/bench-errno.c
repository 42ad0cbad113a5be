/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench-errno.h"

void errcount_add(struct errcount *c, int err)
{
        c->total++;
        c->n[err > 0 && err < ERRCOUNT_SLOTS ? err : 0]++;
}

/* The errors a connect or a short exchange meets, named without relying on
 * the C library (strerrorname_np() is glibc 2.32 and later only). */
static const struct {
        int err;
        const char *name;
} errcount_names[] = {
        { EPERM, "EPERM" }, { EINTR, "EINTR" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
        { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EINVAL, "EINVAL" }, { ENFILE, "ENFILE" },
        { EMFILE, "EMFILE" }, { EPIPE, "EPIPE" }, { EPROTO, "EPROTO" },
        { EAFNOSUPPORT, "EAFNOSUPPORT" }, { EADDRINUSE, "EADDRINUSE" },
        { EADDRNOTAVAIL, "EADDRNOTAVAIL" }, { ENETDOWN, "ENETDOWN" },
        { ENETUNREACH, "ENETUNREACH" }, { ECONNABORTED, "ECONNABORTED" },
        { ECONNRESET, "ECONNRESET" }, { ENOBUFS, "ENOBUFS" }, { EISCONN, "EISCONN" },
        { ENOTCONN, "ENOTCONN" }, { ETIMEDOUT, "ETIMEDOUT" }, { ECONNREFUSED, "ECONNREFUSED" },
        { EHOSTDOWN, "EHOSTDOWN" }, { EHOSTUNREACH, "EHOSTUNREACH" }, { EALREADY, "EALREADY" },
        { EINPROGRESS, "EINPROGRESS" },
};

const char *errcount_name(int err, char *buf)
{
        if (err == 0)
                return "other";
        for (size_t i = 0; i < sizeof(errcount_names) / sizeof(errcount_names[0]); i++)
                if (errcount_names[i].err == err)
                        return errcount_names[i].name;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
        {
                const char *name = strerrorname_np(err);

                if (name)
                        return name;
        }
#endif
        snprintf(buf, ERRCOUNT_NAME_MAX, "errno %d", err);
        return buf;
}

void errcount_print(const struct errcount *c, FILE *f, bool json)
{
        char buf[ERRCOUNT_NAME_MAX];
        bool first = true;

        if (json)
                fputc('{', f);
        /* errno order, the out-of-range bucket last */
        for (int i = 1; i <= ERRCOUNT_SLOTS; i++) {
                int err = i % ERRCOUNT_SLOTS;

                if (c->n[err] == 0)
                        continue;
                if (json)
                        fprintf(f, "%s\"%s\":%llu", first ? "" : ",", errcount_name(err, buf),
                                (unsigned long long) c->n[err]);
                else
                        fprintf(f, "%s%s %llu", first ? "" : ", ", errcount_name(err, buf),
                                (unsigned long long) c->n[err]);
                first = false;
        }
        if (json)
                fputc('}', f);
}
