/* Linux netlink network watcher.  See netwatch.h. */
#include "uv/netwatch.h"

#include <errno.h>
#include <unistd.h>

#include "core/mem.h"

#ifdef __linux__
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#endif

struct pusher__netwatch {
  uv_poll_t poll;
  const pusher_mem *mem;
  int fd;
  int online;
  pusher__netwatch_cb cb;
  void *user;
  void (*closed)(void *user);
};

int pusher__netwatch_probe(void) {
#ifdef __linux__
  struct ifaddrs *list = NULL;
  if (getifaddrs(&list) != 0) return 1; /* cannot tell: assume online */
  int online = 0;
  for (struct ifaddrs *i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6) continue;
    if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    online = 1;
    break;
  }
  freeifaddrs(list);
  return online;
#else
  return 1;
#endif
}

#ifdef __linux__
static void on_readable(uv_poll_t *h, int status, int events) {
  pusher__netwatch *w = h->data;
  char buf[8192];
  /* Drain every queued notification; their content does not matter, only
   * that something changed. ENOBUFS (overrun) also means "changed". */
  for (;;) {
    ssize_t n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOBUFS) continue;
    break;
  }
  int now = pusher__netwatch_probe();
  if (now != w->online) {
    w->online = now;
    if (w->cb) w->cb(now, w->user);
  }
}
#endif

int pusher__netwatch_start(pusher__netwatch **out, uv_loop_t *loop, const pusher_mem *mem,
                           pusher__netwatch_cb cb, void *user) {
#ifdef __linux__
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return PUSHER_ERR_IO;
  struct sockaddr_nl sa = {0};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    close(fd);
    return PUSHER_ERR_IO;
  }
  pusher__netwatch *w = pusher__calloc(mem, 1, sizeof(*w));
  if (!w) {
    close(fd);
    return PUSHER_ERR_NOMEM;
  }
  w->mem = mem;
  w->fd = fd;
  w->cb = cb;
  w->user = user;
  w->online = pusher__netwatch_probe();
  if (uv_poll_init(loop, &w->poll, fd) != 0) {
    close(fd);
    pusher__free(mem, w);
    return PUSHER_ERR_IO;
  }
  w->poll.data = w;
  uv_poll_start(&w->poll, UV_READABLE, on_readable);
  *out = w;
  return 0;
#else
  (void)out; (void)loop; (void)mem; (void)cb; (void)user;
  return PUSHER_ERR_UNSUPPORTED;
#endif
}

static void on_closed(uv_handle_t *h) {
  pusher__netwatch *w = h->data;
  void (*closed)(void *) = w->closed;
  void *user = w->user;
  close(w->fd);
  pusher__free(w->mem, w);
  if (closed) closed(user);
}

void pusher__netwatch_stop(pusher__netwatch *w, void (*closed)(void *user)) {
  if (!w) return;
  w->cb = NULL;
  w->closed = closed;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

int pusher__netwatch_online(const pusher__netwatch *w) { return w ? w->online : 1; }
