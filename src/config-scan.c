/* SPDX-License-Identifier: MIT */
/* The configuration's pre-pass: a second reading of the text libconfig has
 * accepted, for what libconfig 1.5 gets wrong (see below), and the reading of
 * files (the main one by config.c, included ones here). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config-scan.h"
#include "util.h"

#define CONFIG_FILE_MAX         (16u << 20)     /* refuse to read bigger files */
#define INCLUDE_DEPTH_MAX       10              /* libconfig 1.5's own limit */

/* Three things libconfig 1.5 gets wrong are corrected with a scan of the text
 * (scan_literals(), below):
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
bool config_scan_check_nul(struct config_parser *p, const char *file, const char *text, size_t len)
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
        r = config_scan_read_file(full ? full : name, &text, &len);
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
        if (config_scan_check_nul(p, name, text, len))
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

int config_scan_literals(struct config_parser *p, const char *text)
{
        return scan_literals(p, text, NULL, 0);
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

const char *config_scan_wrapped_int(struct config_parser *p, const config_setting_t *s, long long v,
                                    size_t *len)
{
        const struct config_int_literal *l = ints_take(p, s, v);

        if (!l)
                return NULL;
        *len = l->len;
        return l->text;
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

bool config_scan_string_had_nul(struct config_parser *p, const config_setting_t *s)
{
        const struct config_str_literal *l = strs_find(p, s);

        return l && l->nul;
}

/* A string element's own line, see above. */
int config_scan_report_line(struct config_parser *p, const config_setting_t *s)
{
        const struct config_str_literal *l;

        if (!s || config_setting_name(s))
                return config_line_of(s);
        l = strs_find(p, s);
        return l ? l->line : config_line_of(s);
}

void config_scan_report_unmatched_nul(struct config_parser *p)
{
        for (size_t i = 0, n_errors = p->n_errors; i < p->n_strs && n_errors == 0; i++)
                if (p->strs[i].nul && !p->strs[i].owner)
                        config_error_file_line(p, p->strs[i].file ? p->strs[i].file : p->path,
                                               p->strs[i].line,
                                               "\\x00 (a NUL byte) is not allowed in a string");
}

void config_scan_done(struct config_parser *p)
{
        for (size_t i = 0; i < p->n_strs; i++)
                free(p->strs[i].value);
        free(p->strs);
        free(p->ints);
        for (size_t i = 0; i < p->n_kept; i++)
                free(p->kept[i]);
        free(p->kept);
}

/* The whole file, NUL-terminated; -errno on failure. */
int config_scan_read_file(const char *path, char **ret, size_t *ret_len)
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
