/* Argument helpers shared by the `pusher` subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "pusher %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'pusher %s --help'.\n", cmd);
  return CLI_EXIT_USAGE;
}

const char *cli_env(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

int cli_parse_seconds(const char *s, double *out) {
  char *end = NULL;
  if (s == NULL || *s == '\0') return -1;
  /* Plain decimal only: no hex floats, inf or nan, no leading blanks. */
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
          *p == '-'))
      return -1;
  errno = 0;
  double d = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(d) || d < 0) return -1;
  *out = d;
  return 0;
}

int cli_parse_long(const char *s, long min, long max, long *out) {
  char *end = NULL;
  if (s == NULL || *s == '\0') return -1;
  for (const char *p = s; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (p == s && *p == '-'))) return -1;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

int cli_parse_port(const char *s, int *out) {
  long v;
  if (cli_parse_long(s, 1, 65535, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

int cli_strv_push(cli_strv *l, char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) return -1;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return 0;
}

void cli_strv_free(cli_strv *l) {
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

int cli_split_param(char *s, char **k, char **v) {
  char *eq = strchr(s, '=');
  if (eq == NULL || eq == s) return -1;
  *eq = '\0';
  *k = s;
  *v = eq + 1;
  return 0;
}

static int is_tchar(unsigned char c) {
  /* RFC 9110 token characters. */
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int cli_split_header(char *s, char **name, char **value) {
  char *colon = strchr(s, ':');
  if (colon == NULL || colon == s) return -1;
  for (char *p = s; p < colon; p++)
    if (!is_tchar((unsigned char)*p)) return -1;
  *colon = '\0';
  char *v = colon + 1;
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) v[--n] = '\0';
  if (strpbrk(v, "\r\n") != NULL) return -1;
  *name = s;
  *value = v;
  return 0;
}

/* The library names options as in the C API; say the command-line flags. */
void cli_option_names(const char *in, char *out, size_t outlen) {
  static const char *const names[][2] = {
      {"max_reconnect_delay", "--max-reconnect-delay"},
      {"reconnect_delay", "--reconnect-delay"},
      {"activity_timeout", "--activity-timeout"},
      {"pong_timeout", "--pong-timeout"},
      {"unavailable_timeout", "--unavailable-timeout"},
      {"connect_timeout", "--connect-timeout"},
      {"ws_host", "--host"},
      {"ws_port", "--port"},
      {"wss_port", "--port"},
      {"cluster", "--cluster"},
      {"auth_params", "--auth-param"},
      {"auth_headers", "--auth-header"},
      {"ca_file/ca_path", "--ca-file/--ca-path"},
      {"encryption_master_key", "--encryption-master-key"},
      {"auth_origin", "--auth-origin"},
  };
  size_t o = 0;
  while (*in && o + 1 < outlen) {
    size_t i, k = sizeof names / sizeof names[0];
    for (i = 0; i < k; i++) {
      size_t n = strlen(names[i][0]);
      if (strncmp(in, names[i][0], n) == 0) break;
    }
    if (i < k) {
      int w = snprintf(out + o, outlen - o, "%s", names[i][1]);
      if (w < 0 || (size_t)w >= outlen - o) break;
      o += (size_t)w;
      in += strlen(names[i][0]);
    } else {
      out[o++] = *in++;
    }
  }
  out[o] = '\0';
}
