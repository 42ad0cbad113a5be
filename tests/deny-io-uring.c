/* SPDX-License-Identifier: MIT */
/* deny-io-uring COMMAND [ARG...]: run COMMAND with io_uring_setup(2) failing
 * with EPERM, as under a systemd unit whose SystemCallFilter= leaves io_uring
 * out (SystemCallErrorNumber=EPERM). For the test that muxd says so clearly. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define DENY_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define DENY_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define DENY_ARCH AUDIT_ARCH_I386
#endif

int main(int argc, char **argv)
{
#ifdef DENY_ARCH
        struct sock_filter filter[] = {
                /* another architecture's system call numbers mean other calls: fail them all */
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, DENY_ARCH, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

        if (argc < 2) {
                fprintf(stderr, "usage: deny-io-uring COMMAND [ARG...]\n");
                return 2;
        }
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
                fprintf(stderr, "deny-io-uring: cannot install the filter: %s\n", strerror(errno));
                return 126;
        }
        execvp(argv[1], argv + 1);
        fprintf(stderr, "deny-io-uring: %s: %s\n", argv[1], strerror(errno));
        return 127;
#else
        (void) argc;
        (void) argv;
        fprintf(stderr, "deny-io-uring: no seccomp filter for this architecture\n");
        return 126;
#endif
}
