/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "event.h"
#include "log.h"
#include "server.h"

#define DEFAULT_CONFIG SYSCONFDIR "/muxd.conf"
#define MAIN_LOG_DRAIN_MS 1000u    /* at exit, for log lines the journal has not taken yet */

static void main_usage(FILE *f)
{
        fprintf(f,
                "Usage: muxd [OPTION]...\n"
                "Serve many TCP ports and clients from one event loop: greet each client\n"
                "and answer each message with the message plus a suffix.\n"
                "\n"
                "  -c, --config FILE          configuration file (default %s)\n"
                "  -t, --check-config         check the configuration, print every error, exit\n"
                "      --log-target TARGET    auto, journal or stderr (default auto)\n"
                "  -V, --version              print the version and exit\n"
                "  -h, --help                 print this help and exit\n"
                "\n"
                "Signals: SIGHUP reloads the configuration, SIGTERM/SIGINT drain and stop,\n"
                "SIGUSR1 logs statistics, SIGUSR2 upgrades live (muxd re-executes its binary and\n"
                "hands every listener and client to it). muxctl(8) talks to the running daemon.\n"
                "See muxd(8) and muxd.conf(5).\n",
                DEFAULT_CONFIG);
}

static int main_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int main_usage_error(const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "muxd: %s\nTry 'muxd --help' for more information.\n", msg);
        return 2;
}

static void main_print_errors(const struct config_errors *errs)
{
        for (size_t i = 0; i < errs->n; i++)
                fprintf(stderr, "%s\n", errs->msgs[i]);
}

/* Whether this kernel lets muxd use the configured backend (io_uring may be
 * refused), said like an error of the file: "muxd -t" (and so "systemctl
 * reload") and the start fail with the way out rather than a bare errno. */
static int main_check_backend(const struct config *cfg)
{
        const char *file = cfg->backend_file ? cfg->backend_file : cfg->path;
        char *why = NULL;
        int r;

        r = ev_backend_check(ev_backend_find(cfg->backend), &why);
        if (r < 0) {
                if (cfg->backend_line > 0)
                        fprintf(stderr, "%s:%d: backend: %s\n", file, cfg->backend_line,
                                why ? why : strerror(-r));
                else
                        fprintf(stderr, "%s: backend: %s\n", file, why ? why : strerror(-r));
        }
        free(why);
        return r;
}

int main(int argc, char **argv)
{
        enum { OPT_LOG_TARGET = 0x100, OPT_HANDOVER };
        static const struct option options[] = {
                { "config",       required_argument, NULL, 'c' },
                { "check-config", no_argument,       NULL, 't' },
                { "log-target",   required_argument, NULL, OPT_LOG_TARGET },
                /* a live upgrade's: the previous image starts this one with it */
                { "handover",     required_argument, NULL, OPT_HANDOVER },
                { "version",      no_argument,       NULL, 'V' },
                { "help",         no_argument,       NULL, 'h' },
                {}
        };
        const char *path = DEFAULT_CONFIG, *handover = NULL;
        enum log_target target = LOG_TARGET_AUTO;
        struct config_errors errs = { 0 };
        struct config *cfg = NULL;
        struct server *srv = NULL;
        bool check_only = false;
        int c, r;

        opterr = 0;     /* our own messages, with the usage hint */
        while ((c = getopt_long(argc, argv, ":c:tVh", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        path = optarg;
                        break;
                case 't':
                        check_only = true;
                        break;
                case OPT_LOG_TARGET:
                        if (strcmp(optarg, "auto") == 0)
                                target = LOG_TARGET_AUTO;
                        else if (strcmp(optarg, "journal") == 0)
                                target = LOG_TARGET_JOURNAL;
                        else if (strcmp(optarg, "stderr") == 0)
                                target = LOG_TARGET_STDERR;
                        else
                                return main_usage_error("invalid log target (valid: auto, journal, "
                                                        "stderr): '%s'", optarg);
                        break;
                case OPT_HANDOVER:
                        handover = optarg;
                        break;
                case 'V':
                        printf("muxd %s\n", PACKAGE_VERSION);
                        return 0;
                case 'h':
                        main_usage(stdout);
                        return 0;
                /* A short option is named by optopt: it may sit inside "-xt"
                 * or "-tc", where argv[optind - 1] is another element. A long
                 * one as written: getopt_long() has always moved past it (an
                 * unknown one has optopt 0). */
                case ':':
                        if (strncmp(argv[optind - 1], "--", 2) == 0)
                                return main_usage_error("missing argument for option '%s'",
                                                        argv[optind - 1]);
                        return main_usage_error("missing argument for option '-%c'", optopt);
                default:
                        if (optopt == 0)
                                return main_usage_error("unknown option '%s'", argv[optind - 1]);
                        if (optopt < 0x100 && strchr("tVh", optopt))    /* so --check-config=... */
                                return main_usage_error("option '%.*s' takes no argument",
                                                        (int) strcspn(argv[optind - 1], "="),
                                                        argv[optind - 1]);
                        return main_usage_error("unknown option '-%c'", optopt);
                }
        }
        if (optind < argc)
                return main_usage_error("unexpected argument '%s'", argv[optind]);

        r = server_upgrade_setup(argc, argv, check_only ? NULL : handover);
        if (r < 0) {
                if (r == -EINVAL)
                        return main_usage_error("invalid --handover '%s'", handover);
                fprintf(stderr, "muxd: out of memory\n");
                return 1;
        }
        r = config_load(path, &cfg, &errs);
        if (r < 0) {
                main_print_errors(&errs);
                /* a live upgrade to a file that does not load: the old image goes on */
                server_upgrade_refuse("%s", errs.n > 0 ? errs.msgs[0] : strerror(-r));
                config_errors_clear(&errs);
                return 1;
        }
        if (main_check_backend(cfg) < 0) {
                server_upgrade_refuse("%s: backend \"%s\" cannot run", cfg->path, cfg->backend);
                config_free(cfg);
                return 1;
        }
        if (check_only) {
                printf("%s: configuration is valid\n", path);
                config_free(cfg);
                return 0;
        }

        log_setup(target);
        log_set_level(cfg->log_level);
        r = server_new(cfg, &srv);      /* takes cfg */
        if (r < 0) {
                server_upgrade_refuse("the new process could not start (see its log)");
                return 1;
        }
        r = server_run(srv);
        server_upgrade_refuse("the new process could not start (see its log)");
        server_free(srv);
        log_drain(MAIN_LOG_DRAIN_MS);   /* the last lines, if the journal was behind */
        return r;
}
