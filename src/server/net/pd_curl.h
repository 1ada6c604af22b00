/* pusherd net layer: libcurl, loaded at run time (docs/webhooks.md,
 * "libcurl at run time").
 *
 * pusherd does not link libcurl: only the webhook sender uses it, and
 * loading libcurl with its dependencies (GnuTLS, Kerberos, LDAP, libssh2,
 * ...) and initialising it costs an idle pusherd several megabytes of
 * resident memory (bench/README.md).  pd_curl_load() opens libcurl.so.4
 * with dlopen() the first time a configuration has webhooks, resolves the
 * functions the sender calls into pd_curl, and runs curl_global_init().
 * <curl/curl.h> still gives the types and constants.
 *
 * Loop thread only (no lock): pusherd calls it at start and on a SIGHUP
 * reload, both on the loop. */
#ifndef PD_CURL_H
#define PD_CURL_H

#include <stddef.h>

#include <curl/curl.h>

#include "core/pd_config.h"

/* The soname opened (Debian's libcurl4; docs/man/pusherd.8 ENVIRONMENT). */
#define PD_CURL_SONAME "libcurl.so.4"
/* CURLOPT_PROTOCOLS_STR needs it (an older libcurl would ignore the
 * protocol restriction). */
#define PD_CURL_MIN_VERSION 0x075500 /* 7.85.0 */

typedef struct pd_curl_api {
  CURLcode (*global_init)(long flags);
  void (*global_cleanup)(void);
  curl_version_info_data *(*version_info)(CURLversion age);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
  CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
  void (*easy_cleanup)(CURL *e);
  const char *(*easy_strerror)(CURLcode rc);
  struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
  void (*slist_free_all)(struct curl_slist *l);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
  CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
  CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
  CURLMsg *(*multi_info_read)(CURLM *m, int *left);
  CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev_bitmask, int *running);
  CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *sockp);
  CURLMcode (*multi_cleanup)(CURLM *m);
} pd_curl_api;

/* NULL until pd_curl_load() succeeded; then the table (for the process's
 * life: libcurl stays loaded, a reload that removes every webhook does
 * not unload it). */
extern const pd_curl_api *pd_curl;

/* Loads and initialises libcurl once; later calls return 0 at once.  0, or
 * -1 with a message naming the library and the reason (dlerror(), a
 * missing function, a version older than PD_CURL_MIN_VERSION,
 * curl_global_init failing) in err. */
int pd_curl_load(char *err, size_t errlen);
/* 1 when some app of cfg has at least one webhook. */
int pd_curl_needed(const pd_config *cfg);
/* pd_curl_needed(cfg) ? pd_curl_load(err, errlen) : 0: at start (an error
 * ends pusherd) and before a reload is applied (an error refuses it). */
int pd_curl_load_for(const pd_config *cfg, char *err, size_t errlen);
/* curl_global_cleanup() if loaded (at exit; the library stays mapped). */
void pd_curl_cleanup(void);

#endif
