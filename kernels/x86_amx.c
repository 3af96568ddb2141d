/*
 * kernels/x86_amx.c — the AMX-INT8 tile path of the ternary prefill GEMM (Sapphire Rapids and
 * later). Built with -mamx-tile -mamx-int8 plus the AVX-512 flags; selected by krn_init() only
 * when cpuid reports AMX-TILE + AMX-INT8 and Linux grants the tile-data permission.
 *
 * TDPBUSD computes C[i][j] += sum_k A[i][k] (u8) * B[k/4][4j + k%4] (s8) on 16x64-byte tiles.
 * Here A = activations as u8 (q + 128; 16 tokens x 64 k) and B = unpacked weight codes c + 1
 * (s8 in {0,1,2}): one B row (64 bytes) = 16 weight rows x 4 k, which is exactly one unpacked
 * I2 plane, so the packed format feeds B without any transpose (quant.h).
 *   C[t][r] = sum_k (q + 128)(c + 1) = dot(c + 1, q) + 128 * csum[r]
 *   y = (float)(C - 128 * csum[r] - sum_t) * (d * scale_t)      (same float ops as _ref)
 * Bound: (q + 128) <= 255, (c + 1) <= 2: |C| <= 510 * K < 2^31 for K <= 4.2M (checked by
 * KRN_I2_MAX_K / 2 below; larger K falls back to AVX-512).
 * Blocking: 2 row groups (32 weight rows, 2 B tiles) x 2 token tiles (32 tokens, 2 A tiles) ->
 * 4 C accumulators per 64-column chunk: 4 TDPBUSD per 4 tile loads. Each row group is unpacked
 * once (16 x k_pad bytes) and reused for all token tiles. Scratch buffers are thread-local
 * and kept for the thread's lifetime (the pool's threads live as long as the pool).
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/dispatch.h"
#include "kernels/quant.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int krn_amx_enable(void)
{
    static int state = -1;
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (s < 0) {
        s = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
        __atomic_store_n(&state, s, __ATOMIC_RELEASE);
    }
    return s;
}

/* Per-thread scratch kept between calls (no malloc or page faults per call); freed by the
 * thread-exit destructor of a pthread key. */
struct amx_scratch {
    uint8_t *xu; /* [n_pad][k_pad] activations as u8 */
    uint8_t *wb; /* [2][k_pad/64][16][64] unpacked B tiles of two row groups */
    size_t xu_cap, wb_cap;
    int32_t c[4 * 16 * 16] __attribute__((aligned(64))); /* 4 C tiles */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    struct amx_scratch *sc = p;
    free(sc->xu);
    free(sc->wb);
    free(sc);
}

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

static struct amx_scratch *scratch_get(size_t xu_bytes, size_t wb_bytes)
{
    pthread_once(&scratch_once, scratch_init);
    struct amx_scratch *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = aligned_alloc(64, sizeof(*sc));
        if (!sc)
            return NULL;
        memset(sc, 0, sizeof(*sc));
        pthread_setspecific(scratch_key, sc);
    }
    if (sc->xu_cap < xu_bytes) {
        free(sc->xu);
        sc->xu = aligned_alloc(64, xu_bytes);
        sc->xu_cap = sc->xu ? xu_bytes : 0;
    }
    if (sc->wb_cap < wb_bytes) {
        free(sc->wb);
        sc->wb = aligned_alloc(64, wb_bytes);
        sc->wb_cap = sc->wb ? wb_bytes : 0;
    }
    return sc->xu && sc->wb ? sc : NULL;
}

struct tile_cfg {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed, aligned(64)));

/* Unpack row group g into wb[k_pad/64][16][64]: B tiles, one per 64-column chunk. */
static void unpack_group(const krn_w_view *w, size_t g, uint8_t *wb)
{
    const size_t nb = w->k_pad / 16;
    const uint8_t *p = w->data + 64 * g * nb;
    const __m512i m3 = _mm512_set1_epi8(3);
    for (size_t b = 0; b < nb; b++) {
        __m512i v = _mm512_loadu_si512(p + 64 * b);
        uint8_t *o = wb + 256 * b; /* chunk b/4, B rows 4*(b%4) .. +3 */
        _mm512_store_si512(o, _mm512_and_si512(v, m3));
        _mm512_store_si512(o + 64, _mm512_and_si512(_mm512_srli_epi16(v, 2), m3));
        _mm512_store_si512(o + 128, _mm512_and_si512(_mm512_srli_epi16(v, 4), m3));
        _mm512_store_si512(o + 192, _mm512_and_si512(_mm512_srli_epi16(v, 6), m3));
    }
}

static void finish(const krn_w_view *w, const krn_act_view *x, const int32_t *c, size_t g,
                   size_t t0, size_t g0, float *y, size_t ldy)
{
    __m512i cs = _mm512_slli_epi32(_mm512_loadu_si512(w->csum + 16 * g), 7);
    for (size_t t = t0; t < t0 + 16 && t < x->n; t++) {
        __m512i v = _mm512_sub_epi32(_mm512_loadu_si512(c + 16 * (t - t0)), cs);
        v = _mm512_sub_epi32(v, _mm512_set1_epi32(x->sum[t]));
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(w->d * x->scale[t]));
        float *yt = y + t * ldy + 16 * (g - g0);
        if (16 * g + 16 <= w->m)
            _mm512_storeu_ps(yt, f);
        else
            _mm512_mask_storeu_ps(yt, (__mmask16)((1u << (w->m - 16 * g)) - 1), f);
    }
}

void krn_i2_gemm_amx(const krn_w_view *w, const krn_act_view *x, size_t g0, size_t g1, float *y,
                     size_t ldy)
{
    if (x->n < 16 || w->k_pad > KRN_I2_MAX_K / 2 || !krn_amx_enable()) {
        krn_i2_gemm_avx512(w, x, g0, g1, y, ldy);
        return;
    }
    const size_t kc = w->k_pad / 64, n_pad = (x->n + 31) / 32 * 32;
    struct amx_scratch *sc = scratch_get(n_pad * w->k_pad, 2 * 16 * w->k_pad);
    if (!sc) { /* no memory for the tiles: the AVX-512 path needs none */
        krn_i2_gemm_avx512(w, x, g0, g1, y, ldy);
        return;
    }
    uint8_t *xu = sc->xu, *wb = sc->wb;
    int32_t *cbuf = sc->c;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (size_t t = 0; t < n_pad; t++)
        for (size_t k = 0; k < w->k_pad; k += 64) {
            __m512i v =
                t < x->n ? _mm512_loadu_si512(x->q + t * x->ldq + k) : _mm512_setzero_si512();
            _mm512_store_si512(xu + t * w->k_pad + k, _mm512_xor_si512(v, flip));
        }
    struct tile_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) {
        cfg.rows[i] = 16;
        cfg.colsb[i] = 64;
    }
    _tile_loadconfig(&cfg);
    for (size_t g = g0; g < g1; g += 2) {
        size_t gb = g + 1 < g1 ? g + 1 : g; /* odd tail: compute g twice, keep one */
        unpack_group(w, g, wb);
        if (gb != g)
            unpack_group(w, gb, wb + 16 * w->k_pad);
        const uint8_t *wb1 = gb != g ? wb + 16 * w->k_pad : wb;
        for (size_t t0 = 0; t0 < n_pad; t0 += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            const uint8_t *a0 = xu + t0 * w->k_pad, *a1 = a0 + 16 * w->k_pad;
            for (size_t c = 0; c < kc; c++) {
                _tile_loadd(4, a0 + 64 * c, (long)w->k_pad);
                _tile_loadd(5, a1 + 64 * c, (long)w->k_pad);
                _tile_loadd(6, wb + 1024 * c, 64);
                _tile_loadd(7, wb1 + 1024 * c, 64);
                _tile_dpbusd(0, 4, 6);
                _tile_dpbusd(1, 5, 6);
                _tile_dpbusd(2, 4, 7);
                _tile_dpbusd(3, 5, 7);
            }
            _tile_stored(0, cbuf, 64);
            _tile_stored(1, cbuf + 256, 64);
            _tile_stored(2, cbuf + 512, 64);
            _tile_stored(3, cbuf + 768, 64);
            if (t0 < x->n)
                finish(w, x, cbuf, g, t0, g0, y, ldy);
            if (t0 + 16 < x->n)
                finish(w, x, cbuf + 256, g, t0 + 16, g0, y, ldy);
            if (gb != g) {
                if (t0 < x->n)
                    finish(w, x, cbuf + 512, gb, t0, g0, y, ldy);
                if (t0 + 16 < x->n)
                    finish(w, x, cbuf + 768, gb, t0 + 16, g0, y, ldy);
            }
        }
    }
    _tile_release();
}
