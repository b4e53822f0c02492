/* Shared by the MPI example programs (refine_mpi.c, train_mpi.c): the task 2D2 likelihood,
 * the busy loop that makes it expensive, a byte hash for the printed summaries, and
 * command-line helpers. Functions are `static` and each program uses all of them or marks
 * them unused, so the programs compile with -Werror. */
#ifndef LWFLOW_EXAMPLE_COMMON_MPI_H
#define LWFLOW_EXAMPLE_COMMON_MPI_H

#include "lwflow.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Task 2D2: prior uniform on [-BOX, BOX]^2; likelihood the equal mixture of
 * N((+-2.5, 0), 0.6^2 I), so ln Z = -2 ln 12. The same expression, operation for operation,
 * as examples/c/refine_2d2.c and examples/mpi/refine_mpi.f90 (the saved models are compared
 * byte for byte). */
#define BOX 6.0

static inline double log_likelihood_2d2(const double *x) {
    const double sd = 0.6, pi = 3.14159265358979323846;
    double norm = -2.0 * log(sd) - log(2.0 * pi);
    double a = (x[0] + 2.5) / sd, b = (x[0] - 2.5) / sd, c = x[1] / sd;
    double l = -0.5 * (a * a + c * c) + norm, r = -0.5 * (b * b + c * c) + norm;
    double m = l > r ? l : r;
    return m + log(0.5 * exp(l - m) + 0.5 * exp(r - m));
}

/* Burns `ms` milliseconds of this thread's CPU time: a stand-in for an expensive simulation.
 * CPU time, not wall time, so that ranks sharing a core (an oversubscribed run) really do
 * slow each other down, as a compute-bound simulation would. */
static inline void burn_cpu(double ms) {
    if (!(ms > 0.0)) return;
    struct timespec t0, t;
    volatile double sink = 0.0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do {
        for (int i = 0; i < 2000; i++) sink = sink + 1e-9 * (double)i;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) * 1e3 + (double)(t.tv_nsec - t0.tv_nsec) * 1e-6 <
             ms);
}

/* Wall-clock seconds (monotonic), for runs without MPI_Wtime. */
static inline double wall_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* FNV-1a, 64 bits: a short fingerprint of saved model bytes for the printed summary (the
 * test compares the files themselves). */
static inline uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* `--name value` arguments: the value after `name` in argv, or NULL. */
static inline const char *arg_value(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

static inline int arg_flag(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

/* A non-negative integer option, or `fallback` when absent; exits on a malformed value. */
static inline long long arg_integer(int argc, char **argv, const char *name, long long fallback) {
    const char *v = arg_value(argc, argv, name);
    if (!v) return fallback;
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < 0) {
        fprintf(stderr, "%s: not a non-negative integer: %s\n", name, v);
        exit(2);
    }
    return x;
}

static inline double arg_number(int argc, char **argv, const char *name, double fallback) {
    const char *v = arg_value(argc, argv, name);
    if (!v) return fallback;
    char *end = NULL;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(x >= 0.0) || !isfinite(x)) {
        fprintf(stderr, "%s: not a non-negative number: %s\n", name, v);
        exit(2);
    }
    return x;
}

/* Writes `n` bytes to `path`; 0 on success. */
static inline int write_file(const char *path, const uint8_t *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t written = fwrite(bytes, 1, n, f);
    return (fclose(f) != 0 || written != n) ? 1 : 0;
}

#endif
