/* Fake Pusher server for unit tests (see fake_server.h). */
#include "fake_server.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void fs_init(fake_server *fs, pusher__conn *c) {
  memset(fs, 0, sizeof *fs);
  fs->c = c;
  fs->close_code = -1;
}

void fs_clear_msgs(fake_server *fs) {
  for (size_t i = 0; i < fs->nmsgs; i++) free(fs->msgs[i]);
  fs->nmsgs = 0;
}

void fs_free(fake_server *fs) {
  fs_clear_msgs(fs);
  free(fs->in);
  fs->in = NULL;
  fs->inlen = fs->incap = 0;
}

void fs_accept_key(const char *key, char out[64]) {
  char buf[128];
  unsigned char md[SHA_DIGEST_LENGTH];
  snprintf(buf, sizeof buf, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  SHA1((const unsigned char *)buf, strlen(buf), md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

int fs_io(fake_server *fs) {
  pusher__io_req r = pusher__conn_io_want(fs->c);
  if (r.action == PUSHER__IO_OPEN) {
    fs->gen = r.gen;
    fs->open = 1;
    fs->upgraded = 0;
    fs->opens++;
    fs->last_tls = r.tls;
    fs->last_port = r.port;
    snprintf(fs->last_host, sizeof fs->last_host, "%s", r.host ? r.host : "");
    fs->inlen = 0;
    /* bytes of the previous transport are gone with it */
    const uint8_t *p;
    size_t n = pusher__conn_io_pending(fs->c, &p);
    if (n) pusher__conn_io_consume(fs->c, n);
  } else if (r.action == PUSHER__IO_CLOSE) {
    fs_pull(fs); /* flush: the close frame, if any */
    if (r.gen == fs->gen) fs->open = 0;
    fs->closes++;
  }
  return r.action;
}

static void in_append(fake_server *fs, const uint8_t *p, size_t n) {
  if (fs->inlen + n > fs->incap) {
    size_t cap = fs->incap ? fs->incap * 2 : 4096;
    while (cap < fs->inlen + n) cap *= 2;
    fs->in = realloc(fs->in, cap);
    fs->incap = cap;
  }
  memcpy(fs->in + fs->inlen, p, n);
  fs->inlen += n;
}

static void in_consume(fake_server *fs, size_t n) {
  memmove(fs->in, fs->in + n, fs->inlen - n);
  fs->inlen -= n;
}

/* Value of header name in the request block (NUL-terminated), or NULL. */
static int header(const char *req, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  const char *p = strstr(req, "\r\n");
  while (p && p[2]) {
    p += 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ') v++;
      const char *e = strstr(v, "\r\n");
      size_t len = e ? (size_t)(e - v) : strlen(v);
      if (len >= outlen) len = outlen - 1;
      memcpy(out, v, len);
      out[len] = '\0';
      return 1;
    }
    p = strstr(p, "\r\n");
  }
  return 0;
}

static void parse_request(fake_server *fs) {
  if (!fs->inlen) return;
  char *end = memmem(fs->in, fs->inlen, "\r\n\r\n", 4);
  if (!end) return;
  size_t n = (size_t)(end - (char *)fs->in) + 4;
  char *req = malloc(n + 1);
  memcpy(req, fs->in, n);
  req[n] = '\0';
  in_consume(fs, n);
  char v[512];
  fs->bad_request = 0;
  if (sscanf(req, "GET %1023s HTTP/1.1\r\n", fs->path) != 1) fs->bad_request |= 1;
  if (!header(req, "Upgrade", v, sizeof v) || strcasecmp(v, "websocket") != 0) fs->bad_request |= 2;
  if (!header(req, "Connection", v, sizeof v) || !strcasestr(v, "upgrade")) fs->bad_request |= 4;
  if (!header(req, "Sec-WebSocket-Version", v, sizeof v) || strcmp(v, "13") != 0) fs->bad_request |= 8;
  if (!header(req, "Sec-WebSocket-Key", fs->key, sizeof fs->key) || strlen(fs->key) != 24) fs->bad_request |= 16;
  if (!header(req, "Host", fs->host_header, sizeof fs->host_header)) fs->bad_request |= 32;
  free(req);
  fs->upgraded = 1; /* request consumed; reply decided by fs_accept */
}

static void parse_frames(fake_server *fs) {
  for (;;) {
    if (fs->inlen < 2) return;
    const uint8_t *b = fs->in;
    uint8_t op = b[0] & 0x0f;
    int masked = b[1] & 0x80;
    uint64_t len = b[1] & 0x7f;
    size_t off = 2;
    if (len == 126) {
      if (fs->inlen < 4) return;
      len = ((uint64_t)b[2] << 8) | b[3];
      off = 4;
    } else if (len == 127) {
      if (fs->inlen < 10) return;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
      off = 10;
    }
    uint8_t mask[4] = {0, 0, 0, 0};
    if (masked) {
      if (fs->inlen < off + 4) return;
      memcpy(mask, b + off, 4);
      off += 4;
    } else {
      fs->bad_frames++; /* client frames must be masked */
    }
    if (fs->inlen - off < len) return;
    char *payload = malloc(len + 1);
    for (uint64_t i = 0; i < len; i++) payload[i] = (char)(b[off + i] ^ mask[i & 3]);
    payload[len] = '\0';
    fs->client_frames++;
    if (!(b[0] & 0x80)) fs->bad_frames++; /* the engine never fragments */
    if (op == 1 && fs->nmsgs < FS_MAX_MSGS) {
      fs->msgs[fs->nmsgs++] = payload;
      payload = NULL;
    } else if (op == 8) {
      fs->close_code = len >= 2 ? (((uint8_t)payload[0] << 8) | (uint8_t)payload[1]) : 1005;
    }
    free(payload);
    in_consume(fs, off + (size_t)len);
  }
}

void fs_pull(fake_server *fs) {
  const uint8_t *p;
  size_t n;
  while ((n = pusher__conn_io_pending(fs->c, &p)) > 0) {
    in_append(fs, p, n);
    pusher__conn_io_consume(fs->c, n);
  }
  if (!fs->upgraded) parse_request(fs);
  if (fs->upgraded) parse_frames(fs);
}

int fs_accept(fake_server *fs, uint64_t now) {
  pusher__conn_io_opened(fs->c, fs->gen, now);
  fs_pull(fs);
  if (!fs->upgraded || fs->bad_request) return -1;
  char acc[64], resp[512];
  fs_accept_key(fs->key, acc);
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n\r\n",
                   acc);
  pusher__conn_io_recv(fs->c, fs->gen, (const uint8_t *)resp, (size_t)n, now);
  fs_pull(fs);
  return 0;
}

int fs_connect(fake_server *fs, uint64_t now, const char *socket_id, int activity_timeout) {
  if (fs_io(fs) != PUSHER__IO_OPEN) return -1;
  if (fs_accept(fs, now) != 0) return -1;
  char msg[256];
  snprintf(msg, sizeof msg,
           "{\"event\":\"pusher:connection_established\",\"data\":\"{\\\"socket_id\\\":\\\"%s\\\",\\\"activity_timeout\\\":%d}\"}",
           socket_id, activity_timeout);
  fs_send_text(fs, msg, now);
  return 0;
}

uint8_t *fs_frame(uint8_t opcode, const void *payload, size_t len, size_t *outlen) {
  uint8_t *f = malloc(len + 10);
  size_t off;
  f[0] = (uint8_t)(0x80 | (opcode & 0x0f));
  if (len < 126) {
    f[1] = (uint8_t)len;
    off = 2;
  } else if (len <= 0xffff) {
    f[1] = 126;
    f[2] = (uint8_t)(len >> 8);
    f[3] = (uint8_t)len;
    off = 4;
  } else {
    f[1] = 127;
    for (int i = 0; i < 8; i++) f[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    off = 10;
  }
  if (len) memcpy(f + off, payload, len);
  *outlen = off + len;
  return f;
}

void fs_send_raw(fake_server *fs, const void *bytes, size_t len, uint64_t now) {
  pusher__conn_io_recv(fs->c, fs->gen, bytes, len, now);
  fs_pull(fs);
}

void fs_send_text(fake_server *fs, const char *text, uint64_t now) {
  size_t n;
  uint8_t *f = fs_frame(1, text, strlen(text), &n);
  fs_send_raw(fs, f, n, now);
  free(f);
}

void fs_send_close(fake_server *fs, uint16_t code, const char *reason, uint64_t now) {
  uint8_t p[128];
  size_t rl = reason ? strlen(reason) : 0;
  if (rl > 120) rl = 120;
  p[0] = (uint8_t)(code >> 8);
  p[1] = (uint8_t)code;
  if (rl) memcpy(p + 2, reason, rl);
  size_t n;
  uint8_t *f = fs_frame(8, p, 2 + rl, &n);
  fs_send_raw(fs, f, n, now);
  free(f);
}

void fs_drop(fake_server *fs, int err, uint64_t now) {
  pusher__conn_io_failed(fs->c, fs->gen, err, "connection reset", now);
  fs->open = 0;
}

size_t fs_count(fake_server *fs, const char *needle) {
  fs_pull(fs);
  size_t n = 0;
  for (size_t i = 0; i < fs->nmsgs; i++) n += strstr(fs->msgs[i], needle) != NULL;
  return n;
}

const char *fs_last(fake_server *fs) {
  fs_pull(fs);
  return fs->nmsgs ? fs->msgs[fs->nmsgs - 1] : "";
}
