/* pusherd server core: a session's output through its sink (frames,
 * pusher:error, close, ping).  The leaf of the core's modules: it calls
 * nothing but the sink and util.  See pd_core.h. */
#include "core/pd_core.h"

#include <stdlib.h>

int pd_session_send(pd_session *s, pd_msg *m) {
  if (s->ended) return -1;
  return s->sink->send(m, s->sink_ud);
}

int pd_session_send_json(pd_session *s, json_t *obj) {
  pd_msg *m = pd_msg_json(obj);
  if (!m) return -1;
  int r = pd_session_send(s, m);
  pd_msg_unref(m);
  return r;
}

static json_t *error_obj(int code, const char *message, const char *channel) {
  json_t *d = json_object();
  json_object_set_new(d, "code", code ? json_integer(code) : json_null());
  json_object_set_new(d, "message", json_string(message));
  json_t *o = json_object();
  json_object_set_new(o, "event", json_string("pusher:error"));
  if (channel) json_object_set_new(o, "channel", json_string(channel));
  json_object_set_new(o, "data", d);
  return o;
}

char *pd_error_json(int code, const char *message, const char *channel) {
  json_t *o = error_obj(code, message, channel);
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return t;
}

void pd_session_send_error(pd_session *s, int code, const char *message, const char *channel) {
  pd_log(PD_LOG_DEBUG, "msg=\"pusher:error\" socket_id=%s code=%d message=\"%s\"", s->socket_id, code,
         message);
  json_t *o = error_obj(code, message, channel);
  pd_session_send_json(s, o);
  json_decref(o);
}

void pd_session_close(pd_session *s, int code, const char *reason) {
  if (s->ended) return;
  s->sink->close(code, reason, s->sink_ud);
}

void pd_session_ping(pd_session *s) {
  json_t *o = json_pack("{s:s,s:{}}", "event", "pusher:ping", "data");
  pd_session_send_json(s, o);
  json_decref(o);
}

