/* pusherd: the Redis scale-out adapter (--redis redis://host:port[/db]).
 * The only code that includes hiredis; not built without it.
 *
 * Several pusherd processes started with the same --redis URL and the same
 * apps act as one Pusher app behind any load balancer.  Each process is a
 * node with a random 10-digit node number; it is the first part of every
 * socket id the node hands out ("<node>.<serial>"), so socket ids are unique
 * across nodes and a node can tell its own sockets apart.
 *
 * Redis use: two connections through hiredis's async API on the pusherd
 * libuv loop: one SUBSCRIBEs, one PUBLISHes.  The loop glue is our own (see
 * "libuv glue" below): the adapter shipped with hiredis 0.14 (Debian 12)
 * drops uv_poll errors, so a refused reconnect was never noticed and the node
 * stayed cut off; ours hands errors to hiredis and also gives up on a
 * connection attempt that hangs for 5 s.  No keys are written (except
 * for webhooks, see "webhooks" below); the cluster state lives in the nodes
 * and is replicated through messages.  If
 * Redis goes away both connections are retried with a back-off from 250 ms
 * to 5 s (logged); local delivery keeps working, messages published while
 * disconnected are dropped (counted in the log).  After a reconnect the
 * node sends its full state with "r":1 and every node answers with its own,
 * so views missed during the outage are rebuilt.
 *
 * Channel: one per app, "pusherd:<app_id>".  Message: one compact JSON
 * object, "n" = origin node number (string), "t" = type; a node ignores
 * messages with its own "n" (it already delivered locally):
 *   {"t":"ev","n":N,"c":CHANNEL,"e":EVENT,"d":DATA[,"x":SOCKET_ID]}
 *       REST event (events, batch_events, also #server-to-user-<id>):
 *       delivered to local subscribers except socket x (cache channels
 *       remember it as on the origin).
 *   {"t":"fr","n":N,"c":CHANNEL,"f":FRAME_TEXT,"x":SOCKET_ID}
 *       client event: the exact frame, to local subscribers except x.
 *   {"t":"sub","n":N,"c":CHANNEL,"k":COUNT}
 *       node N now has COUNT subscriptions on CHANNEL (absolute).
 *   {"t":"mj","n":N,"c":CHANNEL,"u":USER_ID,"i":USER_INFO}
 *   {"t":"ml","n":N,"c":CHANNEL,"u":USER_ID}
 *       presence: USER_ID's first socket joined / last socket left CHANNEL
 *       on node N.  A receiving node sends member_added / member_removed to
 *       its local subscribers only if no other node (itself included) has
 *       the user on the channel: first join / last leave across the cluster.
 *   {"t":"uo","n":N,"u":USER_ID}  /  {"t":"uf","n":N,"u":USER_ID}
 *       user signed in: first socket on node N / last socket on N gone.
 *       Watchlist "online"/"offline" go to a node's watchers only when no
 *       other node (itself included) has the user signed in.
 *   {"t":"state","n":N,"r":0|1,"s":{CHANNEL:COUNT,..},"p":{CHANNEL:{USER_ID:INFO,..},..},
 *    "o":[USER_ID,..]}
 *       node N's full state (replaces what others knew of it); "r":1 asks
 *       every node to answer with its own state (sent on (re)subscribe and
 *       on a heartbeat from an unknown node).
 *   {"t":"hb","n":N}   heartbeat, every second.  A node not heard from for
 *       5 s (while this node's own subscription is up) is dropped: its
 *       subscriptions and members vanish (member_removed where it was the
 *       last holder).
 *   {"t":"bye","n":N}  graceful shutdown: drop node N at once.
 *   {"t":"term","n":N,"u":USER_ID}  terminate_connections on every node.
 *   {"t":"rl","n":N,"k":KIND,"s":SECOND,"u":UNITS}  HTTP API requests a node
 *       accepted under a rate limit (core/pd_ratelimit.h: KIND 0 events,
 *       1 reads) in wall-clock SECOND; the others count them against the
 *       same second's limit.
 *
 * Cluster-wide: event fan-out, client events, server-to-user events, socket_id
 * exclusion, subscription counts / occupancy / user counts / members in REST
 * and in pusher_internal:subscription_count, presence member lists in
 * subscription_succeeded, member_added/member_removed, terminate_connections,
 * watchlist online/offline (and the initial online list at sign-in).
 * Per node: max_connections, client event rate limits, the cache of cache
 * channels (each node caches the events it received: one triggered while a
 * node was cut off from Redis is not in that node's cache).  Redis pub/sub
 * ignores the /DB of the URL (it is SELECTed, but only keys use it): two
 * clusters sharing one Redis need different app ids.
 * Two nodes joining the same new user in the same instant may both announce
 * member_added to clients (no distributed lock); the member_added webhook
 * is decided in Redis and sent once.
 */
#include "adapter/pd_redis.h"
#include "core/pd_ratelimit.h"
#include "adapter/pd_local.h"
#include "core/names.h"
#include "core/pd_webhooks.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define HB_MS 1000
#define EXPIRE_MS 5000
#define RETRY_MIN_MS 250
#define RETRY_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 5000

typedef struct rchan {
  long subs;
  json_t *members;            /* object user_id -> user_info (null allowed) */
} rchan;

typedef struct rnode {
  uint64_t seen_ms;
  pd_map chans;               /* name -> rchan* */
  json_t *online;             /* object: user ids signed in on the node */
} rnode;

typedef struct pd_capp {
  pd_app *app;
  struct pd_redis *cl;
  char *rchannel;             /* pusherd:<app_id> */
  pd_map nodes;               /* node number -> rnode* */
  int subscribed;
} pd_capp;

struct pd_redis {
  uv_loop_t *loop;            /* NULL: offline (tests), nothing is sent */
  pd_core *core;
  char node[24];
  uint64_t node_num;
  char *host, *password;
  int port, db;
  redisAsyncContext *pub, *sub;
  int pub_up, sub_up;
  uint64_t sub_up_ms;
  uint64_t pub_open_ms, sub_open_ms;  /* when the pending connects started */
  int stopping;
  uv_timer_t retry, hb;
  int retry_ms;
  int retry_armed;
  int timers_on;              /* retry/hb initialized (not in offline mode) */
  unsigned long dropped;
  pd_capp **apps;             /* one per core app index (stable addresses: hiredis holds them) */
  size_t napps;
};
typedef struct pd_redis pd_cluster;

static void cluster_connect(pd_cluster *cl);

/* ------------------------------------------------------------------ URL */
int pd_redis_parse_url(const char *url, char **host, int *port, char **password, int *db, char *err,
                         size_t errlen) {
  *host = *password = NULL;
  *port = 6379;
  *db = 0;
  const char *p = url;
  if (strncmp(p, "redis://", 8) == 0) p += 8;
  else if (strstr(p, "://")) {
    snprintf(err, errlen, "only redis:// URLs are supported");
    return -1;
  }
  const char *at = strrchr(p, '@');
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    const char *pw = colon ? colon + 1 : p;
    if (at > pw) *password = pd_strndup(pw, (size_t)(at - pw));
    p = at + 1;
  }
  const char *slash = strchr(p, '/');
  size_t hl = slash ? (size_t)(slash - p) : strlen(p);
  const char *colon = memchr(p, ':', hl);
  size_t hostlen = colon ? (size_t)(colon - p) : hl;
  if (colon) {
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || end != p + hl || v < 1 || v > 65535) {
      snprintf(err, errlen, "bad port in Redis URL");
      goto bad;
    }
    *port = (int)v;
  }
  if (slash && slash[1]) {
    char *end;
    long v = strtol(slash + 1, &end, 10);
    if (*end || v < 0 || v > 100000) {
      snprintf(err, errlen, "bad database number in Redis URL");
      goto bad;
    }
    *db = (int)v;
  }
  *host = hostlen ? pd_strndup(p, hostlen) : pd_strdup("127.0.0.1");
  if (!*host) {
    snprintf(err, errlen, "out of memory");
    goto bad;
  }
  return 0;
bad:
  pd_free(*password);
  *password = NULL;
  return -1;
}

/* ------------------------------------------------------------------ remote view */
static void rchan_free(rchan *rc) {
  json_decref(rc->members);
  pd_free(rc);
}

static void rnode_free(rnode *n) {
  for (size_t i = 0; i < n->chans.nb; i++)
    for (pd_map_ent *e = n->chans.b[i]; e; e = e->next) rchan_free(e->val);
  pd_map_free(&n->chans);
  json_decref(n->online);
  pd_free(n);
}

static rchan *rnode_chan(rnode *n, const char *name, int create) {
  rchan *rc = pd_map_get(&n->chans, name);
  if (rc || !create) return rc;
  rc = pd_zalloc(sizeof *rc);
  if (!rc) return NULL;
  rc->members = json_object();
  if (!rc->members || pd_map_put(&n->chans, name, rc) != 0) {
    rchan_free(rc);
    return NULL;
  }
  return rc;
}

static void rnode_chan_maybe_drop(rnode *n, const char *name, rchan *rc) {
  if (rc->subs > 0 || json_object_size(rc->members) > 0) return;
  pd_map_del(&n->chans, name);
  rchan_free(rc);
}

/* Does anyone but `skip` (a remote node; NULL = none) hold user on channel?
 * The local node counts when local is set. */
static int member_held(pd_capp *ca, const char *channel, const char *uid, const rnode *skip, int local) {
  if (local) {
    pd_channel *ch = pd_channel_get(ca->app, channel, 0);
    if (ch && pd_map_get(&ch->members, uid)) return 1;
  }
  for (size_t i = 0; i < ca->nodes.nb; i++)
    for (pd_map_ent *e = ca->nodes.b[i]; e; e = e->next) {
      rnode *n = e->val;
      if (n == skip) continue;
      rchan *rc = pd_map_get(&n->chans, channel);
      if (rc && json_object_get(rc->members, uid)) return 1;
    }
  return 0;
}

static void notify_local(pd_capp *ca, const char *channel, int added, const char *uid, json_t *info) {
  pd_channel *ch = pd_channel_get(ca->app, channel, 0);
  if (ch && ch->nsubs) pd_channel_member_event(ch, added, uid, json_is_null(info) ? NULL : info, NULL);
}

static void remote_member_add(pd_capp *ca, rnode *n, const char *channel, const char *uid, json_t *info) {
  rchan *rc = rnode_chan(n, channel, 1);
  if (!rc || json_object_get(rc->members, uid)) return;
  int before = member_held(ca, channel, uid, n, 1);
  json_object_set(rc->members, uid, info ? info : json_null());
  if (!before) notify_local(ca, channel, 1, uid, info);
}

static void remote_member_del(pd_capp *ca, rnode *n, const char *channel, const char *uid) {
  rchan *rc = rnode_chan(n, channel, 0);
  if (!rc || !json_object_get(rc->members, uid)) return;
  json_object_del(rc->members, uid);
  if (!member_held(ca, channel, uid, n, 1)) notify_local(ca, channel, 0, uid, NULL);
  rnode_chan_maybe_drop(n, channel, rc);
}

static void remote_subs_set(pd_capp *ca, rnode *n, const char *channel, long k) {
  rchan *rc = rnode_chan(n, channel, k > 0);
  if (!rc || rc->subs == k) return;
  rc->subs = k;
  rnode_chan_maybe_drop(n, channel, rc);
  pd_channel *ch = pd_channel_get(ca->app, channel, 0);
  if (ch) pd_channel_send_count(ch);
}

/* Is user signed in anywhere but on skip (local node included if local)? */
static int user_held(pd_capp *ca, const char *uid, const rnode *skip, int local) {
  if (local && pd_user_online_local(ca->app, uid)) return 1;
  for (size_t i = 0; i < ca->nodes.nb; i++)
    for (pd_map_ent *e = ca->nodes.b[i]; e; e = e->next) {
      rnode *n = e->val;
      if (n != skip && json_object_get(n->online, uid)) return 1;
    }
  return 0;
}

static void remote_user_set(pd_capp *ca, rnode *n, const char *uid, int on) {
  if (!!json_object_get(n->online, uid) == on) return;
  int before = user_held(ca, uid, n, 1);
  if (on) json_object_set_new(n->online, uid, json_true());
  else json_object_del(n->online, uid);
  if (!before) pd_user_notify_watchers(ca->app, uid, on ? "online" : "offline");
}

/* Remove every member / subscription / user of node n (it left or expired). */
static void rnode_clear(pd_capp *ca, rnode *n) {
  json_t *users = json_deep_copy(n->online);
  const char *uid;
  json_t *uv;
  json_object_foreach(users, uid, uv) remote_user_set(ca, n, uid, 0);
  json_decref(users);
  for (;;) {
    pd_map_ent *first = NULL;
    for (size_t i = 0; i < n->chans.nb && !first; i++) first = n->chans.b[i];
    if (!first) break;
    char *name = pd_strdup(first->key);
    rchan *rc = first->val;
    if (!name) return;
    rc->subs = 1; /* keep the entry while removing members */
    json_t *ids = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(rc->members, k, v) json_object_set_new(ids, k, json_null());
    json_object_foreach(ids, k, v) remote_member_del(ca, n, name, k);
    json_decref(ids);
    remote_subs_set(ca, n, name, 0);
    pd_free(name);
  }
}

static void rnode_drop(pd_capp *ca, const char *id) {
  rnode *n = pd_map_get(&ca->nodes, id);
  if (!n) return;
  rnode_clear(ca, n);
  pd_map_del(&ca->nodes, id);
  rnode_free(n);
}

/* ------------------------------------------------------------------ webhooks */
/* channel_occupied/vacated and member_added/removed decided cluster-wide,
 * once per transition (docs/webhooks.md).  Keys, per app A (P below is
 * "pusherd:wh:A:"):
 *   P s:CHANNEL       hash node -> that node's subscriptions on CHANNEL
 *   P m:CHANNEL:USER  hash node -> 1 while USER is a member there on node
 *   P n:NODE          set of the keys above holding a field of NODE
 *   P nodes           sorted set node -> last call (Redis TIME, ms)
 * Every change goes through WH_SCRIPT, which Redis runs atomically, one
 * call at a time: it changes the calling node's field and returns the keys
 * whose cluster total (the sum over nodes) it moved from 0 to >0 ("+") or
 * from >0 to 0 ("-").  Only the call that moves a total across 0 sees that
 * move, and only its node sends the webhook: exactly one per transition,
 * and in Redis's order the totals of a key alternate 0 / >0, so the
 * transitions alternate.  Modes:
 *   set  KEY COUNT     the node's field of KEY := COUNT (0 deletes it)
 *   sync K1 C1 K2 ...  the node's whole holding (after a Redis reconnect,
 *                      when changes may have been dropped)
 *   hb   EXPIRE_MS     heartbeat; nodes silent for EXPIRE_MS are reaped:
 *                      their fields removed (by whichever node's call comes
 *                      first: the script is atomic, so exactly one does)
 *   leave              the node's own fields removed (graceful stop)
 * Channel names cannot contain ':', so KEY splits unambiguously. */
#define WH_EXPIRE_MS 5000
static const char WH_SCRIPT[] =
    "local P, me, mode = ARGV[1], ARGV[2], ARGV[3]\n"
    "local nk = P .. 'n:' .. me\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local out = {}\n"
    "local function total(k)\n"
    "  local s = 0\n"
    "  for _, v in ipairs(redis.call('HVALS', k)) do s = s + tonumber(v) end\n"
    "  return s\n"
    "end\n"
    "local function put(k, node, n)\n"
    "  local before = total(k)\n"
    "  if n > 0 then redis.call('HSET', k, node, n); redis.call('SADD', P .. 'n:' .. node, k)\n"
    "  else redis.call('HDEL', k, node); redis.call('SREM', P .. 'n:' .. node, k) end\n"
    "  local after = total(k)\n"
    "  if before == 0 and after > 0 then table.insert(out, k); table.insert(out, '+')\n"
    "  elseif before > 0 and after == 0 then table.insert(out, k); table.insert(out, '-') end\n"
    "end\n"
    "local function reap(node)\n"
    "  for _, k in ipairs(redis.call('SMEMBERS', P .. 'n:' .. node)) do put(k, node, 0) end\n"
    "  redis.call('DEL', P .. 'n:' .. node)\n"
    "  redis.call('ZREM', P .. 'nodes', node)\n"
    "end\n"
    "if mode == 'leave' then reap(me); return out end\n"
    "redis.call('ZADD', P .. 'nodes', now, me)\n"
    "if mode == 'set' then put(ARGV[4], me, tonumber(ARGV[5]))\n"
    "elseif mode == 'sync' then\n"
    "  local want = {}\n"
    "  for i = 4, #ARGV - 1, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end\n"
    "  for _, k in ipairs(redis.call('SMEMBERS', nk)) do if not want[k] then put(k, me, 0) end end\n"
    "  for k, n in pairs(want) do put(k, me, n) end\n"
    "elseif mode == 'hb' then\n"
    "  for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', now - tonumber(ARGV[4]))) do\n"
    "    if d ~= me then reap(d) end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* The keys the cluster decides for app: only when some webhook wants them. */
static int wh_wants_subs(pd_app *app, const char *channel) {
  return pd_wh_wanted(app, PD_WH_CHANNEL_OCCUPIED, channel) || pd_wh_wanted(app, PD_WH_CHANNEL_VACATED, channel);
}
static int wh_wants_members(pd_app *app, const char *channel) {
  return pd_wh_wanted(app, PD_WH_MEMBER_ADDED, channel) || pd_wh_wanted(app, PD_WH_MEMBER_REMOVED, channel);
}

static char *wh_prefix(pd_capp *ca) {
  size_t l = strlen(ca->app->cfg->id) + 16;
  char *p = pd_alloc(l);
  if (p) snprintf(p, l, "pusherd:wh:%s:", ca->app->cfg->id);
  return p;
}

/* "P s:CHANNEL" / "P m:CHANNEL:USER" (pd_alloc'ed). */
static char *wh_key(pd_capp *ca, const char *channel, const char *user_id) {
  char *p = wh_prefix(ca);
  if (!p) return NULL;
  size_t l = strlen(p) + strlen(channel) + (user_id ? strlen(user_id) : 0) + 8;
  char *k = pd_alloc(l);
  if (k) {
    if (user_id) snprintf(k, l, "%sm:%s:%s", p, channel, user_id);
    else snprintf(k, l, "%ss:%s", p, channel);
  }
  pd_free(p);
  return k;
}

static void wh_reply(redisAsyncContext *ac, void *r, void *priv) {
  (void)ac;
  pd_capp *ca = priv;
  redisReply *rep = r;
  if (!rep) return;
  if (rep->type == REDIS_REPLY_ERROR) {
    pd_log(PD_LOG_ERROR, "msg=\"redis webhook script failed\" app=%s error=\"%s\"", ca->app->cfg->id, rep->str);
    return;
  }
  if (rep->type != REDIS_REPLY_ARRAY) return;
  char *p = wh_prefix(ca);
  if (!p) return;
  size_t pl = strlen(p);
  for (size_t i = 0; i + 1 < rep->elements; i += 2) {
    redisReply *k = rep->element[i], *s = rep->element[i + 1];
    if (k->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING || k->len <= pl + 2) continue;
    int up = s->str[0] == '+';
    char *rest = pd_strdup(k->str + pl + 2); /* after "s:" / "m:" */
    if (!rest) continue;
    if (k->str[pl] == 's') {
      pd_wh_transition(ca->app, rest, up ? PD_WH_CHANNEL_OCCUPIED : PD_WH_CHANNEL_VACATED, NULL);
    } else if (k->str[pl] == 'm') {
      char *colon = strchr(rest, ':');
      if (colon) {
        *colon = 0;
        pd_wh_transition(ca->app, rest, up ? PD_WH_MEMBER_ADDED : PD_WH_MEMBER_REMOVED, colon + 1);
      }
    }
    pd_free(rest);
  }
  pd_free(p);
}

/* EVAL WH_SCRIPT 0 PREFIX NODE MODE args... */
static void wh_call(pd_capp *ca, const char *mode, size_t nargs, const char **args, const size_t *lens) {
  pd_cluster *cl = ca->cl;
  if (!cl->pub || !cl->pub_up || cl->stopping || !cl->core->wh_cluster) return;
  size_t n = 6 + nargs;
  const char **argv = pd_alloc(n * sizeof *argv);
  size_t *argl = pd_alloc(n * sizeof *argl);
  char *p = wh_prefix(ca);
  if (argv && argl && p) {
    argv[0] = "EVAL", argv[1] = WH_SCRIPT, argv[2] = "0", argv[3] = p, argv[4] = cl->node, argv[5] = mode;
    for (size_t i = 0; i < 6; i++) argl[i] = strlen(argv[i]);
    for (size_t i = 0; i < nargs; i++) argv[6 + i] = args[i], argl[6 + i] = lens ? lens[i] : strlen(args[i]);
    redisAsyncCommandArgv(cl->pub, wh_reply, ca, (int)n, argv, argl);
  }
  pd_free(p);
  pd_free(argv);
  pd_free(argl);
}

static void wh_set(pd_capp *ca, const char *channel, const char *user_id, long count) {
  char *k = wh_key(ca, channel, user_id);
  char num[24];
  snprintf(num, sizeof num, "%ld", count);
  const char *args[2] = {k, num};
  if (k) wh_call(ca, "set", 2, args, NULL);
  pd_free(k);
}

/* After the publish connection is (re)established: this node's holding. */
static void wh_sync(pd_capp *ca) {
  pd_app *app = ca->app;
  size_t n = 0, cap = 16;
  char **args = pd_alloc(cap * sizeof *args);
  if (!args) return;
  for (size_t i = 0; i < app->channels.nb; i++)
    for (pd_map_ent *e = app->channels.b[i]; e; e = e->next) {
      pd_channel *ch = e->val;
      if (!ch->nsubs) continue;
      size_t need = n + 2 + 2 * ch->nmembers;
      if (need > cap) {
        while (cap < need) cap *= 2;
        char **na = pd_realloc(args, cap * sizeof *args);
        if (!na) goto out;
        args = na;
      }
      if (wh_wants_subs(app, ch->name)) {
        char num[24];
        snprintf(num, sizeof num, "%zu", ch->nsubs);
        args[n++] = wh_key(ca, ch->name, NULL);
        args[n++] = pd_strdup(num);
      }
      if (ch->presence && wh_wants_members(app, ch->name))
        for (size_t j = 0; j < ch->members.nb; j++)
          for (pd_map_ent *m = ch->members.b[j]; m; m = m->next) {
            args[n++] = wh_key(ca, ch->name, m->key);
            args[n++] = pd_strdup("1");
          }
    }
  int ok = 1;
  for (size_t i = 0; i < n; i++) ok &= args[i] != NULL;
  if (ok) wh_call(ca, "sync", n, (const char **)args, NULL);
out:
  for (size_t i = 0; i < n; i++) pd_free(args[i]);
  pd_free(args);
}

static void wh_heartbeat(pd_capp *ca) {
  char ms[24];
  snprintf(ms, sizeof ms, "%d", WH_EXPIRE_MS);
  const char *args[1] = {ms};
  wh_call(ca, "hb", 1, args, NULL);
}

/* ------------------------------------------------------------------ publish */
static void publish_obj(pd_capp *ca, json_t *o) {
  pd_cluster *cl = ca->cl;
  json_object_set_new(o, "n", json_string(cl->node));
  char *t = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!t) return;
  if (pd_redis_tap) pd_redis_tap(ca->rchannel, t);
  if (cl->pub && cl->pub_up) {
    redisAsyncCommand(cl->pub, NULL, NULL, "PUBLISH %s %b", ca->rchannel, t, strlen(t));
  } else if (!cl->stopping && cl->timers_on) {
    if (cl->dropped++ % 1000 == 0)
      pd_log(PD_LOG_WARN, "msg=\"redis down: cluster message not published\" dropped=%lu", cl->dropped);
  }
  free(t);
}

static json_t *local_state(pd_capp *ca, int want_reply) {
  json_t *subs = json_object(), *pres = json_object();
  pd_app *app = ca->app;
  for (size_t i = 0; i < app->channels.nb; i++)
    for (pd_map_ent *e = app->channels.b[i]; e; e = e->next) {
      pd_channel *ch = e->val;
      if (!ch->nsubs) continue;
      json_object_set_new(subs, ch->name, json_integer((json_int_t)ch->nsubs));
      if (!ch->presence || !ch->nmembers) continue;
      json_t *m = json_object();
      for (size_t j = 0; j < ch->members.nb; j++)
        for (pd_map_ent *me = ch->members.b[j]; me; me = me->next) {
          pd_member *mm = me->val;
          json_object_set(m, me->key, mm->user_info ? mm->user_info : json_null());
        }
      json_object_set_new(pres, ch->name, m);
    }
  json_t *online = json_array();
  for (size_t i = 0; i < app->users.nb; i++)
    for (pd_map_ent *e = app->users.b[i]; e; e = e->next)
      if (pd_user_online_local(app, e->key)) json_array_append_new(online, json_string(e->key));
  return json_pack("{s:s,s:i,s:o,s:o,s:o}", "t", "state", "r", want_reply, "s", subs, "p", pres, "o", online);
}

static void send_state(pd_capp *ca, int want_reply) {
  json_t *o = local_state(ca, want_reply);
  if (o) publish_obj(ca, o);
}

/* The adapter state of app (NULL once stopping for outgoing messages). */
static pd_capp *capp_any(pd_cluster *cl, pd_app *app) {
  if (!cl || !app || app->core != cl->core) return NULL;
  size_t i = app->idx;
  return i < cl->napps ? cl->apps[i] : NULL;
}

static pd_capp *capp_of(pd_cluster *cl, pd_app *app) {
  pd_capp *ca = capp_any(cl, app);
  return ca && !cl->stopping ? ca : NULL;
}

static uint64_t op_node_num(void *ud) { return ((pd_cluster *)ud)->node_num; }

static void op_event(pd_app *app, const char *channel, const char *event, const char *data,
                     const char *except_socket_id, void *ud) {
  pd_capp *ca = capp_of(ud, app);
  if (!ca) return;
  json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "t", "ev", "c", channel, "e", event, "d", data);
  if (!o) return;
  if (except_socket_id) json_object_set_new(o, "x", json_string(except_socket_id));
  publish_obj(ca, o);
}

static void op_rate_used(pd_app *app, int kind, uint64_t sec, long n, void *ud) {
  pd_capp *ca = capp_of(ud, app);
  if (!ca) return;
  json_t *o = json_pack("{s:s,s:i,s:I,s:I}", "t", "rl", "k", kind, "s", (json_int_t)sec, "u", (json_int_t)n);
  if (o) publish_obj(ca, o);
}

static void op_frame(pd_app *app, const char *channel, const char *frame, size_t len,
                     const char *except_socket_id, void *ud) {
  pd_capp *ca = capp_of(ud, app);
  if (!ca) return;
  json_t *o = json_pack("{s:s,s:s,s:s%,s:s}", "t", "fr", "c", channel, "f", frame, len, "x",
                        except_socket_id ? except_socket_id : "");
  if (o) publish_obj(ca, o);
}

static void op_terminate(pd_app *app, const char *user_id, void *ud) {
  pd_capp *ca = capp_of(ud, app);
  if (!ca) return;
  json_t *o = json_pack("{s:s,s:s}", "t", "term", "u", user_id);
  if (o) publish_obj(ca, o);
}

static void op_subs_changed(pd_channel *ch, void *ud) {
  pd_capp *ca = capp_of(ud, ch->app);
  if (!ca || pusher__chan_user_id(ch->name)) return;
  json_t *o = json_pack("{s:s,s:s,s:I}", "t", "sub", "c", ch->name, "k", (json_int_t)ch->nsubs);
  if (o) publish_obj(ca, o);
  if (wh_wants_subs(ch->app, ch->name)) wh_set(ca, ch->name, NULL, (long)ch->nsubs);
}

static void op_user_changed(pd_app *app, const char *user_id, int online, void *ud) {
  pd_capp *ca = capp_of(ud, app);
  if (!ca) return;
  json_t *o = json_pack("{s:s,s:s}", "t", online ? "uo" : "uf", "u", user_id);
  if (o) publish_obj(ca, o);
}

static int op_user_remote(pd_app *app, const char *user_id, void *ud) {
  pd_capp *ca = capp_any(ud, app);
  return ca ? user_held(ca, user_id, NULL, 0) : 0;
}

static void op_member_changed(pd_channel *ch, const char *user_id, json_t *user_info, int joined,
                              void *ud) {
  pd_capp *ca = capp_of(ud, ch->app);
  if (!ca) return;
  json_t *o = json_pack("{s:s,s:s,s:s}", "t", joined ? "mj" : "ml", "c", ch->name, "u", user_id);
  if (!o) return;
  if (joined) json_object_set(o, "i", user_info ? user_info : json_null());
  publish_obj(ca, o);
  if (wh_wants_members(ch->app, ch->name)) wh_set(ca, ch->name, user_id, joined ? 1 : 0);
}

/* ------------------------------------------------------------------ queries */
static size_t op_remote_subs(pd_app *app, const char *channel, void *ud) {
  pd_capp *ca = capp_any(ud, app);
  size_t total = 0;
  if (!ca) return 0;
  for (size_t i = 0; i < ca->nodes.nb; i++)
    for (pd_map_ent *e = ca->nodes.b[i]; e; e = e->next) {
      rchan *rc = pd_map_get(&((rnode *)e->val)->chans, channel);
      if (rc && rc->subs > 0) total += (size_t)rc->subs;
    }
  return total;
}

static int op_member_remote(pd_app *app, const char *channel, const char *user_id, void *ud) {
  pd_capp *ca = capp_any(ud, app);
  return ca ? member_held(ca, channel, user_id, NULL, 0) : 0;
}

static void op_add_remote_members(pd_app *app, const char *channel, json_t *hash, json_t *ids,
                                  void *ud) {
  pd_capp *ca = capp_any(ud, app);
  if (!ca) return;
  for (size_t i = 0; i < ca->nodes.nb; i++)
    for (pd_map_ent *e = ca->nodes.b[i]; e; e = e->next) {
      rchan *rc = pd_map_get(&((rnode *)e->val)->chans, channel);
      if (!rc) continue;
      const char *k;
      json_t *v;
      json_object_foreach(rc->members, k, v) {
        if (json_object_get(hash, k)) continue;
        json_object_set(hash, k, v);
        if (ids) json_array_append_new(ids, json_string(k));
      }
    }
}

static void op_remote_channels(pd_app *app, const char *prefix, json_t *obj, void *ud) {
  pd_capp *ca = capp_any(ud, app);
  if (!ca) return;
  for (size_t i = 0; i < ca->nodes.nb; i++)
    for (pd_map_ent *e = ca->nodes.b[i]; e; e = e->next) {
      rnode *n = e->val;
      for (size_t j = 0; j < n->chans.nb; j++)
        for (pd_map_ent *ce = n->chans.b[j]; ce; ce = ce->next) {
          rchan *rc = ce->val;
          if (rc->subs <= 0 || pusher__chan_user_id(ce->key)) continue;
          if (prefix && strncmp(ce->key, prefix, strlen(prefix)) != 0) continue;
          if (!json_object_get(obj, ce->key)) json_object_set_new(obj, ce->key, json_null());
        }
    }
}

const pd_adapter pd_adapter_redis = {
    .clustered = 1,
    .node_num = op_node_num,
    .event = op_event,
    .frame = op_frame,
    .terminate = op_terminate,
    .subs_changed = op_subs_changed,
    .member_changed = op_member_changed,
    .user_changed = op_user_changed,
    .user_remote = op_user_remote,
    .remote_subs = op_remote_subs,
    .member_remote = op_member_remote,
    .add_remote_members = op_add_remote_members,
    .rate_used = op_rate_used,
    .remote_channels = op_remote_channels,
};

static uint64_t now_ms(const pd_cluster *cl) { return cl->loop ? uv_now(cl->loop) : cl->core->now_ms; }

/* ------------------------------------------------------------------ incoming */
static void apply_state(pd_capp *ca, rnode *n, json_t *msg) {
  json_t *subs = json_object_get(msg, "s"), *pres = json_object_get(msg, "p");
  if (!json_is_object(subs)) subs = NULL;
  if (!json_is_object(pres)) pres = NULL;
  /* removals first: members and channels the node no longer reports */
  json_t *gone = json_array();
  for (size_t i = 0; i < n->chans.nb; i++)
    for (pd_map_ent *e = n->chans.b[i]; e; e = e->next) {
      rchan *rc = e->val;
      json_t *now = pres ? json_object_get(pres, e->key) : NULL;
      const char *k;
      json_t *v;
      json_object_foreach(rc->members, k, v) if (!json_is_object(now) || !json_object_get(now, k))
          json_array_append_new(gone, json_pack("[s,s]", e->key, k));
      if (!subs || !json_object_get(subs, e->key)) json_array_append_new(gone, json_pack("[s]", e->key));
    }
  size_t i;
  json_t *g;
  json_array_foreach(gone, i, g) {
    const char *c = json_string_value(json_array_get(g, 0));
    if (json_array_size(g) == 2) remote_member_del(ca, n, c, json_string_value(json_array_get(g, 1)));
    else remote_subs_set(ca, n, c, 0);
  }
  json_decref(gone);
  json_t *on = json_object_get(msg, "o"), *now_on = json_object();
  size_t oi;
  json_t *ov;
  if (json_is_array(on))
    json_array_foreach(on, oi, ov) if (json_is_string(ov)) json_object_set_new(now_on, json_string_value(ov), json_true());
  json_t *was_on = json_deep_copy(n->online);
  const char *u0;
  json_object_foreach(was_on, u0, ov) if (!json_object_get(now_on, u0)) remote_user_set(ca, n, u0, 0);
  json_object_foreach(now_on, u0, ov) remote_user_set(ca, n, u0, 1);
  json_decref(was_on);
  json_decref(now_on);
  const char *c;
  json_t *v;
  if (subs) json_object_foreach(subs, c, v) if (json_is_integer(v)) remote_subs_set(ca, n, c, (long)json_integer_value(v));
  if (pres)
    json_object_foreach(pres, c, v) {
      if (!json_is_object(v)) continue;
      const char *u;
      json_t *info;
      json_object_foreach(v, u, info) remote_member_add(ca, n, c, u, info);
    }
}

static rnode *node_get(pd_capp *ca, const char *id, int *created) {
  rnode *n = pd_map_get(&ca->nodes, id);
  *created = 0;
  if (n) return n;
  n = pd_zalloc(sizeof *n);
  if (!n) return NULL;
  n->online = json_object();
  if (!n->online || pd_map_put(&ca->nodes, id, n) != 0) {
    json_decref(n->online);
    pd_free(n);
    return NULL;
  }
  *created = 1;
  pd_log(PD_LOG_INFO, "msg=\"cluster node joined\" app=%s node=%s", ca->app->cfg->id, id);
  return n;
}

static void on_cluster_message(pd_capp *ca, const char *text, size_t len) {
  pd_cluster *cl = ca->cl;
  json_t *o = json_loadb(text, len, 0, NULL);
  const char *nid = json_string_value(json_object_get(o, "n"));
  const char *t = json_string_value(json_object_get(o, "t"));
  if (!nid || !t || strcmp(nid, cl->node) == 0) {
    json_decref(o);
    return;
  }
  pd_app *app = ca->app;
  pd_core *core = cl->core;
  if (cl->loop) pd_core_set_time(core, uv_now(cl->loop), (uint64_t)time(NULL));
  const char *c = json_string_value(json_object_get(o, "c"));
  const char *x = json_string_value(json_object_get(o, "x"));
  if (strcmp(t, "bye") == 0) {
    pd_log(PD_LOG_INFO, "msg=\"cluster node left\" app=%s node=%s", app->cfg->id, nid);
    rnode_drop(ca, nid);
    json_decref(o);
    return;
  }
  int created;
  rnode *n = node_get(ca, nid, &created);
  if (!n) {
    json_decref(o);
    return;
  }
  n->seen_ms = now_ms(cl);
  if (strcmp(t, "ev") == 0 && c) {
    const char *e = json_string_value(json_object_get(o, "e")), *d = json_string_value(json_object_get(o, "d"));
    if (e && d && pd_channel_name_valid(app, c, strlen(c), NULL, 0))
      pd_publish(app, c, e, d, x ? pd_core_find_session(core, app, x) : NULL);
  } else if (strcmp(t, "fr") == 0 && c) {
    json_t *f = json_object_get(o, "f");
    pd_channel *ch = pd_channel_get(app, c, 0);
    if (json_is_string(f) && ch && ch->nsubs) {
      pd_msg *m = pd_msg_frame(json_string_value(f), json_string_length(f));
      if (m) {
        pd_channel_broadcast(ch, m, x && *x ? pd_core_find_session(core, app, x) : NULL);
        pd_msg_unref(m);
      }
    }
  } else if (strcmp(t, "sub") == 0 && c) {
    json_t *k = json_object_get(o, "k");
    if (json_is_integer(k)) remote_subs_set(ca, n, c, (long)json_integer_value(k));
  } else if ((strcmp(t, "mj") == 0 || strcmp(t, "ml") == 0) && c) {
    const char *u = json_string_value(json_object_get(o, "u"));
    if (u && t[1] == 'j') remote_member_add(ca, n, c, u, json_object_get(o, "i"));
    else if (u) remote_member_del(ca, n, c, u);
  } else if ((strcmp(t, "uo") == 0 || strcmp(t, "uf") == 0)) {
    const char *u = json_string_value(json_object_get(o, "u"));
    if (u) remote_user_set(ca, n, u, t[1] == 'o');
  } else if (strcmp(t, "state") == 0) {
    apply_state(ca, n, o);
    if (json_integer_value(json_object_get(o, "r"))) send_state(ca, 0);
  } else if (strcmp(t, "rl") == 0) {
    json_t *k = json_object_get(o, "k"), *sec = json_object_get(o, "s"), *u = json_object_get(o, "u");
    if (json_is_integer(k) && json_is_integer(sec) && json_is_integer(u) && json_integer_value(u) > 0 &&
        (json_integer_value(k) == PD_RL_EVENTS || json_integer_value(k) == PD_RL_READS))
      pd_ratelimit_remote(app, (int)json_integer_value(k), (uint64_t)json_integer_value(sec),
                          (long)json_integer_value(u));
  } else if (strcmp(t, "term") == 0) {
    const char *u = json_string_value(json_object_get(o, "u"));
    size_t cnt = u ? pd_user_terminate_local(app, u) : 0;
    if (u)
      pd_log(PD_LOG_INFO, "msg=\"terminate_connections from cluster\" app=%s user=%s connections=%zu",
             app->cfg->id, u, cnt);
  }
  /* a heartbeat (or anything) from a node we had no state of: ask for it */
  if (created && strcmp(t, "state") != 0) send_state(ca, 1);
  json_decref(o);
}

/* ------------------------------------------------------------------ libuv glue */
typedef struct rev {
  redisAsyncContext *ac;      /* NULL once hiredis let go of it */
  uv_poll_t poll;
  int events;
} rev;

static void rev_closed(uv_handle_t *h) { pd_free(h->data); }

static void rev_io(uv_poll_t *h, int status, int events) {
  rev *e = h->data;
  if (status < 0) {
    /* libuv stopped the poll (POLLERR): let hiredis see the error on the
     * socket: a pending connect reports it, a read fails and disconnects */
    if (!e->ac) return;
    if (!(e->ac->c.flags & REDIS_CONNECTED)) redisAsyncHandleWrite(e->ac);
    else redisAsyncHandleRead(e->ac);
    if (e->ac && e->events) uv_poll_start(&e->poll, e->events, rev_io);
    return;
  }
  if (e->ac && (events & UV_READABLE)) redisAsyncHandleRead(e->ac);
  if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

static void rev_set(rev *e, int on, int bit) {
  int ne = on ? (e->events | bit) : (e->events & ~bit);
  if (ne == e->events) return;
  e->events = ne;
  if (ne) uv_poll_start(&e->poll, ne, rev_io);
  else uv_poll_stop(&e->poll);
}
static void rev_add_read(void *p) { rev_set(p, 1, UV_READABLE); }
static void rev_del_read(void *p) { rev_set(p, 0, UV_READABLE); }
static void rev_add_write(void *p) { rev_set(p, 1, UV_WRITABLE); }
static void rev_del_write(void *p) { rev_set(p, 0, UV_WRITABLE); }
static void rev_cleanup(void *p) {
  rev *e = p;
  e->ac = NULL;
  uv_close((uv_handle_t *)&e->poll, rev_closed);
}

static int rev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  rev *e = pd_zalloc(sizeof *e);
  if (!e) return -1;
  if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
    pd_free(e);
    return -1;
  }
  e->ac = ac;
  e->poll.data = e;
  ac->ev.data = e;
  ac->ev.addRead = rev_add_read;
  ac->ev.delRead = rev_del_read;
  ac->ev.addWrite = rev_add_write;
  ac->ev.delWrite = rev_del_write;
  ac->ev.cleanup = rev_cleanup;
  return 0;
}

/* ------------------------------------------------------------------ redis */
static void retry_cb(uv_timer_t *t) {
  pd_cluster *cl = t->data;
  cl->retry_armed = 0;
  pd_log(PD_LOG_DEBUG, "msg=\"redis reconnecting\" publish=%s subscribe=%s", cl->pub ? "up" : "down", cl->sub ? "up" : "down");
  cluster_connect(cl);
}

static void arm_retry(pd_cluster *cl) {
  if (cl->stopping || cl->retry_armed) return;
  cl->retry_armed = 1;
  uv_timer_start(&cl->retry, retry_cb, (uint64_t)cl->retry_ms, 0);
  pd_log(PD_LOG_INFO, "msg=\"redis reconnect scheduled\" delay_ms=%d", cl->retry_ms);
  cl->retry_ms = cl->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : cl->retry_ms * 2;
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv) {
  pd_capp *ca = priv;
  redisReply *rep = r;
  if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
  redisReply *kind = rep->element[0];
  if (kind->type != REDIS_REPLY_STRING) return;
  if (strcmp(kind->str, "subscribe") == 0) {
    ca->subscribed = 1;
    /* back-off starts over only once Redis really serves us (a refused AUTH
     * connects, then drops the subscription: keep backing off) */
    ca->cl->retry_ms = RETRY_MIN_MS;
    pd_log(PD_LOG_INFO, "msg=\"redis subscribed\" channel=%s", ca->rchannel);
    if (ca->cl->pub_up) send_state(ca, 1);
  } else if (strcmp(kind->str, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
    on_cluster_message(ca, rep->element[2]->str, rep->element[2]->len);
  }
}

static void on_auth_reply(redisAsyncContext *ac, void *r, void *priv) {
  redisReply *rep = r;
  if (rep && rep->type == REDIS_REPLY_ERROR) pd_log(PD_LOG_ERROR, "msg=\"redis AUTH/SELECT failed\" error=\"%s\"", rep->str);
}

static void conn_lost(pd_cluster *cl, const redisAsyncContext *ac, const char *what) {
  int was_up;
  if (ac == cl->pub) {
    was_up = cl->pub_up;
    cl->pub = NULL;
    cl->pub_up = 0;
  } else if (ac == cl->sub) {
    was_up = cl->sub_up;
    cl->sub = NULL;
    cl->sub_up = 0;
    for (size_t i = 0; i < cl->napps; i++) cl->apps[i]->subscribed = 0;
  } else {
    return;
  }
  if (cl->stopping) return;
  if (was_up) pd_log(PD_LOG_WARN, "msg=\"redis connection lost; local delivery continues\" conn=%s error=\"%s\"",
                     what, ac->errstr[0] ? ac->errstr : "closed");
  else pd_log(PD_LOG_WARN, "msg=\"redis connect failed\" host=%s port=%d conn=%s error=\"%s\"", cl->host, cl->port, what,
              ac->errstr[0] ? ac->errstr : "?");
  arm_retry(cl);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  pd_cluster *cl = ac->data;
  const char *what = ac == cl->pub ? "publish" : "subscribe";
  if (status != REDIS_OK) {
    conn_lost(cl, ac, what);
    return;
  }
  pd_log(PD_LOG_INFO, "msg=\"redis connected\" host=%s port=%d conn=%s", cl->host, cl->port, what);
  if (ac == cl->pub) {
    cl->pub_up = 1;
    for (size_t i = 0; i < cl->napps; i++) {
      if (cl->apps[i]->subscribed) send_state(cl->apps[i], 1);
      wh_sync(cl->apps[i]);
    }
  } else {
    cl->sub_up = 1;
    cl->sub_up_ms = now_ms(cl);
    /* what we knew of the others may be stale: give them time to answer */
    for (size_t i = 0; i < cl->napps; i++)
      for (size_t j = 0; j < cl->apps[i]->nodes.nb; j++)
        for (pd_map_ent *e = cl->apps[i]->nodes.b[j]; e; e = e->next) ((rnode *)e->val)->seen_ms = cl->sub_up_ms;
  }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  pd_cluster *cl = ac->data;
  conn_lost(cl, ac, ac == cl->pub ? "publish" : "subscribe");
}

static redisAsyncContext *open_ctx(pd_cluster *cl, int is_sub) {
  redisAsyncContext *ac = redisAsyncConnect(cl->host, cl->port);
  if (!ac) return NULL;
  if (ac->err) {
    pd_log(PD_LOG_WARN, "msg=\"redis connect failed\" host=%s port=%d error=\"%s\"", cl->host, cl->port, ac->errstr);
    redisAsyncFree(ac);
    return NULL;
  }
  ac->data = cl;
  if (rev_attach(ac, cl->loop) != 0) {
    redisAsyncFree(ac);
    return NULL;
  }
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (cl->password) redisAsyncCommand(ac, on_auth_reply, NULL, "AUTH %s", cl->password);
  if (is_sub) {
    for (size_t i = 0; i < cl->napps; i++)
      redisAsyncCommand(ac, on_sub_reply, cl->apps[i], "SUBSCRIBE %s", cl->apps[i]->rchannel);
  } else if (cl->db) {
    redisAsyncCommand(ac, on_auth_reply, NULL, "SELECT %d", cl->db);
  }
  return ac;
}

static void cluster_connect(pd_cluster *cl) {
  if (cl->stopping) return;
  if (!cl->pub) cl->pub = open_ctx(cl, 0), cl->pub_open_ms = now_ms(cl);
  if (!cl->sub) cl->sub = open_ctx(cl, 1), cl->sub_open_ms = now_ms(cl);
  if (!cl->pub || !cl->sub) arm_retry(cl);
}

static void hb_cb(uv_timer_t *t) {
  pd_cluster *cl = t->data;
  if (cl->stopping) return;
  uint64_t now = now_ms(cl);
  pd_core_set_time(cl->core, now, (uint64_t)time(NULL));
  /* a connect that neither succeeds nor fails (filtered port): start over */
  redisAsyncContext *stuck[2] = {NULL, NULL};
  if (cl->pub && !cl->pub_up && now - cl->pub_open_ms > CONNECT_TIMEOUT_MS) stuck[0] = cl->pub, cl->pub = NULL;
  if (cl->sub && !cl->sub_up && now - cl->sub_open_ms > CONNECT_TIMEOUT_MS) stuck[1] = cl->sub, cl->sub = NULL;
  for (int i = 0; i < 2; i++)
    if (stuck[i]) {
      pd_log(PD_LOG_WARN, "msg=\"redis connect timed out\" host=%s port=%d", cl->host, cl->port);
      redisAsyncFree(stuck[i]);
      arm_retry(cl);
    }
  for (size_t i = 0; i < cl->napps; i++) {
    pd_capp *ca = cl->apps[i];
    wh_heartbeat(ca);
    if (!ca->subscribed) continue;
    json_t *o = json_pack("{s:s}", "t", "hb");
    if (o) publish_obj(ca, o);
    for (;;) {
      const char *stale = NULL;
      for (size_t j = 0; j < ca->nodes.nb && !stale; j++)
        for (pd_map_ent *e = ca->nodes.b[j]; e && !stale; e = e->next)
          if (now - ((rnode *)e->val)->seen_ms > EXPIRE_MS) stale = e->key;
      if (!stale) break;
      pd_log(PD_LOG_WARN, "msg=\"cluster node expired (no heartbeat)\" app=%s node=%s", ca->app->cfg->id, stale);
      char *id = pd_strdup(stale);
      if (!id) break;
      rnode_drop(ca, id);
      pd_free(id);
    }
  }
}

void pd_redis_free(pd_redis *cl) {
  if (!cl) return;
  if (!cl->stopping) pd_redis_stop(cl);
  for (size_t i = 0; cl->apps && i < cl->napps; i++) {
    pd_capp *ca = cl->apps[i];
    if (!ca) continue;
    for (size_t j = 0; j < ca->nodes.nb; j++)
      for (pd_map_ent *e = ca->nodes.b[j]; e; e = e->next) rnode_free(e->val);
    pd_map_free(&ca->nodes);
    pd_free(ca->rchannel);
    pd_free(ca);
  }
  if (cl->core && cl->core->ad_ud == cl) pd_core_set_adapter(cl->core, &pd_adapter_local, NULL);
  pd_free(cl->apps);
  pd_free(cl->host);
  pd_free(cl->password);
  pd_free(cl);
}

static uint64_t random_node_num(void) {
  uint64_t r = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, &r, sizeof r) != (ssize_t)sizeof r) r = uv_hrtime() ^ (uint64_t)getpid() << 32;
  if (fd >= 0) close(fd);
  return r % 9000000000ull + 1000000000ull;
}

/* Adapter state for the core's apps it has none for yet (at start, and
 * for apps a reload added); subscribed at once when the link is up. */
static int add_apps(pd_cluster *cl) {
  pd_core *core = cl->core;
  if (core->napps <= cl->napps && cl->apps) return 0;
  pd_capp **grown = pd_realloc(cl->apps, (core->napps ? core->napps : 1) * sizeof *grown);
  if (!grown) return -1;
  cl->apps = grown;
  for (size_t i = cl->napps; i < core->napps; i++) {
    pd_capp *ca = pd_zalloc(sizeof *ca);
    size_t l = strlen(core->apps[i]->cfg->id) + 16;
    char *rch = ca ? pd_alloc(l) : NULL;
    if (!rch) {
      pd_free(ca);
      return -1;
    }
    ca->app = core->apps[i];
    ca->cl = cl;
    ca->rchannel = rch;
    snprintf(ca->rchannel, l, "pusherd:%s", ca->app->cfg->id);
    cl->apps[i] = ca;
    cl->napps = i + 1;
    if (cl->sub && cl->sub_up && !cl->stopping)
      redisAsyncCommand(cl->sub, on_sub_reply, ca, "SUBSCRIBE %s", ca->rchannel);
  }
  return 0;
}

int pd_redis_reload(pd_redis *cl) {
  if (!cl || cl->stopping) return 0;
  if (add_apps(cl) == 0) return 0;
  pd_log(PD_LOG_ERROR, "msg=\"redis: out of memory adding the apps of a reload; they are served on this node only\"");
  return -1;
}

static pd_cluster *cluster_new(uv_loop_t *loop, pd_core *core, uint64_t node_num) {
  pd_cluster *cl = pd_zalloc(sizeof *cl);
  if (!cl) return NULL;
  cl->node_num = node_num ? node_num : random_node_num();
  snprintf(cl->node, sizeof cl->node, "%llu", (unsigned long long)cl->node_num);
  cl->loop = loop;
  cl->core = core;
  cl->retry_ms = RETRY_MIN_MS;
  if (add_apps(cl) != 0) goto nomem;
  pd_core_set_adapter(core, &pd_adapter_redis, cl);
  return cl;
nomem:
  cl->stopping = 1;
  pd_redis_free(cl);
  return NULL;
}

void (*pd_redis_tap)(const char *channel, const char *message);

int pd_redis_new_offline(pd_redis **out, pd_core *core, uint64_t node_num) {
  *out = cluster_new(NULL, core, node_num);
  return *out ? 0 : -1;
}

void pd_redis_inject(pd_redis *cl, pd_app *app, const char *message) {
  pd_capp *ca = capp_any(cl, app);
  if (ca) on_cluster_message(ca, message, strlen(message));
}

int pd_redis_new(pd_redis **out, uv_loop_t *loop, pd_core *core, const char *url) {
  char err[200];
  char *host, *password;
  int port, db;
  *out = NULL;
  if (pd_redis_parse_url(url, &host, &port, &password, &db, err, sizeof err) != 0) {
    pd_log(PD_LOG_ERROR, "msg=\"bad Redis URL\" url=\"%s\" error=\"%s\"", url, err);
    return -1;
  }
  pd_cluster *cl = cluster_new(loop, core, 0);
  if (!cl) {
    pd_free(host);
    pd_free(password);
    return -1;
  }
  cl->host = host;
  cl->password = password;
  cl->port = port;
  cl->db = db;
  cl->timers_on = 1;
  core->wh_cluster = 1; /* occupancy and membership webhooks: decided in Redis */
  uv_timer_init(loop, &cl->retry);
  cl->retry.data = cl;
  uv_timer_init(loop, &cl->hb);
  cl->hb.data = cl;
  uv_timer_start(&cl->hb, hb_cb, HB_MS, HB_MS);
  pd_log(PD_LOG_INFO, "msg=\"cluster mode\" redis_host=%s redis_port=%d node=%s", cl->host, cl->port, cl->node);
  cluster_connect(cl);
  *out = cl;
  return 0;
}

void pd_redis_stop(pd_redis *cl) {
  if (!cl || cl->stopping) return;
  for (size_t i = 0; cl->apps && i < cl->napps; i++) {
    json_t *o = json_pack("{s:s}", "t", "bye");
    if (o) publish_obj(cl->apps[i], o);
    wh_call(cl->apps[i], "leave", 0, NULL, NULL); /* its transitions are sent by this node */
  }
  /* core->wh_cluster stays set: after "leave" this node decides nothing */
  cl->stopping = 1;
  if (cl->timers_on) {
    uv_timer_stop(&cl->retry);
    uv_timer_stop(&cl->hb);
    uv_close((uv_handle_t *)&cl->retry, NULL);
    uv_close((uv_handle_t *)&cl->hb, NULL);
  }
  /* pending PUBLISHes (the bye) are written before the connection closes */
  if (cl->pub) redisAsyncDisconnect(cl->pub);
  if (cl->sub) redisAsyncDisconnect(cl->sub);
}

/* ------------------------------------------------------------------ status */
int pd_redis_link_up(const pd_redis *cl) { return cl && cl->pub_up && cl->sub_up; }

size_t pd_redis_peers(const pd_redis *cl, const pd_app *app) {
  if (!cl || !app || app->core != cl->core || app->idx >= cl->napps) return 0;
  return cl->apps[app->idx]->nodes.n;
}
