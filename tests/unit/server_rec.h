/* Test support for the pusherd server core (src/server/core): a recording
 * sink, so tests see exactly the frames and closes a client would get, and
 * helpers for signed subscribe / sign-in messages and signed REST calls.
 * Header-only (static), included by the server_* unit tests and fuzzers. */
#ifndef SERVER_REC_H
#define SERVER_REC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter/pd_local.h"
#include "core/pd_core.h"
#include "core/mem.h"
#include "core/sign.h"

#define REC_MAX_FRAMES 64

/* One client: a session whose sink records what it is sent. */
typedef struct rec {
  pd_session s;
  char *frames[REC_MAX_FRAMES]; /* text payloads, oldest first */
  size_t n;                      /* recorded (further frames are counted only) */
  size_t total;
  int closes, close_code;
  char close_reason[128];
} rec;

/* The text payload of a server frame (unmasked, FIN, text). */
static inline char *rec_payload(const pd_msg *m) {
  size_t hl = 2, len = m->data[1] & 0x7f;
  if (len == 126) hl = 4, len = ((size_t)m->data[2] << 8) | m->data[3];
  else if (len == 127) {
    hl = 10, len = 0;
    for (int i = 0; i < 8; i++) len = (len << 8) | m->data[2 + i];
  }
  char *t = malloc(len + 1);
  memcpy(t, m->data + hl, len);
  t[len] = 0;
  return t;
}

static inline int rec_send(pd_msg *m, void *ud) {
  rec *r = ud;
  r->total++;
  if (r->n < REC_MAX_FRAMES) r->frames[r->n++] = rec_payload(m);
  return 0;
}

static inline void rec_close(int code, const char *reason, void *ud) {
  rec *r = ud;
  r->closes++;
  r->close_code = code;
  snprintf(r->close_reason, sizeof r->close_reason, "%s", reason ? reason : "");
  pd_session_end(&r->s);
}

static const pd_sink rec_sink = {rec_send, rec_close};

/* A core over cfg (apps already added) on the local adapter, at a fixed
 * time: loop clock 5000 ms, wall clock 1700000000 s; 0 or pd_core_init's
 * error.  Undone by rec_core_stop.  (No cmocka here: fuzz targets include
 * this header too.) */
static inline int rec_core_start(pd_core *core, pd_config *cfg) {
  int r = pd_core_init(core, cfg, &pd_adapter_local, NULL);
  if (r == 0) pd_core_set_time(core, 5000, 1700000000);
  return r;
}
static inline void rec_core_stop(pd_core *core, pd_config *cfg) {
  pd_core_free(core);
  pd_config_free(cfg);
}

static inline void rec_clear(rec *r) {
  for (size_t i = 0; i < r->n; i++) free(r->frames[i]);
  r->n = 0;
  r->total = 0;
}

/* A session on core, opened on "/app/<key>?protocol=7" with fixed
 * randomness: socket ids are "1000000001.<seq*1000003+2>". */
static inline rec *rec_open(pd_core *core, const char *key) {
  rec *r = calloc(1, sizeof *r);
  pd_session_init(&r->s, core, &rec_sink, r);
  char path[256];
  snprintf(path, sizeof path, "/app/%s?protocol=7", key);
  pd_session_open(&r->s, path, 1, 2);
  return r;
}

static inline void rec_free(rec *r) {
  pd_session_end(&r->s);
  rec_clear(r);
  free(r);
}

/* Frame i (from the end when i < 0), or "" when there is none. */
static inline const char *rec_frame(const rec *r, int i) {
  if (i < 0) i += (int)r->n;
  return i >= 0 && (size_t)i < r->n ? r->frames[i] : "";
}

static inline void rec_text(rec *r, const char *t) {
  pd_session_on_text(&r->s, (const uint8_t *)t, strlen(t));
}

/* A correctly signed pusher:subscribe (channel_data NULL: private). */
static inline void rec_subscribe_signed(rec *r, const char *channel, const char *channel_data) {
  char auth[256] = "";
  pusher__sign_channel(r->s.app->cfg->key, r->s.app->cfg->secret, r->s.socket_id, channel, channel_data, auth,
                       sizeof auth);
  json_t *o = json_pack("{s:s,s:{s:s,s:s}}", "event", "pusher:subscribe", "data", "channel", channel, "auth", auth);
  if (!o) return; /* not UTF-8: jansson refuses it (fuzzers get there) */
  if (channel_data) json_object_set_new(json_object_get(o, "data"), "channel_data", json_string(channel_data));
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (t) rec_text(r, t);
  free(t);
}

static inline void rec_signin(rec *r, const char *user_data) {
  char auth[256] = "";
  pusher__sign_user(r->s.app->cfg->key, r->s.app->cfg->secret, r->s.socket_id, user_data, auth, sizeof auth);
  json_t *o = json_pack("{s:s,s:{s:s,s:s}}", "event", "pusher:signin", "data", "auth", auth, "user_data", user_data);
  char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (t) rec_text(r, t);
  free(t);
}

/* A signed HTTP API request at the core's wall clock; the response body
 * is copied into body (NUL-terminated, truncated to bodylen).  Returns the
 * status. */
static inline int rec_rest(pd_core *core, const char *method, const char *path, const char *extra_query,
                           const char *body, char *out, size_t outlen) {
  const pd_app_cfg *app = core->cfg->apps[0];
  char *q = NULL;
  pusher_kv kv[4];
  size_t nkv = 0;
  char eq[256] = "";
  if (extra_query) { /* "k=v&k2=v2", not encoded */
    snprintf(eq, sizeof eq, "%s", extra_query);
    for (char *save = NULL, *t = strtok_r(eq, "&", &save); t && nkv < 4; t = strtok_r(NULL, "&", &save)) {
      char *e = strchr(t, '=');
      *e = 0;
      kv[nkv].name = t, kv[nkv].value = e + 1, nkv++;
    }
  }
  size_t bl = body ? strlen(body) : 0;
  pusher__rest_sign(NULL, method, path, kv, nkv, body, bl, app->key, app->secret, (int64_t)core->wall_s, &q, NULL);
  char url[2048];
  snprintf(url, sizeof url, "%s?%s", path, q);
  pusher__free(NULL, q);
  pd_http_response r;
  pd_rest_handle(core, method, url, strlen(url), body ? body : "", bl, &r);
  snprintf(out, outlen, "%.*s", (int)r.len, r.body ? r.body : "");
  pd_free(r.body);
  return r.status;
}

#endif
