/* libFuzzer: raw bytes from a socket into pusherd's net layer (HTTP parsing:
 * headers cap, body cap, keep-alive pipelining, the WebSocket upgrade) and
 * from there into the server core (routing, REST signature checking, the
 * HTTP API handlers; after an upgrade, the frame codec and Pusher
 * messages).  Detached connection: what would be written is kept and
 * dropped.  The first byte splits the input into two reads to exercise
 * partial parsing. */
#include "adapter/pd_local.h"
#include "net/pd_net.h"

#include <string.h>

static pd_config cfg;
static pd_core core;
static pd_server srv;
static int inited;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!inited) {
    pd_log_level = PD_LOG_OFF;
    pd_config_init(&cfg);
    pd_config_add_app(&cfg, pd_app_cfg_new("app-id", "app-key", "app-secret"));
    pd_core_init(&core, &cfg, &pd_adapter_local, NULL);
    pd_server_init(&srv, NULL, &cfg, &core);
    inited = 1;
  }
  if (size == 0) return 0;
  size_t cut = data[0] % (size + 1);
  data++, size--;
  if (cut > size) cut = size;
  pd_conn *c = pd_conn_new_detached(&srv);
  pd_conn_feed(c, data, cut);
  pd_conn_feed(c, data + cut, size - cut);
  srv.fake_now_ms += 11000; /* past the header deadline */
  pd_server_tick(&srv);
  pd_conn_destroy(c);
  return 0;
}
