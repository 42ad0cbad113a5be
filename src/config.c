/* SPDX-License-Identifier: MIT */
/* Configuration: parse /etc/muxd.conf with libconfig, validate every value and
 * collect every problem as a "FILE:LINE: message" string. Never logs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libconfig.h>

#include "config.h"
#include "config-internal.h"
#include "event.h"
#include "util.h"

#define CONFIG_DEFAULT_GREETING "hello...\n"
#define CONFIG_DEFAULT_SUFFIX   "hi..."
#define CONFIG_DEFAULT_BACKEND  "epoll"
#define CONFIG_FILE_MAX         (16u << 20)     /* refuse to read bigger files */
#define INCLUDE_DEPTH_MAX       10              /* libconfig 1.5's own limit */

/* Three things libconfig 1.5 gets wrong are corrected with a scan of the text
 * (see scan_literals()):
 * - it reads a decimal integer that does not fit in 32 bits with atoi() and a
 *   hex one with strtoul() cast to int: 5000000000 silently becomes 705032704.
 *   Such literals are matched back to their setting (by name, line of the
 *   name and wrapped value; list elements by line and wrapped value), so they
 *   fail the range check instead;
 * - a string element of a list gets the line of the token after it (the
 *   parser looks ahead for an adjacent literal to concatenate), so "bad" in
 *   [ "ok",\n "bad"\n ] would be reported at the line of "]". Such strings are
 *   matched back by that line and their value;
 * - it drops a \x00 from a string ("ab\x00cd" becomes "abcd"). Strings are
 *   matched back to their setting (as integers are, or as above for list
 *   elements), so that one with a \x00 is refused.
 * Files read with @include are scanned too, and literals are matched by file
 * as well (libconfig numbers the lines of each file from 1). */
struct config_int_literal {
        const char *file;       /* NULL: the main text; else the name libconfig gives */
        int line;
        int wrapped;            /* the value libconfig 1.5 stores */
        const char *text;       /* the literal as written */
        size_t len;
        const char *name;       /* "NAME =" before it, or NULL (a list element) */
        size_t name_len;
        int name_line;
        bool used;
};

struct config_str_literal {
        const char *file;       /* as in struct config_int_literal */
        int line;               /* where the (first) literal starts */
        int next_line;          /* line of the next token: what libconfig reports */
        char *value;            /* decoded as libconfig does, adjacent literals concatenated */
        bool nul;               /* a \x00 was dropped from it */
        const char *name;       /* as in struct config_int_literal */
        size_t name_len;
        int name_line;
        const config_setting_t *owner;  /* the setting matched to it, once found */
};


/* ---- literals libconfig 1.5 mishandles ------------------------------------- */

static bool is_name_start(char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*';
}

static bool is_name_char(char c)
{
        return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_xdigit(char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_value(char c)
{
        return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int ints_add(struct config_parser *p, const struct config_int_literal *lit)
{
        struct config_int_literal *l;

        l = realloc(p->ints, (p->n_ints + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        p->ints = l;
        p->ints[p->n_ints++] = *lit;
        return 0;
}

static int strs_add(struct config_parser *p, const struct config_str_literal *lit)
{
        struct config_str_literal *l;

        l = realloc(p->strs, (p->n_strs + 1) * sizeof(*l));
        if (!l)
                return -ENOMEM;
        p->strs = l;
        p->strs[p->n_strs++] = *lit;
        return 0;
}

/* Skip blanks and comments from t[*i], counting lines. */
static void skip_blanks(const char *t, size_t *i, int *line)
{
        for (;;) {
                char c = t[*i];

                if (c == '\n') {
                        (*line)++;
                        (*i)++;
                } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f')
                        (*i)++;
                else if (c == '#' || (c == '/' && t[*i + 1] == '/')) {
                        while (t[*i] && t[*i] != '\n')
                                (*i)++;
                } else if (c == '/' && t[*i + 1] == '*') {
                        for (*i += 2; t[*i] && !(t[*i] == '*' && t[*i + 1] == '/'); (*i)++)
                                if (t[*i] == '\n')
                                        (*line)++;
                        if (t[*i])
                                *i += 2;
                } else
                        return;
        }
}

/* One string literal at t[*i] == '"', decoded as libconfig does and appended
 * to out at *o; with out NULL, only *o counts the length. *nul is set if a
 * \x00 is dropped. */
static void decode_string(const char *t, size_t *i, int *line, char *out, size_t *o, bool *nul)
{
#define PUT(ch) do { if (out) out[*o] = (ch); (*o)++; } while (0)
        for ((*i)++; t[*i] && t[*i] != '"'; ) {
                char c = t[*i];

                if (c != '\\') {
                        if (c == '\n')
                                (*line)++;
                        PUT(c);
                        (*i)++;
                        continue;
                }
                switch (t[*i + 1]) {
                case 'n': PUT('\n'); *i += 2; break;
                case 'r': PUT('\r'); *i += 2; break;
                case 't': PUT('\t'); *i += 2; break;
                case 'f': PUT('\f'); *i += 2; break;
                case '\\': PUT('\\'); *i += 2; break;
                case '"': PUT('"'); *i += 2; break;
                case 'x':
                case 'X':
                        if (is_xdigit(t[*i + 2]) && is_xdigit(t[*i + 3])) {
                                char ch = (char) (hex_value(t[*i + 2]) * 16 + hex_value(t[*i + 3]));

                                if (ch)
                                        PUT(ch);
                                else
                                        *nul = true;
                                *i += 4;
                                break;
                        }
                        /* fall through */
                default:
                        /* a lone backslash is kept; what follows is read as usual */
                        PUT('\\');
                        (*i)++;
                }
        }
        if (t[*i])
                (*i)++;
#undef PUT
}

/* Adjacent string literals from t[*i] == '"', decoded into one value. lit
 * has the file and the setting name, if any. */
static int scan_string(struct config_parser *p, const char *t, size_t *i, int *line,
                       struct config_str_literal *lit)
{
        int l = *line;
        size_t start = *i, o = 0;
        char *value;

        lit->line = *line;
        /* once to measure, once to decode */
        for (;;) {
                decode_string(t, i, &l, NULL, &o, &lit->nul);
                skip_blanks(t, i, &l);
                if (t[*i] != '"')
                        break;
        }
        value = malloc(o + 1);
        if (!value)
                return -ENOMEM;
        *i = start;
        o = 0;
        for (;;) {
                decode_string(t, i, line, value, &o, &lit->nul);
                skip_blanks(t, i, line);
                if (t[*i] != '"')
                        break;
        }
        value[o] = '\0';
        lit->value = value;
        lit->next_line = *line;
        if (strs_add(p, lit) < 0) {
                free(value);
                return -ENOMEM;
        }
        return 0;
}

/* A number at t[*i]; records decimal and hex integers libconfig 1.5 wraps.
 * lit has the line and the setting name, if any. */
static int scan_number(struct config_parser *p, const char *t, size_t *i, struct config_int_literal *lit)
{
        size_t start = *i;

        lit->text = t + start;

        if (t[*i] == '0' && (t[*i + 1] == 'x' || t[*i + 1] == 'X') && is_xdigit(t[*i + 2])) {
                unsigned long long v;

                *i += 2;
                while (is_xdigit(t[*i]))
                        (*i)++;
                if (t[*i] == 'L') {
                        *i += t[*i + 1] == 'L' ? 2 : 1;
                        return 0;
                }
                errno = 0;
                v = strtoull(t + start, NULL, 16);
                if (errno != ERANGE && v <= UINT32_MAX)
                        return 0;
                lit->wrapped = (int) strtoul(t + start, NULL, 16);
                lit->len = *i - start;
                return ints_add(p, lit);
        }

        if (t[*i] == '-' || t[*i] == '+')
                (*i)++;
        while (is_digit(t[*i]))
                (*i)++;
        if (t[*i] == '.' || t[*i] == 'e' || t[*i] == 'E') {
                /* a float (or garbage libconfig has already refused) */
                if (t[*i] == '.')
                        for ((*i)++; is_digit(t[*i]); (*i)++)
                                ;
                if ((t[*i] == 'e' || t[*i] == 'E') &&
                    (is_digit(t[*i + 1]) || ((t[*i + 1] == '-' || t[*i + 1] == '+') && is_digit(t[*i + 2])))) {
                        *i += is_digit(t[*i + 1]) ? 1 : 2;
                        while (is_digit(t[*i]))
                                (*i)++;
                }
                return 0;
        }
        if (t[*i] == 'L') {
                *i += t[*i + 1] == 'L' ? 2 : 1;
                return 0;
        }
        if (*i == start)        /* a lone sign */
                (*i)++;
        else {
                long long v;

                errno = 0;
                v = strtoll(t + start, NULL, 10);
                if (errno != ERANGE && v >= INT_MIN && v <= INT_MAX)
                        return 0;
                lit->wrapped = (int) strtol(t + start, NULL, 10);
                lit->len = *i - start;
                return ints_add(p, lit);
        }
        return 0;
}

static int parser_keep(struct config_parser *p, char *buf)
{
        char **k;

        k = realloc(p->kept, (p->n_kept + 1) * sizeof(char *));
        if (!k)
                return -ENOMEM;
        p->kept = k;
        p->kept[p->n_kept++] = buf;
        return 0;
}

/* libconfig would silently stop at a NUL byte */
static bool check_nul(struct config_parser *p, const char *file, const char *text, size_t len)
{
        const char *nul = memchr(text, '\0', len);
        int line = 1;

        if (!nul)
                return false;
        for (const char *t = text; t < nul; t++)
                if (*t == '\n')
                        line++;
        config_error_file_line(p, file, line, "unexpected NUL byte");
        return true;
}

static int read_file(const char *path, char **ret, size_t *ret_len);
static int scan_literals(struct config_parser *p, const char *t, const char *file, int depth);

/* t[*i] == '@': libconfig's "@include" at the start of a line. The file is
 * scanned as well, so that it gets the checks of the main text. Returns 1 if
 * t[*i] is not one. */
static int scan_include(struct config_parser *p, const char *t, size_t *i, int *line, int depth)
{
        _cleanup_free_ char *full = NULL;
        char *name, *text;
        size_t j = *i, n = 0, len;
        int r;

        while (j > 0 && (t[j - 1] == ' ' || t[j - 1] == '\t'))
                j--;
        if ((j > 0 && t[j - 1] != '\n') || strncmp(t + *i, "@include", 8) != 0 ||
            (t[*i + 8] != ' ' && t[*i + 8] != '\t'))
                return 1;
        for (j = *i + 8; t[j] == ' ' || t[j] == '\t'; j++)
                ;
        if (t[j] != '"')
                return 1;

        /* the name as libconfig reads it: \\ and \" are escapes, another
         * backslash is dropped */
        for (len = j + 1; t[len] && t[len] != '"'; len++)
                if (t[len] == '\\' && t[len + 1])
                        len++;
        name = malloc(len - j);
        if (!name)
                return -ENOMEM;
        for (j++; t[j] && t[j] != '"'; j++) {
                if (t[j] == '\\') {
                        if (t[j + 1] == '\\' || t[j + 1] == '"')
                                name[n++] = t[++j];
                        continue;
                }
                if (t[j] == '\n')
                        (*line)++;
                name[n++] = t[j];
        }
        name[n] = '\0';
        *i = t[j] ? j + 1 : j;
        r = parser_keep(p, name);
        if (r < 0) {
                free(name);
                return r;
        }
        if (depth >= INCLUDE_DEPTH_MAX)
                return 0;       /* libconfig has refused it already */

        /* the file libconfig 1.5 opened: with an include directory, that
         * directory and the name, even an absolute one */
        if (p->include_dir) {
                full = config_format("%s/%s", p->include_dir, name[0] == '/' ? name + 1 : name);
                if (!full)
                        return -ENOMEM;
        }
        r = read_file(full ? full : name, &text, &len);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                config_error_file_line(p, name, 0, "cannot read: %s", strerror(-r));
                return 0;
        }
        r = parser_keep(p, text);
        if (r < 0) {
                free(text);
                return r;
        }
        if (check_nul(p, name, text, len))
                return 0;
        return scan_literals(p, text, name, depth + 1);
}

/* Follows libconfig's scanner closely enough for a text it has accepted.
 * file: NULL for the main text, else the name of an included file. */
static int scan_literals(struct config_parser *p, const char *t, const char *file, int depth)
{
        enum { NONE, NAME, NAME_EQUALS } state = NONE;
        const char *name = NULL;
        size_t name_len = 0;
        int line = 1, name_line = 0, r;
        size_t i = 0;

        for (;;) {
                char c;

                skip_blanks(t, &i, &line);
                c = t[i];
                if (!c)
                        return 0;
                if (c == '"') {
                        struct config_str_literal lit = { .file = file };

                        if (state == NAME_EQUALS)
                                lit = (struct config_str_literal) {
                                        .file = file, .name = name, .name_len = name_len,
                                        .name_line = name_line,
                                };
                        r = scan_string(p, t, &i, &line, &lit);
                        if (r < 0)
                                return r;
                        state = NONE;
                } else if (c == '@' && (r = scan_include(p, t, &i, &line, depth)) <= 0) {
                        if (r < 0)
                                return r;
                        state = NONE;
                } else if (is_name_start(c)) {
                        name = t + i;
                        name_line = line;
                        while (is_name_char(t[i]))
                                i++;
                        name_len = (size_t) (t + i - name);
                        state = NAME;
                } else if (is_digit(c) || c == '.' || c == '-' || c == '+') {
                        struct config_int_literal lit = { .file = file, .line = line };

                        if (state == NAME_EQUALS)
                                lit = (struct config_int_literal) {
                                        .file = file, .line = line, .name = name,
                                        .name_len = name_len, .name_line = name_line,
                                };
                        r = scan_number(p, t, &i, &lit);
                        if (r < 0)
                                return r;
                        state = NONE;
                } else {
                        state = (c == '=' || c == ':') && state == NAME ? NAME_EQUALS : NONE;
                        i++;
                }
        }
}

static const struct config_int_literal *ints_take(struct config_parser *p, const config_setting_t *s,
                                                  long long v)
{
        const char *name = config_setting_name(s), *file = config_setting_source_file(s);

        if (config_setting_type(s) != CONFIG_TYPE_INT)
                return NULL;
        for (size_t i = 0; i < p->n_ints; i++) {
                struct config_int_literal *l = &p->ints[i];

                if (l->used || l->wrapped != v || !config_same_file(l->file, file))
                        continue;
                if (name ? !(l->name && l->name_line == config_line_of(s) &&
                             l->name_len == strlen(name) && memcmp(l->name, name, l->name_len) == 0)
                         : (l->name || l->line != config_line_of(s)))
                        continue;
                l->used = true;
                return l;
        }
        return NULL;
}

/* The literal the string setting s was written as (matched once, then
 * remembered), or NULL. */
static const struct config_str_literal *strs_find(struct config_parser *p, const config_setting_t *s)
{
        const char *name, *file, *v;

        if (!s || config_setting_type(s) != CONFIG_TYPE_STRING)
                return NULL;
        for (size_t i = 0; i < p->n_strs; i++)
                if (p->strs[i].owner == s)
                        return &p->strs[i];
        name = config_setting_name(s);
        file = config_setting_source_file(s);
        v = config_setting_get_string(s);
        for (size_t i = 0; i < p->n_strs; i++) {
                struct config_str_literal *l = &p->strs[i];

                if (l->owner || !config_same_file(l->file, file) || strcmp(l->value, v) != 0)
                        continue;
                if (name ? !(l->name && l->name_line == config_line_of(s) &&
                             l->name_len == strlen(name) && memcmp(l->name, name, l->name_len) == 0)
                         : (l->name || l->next_line != config_line_of(s)))
                        continue;
                l->owner = s;
                return l;
        }
        return NULL;
}

/* The line of s for a message: a string element's own line, see above. */
int config_scan_report_line(struct config_parser *p, const config_setting_t *s)
{
        const struct config_str_literal *l;

        if (!s || config_setting_name(s))
                return config_line_of(s);
        l = strs_find(p, s);
        return l ? l->line : config_line_of(s);
}

static void parser_done(struct config_parser *p)
{
        for (size_t i = 0; i < p->n_strs; i++)
                free(p->strs[i].value);
        free(p->strs);
        free(p->ints);
        for (size_t i = 0; i < p->n_kept; i++)
                free(p->kept[i]);
        free(p->kept);
}

/* ---- typed values ----------------------------------------------------------- */

static bool setting_is_int(const config_setting_t *s)
{
        int t = config_setting_type(s);

        return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* An integer in [min, max] named name (for messages) from s. */
static int get_int_range(struct config_parser *p, const config_setting_t *s, const char *name,
                         long long min, long long max, long long *ret)
{
        const struct config_int_literal *l;
        long long v;

        if (!setting_is_int(s)) {
                config_error_at(p, s, "%s: expected an integer", name);
                return -EINVAL;
        }
        v = config_setting_get_int64(s);
        l = ints_take(p, s, v);
        if (l) {
                config_error_at(p, s, "%s: must be between %lld and %lld, got %.*s",
                                name, min, max, (int) l->len, l->text);
                return -ERANGE;
        }
        if (v < min || v > max) {
                config_error_at(p, s, "%s: must be between %lld and %lld, got %lld", name, min, max, v);
                return -ERANGE;
        }
        *ret = v;
        return 0;
}

static int get_u32(struct config_parser *p, const config_setting_t *s, long long min, long long max,
                   uint32_t *ret)
{
        long long v;
        int r;

        r = get_int_range(p, s, config_setting_name(s), min, max, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t) v;
        return 0;
}

/* A string written with \x00 is refused: libconfig has dropped the NUL. */
static bool string_has_nul(struct config_parser *p, const config_setting_t *s, const char *name)
{
        const struct config_str_literal *l = strs_find(p, s);

        if (!l || !l->nul)
                return false;
        config_error_at(p, s, "%s: \\x00 (a NUL byte) is not allowed in a string", name);
        return true;
}

static const char *get_string(struct config_parser *p, const config_setting_t *s)
{
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
                config_error_at(p, s, "%s: expected a string", config_setting_name(s));
                return NULL;
        }
        if (string_has_nul(p, s, config_setting_name(s)))
                return NULL;
        return config_setting_get_string(s);
}

/* "list" settings: a libconfig array or list (both written [..] / (..)). */
static bool setting_is_sequence(const config_setting_t *s)
{
        int t = config_setting_type(s);

        return t == CONFIG_TYPE_ARRAY || t == CONFIG_TYPE_LIST;
}

/* ---- enums -------------------------------------------------------------- */

static const char *const log_level_names[] = {
        [LOG_LEVEL_ERR] = "err",
        [LOG_LEVEL_WARNING] = "warning",
        [LOG_LEVEL_NOTICE] = "notice",
        [LOG_LEVEL_INFO] = "info",
        [LOG_LEVEL_DEBUG] = "debug",
};

const char *log_level_to_string(enum log_level l)
{
        if ((unsigned) l >= ELEMENTSOF(log_level_names))
                return NULL;
        return log_level_names[l];
}

int log_level_from_string(const char *s)
{
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(log_level_names); i++)
                if (log_level_names[i] && strcmp(log_level_names[i], s) == 0)
                        return (int) i;
        return -EINVAL;
}

/* ---- listen_opts ------------------------------------------------------------ */

void listen_opts_done(struct listen_opts *o)
{
        if (!o)
                return;
        free(o->greeting);
        free(o->suffix);
        acl_done(&o->allow);
        acl_done(&o->deny);
        *o = (struct listen_opts) {};
}

static char *memdup_nul(const char *s, size_t len)
{
        char *d = malloc(len + 1);

        if (!d)
                return NULL;
        memcpy(d, s, len);
        d[len] = '\0';
        return d;
}

int listen_opts_copy(struct listen_opts *dst, const struct listen_opts *src)
{
        struct listen_opts o = *src;

        o.greeting = memdup_nul(src->greeting ? src->greeting : "", src->greeting_len);
        o.suffix = memdup_nul(src->suffix ? src->suffix : "", src->suffix_len);
        o.allow = (struct acl) {};
        o.deny = (struct acl) {};
        if (!o.greeting || !o.suffix ||
            acl_copy(&o.allow, &src->allow) < 0 || acl_copy(&o.deny, &src->deny) < 0) {
                listen_opts_done(&o);
                *dst = (struct listen_opts) {};
                return -ENOMEM;
        }
        *dst = o;
        return 0;
}

static bool bytes_equal(const char *a, size_t alen, const char *b, size_t blen)
{
        return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

bool listen_opts_equal(const struct listen_opts *a, const struct listen_opts *b)
{
        return bytes_equal(a->greeting, a->greeting_len, b->greeting, b->greeting_len) &&
                bytes_equal(a->suffix, a->suffix_len, b->suffix, b->suffix_len) &&
                a->mode == b->mode &&
                a->framing == b->framing &&
                a->max_message == b->max_message &&
                acl_equal(&a->allow, &b->allow) &&
                acl_equal(&a->deny, &b->deny) &&
                a->max_per_source == b->max_per_source;
}

static int listen_opts_init_defaults(struct listen_opts *o)
{
        *o = (struct listen_opts) {
                .greeting = strdup(CONFIG_DEFAULT_GREETING),
                .greeting_len = strlen(CONFIG_DEFAULT_GREETING),
                .suffix = strdup(CONFIG_DEFAULT_SUFFIX),
                .suffix_len = strlen(CONFIG_DEFAULT_SUFFIX),
                .mode = MODE_ECHO,
                .framing = FRAMING_LINE,
                .max_message = CONFIG_DEFAULT_MAX_MESSAGE,
                .max_per_source = 0,
        };
        if (!o->greeting || !o->suffix) {
                listen_opts_done(o);
                return -ENOMEM;
        }
        return 0;
}

/* ---- config ---------------------------------------------------------------- */

void config_free(struct config *c)
{
        if (!c)
                return;
        free(c->path);
        free(c->backend);
        listen_opts_done(&c->defaults);
        for (size_t i = 0; i < c->n_listeners; i++) {
                free(c->listeners[i].name);
                free(c->listeners[i].address);
                free(c->listeners[i].file);
                listen_opts_done(&c->listeners[i].opts);
        }
        free(c->listeners);
        free(c);
}

static bool name_in(const char *name, const char *const *names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(name, names[i]) == 0)
                        return true;
        return false;
}

static const char *const global_only_names[] = {
        "timeout", "backend", "max_connections", "log_level", "shutdown_timeout", "workers",
        "ports", "listen",
};

static const char *const entry_only_names[] = { "port", "address", "name" };

/* A string setting of at most max bytes into *dst / *dst_len. */
static void parse_bytes(struct config_parser *p, const config_setting_t *s, size_t max,
                        char **dst, size_t *dst_len)
{
        const char *v = get_string(p, s);
        size_t len;
        char *d;

        if (!v)
                return;
        len = strlen(v);
        if (len > max) {
                config_error_at(p, s, "%s: longer than %zu bytes", config_setting_name(s), max);
                return;
        }
        d = strdup(v);
        if (!d) {
                p->oom = true;
                return;
        }
        free(*dst);
        *dst = d;
        *dst_len = len;
}

/* allow / deny: a non-empty list replaces *dst; an empty one leaves it alone. */
static void parse_acl(struct config_parser *p, const config_setting_t *s, struct acl *dst)
{
        const char *name = config_setting_name(s);
        struct acl a = {};
        int n;
        bool bad = false;

        if (!setting_is_sequence(s)) {
                config_error_at(p, s, "%s: expected a list of addresses or CIDRs", name);
                return;
        }
        n = config_setting_length(s);
        if (n == 0)
                return;
        if ((unsigned) n > CONFIG_ACL_MAX) {
                config_error_at(p, s, "%s: more than %u entries", name, CONFIG_ACL_MAX);
                return;
        }
        a.entries = calloc((size_t) n, sizeof(struct cidr));
        if (!a.entries) {
                p->oom = true;
                return;
        }
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                char q[CONFIG_QUOTE_BUF];
                const char *v;

                if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                        config_error_at(p, e, "%s: expected a list of addresses or CIDRs", name);
                        bad = true;
                        break;
                }
                if (string_has_nul(p, e, name)) {
                        bad = true;
                        continue;
                }
                v = config_setting_get_string(e);
                if (cidr_parse(v, &a.entries[a.n]) < 0) {
                        config_error_at(p, e, "%s: invalid address or CIDR %s", name, config_quote(v, q));
                        bad = true;
                        continue;
                }
                a.n++;
        }
        if (bad) {
                acl_done(&a);
                return;
        }
        acl_done(dst);
        *dst = a;
}

/* Per-listener settings (global defaults or inside a listen entry). Returns
 * false if name is not one. */
static bool parse_listen_opt(struct config_parser *p, const config_setting_t *s, struct listen_opts *o)
{
        const char *name = config_setting_name(s);
        char q[CONFIG_QUOTE_BUF];
        const char *v;

        if (strcmp(name, "greeting") == 0)
                parse_bytes(p, s, CONFIG_GREETING_MAX, &o->greeting, &o->greeting_len);
        else if (strcmp(name, "suffix") == 0)
                parse_bytes(p, s, CONFIG_SUFFIX_MAX, &o->suffix, &o->suffix_len);
        else if (strcmp(name, "mode") == 0) {
                v = get_string(p, s);
                if (!v)
                        return true;
                if (strcmp(v, "echo") == 0)
                        o->mode = MODE_ECHO;
                else if (strcmp(v, "oneshot") == 0)
                        o->mode = MODE_ONESHOT;
                else
                        config_error_at(p, s, "mode: unknown mode %s (valid: echo, oneshot)",
                                        config_quote(v, q));
        } else if (strcmp(name, "framing") == 0) {
                v = get_string(p, s);
                if (!v)
                        return true;
                if (strcmp(v, "line") == 0)
                        o->framing = FRAMING_LINE;
                else if (strcmp(v, "raw") == 0)
                        o->framing = FRAMING_RAW;
                else
                        config_error_at(p, s, "framing: unknown framing %s (valid: line, raw)",
                                        config_quote(v, q));
        } else if (strcmp(name, "max_message") == 0)
                (void) get_u32(p, s, 1, CONFIG_MAX_MESSAGE_MAX, &o->max_message);
        else if (strcmp(name, "max_per_source") == 0)
                (void) get_u32(p, s, 0, CONFIG_MAX_PER_SOURCE_MAX, &o->max_per_source);
        else if (strcmp(name, "allow") == 0)
                parse_acl(p, s, &o->allow);
        else if (strcmp(name, "deny") == 0)
                parse_acl(p, s, &o->deny);
        else
                return false;
        return true;
}

static bool listener_name_valid(const char *s)
{
        size_t len = strlen(s);

        if (len < 1 || len > CONFIG_NAME_MAX)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 0x7f || *s == ':')
                        return false;
        return true;
}

/* Binary form of a listen address for comparisons: family 0 for "all addresses". */
struct addr_key {
        int family;
        uint8_t addr[16];
};

static bool addr_key_mapped(const struct addr_key *k)
{
        return k->family == AF_INET6 && acl_addr_is_v4mapped(k->addr);
}

static int addr_key(const char *address, struct addr_key *k)
{
        *k = (struct addr_key) {};
        if (!address)
                return 0;
        if (inet_pton(AF_INET, address, k->addr) == 1)
                k->family = AF_INET;
        else if (inet_pton(AF_INET6, address, k->addr) == 1)
                k->family = AF_INET6;
        else
                return -EINVAL;
        return 0;
}

/* A new entry for the setting s (the group, or the element of "ports"). */
/* Where e is, for a message about an entry written in file: "line N" in the
 * same file, else "FILE:N". */
static char *entry_where(const struct config_parser *p, const struct listen_entry *e, const char *file)
{
        if (config_same_file(e->file, file))
                return config_format("line %d", e->line);
        return config_format("%s:%d", e->file ? e->file : p->path, e->line);
}

static struct listen_entry *listeners_add(struct config_parser *p, struct config *c,
                                          const config_setting_t *s)
{
        const char *file = config_setting_source_file(s);
        struct listen_entry *l, *e;

        l = realloc(c->listeners, (c->n_listeners + 1) * sizeof(*l));
        if (!l) {
                p->oom = true;
                return NULL;
        }
        c->listeners = l;
        e = &l[c->n_listeners];
        *e = (struct listen_entry) { .line = config_line_of(s) };
        if ((file && !(e->file = strdup(file))) || listen_opts_copy(&e->opts, &c->defaults) < 0) {
                free(e->file);
                p->oom = true;
                return NULL;
        }
        c->n_listeners++;
        return e;
}

static void parse_ports(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        int n;

        if (!setting_is_sequence(s)) {
                config_error_at(p, s, "ports: expected a list of port numbers");
                return;
        }
        n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                struct listen_entry *l;
                long long port;

                if (!setting_is_int(e)) {
                        config_error_at(p, e, "ports: expected a list of port numbers");
                        return;
                }
                if (get_int_range(p, e, "ports", 0, 65535, &port) < 0)
                        continue;
                l = listeners_add(p, c, e);
                if (!l)
                        return;
                l->port = (uint16_t) port;
        }
}

static void parse_listen_entry(struct config_parser *p, struct config *c, const config_setting_t *g,
                               size_t first_listen)
{
        const config_setting_t *port_setting = NULL;
        struct listen_entry *l;
        size_t self;
        int n;

        l = listeners_add(p, c, g);
        if (!l)
                return;
        self = c->n_listeners - 1;

        n = config_setting_length(g);
        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(g, (unsigned) i);
                const char *name = config_setting_name(s);
                char q[CONFIG_QUOTE_BUF];
                const char *v;

                l = &c->listeners[self];
                if (strcmp(name, "port") == 0) {
                        long long port;

                        port_setting = s;
                        if (get_int_range(p, s, "port", 0, 65535, &port) == 0)
                                l->port = (uint16_t) port;
                } else if (strcmp(name, "address") == 0) {
                        struct addr_key k;

                        v = get_string(p, s);
                        if (!v)
                                continue;
                        /* kept even when invalid: check_duplicates() then skips the entry */
                        if (addr_key(v, &k) < 0)
                                config_error_at(p, s, "address: not a numeric IPv4 or IPv6 address: %s",
                                                config_quote(v, q));
                        else if (addr_key_mapped(&k)) {
                                /* bound IPV6_V6ONLY (see listener.c), it fails with EINVAL */
                                char v4[INET_ADDRSTRLEN];

                                inet_ntop(AF_INET, k.addr + 12, v4, sizeof(v4));
                                config_error_at(p, s, "address: %s is an IPv4-mapped IPv6 address, which "
                                                "muxd cannot listen on (IPv6 listeners are IPv6 only): "
                                                "write \"%s\"",
                                                config_quote(v, q), v4);
                        }
                        l->address = strdup(v);
                        if (!l->address)
                                p->oom = true;
                } else if (strcmp(name, "name") == 0) {
                        v = get_string(p, s);
                        if (!v)
                                continue;
                        if (!listener_name_valid(v)) {
                                config_error_at(p, s, "name: invalid listener name %s (1 to %u printable "
                                                "ASCII characters, no spaces or colons)",
                                                config_quote(v, q), CONFIG_NAME_MAX);
                                continue;
                        }
                        for (size_t j = first_listen; j < self; j++)
                                if (c->listeners[j].name && strcmp(c->listeners[j].name, v) == 0) {
                                        _cleanup_free_ char *where =
                                                entry_where(p, &c->listeners[j], l->file);

                                        if (!where)
                                                p->oom = true;
                                        else
                                                config_error_at(p, s, "name: %s is already used by "
                                                                "the entry at %s",
                                                                config_quote(v, q), where);
                                        goto next;
                                }
                        l->name = strdup(v);
                        if (!l->name)
                                p->oom = true;
                } else if (parse_listen_opt(p, s, &l->opts))
                        ;
                else if (name_in(name, global_only_names, ELEMENTSOF(global_only_names)))
                        config_error_at(p, s, "%s: not allowed in a listen entry", name);
                else
                        config_error_at(p, s, "unknown setting \"%s\"", name);
        next:
                ;
        }

        if (!port_setting)
                config_error_at(p, g, "listen: entry needs a \"port\"");
}

static void parse_listen(struct config_parser *p, struct config *c, const config_setting_t *s)
{
        size_t first = c->n_listeners;
        int n;

        if (!setting_is_sequence(s)) {
                config_error_at(p, s, "listen: expected a list of groups");
                return;
        }
        n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
                const config_setting_t *g = config_setting_get_elem(s, (unsigned) i);

                if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                        config_error_at(p, g, "listen: expected a list of groups");
                        continue;
                }
                parse_listen_entry(p, c, g, first);
                if (p->oom)
                        return;
        }
}

/* A "ports" or "listen" setting with entries (or not a list: already an error). */
static bool listeners_written(const config_setting_t *s)
{
        return s && (!setting_is_sequence(s) || config_setting_length(s) > 0);
}

/* Why the kernel refuses to bind two different addresses on the same port
 * (EADDRINUSE), or NULL if it does not: an entry for all addresses is one
 * dual-stack socket, "0.0.0.0" takes every IPv4 address and an explicit "::"
 * (bound IPv6 only) every IPv6 address. */
static const char *addr_key_conflict(const struct addr_key *a, const struct addr_key *b)
{
        static const uint8_t any[16];

        if (a->family == AF_UNSPEC || b->family == AF_UNSPEC)
                return "all addresses is one dual-stack socket for every IPv4 and IPv6 address";
        if (a->family != b->family ||
            (memcmp(a->addr, any, sizeof(any)) != 0 && memcmp(b->addr, any, sizeof(any)) != 0))
                return NULL;
        return a->family == AF_INET ? "0.0.0.0 is every IPv4 address" : ":: is every IPv6 address";
}

/* Entries muxd could not bind together: the same address and port twice, or
 * addresses that overlap on a port (see above). Port 0 never conflicts. */
static void check_duplicates(struct config_parser *p, const struct config *c)
{
        for (size_t i = 0; i < c->n_listeners; i++) {
                const struct listen_entry *a = &c->listeners[i];
                const char *file = a->file ? a->file : p->path;
                const char *as = a->address ? a->address : "all addresses";
                struct addr_key ka;

                /* invalid and IPv4-mapped addresses have their error already */
                if (a->port == 0 || addr_key(a->address, &ka) < 0 || addr_key_mapped(&ka))
                        continue;
                for (size_t j = 0; j < i; j++) {
                        const struct listen_entry *b = &c->listeners[j];
                        _cleanup_free_ char *where = NULL;
                        const char *why = NULL;
                        struct addr_key kb;
                        bool same;

                        if (b->port != a->port || addr_key(b->address, &kb) < 0 || addr_key_mapped(&kb))
                                continue;
                        same = memcmp(&ka, &kb, sizeof(ka)) == 0;
                        if (!same && !(why = addr_key_conflict(&ka, &kb)))
                                continue;
                        where = entry_where(p, b, a->file);
                        if (!where)
                                p->oom = true;
                        else if (same)
                                config_error_file_line(p, file, a->line, "port %u on %s is already "
                                                       "listed at %s", a->port, as, where);
                        else
                                config_error_file_line(p, file, a->line, "port %u on %s conflicts with "
                                                       "port %u on %s at %s (%s)", a->port, as, b->port,
                                                       b->address ? b->address : "all addresses",
                                                       where, why);
                        break;
                }
        }
}

static void parse_root(struct config_parser *p, struct config *c, const config_setting_t *root)
{
        const config_setting_t *max_conn = NULL, *backend = NULL, *ports = NULL, *listen = NULL;
        bool backend_ok = true, max_conn_ok = true;
        const struct ev_backend *b;
        int n;

        n = config_setting_length(root);
        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(root, (unsigned) i);
                const char *name = config_setting_name(s);
                char q[CONFIG_QUOTE_BUF];
                const char *v;

                if (strcmp(name, "timeout") == 0)
                        (void) get_u32(p, s, 0, CONFIG_TIMEOUT_MAX, &c->timeout);
                else if (strcmp(name, "backend") == 0) {
                        backend = s;
                        backend_ok = false;
                        v = get_string(p, s);
                        if (!v)
                                continue;
                        if (!ev_backend_find(v)) {
                                config_error_at(p, s, "backend: unknown backend %s (valid: %s)",
                                                config_quote(v, q), ev_backend_names());
                                continue;
                        }
                        free(c->backend);
                        c->backend = strdup(v);
                        if (!c->backend) {
                                p->oom = true;
                                return;
                        }
                        backend_ok = true;
                } else if (strcmp(name, "max_connections") == 0) {
                        max_conn = s;
                        max_conn_ok = get_u32(p, s, 1, CONFIG_MAX_CONNECTIONS_MAX,
                                              &c->max_connections) == 0;
                } else if (strcmp(name, "log_level") == 0) {
                        int l;

                        v = get_string(p, s);
                        if (!v)
                                continue;
                        l = log_level_from_string(v);
                        if (l < 0)
                                config_error_at(p, s, "log_level: unknown level %s (valid: debug, "
                                                "info, notice, warning, err)", config_quote(v, q));
                        else
                                c->log_level = (enum log_level) l;
                } else if (strcmp(name, "shutdown_timeout") == 0)
                        (void) get_u32(p, s, 0, CONFIG_SHUTDOWN_TIMEOUT_MAX, &c->shutdown_timeout);
                else if (strcmp(name, "workers") == 0)
                        (void) get_u32(p, s, 1, CONFIG_WORKERS_MAX, &c->workers);
                else if (strcmp(name, "ports") == 0)
                        ports = s;
                else if (strcmp(name, "listen") == 0)
                        listen = s;
                else if (parse_listen_opt(p, s, &c->defaults))
                        ;
                else if (name_in(name, entry_only_names, ELEMENTSOF(entry_only_names)))
                        config_error_at(p, s, "%s: only allowed in a listen entry", name);
                else
                        config_error_at(p, s, "unknown setting \"%s\"", name);
                if (p->oom)
                        return;
        }

        /* listeners copy the defaults, so they come once those are complete */
        if (ports)
                parse_ports(p, c, ports);
        if (listen && !p->oom)
                parse_listen(p, c, listen);
        if (p->oom)
                return;
        /* always an error, so that start, reload and -t agree on the file */
        if (!listeners_written(ports) && !listeners_written(listen))
                config_error_file_line(p, p->path, 0, "no listeners: set \"ports\" or \"listen\" (muxd "
                                       "needs at least one; sockets passed by systemd are matched to "
                                       "these entries)");
        check_duplicates(p, c);

        /* A backend with a descriptor limit of its own (select) must be able to
         * watch every client, every listener and muxd's own descriptors. */
        b = backend_ok ? ev_backend_find(c->backend) : NULL;
        c->max_connections_set = max_conn != NULL;
        if (b && b->max_fds != 0 && max_conn_ok) {
                size_t at_most = config_client_budget(b->max_fds, c->n_listeners, c->workers);
                char limit[64];

                if (strcmp(b->name, "select") == 0)
                        snprintf(limit, sizeof(limit), "FD_SETSIZE %zu", b->max_fds);
                else
                        snprintf(limit, sizeof(limit), "%zu descriptors", b->max_fds);

                if (max_conn) {
                        if (c->max_connections > at_most)
                                config_error_at(p, max_conn, "max_connections: %u is more than backend "
                                                "\"%s\" can watch (%s): at most %zu with %zu listener%s "
                                                "and %u worker%s",
                                                c->max_connections, b->name, limit, at_most,
                                                c->n_listeners, c->n_listeners == 1 ? "" : "s",
                                                c->workers, c->workers == 1 ? "" : "s");
                } else if (at_most == 0)
                        config_error_at(p, backend, "backend: \"%s\" can watch too few descriptors (%s) "
                                        "for %zu listener%s and %u worker%s", b->name, limit,
                                        c->n_listeners, c->n_listeners == 1 ? "" : "s",
                                        c->workers, c->workers == 1 ? "" : "s");
                else if (c->max_connections > at_most)
                        c->max_connections = (uint32_t) at_most;
        }

        /* A backend the kernel may refuse (io_uring: a seccomp filter such as
         * the unit's SystemCallFilter=, kernel.io_uring_disabled, an old
         * kernel) is tried here, so that "muxd -t" (and so "systemctl reload")
         * and the start fail with the way out rather than a bare errno. */
        if (b && b->probe && backend) {
                int r = b->probe();

                if (r == -EOPNOTSUPP)
                        config_error_at(p, backend, "backend: this kernel's %s lacks what muxd needs "
                                        "(Linux 6.0 or later); use backend \"epoll\"", b->name);
                else if (r < 0)
                        config_error_at(p, backend, "backend: the kernel refused %s (%s); use backend "
                                        "\"epoll\"%s",
                                        b->name, strerror(-r),
                                        strcmp(b->name, "io_uring") == 0 ?
                                        ", or allow io_uring in the unit (SystemCallFilter="
                                        "io_uring_setup io_uring_enter io_uring_register)" : "");
        }
}

size_t config_client_budget(size_t max_fds, size_t n_listeners, unsigned workers)
{
        size_t fixed = n_listeners + CONFIG_RESERVED_FDS + (size_t) workers * CONFIG_FDS_PER_WORKER;

        return max_fds > fixed ? max_fds - fixed : 0;
}

static int config_new(const char *path, struct config **ret)
{
        struct config *c;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (struct config) {
                .path = strdup(path),
                .timeout = CONFIG_DEFAULT_TIMEOUT,
                .backend = strdup(CONFIG_DEFAULT_BACKEND),
                .max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS,
                .log_level = LOG_LEVEL_INFO,
                .shutdown_timeout = CONFIG_DEFAULT_SHUTDOWN_TIMEOUT,
                .workers = 1,
        };
        if (!c->path || !c->backend || listen_opts_init_defaults(&c->defaults) < 0) {
                config_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static int load_text(const char *text, const char *path, const char *include_dir,
                     struct config **ret, struct config_errors *errs)
{
        struct config_parser p = { .path = path, .include_dir = include_dir, .errs = errs };
        _cleanup_free_ char *copy = NULL;
        struct config *c = NULL;
        size_t len = strlen(text);
        config_t cfg;
        int r;

        /* libconfig 1.5 takes a comment on the last line for garbage unless a
         * newline ends it */
        if (len > 0 && text[len - 1] != '\n') {
                copy = malloc(len + 2);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, text, len);
                memcpy(copy + len, "\n", 2);
                text = copy;
        }

        config_init(&cfg);
        if (include_dir)
                config_set_include_dir(&cfg, include_dir);

        if (config_read_string(&cfg, text) != CONFIG_TRUE) {
                const char *file = config_error_file(&cfg);
                const char *msg = config_error_text(&cfg);

                config_error_file_line(&p, file ? file : path, config_error_line(&cfg), "%s",
                                       msg ? msg : "syntax error");
                r = p.oom ? -ENOMEM : -EINVAL;
                goto finish;
        }

        r = scan_literals(&p, text, NULL, 0);
        if (r < 0)
                goto finish;
        if (p.n_errors > 0) {
                /* an included file unreadable or with a NUL byte: alone, as for the main file */
                r = p.oom ? -ENOMEM : -EINVAL;
                goto finish;
        }

        r = config_new(path, &c);
        if (r < 0)
                goto finish;

        parse_root(&p, c, config_root_setting(&cfg));

        /* a \x00 in a string no setting was matched to: refused all the same
         * (when nothing else is wrong, since it may belong to a setting in error) */
        for (size_t i = 0, n_errors = p.n_errors; i < p.n_strs && n_errors == 0; i++)
                if (p.strs[i].nul && !p.strs[i].owner)
                        config_error_file_line(&p, p.strs[i].file ? p.strs[i].file : path, p.strs[i].line,
                                               "\\x00 (a NUL byte) is not allowed in a string");

        if (p.oom)
                r = -ENOMEM;
        else if (p.n_errors > 0)
                r = -EINVAL;
        else {
                *ret = c;
                c = NULL;
                r = 0;
        }

finish:
        config_free(c);
        parser_done(&p);
        config_destroy(&cfg);
        return r;
}

int config_load_string(const char *text, const char *path, struct config **ret,
                       struct config_errors *errs)
{
        if (!text || !path || !ret)
                return -EINVAL;
        return load_text(text, path, NULL, ret, errs);
}

/* The whole file, NUL-terminated; -errno on failure. */
static int read_file(const char *path, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, size = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        for (;;) {
                ssize_t n;

                if (size - len < 4096) {
                        char *b;

                        if (size >= CONFIG_FILE_MAX)
                                return -EFBIG;
                        size = size ? size * 2 : 16384;
                        b = realloc(buf, size + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                n = read(fd, buf + len, size - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        *ret = buf;
        buf = NULL;
        *ret_len = len;
        return 0;
}

int config_load(const char *path, struct config **ret, struct config_errors *errs)
{
        _cleanup_free_ char *text = NULL, *dir = NULL;
        struct config_parser p = { .path = path, .errs = errs };
        const char *slash;
        size_t len = 0;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_file(path, &text, &len);
        if (r < 0) {
                config_error_file_line(&p, path, 0, "cannot read: %s", strerror(-r));
                return r;
        }

        if (check_nul(&p, path, text, len))
                return p.oom ? -ENOMEM : -EINVAL;

        /* relative @include paths are relative to the file's directory */
        slash = strrchr(path, '/');
        if (slash) {
                dir = strndup(path, slash == path ? 1 : (size_t) (slash - path));
                if (!dir)
                        return -ENOMEM;
        }

        return load_text(text, path, dir, ret, errs);
}
