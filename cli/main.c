/* wsk: the command-line tool. A thin user of <wsk.h>. */
#include <stdio.h>
#include <string.h>

#include "wsk.h"

static const char usage[] = "usage: wsk <command> [options]\n"
                            "\n"
                            "WebSocket Kit: a fast, strict WebSocket toolkit.\n"
                            "\n"
                            "commands:\n"
                            "  help             show this help\n"
                            "  version          print the version\n"
                            "\n"
                            "Run 'wsk <command> --help' for a command's options.\n";

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("wsk %s\n", wsk_version());
        return 0;
    }
    fprintf(stderr, "wsk: unknown command '%s' (try 'wsk --help')\n", argv[1]);
    return 2;
}
