/* SPDX-License-Identifier: MIT */
/* The control socket's commands and request parser (see control-proto.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "control-proto.h"
#include "util.h"

const struct control_command control_commands[] = {
        { "status",  "",                 0, 0, "version, uptime, backend, configuration, listeners, clients, last reload" },
        { "stats",   "",                 0, 0, "counters per listener and in total (--json, --prometheus)" },
        { "clients", "[LISTENER]",       0, 1, "one line per client: peer, listener, connected for, idle for, queued bytes" },
        { "kick",    "PEER | all-from CIDR", 1, 2, "close the connections of PEER (ADDRESS or ADDRESS:PORT) or of a network" },
        { "ban",     "CIDR [SECONDS]",   1, 2, "refuse new connections from CIDR (for SECONDS, else until unban or a restart)" },
        { "unban",   "CIDR",             1, 1, "remove a ban" },
        { "bans",    "",                 0, 0, "the bans and the time they have left" },
        { "reload",  "",                 0, 0, "reload the configuration; the verdict and every FILE:LINE error" },
        { "check",   "",                 0, 0, "check the configuration file as a reload would, changing nothing" },
        { "upgrade", "",                 0, 0, "live upgrade: hand every listener and client to the binary on disk; the verdict" },
        { "drain",   "LISTENER",         1, 1, "stop accepting on a listener (its clients stay served)" },
        { "undrain", "LISTENER",         1, 1, "accept on a drained listener again" },
        { "help",    "",                 0, 0, "these commands" },
        { "version", "",                 0, 0, "muxd's version" },
};
const size_t control_n_commands = ELEMENTSOF(control_commands);

const struct control_command *control_command_find(const char *name)
{
        for (size_t i = 0; i < control_n_commands; i++)
                if (strcmp(control_commands[i].name, name) == 0)
                        return &control_commands[i];
        return NULL;
}

const char *control_command_names(char *buf, size_t size)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < control_n_commands && o < size; i++) {
                int n = snprintf(buf + o, size - o, "%s%s", i > 0 ? ", " : "", control_commands[i].name);

                if (n < 0)
                        break;
                o += (size_t) n;
        }
        return buf;
}

/* Only printable ASCII, spaces and tabs: anything else is garbage, refused
 * before any word is looked at. Returns the offset of the first bad byte, or
 * len. */
static size_t control_first_bad_byte(const char *line, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) line[i];

                if ((c < 0x20 && c != '\t') || c >= 0x7f)
                        return i;
        }
        return len;
}

static int control_usage(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int control_usage(char *why, size_t size, const char *fmt, ...)
{
        size_t n = strlen(CONTROL_USAGE_PREFIX);
        va_list ap;

        snprintf(why, size, "%s", CONTROL_USAGE_PREFIX);
        if (n < size) {
                va_start(ap, fmt);
                vsnprintf(why + n, size - n, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* A word as a message quotes it: at most 40 characters. */
static const char *control_quote(const char *w, char *buf, size_t size)
{
        snprintf(buf, size, "\"%.40s%s\"", w, strlen(w) > 40 ? "..." : "");
        return buf;
}

int control_request_parse(char *line, size_t len, struct control_request *req,
                          char *why, size_t why_size)
{
        const char *words[CONTROL_ARGS_MAX + 1];
        unsigned n = 0;
        char q[64], names[CONTROL_NAMES_MAX], *p, *save = NULL;
        size_t bad;

        *req = (struct control_request) {};
        if (len > 0 && line[len - 1] == '\r')
                len--;
        line[len] = '\0';
        bad = control_first_bad_byte(line, len);
        if (bad < len) {
                return control_usage(why, why_size, "the request has a control or non-ASCII byte "
                                     "(0x%02x at offset %zu)", (unsigned char) line[bad], bad);
        }
        for (p = strtok_r(line, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
                if (strncmp(p, "--", 2) == 0) {
                        if (strcmp(p, "--json") == 0)
                                req->json = true;
                        else if (strcmp(p, "--prometheus") == 0)
                                req->prometheus = true;
                        else
                                return control_usage(why, why_size, "unknown option %s (valid: --json, "
                                                     "--prometheus)", control_quote(p, q, sizeof(q)));
                        continue;
                }
                if (n >= ELEMENTSOF(words))
                        n++;    /* too many: said below, once the command is known */
                else
                        words[n++] = p;
        }
        if (n == 0)
                return control_usage(why, why_size, "empty request; commands: %s",
                                     control_command_names(names, sizeof(names)));
        req->cmd = control_command_find(words[0]);
        if (!req->cmd)
                return control_usage(why, why_size, "unknown command %s; commands: %s",
                                     control_quote(words[0], q, sizeof(q)),
                                     control_command_names(names, sizeof(names)));
        if (n - 1 < req->cmd->min_args || n - 1 > req->cmd->max_args)
                return control_usage(why, why_size, "%s%s%s", req->cmd->name,
                                     req->cmd->args[0] ? " " : "", req->cmd->args);
        req->n_args = n - 1;
        for (unsigned i = 0; i < req->n_args; i++)
                req->args[i] = words[i + 1];
        return 0;
}
