/* pusherd server core: counter helpers (labels of HTTP routes and
 * statuses).  See pd_stats.h. */
#include "core/pd_core.h"

static const char *const route_names[PD_ROUTE_N] = {
    "events", "batch_events", "channels", "channel", "channel_users", "terminate_connections", "health", "other",
};

const char *pd_route_name(int route) {
  return route >= 0 && route < PD_ROUTE_N ? route_names[route] : "other";
}

/* Every status pd_http_status_text knows, then "other". */
static const int statuses[PD_STATUS_N - 1] = {200, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 503, 501};

int pd_status_slot(int status) {
  for (int i = 0; i < PD_STATUS_N - 1; i++)
    if (statuses[i] == status) return i;
  return PD_STATUS_N - 1;
}

int pd_status_of_slot(int slot) { return slot >= 0 && slot < PD_STATUS_N - 1 ? statuses[slot] : 0; }

void pd_stats_http(pd_core *core, int route, int status) {
  if (!core) return;
  if (route < 0 || route >= PD_ROUTE_N) route = PD_ROUTE_OTHER;
  core->stats.http[route][pd_status_slot(status)]++;
}
