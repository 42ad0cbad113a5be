/* SPDX-License-Identifier: MIT */
/* Private to the configuration loader: the pre-pass over the text (config-scan.c).
 * libconfig 1.5 wraps integers that do not fit in 32 bits, reports a string
 * element of a list at the line after it and drops a \x00 from a string; the
 * pre-pass reads the literals again (and those of the files named by
 * @include) so that the schema (config.c) can refuse the first and the last
 * and report at the right line. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "config-internal.h"

/* The whole file, NUL-terminated (at most 16 MiB: -EFBIG); -errno on failure. */
int config_scan_read_file(const char *path, char **ret, size_t *ret_len);

/* Reports the first NUL byte of text (libconfig would silently stop there)
 * as an error of file; true if there is one. */
bool config_scan_check_nul(struct config_parser *p, const char *file, const char *text, size_t len);

/* Records the literals of the main text (which libconfig has accepted) and of
 * the files it includes into p. An included file that cannot be read or has
 * a NUL byte is reported through p. Returns 0 or -ENOMEM. */
int config_scan_literals(struct config_parser *p, const char *text);

/* When the integer setting s (whose value libconfig gives as v) was written as
 * a literal libconfig wrapped: that literal as written, *len bytes long (each
 * literal is matched once). Else NULL. */
const char *config_scan_wrapped_int(struct config_parser *p, const config_setting_t *s, long long v,
                                    size_t *len);

/* Was the string setting s written with a \x00 (which libconfig dropped)? */
bool config_scan_string_had_nul(struct config_parser *p, const config_setting_t *s);

/* The line of s for a message: a string element of a list at its own line. */
int config_scan_report_line(struct config_parser *p, const config_setting_t *s);

/* Reports each string with a \x00 that no setting was matched to (run after
 * the schema), unless an error was reported already. */
void config_scan_report_unmatched_nul(struct config_parser *p);

/* Frees what the pre-pass recorded in p. */
void config_scan_done(struct config_parser *p);
