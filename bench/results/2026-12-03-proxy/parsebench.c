/* ns per proxy_parse() call on typical headers (not part of the tree) */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "proxy.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void run(const char *name, const void *h, size_t n, enum proxy_version a) {
        struct proxy_header ph; long iters = 5000000; volatile int sink = 0;
        double t0 = now();
        for (long i = 0; i < iters; i++) sink += proxy_parse(h, n, a, &ph);
        double t = now() - t0;
        printf("%-28s %3zu bytes: %6.1f ns per header (r=%d)\n", name, n, t / iters * 1e9, sink / (int) iters);
}
int main(void) {
        static const char v1[] = "PROXY TCP4 198.18.12.34 127.0.0.1 40001 19302\r\n";
        static const char v16[] = "PROXY TCP6 2001:db8:1234:5678::9abc 2001:db8::1 40001 19302\r\n";
        unsigned char v2[28] = { 0x0d,0x0a,0x0d,0x0a,0x00,0x0d,0x0a,0x51,0x55,0x49,0x54,0x0a, 0x21,0x11,0x00,0x0c,
                198,18,12,34, 127,0,0,1, 0x9c,0x41, 0x4b,0x66 };
        run("v1 TCP4", v1, strlen(v1), PROXY_ANY);
        run("v1 TCP6", v16, strlen(v16), PROXY_ANY);
        run("v2 TCP/IPv4", v2, sizeof(v2), PROXY_ANY);
        return 0;
}
