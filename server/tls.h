/*
 * server/tls.h — TLS on a libuv stream through OpenSSL memory BIOs.
 *
 * The connection reads ciphertext from the socket and hands it to srv_tls_feed, which runs the
 * handshake and passes decrypted bytes to `plain`; srv_tls_write encrypts. Every ciphertext byte
 * OpenSSL produces (handshake records, application data, alerts) goes out through the `out`
 * callback given at creation, which writes it to the socket. TLS 1.2 and 1.3 only.
 */
#ifndef BD_SERVER_TLS_H
#define BD_SERVER_TLS_H

#include <stddef.h>

struct srv_tls_ctx;
struct srv_tls;

typedef void (*srv_tls_out_fn)(void *arg, const char *data, size_t len);
typedef void (*srv_tls_plain_fn)(void *arg, const char *data, size_t len);

/* Load a PEM certificate chain and key. Returns NULL with a message naming the file. */
struct srv_tls_ctx *srv_tls_ctx_create(const char *cert, const char *key, char *err, size_t errlen);
/* Drop the caller's reference; connections keep theirs. */
void srv_tls_ctx_free(struct srv_tls_ctx *ctx);

struct srv_tls *srv_tls_create(struct srv_tls_ctx *ctx, srv_tls_out_fn out, void *arg);
void srv_tls_free(struct srv_tls *t);

/*
 * Feed ciphertext from the peer; decrypted application bytes go to plain(arg, ...).
 * Returns 0, or -1 on a fatal TLS error (message in err): close the connection.
 */
int srv_tls_feed(struct srv_tls *t, const char *data, size_t len, srv_tls_plain_fn plain, void *arg,
                 char *err, size_t errlen);
/* Encrypt and send application bytes. Returns 0 or -1. */
int srv_tls_write(struct srv_tls *t, const char *data, size_t len);
/* Send close_notify. */
void srv_tls_shutdown(struct srv_tls *t);

#endif
