/* pusherd server core: allocation, logging, a string map, shared frames. */
#include "core/pd_util.h"
#include "core/mem.h"
#include "core/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ alloc */
void *pd_alloc(size_t n) { return pusher__malloc(NULL, n ? n : 1); }
void *pd_zalloc(size_t n) { return pusher__calloc(NULL, 1, n ? n : 1); }
void *pd_realloc(void *p, size_t n) { return pusher__realloc(NULL, p, n ? n : 1); }
void pd_free(void *p) { pusher__free(NULL, p); }
char *pd_strdup(const char *s) { return pusher__strdup(NULL, s); }
char *pd_strndup(const char *s, size_t n) { return pusher__strndup(NULL, s, n); }

/* ------------------------------------------------------------------ log */
int pd_log_level = PD_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int pd_log_level_parse(const char *s) {
  for (int i = 0; i <= PD_LOG_OFF; i++)
    if (strcasecmp(s, level_names[i]) == 0) return i;
  if (strcasecmp(s, "warning") == 0) return PD_LOG_WARN;
  return -1;
}

void (*pd_log_writer)(int level, const char *line);

const char *pd_log_level_name(int level) {
  return level >= 0 && level <= PD_LOG_OFF ? level_names[level] : "?";
}

void pd_log(int level, const char *fmt, ...) {
  if (level < pd_log_level || level >= PD_LOG_OFF || !pd_log_writer) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  pd_log_writer(level, line);
}

/* ------------------------------------------------------------------ map */
static uint64_t hash_str(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

void *pd_map_get(const pd_map *m, const char *key) {
  if (!m->nb) return NULL;
  size_t kl = strlen(key);
  for (pd_map_ent *e = m->b[hash_str(key, kl) & (m->nb - 1)]; e; e = e->next)
    if (e->klen == kl && memcmp(e->key, key, kl) == 0) return e->val;
  return NULL;
}

static int map_grow(pd_map *m) {
  size_t nb = m->nb ? m->nb * 2 : 16;
  pd_map_ent **b = pd_zalloc(nb * sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < m->nb; i++) {
    pd_map_ent *e = m->b[i];
    while (e) {
      pd_map_ent *nx = e->next;
      size_t j = hash_str(e->key, e->klen) & (nb - 1);
      e->next = b[j];
      b[j] = e;
      e = nx;
    }
  }
  pd_free(m->b);
  m->b = b;
  m->nb = nb;
  return 0;
}

int pd_map_put(pd_map *m, const char *key, void *val) {
  size_t kl = strlen(key);
  if (m->nb) {
    for (pd_map_ent *e = m->b[hash_str(key, kl) & (m->nb - 1)]; e; e = e->next)
      if (e->klen == kl && memcmp(e->key, key, kl) == 0) {
        e->val = val;
        return 0;
      }
  }
  if (m->n + 1 > m->nb && map_grow(m) != 0) return -1;
  pd_map_ent *e = pd_alloc(sizeof *e + kl + 1);
  if (!e) return -1;
  memcpy(e->key, key, kl + 1);
  e->klen = kl;
  e->val = val;
  size_t j = hash_str(key, kl) & (m->nb - 1);
  e->next = m->b[j];
  m->b[j] = e;
  m->n++;
  return 0;
}

void *pd_map_del(pd_map *m, const char *key) {
  if (!m->nb) return NULL;
  size_t kl = strlen(key);
  pd_map_ent **pp = &m->b[hash_str(key, kl) & (m->nb - 1)];
  for (; *pp; pp = &(*pp)->next) {
    pd_map_ent *e = *pp;
    if (e->klen == kl && memcmp(e->key, key, kl) == 0) {
      void *v = e->val;
      *pp = e->next;
      pd_free(e);
      m->n--;
      return v;
    }
  }
  return NULL;
}

void pd_map_free(pd_map *m) {
  for (size_t i = 0; i < m->nb; i++) {
    pd_map_ent *e = m->b[i];
    while (e) {
      pd_map_ent *nx = e->next;
      pd_free(e);
      e = nx;
    }
  }
  pd_free(m->b);
  memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ frames */
pd_msg *pd_msg_raw(const void *bytes, size_t len) {
  pd_msg *m = pd_alloc(sizeof *m + len);
  if (!m) return NULL;
  m->refs = 1;
  m->len = len;
  if (len) memcpy(m->data, bytes, len);
  return m;
}

pd_msg *pd_msg_frame(const char *payload, size_t len) {
  uint8_t hdr[16];
  size_t hl = pusher__ws_frame_header(hdr, 0x1, len);
  pd_msg *m = pd_alloc(sizeof *m + hl + len);
  if (!m) return NULL;
  m->refs = 1;
  m->len = hl + len;
  memcpy(m->data, hdr, hl);
  if (len) memcpy(m->data + hl, payload, len);
  return m;
}

pd_msg *pd_msg_json(json_t *obj) {
  char *s = json_dumps(obj, JSON_COMPACT);
  if (!s) return NULL;
  pd_msg *m = pd_msg_frame(s, strlen(s));
  free(s); /* jansson allocates with its own (libc) allocator */
  return m;
}

void pd_msg_ref(pd_msg *m) { m->refs++; }
void pd_msg_unref(pd_msg *m) {
  if (m && --m->refs == 0) pd_free(m);
}

