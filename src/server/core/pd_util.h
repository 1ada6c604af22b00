/* pusherd server core: allocation, logging, a string map and shared
 * WebSocket frames.  No I/O: log lines go to a writer the program installs
 * (pd_log_writer); nothing here reads a clock. */
#ifndef PD_UTIL_H
#define PD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* ------------------------------------------------------------------ alloc */
/* Through lib/core/mem.h (libc by default). */
void *pd_alloc(size_t n);
void *pd_zalloc(size_t n);
void *pd_realloc(void *p, size_t n);
void pd_free(void *p);
char *pd_strdup(const char *s);
char *pd_strndup(const char *s, size_t n);

/* ------------------------------------------------------------------ log */
enum { PD_LOG_DEBUG = 0, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR, PD_LOG_OFF };
extern int pd_log_level;
/* Receives each formatted line (level, text without newline).  NULL (the
 * default) drops them; the program installs one that timestamps and
 * writes to stderr (net/pd_net.h: pd_log_stderr). */
extern void (*pd_log_writer)(int level, const char *line);
int pd_log_level_parse(const char *s); /* -1 when unknown */
const char *pd_log_level_name(int level);
void pd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ map */
/* String-keyed chained hash map (keys copied). */
typedef struct pd_map_ent {
  struct pd_map_ent *next;
  void *val;
  size_t klen;
  char key[];
} pd_map_ent;
typedef struct pd_map {
  pd_map_ent **b;
  size_t nb, n;
} pd_map;
void *pd_map_get(const pd_map *m, const char *key);
int pd_map_put(pd_map *m, const char *key, void *val);   /* 0, or -1 on OOM */
void *pd_map_del(pd_map *m, const char *key);            /* returns old val */
void pd_map_free(pd_map *m);
/* iterate: for (i...) for (e = m->b[i]; e; e = e->next) */

/* ------------------------------------------------------------------ msgs */
/* A complete server WebSocket frame (header + payload), shared by refcount
 * among every socket it is queued to. */
typedef struct pd_msg {
  unsigned refs;
  size_t len;
  uint8_t data[];
} pd_msg;
pd_msg *pd_msg_frame(const char *payload, size_t len); /* text frame */
pd_msg *pd_msg_raw(const void *bytes, size_t len);     /* bytes as-is */
pd_msg *pd_msg_json(json_t *obj);                      /* compact JSON text frame */
void pd_msg_ref(pd_msg *m);
void pd_msg_unref(pd_msg *m);

#endif
