/* Shared by the 2D2 example programs (train_2d2.c, fit_2d2.c): the status check, the task's
 * constants, a SplitMix64 generator mirrored by ffi/tests/c_program.rs, and the isotropic
 * normal log-density. Functions are `static inline` so a program that uses only some of them
 * still compiles with -Werror. */
#ifndef LWFLOW_EXAMPLE_COMMON_2D2_H
#define LWFLOW_EXAMPLE_COMMON_2D2_H

#include "lwflow.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                        \
    do {                                                                                   \
        LwfStatus status_ = (call);                                                        \
        if (status_ != LWF_OK) {                                                           \
            fprintf(stderr, "%s:%d: %s failed: %d (%s)\n", __FILE__, __LINE__, #call,      \
                    (int)status_, lwf_status_message((int)status_));                       \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static const double PI = 3.14159265358979323846;
static const double BOX = 6.0;     /* prior: uniform on [-BOX, BOX]^2 */
static const double MODE = 2.5;    /* likelihood: N((+-MODE, 0), SIGMA^2 I), equal weights */
static const double SIGMA = 0.6;

/* SplitMix64: a small deterministic generator the Rust mirror reproduces exactly. */
static inline uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform on the open interval (0, 1). */
static inline double uniform01(uint64_t *s) {
    return ((double)(splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
/* One standard normal per call (Box-Muller, cosine branch only: simple to mirror). */
static inline double normal01(uint64_t *s) {
    double u1 = uniform01(s), u2 = uniform01(s);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
}

/* log N(x; mu, sigma^2 I) in `dim` dimensions. */
static inline double log_normal_iso(const double *x, const double *mu, size_t dim, double sigma) {
    double q = 0.0;
    for (size_t i = 0; i < dim; i++) {
        double u = (x[i] - mu[i]) / sigma;
        q += u * u;
    }
    return -0.5 * q - (double)dim * (log(sigma) + 0.5 * log(2.0 * PI));
}

#endif
