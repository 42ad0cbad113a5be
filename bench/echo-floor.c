/* SPDX-License-Identifier: MIT */
/* The floor for bench/run: the least an epoll line-echo server can do per
 * request, to compare muxd's CPU time per request with. Greets each client
 * with "hello...\n" and answers each line with the line plus "hi..." (before
 * its "\n"), like muxd's defaults; one read per readiness, the reply written
 * at once (queued only if the socket is full), level-triggered epoll, no
 * timers, limits, logging or configuration. With --oneshot, like muxd's
 * mode = "oneshot": greets, reads one line, closes (and logs nothing), the
 * floor for the CPU time per connection.
 *
 *   echo-floor [--oneshot] PORT    (listens on 127.0.0.1; stop it with SIGTERM)
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define GREETING "hello...\n"
#define SUFFIX "hi..."
#define READ_SIZE 65536

struct client {
        char *partial;          /* a line not yet complete */
        size_t partial_len;
        char *out;              /* replies the socket did not take */
        size_t out_len;
};

static struct client *clients[1 << 16];
static int oneshot;

/* close() alone leaves the epoll set (no descriptor is duplicated here): an
 * EPOLL_CTL_DEL first would be a syscall per connection that is not needed. */
static void client_close(int fd)
{
        struct client *c = clients[fd];

        close(fd);
        if (c) {
                free(c->partial);
                free(c->out);
                free(c);
                clients[fd] = NULL;
        }
}

static int client_send(int ep, int fd, const char *p, size_t n)
{
        struct client *c = clients[fd];
        ssize_t w = 0;

        if (c->out_len == 0) {
                w = send(fd, p, n, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN)
                        return -1;
                if (w < 0)
                        w = 0;
        }
        if ((size_t) w < n) {
                char *q = realloc(c->out, c->out_len + n - (size_t) w);

                if (!q)
                        return -1;
                memcpy(q + c->out_len, p + w, n - (size_t) w);
                c->out = q;
                c->out_len += n - (size_t) w;
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &(struct epoll_event) {
                                .events = EPOLLIN | EPOLLOUT, .data.fd = fd });
        }
        return 0;
}

static void client_read(int ep, int fd, char *in, char *reply)
{
        struct client *c = clients[fd];
        size_t len = 0, rlen = 0, start = 0;
        ssize_t n;

        if (c->partial_len) {
                memcpy(in, c->partial, c->partial_len);
                len = c->partial_len;
                c->partial_len = 0;
        }
        n = recv(fd, in + len, READ_SIZE, 0);
        if (n <= 0) {
                if (n == 0 || errno != EAGAIN)
                        client_close(fd);
                return;
        }
        len += (size_t) n;
        if (oneshot && memchr(in, '\n', len)) {
                client_close(fd);       /* one message, answered by the close */
                return;
        }
        for (char *nl; (nl = memchr(in + start, '\n', len - start)) != NULL; ) {
                size_t i = (size_t) (nl - in);

                memcpy(reply + rlen, in + start, i - start);
                rlen += i - start;
                memcpy(reply + rlen, SUFFIX "\n", sizeof(SUFFIX));
                rlen += sizeof(SUFFIX);
                start = i + 1;
        }
        if (start < len) {
                if (len - start > READ_SIZE) {  /* a line longer than this is not a benchmark */
                        client_close(fd);
                        return;
                }
                c->partial = realloc(c->partial, len - start);
                if (!c->partial) {
                        client_close(fd);
                        return;
                }
                memcpy(c->partial, in + start, len - start);
                c->partial_len = len - start;
        }
        if (rlen && client_send(ep, fd, reply, rlen) < 0)
                client_close(fd);
}

static void client_flush(int ep, int fd)
{
        struct client *c = clients[fd];
        ssize_t w = send(fd, c->out, c->out_len, MSG_NOSIGNAL);

        if (w < 0) {
                if (errno != EAGAIN)
                        client_close(fd);
                return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t) w);
        c->out_len -= (size_t) w;
        if (c->out_len == 0)
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &(struct epoll_event) {
                                .events = EPOLLIN, .data.fd = fd });
}

int main(int argc, char *argv[])
{
        static char in[2 * READ_SIZE], reply[2 * READ_SIZE * (sizeof(SUFFIX) + 1)];
        static struct epoll_event ev[1024];
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int one = 1, lfd, ep;

        if (argc == 3 && strcmp(argv[1], "--oneshot") == 0) {
                oneshot = 1;
                argv++;
                argc--;
        }
        if (argc != 2 || (sa.sin_port = htons((uint16_t) atoi(argv[1]))) == 0) {
                fprintf(stderr, "usage: echo-floor [--oneshot] PORT\n");
                return 2;
        }
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ep = epoll_create1(EPOLL_CLOEXEC);
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (lfd < 0 || ep < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            listen(lfd, 4096) < 0) {
                perror("echo-floor");
                return 1;
        }
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event) { .events = EPOLLIN, .data.fd = lfd });
        for (;;) {
                int n = epoll_wait(ep, ev, 1024, -1);

                for (int i = 0; i < n; i++) {
                        int fd = ev[i].data.fd;

                        if (fd == lfd) {
                                int cfd;

                                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                                        if (cfd >= (int) (sizeof(clients) / sizeof(clients[0])) ||
                                            !(clients[cfd] = calloc(1, sizeof(struct client)))) {
                                                close(cfd);
                                                continue;
                                        }
                                        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                                        epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &(struct epoll_event) {
                                                        .events = EPOLLIN, .data.fd = cfd });
                                        if (client_send(ep, cfd, GREETING, sizeof(GREETING) - 1) < 0)
                                                client_close(cfd);
                                }
                                continue;
                        }
                        if (!clients[fd])
                                continue;       /* closed by an earlier event of this batch */
                        if (ev[i].events & EPOLLOUT)
                                client_flush(ep, fd);
                        if (clients[fd] && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                                client_read(ep, fd, in, reply);
                }
        }
}
