/* SPDX-License-Identifier: MIT */
/* journald's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL): one
 * datagram per entry, "NAME=value\n" per field, or for a value holding a
 * newline "NAME\n", its length as 64-bit little endian, the value, "\n".
 * Encoding only: log.c sends the datagrams itself, without blocking, which
 * sd_journal_send() cannot do. Never logs. */
#pragma once

#include <stddef.h>

/* Where journald listens (a service with LogNamespace= sees its own here). */
#define JOURNAL_SOCKET_PATH "/run/systemd/journal/socket"

/* Encode an entry into buf: PRIORITY, SYSLOG_IDENTIFIER, MESSAGE, then the
 * "NAME=value" strings of fields (NULL-terminated, may be NULL). Returns the
 * datagram's length, or 0 if it does not fit in size bytes. */
size_t journal_encode(char *buf, size_t size, int priority, const char *identifier,
                      const char *message, const char *const *fields);
