/* SPDX-License-Identifier: MIT */
/* libFuzzer target: arbitrary bytes as a configuration text for
 * config_load_string(). Checks the loader's contract (config.h):
 * - success: every value within its documented bounds, strings present and
 *   their lengths consistent, no error message;
 * - failure: -EINVAL (or -ENOMEM), at least one message, each one
 *   "PATH:LINE: ..." or "PATH: ..." for the path given, and no config;
 * - both: the same text gives the same result (no uninitialised state), and
 *   everything is freed (LeakSanitizer).
 * Built and run by tests/fuzz/run. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <sanitizer/allocator_interface.h>

#include "config.h"
#include "event.h"

#define PATH "fuzz.conf"

#define CHECK(cond) do { \
        if (!(cond)) { \
                fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
                abort(); \
        } \
} while (0)

/* ---- libconfig 1.5's own leak -------------------------------------------
 * libconfig 1.5 (Debian 12) leaks a string token that its parser discards
 * while recovering from a syntax error: 'a = 1, "b";' loses the "b"
 * (hyperrealm/libconfig#142, fixed upstream in 1.7.3 by pull request #155).
 * Most mutated texts hit it, and every input that leaks makes libFuzzer run a
 * full leak check (~20 ms) and, after 1000 of them, switch leak detection
 * off for good. So the leaked tokens are found and freed here: every string
 * token comes from scanctx_take_string(), which libconfig calls through its
 * PLT, so this definition interposes it (the executable is searched first)
 * and records each token. Once config_load_string() has returned, libconfig
 * has nothing left (config_destroy() ran): a recorded token still allocated
 * is a discarded one. (Its memory cannot have been reused in between: ASan
 * keeps freed blocks in quarantine.) A leak of muxd's own stays reported. */
static const void **tokens;
static size_t n_tokens, cap_tokens;

char *scanctx_take_string(void *ctx);
char *scanctx_take_string(void *ctx)
{
        static char *(*real)(void *);
        char *s;

        if (!real) {
                *(void **) &real = dlsym(RTLD_NEXT, "scanctx_take_string");
                if (!real)
                        abort();
        }
        s = real(ctx);
        if (s) {
                if (n_tokens == cap_tokens) {
                        const void **t;

                        cap_tokens = cap_tokens ? 2 * cap_tokens : 64;
                        t = realloc(tokens, cap_tokens * sizeof(*t));
                        if (!t)
                                abort();
                        tokens = t;
                }
                tokens[n_tokens++] = s;
        }
        return s;
}

static void free_discarded_tokens(void)
{
        for (size_t i = 0; i < n_tokens; i++)
                if (__sanitizer_get_ownership(tokens[i]))
                        free((void *) tokens[i]);
        free(tokens);
        tokens = NULL;
        n_tokens = cap_tokens = 0;
}

/* ---- invariants ------------------------------------------------------------ */

static void check_acl(const struct acl *a)
{
        CHECK(a->n <= CONFIG_ACL_MAX);
        CHECK((a->n == 0) == (a->entries == NULL));
        for (size_t i = 0; i < a->n; i++) {
                const struct cidr *c = &a->entries[i];
                unsigned bits = c->family == AF_INET ? 32 : 128;

                CHECK(c->family == AF_INET || c->family == AF_INET6);
                CHECK(c->prefix <= bits);
                /* host bits are cleared, and the unused tail of an IPv4 entry is zero */
                for (unsigned b = c->prefix; b < 128; b++)
                        CHECK(!(c->addr[b / 8] & (0x80u >> (b % 8))));
                /* an entry matches its own network address */
                CHECK(cidr_match(c, c->family, c->addr));
        }
}

static void check_opts(const struct listener_opts *o)
{
        struct listener_opts copy;

        CHECK(o->greeting != NULL);
        CHECK(o->greeting_len == strlen(o->greeting));
        CHECK(o->greeting_len <= CONFIG_GREETING_MAX);
        CHECK(o->suffix != NULL);
        CHECK(o->suffix_len == strlen(o->suffix));
        CHECK(o->suffix_len <= CONFIG_SUFFIX_MAX);
        CHECK(o->mode == MODE_ECHO || o->mode == MODE_ONESHOT);
        CHECK(o->framing == FRAMING_LINE || o->framing == FRAMING_RAW);
        CHECK(o->max_message >= 1 && o->max_message <= CONFIG_MAX_MESSAGE_MAX);
        CHECK(o->max_per_source <= CONFIG_MAX_PER_SOURCE_MAX);
        CHECK(o->max_rate_per_source <= CONFIG_MAX_RATE_MAX);
        CHECK(o->rate_burst <= CONFIG_MAX_RATE_MAX);
        CHECK(o->source_prefix_v4 >= 1 && o->source_prefix_v4 <= 32);
        CHECK(o->source_prefix_v6 >= 1 && o->source_prefix_v6 <= 128);
        check_acl(&o->allow);
        check_acl(&o->deny);

        /* what the server does with them: copy, compare, free */
        CHECK(listener_opts_copy(&copy, o) == 0);
        CHECK(listener_opts_equal(&copy, o));
        CHECK(listener_opts_equal(o, &copy));
        listener_opts_done(&copy);
}

static int addr_bytes(const char *address, int *family, uint8_t addr[16])
{
        memset(addr, 0, 16);
        *family = 0;
        if (!address)
                return 0;
        if (inet_pton(AF_INET, address, addr) == 1)
                *family = AF_INET;
        else if (inet_pton(AF_INET6, address, addr) == 1)
                *family = AF_INET6;
        else
                return -1;
        return 0;
}

static void check_config(const struct config *c)
{
        static const uint8_t any[16], v4mapped[12] = { [10] = 0xff, [11] = 0xff };
        const struct ev_backend *b;

        CHECK(c->path != NULL && strcmp(c->path, PATH) == 0);
        CHECK(c->timeout <= CONFIG_TIMEOUT_MAX);
        CHECK(c->backend != NULL);
        b = ev_backend_find(c->backend);
        CHECK(b != NULL);
        CHECK(c->max_connections >= 1 && c->max_connections <= CONFIG_MAX_CONNECTIONS_MAX);
        CHECK(log_level_to_string(c->log_level) != NULL);
        CHECK(log_level_from_string(log_level_to_string(c->log_level)) == (int) c->log_level);
        CHECK(c->shutdown_timeout <= CONFIG_SHUTDOWN_TIMEOUT_MAX);
        CHECK(c->workers >= 1 && c->workers <= CONFIG_WORKERS_MAX);
        CHECK(c->max_sources >= 1 && c->max_sources <= CONFIG_MAX_SOURCES_MAX);
        check_opts(&c->defaults);

        /* a file names at least one listener */
        CHECK(c->n_listeners >= 1 && c->listeners != NULL);
        for (size_t i = 0; i < c->n_listeners; i++) {
                const struct listener_conf *l = &c->listeners[i];
                int fam;
                uint8_t a[16];

                CHECK(l->port <= 65535);
                CHECK(l->line >= 1);
                if (l->name) {
                        size_t n = strlen(l->name);

                        CHECK(n >= 1 && n <= CONFIG_NAME_MAX);
                        for (const char *s = l->name; *s; s++)
                                CHECK(*s > ' ' && *s < 0x7f && *s != ':');
                        for (size_t j = 0; j < i; j++)
                                CHECK(!c->listeners[j].name ||
                                      strcmp(c->listeners[j].name, l->name) != 0);
                }
                CHECK(addr_bytes(l->address, &fam, a) == 0);
                /* bound IPv6 only, an IPv4-mapped address cannot be listened on */
                CHECK(fam != AF_INET6 || memcmp(a, v4mapped, sizeof(v4mapped)) != 0);
                check_opts(&l->opts);

                /* nothing the kernel refuses to bind together, except on ephemeral
                 * ports: no (address, port) twice, all addresses (dual-stack) alone
                 * on its port, 0.0.0.0 or :: with no address of its family */
                for (size_t j = 0; l->port != 0 && j < i; j++) {
                        const struct listener_conf *k = &c->listeners[j];
                        int fam2;
                        uint8_t a2[16];

                        CHECK(addr_bytes(k->address, &fam2, a2) == 0);
                        if (k->port != l->port)
                                continue;
                        CHECK(fam != 0 && fam2 != 0);
                        CHECK(fam != fam2 || (memcmp(a, any, 16) != 0 && memcmp(a2, any, 16) != 0 &&
                                              memcmp(a, a2, 16) != 0));
                }
        }

        /* a backend with a descriptor limit can watch every client */
        if (b->max_fds != 0)
                CHECK((size_t) c->max_connections + c->n_listeners + CONFIG_RESERVED_FDS +
                      (size_t) c->workers * CONFIG_FDS_PER_WORKER <= b->max_fds);
}

static void check_errors(const struct config_errors *e)
{
        size_t plen = strlen(PATH);

        CHECK(e->n >= 1);
        CHECK(e->msgs != NULL);
        for (size_t i = 0; i < e->n; i++) {
                const char *m = e->msgs[i];

                CHECK(m != NULL);
                CHECK(strncmp(m, PATH, plen) == 0 && m[plen] == ':');
                /* one line each */
                CHECK(strchr(m, '\n') == NULL);
        }
}

static int load(const char *text, struct config **c, struct config_errors *e)
{
        int r;

        *c = NULL;
        *e = (struct config_errors) {};
        r = config_load_string(text, PATH, c, e);
        free_discarded_tokens();
        if (r == 0) {
                CHECK(*c != NULL);
                CHECK(e->n == 0 && e->msgs == NULL);
        } else {
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(*c == NULL);
                if (r == -EINVAL)
                        check_errors(e);
        }
        return r;
}

static bool has_include(const uint8_t *data, size_t size)
{
        static const char word[] = "@include";
        const size_t n = sizeof(word) - 1;

        for (size_t i = 0; i + n <= size; i++)
                if (strncasecmp((const char *) data + i, word, n) == 0)
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct config *c1, *c2;
        struct config_errors e1, e2;
        char *text;
        int r1, r2;

        /* @include would read arbitrary files of this machine (relative to the
         * working directory: config_load_string() has no include directory),
         * and their messages name the included file, not PATH. */
        if (has_include(data, size))
                return -1;

        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';      /* the text ends at the first NUL, as libconfig reads it */

        r1 = load(text, &c1, &e1);
        if (r1 == 0)
                check_config(c1);

        /* deterministic: the same text, the same outcome and messages */
        r2 = load(text, &c2, &e2);
        CHECK(r1 == r2);
        CHECK(e1.n == e2.n);
        for (size_t i = 0; i < e1.n; i++)
                CHECK(strcmp(e1.msgs[i], e2.msgs[i]) == 0);
        if (r1 == 0) {
                CHECK(c1->n_listeners == c2->n_listeners);
                CHECK(listener_opts_equal(&c1->defaults, &c2->defaults));
                for (size_t i = 0; i < c1->n_listeners; i++) {
                        CHECK(c1->listeners[i].port == c2->listeners[i].port);
                        CHECK(listener_opts_equal(&c1->listeners[i].opts, &c2->listeners[i].opts));
                }
        }

        config_free(c1);
        config_free(c2);
        config_errors_clear(&e1);
        config_errors_clear(&e2);
        free(text);
        return 0;
}
