/* `pusher`: command-line tool for Pusher Channels (listen, trigger, bench). */
#include <pusher/pusher.h>

#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "Usage: pusher COMMAND [options] [arguments]\n"
          "\n"
          "Commands:\n"
          "  listen [options] CHANNEL...            subscribe and print what arrives\n"
          "  trigger [options] CHANNEL[,..] EVENT [DATA]\n"
          "                                         publish an event through the HTTP API\n"
          "  bench [options] --subscribers N --events M\n"
          "                                         measure a server: N subscribers, M events,\n"
          "                                         deliveries/s, latency, losses, server CPU\n"
          "  help [COMMAND]                         this text, or a command's --help\n"
          "\n"
          "Options:\n"
          "  -h, --help     show this help\n"
          "  -V, --version  show the version\n"
          "\n"
          "Run 'pusher COMMAND --help' for a command's options.\n"
          "Exit status: 0 success, 1 failure, 2 bad usage.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "listen") == 0) return cli_listen(argc - 1, argv + 1);
  if (strcmp(cmd, "trigger") == 0) return cli_trigger(argc - 1, argv + 1);
  if (strcmp(cmd, "bench") == 0) return cli_bench(argc - 1, argv + 1);
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 || strcmp(cmd, "version") == 0) {
    printf("pusher %s (libpusher %s, Pusher Channels protocol %d)\n", PUSHER_VERSION, pusher_version(0), PUSHER_PROTOCOL_VERSION);
    return CLI_EXIT_OK;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    if (argc >= 3 && strcmp(cmd, "help") == 0) {
      char help[] = "--help";
      char *sub[] = {argv[2], help, NULL};
      if (strcmp(argv[2], "listen") == 0) return cli_listen(2, sub);
      if (strcmp(argv[2], "trigger") == 0) return cli_trigger(2, sub);
      if (strcmp(argv[2], "bench") == 0) return cli_bench(2, sub);
      fprintf(stderr, "pusher: unknown command '%s'\n", argv[2]);
      usage(stderr);
      return CLI_EXIT_USAGE;
    }
    usage(stdout);
    return CLI_EXIT_OK;
  }
  fprintf(stderr, "pusher: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return CLI_EXIT_USAGE;
}
