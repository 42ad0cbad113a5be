/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench-proc.h"

/* utime + stime of a process (all threads) in nanoseconds, from
 * /proc/PID/stat: clock ticks, sampled; -1 if unknown. */
static int64_t proc_cpu_ns_stat(long pid)
{
        char path[64], buf[1024], *p;
        unsigned long utime, stime;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -1;
        buf[n] = '\0';
        /* the command name may hold anything, ") " too: the last one ends it */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                         &utime, &stime) != 2)
                return -1;
        return (int64_t) (utime + stime) * (1000000000 / sysconf(_SC_CLK_TCK));
}

/* Sum a number over the threads of a process: parse(f, &v) reads it from
 * /proc/PID/task/TID/FILE (0, or -1 if the file is not as expected). A thread
 * that ends meanwhile is skipped. Returns the sum, or -1. */
static int64_t proc_tasks_sum(long pid, const char *file, int (*parse)(FILE *f, int64_t *v))
{
        char path[64];
        struct dirent *de;
        int64_t total = 0;
        DIR *d;

        snprintf(path, sizeof(path), "/proc/%ld/task", pid);
        d = opendir(path);
        if (!d)
                return -1;
        while ((de = readdir(d))) {
                char name[300];
                int64_t v;
                FILE *f;
                int r;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(name, sizeof(name), "/proc/%ld/task/%s/%s", pid, de->d_name, file);
                f = fopen(name, "re");
                if (!f) {
                        if (errno == ENOENT)
                                continue;
                        total = -1;
                        break;
                }
                r = parse(f, &v);
                fclose(f);
                if (r < 0) {
                        total = -1;
                        break;
                }
                total += v;
        }
        closedir(d);
        return total;
}

static int proc_read_schedstat_run_ns(FILE *f, int64_t *v)
{
        unsigned long long run;

        if (fscanf(f, "%llu", &run) != 1)
                return -1;
        *v = (int64_t) run;
        return 0;
}

static int proc_read_status_sleeps(FILE *f, int64_t *v)
{
        char line[128];
        long long n;

        *v = 0;         /* a thread without the line has not slept */
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "voluntary_ctxt_switches: %lld", &n) == 1) {
                        *v = n;
                        break;
                }
        return 0;
}

/* CPU time of a process in nanoseconds: the scheduler's exact run time of
 * each thread (/proc/PID/task/TID/schedstat), or else the sampled ticks of
 * /proc/PID/stat; -1 if unknown. Sampled ticks misjudge a server that runs
 * for microseconds at a time, so schedstat comes first. */
int64_t proc_cpu_ns(long pid)
{
        int64_t total = proc_tasks_sum(pid, "schedstat", proc_read_schedstat_run_ns);

        return total >= 0 ? total : proc_cpu_ns_stat(pid);
}

/* How often the threads of a process went to sleep (voluntary context
 * switches, summed over /proc/PID/task/TID/status); -1 if unknown. */
int64_t proc_sleeps(long pid)
{
        return proc_tasks_sum(pid, "status", proc_read_status_sleeps);
}

/* VmRSS of a process in KiB; -1 if unknown. */
long proc_rss_kib(long pid)
{
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

struct proc_sample proc_sample(long pid)
{
        struct proc_sample s;

        s.cpu_ns = proc_cpu_ns(pid);
        s.sleeps = proc_sleeps(pid);
        return s;
}
