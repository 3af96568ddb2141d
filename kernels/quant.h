/*
 * kernels/quant.h — quantizers and packed weight formats of the ternary student.
 *
 * Math (DESIGN.md §1, the paper made exact):
 *   weights, per tensor (absmean):  d = mean(|W|),  c = clamp(round(W / (d + KRN_W_EPS)), -1, 1),
 *                                   W ~= d * c
 *   activations, per token (absmax): g = max|x|,  q = clamp(round(127 * x / (g + KRN_A_EPS)), -128, 127),
 *                                   x ~= (g / 127) * q
 *   round() is round-half-to-even (torch.round, the SIMD cvt default), everywhere.
 *   The exact float operations (so a trainer can reproduce the codes bit for bit, as the BitNet
 *   reference code does: multiply by a precomputed reciprocal):
 *     weights:     d = (float)(sum_double |W| / n);  c = clamp(rint(W * (1.0f / (d + KRN_W_EPS))))
 *     activations: c = clamp(rint(x * (127.0f / (g + KRN_A_EPS))))
 *
 * Output of a ternary linear layer for token t, output row m (gemm.h):
 *   y[t][m] = d * (g_t / 127) * (dot(c_m + 1, q_t) - sum(q_t))
 * The codes are stored as c + 1 in {0,1,2} (an unsigned byte operand for vpdpbusd / maddubs /
 * TDPBUSD) and the "+1" is taken back out with the per-token sum of the quantized activations.
 *
 * ---------------------------------------------------------------------------------------------
 * Layout "I2" (krn_i2): M x K ternary matrix (M output rows, K inputs; row-major W[m][k]).
 *   K is padded to k_pad = round_up(K, 64); M to m_pad = round_up(M, 16). Padding codes are
 *   c = 0 (stored 1), so padded weights contribute nothing and unpack gives zeros.
 *   Rows form groups of 16 (KRN_I2_ROWS); a group's K is cut into blocks of 16 columns; one
 *   block is one 64-byte "interleaved plane":
 *       byte[4*r + j] bits [2p, 2p+1]  =  c[16*g + r][16*b + 4*p + j] + 1
 *       r = row in group 0..15, p = plane 0..3, j = 0..3
 *   so (byte >> 2p) & 3 over the 64 bytes is the vpdpbusd operand "16 rows x 4 consecutive k"
 *   (one int32 lane per row), AVX2 uses the two 32-byte halves (rows 0-7, 8-15), NEON the four
 *   16-byte quarters (rows 0-3 ... 12-15), and AMX uses the unpacked planes directly as rows of
 *   its B tile. Blocks are stored group-major: block (g, b) at offset 64 * (g * k_pad/16 + b).
 *   Size: m_pad * k_pad / 4 bytes (2 bits per weight) + one int32 code sum per row (AMX).
 *
 * Layout "Q8" (krn_q8, LM head / embeddings, INT8 per row):
 *   w8 = clamp(round(W[m][k] / s_m), -127, 127), s_m = max_k |W[m][k]| / 127 (s_m = 0 for a zero
 *   row). Stored as u8 = w8 + 128, groups of 16 rows, chunks of 4 columns, 64 bytes per chunk:
 *       byte[64 * (g * k_pad/4 + k/4) + 4*r + k%4] = w8[16*g + r][k] + 128,   padding 128 (= 0)
 *   y[t][m] = s_m * (g_t/127) * (dot(w8 + 128, q_t) - 128 * sum(q_t)).
 *
 * Layout "Q4" (krn_q4, 4-bit block-scaled): blocks of 32 columns along K (KRN_Q4_BLOCK). The
 *   block scale is stored as an IEEE binary16 (fp16) number, and the codes are computed with the
 *   ROUNDED scale, so dequantization is exactly code * scale:
 *     s[m][b] = f16(max |W[m][32b..32b+31]| / 7)       (f16(): round to nearest even, krn_f32_to_f16)
 *     w4 = clamp(rint(W / f32(s[m][b])), -7, 7)        (division by the fp16 scale read back to fp32;
 *                                                      s = 0: w4 = 0)
 *   The float operations, exactly: amax = fmaxf over |W| of the block; s16 = krn_f32_to_f16(amax
 *   / 7.0f); s = krn_f16_to_f32(s16); c = s > 0 ? rintf(W / s) : 0, clamped. A scale that
 *   rounds to fp16 Inf (amax / 7 >= 65520) is refused (KRN_ERANGE).
 *   Codes are stored w4 + 8 in {1..15} (padding 8 = 0). Per (group g, block b): 256 code bytes
 *   then nothing else; chunk c = 0..3 of 64 bytes:
 *       byte[4*r + j] = (w4[r][32b+8c+j] + 8) | (w4[r][32b+8c+4+j] + 8) << 4.
 *   Scales are a separate array of fp16 bit patterns s[g][b][16] (16 rows of a group contiguous).
 *   4.5 bits/weight. Every kernel variant converts a scale to fp32 (exact: every fp16 value is an
 *   fp32 value) and then computes
 *   y[t][m] = (g_t/127) * sum_b fma-ordered( s[m][b] * (dot_b(w4 + 8, q_t) - 8 * bsum_b(q_t)) ),
 *   accumulated in block order with fmaf, so every variant is bit-exact with _ref.
 *
 * int32 bounds (no int16 anywhere except AVX2 maddubs pairs, bounded below):
 *   I2: |c+1| <= 2, |q| <= 128, so |dot| <= 256 * K; int32 holds it for K <= 8,388,607.
 *       AVX2 maddubs pair sums <= 2*2*128 = 512 < 32767 (no saturation).
 *   Q8: (w8+128) <= 255, so |dot| <= 255 * 128 * K = 32640 K < 2^31 for K <= 65,793.
 *   Q4: (w4+8) <= 15 per block of 32, |dot_b| <= 15*128*32 = 61440; the sum over blocks is fp32.
 *   Creation refuses larger K with KRN_ETOOBIG: K <= KRN_I2_MAX_K, KRN_Q8_MAX_K.
 */
#ifndef BD_KERNELS_QUANT_H
#define BD_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define KRN_W_EPS 1e-5f /* absmean epsilon of the weight quantizer */
#define KRN_A_EPS 1e-5f /* absmax epsilon of the activation quantizer */
#define KRN_I2_ROWS 16  /* rows per group in I2/Q8/Q4 */
#define KRN_KPAD 64     /* K is padded to a multiple of this in every format and in krn_qact */
#define KRN_Q4_BLOCK 32 /* Q4 block length along K */
#define KRN_I2_MAX_K 8388607u
#define KRN_Q8_MAX_K 65536u

/* round_up(k, KRN_KPAD) */
static inline size_t krn_kpad(size_t k)
{
    return (k + KRN_KPAD - 1) / KRN_KPAD * KRN_KPAD;
}

/* ---------------------------------------------------------------------------------------------
 * Ternary weight quantizer (absmean), the unpacked form.
 * w: [m][k] fp32 (borrowed; ld = k). codes: [m][k] int8 in {-1,0,1} (caller's buffer).
 * *scale = d = mean(|W|) (sum in double). Non-finite weights: NaN -> code 0, +-Inf -> +-1 and
 * excluded from the mean; returns KRN_ENONFINITE in that case (output still written), else KRN_OK.
 */
int krn_ternary_quantize(const float *w, size_t m, size_t k, int8_t *codes, float *scale);

/* ---------------------------------------------------------------------------------------------
 * krn_i2: a packed ternary matrix (opaque, immutable after creation, shareable across threads).
 */
typedef struct krn_i2 krn_i2;

/* Quantize fp32 w [m][k] (borrowed) with krn_ternary_quantize and pack. On success *out owns a
 * new object (free with krn_i2_free). Returns KRN_OK, KRN_ENONFINITE (object still made),
 * KRN_EINVAL (m or k zero), KRN_ETOOBIG, KRN_ENOMEM. */
int krn_i2_create(const float *w, size_t m, size_t k, krn_i2 **out);

/* Pack already-quantized codes [m][k] in {-1,0,1} with tensor scale d (from a student file).
 * KRN_EINVAL if a code is outside {-1,0,1}. */
int krn_i2_create_codes(const int8_t *codes, size_t m, size_t k, float d, krn_i2 **out);

/* Wrap an existing packed buffer (e.g. mmapped from a student file) without copying: `packed`
 * (borrowed, must outlive the object) holds m_pad * k_pad / 4 bytes in the I2 layout above. The
 * per-row code sums are computed here. Any alignment is accepted. */
int krn_i2_create_packed(const uint8_t *packed, size_t m, size_t k, float d, krn_i2 **out);

void krn_i2_free(krn_i2 *w); /* NULL is a no-op */

size_t krn_i2_rows(const krn_i2 *w);         /* M */
size_t krn_i2_cols(const krn_i2 *w);         /* K */
float krn_i2_scale(const krn_i2 *w);         /* d */
size_t krn_i2_bytes(const krn_i2 *w);        /* packed bytes: m_pad * k_pad / 4 */
const uint8_t *krn_i2_data(const krn_i2 *w); /* packed bytes (reference, for writing files) */

/* Unpack back to codes [m][k] in {-1,0,1} (caller's buffer). */
void krn_i2_unpack(const krn_i2 *w, int8_t *codes);

/* ---------------------------------------------------------------------------------------------
 * krn_qact: quantized activations of up to max_tok tokens of k features (opaque; one per
 * forward context, reused every call; not shared between threads while being written).
 *   q     [max_tok][k_pad] int8, rows 64-byte aligned, columns k..k_pad-1 are 0
 *   scale [max_tok] fp32 = g_t / 127   (dequantization factor of q)
 *   sum   [max_tok] int32 = sum_k q[t][k]
 *   bsum  [max_tok][k_pad/32] int32 = sums over blocks of 32 (for Q4)
 */
typedef struct krn_qact krn_qact;

int krn_qact_create(size_t max_tok, size_t k, krn_qact **out);
void krn_qact_free(krn_qact *a); /* NULL is a no-op */

/* Quantize n tokens x [n][ldx] fp32 (borrowed; first k of each row used), replacing the
 * content. NaN/Inf contract: non-finite values are excluded from g; NaN quantizes to 0, +Inf to
 * +127, -Inf to -127; the call then returns KRN_ENONFINITE (output fully defined), else KRN_OK.
 * KRN_ESHAPE if n > max_tok. An all-zero token gives q = 0, scale 0. */
int krn_qact_quantize(krn_qact *a, const float *x, size_t n, size_t ldx);

/* Parallel form of krn_qact_quantize, for callers that quantize rows on several threads:
 * krn_qact_prepare sets the token count n (KRN_ESHAPE if n > max_tok; before the threads
 * start), then each token t < n is quantized once by krn_qact_quantize_row from x [k] fp32
 * (borrowed), on any thread (distinct t may run concurrently). Returns the number of
 * non-finite inputs of the row (same contract as above). */
int krn_qact_prepare(krn_qact *a, size_t n);
size_t krn_qact_quantize_row(krn_qact *a, size_t t, const float *x);

size_t krn_qact_tokens(const krn_qact *a);             /* n of the last quantize */
size_t krn_qact_cols(const krn_qact *a);               /* k */
const int8_t *krn_qact_q(const krn_qact *a, size_t t); /* row t (reference) */
float krn_qact_scale(const krn_qact *a, size_t t);
int32_t krn_qact_sum(const krn_qact *a, size_t t);

/* ---------------------------------------------------------------------------------------------
 * krn_q8 / krn_q4: LM head and embedding matrices [m][k] (opaque, immutable, shareable).
 */
typedef struct krn_q8 krn_q8;
typedef struct krn_q4 krn_q4;

/* Quantize fp32 w [m][k] (borrowed). Non-finite weights: KRN_ENONFINITE, object not made.
 * KRN_ETOOBIG for k > KRN_Q8_MAX_K (Q8 only); KRN_ERANGE (Q4) when a block's scale exceeds the
 * fp16 range (max |w| / 7 >= 65520). */
int krn_q8_create(const float *w, size_t m, size_t k, krn_q8 **out);
int krn_q4_create(const float *w, size_t m, size_t k, krn_q4 **out);
/* The Q4 quantizer alone (the formula of layout "Q4" above; krn_q4_create and the engine's
 * student quantizer both use it): w [m][k] fp32 (borrowed) -> codes [m][k] int8 in [-7, 7] and
 * scales [m][ceil(k/32)] fp16 bit patterns (caller's buffers). KRN_OK, KRN_EINVAL (m or k zero),
 * KRN_ENONFINITE (a NaN/Inf weight) or KRN_ERANGE (a scale beyond fp16); outputs then undefined. */
int krn_q4_quantize(const float *w, size_t m, size_t k, int8_t *codes, uint16_t *scales);
/* Build from already-quantized codes (a student file), exactly, without requantizing:
 *   Q8: codes [m][k] int8 (any value; w8 = code), scales [m] fp32 (s_m);
 *   Q4: codes [m][k] int8 in [-8, 7], scales [m][ceil(k/32)] fp16 bit patterns row-major
 *       (s[m][b]), each finite and not negative (KRN_EINVAL otherwise).
 * Both borrowed (any alignment) and copied. KRN_ETOOBIG as above. */
int krn_q8_create_codes(const int8_t *codes, const float *scales, size_t m, size_t k, krn_q8 **out);
int krn_q4_create_codes(const int8_t *codes, const uint16_t *scales, size_t m, size_t k,
                        krn_q4 **out);
void krn_q8_free(krn_q8 *w);
void krn_q4_free(krn_q4 *w);
size_t krn_q8_rows(const krn_q8 *w);
size_t krn_q8_cols(const krn_q8 *w);
size_t krn_q8_bytes(const krn_q8 *w); /* codes + scales */
size_t krn_q4_rows(const krn_q4 *w);
size_t krn_q4_cols(const krn_q4 *w);
size_t
krn_q4_bytes(const krn_q4 *w); /* codes + fp16 scales: m_pad * k_pad / 2 + 2 * m_pad * k_pad / 32 */

/* Dequantize row m into out[k] fp32 (embedding lookup; the tied head's input embeddings). */
void krn_q8_row(const krn_q8 *w, size_t m, float *out);
void krn_q4_row(const krn_q4 *w, size_t m, float *out);

/* ---------------------------------------------------------------------------------------------
 * IEEE binary16 (fp16) <-> fp32, scalar and exact for every input (kernels/half.c):
 * krn_f16_to_f32 is exact (subnormal halves become normal floats, Inf stays Inf, a NaN stays a
 * NaN with its payload, made quiet); krn_f32_to_f16 rounds to nearest, ties to even, overflows
 * to +-Inf (|f| >= 65520), underflows through the fp16 subnormals to +-0, NaN -> quiet NaN
 * with the top payload bits. Both equal the F16C / AArch64 FCVT instructions bit for bit. */
float krn_f16_to_f32(uint16_t h);
uint16_t krn_f32_to_f16(float f);

#endif
