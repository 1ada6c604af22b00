/* pusherd net layer: libcurl loaded with dlopen() when webhooks are
 * configured (pd_curl.h; docs/webhooks.md, "libcurl at run time"). */
#include "net/pd_curl.h"
#include "core/pd_util.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

const pd_curl_api *pd_curl;

static pd_curl_api api;
static int initialised; /* curl_global_init done */

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym results are stored into function pointers");

#define FN(member, symbol) {#symbol, offsetof(pd_curl_api, member)}
static const struct {
  const char *symbol;
  size_t off;
} fns[] = {
    FN(global_init, curl_global_init),
    FN(global_cleanup, curl_global_cleanup),
    FN(version_info, curl_version_info),
    FN(easy_init, curl_easy_init),
    FN(easy_setopt, curl_easy_setopt),
    FN(easy_getinfo, curl_easy_getinfo),
    FN(easy_cleanup, curl_easy_cleanup),
    FN(easy_strerror, curl_easy_strerror),
    FN(slist_append, curl_slist_append),
    FN(slist_free_all, curl_slist_free_all),
    FN(multi_init, curl_multi_init),
    FN(multi_setopt, curl_multi_setopt),
    FN(multi_add_handle, curl_multi_add_handle),
    FN(multi_remove_handle, curl_multi_remove_handle),
    FN(multi_info_read, curl_multi_info_read),
    FN(multi_socket_action, curl_multi_socket_action),
    FN(multi_assign, curl_multi_assign),
    FN(multi_cleanup, curl_multi_cleanup),
};
#undef FN
_Static_assert(sizeof fns / sizeof *fns * sizeof(void *) == sizeof(pd_curl_api),
               "every member of pd_curl_api is resolved");

int pd_curl_load(char *err, size_t errlen) {
  static void *lib;
  if (pd_curl) return 0;
  if (!lib) {
    /* RTLD_LOCAL: its symbols serve only our table.  Never closed: the
     * handle lives as long as the process (a reload may need it again). */
    lib = dlopen(PD_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *why = dlerror();
      snprintf(err, errlen, "cannot load %s (needed by webhooks): %s", PD_CURL_SONAME, why ? why : "unknown error");
      return -1;
    }
  }
  pd_curl_api t;
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++) {
    dlerror();
    void *p = dlsym(lib, fns[i].symbol);
    if (!p) {
      const char *why = dlerror();
      snprintf(err, errlen, "%s: no function %s: %s", PD_CURL_SONAME, fns[i].symbol, why ? why : "NULL");
      return -1;
    }
    memcpy((char *)&t + fns[i].off, &p, sizeof p);
  }
  const curl_version_info_data *v = t.version_info(CURLVERSION_NOW);
  if (!v || v->version_num < PD_CURL_MIN_VERSION) {
    snprintf(err, errlen, "%s is libcurl %s; webhooks need 7.85.0 or later", PD_CURL_SONAME,
             v && v->version ? v->version : "(unknown version)");
    return -1;
  }
  CURLcode rc = t.global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    snprintf(err, errlen, "%s: curl_global_init failed: %s", PD_CURL_SONAME, t.easy_strerror(rc));
    return -1;
  }
  api = t;
  initialised = 1;
  pd_curl = &api;
  pd_log(PD_LOG_INFO, "msg=\"webhooks: libcurl loaded\" library=%s version=%s ssl=\"%s\"", PD_CURL_SONAME,
         v->version ? v->version : "?", v->ssl_version ? v->ssl_version : "none");
  return 0;
}

int pd_curl_needed(const pd_config *cfg) {
  for (size_t i = 0; i < cfg->napps; i++)
    if (cfg->apps[i]->nwebhooks) return 1;
  return 0;
}

int pd_curl_load_for(const pd_config *cfg, char *err, size_t errlen) {
  return pd_curl_needed(cfg) ? pd_curl_load(err, errlen) : 0;
}

void pd_curl_cleanup(void) {
  if (!initialised) return;
  api.global_cleanup();
  initialised = 0;
  pd_curl = NULL;
}
