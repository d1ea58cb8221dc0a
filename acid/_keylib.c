/* The key encoding in C: the fast twin of acid/_keylib_py.py.
 *
 * docs/format.md is the specification. This module must give the same bytes
 * as the pure-Python reference and raise the same exception types for the
 * same input; tests/keylib runs every example against both. The Desc class
 * and KeyEncodingError are the Python ones, imported at module init.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Type bytes (docs/format.md, "Elements"). */
#define T_END 0x00
#define T_SEP 0x01
#define T_NONE 0x02
#define T_FALSE 0x03
#define T_TRUE 0x04
#define T_NEG_INF 0x10
#define T_NEG_BIG 0x11
#define T_ZERO 0x1A
#define T_POS_BIG 0x23
#define T_POS_INF 0x24
#define T_BYTES 0x30
#define T_STR 0x40
#define T_UUID 0x50
#define T_NAIVE 0x60
#define T_AWARE 0x61
#define T_TUPLE 0x70
#define T_DESC 0x7F
#define T_FRAC 0xFE

#define MAX_DEPTH 64
#define MAX_INT_BYTES 255
#define ONE_BITS 0x3FF0000000000000ULL /* bits(1.0) */
#define TWO53 9007199254740992ULL
#define DAY_US 86400000000LL
#define MIN_US (-62135596800000000LL) /* datetime.min - 1970-01-01 */
#define MAX_US 253402300799999999LL   /* datetime.max - 1970-01-01 */
#define HIGH_BITS 0x8080808080808080ULL

static PyObject *Desc;             /* acid._keylib_py.Desc */
static PyObject *KeyEncodingError; /* acid.errors.KeyEncodingError */
static PyObject *UUIDType;         /* uuid.UUID */
static PyObject *s_value, *s_bytes, *s_utcoffset, *s_bit_length, *s_big;
static PyObject *uuid_kwnames; /* ("bytes",) */

static void *
encoding_error(const char *msg)
{
    PyErr_SetString(KeyEncodingError, msg);
    return NULL;
}

/* ------------------------------------------------------------ 7-bit groups */

/* A 56-bit chunk spreads into eight 7-bit groups, one per byte (28 -> 32,
 * 14 -> 16, 7 -> 8 bits), and compresses back by the same steps reversed. */
static inline uint64_t
spread56(uint64_t x)
{
    x = (x & 0x000000000FFFFFFFULL) | ((x & 0x00FFFFFFF0000000ULL) << 4);
    x = (x & 0x00003FFF00003FFFULL) | ((x & 0x0FFFC0000FFFC000ULL) << 2);
    x = (x & 0x007F007F007F007FULL) | ((x & 0x3F803F803F803F80ULL) << 1);
    return x | HIGH_BITS;
}

static inline uint64_t
compress56(uint64_t x)
{
    x = (x & 0x007F007F007F007FULL) | ((x >> 1) & 0x3F803F803F803F80ULL);
    x = (x & 0x00003FFF00003FFFULL) | ((x >> 2) & 0x0FFFC0000FFFC000ULL);
    x = (x & 0x000000000FFFFFFFULL) | ((x >> 4) & 0x00FFFFFFF0000000ULL);
    return x;
}

static inline uint64_t
load_be(const unsigned char *p, int n)
{
    uint64_t x = 0;
    for (int i = 0; i < n; i++)
        x = (x << 8) | p[i];
    return x;
}

static inline void
store_be(unsigned char *p, uint64_t x, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (unsigned char)x;
        x >>= 8;
    }
}

/* ---------------------------------------------------------- output buffer */

typedef struct {
    unsigned char *p;
    Py_ssize_t len, cap;
    unsigned char stack[256];
} Buf;

static void
buf_init(Buf *b)
{
    b->p = b->stack;
    b->len = 0;
    b->cap = sizeof(b->stack);
}

static void
buf_free(Buf *b)
{
    if (b->p != b->stack)
        PyMem_Free(b->p);
}

static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    if (extra > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = b->cap * 2;
    if (cap < b->len + extra)
        cap = b->len + extra;
    unsigned char *p;
    if (b->p == b->stack) {
        p = PyMem_Malloc(cap);
        if (p != NULL)
            memcpy(p, b->stack, b->len);
    }
    else {
        p = PyMem_Realloc(b->p, cap);
    }
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    return buf_grow(b, extra);
}

static inline int
buf_byte(Buf *b, unsigned char c)
{
    if (buf_reserve(b, 1) < 0)
        return -1;
    b->p[b->len++] = c;
    return 0;
}

static int
buf_write(Buf *b, const void *src, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

/* Append the 7-bit groups of s[0:n] and the 0x00 terminator. */
static int
put_groups(Buf *b, const unsigned char *s, Py_ssize_t n)
{
    if (n > (PY_SSIZE_T_MAX - 16) / 8) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t g = (8 * n + 6) / 7;
    if (buf_reserve(b, g + 8) < 0) /* + 8: the last chunk stores 8 bytes */
        return -1;
    unsigned char *o = b->p + b->len;
    while (n >= 7) {
        store_be(o, spread56(load_be(s, 7)), 8);
        s += 7;
        n -= 7;
        o += 8;
    }
    if (n > 0) {
        int gl = (int)((8 * n + 6) / 7);
        uint64_t x = spread56(load_be(s, (int)n) << (56 - 8 * n));
        store_be(o, x >> (64 - 8 * gl), gl);
        o += gl;
    }
    *o++ = 0;
    b->len = o - b->p;
    return 0;
}

/* ---------------------------------------------------------------- packing */

static int pack_value(Buf *b, PyObject *v, int depth, int in_desc);

static inline int
byte_count(uint64_t u)
{
#if defined(__GNUC__) || defined(__clang__)
    return (64 - __builtin_clzll(u) + 7) >> 3;
#else
    int n = 0;
    while (u) {
        n++;
        u >>= 8;
    }
    return n;
#endif
}

/* An integer given by its sign and a magnitude below 2**64. */
static int
pack_mag(Buf *b, int neg, uint64_t mag)
{
    if (buf_reserve(b, 9) < 0)
        return -1;
    unsigned char *o = b->p + b->len;
    if (mag == 0) {
        o[0] = T_ZERO;
        b->len += 1;
        return 0;
    }
    int n = byte_count(mag);
    if (neg) {
        o[0] = (unsigned char)(T_ZERO - n);
        store_be(o + 1, ~mag, n);
    }
    else {
        o[0] = (unsigned char)(T_ZERO + n);
        store_be(o + 1, mag, n);
    }
    b->len += n + 1;
    return 0;
}

static inline int
pack_i64(Buf *b, long long x)
{
    if (x < 0)
        return pack_mag(b, 1, 0 - (uint64_t)x);
    return pack_mag(b, 0, (uint64_t)x);
}

/* |v| >= 2**64: through int.bit_length() and int.to_bytes(). */
static int
pack_big(Buf *b, PyObject *mag, int neg)
{
    PyObject *r = PyObject_CallMethodNoArgs(mag, s_bit_length);
    if (r == NULL)
        return -1;
    Py_ssize_t bits = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (bits == -1 && PyErr_Occurred())
        return -1;
    Py_ssize_t n = (bits + 7) / 8;
    if (n > MAX_INT_BYTES) {
        encoding_error("integer too large for a key (|n| >= 2**2040)");
        return -1;
    }
    PyObject *raw = PyObject_CallMethod(mag, "to_bytes", "nO", n, s_big);
    if (raw == NULL)
        return -1;
    if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) != n) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "int.to_bytes() returned a bad value");
        return -1;
    }
    if (buf_reserve(b, n + 2) < 0) {
        Py_DECREF(raw);
        return -1;
    }
    unsigned char *o = b->p + b->len;
    const unsigned char *m = (const unsigned char *)PyBytes_AS_STRING(raw);
    if (neg) {
        o[0] = T_NEG_BIG;
        o[1] = (unsigned char)(0xFF - n);
        for (Py_ssize_t i = 0; i < n; i++)
            o[2 + i] = (unsigned char)~m[i];
    }
    else {
        o[0] = T_POS_BIG;
        o[1] = (unsigned char)n;
        memcpy(o + 2, m, n);
    }
    b->len += n + 2;
    Py_DECREF(raw);
    return 0;
}

static int
pack_int(Buf *b, PyObject *v)
{
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (!overflow)
        return pack_i64(b, x);
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(v);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
            return pack_mag(b, 0, u);
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        return pack_big(b, v, 0);
    }
    PyObject *neg = PyNumber_Negative(v);
    if (neg == NULL)
        return -1;
    int rc;
    unsigned long long u = PyLong_AsUnsignedLongLong(neg);
    if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
        rc = pack_mag(b, 1, u);
    }
    else if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        rc = pack_big(b, neg, 1);
    }
    else {
        rc = -1;
    }
    Py_DECREF(neg);
    return rc;
}

static inline uint64_t
double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static inline double
bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static int
pack_float(Buf *b, double f)
{
    if (isnan(f)) {
        encoding_error("nan cannot be packed into a key");
        return -1;
    }
    if (isinf(f))
        return buf_byte(b, f > 0 ? T_POS_INF : T_NEG_INF);
    double fl = floor(f);
    if (fl >= -9223372036854775808.0 && fl < 9223372036854775808.0) {
        if (pack_i64(b, (long long)fl) < 0)
            return -1;
    }
    else {
        PyObject *n = PyLong_FromDouble(fl);
        if (n == NULL)
            return -1;
        int rc = pack_int(b, n);
        Py_DECREF(n);
        if (rc < 0)
            return -1;
    }
    uint64_t field;
    if (f < 0.0) {
        /* f - floor(f) may round here; the fraction of |f| is exact. */
        double a = -f;
        double r = a - floor(a);
        field = r == 0.0 ? 1 : ONE_BITS + 1 - double_bits(r);
    }
    else if (f == 0.0 && signbit(f)) {
        field = 0;
    }
    else {
        field = double_bits(f - fl) + 1;
    }
    if (buf_reserve(b, 9) < 0)
        return -1;
    b->p[b->len] = T_FRAC;
    store_be(b->p + b->len + 1, field, 8);
    b->len += 9;
    return 0;
}

static int
pack_str(Buf *b, PyObject *v)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (buf_byte(b, T_STR) < 0)
        return -1;
    if (s != NULL)
        return put_groups(b, (const unsigned char *)s, n);
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        return -1;
    PyErr_Clear(); /* lone surrogates: UTF-8 with surrogatepass */
    PyObject *enc = PyUnicode_AsEncodedString(v, "utf-8", "surrogatepass");
    if (enc == NULL)
        return -1;
    int rc = put_groups(b, (const unsigned char *)PyBytes_AS_STRING(enc),
                        PyBytes_GET_SIZE(enc));
    Py_DECREF(enc);
    return rc;
}

static int
pack_items(Buf *b, PyObject *tup, int depth, int in_desc)
{
    Py_ssize_t n = PyTuple_GET_SIZE(tup);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (pack_value(b, PyTuple_GET_ITEM(tup, i), depth, in_desc) < 0)
            return -1;
    }
    return 0;
}

static inline int64_t
days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
pack_datetime(Buf *b, PyObject *v)
{
    int64_t days = days_from_civil(PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v),
                                   PyDateTime_GET_DAY(v));
    int64_t us = ((days * 86400 + PyDateTime_DATE_GET_HOUR(v) * 3600 +
                   PyDateTime_DATE_GET_MINUTE(v) * 60 + PyDateTime_DATE_GET_SECOND(v)) *
                  1000000) +
                 PyDateTime_DATE_GET_MICROSECOND(v);
    PyObject *offset = NULL;
    if (PyDateTime_DATE_GET_TZINFO(v) != Py_None) {
        offset = PyObject_CallMethodNoArgs(v, s_utcoffset);
        if (offset == NULL)
            return -1;
        if (offset == Py_None)
            Py_CLEAR(offset);
    }
    if (buf_reserve(b, 9) < 0) {
        Py_XDECREF(offset);
        return -1;
    }
    if (offset == NULL) {
        b->p[b->len] = T_NAIVE;
        store_be(b->p + b->len + 1, (uint64_t)us ^ (1ULL << 63), 8);
        b->len += 9;
        return 0;
    }
    if (!PyDelta_Check(offset)) {
        Py_DECREF(offset);
        PyErr_SetString(PyExc_TypeError, "utcoffset() must return a timedelta");
        return -1;
    }
    int64_t off = ((int64_t)PyDateTime_DELTA_GET_DAYS(offset) * 86400 +
                   PyDateTime_DELTA_GET_SECONDS(offset)) *
                      1000000 +
                  PyDateTime_DELTA_GET_MICROSECONDS(offset);
    Py_DECREF(offset);
    b->p[b->len] = T_AWARE;
    store_be(b->p + b->len + 1, (uint64_t)(us - off) ^ (1ULL << 63), 8);
    b->len += 9;
    return pack_i64(b, off);
}

static int
pack_desc(Buf *b, PyObject *v, int depth, int in_desc)
{
    if (in_desc) {
        encoding_error("a Desc cannot be packed inside a Desc");
        return -1;
    }
    if (depth >= MAX_DEPTH) {
        encoding_error("key nests deeper than 64 levels");
        return -1;
    }
    PyObject *inner = PyObject_GetAttr(v, s_value);
    if (inner == NULL)
        return -1;
    if (buf_byte(b, T_DESC) < 0) {
        Py_DECREF(inner);
        return -1;
    }
    Py_ssize_t start = b->len;
    int rc = pack_value(b, inner, depth + 1, 1);
    Py_DECREF(inner);
    if (rc < 0 || buf_byte(b, T_END) < 0)
        return -1;
    for (Py_ssize_t i = start; i < b->len; i++)
        b->p[i] = (unsigned char)~b->p[i];
    return 0;
}

static int
pack_tuple(Buf *b, PyObject *v, int depth, int in_desc)
{
    if (depth >= MAX_DEPTH) {
        encoding_error("key nests deeper than 64 levels");
        return -1;
    }
    if (buf_byte(b, T_TUPLE) < 0 || pack_items(b, v, depth + 1, in_desc) < 0)
        return -1;
    return buf_byte(b, T_END);
}

static int
pack_uuid(Buf *b, PyObject *v)
{
    PyObject *raw = PyObject_GetAttr(v, s_bytes);
    if (raw == NULL)
        return -1;
    if (!PyBytes_Check(raw)) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "UUID.bytes is not bytes");
        return -1;
    }
    int rc = buf_byte(b, T_UUID);
    if (rc == 0)
        rc = buf_write(b, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw));
    Py_DECREF(raw);
    return rc;
}

static int
pack_bytes(Buf *b, PyObject *v)
{
    if (buf_byte(b, T_BYTES) < 0)
        return -1;
    return put_groups(b, (const unsigned char *)PyBytes_AS_STRING(v),
                      PyBytes_GET_SIZE(v));
}

/* Exact types first; then subclasses in the order the Python twin tries. */
static int
pack_value(Buf *b, PyObject *v, int depth, int in_desc)
{
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyLong_Type)
        return pack_int(b, v);
    if (t == &PyUnicode_Type)
        return pack_str(b, v);
    if (v == Py_None)
        return buf_byte(b, T_NONE);
    if (v == Py_True)
        return buf_byte(b, T_TRUE);
    if (v == Py_False)
        return buf_byte(b, T_FALSE);
    if (t == &PyFloat_Type)
        return pack_float(b, PyFloat_AS_DOUBLE(v));
    if (t == &PyBytes_Type)
        return pack_bytes(b, v);
    if (t == &PyTuple_Type)
        return pack_tuple(b, v, depth, in_desc);
    if ((PyObject *)t == UUIDType)
        return pack_uuid(b, v);
    if (PyDateTime_CheckExact(v))
        return pack_datetime(b, v);
    if ((PyObject *)t == Desc)
        return pack_desc(b, v, depth, in_desc);

    if (PyLong_Check(v))
        return pack_int(b, v);
    if (PyFloat_Check(v))
        return pack_float(b, PyFloat_AS_DOUBLE(v));
    if (PyUnicode_Check(v))
        return pack_str(b, v);
    if (PyBytes_Check(v))
        return pack_bytes(b, v);
    if (PyTuple_Check(v))
        return pack_tuple(b, v, depth, in_desc);
    int r = PyObject_IsInstance(v, UUIDType);
    if (r < 0)
        return -1;
    if (r)
        return pack_uuid(b, v);
    if (PyDateTime_Check(v))
        return pack_datetime(b, v);
    r = PyObject_IsInstance(v, Desc);
    if (r < 0)
        return -1;
    if (r)
        return pack_desc(b, v, depth, in_desc);
    PyErr_Format(PyExc_TypeError, "cannot pack a value of type '%s'", t->tp_name);
    return -1;
}

/* ------------------------------------------------------------- arguments */

/* Parse (first, prefix=b"") given positionally or by keyword. */
static int
parse_args(const char *fname, const char *first_name, PyObject *const *args,
           Py_ssize_t nargs, PyObject *kwnames, PyObject **first, PyObject **prefix)
{
    *first = nargs > 0 ? args[0] : NULL;
    *prefix = nargs > 1 ? args[1] : NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 2 positional arguments",
                     fname);
        return -1;
    }
    if (kwnames != NULL) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nk; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject **slot;
            if (PyUnicode_CompareWithASCIIString(name, "prefix") == 0)
                slot = prefix;
            else if (PyUnicode_CompareWithASCIIString(name, first_name) == 0)
                slot = first;
            else {
                PyErr_Format(PyExc_TypeError,
                             "%s() got an unexpected keyword argument '%U'", fname,
                             name);
                return -1;
            }
            if (*slot != NULL) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for '%U'",
                             fname, name);
                return -1;
            }
            *slot = args[nargs + i];
        }
    }
    if (*first == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                     first_name);
        return -1;
    }
    return 0;
}

/* A contiguous buffer, or TypeError (as memoryview() raises in Python). */
static int
get_buffer(PyObject *obj, Py_buffer *view)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) == 0)
        return 0;
    if (PyErr_ExceptionMatches(PyExc_BufferError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "a contiguous bytes-like object is required");
    }
    return -1;
}

static int
write_prefix(Buf *b, PyObject *prefix)
{
    if (prefix == NULL)
        return 0;
    if (PyBytes_CheckExact(prefix))
        return buf_write(b, PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix));
    Py_buffer view;
    if (get_buffer(prefix, &view) < 0)
        return -1;
    int rc = buf_write(b, view.buf, view.len);
    PyBuffer_Release(&view);
    return rc;
}

static PyObject *
kl_pack(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tup, *prefix;
    if (parse_args("pack", "tup", args, nargs, kwnames, &tup, &prefix) < 0)
        return NULL;
    if (!PyTuple_Check(tup)) {
        PyErr_Format(PyExc_TypeError, "pack() needs a tuple, not '%s'",
                     Py_TYPE(tup)->tp_name);
        return NULL;
    }
    Buf b;
    buf_init(&b);
    PyObject *result = NULL;
    if (write_prefix(&b, prefix) == 0 && pack_items(&b, tup, 0, 0) == 0)
        result = PyBytes_FromStringAndSize((const char *)b.p, b.len);
    buf_free(&b);
    return result;
}

static PyObject *
kl_packs(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *tups, *prefix;
    if (parse_args("packs", "tups", args, nargs, kwnames, &tups, &prefix) < 0)
        return NULL;
    Buf b;
    buf_init(&b);
    PyObject *result = NULL, *it = NULL, *tup;
    if (write_prefix(&b, prefix) < 0)
        goto done;
    it = PyObject_GetIter(tups);
    if (it == NULL)
        goto done;
    int first = 1;
    while ((tup = PyIter_Next(it)) != NULL) {
        int rc = -1;
        if (!PyTuple_Check(tup))
            PyErr_Format(PyExc_TypeError, "packs() needs tuples, not '%s'",
                         Py_TYPE(tup)->tp_name);
        else if (first || buf_byte(&b, T_SEP) == 0)
            rc = pack_items(&b, tup, 0, 0);
        Py_DECREF(tup);
        if (rc < 0)
            goto done;
        first = 0;
    }
    if (!PyErr_Occurred())
        result = PyBytes_FromStringAndSize((const char *)b.p, b.len);
done:
    Py_XDECREF(it);
    buf_free(&b);
    return result;
}

/* -------------------------------------------------------------- unpacking */

typedef struct {
    const unsigned char *raw; /* the input */
    unsigned char *inv;       /* its bitwise NOT, made at the first Desc */
    Py_ssize_t n;
} Src;

/* A growable array of new references, turned into a tuple at the end. */
typedef struct {
    PyObject **p;
    Py_ssize_t len, cap;
    PyObject *stack[16];
} Items;

static void
items_init(Items *it)
{
    it->p = it->stack;
    it->len = 0;
    it->cap = 16;
}

static void
items_clear(Items *it)
{
    for (Py_ssize_t i = 0; i < it->len; i++)
        Py_DECREF(it->p[i]);
    if (it->p != it->stack)
        PyMem_Free(it->p);
    it->len = 0;
    it->p = it->stack;
    it->cap = 16;
}

/* Steals v, even on failure. */
static int
items_push(Items *it, PyObject *v)
{
    if (it->len == it->cap) {
        Py_ssize_t cap = it->cap * 2;
        PyObject **p;
        if (it->p == it->stack) {
            p = PyMem_Malloc(cap * sizeof(PyObject *));
            if (p != NULL)
                memcpy(p, it->stack, it->len * sizeof(PyObject *));
        }
        else {
            p = PyMem_Realloc(it->p, cap * sizeof(PyObject *));
        }
        if (p == NULL) {
            Py_DECREF(v);
            PyErr_NoMemory();
            return -1;
        }
        it->p = p;
        it->cap = cap;
    }
    it->p[it->len++] = v;
    return 0;
}

/* Moves the items into a new tuple; the array is left empty. */
static PyObject *
items_tuple(Items *it)
{
    PyObject *t = PyTuple_New(it->len);
    if (t == NULL) {
        items_clear(it);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < it->len; i++)
        PyTuple_SET_ITEM(t, i, it->p[i]);
    it->len = 0;
    items_clear(it);
    return t;
}

/* A decoded integer: small (sign + magnitude < 2**64) or a Python int. */
typedef struct {
    int neg;
    uint64_t mag;
    PyObject *big; /* new reference, or NULL when small */
} IntVal;

/* Decode the integer whose type byte t sits at s[*pos - 1]. */
static int
read_int(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pos, int t, IntVal *out)
{
    Py_ssize_t p = *pos;
    out->big = NULL;
    out->neg = t < T_ZERO;
    out->mag = 0;
    if (t == T_ZERO)
        return 0;
    if (t > T_NEG_BIG && t < T_POS_BIG) {
        int size = t > T_ZERO ? t - T_ZERO : T_ZERO - t;
        if (size > n - p || s[p] == (out->neg ? 0xFF : 0x00)) {
            encoding_error("bad integer");
            return -1;
        }
        uint64_t x = load_be(s + p, size);
        if (out->neg)
            x = ~x & (size == 8 ? ~0ULL : ((1ULL << (8 * size)) - 1));
        out->mag = x;
        *pos = p + size;
        return 0;
    }
    /* 9..255 bytes */
    if (p >= n) {
        encoding_error("truncated integer");
        return -1;
    }
    int size = out->neg ? 0xFF - s[p] : s[p];
    p++;
    if (size <= 8) {
        encoding_error("non-canonical big integer length");
        return -1;
    }
    if (size > n - p || s[p] == (out->neg ? 0xFF : 0x00)) {
        encoding_error("bad integer");
        return -1;
    }
    unsigned char mag[MAX_INT_BYTES];
    for (int i = 0; i < size; i++)
        mag[i] = out->neg ? (unsigned char)~s[p + i] : s[p + i];
    PyObject *v = PyObject_CallMethod((PyObject *)&PyLong_Type, "from_bytes", "y#O",
                                      (const char *)mag, (Py_ssize_t)size, s_big);
    if (v == NULL)
        return -1;
    if (out->neg) {
        Py_SETREF(v, PyNumber_Negative(v));
        if (v == NULL)
            return -1;
    }
    out->big = v;
    *pos = p + size;
    return 0;
}

static PyObject *
int_object(IntVal *iv)
{
    if (iv->big != NULL)
        return iv->big; /* passes the reference on */
    if (!iv->neg)
        return PyLong_FromUnsignedLongLong(iv->mag);
    if (iv->mag <= (1ULL << 63))
        return PyLong_FromLongLong((long long)(0 - iv->mag));
    PyObject *m = PyLong_FromUnsignedLongLong(iv->mag);
    if (m == NULL)
        return NULL;
    Py_SETREF(m, PyNumber_Negative(m));
    return m;
}

/* The float whose integer part iv (type byte t) precedes FRAC at s[*pos]. */
static PyObject *
read_frac(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pos, int t, IntVal *iv)
{
    Py_ssize_t p = *pos;
    if (9 > n - p) {
        Py_XDECREF(iv->big);
        return encoding_error("truncated float");
    }
    uint64_t field = load_be(s + p + 1, 8);
    *pos = p + 9;
    if (field == 0) {
        Py_XDECREF(iv->big);
        if (t != T_ZERO)
            return encoding_error("non-canonical float");
        return PyFloat_FromDouble(-0.0);
    }
    uint64_t code = field - 1;
    if (code >= ONE_BITS) {
        Py_XDECREF(iv->big);
        return encoding_error("float fraction out of range");
    }
    if (iv->big != NULL) {
        PyObject *big = iv->big;
        if (code != 0) {
            Py_DECREF(big);
            return encoding_error("non-canonical float");
        }
        double d = PyLong_AsDouble(big);
        if (d == -1.0 && PyErr_Occurred()) {
            Py_DECREF(big);
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear();
            return encoding_error("integer part too large for a float");
        }
        PyObject *back = PyLong_FromDouble(d);
        if (back == NULL) {
            Py_DECREF(big);
            return NULL;
        }
        int eq = PyObject_RichCompareBool(back, big, Py_EQ);
        Py_DECREF(back);
        Py_DECREF(big);
        if (eq < 0)
            return NULL;
        if (!eq)
            return encoding_error("integer part not exact in a float");
        return PyFloat_FromDouble(d);
    }
    if (code == 0) {
        double d = (double)iv->mag;
        if (d >= 18446744073709551616.0 || (uint64_t)d != iv->mag)
            return encoding_error("integer part not exact in a float");
        return PyFloat_FromDouble(iv->neg ? -d : d);
    }
    uint64_t m;
    double r;
    if (!iv->neg) {
        m = iv->mag;
        r = bits_double(code);
    }
    else {
        m = iv->mag - 1;
        r = bits_double(ONE_BITS - code);
    }
    if (m >= TWO53)
        return encoding_error("non-canonical float");
    double md = (double)m;
    double a = md + r;
    if (floor(a) != md || a - md != r)
        return encoding_error("non-canonical float");
    return PyFloat_FromDouble(iv->neg ? -a : a);
}

/* Decode the g 7-bit groups at s into out (room for 7 * g / 8 bytes). */
static int
ungroup(const unsigned char *s, Py_ssize_t g, unsigned char *out, Py_ssize_t *outlen)
{
    if ((g & 7) == 1) {
        encoding_error("impossible 7-bit group count");
        return -1;
    }
    Py_ssize_t n = 7 * (g >> 3) + ((g & 7) * 7 >> 3);
    while (g >= 8) {
        uint64_t x = load_be(s, 8);
        if ((x & HIGH_BITS) != HIGH_BITS) {
            encoding_error("bad 7-bit group");
            return -1;
        }
        store_be(out, compress56(x ^ HIGH_BITS), 7);
        s += 8;
        g -= 8;
        out += 7;
    }
    if (g > 0) {
        int gl = (int)g, nl = (gl * 7) >> 3;
        uint64_t high = HIGH_BITS >> (64 - 8 * gl);
        uint64_t x = load_be(s, gl);
        if ((x & high) != high) {
            encoding_error("bad 7-bit group");
            return -1;
        }
        x = compress56((x ^ high) << (64 - 8 * gl));
        int pad = 56 - 8 * nl;
        if (x & ((1ULL << pad) - 1)) {
            encoding_error("non-zero padding bits in 7-bit groups");
            return -1;
        }
        store_be(out, x >> pad, nl);
    }
    *outlen = n;
    return 0;
}

/* Decode a bytes or str payload starting at s[*pos]. */
static PyObject *
read_groups(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pos, int is_str)
{
    Py_ssize_t p = *pos, e = p;
    while (e < n && (s[e] & 0x80))
        e++;
    if (e >= n)
        return encoding_error(is_str ? "unterminated string" : "unterminated bytes");
    if (s[e] != 0)
        return encoding_error("bad 7-bit group");
    /* ungroup() writes exactly 7 * g / 8 bytes */
    Py_ssize_t g = e - p, cap = 7 * (g >> 3) + ((g & 7) * 7 >> 3), len;
    *pos = e + 1;
    if (!is_str) {
        PyObject *out = PyBytes_FromStringAndSize(NULL, cap);
        if (out == NULL)
            return NULL;
        if (ungroup(s + p, g, (unsigned char *)PyBytes_AS_STRING(out), &len) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        return out;
    }
    unsigned char stack[256];
    unsigned char *tmp = stack;
    if (cap > (Py_ssize_t)sizeof(stack)) {
        tmp = PyMem_Malloc(cap);
        if (tmp == NULL)
            return PyErr_NoMemory();
    }
    PyObject *out = NULL;
    if (ungroup(s + p, g, tmp, &len) == 0) {
        out = PyUnicode_DecodeUTF8((const char *)tmp, len, "surrogatepass");
        if (out == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            encoding_error("string is not valid UTF-8");
        }
    }
    if (tmp != stack)
        PyMem_Free(tmp);
    return out;
}

static inline void
civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static PyObject *
make_datetime(int64_t us, PyObject *tz)
{
    int64_t days = us / DAY_US, rem = us % DAY_US;
    if (rem < 0) {
        rem += DAY_US;
        days--;
    }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / 1000000;
    return PyDateTimeAPI->DateTime_FromDateAndTime(
        y, m, d, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
        (int)(rem % 1000000), tz, PyDateTimeAPI->DateTimeType);
}

static PyObject *
read_datetime(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pos, int t)
{
    Py_ssize_t p = *pos;
    if (8 > n - p)
        return encoding_error("truncated datetime");
    int64_t us = (int64_t)(load_be(s + p, 8) ^ (1ULL << 63));
    p += 8;
    if (t == T_NAIVE) {
        *pos = p;
        if (us < MIN_US || us > MAX_US)
            return encoding_error("datetime out of range");
        return make_datetime(us, Py_None);
    }
    if (p >= n || s[p] < T_NEG_BIG || s[p] > T_POS_BIG)
        return encoding_error("aware datetime without its UTC offset");
    IntVal iv;
    int it = s[p++];
    if (read_int(s, n, &p, it, &iv) < 0)
        return NULL;
    *pos = p;
    if (iv.big != NULL || iv.mag >= (uint64_t)DAY_US) {
        Py_XDECREF(iv.big);
        return encoding_error("datetime or UTC offset out of range");
    }
    int64_t off = iv.neg ? -(int64_t)iv.mag : (int64_t)iv.mag;
    if (us < MIN_US - DAY_US || us > MAX_US + DAY_US || us + off < MIN_US ||
        us + off > MAX_US)
        return encoding_error("datetime or UTC offset out of range");
    int64_t od = off / DAY_US, orem = off % DAY_US;
    if (orem < 0) {
        orem += DAY_US;
        od--;
    }
    PyObject *delta = PyDelta_FromDSU((int)od, (int)(orem / 1000000),
                                      (int)(orem % 1000000));
    if (delta == NULL)
        return NULL;
    PyObject *tz = PyTimeZone_FromOffset(delta);
    Py_DECREF(delta);
    if (tz == NULL)
        return NULL;
    PyObject *result = make_datetime(us + off, tz);
    Py_DECREF(tz);
    return result;
}

static int read_items(Src *S, const unsigned char *s, Py_ssize_t *pos, int depth,
                      int in_desc, Items *out);

/* One element of s whose type byte is at s[*pos]. */
static PyObject *
read_value(Src *S, const unsigned char *s, Py_ssize_t *pos, int depth, int in_desc)
{
    Py_ssize_t n = S->n;
    int t = s[*pos];
    (*pos)++;
    if (t >= T_NEG_BIG && t <= T_POS_BIG) {
        IntVal iv;
        if (read_int(s, n, pos, t, &iv) < 0)
            return NULL;
        if (*pos < n && s[*pos] == T_FRAC)
            return read_frac(s, n, pos, t, &iv);
        return int_object(&iv);
    }
    switch (t) {
    case T_STR:
        return read_groups(s, n, pos, 1);
    case T_NONE:
        Py_RETURN_NONE;
    case T_TRUE:
        Py_RETURN_TRUE;
    case T_FALSE:
        Py_RETURN_FALSE;
    case T_BYTES:
        return read_groups(s, n, pos, 0);
    case T_TUPLE: {
        if (depth >= MAX_DEPTH)
            return encoding_error("key nests deeper than 64 levels");
        Items items;
        items_init(&items);
        int stop = read_items(S, s, pos, depth + 1, in_desc, &items);
        if (stop != T_END) {
            items_clear(&items);
            return stop == -2 ? NULL : encoding_error("nested tuple without END");
        }
        (*pos)++;
        return items_tuple(&items);
    }
    case T_UUID: {
        if (16 > n - *pos)
            return encoding_error("truncated UUID");
        PyObject *raw = PyBytes_FromStringAndSize((const char *)s + *pos, 16);
        if (raw == NULL)
            return NULL;
        *pos += 16;
        PyObject *args[2] = {NULL, raw};
        PyObject *u = PyObject_Vectorcall(
            UUIDType, args + 1, 0 | PY_VECTORCALL_ARGUMENTS_OFFSET, uuid_kwnames);
        Py_DECREF(raw);
        return u;
    }
    case T_NAIVE:
    case T_AWARE:
        return read_datetime(s, n, pos, t);
    case T_NEG_INF:
        return PyFloat_FromDouble(-Py_HUGE_VAL);
    case T_POS_INF:
        return PyFloat_FromDouble(Py_HUGE_VAL);
    case T_DESC: {
        if (in_desc)
            return encoding_error("Desc inside a Desc");
        if (depth >= MAX_DEPTH)
            return encoding_error("key nests deeper than 64 levels");
        if (S->inv == NULL) {
            S->inv = PyMem_Malloc(n > 0 ? n : 1);
            if (S->inv == NULL)
                return PyErr_NoMemory();
            for (Py_ssize_t i = 0; i < n; i++)
                S->inv[i] = (unsigned char)~S->raw[i];
        }
        const unsigned char *inv = S->inv;
        if (*pos >= n || inv[*pos] <= T_SEP)
            return encoding_error("empty Desc");
        PyObject *v = read_value(S, inv, pos, depth + 1, 1);
        if (v == NULL)
            return NULL;
        if (*pos >= n || inv[*pos] != T_END) {
            Py_DECREF(v);
            return encoding_error("Desc without END");
        }
        (*pos)++;
        PyObject *d = PyObject_CallOneArg(Desc, v);
        Py_DECREF(v);
        return d;
    }
    default:
        PyErr_Format(KeyEncodingError, "unknown type byte 0x%02x at offset %zd", t,
                     *pos - 1);
        return NULL;
    }
}

/* Elements up to END, SEP or the end of input. Returns the stop byte (END,
 * SEP, or -1 at the end, *pos on it) or -2 with an exception set. */
static int
read_items(Src *S, const unsigned char *s, Py_ssize_t *pos, int depth, int in_desc,
           Items *out)
{
    Py_ssize_t n = S->n;
    while (*pos < n) {
        int t = s[*pos];
        if (t <= T_SEP)
            return t;
        PyObject *v = read_value(S, s, pos, depth, in_desc);
        if (v == NULL || items_push(out, v) < 0)
            return -2;
    }
    return -1;
}

typedef struct {
    Py_buffer view;
    Src src;
    Py_ssize_t pos;
} Input;

static int
input_open(Input *in, PyObject *raw, PyObject *prefix)
{
    if (get_buffer(raw, &in->view) < 0)
        return -1;
    in->src.raw = in->view.buf;
    in->src.n = in->view.len;
    in->src.inv = NULL;
    in->pos = 0;
    if (prefix == NULL)
        return 0;
    Py_buffer pv;
    if (get_buffer(prefix, &pv) < 0) {
        PyBuffer_Release(&in->view);
        return -1;
    }
    int ok = pv.len <= in->src.n && memcmp(pv.buf, in->src.raw, pv.len) == 0;
    in->pos = pv.len;
    PyBuffer_Release(&pv);
    if (!ok) {
        PyBuffer_Release(&in->view);
        encoding_error("key does not start with the expected prefix");
        return -1;
    }
    return 0;
}

static void
input_close(Input *in)
{
    PyMem_Free(in->src.inv);
    PyBuffer_Release(&in->view);
}

static PyObject *
kl_unpack(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    PyObject *raw, *prefix;
    Input in;
    if (parse_args("unpack", "raw", args, nargs, kwnames, &raw, &prefix) < 0 ||
        input_open(&in, raw, prefix) < 0)
        return NULL;
    Items items;
    items_init(&items);
    PyObject *result = NULL;
    int stop = read_items(&in.src, in.src.raw, &in.pos, 0, 0, &items);
    if (stop == -1)
        result = items_tuple(&items);
    else {
        items_clear(&items);
        if (stop == T_SEP)
            encoding_error("SEP in a single-tuple key (use unpacks())");
        else if (stop == T_END)
            PyErr_Format(KeyEncodingError, "stray END at offset %zd", in.pos);
    }
    input_close(&in);
    return result;
}

static PyObject *
kl_unpacks(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyObject *raw, *prefix;
    Input in;
    if (parse_args("unpacks", "raw", args, nargs, kwnames, &raw, &prefix) < 0 ||
        input_open(&in, raw, prefix) < 0)
        return NULL;
    PyObject *result = PyList_New(0);
    Items items;
    items_init(&items);
    while (result != NULL) {
        int stop = read_items(&in.src, in.src.raw, &in.pos, 0, 0, &items);
        if (stop == -2) {
            items_clear(&items);
            Py_CLEAR(result);
            break;
        }
        PyObject *t = items_tuple(&items);
        if (t == NULL || PyList_Append(result, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(result);
            break;
        }
        Py_DECREF(t);
        if (stop == T_SEP)
            in.pos++;
        else if (stop == T_END) {
            PyErr_Format(KeyEncodingError, "stray END at offset %zd", in.pos);
            Py_CLEAR(result);
        }
        else
            break;
    }
    input_close(&in);
    return result;
}

static PyObject *
kl_prefix_bound(PyObject *module, PyObject *raw)
{
    Py_buffer view;
    if (get_buffer(raw, &view) < 0)
        return NULL;
    const unsigned char *s = view.buf;
    Py_ssize_t n = view.len;
    while (n > 0 && s[n - 1] == 0xFF)
        n--;
    PyObject *result;
    if (n == 0) {
        result = Py_NewRef(Py_None);
    }
    else {
        /* NULL data: a fresh object (one-byte strings are shared singletons,
         * which must never be written to). */
        result = PyBytes_FromStringAndSize(NULL, n);
        if (result != NULL) {
            memcpy(PyBytes_AS_STRING(result), s, n);
            PyBytes_AS_STRING(result)[n - 1]++;
        }
    }
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------------------------- records, exactly */

/* See acid/_keylib_exact.py. The walk only reads types and container slots
 * (no Python code runs, so borrowed references stay valid and nothing can
 * change the record under it); depth is capped at MAX_DEPTH (deeper is "not
 * exact", as in the twin) and guarded by Py_EnterRecursiveCall. */
#define EXACT_JSON 0
#define EXACT_MSGPACK 1
#define EXACT_PICKLE 2

static inline int
exact_key_scalar(PyObject *k, int kind)
{
    PyTypeObject *t = Py_TYPE(k);
    if (t == &PyUnicode_Type)
        return 1;
    if (kind == EXACT_JSON)
        return 0;
    return t == &PyBytes_Type || t == &PyLong_Type || t == &PyBool_Type ||
           k == Py_None;
}

/* 1: a tuple key pickle gives back as it is; 0: not known; -1: error. */
static int
exact_key_tuple(PyObject *key, int depth)
{
    if (depth >= MAX_DEPTH)
        return 0;
    if (Py_EnterRecursiveCall(" while checking a record"))
        return -1;
    int r = 1;
    for (Py_ssize_t i = 0; r == 1 && i < PyTuple_GET_SIZE(key); i++) {
        PyObject *k = PyTuple_GET_ITEM(key, i);
        if (exact_key_scalar(k, EXACT_PICKLE))
            continue;
        r = PyTuple_CheckExact(k) ? exact_key_tuple(k, depth + 1) : 0;
    }
    Py_LeaveRecursiveCall();
    return r;
}

/* A tzinfo pickle gives back equal: none, or a datetime.timezone. */
static int
exact_zone(PyObject *tz)
{
    return tz == Py_None || Py_TYPE(tz) == Py_TYPE(PyDateTimeAPI->TimeZone_UTC);
}

/* 1: a set whose elements pickle gives back as they are (tuple keys); 0: not
 * known; -1: error. Iterating a set runs no Python code either. */
static int
exact_key_set(PyObject *set, int depth)
{
    if (depth >= MAX_DEPTH)
        return 0;
    if (Py_EnterRecursiveCall(" while checking a record"))
        return -1;
    PyObject *it = PyObject_GetIter(set);
    if (it == NULL) {
        Py_LeaveRecursiveCall();
        return -1;
    }
    int r = 1;
    PyObject *k;
    while (r == 1 && (k = PyIter_Next(it)) != NULL) {
        if (!exact_key_scalar(k, EXACT_PICKLE))
            r = PyTuple_CheckExact(k) ? exact_key_tuple(k, depth + 1) : 0;
        Py_DECREF(k);
    }
    if (r == 1 && PyErr_Occurred())
        r = -1;
    Py_DECREF(it);
    Py_LeaveRecursiveCall();
    return r;
}

/* Whether obj is a scalar every built-in encoder gives back as it is: the
 * usual element, tested inline before any recursive call. */
static inline int
exact_leaf(PyObject *obj)
{
    PyTypeObject *t = Py_TYPE(obj);
    return t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type ||
           t == &PyBool_Type || obj == Py_None;
}

/* 1: the encoder `kind` gives obj back as it is; 0: not known; -1: error. */
static int
exact_value(PyObject *obj, int kind, int depth)
{
    if (exact_leaf(obj))
        return 1;
    PyTypeObject *t = Py_TYPE(obj);
    if (t == &PyBytes_Type)
        return kind != EXACT_JSON;
    if (kind == EXACT_PICKLE) {
        if (t == &PyComplex_Type || t == (PyTypeObject *)UUIDType ||
            PyDate_CheckExact(obj) || PyDelta_CheckExact(obj))
            return 1;
        if (PyDateTime_CheckExact(obj))
            return exact_zone(PyDateTime_DATE_GET_TZINFO(obj));
        if (PyTime_CheckExact(obj))
            return exact_zone(PyDateTime_TIME_GET_TZINFO(obj));
        if (t == &PySet_Type || t == &PyFrozenSet_Type)
            return exact_key_set(obj, depth);
    }
    int is_seq = t == &PyList_Type || (t == &PyTuple_Type && kind == EXACT_PICKLE);
    if (!is_seq && t != &PyDict_Type)
        return 0;
    if (depth >= MAX_DEPTH)
        return 0;
    if (Py_EnterRecursiveCall(" while checking a record"))
        return -1;
    int r = 1;
    if (t == &PyList_Type) {
        /* The size is read again on every step (it cannot change here). */
        for (Py_ssize_t i = 0; r == 1 && i < PyList_GET_SIZE(obj); i++) {
            PyObject *v = PyList_GET_ITEM(obj, i);
            if (!exact_leaf(v))
                r = exact_value(v, kind, depth + 1);
        }
    }
    else if (is_seq) {
        for (Py_ssize_t i = 0; r == 1 && i < PyTuple_GET_SIZE(obj); i++) {
            PyObject *v = PyTuple_GET_ITEM(obj, i);
            if (!exact_leaf(v))
                r = exact_value(v, kind, depth + 1);
        }
    }
    else {
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (r == 1 && PyDict_Next(obj, &pos, &k, &v)) {
            if (!exact_key_scalar(k, kind)) {
                if (kind != EXACT_PICKLE || !PyTuple_CheckExact(k)) {
                    r = 0;
                    break;
                }
                r = exact_key_tuple(k, depth + 1);
                if (r != 1)
                    break;
            }
            if (!exact_leaf(v))
                r = exact_value(v, kind, depth + 1);
        }
    }
    Py_LeaveRecursiveCall();
    return r;
}

static PyObject *
exact_result(int r)
{
    return r < 0 ? NULL : PyBool_FromLong(r);
}

static PyObject *
kl_exact_json(PyObject *module, PyObject *obj)
{
    return exact_result(exact_value(obj, EXACT_JSON, 0));
}

static PyObject *
kl_exact_msgpack(PyObject *module, PyObject *obj)
{
    return exact_result(exact_value(obj, EXACT_MSGPACK, 0));
}

static PyObject *
kl_exact_pickle(PyObject *module, PyObject *obj)
{
    return exact_result(exact_value(obj, EXACT_PICKLE, 0));
}

/* ----------------------------------------------------------------- module */

PyDoc_STRVAR(pack_doc, "pack(tup, prefix=b'') -> bytes\n\nSee acid._keylib_py.pack.");
PyDoc_STRVAR(packs_doc,
             "packs(tups, prefix=b'') -> bytes\n\nSee acid._keylib_py.packs.");
PyDoc_STRVAR(unpack_doc,
             "unpack(raw, prefix=b'') -> tuple\n\nSee acid._keylib_py.unpack.");
PyDoc_STRVAR(unpacks_doc,
             "unpacks(raw, prefix=b'') -> list\n\nSee acid._keylib_py.unpacks.");
PyDoc_STRVAR(exact_json_doc,
             "exact_json(obj) -> bool\n\nSee acid._keylib_exact.exact_json.");
PyDoc_STRVAR(exact_msgpack_doc,
             "exact_msgpack(obj) -> bool\n\nSee acid._keylib_exact.exact_msgpack.");
PyDoc_STRVAR(exact_pickle_doc,
             "exact_pickle(obj) -> bool\n\nSee acid._keylib_exact.exact_pickle.");
PyDoc_STRVAR(prefix_bound_doc,
             "prefix_bound(raw) -> bytes | None\n\n"
             "See acid._keylib_py.prefix_bound.");

static PyMethodDef methods[] = {
    {"pack", (PyCFunction)(void (*)(void))kl_pack, METH_FASTCALL | METH_KEYWORDS,
     pack_doc},
    {"packs", (PyCFunction)(void (*)(void))kl_packs, METH_FASTCALL | METH_KEYWORDS,
     packs_doc},
    {"unpack", (PyCFunction)(void (*)(void))kl_unpack, METH_FASTCALL | METH_KEYWORDS,
     unpack_doc},
    {"unpacks", (PyCFunction)(void (*)(void))kl_unpacks,
     METH_FASTCALL | METH_KEYWORDS, unpacks_doc},
    {"prefix_bound", (PyCFunction)kl_prefix_bound, METH_O, prefix_bound_doc},
    {"exact_json", (PyCFunction)kl_exact_json, METH_O, exact_json_doc},
    {"exact_msgpack", (PyCFunction)kl_exact_msgpack, METH_O, exact_msgpack_doc},
    {"exact_pickle", (PyCFunction)kl_exact_pickle, METH_O, exact_pickle_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "acid._keylib",
    .m_doc = "The key encoding in C; see acid._keylib_py for the reference.",
    .m_size = -1,
    .m_methods = methods,
};

static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return NULL;
    PyObject *v = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return v;
}

#define INTERN(var, text)                                                            \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                            \
        return NULL;

PyMODINIT_FUNC
PyInit__keylib(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    if (Desc == NULL) {
        if ((Desc = import_attr("acid._keylib_py", "Desc")) == NULL)
            return NULL;
        if ((KeyEncodingError = import_attr("acid.errors", "KeyEncodingError")) ==
            NULL)
            return NULL;
        if ((UUIDType = import_attr("uuid", "UUID")) == NULL)
            return NULL;
        INTERN(s_value, "value");
        INTERN(s_bytes, "bytes");
        INTERN(s_utcoffset, "utcoffset");
        INTERN(s_bit_length, "bit_length");
        INTERN(s_big, "big");
        if ((uuid_kwnames = PyTuple_Pack(1, s_bytes)) == NULL)
            return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Desc", Desc) < 0 ||
        PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
