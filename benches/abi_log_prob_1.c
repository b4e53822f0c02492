/* The latency of a one-sample log_prob through the C ABI, where the per-call fixed costs
 * (handle check, the model's busy word, the parameter check) weigh most:
 * lwf_model_log_prob (the model's workspace: claims and releases the busy word) and
 * lwf_model_log_prob_ws (the caller's workspace: no claim), on the peer workload's shape
 * (benches/README.md: D = 2, 8 couplings, MLP [1, 64, 64, 2], ReLU, Gaussian base, clamp 3)
 * and on a tiny shape (D = 2, H = 1, one coupling), where the fixed costs are nearly all.
 *
 * It loads one or more builds of liblwflow.so with dlopen (each its own namespace) and
 * alternates them round by round, so the builds see the same machine load:
 *
 *   cargo build --release -p lwflow-ffi
 *   cc -std=c11 -O2 -Iinclude benches/abi_log_prob_1.c -ldl -o /tmp/abi_log_prob_1
 *   /tmp/abi_log_prob_1 OLD/liblwflow.so target/release/liblwflow.so
 *
 * Environment: CALLS (per round, default 20000), ROUNDS (default 31). Prints, per build,
 * shape and function, the median and the minimum over rounds of the mean time per call. */
#define _POSIX_C_SOURCE 200809L
#include "lwflow.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef LwfStatus (*shape_default_fn)(size_t, size_t, size_t, LwfShape *);
typedef LwfStatus (*size_fn)(const LwfShape *, size_t *);
typedef LwfStatus (*init_fn)(void *, size_t, const LwfShape *, uint64_t, LwfModel **);
typedef LwfStatus (*log_prob_fn)(LwfModel *, const double *, size_t, double *, size_t);
typedef LwfStatus (*log_prob_ws_fn)(const LwfModel *, const double *, size_t, double *, size_t,
                                    double *, size_t);

enum { MAX_LIBS = 4, SHAPES = 2, FUNCS = 2 };

typedef struct {
    const char *path;
    log_prob_fn log_prob;
    log_prob_ws_fn log_prob_ws;
    LwfModel *model[SHAPES];
    double *ws[SHAPES];
    size_t ws_len[SHAPES];
} Lib;

/* dlsym's object pointer as a function pointer, without the cast ISO C does not define. */
static void sym(void *handle, const char *name, void *fn_ptr, size_t size) {
    void *p = dlsym(handle, name);
    if (!p) {
        fprintf(stderr, "missing %s\n", name);
        exit(1);
    }
    memcpy(fn_ptr, &p, size);
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int libs = argc - 1 > MAX_LIBS ? MAX_LIBS : argc - 1;
    const long calls = getenv("CALLS") ? atol(getenv("CALLS")) : 20000;
    const int rounds = getenv("ROUNDS") ? atoi(getenv("ROUNDS")) : 31;
    if (libs < 1 || calls < 1 || rounds < 1) {
        fprintf(stderr, "usage: %s liblwflow.so [another liblwflow.so ...]\n", argv[0]);
        return 1;
    }
    static const size_t dims[SHAPES][3] = {{2, 64, 8}, {2, 1, 1}};
    static const char *shape_names[SHAPES] = {"peer D2 H64 L8", "tiny D2 H1 L1"};
    static const char *func_names[FUNCS] = {"lwf_model_log_prob", "lwf_model_log_prob_ws"};
    Lib lib[MAX_LIBS];
    for (int l = 0; l < libs; l++) {
        void *h = dlopen(argv[l + 1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        shape_default_fn shape_default;
        size_fn model_size, workspace_count;
        init_fn init;
        sym(h, "lwf_shape_default", &shape_default, sizeof shape_default);
        sym(h, "lwf_shape_model_size", &model_size, sizeof model_size);
        sym(h, "lwf_shape_workspace_count", &workspace_count, sizeof workspace_count);
        sym(h, "lwf_model_init", &init, sizeof init);
        sym(h, "lwf_model_log_prob", &lib[l].log_prob, sizeof lib[l].log_prob);
        sym(h, "lwf_model_log_prob_ws", &lib[l].log_prob_ws, sizeof lib[l].log_prob_ws);
        lib[l].path = argv[l + 1];
        for (int s = 0; s < SHAPES; s++) {
            LwfShape shape;
            size_t mem_len;
            if (shape_default(dims[s][0], dims[s][1], dims[s][2], &shape) != LWF_OK) return 1;
            model_size(&shape, &mem_len);
            workspace_count(&shape, &lib[l].ws_len[s]);
            void *mem = malloc(mem_len);
            lib[l].ws[s] = malloc(lib[l].ws_len[s] * sizeof(double));
            if (!mem || !lib[l].ws[s] || init(mem, mem_len, &shape, 2, &lib[l].model[s]) != LWF_OK)
                return 1;
        }
    }
    double *times = malloc((size_t)libs * SHAPES * FUNCS * (size_t)rounds * sizeof(double));
    if (!times) return 1;
#define T(l, s, f, r) times[(((size_t)(l) * SHAPES + (s)) * FUNCS + (f)) * (size_t)rounds + (r)]
    double theta[2] = {0.3, -0.7}, out = 0.0, sum = 0.0;
    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < SHAPES; s++)
            for (int f = 0; f < FUNCS; f++)
                for (int k = 0; k < libs; k++) {
                    const int l = (r + k) % libs; /* rotate which build goes first */
                    Lib *b = &lib[l];
                    double t0 = now_ns();
                    for (long i = 0; i < calls; i++) {
                        theta[0] = 0.3 + 1e-9 * (double)(i & 7);
                        LwfStatus st = f == 0 ? b->log_prob(b->model[s], theta, 2, &out, 1)
                                              : b->log_prob_ws(b->model[s], theta, 2, &out, 1,
                                                               b->ws[s], b->ws_len[s]);
                        if (st != LWF_OK) return 2;
                        sum += out;
                    }
                    T(l, s, f, r) = (now_ns() - t0) / (double)calls;
                }
    printf("one-sample log_prob: %ld calls x %d rounds (checksum %.6g)\n", calls, rounds, sum);
    for (int s = 0; s < SHAPES; s++)
        for (int f = 0; f < FUNCS; f++)
            for (int l = 0; l < libs; l++) {
                double *t = &T(l, s, f, 0);
                qsort(t, (size_t)rounds, sizeof(double), cmp);
                printf("%-15s %-22s median %9.1f ns  min %9.1f ns  %s\n", shape_names[s],
                       func_names[f], t[rounds / 2], t[0], lib[l].path);
            }
    return 0;
}
