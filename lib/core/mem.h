/* Internal allocation helpers.  Every allocation in the library goes through
 * a pusher_mem (NULL = libc); no other file calls malloc/free directly. */
#ifndef PUSHER_CORE_MEM_H
#define PUSHER_CORE_MEM_H

#include <pusher/common.h>

void *pusher__malloc(const pusher_mem *m, size_t n);
void *pusher__calloc(const pusher_mem *m, size_t n, size_t size); /* checks n*size overflow */
void *pusher__realloc(const pusher_mem *m, void *p, size_t n);
void pusher__free(const pusher_mem *m, void *p);
char *pusher__strdup(const pusher_mem *m, const char *s);          /* NULL in => NULL out */
char *pusher__strndup(const pusher_mem *m, const char *s, size_t n);
/* Copy *src into *dst (for storing a caller's allocator); NULL => libc. */
void pusher__mem_copy(pusher_mem *dst, const pusher_mem *src);

/* Growable byte buffer with a hard cap (cap 0 = SIZE_MAX). */
typedef struct pusher__buf {
  const pusher_mem *mem;
  uint8_t *data;
  size_t len, alloc, cap;
} pusher__buf;

void pusher__buf_init(pusher__buf *b, const pusher_mem *mem, size_t cap);
void pusher__buf_free(pusher__buf *b);
/* PUSHER_ERR_TOO_LARGE when len+n would exceed cap; PUSHER_ERR_NOMEM. */
int pusher__buf_append(pusher__buf *b, const void *p, size_t n);
int pusher__buf_appendf(pusher__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void pusher__buf_consume(pusher__buf *b, size_t n);
void pusher__buf_reset(pusher__buf *b);

#endif
