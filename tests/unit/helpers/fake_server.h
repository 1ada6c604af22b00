/* A fake Pusher server for the engine's unit tests and fuzzer: plays the
 * server side of one pusher__conn over its sans-I/O interface.
 *
 * It takes the engine's transport requests, reads the client's bytes,
 * validates the HTTP Upgrade request and answers 101 with the correct
 * Sec-WebSocket-Accept (computed here with OpenSSL, independently of ws.c),
 * decodes the client's masked frames to text and encodes unmasked server
 * frames. */
#ifndef TEST_FAKE_SERVER_H
#define TEST_FAKE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/conn.h"

#define FS_MAX_MSGS 4096

typedef struct fake_server {
  pusher__conn *c;
  uint64_t gen;          /* generation of the transport the server plays */
  int open;              /* OPEN seen for gen and not closed */
  int upgraded;          /* 101 sent */
  int opens;             /* number of OPEN requests seen */
  int closes;            /* number of CLOSE requests seen */
  int last_tls;
  uint16_t last_port;
  char last_host[256];
  char path[1024];       /* request target of the last upgrade */
  char host_header[300];
  char key[64];
  int bad_request;       /* nonzero when the upgrade request was invalid */
  uint8_t *in;           /* unparsed client bytes */
  size_t inlen, incap;
  char *msgs[FS_MAX_MSGS]; /* client text messages, oldest first */
  size_t nmsgs;
  int close_code;        /* code of the last client close frame, -1 none */
  int client_frames;
  int bad_frames;
} fake_server;

void fs_init(fake_server *fs, pusher__conn *c);
void fs_free(fake_server *fs);
/* Forget the recorded client messages. */
void fs_clear_msgs(fake_server *fs);

/* Take the engine's pending transport request and record it.  Returns the action. */
int fs_io(fake_server *fs);
/* io_opened for the current generation, read the upgrade request, validate
 * it and answer 101.  Returns 0 when the request was valid. */
int fs_accept(fake_server *fs, uint64_t now);
/* Read pending client bytes and decode them (handshake request, frames). */
void fs_pull(fake_server *fs);
/* io_want + accept + connection_established{socket_id, activity_timeout}. */
int fs_connect(fake_server *fs, uint64_t now, const char *socket_id, int activity_timeout);

/* Frame encoding: a malloc'd unmasked frame (FIN set). */
uint8_t *fs_frame(uint8_t opcode, const void *payload, size_t len, size_t *outlen);
void fs_send_raw(fake_server *fs, const void *bytes, size_t len, uint64_t now);
void fs_send_text(fake_server *fs, const char *text, uint64_t now);
void fs_send_close(fake_server *fs, uint16_t code, const char *reason, uint64_t now);
/* io_failed for the current generation. */
void fs_drop(fake_server *fs, int err, uint64_t now);

/* Number of recorded client messages containing needle (pulls pending bytes first). */
size_t fs_count(fake_server *fs, const char *needle);
const char *fs_last(fake_server *fs);

/* Sec-WebSocket-Accept value for key (OpenSSL SHA-1 + base64). */
void fs_accept_key(const char *key, char out[64]);

#endif
