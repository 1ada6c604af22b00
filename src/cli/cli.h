/* The `pusher` command-line tool: shared declarations.
 *
 * Exit status of every subcommand: 0 success, 1 failure at run time (fatal
 * connection error, HTTP error, ...), 2 bad usage (unknown option, bad
 * value, missing argument). */
#ifndef PUSHER_CLI_H
#define PUSHER_CLI_H

#include <stddef.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Subcommands: argv[0] is the subcommand name. */
int cli_listen(int argc, char **argv);
int cli_trigger(int argc, char **argv);
int cli_bench(int argc, char **argv);

/* ---- argument helpers (args.c) ---- */

/* Print "pusher CMD: <message>" and "Try 'pusher CMD --help'." to stderr;
 * returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getenv(name) when set and non-empty, else NULL. */
const char *cli_env(const char *name);
/* A duration in seconds: a finite decimal number >= 0 ("5", "0.25", "1e1").
 * 0 on success, -1 on a malformed or negative value. */
int cli_parse_seconds(const char *s, double *out);
/* A whole decimal number in [min, max].  0 on success, -1 otherwise. */
int cli_parse_long(const char *s, long min, long max, long *out);
/* A TCP port 1..65535. */
int cli_parse_port(const char *s, int *out);

/* A growable list of strings (repeatable options, positional arguments). */
typedef struct cli_strv {
  char **v;
  size_t n, cap;
} cli_strv;
/* Append (no copy: the strings are argv's or static).  -1 on NOMEM. */
int cli_strv_push(cli_strv *l, char *s);
void cli_strv_free(cli_strv *l);

/* Split "K=V" (auth params).  Writes a NUL over '=' and sets *k, *v; -1 when
 * there is no '=' or K is empty. */
int cli_split_param(char *s, char **k, char **v);
/* Split "Name: value" (HTTP header).  -1 when there is no ':', the name is
 * empty or not an HTTP token, or the value contains CR/LF. */
int cli_split_header(char *s, char **name, char **value);

/* Copy in to out, naming options as the command line does ("--host", not
 * the library's "ws_host"): for library messages shown to CLI users. */
void cli_option_names(const char *in, char *out, size_t outlen);

/* ---- `pusher bench` options (parsed in args.c, run in bench.c) ---- */

/* Most events in one batch_events request (Pusher's limit). */
#define CLI_BENCH_BATCH 10

typedef struct cli_bench_args {
  /* connection, as `pusher trigger` and `pusher listen` take them */
  const char *app_id, *key, *secret, *cluster, *host, *ca_file;
  int port; /* 0 = default (443 with TLS, 80 without) */
  int tls, insecure;
  /* the load */
  long subscribers;         /* 0 = publish only */
  long channels;            /* channels PREFIX-0 .. PREFIX-(channels-1) */
  long events;              /* events published in all, event i on channel i % channels */
  double rate;              /* events per second; 0 = as fast as the replies come */
  int batch;                /* batch_events, CLI_BENCH_BATCH events per request */
  long publishers;          /* publishing threads, one HTTP connection each */
  long connect_concurrency; /* subscribers connecting at the same time */
  double connect_timeout;   /* per subscriber connection attempt, seconds */
  double timeout;           /* give up after this long without progress, seconds */
  long payload;             /* pad each event's data with a "p" string of this many bytes */
  long stalled;             /* extra raw subscribers that stop reading (bench.c, "stalled") */
  long threads;             /* event loops (threads) the subscribers are spread over */
  const char *channel_prefix;
  char prefix_buf[32];      /* the default prefix: bench-<random hex> */
  /* measuring and output */
  long server_pid; /* 0 = none */
  int realtime;    /* stamp events with CLOCK_REALTIME instead of CLOCK_MONOTONIC */
  int json;        /* one JSON object on stdout */
  int progress;    /* 1 on, 0 off, -1 = when stderr is a terminal */
} cli_bench_args;

/* Parse `pusher bench` argv (argv[0] is "bench") into a, with environment
 * defaults (PUSHER_APP_ID, PUSHER_APP_KEY, ...).  Returns 0 when the run can
 * start, -1 after printing --help (exit 0), or CLI_EXIT_USAGE after printing
 * the reason. */
int cli_bench_parse(int argc, char **argv, cli_bench_args *a);
extern const char cli_bench_help[];

#endif
