/* SPDX-License-Identifier: MIT */
/* Private to the configuration loader (config.c, config-errors.c,
 * config-scan.c): the state of one load and how its problems are reported. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <libconfig.h>

#include "config.h"

/* a value from the file shown in a message: at most this many characters */
#define CONFIG_QUOTE_MAX 80
#define CONFIG_QUOTE_BUF (CONFIG_QUOTE_MAX + 16)

struct config_int_literal;
struct config_str_literal;

struct config_parser {
        const char *path;               /* the main file, for messages */
        const char *include_dir;        /* as given to libconfig, or NULL */
        /* problems found (config-errors.c) */
        struct config_errors *errs;     /* may be NULL */
        size_t n_errors;
        bool oom;
        /* the literals libconfig 1.5 mishandles (config-scan.c) */
        struct config_int_literal *ints;
        size_t n_ints;
        struct config_str_literal *strs;
        size_t n_strs;
        char **kept;                    /* included texts and names: literals point into them */
        size_t n_kept;
};

/* ---- config-errors.c ---------------------------------------------------------- */

/* A new string, or NULL when out of memory. */
char *config_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends "FILE:LINE: message", or "FILE: message" when line <= 0; counts it
 * (p->n_errors) even when p->errs is NULL; out of memory sets p->oom. */
void config_error_file_line(struct config_parser *p, const char *file, int line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The same at the file and line of setting s. */
void config_error_at(struct config_parser *p, const config_setting_t *s, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* A value from the file, quoted for a one-line message: control bytes escaped,
 * long values cut. buf must hold CONFIG_QUOTE_BUF bytes; returns buf. */
const char *config_quote(const char *s, char *buf);

/* ---- where a setting is ------------------------------------------------------- */

/* The file s is written in (p->path for the main file). */
static inline const char *config_file_of(const struct config_parser *p, const config_setting_t *s)
{
        const char *f = s ? config_setting_source_file(s) : NULL;

        return f ? f : p->path;
}

static inline int config_line_of(const config_setting_t *s)
{
        return s ? (int) config_setting_source_line(s) : 0;
}

/* File names as libconfig gives them, NULL for the main file. */
static inline bool config_same_file(const char *a, const char *b)
{
        return a == b || (a && b && strcmp(a, b) == 0);
}
