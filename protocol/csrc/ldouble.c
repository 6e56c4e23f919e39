/*
 * C-side helpers for protocol::number.
 *
 * Redis parses float arguments with strtod(3) and does INCRBYFLOAT /
 * HINCRBYFLOAT arithmetic in the platform's `long double` (80-bit x87
 * extended precision on x86_64), printing the result with "%.17Lf".
 * Rust has no `long double` type and its float parser differs from
 * strtod (hex floats, ERANGE handling), so the few operations whose results
 * must be bit-for-bit identical to Redis are done here, with the C library.
 *
 * A `long double` never crosses the FFI boundary by value: it is stored in
 * an opaque, suitably sized byte buffer owned by the Rust side.
 * All validation rules (empty input, leading space, full consumption,
 * ERANGE, NaN) are decided in Rust from the flags reported below.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODIS_LD_BYTES 32

_Static_assert(sizeof(long double) <= CODIS_LD_BYTES,
               "long double does not fit the opaque buffer");

/* Flag bits reported to Rust. */
#define CODIS_F_ERANGE 1 /* strtod/strtold set errno to ERANGE or EINVAL */
#define CODIS_F_NAN 2
#define CODIS_F_INF 4
#define CODIS_F_ZERO 8

static int classify(long double v) {
    int flags = 0;
    if (isnan(v)) flags |= CODIS_F_NAN;
    if (isinf(v)) flags |= CODIS_F_INF;
    if (v == 0) flags |= CODIS_F_ZERO;
    return flags;
}

/* strtold on the NUL-terminated `buf`; returns the number of bytes consumed.
 * The value is stored into `slot`, classification bits into `*flags`. */
size_t codis_strtold(const char *buf, unsigned char *slot, int *flags) {
    char *end = NULL;
    long double v;
    errno = 0;
    v = strtold(buf, &end);
    *flags = classify(v);
    if (errno == ERANGE || errno == EINVAL) *flags |= CODIS_F_ERANGE;
    memset(slot, 0, CODIS_LD_BYTES);
    memcpy(slot, &v, sizeof(v));
    return (size_t)(end - buf);
}

/* strtod on the NUL-terminated `buf`; returns the number of bytes consumed. */
size_t codis_strtod(const char *buf, double *out, int *flags) {
    char *end = NULL;
    double v;
    errno = 0;
    v = strtod(buf, &end);
    *flags = classify((long double)v);
    if (errno == ERANGE || errno == EINVAL) *flags |= CODIS_F_ERANGE;
    *out = v;
    return (size_t)(end - buf);
}

/* sum = a + b in long double; returns the classification of the sum. */
int codis_ld_add(const unsigned char *a, const unsigned char *b,
                 unsigned char *sum) {
    long double x, y, z;
    memcpy(&x, a, sizeof(x));
    memcpy(&y, b, sizeof(y));
    z = x + y;
    memset(sum, 0, CODIS_LD_BYTES);
    memcpy(sum, &z, sizeof(z));
    return classify(z);
}

/* snprintf(out, cap, "%.17Lf", value); returns the length the full output
 * needs (excluding the NUL), or -1 on an encoding error. */
int codis_ld_format_fixed17(const unsigned char *value, char *out, size_t cap) {
    long double v;
    memcpy(&v, value, sizeof(v));
    return snprintf(out, cap, "%.17Lf", v);
}
