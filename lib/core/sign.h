/* Pusher signatures (docs/protocol.md: "Signatures", "Request signing",
 * "Webhooks"), shared by the client, the `pusher` CLI and the server pusherd.
 *
 *  - hex HMAC-SHA256 and hex MD5 primitives (lowercase hex);
 *  - channel authorization  "<key>:" hex HMAC(secret, "<socket_id>:<channel>[:<channel_data>]");
 *  - user authentication    "<key>:" hex HMAC(secret, "<socket_id>::user::<user_data>");
 *  - REST request signing, auth_version 1.0 (client side: build the signed
 *    query string; server side: rebuild the string to sign and verify);
 *  - verification with a constant-time comparison (sodium_memcmp);
 *  - socket_id and channel name validation as the server SDKs do it.
 *
 * Pure functions: no I/O, no clock (timestamps are parameters), no global
 * state.  Every returned error is a negative pusher_error.  Strings are
 * UTF-8 bytes and are signed exactly as given. */
#ifndef PUSHER_CORE_SIGN_H
#define PUSHER_CORE_SIGN_H

#include <pusher/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PUSHER__SHA256_HEX_SIZE 65 /* 64 hex digits + NUL */
#define PUSHER__MD5_HEX_SIZE 33    /* 32 hex digits + NUL */
#define PUSHER__SOCKET_ID_MAX 64   /* longest socket_id accepted (bytes) */
#define PUSHER__CHANNEL_NAME_MAX 200

/* ------------------------------------------------------------ primitives */

/* Lowercase hex of n bytes into out, which must hold 2n+1 bytes (NUL-terminated). */
void pusher__hex_encode(const uint8_t *in, size_t n, char *out);

/* hex HMAC-SHA256(key, msg), keys of any length (libsodium).
 * PUSHER_ERR_INTERNAL if libsodium cannot be initialised. */
int pusher__hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
                            char out[PUSHER__SHA256_HEX_SIZE]);
/* Same over the concatenation of nparts pieces (no copy is made). */
int pusher__hmac_sha256_hex_parts(const void *key, size_t keylen, const char *const *parts,
                                  const size_t *lens, size_t nparts,
                                  char out[PUSHER__SHA256_HEX_SIZE]);
/* hex MD5(data) (core/hash.h: non-secret use only). */
int pusher__md5_hex(const void *data, size_t len, char out[PUSHER__MD5_HEX_SIZE]);

/* Constant-time equality of two NUL-terminated strings (time depends only
 * on the lengths).  Returns 1 when equal, 0 otherwise. */
int pusher__ct_streq(const char *a, const char *b);

/* ------------------------------------------------------------ validation */

/* 1 when s matches ^[0-9]+\.[0-9]+$ and is at most PUSHER__SOCKET_ID_MAX bytes. */
int pusher__valid_socket_id(const char *s);
/* 1 when s is 1..PUSHER__CHANNEL_NAME_MAX bytes of [A-Za-z0-9_\-=@,.;]
 * (the server SDKs' rule; '#' is reserved for #server-to-user-). */
int pusher__valid_channel_name(const char *s);
/* Same with an explicit length limit (pusherd's per-app maxNameLength). */
int pusher__valid_channel_name_n(const char *s, size_t max_len);

/* ------------------------------------------------------------ channel / user auth */

/* Size of the buffer needed for an "<key>:<hexsig>" auth string. */
size_t pusher__auth_size(const char *app_key);

/* Channel authorization: out = "<app_key>:" hex HMAC(secret, socket_id ":" channel
 * [":" channel_data]).  channel_data NULL = private/private-encrypted (no
 * third part); non-NULL = presence, signed exactly as given.
 * PUSHER_ERR_INVALID_ARGUMENT for NULL arguments, PUSHER_ERR_TOO_LARGE when
 * outlen < pusher__auth_size(app_key).  No validation of socket_id/channel:
 * call the validators first when the input is untrusted. */
int pusher__sign_channel(const char *app_key, const char *secret, const char *socket_id,
                         const char *channel, const char *channel_data, char *out,
                         size_t outlen);
/* User sign-in: out = "<app_key>:" hex HMAC(secret, socket_id "::user::" user_data). */
int pusher__sign_user(const char *app_key, const char *secret, const char *socket_id,
                      const char *user_data, char *out, size_t outlen);

/* Verify a client-supplied auth string against the expected one, comparing
 * the whole "<key>:<hexsig>" text in constant time.  0 = valid,
 * PUSHER_ERR_AUTH = mismatch (or NULL auth), PUSHER_ERR_INVALID_ARGUMENT for
 * NULL key/secret/socket_id/channel. */
int pusher__verify_channel(const char *app_key, const char *secret, const char *socket_id,
                           const char *channel, const char *channel_data, const char *auth);
int pusher__verify_user(const char *app_key, const char *secret, const char *socket_id,
                        const char *user_data, const char *auth);
/* Verify hex HMAC-SHA256(secret, msg) == hexsig (constant time; hex digits
 * compared case-insensitively).  Webhooks' X-Pusher-Signature.  0 or
 * PUSHER_ERR_AUTH. */
int pusher__verify_hmac_hex(const char *secret, const void *msg, size_t msglen,
                            const char *hexsig);

/* ------------------------------------------------------------ REST (auth_version 1.0) */

/* The string to sign: METHOD "\n" PATH "\n" k1=v1&k2=v2... where the query
 * is every pair of params except auth_signature, keys lowercased, sorted by
 * key (then value), values NOT escaped.  method is uppercased.  *out is
 * allocated with mem (NUL-terminated; free with pusher__free(mem, ...)).
 * PUSHER_ERR_INVALID_ARGUMENT for NULL method/path or a NULL name/value. */
int pusher__rest_string_to_sign(const pusher_mem *mem, const char *method, const char *path,
                                const pusher_kv *params, size_t nparams, char **out);

/* Client side.  Builds the whole query string (without the leading '?') for
 * a request: the caller's params plus auth_key, auth_timestamp, auth_version=1.0,
 * body_md5 (only when body_len > 0) and auth_signature, in sorted order,
 * values percent-encoded for a URL (RFC 3986 unreserved characters and ','
 * are kept).  params must not contain the reserved auth_* / body_md5 keys
 * (PUSHER_ERR_INVALID_ARGUMENT).  *query_out allocated with mem.
 * signature_out (may be NULL) receives the hex auth_signature. */
int pusher__rest_sign(const pusher_mem *mem, const char *method, const char *path,
                      const pusher_kv *params, size_t nparams, const void *body,
                      size_t body_len, const char *app_key, const char *secret,
                      int64_t timestamp, char **query_out,
                      char signature_out[PUSHER__SHA256_HEX_SIZE]);

/* Server side.  params are the request's decoded query pairs (including the
 * auth_* ones).  Checks, in order: auth_key present and equal to app_key,
 * auth_timestamp present, an integer, and |now - ts| <= max_skew (skip with
 * max_skew < 0), auth_version == "1.0", body_md5 present and equal to the
 * MD5 of body when body_len > 0, auth_signature equal (constant time) to the
 * expected one.  0 when valid, else PUSHER_ERR_AUTH with a one-line reason
 * in why (may be NULL) in the style of Pusher's own error texts, e.g.
 * "Invalid signature: you should have sent HmacSHA256Hex(\"...\", your_secret_key), but you sent \"...\"".
 * PUSHER_ERR_NOMEM on allocation failure. */
int pusher__rest_verify(const pusher_mem *mem, const char *method, const char *path,
                        const pusher_kv *params, size_t nparams, const void *body,
                        size_t body_len, const char *app_key, const char *secret, int64_t now,
                        int64_t max_skew, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
