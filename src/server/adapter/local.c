/* pusherd: the single-node adapter.  Nothing is published anywhere and
 * other nodes hold nothing. */
#include "adapter/pd_local.h"

static uint64_t node_num(void *ud) { return (void)ud, 0; }
static void event(pd_app *app, const char *channel, const char *ev, const char *data,
                  const char *except, void *ud) {
  (void)app, (void)channel, (void)ev, (void)data, (void)except, (void)ud;
}
static void frame(pd_app *app, const char *channel, const char *f, size_t len, const char *except,
                  void *ud) {
  (void)app, (void)channel, (void)f, (void)len, (void)except, (void)ud;
}
static void terminate(pd_app *app, const char *user_id, void *ud) { (void)app, (void)user_id, (void)ud; }
static void subs_changed(pd_channel *ch, void *ud) { (void)ch, (void)ud; }
static void member_changed(pd_channel *ch, const char *user_id, json_t *info, int joined, void *ud) {
  (void)ch, (void)user_id, (void)info, (void)joined, (void)ud;
}
static void user_changed(pd_app *app, const char *user_id, int online, void *ud) {
  (void)app, (void)user_id, (void)online, (void)ud;
}
static int user_remote(pd_app *app, const char *user_id, void *ud) {
  return (void)app, (void)user_id, (void)ud, 0;
}
static size_t remote_subs(pd_app *app, const char *channel, void *ud) {
  return (void)app, (void)channel, (void)ud, 0;
}
static int member_remote(pd_app *app, const char *channel, const char *user_id, void *ud) {
  return (void)app, (void)channel, (void)user_id, (void)ud, 0;
}
static void add_remote_members(pd_app *app, const char *channel, json_t *hash, json_t *ids, void *ud) {
  (void)app, (void)channel, (void)hash, (void)ids, (void)ud;
}
static void remote_channels(pd_app *app, const char *prefix, json_t *obj, void *ud) {
  (void)app, (void)prefix, (void)obj, (void)ud;
}

const pd_adapter pd_adapter_local = {
    .clustered = 0,
    .node_num = node_num,
    .event = event,
    .frame = frame,
    .terminate = terminate,
    .subs_changed = subs_changed,
    .member_changed = member_changed,
    .user_changed = user_changed,
    .user_remote = user_remote,
    .remote_subs = remote_subs,
    .member_remote = member_remote,
    .add_remote_members = add_remote_members,
    .remote_channels = remote_channels,
};
