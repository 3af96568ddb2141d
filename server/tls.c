/*
 * server/tls.c — see tls.h. Each connection has an SSL object between two memory BIOs:
 * `in` receives ciphertext from the socket, `out` collects ciphertext to send. After every
 * OpenSSL call we drain `out` through the out callback, so nothing waits in OpenSSL's buffers.
 */
#include "server/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

struct srv_tls_ctx {
    SSL_CTX *ssl;
};

struct srv_tls {
    SSL *ssl;
    BIO *in, *out; /* owned by ssl */
    srv_tls_out_fn out_fn;
    void *arg;
};

static void tls_errstr(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s: %s", what, buf);
    ERR_clear_error();
}

struct srv_tls_ctx *srv_tls_ctx_create(const char *cert, const char *key, char *err, size_t errlen)
{
    struct srv_tls_ctx *ctx = calloc(1, sizeof(*ctx));
    char what[512];
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!(ctx->ssl = SSL_CTX_new(TLS_server_method()))) {
        tls_errstr(err, errlen, "SSL_CTX_new");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx->ssl, cert) != 1) {
        snprintf(what, sizeof(what), "TLS certificate '%s'", cert);
        tls_errstr(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx->ssl, key, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "TLS key '%s'", key);
        tls_errstr(err, errlen, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx->ssl) != 1) {
        snprintf(what, sizeof(what), "TLS key '%s' does not match certificate '%s'", key, cert);
        tls_errstr(err, errlen, what);
        goto fail;
    }
    return ctx;
fail:
    srv_tls_ctx_free(ctx);
    return NULL;
}

void srv_tls_ctx_free(struct srv_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

struct srv_tls *srv_tls_create(struct srv_tls_ctx *ctx, srv_tls_out_fn out, void *arg)
{
    struct srv_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ssl = SSL_new(ctx->ssl);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        free(t);
        return NULL;
    }
    BIO_set_mem_eof_return(t->in, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    SSL_set_accept_state(t->ssl);
    t->out_fn = out;
    t->arg = arg;
    return t;
}

void srv_tls_free(struct srv_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

static void tls_flush(struct srv_tls *t)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(t->out, buf, sizeof(buf))) > 0)
        t->out_fn(t->arg, buf, (size_t)n);
}

int srv_tls_feed(struct srv_tls *t, const char *data, size_t len, srv_tls_plain_fn plain, void *arg,
                 char *err, size_t errlen)
{
    char buf[16384];
    if (len && BIO_write(t->in, data, (int)len) != (int)len) {
        snprintf(err, errlen, "TLS: out of memory");
        return -1;
    }
    for (;;) {
        int n = SSL_read(t->ssl, buf, sizeof(buf));
        if (n > 0) {
            plain(arg, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        tls_flush(t);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN) {
            snprintf(err, errlen, "TLS: peer closed the session");
            return -1;
        }
        tls_errstr(err, errlen, "TLS");
        return -1;
    }
}

int srv_tls_write(struct srv_tls *t, const char *data, size_t len)
{
    while (len) {
        int n = SSL_write(t->ssl, data, len > 1 << 30 ? 1 << 30 : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            tls_flush(t);
            return -1;
        }
        data += n;
        len -= (size_t)n;
        tls_flush(t);
    }
    return 0;
}

void srv_tls_shutdown(struct srv_tls *t)
{
    if (SSL_is_init_finished(t->ssl))
        SSL_shutdown(t->ssl);
    ERR_clear_error();
    tls_flush(t);
}
