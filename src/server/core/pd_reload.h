/* pusherd server core: applying a new configuration to a running core
 * (SIGHUP re-reads --config; main builds and validates the new pd_config,
 * then calls pd_reload_apply).  Semantics (docs/operations.md):
 *   - apps are matched by id;
 *   - an app that is gone: its connections are closed with 4003, it is
 *     marked removed (new connections to its key get 4001, HTTP API calls
 *     404);
 *   - an app now disabled: its connections are closed with 4003 (new
 *     ones get 4003, HTTP API calls 403);
 *   - a new app is served at once;
 *   - every other setting of an app (secret, key, limits, options) applies
 *     to the next message or request: old signatures are refused once the
 *     secret changed; connections are never closed for it (an app whose
 *     max_connections went down keeps its connections over the quota);
 *   - top-level settings that need a restart (host, port, redis_url,
 *     metrics_port, metrics_host) keep their running values, with a warning;
 *     max_output_queue_bytes, shutdown_grace_ms and header_timeout_ms
 *     apply at once.
 * Other apps' connections are untouched. */
#ifndef PD_RELOAD_H
#define PD_RELOAD_H

#include <stddef.h>

#include "core/pd_core.h"

typedef struct pd_reload_summary {
  size_t added, removed, disabled, enabled, changed, closed;
} pd_reload_summary;

/* live: the configuration core runs on (core->cfg); next: a validated new
 * one.  Afterwards live holds the new settings (same address) and next the
 * old ones, for the caller to free with pd_config_free once every module
 * that keeps pointers into the configuration has re-pointed them (main.c's
 * reload hooks).  Removed apps keep a copy of their settings
 * (pd_app_cfg_clone, which must deep-copy every owned field).  Cannot fail except
 * out of memory (-1: nothing changed). */
int pd_reload_apply(pd_core *core, pd_config *live, pd_config *next, pd_reload_summary *sum);

#endif
