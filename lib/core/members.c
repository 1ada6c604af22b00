/* Presence members bookkeeping (see members.h). */
#include "core/members.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include <pusher/channels.h>
#include "core/proto.h"

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t whylen, const char *fmt, ...) {
  if (!why || whylen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

void pusher__members_init(pusher__members *m, const pusher_mem *mem) {
  memset(m, 0, sizeof *m);
  m->mem = mem;
}

static void member_clear(const pusher_mem *mem, pusher__member *x) {
  pusher__free(mem, x->id);
  pusher__free(mem, x->info_json);
  x->id = NULL;
  x->info_json = NULL;
}

static void clear_set(pusher__members *m) {
  for (size_t i = 0; i < m->n; i++) member_clear(m->mem, &m->v[i]);
  pusher__free(m->mem, m->v);
  m->v = NULL;
  m->n = m->alloc = 0;
}

void pusher__members_reset(pusher__members *m) {
  clear_set(m);
  member_clear(m->mem, &m->me);
  m->loaded = 0;
}

void pusher__members_free(pusher__members *m) { pusher__members_reset(m); }

int pusher__members_id_text(const json_t *v, char *out, size_t outlen) {
  if (json_is_string(v)) {
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || n > PUSHER__MEMBER_ID_MAX || n >= outlen || strlen(s) != n) return PUSHER_ERR_PROTO;
    memcpy(out, s, n + 1);
    return 0;
  }
  if (json_is_integer(v)) {
    int k = snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return k > 0 && (size_t)k < outlen ? 0 : PUSHER_ERR_PROTO;
  }
  return PUSHER_ERR_PROTO;
}

/* Compact JSON text of v, or NULL in *out when v is NULL (absent). */
static int info_text(const pusher_mem *mem, const json_t *v, char **out) {
  *out = NULL;
  if (!v) return 0;
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER;
  size_t n = json_dumpb(v, NULL, 0, flags);
  if (n == 0) return PUSHER_ERR_NOMEM;
  char *s = pusher__malloc(mem, n + 1);
  if (!s) return PUSHER_ERR_NOMEM;
  if (json_dumpb(v, s, n, flags) != n) {
    pusher__free(mem, s);
    return PUSHER_ERR_INTERNAL;
  }
  s[n] = '\0';
  *out = s;
  return 0;
}

static json_t *parse_object(const char *data, size_t len, const char *what, int *err, char *why,
                            size_t whylen) {
  if (!data) {
    *err = PUSHER_ERR_PROTO;
    set_why(why, whylen, "%s: no data", what);
    return NULL;
  }
  if (!pusher__json_depth_ok(data, len, PUSHER__JSON_MAX_DEPTH)) {
    *err = PUSHER_ERR_JSON;
    set_why(why, whylen, "%s: JSON nested too deep", what);
    return NULL;
  }
  json_error_t jerr;
  json_t *root = json_loadb(data, len, JSON_DECODE_ANY, &jerr);
  if (!root) {
    *err = PUSHER_ERR_JSON;
    set_why(why, whylen, "%s: invalid JSON (%s)", what, jerr.text);
    return NULL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    *err = PUSHER_ERR_PROTO;
    set_why(why, whylen, "%s: not a JSON object", what);
    return NULL;
  }
  return root;
}

static size_t find(const pusher__members *m, const char *id) {
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->v[i].id, id) == 0) return i;
  return SIZE_MAX;
}

int pusher__members_set_me(pusher__members *m, const char *channel_data, size_t len, char *why,
                           size_t whylen) {
  int err = 0;
  json_t *root = parse_object(channel_data, len, "channel_data", &err, why, whylen);
  if (!root) return PUSHER_ERR_PROTO;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  char *idc = NULL, *info = NULL;
  int rc = PUSHER_ERR_PROTO;
  if (pusher__members_id_text(json_object_get(root, "user_id"), id, sizeof id) != 0) {
    set_why(why, whylen, "channel_data: user_id must be a non-empty string (at most %d bytes) or an integer",
            PUSHER__MEMBER_ID_MAX);
    goto done;
  }
  rc = PUSHER_ERR_NOMEM;
  if (!(idc = pusher__strdup(m->mem, id))) goto done;
  if (info_text(m->mem, json_object_get(root, "user_info"), &info) != 0) goto done;
  member_clear(m->mem, &m->me);
  m->me.id = idc;
  m->me.info_json = info;
  idc = info = NULL;
  rc = 0;
done:
  if (rc == PUSHER_ERR_NOMEM) set_why(why, whylen, "out of memory");
  pusher__free(m->mem, idc);
  pusher__free(m->mem, info);
  json_decref(root);
  return rc;
}

int pusher__members_load(pusher__members *m, const char *data, size_t len, char *why, size_t whylen) {
  int err = 0;
  json_t *root = parse_object(data, len, "presence data", &err, why, whylen);
  if (!root) return err;
  int rc = PUSHER_ERR_PROTO;
  pusher__member *v = NULL;
  size_t n = 0;
  json_t *pres = json_object_get(root, "presence");
  if (!json_is_object(pres)) {
    set_why(why, whylen, "presence data: \"presence\" missing or not an object");
    goto done;
  }
  json_t *hash = json_object_get(pres, "hash");
  json_t *ids = json_object_get(pres, "ids");
  json_t *count = json_object_get(pres, "count");
  if (hash && !json_is_object(hash)) {
    set_why(why, whylen, "presence data: \"hash\" is not an object");
    goto done;
  }
  if (ids && !json_is_array(ids)) {
    set_why(why, whylen, "presence data: \"ids\" is not an array");
    goto done;
  }
  if (count && !json_is_integer(count)) {
    set_why(why, whylen, "presence data: \"count\" is not an integer");
    goto done;
  }
  if (!hash && !ids) {
    set_why(why, whylen, "presence data: neither \"hash\" nor \"ids\"");
    goto done;
  }
  size_t total = hash ? json_object_size(hash) : json_array_size(ids);
  if (total > PUSHER__MEMBERS_MAX) {
    rc = PUSHER_ERR_LIMIT;
    set_why(why, whylen, "presence data: %zu members is over the cap of %d", total, PUSHER__MEMBERS_MAX);
    goto done;
  }
  if (total && !(v = pusher__calloc(m->mem, total, sizeof *v))) goto nomem;
  if (hash) {
    const char *key;
    json_t *val;
    json_object_foreach(hash, key, val) {
      size_t klen = strlen(key);
      if (klen == 0 || klen > PUSHER__MEMBER_ID_MAX) {
        set_why(why, whylen, "presence data: a user id is empty or longer than %d bytes", PUSHER__MEMBER_ID_MAX);
        goto done;
      }
      if (!(v[n].id = pusher__strdup(m->mem, key))) goto nomem;
      n++;
      if (info_text(m->mem, val, &v[n - 1].info_json) != 0) goto nomem;
    }
  } else {
    /* No hash: ids only, user_info unknown.  Duplicates collapse. */
    size_t i;
    json_t *val;
    json_array_foreach(ids, i, val) {
      char id[PUSHER__MEMBER_ID_MAX + 1];
      if (pusher__members_id_text(val, id, sizeof id) != 0) {
        set_why(why, whylen, "presence data: ids[%zu] is not a valid user id", i);
        goto done;
      }
      int dup = 0;
      for (size_t k = 0; k < n && !dup; k++) dup = strcmp(v[k].id, id) == 0;
      if (dup) continue;
      if (!(v[n].id = pusher__strdup(m->mem, id))) goto nomem;
      n++;
    }
  }
  /* me's user_info as the server knows it (copied before committing). */
  char *me_info = NULL;
  if (m->me.id) {
    for (size_t i = 0; i < n; i++) {
      if (strcmp(v[i].id, m->me.id) == 0 && v[i].info_json) {
        if (!(me_info = pusher__strdup(m->mem, v[i].info_json))) goto nomem;
        break;
      }
    }
  }
  /* Commit. */
  if (me_info) {
    pusher__free(m->mem, m->me.info_json);
    m->me.info_json = me_info;
  }
  clear_set(m);
  m->v = v;
  m->n = n;
  m->alloc = total;
  v = NULL;
  n = 0;
  m->loaded = 1;
  rc = 0;
  goto done;
nomem:
  rc = PUSHER_ERR_NOMEM;
  set_why(why, whylen, "out of memory");
done:
  for (size_t i = 0; i < n; i++) member_clear(m->mem, &v[i]);
  pusher__free(m->mem, v);
  json_decref(root);
  return rc;
}

int pusher__members_add(pusher__members *m, const char *data, size_t len, int *emit,
                        const pusher__member **member, char *why, size_t whylen) {
  *emit = 0;
  if (member) *member = NULL;
  int err = 0;
  json_t *root = parse_object(data, len, "member_added", &err, why, whylen);
  if (!root) return err;
  int rc = PUSHER_ERR_PROTO;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  char *info = NULL, *idc = NULL;
  if (pusher__members_id_text(json_object_get(root, "user_id"), id, sizeof id) != 0) {
    set_why(why, whylen, "member_added: user_id missing or invalid");
    goto done;
  }
  rc = 0;
  if (!m->loaded) goto done; /* the coming subscription_succeeded has the full set */
  rc = PUSHER_ERR_NOMEM;
  if (info_text(m->mem, json_object_get(root, "user_info"), &info) != 0) goto done;
  size_t i = find(m, id);
  if (i != SIZE_MAX) {
    pusher__free(m->mem, m->v[i].info_json);
    m->v[i].info_json = info;
    info = NULL;
    if (member) *member = &m->v[i];
    rc = 0;
    goto done;
  }
  if (m->n >= PUSHER__MEMBERS_MAX) {
    rc = PUSHER_ERR_LIMIT;
    set_why(why, whylen, "member_added: over the cap of %d members", PUSHER__MEMBERS_MAX);
    goto done;
  }
  if (m->n == m->alloc) {
    size_t na = m->alloc ? m->alloc * 2 : 8;
    pusher__member *nv = pusher__realloc(m->mem, m->v, na * sizeof *nv);
    if (!nv) goto done;
    m->v = nv;
    m->alloc = na;
  }
  if (!(idc = pusher__strdup(m->mem, id))) goto done;
  m->v[m->n].id = idc;
  m->v[m->n].info_json = info;
  idc = info = NULL;
  if (member) *member = &m->v[m->n];
  m->n++;
  *emit = 1;
  rc = 0;
done:
  if (rc == PUSHER_ERR_NOMEM) set_why(why, whylen, "out of memory");
  pusher__free(m->mem, info);
  pusher__free(m->mem, idc);
  json_decref(root);
  return rc;
}

int pusher__members_remove(pusher__members *m, const char *data, size_t len, int *emit,
                           char *removed_id, char *why, size_t whylen) {
  *emit = 0;
  if (removed_id) removed_id[0] = '\0';
  int err = 0;
  json_t *root = parse_object(data, len, "member_removed", &err, why, whylen);
  if (!root) return err;
  char id[PUSHER__MEMBER_ID_MAX + 1];
  int rc = PUSHER_ERR_PROTO;
  if (pusher__members_id_text(json_object_get(root, "user_id"), id, sizeof id) != 0) {
    set_why(why, whylen, "member_removed: user_id missing or invalid");
    goto done;
  }
  rc = 0;
  size_t i = m->loaded ? find(m, id) : SIZE_MAX;
  if (i == SIZE_MAX) goto done;
  member_clear(m->mem, &m->v[i]);
  memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof *m->v);
  m->n--;
  *emit = 1;
  if (removed_id) memcpy(removed_id, id, strlen(id) + 1);
done:
  json_decref(root);
  return rc;
}

size_t pusher__members_count(const pusher__members *m) { return m->n; }

const pusher__member *pusher__members_get(const pusher__members *m, const char *id) {
  if (!id) return NULL;
  size_t i = find(m, id);
  return i == SIZE_MAX ? NULL : &m->v[i];
}

const pusher__member *pusher__members_at(const pusher__members *m, size_t i) {
  return i < m->n ? &m->v[i] : NULL;
}

const pusher__member *pusher__members_me(const pusher__members *m) {
  return m->me.id ? &m->me : NULL;
}

/* ------------------------------------------------------------------ public snapshot */

struct pusher_members {
  pusher_mem mem;
  size_t n;
  pusher_member *v;
  pusher_member me;
  int has_me;
  /* then n pusher_member, then the strings */
};

static size_t str_size(const char *s) { return s ? strlen(s) + 1 : 0; }

static const char *put_str(char **p, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  memcpy(*p, s, n);
  const char *r = *p;
  *p += n;
  return r;
}

int pusher__members_snapshot(const pusher__members *m, const pusher_mem *mem, pusher_members **out) {
  *out = NULL;
  size_t strings = str_size(m->me.id) + str_size(m->me.info_json);
  for (size_t i = 0; i < m->n; i++) strings += str_size(m->v[i].id) + str_size(m->v[i].info_json);
  size_t total = sizeof(pusher_members) + m->n * sizeof(pusher_member) + strings;
  pusher_members *s = pusher__malloc(mem, total);
  if (!s) return PUSHER_ERR_NOMEM;
  pusher__mem_copy(&s->mem, mem);
  s->n = m->n;
  s->v = (pusher_member *)(s + 1);
  char *p = (char *)(s->v + m->n);
  for (size_t i = 0; i < m->n; i++) {
    s->v[i].user_id = put_str(&p, m->v[i].id);
    s->v[i].user_info = put_str(&p, m->v[i].info_json);
  }
  s->has_me = m->me.id != NULL;
  s->me.user_id = put_str(&p, m->me.id);
  s->me.user_info = put_str(&p, m->me.info_json);
  *out = s;
  return 0;
}

size_t pusher_members_count(const pusher_members *m) { return m ? m->n : 0; }

const pusher_member *pusher_members_at(const pusher_members *m, size_t i) {
  return m && i < m->n ? &m->v[i] : NULL;
}

const pusher_member *pusher_members_get(const pusher_members *m, const char *user_id) {
  if (!m || !user_id) return NULL;
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->v[i].user_id, user_id) == 0) return &m->v[i];
  return NULL;
}

const pusher_member *pusher_members_me(const pusher_members *m) { return m && m->has_me ? &m->me : NULL; }

void pusher_members_free(pusher_members *m) {
  if (!m) return;
  pusher_mem mem = m->mem;
  pusher__free(&mem, m);
}
