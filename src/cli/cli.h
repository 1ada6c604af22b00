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

#endif
