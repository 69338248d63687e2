/* Montgomery arithmetic on rows of fixed-width residues, for fedcore.crypto.montgomery.
 *
 * Why native: a Paillier histogram is millions of products mod n^2 and an encryption is
 * dozens of products mod p^2; in Python each product is a GMP multiplication plus a
 * division and a new object. Here residues live in flat arrays of 64-bit limbs (least
 * significant first), stay in Montgomery form (x R mod m, R = 2^(64 k)) between products,
 * and each product is mpn_mul_n plus a REDC from the public mpn API: no division, no
 * allocation. Every function checks its buffer sizes; the Python wrapper
 * (montgomery.py) owns the constants and converts in and out of Montgomery form.
 *
 * Not constant time: table lookups follow exponent digits, as the pure-Python tables do.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gmp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIMBS 64 /* 4096-bit moduli: n^2 of an 2048-bit key is 32 limbs */

typedef struct {
    const mp_limb_t *m;
    mp_size_t k;
    mp_limb_t minv; /* -m^-1 mod 2^64 */
} ring_t;

/* r = t R^-1 mod m for t < m^2 of 2k limbs (t is clobbered); r may not alias t. */
static void redc(mp_limb_t *r, mp_limb_t *t, const ring_t *ring)
{
    mp_size_t k = ring->k;
    for (mp_size_t i = 0; i < k; i++) {
        mp_limb_t u = t[i] * ring->minv;
        t[i] = mpn_addmul_1(t + i, ring->m, k, u); /* t[i] is now 0: keep the carry there */
    }
    mp_limb_t carry = mpn_add_n(r, t + k, t, k);
    if (carry || mpn_cmp(r, ring->m, k) >= 0)
        mpn_sub_n(r, r, ring->m, k);
}

/* r = a b R^-1 mod m; r may alias a or b. */
static void mont_mul(mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *b, const ring_t *ring)
{
    mp_limb_t t[2 * MAX_LIMBS];
    mpn_mul_n(t, a, b, ring->k);
    redc(r, t, ring);
}

static int get_ring(ring_t *ring, Py_buffer *modulus, unsigned long long minv)
{
    if (modulus->len % 8 || modulus->len == 0 || modulus->len > 8 * MAX_LIMBS) {
        PyErr_SetString(PyExc_ValueError, "modulus: 1 to 64 whole 64-bit limbs expected");
        return -1;
    }
    ring->m = (const mp_limb_t *)modulus->buf;
    ring->k = (mp_size_t)(modulus->len / 8);
    ring->minv = (mp_limb_t)minv;
    if (!(ring->m[0] & 1) || ring->m[ring->k - 1] == 0 || ring->m[0] * ring->minv != (mp_limb_t)-1) {
        PyErr_SetString(PyExc_ValueError, "modulus: an odd modulus with its top limb set and -m^-1 expected");
        return -1;
    }
    return 0;
}

static int check_rows(Py_buffer *b, const ring_t *ring, const char *what)
{
    if (b->len % (8 * ring->k)) {
        PyErr_Format(PyExc_ValueError, "%s: a whole number of %zd-limb rows expected", what, (Py_ssize_t)ring->k);
        return -1;
    }
    return 0;
}

/* mul_rows(modulus, minv, a, b) -> bytes: row i is a_i b_i R^-1 (b may be one row, used for all). */
static PyObject *mul_rows(PyObject *self, PyObject *args)
{
    Py_buffer mod, a, b;
    unsigned long long minv;
    if (!PyArg_ParseTuple(args, "y*Ky*y*", &mod, &minv, &a, &b))
        return NULL;
    PyObject *out = NULL;
    ring_t ring;
    if (get_ring(&ring, &mod, minv) || check_rows(&a, &ring, "a") || check_rows(&b, &ring, "b"))
        goto done;
    Py_ssize_t row = 8 * ring.k, rows = a.len / row;
    int broadcast = b.len == row;
    if (!broadcast && b.len != a.len) {
        PyErr_SetString(PyExc_ValueError, "b: one row or as many rows as a expected");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, a.len);
    if (!out)
        goto done;
    mp_limb_t *r = (mp_limb_t *)PyBytes_AS_STRING(out);
    const mp_limb_t *x = a.buf, *y = b.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows; i++)
        mont_mul(r + i * ring.k, x + i * ring.k, broadcast ? y : y + i * ring.k, &ring);
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return out;
}

/* sums_by_key(modulus, minv, one, rows, keys, size) -> bytes of size rows:
 * the Montgomery product of the rows of each key 0..size-1 (``one``, R mod m, where none). */
static PyObject *sums_by_key(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, rows, keys;
    unsigned long long minv;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*n", &mod, &minv, &one, &rows, &keys, &size))
        return NULL;
    PyObject *out = NULL;
    unsigned char *seen = NULL;
    ring_t ring;
    if (get_ring(&ring, &mod, minv) || check_rows(&rows, &ring, "rows"))
        goto done;
    Py_ssize_t row = 8 * ring.k, count = rows.len / row;
    if (one.len != row || keys.len != 8 * count || size < 0) {
        PyErr_SetString(PyExc_ValueError, "one: one row; keys: one int64 per row; size >= 0 expected");
        goto done;
    }
    const int64_t *key = keys.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (key[i] < 0 || key[i] >= size) {
            PyErr_SetString(PyExc_ValueError, "keys: each in [0, size) expected");
            goto done;
        }
    }
    out = PyBytes_FromStringAndSize(NULL, size * row);
    seen = PyMem_Calloc(size ? size : 1, 1);
    if (!out || !seen) {
        Py_CLEAR(out);
        PyErr_NoMemory();
        goto done;
    }
    mp_limb_t *acc = (mp_limb_t *)PyBytes_AS_STRING(out);
    const mp_limb_t *x = rows.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        mp_limb_t *slot = acc + key[i] * ring.k;
        if (seen[key[i]]) {
            mont_mul(slot, slot, x + i * ring.k, &ring);
        } else {
            memcpy(slot, x + i * ring.k, row);
            seen[key[i]] = 1;
        }
    }
    for (Py_ssize_t j = 0; j < size; j++)
        if (!seen[j])
            memcpy(acc + j * ring.k, one.buf, row);
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(seen);
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&keys);
    return out;
}

/* fixed_base_powers(modulus, minv, one, table, digits, window_rows) -> bytes:
 * for each exponent (window_rows little-endian bytes of ``digits``), the product of
 * table[row][digit] over its non-zero digits, the table being 256 Montgomery residues per row. */
static PyObject *fixed_base_powers(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, table, digits;
    unsigned long long minv;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*n", &mod, &minv, &one, &table, &digits, &width))
        return NULL;
    PyObject *out = NULL;
    ring_t ring;
    if (get_ring(&ring, &mod, minv))
        goto done;
    Py_ssize_t row = 8 * ring.k;
    if (one.len != row || width <= 0 || table.len != width * 256 * row || digits.len % width) {
        PyErr_SetString(PyExc_ValueError, "one: one row; table: 256 rows per exponent byte; digits: whole exponents");
        goto done;
    }
    Py_ssize_t count = digits.len / width;
    out = PyBytes_FromStringAndSize(NULL, count * row);
    if (!out)
        goto done;
    mp_limb_t *r = (mp_limb_t *)PyBytes_AS_STRING(out);
    const mp_limb_t *t = table.buf;
    const unsigned char *d = digits.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        mp_limb_t *acc = r + i * ring.k;
        int started = 0;
        for (Py_ssize_t j = 0; j < width; j++) {
            unsigned digit = d[i * width + j];
            if (!digit)
                continue;
            const mp_limb_t *entry = t + (j * 256 + digit) * ring.k;
            if (started) {
                mont_mul(acc, acc, entry, &ring);
            } else {
                memcpy(acc, entry, row);
                started = 1;
            }
        }
        if (!started)
            memcpy(acc, one.buf, row);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&table);
    PyBuffer_Release(&digits);
    return out;
}


/* pow_rows(modulus, minv, one, rows, exponent) -> bytes: each row raised to the same exponent
 * (big-endian bytes), left to right in 4-bit windows from a 16-entry table per row. */
static PyObject *pow_rows(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, rows, exponent;
    unsigned long long minv;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*", &mod, &minv, &one, &rows, &exponent))
        return NULL;
    PyObject *out = NULL;
    ring_t ring;
    if (get_ring(&ring, &mod, minv) || check_rows(&rows, &ring, "rows"))
        goto done;
    const Py_ssize_t row = 8 * ring.k, count = rows.len / row;
    if (one.len != row) {
        PyErr_SetString(PyExc_ValueError, "one: one row expected");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, rows.len);
    if (!out)
        goto done;
    mp_limb_t *r = (mp_limb_t *)PyBytes_AS_STRING(out);
    const mp_limb_t *x = rows.buf;
    const unsigned char *e = exponent.buf;
    const Py_ssize_t nibbles = 2 * exponent.len;
    Py_BEGIN_ALLOW_THREADS
    mp_limb_t table[16][MAX_LIMBS];
    for (Py_ssize_t i = 0; i < count; i++) {
        mp_limb_t *acc = r + i * ring.k;
        memcpy(table[0], one.buf, row);
        memcpy(table[1], x + i * ring.k, row);
        for (int d = 2; d < 16; d++)
            mont_mul(table[d], table[d - 1], table[1], &ring);
        int started = 0;
        for (Py_ssize_t j = 0; j < nibbles; j++) {
            unsigned digit = (e[j / 2] >> (j % 2 ? 0 : 4)) & 15;
            if (started) {
                for (int s = 0; s < 4; s++)
                    mont_mul(acc, acc, acc, &ring);
                if (digit)
                    mont_mul(acc, acc, table[digit], &ring);
            } else if (digit) {
                memcpy(acc, table[digit], row);
                started = 1;
            }
        }
        if (!started)
            memcpy(acc, one.buf, row);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&exponent);
    return out;
}

/* Straus tables shared by every column: table[i * 16 + d] = base_i^d (Montgomery form). */
static void straus_tables(mp_limb_t *table, const mp_limb_t *bases, Py_ssize_t t, const void *one,
                          const ring_t *ring)
{
    const mp_size_t k = ring->k;
    for (Py_ssize_t i = 0; i < t; i++) {
        mp_limb_t *row = table + i * 16 * k;
        memcpy(row, one, 8 * k);
        memcpy(row + k, bases + i * k, 8 * k);
        for (int d = 2; d < 16; d++)
            mont_mul(row + d * k, row + (d - 1) * k, row + k, ring);
    }
}

static int nibbles_of(const uint64_t *e, Py_ssize_t count)
{
    uint64_t top = 0;
    for (Py_ssize_t i = 0; i < count; i++)
        top |= e[i];
    int bits = 0;
    while (top) {
        bits++;
        top >>= 1;
    }
    return (bits + 3) / 4;
}

/* multi_pow_rows(modulus, minv, one, bases, exponents) -> bytes: for each column j of the
 * (columns, t) uint64 exponents, prod_i base_i^e[j, i] (Straus: 4-bit windows, shared tables). */
static PyObject *multi_pow_rows(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, bases, exps;
    unsigned long long minv;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*", &mod, &minv, &one, &bases, &exps))
        return NULL;
    PyObject *out = NULL;
    mp_limb_t *table = NULL;
    ring_t ring;
    if (get_ring(&ring, &mod, minv) || check_rows(&bases, &ring, "bases"))
        goto done;
    const Py_ssize_t row = 8 * ring.k, t = bases.len / row;
    if (one.len != row || t == 0 || exps.len % (8 * t)) {
        PyErr_SetString(PyExc_ValueError, "one: one row; exponents: one uint64 per base and column");
        goto done;
    }
    const Py_ssize_t columns = exps.len / (8 * t);
    out = PyBytes_FromStringAndSize(NULL, columns * row);
    table = PyMem_Malloc(t * 16 * row);
    if (!out || !table) {
        Py_CLEAR(out);
        PyErr_NoMemory();
        goto done;
    }
    mp_limb_t *r = (mp_limb_t *)PyBytes_AS_STRING(out);
    const uint64_t *e = exps.buf;
    Py_BEGIN_ALLOW_THREADS
    straus_tables(table, bases.buf, t, one.buf, &ring);
    for (Py_ssize_t j = 0; j < columns; j++) {
        mp_limb_t *acc = r + j * ring.k;
        const uint64_t *ej = e + j * t;
        memcpy(acc, one.buf, row);
        for (int nib = nibbles_of(ej, t) - 1; nib >= 0; nib--) {
            for (int s = 0; s < 4; s++)
                mont_mul(acc, acc, acc, &ring);
            for (Py_ssize_t i = 0; i < t; i++) {
                unsigned digit = (ej[i] >> (4 * nib)) & 15;
                if (digit)
                    mont_mul(acc, acc, table + (i * 16 + digit) * ring.k, &ring);
            }
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(table);
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&bases);
    PyBuffer_Release(&exps);
    return out;
}

/* ---------------------------------------------------------------------------------------
 * AVX-512 IFMA: eight independent products at once, one per 64-bit lane, in radix 2^52.
 *
 * Why: on the machines fedcore is measured on (AMD EPYC with avx512ifma), GMP's mulx
 * loops make one 64x64 product per cycle; vpmadd52{lo,hi}uq make eight 52x52 halves per
 * instruction. Numbers are L limbs of 52 bits (L = ceil((bits + 2) / 52), so R = 2^(52 L)
 * exceeds 4 m) and stay below 2 m between products ("almost Montgomery": inputs below 2 m
 * give an output below 2 m, so no subtraction inside the loop); only from52 reduces fully.
 * Rows are stored one number after another (L uint64 per row, limbs below 2^52); the
 * kernels gather each lane's row, so every lane can follow its own key or exponent.
 */
#include <immintrin.h>
#include <stdint.h>

#define MAX52 80
#define MASK52 ((1ULL << 52) - 1)

typedef struct {
    int L;
    const uint64_t *m; /* L limbs of 52 bits */
    uint64_t minv;     /* -m^-1 mod 2^52 */
} ring52_t;

#define IFMA __attribute__((target("avx512f,avx512ifma")))

/* r = a b R^-1 (mod m, below 2 m) for eight lanes; r may alias a or b.
 * Operand scanning (measured faster here than summing columns in registers): row i adds
 * a_i b and u_i m into t[i..i+L] in one pass, u_i chosen to clear t[i]'s low 52 bits. */
IFMA static inline __attribute__((always_inline)) void amm8_body(__m512i *r, const __m512i *a, const __m512i *b,
                                                                  const __m512i *m, const ring52_t *g, const int L)
{
    __m512i t[2 * MAX52 + 1];
    const __m512i zero = _mm512_setzero_si512(), minv = _mm512_set1_epi64((long long)g->minv);
    for (int j = 0; j < 2 * L + 1; j++)
        t[j] = zero;
    for (int i = 0; i < L; i++) {
        __m512i *w = t + i, ai = a[i];
        /* u depends only on the lowest limb: fix it first, then add a_i b and u m in one pass */
        __m512i w0 = _mm512_madd52lo_epu64(w[0], ai, b[0]);
        __m512i u = _mm512_madd52lo_epu64(zero, w0, minv);
        w0 = _mm512_madd52lo_epu64(w0, u, m[0]);
        __m512i hi = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(w[1], ai, b[0]), u, m[0]);
        w[1] = _mm512_add_epi64(hi, _mm512_srli_epi64(w0, 52)); /* w0 is 0 mod 2^52 now */
        for (int j = 1; j < L; j++) {
            w[j] = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(w[j], ai, b[j]), u, m[j]);
            w[j + 1] = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(w[j + 1], ai, b[j]), u, m[j]);
        }
    }
    const __m512i mask = _mm512_set1_epi64((long long)MASK52);
    __m512i carry = zero;
    for (int j = 0; j < L; j++) {
        __m512i x = _mm512_add_epi64(t[L + j], carry);
        r[j] = _mm512_and_si512(x, mask);
        carry = _mm512_srli_epi64(x, 52);
    }
}

/* The sizes of 1024- and 2048-bit keys' moduli (p^2 and n^2: 20, 40, 79 limbs) get unrolled copies. */
IFMA static void amm8_20(__m512i *r, const __m512i *a, const __m512i *b, const __m512i *m, const ring52_t *g)
{
    amm8_body(r, a, b, m, g, 20);
}

IFMA static void amm8_40(__m512i *r, const __m512i *a, const __m512i *b, const __m512i *m, const ring52_t *g)
{
    amm8_body(r, a, b, m, g, 40);
}

IFMA static void amm8_79(__m512i *r, const __m512i *a, const __m512i *b, const __m512i *m, const ring52_t *g)
{
    amm8_body(r, a, b, m, g, 79);
}

IFMA static void amm8(__m512i *r, const __m512i *a, const __m512i *b, const __m512i *m, const ring52_t *g)
{
    if (g->L == 79)
        amm8_79(r, a, b, m, g);
    else if (g->L == 20)
        amm8_20(r, a, b, m, g);
    else if (g->L == 40)
        amm8_40(r, a, b, m, g);
    else
        amm8_body(r, a, b, m, g, g->L);
}

IFMA static void gather8(__m512i *v, const uint64_t *base, __m512i index, int L)
{
    for (int j = 0; j < L; j++)
        v[j] = _mm512_i64gather_epi64(index, (const long long *)(base + j), 8);
}

IFMA static void mask_gather8(__m512i *v, __mmask8 lanes, const uint64_t *base, __m512i index, int L)
{
    for (int j = 0; j < L; j++)
        v[j] = _mm512_mask_i64gather_epi64(v[j], lanes, index, (const long long *)(base + j), 8);
}

IFMA static void scatter8(uint64_t *base, __mmask8 lanes, __m512i index, const __m512i *v, int L)
{
    for (int j = 0; j < L; j++)
        _mm512_mask_i64scatter_epi64((long long *)(base + j), lanes, index, v[j], 8);
}

/* The limb offsets of rows first, first + stride, ... for the ``left`` (at most 8) used lanes;
 * 0 (row 0, always there) in the others. */
IFMA static __m512i row_offsets(Py_ssize_t first, Py_ssize_t stride, Py_ssize_t left, int L)
{
    int64_t at[8] = {0};
    for (Py_ssize_t l = 0; l < left; l++)
        at[l] = (first + l * stride) * L;
    return _mm512_loadu_si512(at);
}

IFMA static void broadcast_m(__m512i *mv, const ring52_t *g)
{
    for (int j = 0; j < g->L; j++)
        mv[j] = _mm512_set1_epi64((long long)g->m[j]);
}

static int get_ring52(ring52_t *g, Py_buffer *modulus, unsigned long long minv)
{
    if (modulus->len % 8 || modulus->len == 0 || modulus->len > 8 * MAX52) {
        PyErr_SetString(PyExc_ValueError, "modulus: 1 to 80 limbs of 52 bits expected");
        return -1;
    }
    g->m = modulus->buf;
    g->L = (int)(modulus->len / 8);
    g->minv = minv & MASK52;
    for (int j = 0; j < g->L; j++) {
        if (g->m[j] > MASK52) {
            PyErr_SetString(PyExc_ValueError, "modulus: limbs below 2^52 expected");
            return -1;
        }
    }
    if (!(g->m[0] & 1) || ((g->m[0] * g->minv) & MASK52) != MASK52) {
        PyErr_SetString(PyExc_ValueError, "modulus: an odd modulus and -m^-1 mod 2^52 expected");
        return -1;
    }
    return 0;
}

static int check_rows52(Py_buffer *b, int L, const char *what)
{
    if (b->len % (8 * L)) {
        PyErr_Format(PyExc_ValueError, "%s: a whole number of %d-limb rows expected", what, L);
        return -1;
    }
    const uint64_t *x = b->buf;
    for (Py_ssize_t i = 0; i < b->len / 8; i++) {
        if (x[i] > MASK52) {
            PyErr_Format(PyExc_ValueError, "%s: limbs below 2^52 expected", what);
            return -1;
        }
    }
    return 0;
}

static PyObject *ifma_available(PyObject *self, PyObject *args)
{
    __builtin_cpu_init();
    return PyBool_FromLong(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma"));
}

/* mul_rows52(modulus, minv, a, b) -> bytes: as mul_rows, in radix 2^52. */
IFMA static PyObject *mul_rows52(PyObject *self, PyObject *args)
{
    Py_buffer mod, a, b;
    unsigned long long minv;
    if (!PyArg_ParseTuple(args, "y*Ky*y*", &mod, &minv, &a, &b))
        return NULL;
    PyObject *out = NULL;
    ring52_t g;
    if (get_ring52(&g, &mod, minv) || check_rows52(&a, g.L, "a") || check_rows52(&b, g.L, "b"))
        goto done;
    Py_ssize_t row = 8 * g.L, rows = a.len / row;
    int broadcast = b.len == row;
    if (!broadcast && b.len != a.len) {
        PyErr_SetString(PyExc_ValueError, "b: one row or as many rows as a expected");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, a.len);
    if (!out)
        goto done;
    uint64_t *r = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *x = a.buf, *y = b.buf;
    Py_BEGIN_ALLOW_THREADS
    __m512i mv[MAX52], va[MAX52], vb[MAX52], vr[MAX52];
    broadcast_m(mv, &g);
    for (Py_ssize_t i = 0; i < rows; i += 8) {
        Py_ssize_t left = rows - i < 8 ? rows - i : 8;
        __mmask8 lanes = (__mmask8)((1u << left) - 1);
        __m512i index = row_offsets(i, 1, left, g.L);
        gather8(va, x, index, g.L);
        gather8(vb, y, broadcast ? _mm512_setzero_si512() : index, g.L);
        amm8(vr, va, vb, mv, &g);
        scatter8(r, lanes, index, vr, g.L);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return out;
}

/* sums_by_key52(modulus, minv, one, rows, keys, size) -> bytes: as sums_by_key, in radix 2^52.
 * Rows are grouped by key (counting sort); each lane multiplies one key's rows in turn into
 * its accumulator and takes the next key when done, so no two lanes share a key. */
IFMA static PyObject *sums_by_key52(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, rows, keys;
    unsigned long long minv;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*n", &mod, &minv, &one, &rows, &keys, &size))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t *start = NULL, *order = NULL;
    ring52_t g;
    if (get_ring52(&g, &mod, minv) || check_rows52(&rows, g.L, "rows") || check_rows52(&one, g.L, "one"))
        goto done;
    const Py_ssize_t row = 8 * g.L, count = rows.len / row;
    if (one.len != row || keys.len != 8 * count || size < 0) {
        PyErr_SetString(PyExc_ValueError, "one: one row; keys: one int64 per row; size >= 0 expected");
        goto done;
    }
    const int64_t *key = keys.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (key[i] < 0 || key[i] >= size) {
            PyErr_SetString(PyExc_ValueError, "keys: each in [0, size) expected");
            goto done;
        }
    }
    out = PyBytes_FromStringAndSize(NULL, size * row);
    start = PyMem_Calloc((size_t)size + 2, sizeof(Py_ssize_t));
    order = PyMem_Malloc((count ? count : 1) * sizeof(Py_ssize_t));
    if (!out || !start || !order) {
        Py_CLEAR(out);
        PyErr_NoMemory();
        goto done;
    }
    uint64_t *acc = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *x = rows.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++)
        start[key[i] + 2]++;
    for (Py_ssize_t j = 0; j < size; j++)
        start[j + 2] += start[j + 1];
    for (Py_ssize_t i = 0; i < count; i++)
        order[start[key[i] + 1]++] = i; /* start[j + 1] ends as key j's end, start[j] its start */
    __m512i mv[MAX52], va[MAX52], vb[MAX52];
    broadcast_m(mv, &g);
    Py_ssize_t lane_key[8], lane_pos[8], next = 0;
    __mmask8 active = 0;
    for (int l = 0; l < 8; l++)
        lane_key[l] = -1;
    for (;;) {
        /* idle lanes take the next key with rows: its first row is the accumulator */
        __mmask8 fresh = 0;
        int64_t first[8] = {0};
        for (int l = 0; l < 8; l++) {
            if (active & (1u << l))
                continue;
            while (next < size && start[next] == start[next + 1]) {
                memcpy(acc + next * g.L, one.buf, row);
                next++;
            }
            if (next == size)
                continue;
            lane_key[l] = next;
            lane_pos[l] = start[next] + 1;
            first[l] = order[start[next]] * g.L;
            fresh |= (__mmask8)(1u << l);
            next++;
        }
        if (fresh)
            mask_gather8(va, fresh, x, _mm512_loadu_si512(first), g.L);
        active |= fresh;
        if (!active)
            break;
        /* lanes whose key has no more rows store their sum and go idle */
        __mmask8 done_lanes = 0;
        int64_t slot[8] = {0}, item[8] = {0};
        for (int l = 0; l < 8; l++) {
            if (!(active & (1u << l)))
                continue;
            slot[l] = lane_key[l] * g.L;
            if (lane_pos[l] == start[lane_key[l] + 1])
                done_lanes |= (__mmask8)(1u << l);
            else
                item[l] = order[lane_pos[l]++] * g.L;
        }
        if (done_lanes) {
            scatter8(acc, done_lanes, _mm512_loadu_si512(slot), va, g.L);
            active &= (__mmask8)~done_lanes;
        }
        if (active) { /* idle lanes multiply row 0 into nothing they keep */
            gather8(vb, x, _mm512_loadu_si512(item), g.L);
            amm8(va, va, vb, mv, &g);
        }
    }
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(start);
    PyMem_Free(order);
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&keys);
    return out;
}

/* fixed_base_powers52(modulus, minv, one, table, digits, width) -> bytes: as fixed_base_powers,
 * in radix 2^52; each lane walks one exponent's bytes (a zero digit multiplies by table[j][0] = 1). */
IFMA static PyObject *fixed_base_powers52(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, table, digits;
    unsigned long long minv;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*n", &mod, &minv, &one, &table, &digits, &width))
        return NULL;
    PyObject *out = NULL;
    ring52_t g;
    if (get_ring52(&g, &mod, minv) || check_rows52(&table, g.L, "table"))
        goto done;
    const Py_ssize_t row = 8 * g.L;
    if (one.len != row || width <= 0 || table.len != width * 256 * row || digits.len % width) {
        PyErr_SetString(PyExc_ValueError, "one: one row; table: 256 rows per exponent byte; digits: whole exponents");
        goto done;
    }
    const Py_ssize_t count = digits.len / width;
    out = PyBytes_FromStringAndSize(NULL, count * row);
    if (!out)
        goto done;
    uint64_t *r = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *t = table.buf;
    const unsigned char *d = digits.buf;
    Py_BEGIN_ALLOW_THREADS
    __m512i mv[MAX52], va[MAX52], vb[MAX52];
    broadcast_m(mv, &g);
    for (Py_ssize_t i = 0; i < count; i += 8) {
        Py_ssize_t left = count - i < 8 ? count - i : 8;
        __mmask8 lanes = (__mmask8)((1u << left) - 1);
        int64_t index[8] = {0};
        for (int l = 0; l < left; l++)
            index[l] = (int64_t)d[(i + l) * width] * g.L;
        gather8(va, t, _mm512_loadu_si512(index), g.L);
        for (Py_ssize_t j = 1; j < width; j++) {
            for (int l = 0; l < left; l++)
                index[l] = (j * 256 + d[(i + l) * width + j]) * g.L;
            gather8(vb, t, _mm512_loadu_si512(index), g.L);
            amm8(va, va, vb, mv, &g);
        }
        scatter8(r, lanes, row_offsets(i, 1, left, g.L), va, g.L);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&table);
    PyBuffer_Release(&digits);
    return out;
}

/* pow_rows52(modulus, minv, one, rows, exponent) -> bytes: as pow_rows, eight rows at a time. */
IFMA static PyObject *pow_rows52(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, rows, exponent;
    unsigned long long minv;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*", &mod, &minv, &one, &rows, &exponent))
        return NULL;
    PyObject *out = NULL;
    ring52_t g;
    if (get_ring52(&g, &mod, minv) || check_rows52(&rows, g.L, "rows") || check_rows52(&one, g.L, "one"))
        goto done;
    const Py_ssize_t row = 8 * g.L, count = rows.len / row;
    if (one.len != row) {
        PyErr_SetString(PyExc_ValueError, "one: one row expected");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, rows.len);
    if (!out)
        goto done;
    uint64_t *r = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *x = rows.buf;
    const unsigned char *e = exponent.buf;
    const Py_ssize_t nibbles = 2 * exponent.len;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    __m512i mv[MAX52], acc[MAX52];
    /* 16 x 80 zmm: off the stack, 64-byte aligned as zmm loads and stores want */
    __m512i (*table)[MAX52] = aligned_alloc(64, 16 * sizeof(*table));
    broadcast_m(mv, &g);
    for (Py_ssize_t i = 0; table && i < count; i += 8) {
        Py_ssize_t left = count - i < 8 ? count - i : 8;
        __mmask8 lanes = (__mmask8)((1u << left) - 1);
        __m512i index = row_offsets(i, 1, left, g.L);
        for (int j = 0; j < g.L; j++)
            table[0][j] = _mm512_set1_epi64((long long)((const uint64_t *)one.buf)[j]);
        gather8(table[1], x, index, g.L);
        for (int d = 2; d < 16; d++)
            amm8(table[d], table[d - 1], table[1], mv, &g);
        int started = 0;
        for (Py_ssize_t j = 0; j < nibbles; j++) {
            unsigned digit = (e[j / 2] >> (j % 2 ? 0 : 4)) & 15;
            if (started) {
                for (int s = 0; s < 4; s++)
                    amm8(acc, acc, acc, mv, &g);
                if (digit)
                    amm8(acc, acc, table[digit], mv, &g);
            } else if (digit) {
                memcpy(acc, table[digit], sizeof(__m512i) * g.L);
                started = 1;
            }
        }
        if (!started)
            memcpy(acc, table[0], sizeof(__m512i) * g.L);
        scatter8(r, lanes, index, acc, g.L);
    }
    failed = table == NULL;
    free(table);
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_CLEAR(out);
        PyErr_NoMemory();
    }
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&exponent);
    return out;
}

/* multi_pow_rows52(modulus, minv, one, bases, exponents) -> bytes: as multi_pow_rows, eight
 * columns at a time (one per lane), each lane gathering its own digit's table row. */
IFMA static PyObject *multi_pow_rows52(PyObject *self, PyObject *args)
{
    Py_buffer mod, one, bases, exps;
    unsigned long long minv;
    if (!PyArg_ParseTuple(args, "y*Ky*y*y*", &mod, &minv, &one, &bases, &exps))
        return NULL;
    PyObject *out = NULL;
    uint64_t *table = NULL;
    ring52_t g;
    if (get_ring52(&g, &mod, minv) || check_rows52(&bases, g.L, "bases") || check_rows52(&one, g.L, "one"))
        goto done;
    const Py_ssize_t row = 8 * g.L, t = bases.len / row;
    if (one.len != row || t == 0 || exps.len % (8 * t)) {
        PyErr_SetString(PyExc_ValueError, "one: one row; exponents: one uint64 per base and column");
        goto done;
    }
    const Py_ssize_t columns = exps.len / (8 * t);
    out = PyBytes_FromStringAndSize(NULL, columns * row);
    table = PyMem_Malloc(t * 16 * row);
    if (!out || !table) {
        Py_CLEAR(out);
        PyErr_NoMemory();
        goto done;
    }
    uint64_t *r = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *e = exps.buf, *b = bases.buf, *unit = one.buf;
    Py_BEGIN_ALLOW_THREADS
    __m512i mv[MAX52], v1[MAX52], vd[MAX52], acc[MAX52], vb[MAX52];
    broadcast_m(mv, &g);
    for (Py_ssize_t i = 0; i < t; i += 8) { /* tables, eight bases at a time */
        Py_ssize_t left = t - i < 8 ? t - i : 8;
        __mmask8 lanes = (__mmask8)((1u << left) - 1);
        gather8(v1, b, row_offsets(i, 1, left, g.L), g.L);
        for (int l = 0; l < left; l++) {
            memcpy(table + ((i + l) * 16) * g.L, unit, row);
            memcpy(table + ((i + l) * 16 + 1) * g.L, b + (i + l) * g.L, row);
        }
        memcpy(vd, v1, sizeof(__m512i) * g.L);
        for (int d = 2; d < 16; d++) {
            amm8(vd, vd, v1, mv, &g);
            scatter8(table, lanes, row_offsets(i * 16 + d, 16, left, g.L), vd, g.L);
        }
    }
    for (Py_ssize_t c = 0; c < columns; c += 8) {
        Py_ssize_t left = columns - c < 8 ? columns - c : 8;
        __mmask8 lanes = (__mmask8)((1u << left) - 1);
        const uint64_t *ec = e + c * t;
        int nibbles = nibbles_of(ec, left * t);
        for (int j = 0; j < g.L; j++)
            acc[j] = _mm512_set1_epi64((long long)unit[j]);
        for (int nib = nibbles - 1; nib >= 0; nib--) {
            for (int s = 0; s < 4; s++)
                amm8(acc, acc, acc, mv, &g);
            for (Py_ssize_t i = 0; i < t; i++) {
                int64_t at[8] = {0};
                unsigned any = 0;
                for (int l = 0; l < left; l++) {
                    unsigned digit = (ec[l * t + i] >> (4 * nib)) & 15;
                    any |= digit;
                    at[l] = (i * 16 + digit) * g.L; /* digit 0: the entry 1 */
                }
                for (int l = (int)left; l < 8; l++)
                    at[l] = i * 16 * g.L;
                if (!any)
                    continue;
                gather8(vb, table, _mm512_loadu_si512(at), g.L);
                amm8(acc, acc, vb, mv, &g);
            }
        }
        scatter8(r, lanes, row_offsets(c, 1, left, g.L), acc, g.L);
    }
    Py_END_ALLOW_THREADS
done:
    PyMem_Free(table);
    PyBuffer_Release(&mod);
    PyBuffer_Release(&one);
    PyBuffer_Release(&bases);
    PyBuffer_Release(&exps);
    return out;
}

/* to52(rows, k, L) -> bytes: rows of k 64-bit limbs re-cut into L limbs of 52 bits. */
static PyObject *to52(PyObject *self, PyObject *args)
{
    Py_buffer rows;
    Py_ssize_t k, L;
    if (!PyArg_ParseTuple(args, "y*nn", &rows, &k, &L))
        return NULL;
    PyObject *out = NULL;
    if (k <= 0 || L <= 0 || L > MAX52 || rows.len % (8 * k) || 52 * L < 64 * k - 64) {
        PyErr_SetString(PyExc_ValueError, "rows of k limbs and a large enough L expected");
        goto done;
    }
    Py_ssize_t count = rows.len / (8 * k);
    out = PyBytes_FromStringAndSize(NULL, count * 8 * L);
    if (!out)
        goto done;
    uint64_t *r = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *x = rows.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint64_t *src = x + i * k;
        for (Py_ssize_t j = 0; j < L; j++) {
            Py_ssize_t bit = 52 * j, w = bit / 64, s = bit % 64;
            uint64_t v = w < k ? src[w] >> s : 0;
            if (s > 12 && w + 1 < k)
                v |= src[w + 1] << (64 - s);
            r[i * L + j] = v & MASK52;
        }
    }
done:
    PyBuffer_Release(&rows);
    return out;
}

/* from52(modulus52, rows, k) -> bytes: rows below 2 m in radix 2^52, fully reduced mod m, as k
 * 64-bit limbs (an error if a value does not fit k limbs). */
static PyObject *from52(PyObject *self, PyObject *args)
{
    Py_buffer mod, rows;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "y*y*n", &mod, &rows, &k))
        return NULL;
    PyObject *out = NULL;
    Py_ssize_t L = mod.len / 8;
    if (L <= 0 || L > MAX52 || mod.len % 8 || k <= 0 || check_rows52(&rows, (int)L, "rows"))
        goto done;
    Py_ssize_t count = rows.len / (8 * L);
    out = PyBytes_FromStringAndSize(NULL, count * 8 * k);
    if (!out)
        goto done;
    uint64_t *r = (uint64_t *)PyBytes_AS_STRING(out);
    const uint64_t *m = mod.buf, *x = rows.buf;
    uint64_t v[MAX52];
    for (Py_ssize_t i = 0; i < count; i++) {
        memcpy(v, x + i * L, 8 * L);
        int ge = 1; /* v >= m ? compare from the top limb */
        for (Py_ssize_t j = L - 1; j >= 0; j--) {
            if (v[j] != m[j]) {
                ge = v[j] > m[j];
                break;
            }
        }
        if (ge) {
            uint64_t borrow = 0;
            for (Py_ssize_t j = 0; j < L; j++) {
                uint64_t s = v[j] - m[j] - borrow;
                borrow = s >> 63;
                v[j] = s & MASK52;
            }
        }
        uint64_t *dst = r + i * k;
        memset(dst, 0, 8 * k);
        for (Py_ssize_t j = 0; j < L; j++) {
            Py_ssize_t bit = 52 * j, w = bit / 64, s = bit % 64;
            if (!v[j])
                continue;
            if (w >= k || (s > 12 && w + 1 >= k && (v[j] >> (64 - s)))) {
                Py_CLEAR(out);
                PyErr_SetString(PyExc_ValueError, "a value does not fit k limbs");
                goto done;
            }
            dst[w] |= v[j] << s;
            if (s > 12 && w + 1 < k)
                dst[w + 1] |= v[j] >> (64 - s);
        }
    }
done:
    PyBuffer_Release(&mod);
    PyBuffer_Release(&rows);
    return out;
}

static PyMethodDef methods[] = {
    {"mul_rows", mul_rows, METH_VARARGS, "Row-wise Montgomery products a_i b_i R^-1 mod m."},
    {"sums_by_key", sums_by_key, METH_VARARGS, "Montgomery products of the rows of each key."},
    {"fixed_base_powers", fixed_base_powers, METH_VARARGS, "Fixed-base powers from a byte-window table."},
    {"multi_pow_rows", multi_pow_rows, METH_VARARGS, "Straus multi-exponentiation per column."},
    {"multi_pow_rows52", multi_pow_rows52, METH_VARARGS, "multi_pow_rows with AVX-512 IFMA."},
    {"pow_rows", pow_rows, METH_VARARGS, "Each row to the same power (4-bit windows)."},
    {"pow_rows52", pow_rows52, METH_VARARGS, "pow_rows in radix 2^52 with AVX-512 IFMA."},
    {"ifma_available", ifma_available, METH_NOARGS, "Does this CPU have AVX-512 IFMA?"},
    {"mul_rows52", mul_rows52, METH_VARARGS, "mul_rows in radix 2^52 with AVX-512 IFMA."},
    {"sums_by_key52", sums_by_key52, METH_VARARGS, "sums_by_key in radix 2^52 with AVX-512 IFMA."},
    {"fixed_base_powers52", fixed_base_powers52, METH_VARARGS, "fixed_base_powers with AVX-512 IFMA."},
    {"to52", to52, METH_VARARGS, "64-bit limb rows to 52-bit limb rows."},
    {"from52", from52, METH_VARARGS, "52-bit limb rows (below 2m) to reduced 64-bit limb rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mont", NULL, -1, methods};

PyMODINIT_FUNC PyInit__mont(void) { return PyModule_Create(&module); }
