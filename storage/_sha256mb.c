/* Two-lane SHA-256 compression with the x86 SHA extensions (SHA-NI).
 *
 * Why: on CPUs whose SHA256RNDS2 has a latency of several cycles but issues more often (AMD Zen,
 * recent Intel), one SHA-256 stream is latency-bound: OpenSSL reaches ~1.5 GB/s per core here.
 * Two independent streams interleaved in one instruction stream fill those idle cycles (the
 * "multi-buffer" technique of Intel's ISA-L crypto): ~1.9x the bytes per core. The registry
 * pairs the files of a version this way when it copies and verifies them.
 *
 * This module only compresses whole 64-byte blocks into caller-held states (8 native uint32,
 * a bytearray of 32 bytes); padding and digests are done in storage/sha256mb.py, which also
 * falls back to hashlib when this module was not built or the CPU lacks SHA-NI (available()).
 * The GIL is released while compressing. Digests are standard SHA-256 (FIPS 180-4); tests
 * compare them with hashlib on many lengths.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define TF_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define TF_SHANI 0
#endif

#if TF_SHANI
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define TF_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* state words a..h -> the ABEF / CDGH register layout SHA256RNDS2 works on, and back */
TF_TARGET static inline void load_state(const uint32_t *s, __m128i *abef, __m128i *cdgh) {
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[0]), 0xB1);
    __m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&s[4]), 0x1B);
    *abef = _mm_alignr_epi8(t, u, 8);
    *cdgh = _mm_blend_epi16(u, t, 0xF0);
}

TF_TARGET static inline void store_state(uint32_t *s, __m128i abef, __m128i cdgh) {
    __m128i t = _mm_shuffle_epi32(abef, 0x1B);
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&s[0], _mm_blend_epi16(t, cdgh, 0xF0));
    _mm_storeu_si128((__m128i *)&s[4], _mm_alignr_epi8(cdgh, t, 8));
}

/* four rounds with message quad M (already byte-swapped) and constants K[4q..4q+3] */
#define QROUND(S0, S1, M, q)                                                          \
    do {                                                                               \
        __m128i m_ = _mm_add_epi32((M), _mm_loadu_si128((const __m128i *)&K256[4 * (q)])); \
        S1 = _mm_sha256rnds2_epu32(S1, S0, m_);                                        \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                              \
        S0 = _mm_sha256rnds2_epu32(S0, S1, m_);                                        \
    } while (0)

/* W[t..t+3] for the quad 4 ahead, in place of W0: sigma0/sigma1 via SHA256MSG1/MSG2 */
#define SCHED(W0, W1, W2, W3) \
    W0 = _mm_sha256msg2_epu32( \
        _mm_add_epi32(_mm_sha256msg1_epu32(W0, W1), _mm_alignr_epi8(W3, W2, 4)), W3)

TF_TARGET static void compress1(uint32_t *st, const uint8_t *p, size_t nblocks) {
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i s0, s1;
    load_state(st, &s0, &s1);
    for (size_t b = 0; b < nblocks; b++, p += 64) {
        __m128i a0 = s0, a1 = s1, w[4];
        for (int i = 0; i < 4; i++)
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), MASK);
        _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) {
            QROUND(s0, s1, w[q & 3], q);
            if (q < 12) SCHED(w[q & 3], w[(q + 1) & 3], w[(q + 2) & 3], w[(q + 3) & 3]);
        }
        s0 = _mm_add_epi32(s0, a0);
        s1 = _mm_add_epi32(s1, a1);
    }
    store_state(st, s0, s1);
}

/* two independent streams of the same number of blocks, interleaved round by round */
TF_TARGET static void compress2(uint32_t *sa, const uint8_t *pa, uint32_t *sb, const uint8_t *pb,
                                size_t nblocks) {
    const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i x0, x1, y0, y1;
    load_state(sa, &x0, &x1);
    load_state(sb, &y0, &y1);
    for (size_t b = 0; b < nblocks; b++, pa += 64, pb += 64) {
        __m128i ax0 = x0, ax1 = x1, ay0 = y0, ay1 = y1, w[4], v[4];
        for (int i = 0; i < 4; i++) {
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pa + 16 * i)), MASK);
            v[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(pb + 16 * i)), MASK);
        }
        _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) {
            QROUND(x0, x1, w[q & 3], q);
            QROUND(y0, y1, v[q & 3], q);
            if (q < 12) {
                SCHED(w[q & 3], w[(q + 1) & 3], w[(q + 2) & 3], w[(q + 3) & 3]);
                SCHED(v[q & 3], v[(q + 1) & 3], v[(q + 2) & 3], v[(q + 3) & 3]);
            }
        }
        x0 = _mm_add_epi32(x0, ax0);
        x1 = _mm_add_epi32(x1, ax1);
        y0 = _mm_add_epi32(y0, ay0);
        y1 = _mm_add_epi32(y1, ay1);
    }
    store_state(sa, x0, x1);
    store_state(sb, y0, y1);
}

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 9)) || !(c & (1u << 19))) return 0; /* SSSE3, SSE4.1 */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA */
}
#else
static int cpu_has_shani(void) { return 0; }
#endif

static int HAVE = 0;

/* a writable 32-byte state and a read-only whole-block buffer */
static int get_state(PyObject *o, Py_buffer *v, const char *what) {
    if (PyObject_GetBuffer(o, v, PyBUF_WRITABLE | PyBUF_SIMPLE) < 0) return -1;
    if (v->len != 32) {
        PyErr_Format(PyExc_ValueError, "%s: state must be 32 bytes, got %zd", what, v->len);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

static int get_blocks(PyObject *o, Py_buffer *v, const char *what) {
    if (PyObject_GetBuffer(o, v, PyBUF_SIMPLE) < 0) return -1;
    if (v->len % 64) {
        PyErr_Format(PyExc_ValueError, "%s: length %zd is not a multiple of 64", what, v->len);
        PyBuffer_Release(v);
        return -1;
    }
    return 0;
}

static PyObject *py_available(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyBool_FromLong(HAVE);
}

static PyObject *py_compress(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *so, *do_;
    Py_buffer s, d;
    if (!PyArg_ParseTuple(args, "OO:compress", &so, &do_)) return NULL;
    if (!HAVE) return PyErr_Format(PyExc_RuntimeError, "SHA-NI is not available on this CPU");
    if (get_state(so, &s, "compress") < 0) return NULL;
    if (get_blocks(do_, &d, "compress") < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
#if TF_SHANI
    Py_BEGIN_ALLOW_THREADS compress1((uint32_t *)s.buf, (const uint8_t *)d.buf, (size_t)d.len / 64);
    Py_END_ALLOW_THREADS
#endif
    PyBuffer_Release(&d);
    PyBuffer_Release(&s);
    Py_RETURN_NONE;
}

static PyObject *py_compress2(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *sao, *dao, *sbo, *dbo;
    Py_buffer sa, da, sb, db;
    if (!PyArg_ParseTuple(args, "OOOO:compress2", &sao, &dao, &sbo, &dbo)) return NULL;
    if (!HAVE) return PyErr_Format(PyExc_RuntimeError, "SHA-NI is not available on this CPU");
    if (get_state(sao, &sa, "compress2 a") < 0) return NULL;
    if (get_state(sbo, &sb, "compress2 b") < 0) goto e1;
    if (sa.buf == sb.buf) {
        PyErr_SetString(PyExc_ValueError, "compress2: the two lanes share one state");
        goto e2;
    }
    if (get_blocks(dao, &da, "compress2 a") < 0) goto e2;
    if (get_blocks(dbo, &db, "compress2 b") < 0) goto e3;
    if (da.len != db.len) {
        PyErr_Format(PyExc_ValueError, "compress2: lanes differ in length (%zd, %zd)", da.len,
                     db.len);
        goto e4;
    }
#if TF_SHANI
    Py_BEGIN_ALLOW_THREADS compress2((uint32_t *)sa.buf, (const uint8_t *)da.buf,
                                     (uint32_t *)sb.buf, (const uint8_t *)db.buf,
                                     (size_t)da.len / 64);
    Py_END_ALLOW_THREADS
#endif
    PyBuffer_Release(&db);
    PyBuffer_Release(&da);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&sa);
    Py_RETURN_NONE;
e4:
    PyBuffer_Release(&db);
e3:
    PyBuffer_Release(&da);
e2:
    PyBuffer_Release(&sb);
e1:
    PyBuffer_Release(&sa);
    return NULL;
}

static PyMethodDef METHODS[] = {
    {"available", py_available, METH_NOARGS, "True if this CPU has the SHA extensions."},
    {"compress", py_compress, METH_VARARGS,
     "compress(state, blocks): SHA-256 compress whole 64-byte blocks into state (32 bytes)."},
    {"compress2", py_compress2, METH_VARARGS,
     "compress2(state_a, blocks_a, state_b, blocks_b): two streams of equal length at once."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_sha256mb",
                                    "Two-lane SHA-256 block compression (SHA-NI).", -1, METHODS};

PyMODINIT_FUNC PyInit__sha256mb(void) {
    HAVE = cpu_has_shani();
    return PyModule_Create(&MODULE);
}
