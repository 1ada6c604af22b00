/* libFuzzer: raw bytes from a socket into pusherd's TLS listener path
 * (net/tls.c): the wait for a whole first record before the SSL object is
 * made, OpenSSL's server handshake over memory BIOs, plain HTTP answered in
 * plain text, the failure path (the SSL dropped, later input ignored), and
 * the handshake deadline.  Detached connection: what would be written is
 * kept and dropped.  The first byte splits the input into two reads.  A
 * throw-away P-256 certificate is made at start in a temporary directory. */
#include "adapter/pd_local.h"
#include "net/pd_net.h"
#include "net/pd_tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pd_config cfg;
static pd_core core;
static pd_server srv;
static pd_tls_ctx *tls;
static int inited;

static void init(void) {
  pd_log_level = PD_LOG_OFF;
  pd_config_init(&cfg);
  pd_config_add_app(&cfg, pd_app_cfg_new("app-id", "app-key", "app-secret"));
  pd_core_init(&core, &cfg, &pd_adapter_local, NULL);
  pd_server_init(&srv, NULL, &cfg, &core);
  char dir[] = "/tmp/fuzz_server_tls_XXXXXX", cert[64], key[64], err[600];
  if (!mkdtemp(dir)) abort();
  snprintf(cert, sizeof cert, "%s/c.pem", dir);
  snprintf(key, sizeof key, "%s/k.pem", dir);
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1,
                             0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, k, EVP_sha256());
  FILE *f = fopen(cert, "w");
  PEM_write_X509(f, x);
  fclose(f);
  f = fopen(key, "w");
  PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(k);
  if (pd_tls_ctx_new(&tls, cert, key, err, sizeof err) != 0) abort();
  unlink(cert);
  unlink(key);
  rmdir(dir);
  inited = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!inited) init();
  if (size == 0) return 0;
  size_t cut = data[0] % (size + 1);
  data++, size--;
  if (cut > size) cut = size;
  pd_conn *c = pd_conn_new_detached(&srv);
  if (pd_tls_conn_start(c, tls) != 0) abort();
  pd_tls_conn_read(c, data, cut);
  pd_tls_conn_read(c, data + cut, size - cut);
  srv.fake_now_ms += 11000; /* past the handshake deadline */
  pd_server_tick(&srv);
  pd_conn_destroy(c);
  return 0;
}
