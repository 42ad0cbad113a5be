/* SPDX-License-Identifier: MIT */
/* The command line of every unit test program, so that one test can be run
 * alone while working on it:
 *
 *   tests/test_config                 every test (what "make check" runs)
 *   tests/test_config 'listen_*'      only the tests whose name matches
 *
 * The pattern is cmocka's (cmocka_set_test_filter): '*' matches any run of
 * characters, '?' one, and it must match the whole name as cmocka prints it
 * ("[ RUN      ] NAME"). A group none of whose tests match prints "Running
 * 0 test(s)". Include after <cmocka.h>; call test_main_args() first thing
 * in main(). */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void test_main_args(int argc, char **argv)
{
        int help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));

        if (argc == 1)
                return;
        if (argc == 2 && !help) {
                cmocka_set_test_filter(argv[1]);        /* argv outlives the run */
                return;
        }
        fprintf(help ? stdout : stderr,
                "usage: %s [PATTERN]\n"
                "Run every test, or only those whose name matches PATTERN\n"
                "('*': any characters, '?': one; quote it for the shell).\n",
                argv[0]);
        exit(help ? 0 : 2);
}
