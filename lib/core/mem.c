#include "core/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *pusher__malloc(const pusher_mem *m, size_t n) {
  if (m && m->malloc) return m->malloc(n ? n : 1, m->user);
  return malloc(n ? n : 1);
}

void *pusher__calloc(const pusher_mem *m, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  if (m && m->calloc) return m->calloc(n ? n : 1, size ? size : 1, m->user);
  if (m && m->malloc) {
    size_t total = n * size;
    void *p = m->malloc(total ? total : 1, m->user);
    if (p) memset(p, 0, total);
    return p;
  }
  return calloc(n ? n : 1, size ? size : 1);
}

void *pusher__realloc(const pusher_mem *m, void *p, size_t n) {
  if (m && m->realloc) return m->realloc(p, n ? n : 1, m->user);
  return realloc(p, n ? n : 1);
}

void pusher__free(const pusher_mem *m, void *p) {
  if (!p) return;
  if (m && m->free) m->free(p, m->user);
  else free(p);
}

char *pusher__strndup(const pusher_mem *m, const char *s, size_t n) {
  if (!s) return NULL;
  char *d = pusher__malloc(m, n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

char *pusher__strdup(const pusher_mem *m, const char *s) {
  return s ? pusher__strndup(m, s, strlen(s)) : NULL;
}

void pusher__mem_copy(pusher_mem *dst, const pusher_mem *src) {
  if (src) *dst = *src;
  else memset(dst, 0, sizeof *dst);
}

void pusher__buf_init(pusher__buf *b, const pusher_mem *mem, size_t cap) {
  b->mem = mem;
  b->data = NULL;
  b->len = b->alloc = 0;
  b->cap = cap ? cap : SIZE_MAX;
}

void pusher__buf_free(pusher__buf *b) {
  pusher__free(b->mem, b->data);
  b->data = NULL;
  b->len = b->alloc = 0;
}

static int buf_reserve(pusher__buf *b, size_t extra) {
  if (extra > b->cap || b->len > b->cap - extra) return PUSHER_ERR_TOO_LARGE;
  size_t need = b->len + extra;
  if (need <= b->alloc) return 0;
  size_t n = b->alloc ? b->alloc : 256;
  while (n < need) n = n > SIZE_MAX / 2 ? need : n * 2;
  uint8_t *p = pusher__realloc(b->mem, b->data, n);
  if (!p) return PUSHER_ERR_NOMEM;
  b->data = p;
  b->alloc = n;
  return 0;
}

int pusher__buf_append(pusher__buf *b, const void *p, size_t n) {
  if (!n) return 0;
  int rv = buf_reserve(b, n);
  if (rv) return rv;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int pusher__buf_appendf(pusher__buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return PUSHER_ERR_INTERNAL;
  int rv = buf_reserve(b, (size_t)n + 1);
  if (rv) return rv;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void pusher__buf_consume(pusher__buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void pusher__buf_reset(pusher__buf *b) { b->len = 0; }
