/* Optional Linux network watcher for the libuv runtime.
 *
 * Listens on a NETLINK_ROUTE socket (RTMGRP_LINK | RTMGRP_IPV4_IFADDR |
 * RTMGRP_IPV6_IFADDR) polled with a uv_poll_t.  On every notification it
 * re-evaluates reachability with getifaddrs(): online = at least one
 * interface that is up, not loopback, and has an IPv4/IPv6 address.  The
 * callback runs (on the loop thread) only when that verdict changes.
 * Not available (PUSHER_ERR_UNSUPPORTED) on systems without netlink.
 */
#ifndef PUSHER_UV_NETWATCH_H
#define PUSHER_UV_NETWATCH_H

#include <pusher/common.h>
#include <uv.h>

typedef struct pusher__netwatch pusher__netwatch;
typedef void (*pusher__netwatch_cb)(int online, void *user);

int pusher__netwatch_start(pusher__netwatch **out, uv_loop_t *loop, const pusher_mem *mem,
                           pusher__netwatch_cb cb, void *user);
/* Stop watching; the memory is released in the handle's close callback,
 * after which closed(user) runs (may be NULL).  No cb after this call. */
void pusher__netwatch_stop(pusher__netwatch *w, void (*closed)(void *user));
/* The current verdict (1 online, 0 offline). */
int pusher__netwatch_online(const pusher__netwatch *w);
/* Evaluate reachability now from the interface list. */
int pusher__netwatch_probe(void);

#endif
