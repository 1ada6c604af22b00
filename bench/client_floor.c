/* client_floor: the syscall floor of bench/client_recv.c's scenario.  A
 * deliberately minimal WebSocket subscriber with no library: blocking
 * connect, the HTTP upgrade, one pusher:subscribe, then the same wait
 * pattern as a libuv client (epoll_wait with a finite timeout, one read of
 * up to 64 KiB per wakeup) and nothing per event but walking the frame
 * headers to count them.  No JSON, no UTF-8 check, no callback: what is
 * left is the kernel's cost of the wakeups and reads, which any client pays
 * at the same wakeup pattern.
 *
 * Prints "READY" once the subscription succeeded, then one line
 *   RESULT label=floor events=N cpu_s=.. cpu_us_per_event=.. rss_ready_kb=0
 *          maxrss_kb=.. user_s=.. sys_s=.. wakeups=.. events_per_wakeup=..
 * with the same definitions as bench/client_recv.c.  Every frame after the
 * subscription_succeeded one counts as an event (bench/run.sh's publisher
 * sends nothing else on the channel; pusherd pings only after 120 s idle).
 * Usage: client_floor [--port P] [--key K] [--channel C] [--count N] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536 /* one read's cap, as lib/uv/client_internal.h READ_BUF */

static uint8_t buf[BUF];
static uint8_t pend[16]; /* a frame header split across reads (at most 10 bytes) */
static size_t npend;

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + tv.tv_usec / 1e6; }

static int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = write(fd, c, n);
    if (k <= 0) return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

/* A masked client text frame (mask 0: XOR with zero, valid per RFC 6455). */
static int send_text(int fd, const char *s) {
  size_t n = strlen(s);
  uint8_t h[8] = {0x81, 0x80 | (uint8_t)n, 0, 0, 0, 0};
  if (n > 125) return -1;
  if (send_all(fd, h, 6) < 0) return -1;
  return send_all(fd, s, n);
}

int main(int argc, char **argv) {
  const char *key = "app-key", *channel = "bench";
  int port = 6001;
  long want = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--key")) key = argv[i + 1];
    else if (!strcmp(argv[i], "--channel")) channel = argv[i + 1];
    else if (!strcmp(argv[i], "--count")) want = atol(argv[i + 1]);
    else { fprintf(stderr, "client_floor: unknown option %s\n", argv[i]); return 2; }
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("client_floor: connect"); return 1; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char req[512];
  snprintf(req, sizeof req,
           "GET /app/%s?protocol=7&client=floor&version=0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
           key, port);
  if (send_all(fd, req, strlen(req)) < 0) return 1;
  /* Handshake phase, blocking: the 101 response, connection_established,
   * then our subscribe and its subscription_succeeded. */
  size_t have = 0;
  int subscribed = 0, sent = 0;
  while (!subscribed) {
    ssize_t k = read(fd, buf + have, sizeof buf - have - 1);
    if (k <= 0) { fprintf(stderr, "client_floor: closed during the handshake\n"); return 1; }
    have += (size_t)k;
    buf[have] = 0;
    if (!sent && strstr((char *)buf, "connection_established")) {
      char sub[200];
      snprintf(sub, sizeof sub, "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}", channel);
      if (send_text(fd, sub) < 0) return 1;
      sent = 1;
    }
    if (strstr((char *)buf, "subscription_succeeded")) subscribed = 1;
  }
  /* Anything after the succeeded frame in the same read is lost to the
   * count; the publisher starts only after READY. */
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  printf("READY\n");
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  long got = 0;
  uint64_t skip = 0; /* payload bytes of the current frame still to come */
  while (got < want) {
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, 120000);
    if (n <= 0) { fprintf(stderr, "client_floor: timeout after %ld/%ld\n", got, want); break; }
    ssize_t k = read(fd, buf, sizeof buf);
    if (k <= 0) { fprintf(stderr, "client_floor: closed after %ld/%ld\n", got, want); break; }
    size_t i = 0, len = (size_t)k;
    while (i < len) {
      if (skip) {
        size_t t = len - i < skip ? len - i : (size_t)skip;
        i += t;
        skip -= t;
        continue;
      }
      /* frame header: complete it from pend + this read */
      while (npend < 2 && i < len) pend[npend++] = buf[i++];
      if (npend < 2) break;
      size_t hl = (pend[1] & 127) == 126 ? 4 : (pend[1] & 127) == 127 ? 10 : 2;
      while (npend < hl && i < len) pend[npend++] = buf[i++];
      if (npend < hl) break;
      uint64_t pl = pend[1] & 127;
      if (hl == 4) pl = (uint64_t)pend[2] << 8 | pend[3];
      else if (hl == 10) {
        pl = 0;
        for (int b = 2; b < 10; b++) pl = pl << 8 | pend[b];
      }
      npend = 0;
      skip = pl;
      got++;
    }
  }
  getrusage(RUSAGE_SELF, &ru1);
  double user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime), sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
  long wakeups = ru1.ru_nvcsw - ru0.ru_nvcsw;
  printf("RESULT label=floor events=%ld bytes=0 cpu_s=%.3f cpu_us_per_event=%.3f rss_ready_kb=0 maxrss_kb=%ld "
         "user_s=%.3f sys_s=%.3f wakeups=%ld events_per_wakeup=%.2f\n",
         got, user + sys, got ? (user + sys) * 1e6 / (double)got : -1, ru1.ru_maxrss, user, sys, wakeups,
         wakeups > 0 ? (double)got / (double)wakeups : -1);
  close(ep);
  close(fd);
  return got == want ? 0 : 1;
}
