/* libFuzzer: raw bytes from a socket into pusherd's HTTP parsing (headers
 * cap, body cap, keep-alive pipelining), routing, REST signature checking
 * and the HTTP API handlers; a WebSocket upgrade continues into the frame
 * parser.  Output is discarded (detached connection).  The first byte
 * splits the input into two reads to exercise partial parsing. */
#include "pusherd.h"

#include <string.h>

static pd_config cfg;
static pd_server srv;
static int inited;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!inited) {
    pd_log_level = PD_LOG_OFF;
    pd_config_init(&cfg);
    pd_config_add_app(&cfg, pd_app_new("app-id", "app-key", "app-secret"));
    pd_server_init(&srv, NULL, &cfg);
    inited = 1;
  }
  if (size == 0) return 0;
  size_t cut = data[0] % (size + 1);
  data++, size--;
  if (cut > size) cut = size;
  pd_conn *c = pd_conn_new_detached(&srv);
  pd_conn_feed(c, data, cut);
  pd_conn_feed(c, data + cut, size - cut);
  pd_conn_destroy(c);
  return 0;
}
