/* The C ABI test: every exported function used as documented, then the bad-input matrix (each
 * bad call must return its documented status and leave its outputs untouched). Run by
 * ffi/tests/c_program.rs, under valgrind when it is installed.
 *
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/c/abi_test.c \
 *      target/debug/liblwflow.a -lm -lpthread -ldl -o abi_test && ./abi_test */
#include "lwflow.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0, bad_calls = 0;

static void expect_status(LwfStatus got, LwfStatus want, const char *what, int line) {
    checks++;
    if (got != want) {
        failures++;
        printf("FAIL line %d: %s returned %d (%s), expected %d (%s)\n", line, what, (int)got,
               lwf_status_message((int)got), (int)want, lwf_status_message((int)want));
    }
}
static void expect_true(int cond, const char *what, int line) {
    checks++;
    if (!cond) {
        failures++;
        printf("FAIL line %d: %s\n", line, what);
    }
}
/* A call that must succeed. */
#define OK(call) expect_status((call), LWF_OK, #call, __LINE__)
/* A bad call: must return `want` (counted in the bad-input matrix). */
#define BAD(want, call) (bad_calls++, expect_status((call), (want), #call, __LINE__))
#define TRUE(cond) expect_true((cond), #cond, __LINE__)

/* 8-byte aligned storage, with a deliberately misaligned view one byte in. */
static double aligned_store[4096];
#define MISALIGNED_DOUBLES ((double *)((char *)aligned_store + 1))

static int same_doubles(const double *a, const double *b, size_t n) {
    return memcmp(a, b, n * sizeof(double)) == 0;
}

/* ---- fit callbacks: one likelihood whose behaviour the test chooses through `user` ---- */
enum LikelihoodMode {
    LIK_GOOD,        /* two Gaussians at (+-2, 0), sd 1 */
    LIK_FAIL,        /* returns non-zero on the second call */
    LIK_NAN,         /* one NaN */
    LIK_POS_INF,     /* one +inf */
    LIK_ALL_NEG_INF, /* every value -inf: all weights zero */
    LIK_PEAKED,      /* one sample carries all the weight: ESS ~ 1 */
    LIK_UNWRITTEN    /* returns 0 but leaves the second half of each batch unwritten */
};
typedef struct {
    enum LikelihoodMode mode;
    size_t calls, points, max_batch;
} Likelihood;

static int test_likelihood(const double *theta, size_t n, size_t dim, double *out, void *user) {
    Likelihood *l = user;
    l->calls++;
    l->points += n;
    if (n > l->max_batch) l->max_batch = n;
    if (l->mode == LIK_FAIL && l->calls == 2) return -3;
    size_t written = l->mode == LIK_UNWRITTEN ? n / 2 : n;
    for (size_t i = 0; i < written; i++) {
        const double *x = theta + i * dim;
        double a = -0.5 * ((x[0] + 2.0) * (x[0] + 2.0) + x[1] * x[1]);
        double b = -0.5 * ((x[0] - 2.0) * (x[0] - 2.0) + x[1] * x[1]);
        double m = a > b ? a : b;
        out[i] = m + log(exp(a - m) + exp(b - m));
        if (l->mode == LIK_ALL_NEG_INF) out[i] = -INFINITY;
        if (l->mode == LIK_PEAKED) out[i] = -1e4 * (x[0] * x[0] + x[1] * x[1]);
    }
    if (l->calls == 1 && l->mode == LIK_NAN) out[n / 2] = NAN;
    if (l->calls == 1 && l->mode == LIK_POS_INF) out[n / 2] = INFINITY;
    return 0;
}

/* Progress: records the epochs seen; cancels once `cancel_at` epochs have run (0 = never). */
typedef struct {
    size_t seen, last_epoch, cancel_at;
    int in_order;
} Progress;

static int test_progress(const LwfEpochReport *r, void *user) {
    Progress *p = user;
    p->seen++;
    if (r->epoch != p->last_epoch + 1 || r->max_epochs == 0) p->in_order = 0;
    p->last_epoch = r->epoch;
    return p->cancel_at != 0 && r->epoch >= p->cancel_at;
}

/* Checkpoints: keeps a copy of the last one, counts them, checks their epochs come in order. */
typedef struct {
    unsigned char *last;
    size_t cap, len, count, epoch;
    int in_order;
} Checkpoints;

static int keep_last(const uint8_t *bytes, size_t len, size_t epoch, void *user) {
    Checkpoints *c = user;
    if ((c->count == 0 ? epoch != 0 : epoch != c->epoch + 1) || len > c->cap) c->in_order = 0;
    memcpy(c->last, bytes, len < c->cap ? len : c->cap);
    c->len = len;
    c->count++;
    c->epoch = epoch;
    return 0;
}

/* Refinement progress: counts the rounds seen, checks they come in order. */
typedef struct {
    size_t seen, next_round;
    int in_order;
} RefineProgress;

static int refine_progress(const LwfRefineRound *r, void *user) {
    RefineProgress *p = user;
    if (r->round != p->next_round || !(r->calls > 0)) p->in_order = 0;
    p->seen++;
    p->next_round = r->round + 1;
    return 0;
}

int main(void) {
    /* ---- version and status messages ---- */
    char version[32];
    snprintf(version, sizeof version, "%d.%d.%d", LWFLOW_VERSION_MAJOR, LWFLOW_VERSION_MINOR,
             LWFLOW_VERSION_PATCH);
    TRUE(lwf_version() == LWFLOW_VERSION);
    TRUE(strcmp(lwf_version_string(), version) == 0);
    for (int s = LWF_OK; s <= LWF_OVERLAPPING_BUFFERS; s++) {
        TRUE(lwf_status_message(s) != NULL);
        TRUE(strcmp(lwf_status_message(s), "unknown status code") != 0);
        for (int t = LWF_OK; t < s; t++)
            TRUE(strcmp(lwf_status_message(s), lwf_status_message(t)) != 0);
    }
    TRUE(strcmp(lwf_status_message(-1), "unknown status code") == 0);
    TRUE(strcmp(lwf_status_message(9999), "unknown status code") == 0);

    /* ---- kernel sets: the widest is chosen; the portable set can always be selected ---- */
    enum LwfKernels widest = lwf_kernels();
    TRUE(widest == LWF_KERNELS_PORTABLE || widest == LWF_KERNELS_AVX2 ||
         widest == LWF_KERNELS_AVX512);
    OK(lwf_use_kernels(LWF_KERNELS_PORTABLE));
    TRUE(lwf_kernels() == LWF_KERNELS_PORTABLE);
    BAD(LWF_INVALID_ARGUMENT, lwf_use_kernels(3));
    BAD(LWF_INVALID_ARGUMENT, lwf_use_kernels(-1));
    if (widest != LWF_KERNELS_AVX512)
        BAD(LWF_INVALID_ARGUMENT, lwf_use_kernels(LWF_KERNELS_AVX512));
    TRUE(lwf_kernels() == LWF_KERNELS_PORTABLE); /* unchanged by the refusals */
    OK(lwf_use_kernels(widest));
    TRUE(lwf_kernels() == widest);

    /* ---- shapes ---- */
    LwfShape shape, sentinel_shape;
    OK(lwf_shape_default(2, 8, 2, &shape));
    TRUE(shape.dim == 2 && shape.hidden == 8 && shape.couplings == 2 && shape.hidden_layers == 2);
    TRUE(shape.base == LWF_BASE_GAUSSIAN && shape.activation == LWF_ACTIVATION_RELU);
    TRUE(shape.components == 1 && shape.clamp == 3.0);
    shape.base = LWF_BASE_MIXTURE;
    shape.components = 2;
    OK(lwf_shape_validate(&shape));
    size_t n_params = 0, ws_count = 0, mem_len = 0, saved_len = 0;
    OK(lwf_shape_param_count(&shape, &n_params));
    OK(lwf_shape_workspace_count(&shape, &ws_count));
    OK(lwf_shape_model_size(&shape, &mem_len));
    OK(lwf_shape_serialized_size(&shape, &saved_len));
    /* couplings: 2 x (1*8+8 + 8*8+8 + 8*2+2) = 212; base: 2 + 2*2*2 = 10 */
    TRUE(n_params == 222);
    TRUE(ws_count > 0 && mem_len > n_params * 4 * sizeof(double) && saved_len == 40 + 8 * 222 + 4);
    TRUE(lwf_model_align() == 8);

    LwfShape pattern; /* outputs of refused calls must keep this byte pattern */
    memset(&pattern, 0xAB, sizeof pattern);
    sentinel_shape = pattern;
    LwfShape bad;
    BAD(LWF_NULL_POINTER, lwf_shape_default(2, 8, 2, NULL));
    BAD(LWF_INVALID_SHAPE, lwf_shape_default(1, 8, 2, &sentinel_shape));
    TRUE(memcmp(&sentinel_shape, &pattern, sizeof pattern) == 0);
    BAD(LWF_NULL_POINTER, lwf_shape_validate(NULL));
    bad = shape, bad.base = 7;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.activation = -1;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.hidden = 0;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.couplings = 0;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.hidden_layers = 0;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.clamp = NAN;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.clamp = -1.0;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.clamp = 1e300; /* not representable as the stored 32-bit float */
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.components = 0;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.base = LWF_BASE_GAUSSIAN, bad.components = 3;
    BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&bad));
    bad = shape, bad.dim = SIZE_MAX / 2; /* sizes would overflow */
    size_t untouched = 12345;
    BAD(LWF_INVALID_SHAPE, lwf_shape_model_size(&bad, &untouched));
    TRUE(untouched == 12345);
    bad = shape, bad.hidden = (size_t)1 << 40;
    BAD(LWF_INVALID_SHAPE, lwf_shape_param_count(&bad, &untouched));
    BAD(LWF_NULL_POINTER, lwf_shape_param_count(&shape, NULL));
    BAD(LWF_NULL_POINTER, lwf_shape_workspace_count(NULL, &untouched));
    BAD(LWF_NULL_POINTER, lwf_shape_serialized_size(&shape, NULL));
    {
        static LwfShape two[2];
        two[0] = shape;
        /* a shape pointer one byte off its alignment */
        BAD(LWF_MISALIGNED, lwf_shape_validate((const LwfShape *)((const char *)two + 1)));
    }
    TRUE(untouched == 12345);

    /* ---- a model in our memory ---- */
    void *mem = malloc(mem_len + 64);
    void *mem_b = malloc(mem_len);
    if (!mem || !mem_b) return 1;
    LwfModel *model = NULL, *sentinel_model = (LwfModel *)&untouched;
    LwfModel *out_model = sentinel_model;
    BAD(LWF_NULL_POINTER, lwf_model_init(NULL, mem_len, &shape, 1, &out_model));
    BAD(LWF_NULL_POINTER, lwf_model_init(mem, mem_len, NULL, 1, &out_model));
    BAD(LWF_NULL_POINTER, lwf_model_init(mem, mem_len, &shape, 1, NULL));
    BAD(LWF_MISALIGNED, lwf_model_init((char *)mem + 4, mem_len, &shape, 1, &out_model));
    BAD(LWF_BUFFER_TOO_SMALL, lwf_model_init(mem, mem_len - 1, &shape, 1, &out_model));
    bad = shape, bad.dim = 0;
    BAD(LWF_INVALID_SHAPE, lwf_model_init(mem, mem_len, &bad, 1, &out_model));
    BAD(LWF_OVERLAPPING_BUFFERS,
        lwf_model_init(mem, mem_len, &shape, 1, (LwfModel **)((char *)mem + 64)));
    TRUE(out_model == sentinel_model);
    OK(lwf_model_init(mem, mem_len, &shape, 1, &model));
    TRUE((void *)model == mem);
    LwfShape got;
    OK(lwf_model_shape(model, &got));
    TRUE(memcmp(&got, &shape, sizeof got) == 0);

    /* Same shape and seed: bit-identical parameters; another seed differs. */
    LwfModel *model_b = NULL;
    double *params = malloc(n_params * sizeof(double));
    double *params_b = malloc(n_params * sizeof(double));
    double *grad = malloc(n_params * sizeof(double));
    double *grad_acc = malloc(n_params * sizeof(double));
    if (!params || !params_b || !grad || !grad_acc) return 1;
    OK(lwf_model_init(mem_b, mem_len, &shape, 1, &model_b));
    OK(lwf_model_get_params(model, params, n_params));
    OK(lwf_model_get_params(model_b, params_b, n_params));
    TRUE(same_doubles(params, params_b, n_params));
    OK(lwf_model_init(mem_b, mem_len, &shape, 2, &model_b));
    OK(lwf_model_get_params(model_b, params_b, n_params));
    TRUE(!same_doubles(params, params_b, n_params));

    /* Base placement. */
    const double shares[2] = {0.5, 0.5}, means[4] = {-2.5, 0.0, 2.5, 0.0};
    const double scales[4] = {0.6, 0.6, 0.6, 0.6};
    OK(lwf_model_set_mixture_base(model, shares, 2, means, 4, scales, 4));
    const double zero_share[2] = {0.0, 1.0}, neg_scale[4] = {0.6, -0.6, 0.6, 0.6};
    BAD(LWF_INVALID_ARGUMENT, lwf_model_set_mixture_base(model, zero_share, 2, means, 4, scales, 4));
    BAD(LWF_INVALID_ARGUMENT, lwf_model_set_mixture_base(model, shares, 2, means, 4, neg_scale, 4));
    BAD(LWF_LENGTH_MISMATCH, lwf_model_set_mixture_base(model, shares, 2, means, 3, scales, 4));
    BAD(LWF_INVALID_ARGUMENT, lwf_model_set_gaussian_base(model, means, 2, scales, 2));
    {
        /* A Gaussian-base model: at initialisation the flow is the identity, so log q at the
         * base mean is the Gaussian's log-density there. */
        LwfShape gshape;
        size_t glen;
        OK(lwf_shape_default(2, 8, 2, &gshape));
        OK(lwf_shape_model_size(&gshape, &glen));
        void *gmem = malloc(glen);
        LwfModel *gmodel = NULL;
        if (!gmem) return 1;
        OK(lwf_model_init(gmem, glen, &gshape, 5, &gmodel));
        const double loc[2] = {1.0, -2.0}, sd[2] = {0.5, 2.0};
        OK(lwf_model_set_gaussian_base(gmodel, loc, 2, sd, 2));
        double lq = 0.0;
        OK(lwf_model_log_prob(gmodel, loc, 2, &lq, 1));
        double want = -log(0.5) - log(2.0) - log(2.0 * 3.14159265358979323846);
        TRUE(fabs(lq - want) < 1e-12);
        const double zero_sd[2] = {0.5, 0.0}, nan_loc[2] = {NAN, 0.0};
        BAD(LWF_INVALID_ARGUMENT, lwf_model_set_gaussian_base(gmodel, loc, 2, zero_sd, 2));
        BAD(LWF_NON_FINITE, lwf_model_set_gaussian_base(gmodel, nan_loc, 2, sd, 2));
        BAD(LWF_LENGTH_MISMATCH, lwf_model_set_gaussian_base(gmodel, loc, 3, sd, 2));
        BAD(LWF_INVALID_ARGUMENT,
            lwf_model_set_mixture_base(gmodel, shares, 2, means, 4, scales, 4));
        free(gmem);
    }
    {
        /* In 3-D with 4 couplings the fresh flow permutes coordinates; the base is still given
         * in theta coordinates, so log q at a mode is the mixture's log-density there. */
        LwfShape s3;
        size_t len3;
        OK(lwf_shape_default(3, 8, 4, &s3));
        s3.base = LWF_BASE_MIXTURE;
        s3.components = 2;
        OK(lwf_shape_model_size(&s3, &len3));
        void *mem3 = malloc(len3);
        LwfModel *m3 = NULL;
        if (!mem3) return 1;
        OK(lwf_model_init(mem3, len3, &s3, 9, &m3));
        const double mu3[6] = {-2.5, 0.0, 0.0, 2.5, 0.0, 0.0}, sd3[6] = {0.6, 0.6, 0.6, 0.6, 0.6, 0.6};
        OK(lwf_model_set_mixture_base(m3, shares, 2, mu3, 6, sd3, 6));
        double lq3 = 0.0;
        OK(lwf_model_log_prob(m3, mu3, 3, &lq3, 1));
        double want3 = log(0.5) - 3.0 * (log(0.6) + 0.5 * log(2.0 * 3.14159265358979323846));
        TRUE(fabs(lq3 - want3) < 1e-9);
        free(mem3);
    }

    {
        /* Outer maps: a bounded model with the affine standardisation. Its density is zero
         * outside the open box and its samples lie inside; the maps survive save / load. */
        LwfShape ob, obgot, obins;
        size_t oblen, obp, obsaved, obw, untouched_size = 777;
        OK(lwf_shape_default(2, 8, 2, &ob));
        TRUE(ob.affine == 0 && ob.bounded == 0);
        ob.affine = 1;
        ob.bounded = 1;
        OK(lwf_shape_validate(&ob));
        OK(lwf_shape_param_count(&ob, &obp));
        /* couplings 2 x (1*8+8 + 8*8+8 + 8*2+2) = 212, Gaussian base 4, affine 2 + 3, box 4 */
        TRUE(obp == 212 + 4 + 5 + 4);
        OK(lwf_shape_model_size(&ob, &oblen));
        OK(lwf_shape_serialized_size(&ob, &obsaved));
        void *obmem = malloc(oblen), *obmem2 = malloc(oblen);
        double *obparams = malloc(obp * sizeof(double));
        uint8_t *obbytes = malloc(obsaved);
        LwfModel *obm = NULL, *obm2 = NULL;
        if (!obmem || !obmem2 || !obparams || !obbytes) return 1;
        OK(lwf_model_init(obmem, oblen, &ob, 3, &obm));
        OK(lwf_model_shape(obm, &obgot));
        TRUE(memcmp(&obgot, &ob, sizeof ob) == 0);
        const double blo[2] = {-1.0, 0.0}, bhi[2] = {3.0, 2.0};
        const double shift[2] = {1.0, 1.0}, chol[3] = {0.5, 0.1, 0.4};
        OK(lwf_model_set_box(obm, blo, bhi, 2));
        OK(lwf_model_set_affine(obm, shift, 2, chol, 3));
        const double bad_chol[3] = {0.5, 0.1, -0.4}, nan_shift[2] = {NAN, 0.0};
        OK(lwf_model_get_params(obm, obparams, obp));
        BAD(LWF_INVALID_ARGUMENT, lwf_model_set_box(obm, bhi, blo, 2)); /* lo > hi */
        BAD(LWF_LENGTH_MISMATCH, lwf_model_set_box(obm, blo, bhi, 3));
        BAD(LWF_NULL_POINTER, lwf_model_set_box(obm, NULL, bhi, 2));
        BAD(LWF_NULL_POINTER, lwf_model_set_box(NULL, blo, bhi, 2));
        BAD(LWF_INVALID_ARGUMENT, lwf_model_set_affine(obm, shift, 2, bad_chol, 3));
        BAD(LWF_NON_FINITE, lwf_model_set_affine(obm, nan_shift, 2, chol, 3));
        BAD(LWF_LENGTH_MISMATCH, lwf_model_set_affine(obm, shift, 2, chol, 2));
        BAD(LWF_INVALID_ARGUMENT, lwf_model_set_box(model, blo, bhi, 2)); /* no box */
        BAD(LWF_INVALID_ARGUMENT, lwf_model_set_affine(model, shift, 2, chol, 3));
        {
            double after[300];
            OK(lwf_model_get_params(obm, after, obp));
            TRUE(same_doubles(after, obparams, obp)); /* refused calls changed nothing */
        }
        /* The box is the last 2 * dim parameters: lo, then hi. */
        TRUE(obparams[obp - 4] == -1.0 && obparams[obp - 3] == 0.0);
        TRUE(obparams[obp - 2] == 3.0 && obparams[obp - 1] == 2.0);
        const double pts[6] = {1.0, 1.0, 4.0, 1.0, -1.0, 1.0}; /* inside, outside, boundary */
        double lqs[3], lqs2[3];
        OK(lwf_model_log_prob(obm, pts, 6, lqs, 3));
        TRUE(isfinite(lqs[0]) && lqs[1] == -INFINITY && lqs[2] == -INFINITY);
        LwfRng orng;
        OK(lwf_rng_init(&orng, 4));
        double os[400], olq[200];
        OK(lwf_model_sample(obm, &orng, os, 400, olq, 200));
        int inside = 1;
        for (int i = 0; i < 200; i++)
            if (!(os[2 * i] >= -1.0 && os[2 * i] <= 3.0 && os[2 * i + 1] >= 0.0 &&
                  os[2 * i + 1] <= 2.0))
                inside = 0;
        TRUE(inside);
        /* set_params refuses an invalid box (lo > hi) and keeps the model */
        obparams[obp - 4] = 5.0;
        BAD(LWF_INVALID_ARGUMENT, lwf_model_set_params(obm, obparams, obp));
        obparams[obp - 4] = -1.0;
        OK(lwf_model_set_params(obm, obparams, obp));
        OK(lwf_model_save(obm, obbytes, obsaved, &obw));
        TRUE(obw == obsaved);
        OK(lwf_model_inspect(obbytes, obw, &obins));
        TRUE(memcmp(&obins, &ob, sizeof ob) == 0);
        OK(lwf_model_load(obmem2, oblen, obbytes, obw, &obm2));
        OK(lwf_model_log_prob(obm2, pts, 6, lqs2, 3));
        TRUE(memcmp(lqs, lqs2, sizeof lqs) == 0);
        /* flags are 0 or 1; the one-call fit does not fit outer maps */
        LwfShape flag = ob;
        flag.affine = 2;
        BAD(LWF_INVALID_SHAPE, lwf_shape_validate(&flag));
        flag = ob, flag.bounded = -1;
        BAD(LWF_INVALID_SHAPE, lwf_shape_model_size(&flag, &untouched_size));
        LwfFitConfig ocfg;
        OK(lwf_fit_config_default(&ocfg));
        BAD(LWF_INVALID_ARGUMENT, lwf_fit_model_size(&ob, &ocfg, &untouched_size));
        TRUE(untouched_size == 777);
        free(obmem);
        free(obmem2);
        free(obparams);
        free(obbytes);
    }

    /* ---- log_prob on a batch, with the model's workspace and with our own ---- */
    enum { N = 40 };
    double theta[N * 2], log_q[N], log_q_ws[N], sentinel[N];
    for (int i = 0; i < N; i++) {
        theta[2 * i] = -4.0 + 8.0 * i / (N - 1);
        theta[2 * i + 1] = 0.5 * sin((double)i);
        sentinel[i] = -7.0;
    }
    OK(lwf_model_log_prob(model, theta, N * 2, log_q, N));
    double *ws = malloc(ws_count * sizeof(double));
    if (!ws) return 1;
    OK(lwf_model_log_prob_ws(model, theta, N * 2, log_q_ws, N, ws, ws_count));
    TRUE(same_doubles(log_q, log_q_ws, N));
    for (int i = 0; i < N; i++) TRUE(isfinite(log_q[i]));

    double out[N];
    memcpy(out, sentinel, sizeof out);
    BAD(LWF_NULL_POINTER, lwf_model_log_prob(NULL, theta, N * 2, out, N));
    BAD(LWF_NULL_POINTER, lwf_model_log_prob(model, NULL, N * 2, out, N));
    BAD(LWF_NULL_POINTER, lwf_model_log_prob(model, theta, N * 2, NULL, N));
    BAD(LWF_EMPTY_BATCH, lwf_model_log_prob(model, theta, 0, out, 0));
    BAD(LWF_EMPTY_BATCH, lwf_model_log_prob(model, NULL, 0, NULL, 0)); /* NULL + 0 = empty */
    BAD(LWF_LENGTH_MISMATCH, lwf_model_log_prob(model, theta, N * 2 - 1, out, N));
    BAD(LWF_LENGTH_MISMATCH, lwf_model_log_prob(model, theta, SIZE_MAX, out, N));
    BAD(LWF_MISALIGNED, lwf_model_log_prob(model, MISALIGNED_DOUBLES, N * 2, out, N));
    BAD(LWF_MISALIGNED, lwf_model_log_prob(model, theta, N * 2, MISALIGNED_DOUBLES, N));
    BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_log_prob(model, theta, N * 2, theta + 1, N));
    BAD(LWF_OVERLAPPING_BUFFERS,
        lwf_model_log_prob(model, theta, N * 2, (double *)((char *)mem + 256), N));
    const double theta7 = theta[7];
    theta[7] = NAN;
    BAD(LWF_NON_FINITE, lwf_model_log_prob(model, theta, N * 2, out, N));
    theta[7] = -INFINITY;
    BAD(LWF_NON_FINITE, lwf_model_log_prob(model, theta, N * 2, out, N));
    theta[7] = theta7;
    BAD(LWF_BUFFER_TOO_SMALL,
        lwf_model_log_prob_ws(model, theta, N * 2, out, N, ws, ws_count - 1));
    BAD(LWF_NULL_POINTER, lwf_model_log_prob_ws(model, theta, N * 2, out, N, NULL, ws_count));
    BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_log_prob_ws(model, theta, N * 2, out, N, out, N));
    TRUE(same_doubles(out, sentinel, N));

    /* The maps: theta -> z -> theta round trip, log-dets of opposite sign. */
    {
        double z[N * 2], back[N * 2], ld_inv[N], ld_fwd[N];
        OK(lwf_model_inverse(model, theta, N * 2, z, N * 2, ld_inv, N));
        OK(lwf_model_forward(model, z, N * 2, back, N * 2, ld_fwd, N));
        double worst = 0.0;
        for (int i = 0; i < N * 2; i++) worst = fmax(worst, fabs(back[i] - theta[i]));
        for (int i = 0; i < N; i++) worst = fmax(worst, fabs(ld_inv[i] + ld_fwd[i]));
        TRUE(worst < 1e-12);
        memcpy(ld_fwd, sentinel, sizeof ld_fwd);
        BAD(LWF_LENGTH_MISMATCH, lwf_model_inverse(model, theta, N * 2, z, N * 2 - 2, ld_fwd, N));
        BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_forward(model, z, N * 2, z, N * 2, ld_fwd, N));
        BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_forward(model, z, N * 2, back, N * 2, back, N));
        BAD(LWF_EMPTY_BATCH, lwf_model_forward(model, z, 0, back, 0, ld_fwd, 0));
        z[3] = NAN;
        BAD(LWF_NON_FINITE, lwf_model_forward(model, z, N * 2, back, N * 2, ld_fwd, N));
        TRUE(same_doubles(ld_fwd, sentinel, N));
    }

    /* Handles that are not models. */
    {
        static double zeros[512];
        BAD(LWF_INVALID_MODEL, lwf_model_log_prob((LwfModel *)zeros, theta, N * 2, out, N));
        BAD(LWF_MISALIGNED,
            lwf_model_log_prob((LwfModel *)((char *)mem + 1), theta, N * 2, out, N));
        /* A model whose header was overwritten: copy it, corrupt one header byte. */
        void *copy = malloc(mem_len);
        if (!copy) return 1;
        memcpy(copy, mem, mem_len);
        OK(lwf_model_log_prob((LwfModel *)copy, theta, N * 2, out, N)); /* position-independent */
        TRUE(same_doubles(out, log_q, N));
        memcpy(out, sentinel, sizeof out);
        ((unsigned char *)copy)[9] ^= 0x01; /* the stored dimension */
        BAD(LWF_INVALID_MODEL, lwf_model_log_prob((LwfModel *)copy, theta, N * 2, out, N));
        ((unsigned char *)copy)[9] ^= 0x01;
        ((unsigned char *)copy)[0] ^= 0x80; /* the tag */
        BAD(LWF_INVALID_MODEL, lwf_model_shape((LwfModel *)copy, &got));
        free(copy);
        TRUE(same_doubles(out, sentinel, N));
    }

    /* ---- sampling ---- */
    LwfRng rng, rng_copy, rng_sentinel;
    OK(lwf_rng_init(&rng, 11));
    rng_copy = rng;
    double s1[N * 2], s2[N * 2], lq1[N], lq2[N];
    OK(lwf_model_sample(model, &rng, s1, N * 2, lq1, N));
    TRUE(memcmp(&rng, &rng_copy, sizeof rng) != 0);
    OK(lwf_model_sample_ws(model, &rng_copy, s2, N * 2, lq2, N, ws, ws_count));
    TRUE(same_doubles(s1, s2, N * 2) && same_doubles(lq1, lq2, N));
    TRUE(memcmp(&rng, &rng_copy, sizeof rng) == 0);
    OK(lwf_model_log_prob(model, s1, N * 2, out, N));
    for (int i = 0; i < N; i++) TRUE(fabs(out[i] - lq1[i]) < 1e-9);
    OK(lwf_rng_jump(&rng_copy));
    OK(lwf_model_sample(model, &rng_copy, s2, N * 2, lq2, N));
    TRUE(!same_doubles(s1, s2, N * 2));
    rng_sentinel = rng;
    BAD(LWF_NULL_POINTER, lwf_rng_init(NULL, 1));
    BAD(LWF_NULL_POINTER, lwf_rng_jump(NULL));
    BAD(LWF_NULL_POINTER, lwf_model_sample(model, NULL, s2, N * 2, lq2, N));
    BAD(LWF_EMPTY_BATCH, lwf_model_sample(model, &rng, s2, 0, lq2, 0));
    BAD(LWF_LENGTH_MISMATCH, lwf_model_sample(model, &rng, s2, N * 2 - 1, lq2, N));
    BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_sample(model, &rng, s2, N * 2, s2 + 3, N));
    BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_sample(model, (LwfRng *)s2, s2, N * 2, lq2, N));
    BAD(LWF_BUFFER_TOO_SMALL, lwf_model_sample_ws(model, &rng, s2, N * 2, lq2, N, ws, 3));
    TRUE(memcmp(&rng, &rng_sentinel, sizeof rng) == 0); /* not advanced by failed calls */

    /* ---- loss, gradient, data-parallel accumulation, Adam ---- */
    double weights[N], loss = 0.0, loss_acc = 0.0;
    for (int i = 0; i < N; i++) weights[i] = 0.5 + (double)(i % 3);
    OK(lwf_model_loss_grad(model, theta, N * 2, weights, N, grad, n_params, &loss));
    TRUE(isfinite(loss));
    /* Two halves (as two MPI ranks would), scale 1/N each, summed: the whole batch's gradient. */
    memset(grad_acc, 0, n_params * sizeof(double));
    OK(lwf_model_loss_grad_accumulate(model, theta, N, weights, N / 2, 1.0 / N, grad_acc,
                                      n_params, &loss_acc));
    OK(lwf_model_loss_grad_accumulate(model, theta + N, N, weights + N / 2, N / 2, 1.0 / N,
                                      grad_acc, n_params, &loss_acc));
    double max_diff = fabs(loss - loss_acc);
    for (size_t i = 0; i < n_params; i++) {
        double d = fabs(grad[i] - grad_acc[i]);
        max_diff = d > max_diff ? d : max_diff;
    }
    TRUE(max_diff < 1e-12);

    double loss_sentinel = -7.0;
    double neg_w[N], nan_w[N], huge_w[N];
    memcpy(neg_w, weights, sizeof neg_w);
    memcpy(nan_w, weights, sizeof nan_w);
    for (int i = 0; i < N; i++) huge_w[i] = 1e308;
    neg_w[3] = -1.0;
    nan_w[5] = NAN;
    memcpy(grad_acc, grad, n_params * sizeof(double));
    BAD(LWF_LENGTH_MISMATCH,
        lwf_model_loss_grad(model, theta, N * 2, weights, N, grad, n_params - 1, &loss_sentinel));
    BAD(LWF_LENGTH_MISMATCH,
        lwf_model_loss_grad(model, theta, N * 2, weights, N - 1, grad, n_params, &loss_sentinel));
    BAD(LWF_INVALID_ARGUMENT,
        lwf_model_loss_grad(model, theta, N * 2, neg_w, N, grad, n_params, &loss_sentinel));
    BAD(LWF_NON_FINITE,
        lwf_model_loss_grad(model, theta, N * 2, nan_w, N, grad, n_params, &loss_sentinel));
    /* Finite inputs whose loss overflows: refused, so a training loop can skip the step. */
    BAD(LWF_NON_FINITE,
        lwf_model_loss_grad(model, theta, N * 2, huge_w, N, grad, n_params, &loss_sentinel));
    BAD(LWF_NULL_POINTER, lwf_model_loss_grad(model, theta, N * 2, weights, N, grad, n_params, NULL));
    BAD(LWF_EMPTY_BATCH,
        lwf_model_loss_grad(model, theta, 0, weights, 0, grad, n_params, &loss_sentinel));
    BAD(LWF_OVERLAPPING_BUFFERS,
        lwf_model_loss_grad(model, theta, N * 2, weights, N, theta, n_params, &loss_sentinel));
    BAD(LWF_OVERLAPPING_BUFFERS,
        lwf_model_loss_grad(model, theta, N * 2, weights, N, grad, n_params, &weights[2]));
    BAD(LWF_NON_FINITE, lwf_model_loss_grad_accumulate(model, theta, N * 2, weights, N, NAN, grad,
                                                       n_params, &loss_sentinel));
    TRUE(loss_sentinel == -7.0 && same_doubles(grad, grad_acc, n_params));

    LwfAdam adam, bad_adam;
    OK(lwf_adam_default(&adam));
    TRUE(adam.lr == 1e-3 && adam.beta1 == 0.9 && adam.beta2 == 0.999 && adam.eps == 1e-8 &&
         adam.weight_decay == 0.0);
    BAD(LWF_NULL_POINTER, lwf_adam_default(NULL));
    OK(lwf_model_get_params(model, params, n_params));
    OK(lwf_model_adam_step(model, &adam, grad, n_params));
    OK(lwf_model_get_params(model, params_b, n_params));
    TRUE(!same_doubles(params, params_b, n_params));
    /* Reset + the same parameters + the same gradient = the same step. */
    OK(lwf_model_set_params(model, params, n_params));
    OK(lwf_model_adam_reset(model));
    OK(lwf_model_adam_step(model, &adam, grad, n_params));
    OK(lwf_model_get_params(model, grad_acc, n_params));
    TRUE(same_doubles(grad_acc, params_b, n_params));

    bad_adam = adam, bad_adam.lr = 0.0;
    BAD(LWF_INVALID_ARGUMENT, lwf_model_adam_step(model, &bad_adam, grad, n_params));
    bad_adam = adam, bad_adam.beta1 = 1.0;
    BAD(LWF_INVALID_ARGUMENT, lwf_model_adam_step(model, &bad_adam, grad, n_params));
    bad_adam = adam, bad_adam.eps = NAN;
    BAD(LWF_NON_FINITE, lwf_model_adam_step(model, &bad_adam, grad, n_params));
    BAD(LWF_NULL_POINTER, lwf_model_adam_step(model, NULL, grad, n_params));
    BAD(LWF_LENGTH_MISMATCH, lwf_model_adam_step(model, &adam, grad, n_params - 1));
    grad[0] = INFINITY;
    BAD(LWF_NON_FINITE, lwf_model_adam_step(model, &adam, grad, n_params));
    BAD(LWF_OVERLAPPING_BUFFERS,
        lwf_model_adam_step(model, &adam, (const double *)((char *)mem + 128), n_params));
    BAD(LWF_NULL_POINTER, lwf_model_adam_reset(NULL));
    params[1] = NAN;
    BAD(LWF_NON_FINITE, lwf_model_set_params(model, params, n_params));
    BAD(LWF_LENGTH_MISMATCH, lwf_model_set_params(model, params, n_params - 1));
    BAD(LWF_LENGTH_MISMATCH, lwf_model_get_params(model, params, n_params - 1));
    OK(lwf_model_get_params(model, params, n_params));
    TRUE(same_doubles(params, params_b, n_params)); /* unchanged by the refused calls */

    /* ---- save / load, and corrupted bytes ---- */
    uint8_t *bytes = malloc(saved_len + 1);
    size_t written = 0, written_sentinel = 99;
    if (!bytes) return 1;
    BAD(LWF_BUFFER_TOO_SMALL, lwf_model_save(model, bytes, saved_len - 1, &written_sentinel));
    BAD(LWF_NULL_POINTER, lwf_model_save(model, bytes, saved_len, NULL));
    BAD(LWF_OVERLAPPING_BUFFERS,
        lwf_model_save(model, (uint8_t *)mem + 100, saved_len, &written_sentinel));
    TRUE(written_sentinel == 99);
    OK(lwf_model_save(model, bytes, saved_len + 1, &written));
    TRUE(written == saved_len);
    OK(lwf_model_inspect(bytes, written, &got));
    TRUE(memcmp(&got, &shape, sizeof got) == 0);
    LwfModel *loaded = NULL;
    OK(lwf_model_load(mem_b, mem_len, bytes, written, &loaded));
    OK(lwf_model_log_prob(model, theta, N * 2, log_q, N));
    OK(lwf_model_log_prob(loaded, theta, N * 2, out, N));
    TRUE(same_doubles(log_q, out, N));

    out_model = sentinel_model;
    got = pattern;
    BAD(LWF_BAD_FORMAT, lwf_model_inspect(bytes, 0, &got));
    BAD(LWF_BAD_FORMAT, lwf_model_inspect(bytes, written - 1, &got));   /* truncated */
    BAD(LWF_BAD_FORMAT, lwf_model_inspect(bytes, written + 1, &got));   /* trailing byte */
    BAD(LWF_NULL_POINTER, lwf_model_inspect(NULL, written, &got));
    BAD(LWF_BAD_FORMAT, lwf_model_inspect(NULL, 0, &got)); /* empty: truncated */
    BAD(LWF_BAD_FORMAT, lwf_model_load(mem_b, mem_len, bytes, 10, &out_model));
    bytes[100] ^= 0x10; /* a parameter bit: checksum mismatch */
    BAD(LWF_BAD_FORMAT, lwf_model_load(mem_b, mem_len, bytes, written, &out_model));
    bytes[100] ^= 0x10;
    bytes[0] = 'X'; /* magic */
    BAD(LWF_BAD_FORMAT, lwf_model_load(mem_b, mem_len, bytes, written, &out_model));
    bytes[0] = 'L';
    {
        const unsigned char version = bytes[4];
        bytes[4] = 99; /* format version */
        BAD(LWF_BAD_FORMAT, lwf_model_inspect(bytes, written, &got));
        bytes[4] = version;
    }
    BAD(LWF_BUFFER_TOO_SMALL, lwf_model_load(mem_b, mem_len - 8, bytes, written, &out_model));
    BAD(LWF_MISALIGNED, lwf_model_load((char *)mem_b + 2, mem_len, bytes, written, &out_model));
    {
        /* model bytes placed inside the memory the model would be loaded into */
        uint8_t *inside = (uint8_t *)mem + mem_len - written;
        memmove(inside, bytes, written);
        BAD(LWF_OVERLAPPING_BUFFERS, lwf_model_load(mem, mem_len + 64, inside, written, &out_model));
    }
    TRUE(out_model == sentinel_model);
    TRUE(memcmp(&got, &pattern, sizeof got) == 0);
    /* The refused loads did not touch mem_b: the loaded model still works. */
    OK(lwf_model_log_prob(loaded, theta, N * 2, out, N));
    TRUE(same_doubles(log_q, out, N));

    /* ---- fit: configuration, sizes, the two entry points, and their bad-input matrix ---- */
    {
        LwfFitConfig cfg, bad_cfg;
        OK(lwf_fit_config_default(&cfg));
        TRUE(cfg.struct_size == sizeof(LwfFitConfig));
        TRUE(cfg.base == LWF_FIT_BASE_AUTO && cfg.components == 8 && cfg.bounded == 1);
        TRUE(cfg.non_finite == LWF_NON_FINITE_ERROR && cfg.min_ess == 100.0);
        TRUE(cfg.max_epochs == 200 && cfg.batch_size == 512 && cfg.lr == 1e-3);
        TRUE(cfg.schedule == LWF_SCHEDULE_COSINE && cfg.min_lr_factor == 0.05);
        TRUE(cfg.patience == 20 && cfg.validation_fraction == 0.2 && cfg.clip_norm == 10.0);
        TRUE(cfg.em_max_iter == 200 && cfg.em_restarts == 3 && cfg.em_tol == 1e-6);
        /* small and quick (this also runs under valgrind) */
        cfg.components = 3;
        cfg.max_epochs = 2;
        cfg.batch_size = 128;
        cfg.min_ess = 10.0;
        cfg.likelihood_batch = 100;
        cfg.sample_seed = 5;
        enum { NF = 600 };
        LwfShape fshape;
        OK(lwf_shape_default(2, 8, 2, &fshape));
        size_t fmem_len = 0, fwork_len = 0, k3_len = 0;
        OK(lwf_fit_model_size(&fshape, &cfg, &fmem_len));
        OK(lwf_fit_work_size(&fshape, &cfg, NF, &fwork_len));
        {
            /* the model memory is that of the largest mixture the config allows */
            LwfShape k3 = fshape;
            k3.base = LWF_BASE_MIXTURE;
            k3.components = 3;
            k3.bounded = 1; /* fits on the box by default */
            OK(lwf_shape_model_size(&k3, &k3_len));
            TRUE(k3_len == fmem_len);
        }
        {
            /* A config from the first header (fields up to init_seed, no bounded) in memory
             * of exactly that size: read with bounded = 1, nothing beyond (valgrind). */
            const size_t v1 = offsetof(LwfFitConfig, bounded);
            size_t v1_len = 0;
            unsigned char *old = malloc(v1);
            if (!old) return 1;
            memcpy(old, &cfg, v1);
            memcpy(old, &v1, sizeof v1); /* struct_size, the first field */
            OK(lwf_fit_model_size(&fshape, (const LwfFitConfig *)(void *)old, &v1_len));
            TRUE(v1_len == fmem_len);
            free(old);
        }
        /* one extra double each, for misaligned and one-short views */
        double *fmem = malloc(fmem_len + 8), *fwork = malloc(fwork_len + 8);
        unsigned char *fmem_copy = malloc(fmem_len);
        if (!fmem || !fwork || !fmem_copy) return 1;
        memset(fmem, 0, fmem_len); /* a fit with K < 3 leaves the tail unwritten: compared below */
        const double lo[2] = {-6.0, -6.0}, hi[2] = {6.0, 6.0};
        Likelihood lik = {LIK_GOOD, 0, 0, 0};
        Progress prog = {0, 0, 0, 1};
        LwfFitReport rep, rep_pattern;
        memset(&rep_pattern, 0xCD, sizeof rep_pattern);
        memcpy(&rep, &rep_pattern, sizeof rep);
        LwfModel *fmodel = NULL;

        OK(lwf_model_fit_prior_box(fmem, fmem_len, &fshape, &cfg, lo, 2, hi, 2, NF,
                                   test_likelihood, &lik, test_progress, &prog, fwork, fwork_len,
                                   &rep, &fmodel));
        TRUE((void *)fmodel == (void *)fmem);
        TRUE(lik.points == NF && lik.calls == NF / 100 && lik.max_batch == 100);
        TRUE(prog.seen == rep.epochs && prog.in_order && rep.epochs == 2);
        TRUE(rep.n_samples == NF && rep.skipped_samples == 0 && rep.ess > 10.0);
        TRUE(rep.components >= 1 && rep.components <= 3 && rep.em_iterations >= 1);
        TRUE(isfinite(rep.em_bic) && isfinite(rep.best_val_loss) && rep.steps > 0);
        TRUE(rep.stop_reason == LWF_STOP_MAX_EPOCHS);
        TRUE(rep.best_val_loss <= rep.initial_val_loss);
        LwfShape fitted;
        OK(lwf_model_shape(fmodel, &fitted));
        TRUE(fitted.base == LWF_BASE_MIXTURE && fitted.components == rep.components);
        TRUE(fitted.dim == 2 && fitted.hidden == 8 && fitted.couplings == 2);
        TRUE(fitted.bounded == 1 && fitted.affine == 0); /* on the prior box */
        double fq[N], fq2[N];
        OK(lwf_model_log_prob(fmodel, theta, N * 2, fq, N));
        for (int i = 0; i < N; i++) TRUE(isfinite(fq[i]));
        {
            /* Deterministic: the same call in other memory gives the same model; without a
             * report or progress callback too. */
            double *mem2 = malloc(fmem_len), *work2 = malloc(fwork_len);
            LwfModel *again = NULL;
            if (!mem2 || !work2) return 1;
            OK(lwf_model_fit_prior_box(mem2, fmem_len, &fshape, &cfg, lo, 2, hi, 2, NF,
                                       test_likelihood, &lik, NULL, NULL, work2, fwork_len, NULL,
                                       &again));
            OK(lwf_model_log_prob(again, theta, N * 2, fq2, N));
            TRUE(same_doubles(fq, fq2, N));
            free(mem2);
            free(work2);
        }

        {
            /* The resumable form: the same model, a checkpoint after the samples (epoch 0) and
             * after every epoch; the last one resumed gives the same model again, without a
             * likelihood call; a truncated one is a format error. */
            size_t ck_len = 0, ck_sentinel = 31;
            OK(lwf_fit_checkpoint_size(&fshape, &cfg, NF, &ck_len));
            unsigned char *ck = malloc(ck_len), *saved = malloc(ck_len);
            double *mem2 = malloc(fmem_len), *work2 = malloc(fwork_len);
            if (!ck || !saved || !mem2 || !work2) return 1;
            Checkpoints cps = {saved, ck_len, 0, 0, 0, 1};
            Likelihood lik2 = {LIK_GOOD, 0, 0, 0};
            LwfModel *again = NULL, *none = NULL;
            LwfFitReport rep2;
            OK(lwf_model_fit_prior_box_resumable(mem2, fmem_len, &fshape, &cfg, lo, 2, hi, 2, NF,
                                                 test_likelihood, &lik2, NULL, NULL, keep_last,
                                                 &cps, ck, ck_len, work2, fwork_len, &rep2,
                                                 &again));
            OK(lwf_model_log_prob(again, theta, N * 2, fq2, N));
            TRUE(same_doubles(fq, fq2, N) && lik2.points == NF);
            TRUE(cps.in_order && cps.count == rep.epochs + 1 && cps.epoch == rep.epochs);
            LwfFitCheckpointInfo info;
            OK(lwf_fit_checkpoint_inspect(saved, cps.len, &info));
            TRUE(info.epoch == rep.epochs && info.n_samples == NF && info.dim == 2);
            TRUE(info.model_bytes == fmem_len && info.checkpoint_bytes == ck_len);
            double *work3 = malloc(info.work_bytes);
            if (!work3) return 1;
            memset(mem2, 0, fmem_len);
            OK(lwf_model_fit_resume(mem2, fmem_len, saved, cps.len, NULL, NULL, NULL, NULL, NULL,
                                    0, work3, info.work_bytes, &rep2, &again));
            OK(lwf_model_log_prob(again, theta, N * 2, fq2, N));
            TRUE(same_doubles(fq, fq2, N) && lik2.points == NF);
            BAD(LWF_BAD_FORMAT, lwf_fit_checkpoint_inspect(saved, cps.len - 1, &info));
            BAD(LWF_BAD_FORMAT,
                lwf_model_fit_resume(mem2, fmem_len, saved, cps.len - 1, NULL, NULL, NULL, NULL,
                                     NULL, 0, work3, info.work_bytes, &rep2, &none));
            BAD(LWF_BUFFER_TOO_SMALL,
                lwf_model_fit_prior_box_resumable(mem2, fmem_len, &fshape, &cfg, lo, 2, hi, 2, NF,
                                                  test_likelihood, &lik2, NULL, NULL, keep_last,
                                                  &cps, ck, ck_len - 1, work2, fwork_len, &rep2,
                                                  &none));
            BAD(LWF_NULL_POINTER, lwf_fit_checkpoint_size(&fshape, &cfg, NF, NULL));
            BAD(LWF_EMPTY_BATCH, lwf_fit_checkpoint_size(&fshape, &cfg, 0, &ck_sentinel));
            TRUE(none == NULL && ck_sentinel == 31);
            free(ck);
            free(saved);
            free(mem2);
            free(work2);
            free(work3);
        }

        /* Every refused fit leaves the model memory (holding the model above), the report and
         * the handle untouched. */
        memcpy(fmem_copy, fmem, fmem_len);
        LwfModel *fsentinel = (LwfModel *)&untouched, *fout = fsentinel;
        memcpy(&rep, &rep_pattern, sizeof rep);
#define FIT_BOX(want, mem_, mem_len_, cfg_, lo_, lo_len_, hi_, hi_len_, n_, lik_fn_, work_,   \
                work_len_, report_)                                                        \
    BAD(want, lwf_model_fit_prior_box(mem_, mem_len_, &fshape, cfg_, lo_, lo_len_, hi_,       \
                                      hi_len_, n_, lik_fn_, &lik, test_progress, &prog, work_, \
                                      work_len_, report_, &fout))
#define FIT_CB(want, mode_) \
    (lik.mode = (mode_), lik.calls = 0,                                                    \
     FIT_BOX(want, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood, fwork, fwork_len, \
             &rep))
        /* callbacks */
        FIT_BOX(LWF_NULL_POINTER, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF, NULL, fwork, fwork_len,
                &rep);
        FIT_CB(LWF_CALLBACK_FAILED, LIK_FAIL);
        TRUE(lik.calls == 2); /* stopped at the failing call */
        FIT_CB(LWF_CALLBACK_FAILED, LIK_NAN);
        FIT_CB(LWF_CALLBACK_FAILED, LIK_POS_INF);
        FIT_CB(LWF_CALLBACK_FAILED, LIK_UNWRITTEN); /* unwritten entries read as NaN */
        FIT_CB(LWF_DEGENERATE_WEIGHTS, LIK_ALL_NEG_INF);
        FIT_CB(LWF_DEGENERATE_WEIGHTS, LIK_PEAKED); /* ESS ~ 1 < min_ess */
        bad_cfg = cfg, bad_cfg.min_ess = NF + 1.0;  /* ESS <= n always */
        lik.mode = LIK_GOOD;
        FIT_BOX(LWF_DEGENERATE_WEIGHTS, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.non_finite = LWF_NON_FINITE_SKIP;
        lik.mode = LIK_ALL_NEG_INF, lik.calls = 0;
        FIT_BOX(LWF_DEGENERATE_WEIGHTS, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        lik.mode = LIK_GOOD;
        /* invalid configuration fields */
        FIT_BOX(LWF_NULL_POINTER, fmem, fmem_len, NULL, lo, 2, hi, 2, NF, test_likelihood, fwork,
                fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.struct_size = sizeof(LwfFitConfig) - 4;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.bounded = 2;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.base = 9;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.base = LWF_FIT_BASE_MIXTURE, bad_cfg.components = 0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.max_epochs = 0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.batch_size = 0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.lr = NAN;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.beta1 = 1.0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.validation_fraction = 0.95;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.schedule = 7;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.min_lr_factor = -0.5;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.non_finite = 2;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.min_ess = NAN;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.likelihood_batch = 0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.em_restarts = 0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.em_var_floor = -1.0;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.clip_norm = INFINITY;
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.components = SIZE_MAX / 4; /* sizes would overflow */
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        /* the box and the sample count */
        const double lo_nan[2] = {NAN, -6.0}, hi_low[2] = {6.0, -6.0};
        const double lo_huge[2] = {-1e308, -6.0}, hi_huge[2] = {1e308, 6.0};
        const double lo_inf[2] = {-INFINITY, -6.0}, hi_inf[2] = {6.0, INFINITY};
        /* 2^53 and 2^53 + 2: no double strictly between them */
        const double lo_tight[2] = {9007199254740992.0, -6.0},
                     hi_tight[2] = {9007199254740994.0, 6.0};
        lik.calls = 0; /* every box is checked before the first callback */
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &cfg, lo_huge, 2, hi_huge, 2, NF,
                test_likelihood, fwork, fwork_len, &rep); /* the width overflows */
        FIT_BOX(LWF_NON_FINITE, fmem, fmem_len, &cfg, lo_inf, 2, hi, 2, NF, test_likelihood,
                fwork, fwork_len, &rep);
        FIT_BOX(LWF_NON_FINITE, fmem, fmem_len, &cfg, lo, 2, hi_inf, 2, NF, test_likelihood,
                fwork, fwork_len, &rep);
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &cfg, lo_tight, 2, hi_tight, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        bad_cfg = cfg, bad_cfg.bounded = 0; /* checked the same way when not fitting on it */
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &bad_cfg, lo_huge, 2, hi_huge, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        TRUE(lik.calls == 0);
        FIT_BOX(LWF_LENGTH_MISMATCH, fmem, fmem_len, &cfg, lo, 3, hi, 2, NF, test_likelihood,
                fwork, fwork_len, &rep);
        FIT_BOX(LWF_NON_FINITE, fmem, fmem_len, &cfg, lo_nan, 2, hi, 2, NF, test_likelihood,
                fwork, fwork_len, &rep);
        FIT_BOX(LWF_INVALID_ARGUMENT, fmem, fmem_len, &cfg, lo, 2, hi_low, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        FIT_BOX(LWF_NULL_POINTER, fmem, fmem_len, &cfg, NULL, 2, hi, 2, NF, test_likelihood,
                fwork, fwork_len, &rep);
        FIT_BOX(LWF_EMPTY_BATCH, fmem, fmem_len, &cfg, lo, 2, hi, 2, 0, test_likelihood, fwork,
                fwork_len, &rep);
        /* memory: too small, misaligned, NULL, overlapping */
        FIT_BOX(LWF_BUFFER_TOO_SMALL, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood,
                fwork, fwork_len - 1, &rep);
        FIT_BOX(LWF_BUFFER_TOO_SMALL, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF + 1,
                test_likelihood, fwork, fwork_len, &rep); /* sized for fewer samples */
        FIT_BOX(LWF_BUFFER_TOO_SMALL, fmem, mem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood,
                fwork, fwork_len, &rep); /* sized for K = 2, the config allows 3 */
        FIT_BOX(LWF_BUFFER_TOO_SMALL, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood,
                NULL, 0, &rep);
        FIT_BOX(LWF_MISALIGNED, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood,
                (char *)fwork + 4, fwork_len, &rep);
        FIT_BOX(LWF_MISALIGNED, (char *)fmem + 4, fmem_len, &cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, &rep);
        FIT_BOX(LWF_MISALIGNED, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood, fwork,
                fwork_len, (LwfFitReport *)((char *)&rep_pattern + 2));
        FIT_BOX(LWF_NULL_POINTER, NULL, fmem_len, &cfg, lo, 2, hi, 2, NF, test_likelihood, fwork,
                fwork_len, &rep);
        FIT_BOX(LWF_OVERLAPPING_BUFFERS, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF,
                test_likelihood, (char *)fmem + 64, fwork_len, &rep);
        FIT_BOX(LWF_OVERLAPPING_BUFFERS, fmem, fmem_len, &cfg, (const double *)fwork, 2, hi, 2,
                NF, test_likelihood, fwork, fwork_len, &rep);
        FIT_BOX(LWF_OVERLAPPING_BUFFERS, fmem, fmem_len, &cfg, lo, 2, hi, 2, NF,
                test_likelihood, fwork, fwork_len, (LwfFitReport *)fwork);
        BAD(LWF_NULL_POINTER,
            lwf_model_fit_prior_box(fmem, fmem_len, &fshape, &cfg, lo, 2, hi, 2, NF,
                                    test_likelihood, &lik, NULL, NULL, fwork, fwork_len, &rep,
                                    NULL));
        TRUE(memcmp(fmem, fmem_copy, fmem_len) == 0);
        TRUE(memcmp(&rep, &rep_pattern, sizeof rep) == 0);
        TRUE(fout == fsentinel);
        OK(lwf_model_log_prob(fmodel, theta, N * 2, fq2, N)); /* the old model still works */
        TRUE(same_doubles(fq, fq2, N));

        /* NaN / +inf under the skip policy: those samples get weight 0 and are counted. */
        bad_cfg = cfg, bad_cfg.non_finite = LWF_NON_FINITE_SKIP;
        lik.mode = LIK_NAN, lik.calls = 0;
        OK(lwf_model_fit_prior_box(fmem, fmem_len, &fshape, &bad_cfg, lo, 2, hi, 2, NF,
                                   test_likelihood, &lik, NULL, NULL, fwork, fwork_len, &rep,
                                   &fmodel));
        TRUE(rep.skipped_samples == 1);
        lik.mode = LIK_GOOD;

        /* Cancelling from the progress callback: LWF_CANCELLED, and the model (best so far),
         * handle and report are written. */
        prog.seen = 0, prog.last_epoch = 0, prog.cancel_at = 1;
        bad_cfg = cfg, bad_cfg.max_epochs = 5;
        fout = fsentinel;
        memcpy(&rep, &rep_pattern, sizeof rep);
        BAD(LWF_CANCELLED,
            lwf_model_fit_prior_box(fmem, fmem_len, &fshape, &bad_cfg, lo, 2, hi, 2, NF,
                                    test_likelihood, &lik, test_progress, &prog, fwork,
                                    fwork_len, &rep, &fout));
        TRUE(fout == (LwfModel *)fmem && prog.seen == 1);
        TRUE(rep.stop_reason == LWF_STOP_CANCELLED && rep.epochs == 1 && rep.best_epoch <= 1);
        OK(lwf_model_log_prob(fout, theta, N * 2, fq2, N));
        for (int i = 0; i < N; i++) TRUE(isfinite(fq2[i]));
        prog.cancel_at = 0;

        /* Other base choices. */
        bad_cfg = cfg, bad_cfg.base = LWF_FIT_BASE_GAUSSIAN, bad_cfg.components = 0;
        OK(lwf_model_fit_prior_box(fmem, fmem_len, &fshape, &bad_cfg, lo, 2, hi, 2, NF,
                                   test_likelihood, &lik, NULL, NULL, fwork, fwork_len, &rep,
                                   &fmodel));
        OK(lwf_model_shape(fmodel, &fitted));
        TRUE(fitted.base == LWF_BASE_GAUSSIAN && rep.components == 1 && isnan(rep.em_bic));
        bad_cfg = cfg, bad_cfg.base = LWF_FIT_BASE_PAPER_MIXTURE, bad_cfg.components = 2;
        OK(lwf_model_fit_prior_box(fmem, fmem_len, &fshape, &bad_cfg, lo, 2, hi, 2, NF,
                                   test_likelihood, &lik, NULL, NULL, fwork, fwork_len, &rep,
                                   &fmodel));
        OK(lwf_model_shape(fmodel, &fitted));
        TRUE(fitted.components == 2 && rep.em_iterations == 0);

        /* ---- the samples + log-weights entry point ---- */
        enum { NS = 400 };
        static double st[NS * 2], slw[NS];
        uint64_t s = 99;
        for (size_t i = 0; i < NS * 2; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            st[i] = -6.0 + 12.0 * (double)(s >> 11) / 9007199254740992.0;
        }
        lik.mode = LIK_GOOD;
        test_likelihood(st, NS, 2, slw, &lik);
        /* it needs NS * (dim + 1) doubles less work than the prior-box fit of its config;
         * knowing no box, it fits unbounded: that of the config with bounded = 0 */
        size_t swork_len = 0, bwork_len = 0;
        bad_cfg = cfg, bad_cfg.bounded = 0;
        OK(lwf_fit_work_size(&fshape, &bad_cfg, NS, &swork_len));
        swork_len -= NS * 3 * sizeof(double);
        OK(lwf_fit_work_size(&fshape, &cfg, NS, &bwork_len));
        bwork_len -= NS * 3 * sizeof(double); /* on a box, with the default bounded = 1 */
        OK(lwf_model_fit_samples(fmem, fmem_len, &fshape, &cfg, st, NS * 2, slw, NS,
                                 test_progress, &prog, fwork, swork_len, &rep, &fmodel));
        TRUE(rep.n_samples == NS && rep.components >= 1 && rep.epochs == 2);
        OK(lwf_model_log_prob(fmodel, theta, N * 2, fq, N));
        memcpy(fmem_copy, fmem, fmem_len);
        memcpy(&rep, &rep_pattern, sizeof rep);
        fout = fsentinel;
#define FIT_SAMPLES(want, theta_, theta_len_, lw_, n_, cfg_, work_len_) \
    BAD(want, lwf_model_fit_samples(fmem, fmem_len, &fshape, cfg_, theta_, theta_len_, lw_, n_, \
                                    test_progress, &prog, fwork, work_len_, &rep, &fout))
        FIT_SAMPLES(LWF_BUFFER_TOO_SMALL, st, NS * 2, slw, NS, &cfg, swork_len - 1);
        FIT_SAMPLES(LWF_LENGTH_MISMATCH, st, NS * 2 - 1, slw, NS, &cfg, swork_len);
        FIT_SAMPLES(LWF_NULL_POINTER, NULL, NS * 2, slw, NS, &cfg, swork_len);
        FIT_SAMPLES(LWF_EMPTY_BATCH, st, 0, slw, 0, &cfg, swork_len);
        const double keep_theta = st[7], keep_lw = slw[5];
        st[7] = INFINITY;
        FIT_SAMPLES(LWF_NON_FINITE, st, NS * 2, slw, NS, &cfg, swork_len);
        st[7] = keep_theta;
        slw[5] = NAN;
        FIT_SAMPLES(LWF_NON_FINITE, st, NS * 2, slw, NS, &cfg, swork_len);
        slw[5] = keep_lw;
        bad_cfg = cfg, bad_cfg.min_ess = NS + 1.0;
        FIT_SAMPLES(LWF_DEGENERATE_WEIGHTS, st, NS * 2, slw, NS, &bad_cfg, swork_len);
        FIT_SAMPLES(LWF_OVERLAPPING_BUFFERS, st, NS * 2, (const double *)fmem, NS, &cfg,
                    swork_len);
        FIT_SAMPLES(LWF_MISALIGNED, MISALIGNED_DOUBLES, NS * 2, slw, NS, &cfg, swork_len);
        TRUE(memcmp(fmem, fmem_copy, fmem_len) == 0);
        TRUE(memcmp(&rep, &rep_pattern, sizeof rep) == 0);
        TRUE(fout == fsentinel);
        slw[5] = NAN;
        bad_cfg = cfg, bad_cfg.non_finite = LWF_NON_FINITE_SKIP;
        OK(lwf_model_fit_samples(fmem, fmem_len, &fshape, &bad_cfg, st, NS * 2, slw, NS, NULL,
                                 NULL, fwork, swork_len, &rep, &fmodel));
        TRUE(rep.skipped_samples == 1);
        slw[5] = keep_lw;
        OK(lwf_model_shape(fmodel, &fitted));
        TRUE(fitted.bounded == 0); /* lwf_model_fit_samples knows no box */
        {
            /* Its resumable form without a box: the same model (checkpoints not asked for). */
            double sq[N], sq2[N];
            LwfModel *again = NULL;
            OK(lwf_model_fit_samples(fmem, fmem_len, &fshape, &bad_cfg, st, NS * 2, slw, NS,
                                     NULL, NULL, fwork, swork_len, NULL, &fmodel));
            OK(lwf_model_log_prob(fmodel, theta, N * 2, sq, N));
            OK(lwf_model_fit_samples_resumable(fmem, fmem_len, &fshape, &bad_cfg, NULL, 0, NULL,
                                               0, st, NS * 2, slw, NS, NULL, NULL, NULL, NULL,
                                               NULL, 0, fwork, swork_len, NULL, &again));
            OK(lwf_model_log_prob(again, theta, N * 2, sq2, N));
            TRUE(same_doubles(sq, sq2, N));
        }

        /* ---- samples on a box: the model lives on it, unless bounded = 0 ---- */
        {
            const double slo[2] = {-6.5, -6.5}, shi[2] = {6.5, 6.5};
            const double small_lo[2] = {-5.0, -5.0}, small_hi[2] = {5.0, 5.0};
            const double probe[4] = {-7.0, 0.0, 0.0, 6.5};
            double probe_q[2];
            OK(lwf_model_fit_samples_in_box(fmem, fmem_len, &fshape, &cfg, slo, 2, shi, 2, st,
                                            NS * 2, slw, NS, NULL, NULL, fwork, bwork_len, &rep,
                                            &fmodel));
            OK(lwf_model_shape(fmodel, &fitted));
            TRUE(fitted.bounded == 1 && rep.n_samples == NS);
            OK(lwf_model_log_prob(fmodel, probe, 4, probe_q, 2));
            TRUE(probe_q[0] == -INFINITY && probe_q[1] == -INFINITY);
            bad_cfg = cfg, bad_cfg.bounded = 0;
            OK(lwf_model_fit_samples_in_box(fmem, fmem_len, &fshape, &bad_cfg, slo, 2, shi, 2,
                                            st, NS * 2, slw, NS, NULL, NULL, fwork, swork_len,
                                            &rep, &fmodel));
            OK(lwf_model_shape(fmodel, &fitted));
            TRUE(fitted.bounded == 0);
            OK(lwf_model_log_prob(fmodel, probe, 4, probe_q, 2));
            TRUE(isfinite(probe_q[0]) && isfinite(probe_q[1]));
            memcpy(fmem_copy, fmem, fmem_len);
            memcpy(&rep, &rep_pattern, sizeof rep);
            fout = fsentinel;
#define FIT_SAMPLES_BOX(want, lo_, lo_len_, hi_, hi_len_)                                    \
    BAD(want, lwf_model_fit_samples_in_box(fmem, fmem_len, &fshape, &cfg, lo_, lo_len_, hi_,   \
                                           hi_len_, st, NS * 2, slw, NS, NULL, NULL, fwork,   \
                                           bwork_len, &rep, &fout))
            FIT_SAMPLES_BOX(LWF_NULL_POINTER, NULL, 2, shi, 2);
            FIT_SAMPLES_BOX(LWF_LENGTH_MISMATCH, slo, 1, shi, 2);
            FIT_SAMPLES_BOX(LWF_LENGTH_MISMATCH, NULL, 0, NULL, 0);
            FIT_SAMPLES_BOX(LWF_NON_FINITE, lo_nan, 2, shi, 2);
            FIT_SAMPLES_BOX(LWF_NON_FINITE, lo_inf, 2, shi, 2);
            FIT_SAMPLES_BOX(LWF_INVALID_ARGUMENT, shi, 2, slo, 2);
            FIT_SAMPLES_BOX(LWF_INVALID_ARGUMENT, lo_huge, 2, hi_huge, 2);
            FIT_SAMPLES_BOX(LWF_INVALID_ARGUMENT, lo_tight, 2, hi_tight, 2);
            /* samples of non-zero weight outside the box */
            FIT_SAMPLES_BOX(LWF_INVALID_ARGUMENT, small_lo, 2, small_hi, 2);
            FIT_SAMPLES_BOX(LWF_OVERLAPPING_BUFFERS, (const double *)fwork, 2, shi, 2);
            FIT_SAMPLES_BOX(LWF_MISALIGNED, MISALIGNED_DOUBLES, 2, shi, 2);
            BAD(LWF_BUFFER_TOO_SMALL,
                lwf_model_fit_samples_in_box(fmem, fmem_len, &fshape, &cfg, slo, 2, shi, 2, st,
                                             NS * 2, slw, NS, NULL, NULL, fwork, bwork_len - 1,
                                             &rep, &fout));
            TRUE(memcmp(fmem, fmem_copy, fmem_len) == 0);
            TRUE(memcmp(&rep, &rep_pattern, sizeof rep) == 0);
            TRUE(fout == fsentinel);
#undef FIT_SAMPLES_BOX
        }

        /* ---- the size queries and the config default ---- */
        size_t size_sentinel = 777;
        BAD(LWF_NULL_POINTER, lwf_fit_config_default(NULL));
        BAD(LWF_NULL_POINTER, lwf_fit_model_size(NULL, &cfg, &size_sentinel));
        BAD(LWF_NULL_POINTER, lwf_fit_model_size(&fshape, &cfg, NULL));
        bad_cfg = cfg, bad_cfg.em_max_iter = 0;
        BAD(LWF_INVALID_ARGUMENT, lwf_fit_model_size(&fshape, &bad_cfg, &size_sentinel));
        BAD(LWF_EMPTY_BATCH, lwf_fit_work_size(&fshape, &cfg, 0, &size_sentinel));
        BAD(LWF_INVALID_ARGUMENT, lwf_fit_work_size(&fshape, &bad_cfg, NF, &size_sentinel));
        bad = fshape, bad.dim = 1;
        BAD(LWF_INVALID_SHAPE, lwf_fit_work_size(&bad, &cfg, NF, &size_sentinel));
#if SIZE_MAX > UINT32_MAX
        /* the trainer indexes samples with 32 bits */
        BAD(LWF_INVALID_ARGUMENT,
            lwf_fit_work_size(&fshape, &cfg, (size_t)UINT32_MAX + 1, &size_sentinel));
#endif
        TRUE(size_sentinel == 777);
#undef FIT_BOX
#undef FIT_CB
#undef FIT_SAMPLES
        free(fmem);
        free(fwork);
        free(fmem_copy);
    }

    /* ---- the refinement: ask / tell, the callback form, the model, bad inputs ---- */
    {
        LwfShape rs;
        LwfRefineConfig rc, rbad;
        size_t rwork_len = 0, rcap = 0, rn = 0, rmlen = 0, rsentinel = 4242;
        int32_t rstatus = -1;
        OK(lwf_shape_default(2, 8, 2, &rs));
        OK(lwf_refine_config_default(2, &rc));
        TRUE(rc.struct_size == sizeof rc && rc.bounded == 1 && rc.affine == 1);
        TRUE(rc.max_components == 8 && rc.max_calls == 10000 && rc.initial_samples == 500);
        TRUE(rc.non_finite == LWF_NON_FINITE_ERROR && rc.warm_start == 1);
        TRUE(rc.max_kl == 0.005);
        OK(lwf_refine_config_default(4, &rbad));
        TRUE(rbad.max_kl == 0.02);
        rc.initial_samples = 200;
        rc.samples_per_round = 200;
        rc.check_samples = 100;
        rc.max_calls = 600;
        rc.max_epochs = 2;
        rc.max_components = 2;
        OK(lwf_refine_work_size(&rs, &rc, &rwork_len));
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_config_default(1, &rbad));
        BAD(LWF_NULL_POINTER, lwf_refine_config_default(2, NULL));
        rbad = rc, rbad.struct_size = 8;
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_work_size(&rs, &rbad, &rsentinel));
        rbad = rc, rbad.ess_fraction = NAN;
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_work_size(&rs, &rbad, &rsentinel));
        rbad = rc, rbad.max_kl = NAN;
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_work_size(&rs, &rbad, &rsentinel));
        rbad = rc, rbad.max_kl = -1.0;
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_work_size(&rs, &rbad, &rsentinel));
        {
            /* A config from the first header (fields up to seed, no max_kl) in memory of
             * exactly that size: read with the default for max_kl, nothing beyond (valgrind). */
            const size_t v1 = offsetof(LwfRefineConfig, max_kl);
            size_t v1_len = 0;
            unsigned char *old = malloc(v1);
            if (!old) return 1;
            memcpy(old, &rc, v1);
            memcpy(old, &v1, sizeof v1); /* struct_size, the first field */
            OK(lwf_refine_work_size(&rs, (const LwfRefineConfig *)(void *)old, &v1_len));
            TRUE(v1_len == rwork_len);
            free(old);
        }
        rbad = rc, rbad.warm_start = 2;
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_work_size(&rs, &rbad, &rsentinel));
        rbad = rc, rbad.max_calls = 100; /* below initial_samples */
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_work_size(&rs, &rbad, &rsentinel));
        BAD(LWF_NULL_POINTER, lwf_refine_work_size(NULL, &rc, &rsentinel));
        BAD(LWF_NULL_POINTER, lwf_refine_work_size(&rs, &rc, NULL));
        TRUE(rsentinel == 4242);

        void *rwork = malloc(rwork_len);
        double *rtheta = NULL, *rll = NULL;
        if (!rwork) return 1;
        const double rlo[2] = {-6.0, -6.0}, rhi[2] = {6.0, 6.0}, rnan[2] = {NAN, 0.0};
        LwfRefine *rf = NULL, *rsent = (LwfRefine *)&rsentinel, *rout = rsent;
        BAD(LWF_BUFFER_TOO_SMALL,
            lwf_refine_init(rwork, rwork_len - 1, &rs, rlo, rhi, 2, &rc, &rout));
        BAD(LWF_MISALIGNED,
            lwf_refine_init((char *)rwork + 4, rwork_len - 8, &rs, rlo, rhi, 2, &rc, &rout));
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_init(rwork, rwork_len, &rs, rhi, rlo, 2, &rc, &rout));
        BAD(LWF_NON_FINITE, lwf_refine_init(rwork, rwork_len, &rs, rnan, rhi, 2, &rc, &rout));
        BAD(LWF_LENGTH_MISMATCH, lwf_refine_init(rwork, rwork_len, &rs, rlo, rhi, 3, &rc, &rout));
        BAD(LWF_NULL_POINTER, lwf_refine_init(rwork, rwork_len, &rs, NULL, rhi, 2, &rc, &rout));
        BAD(LWF_NULL_POINTER, lwf_refine_init(NULL, rwork_len, &rs, rlo, rhi, 2, &rc, &rout));
        BAD(LWF_OVERLAPPING_BUFFERS,
            lwf_refine_init(rwork, rwork_len, &rs, rlo, rhi, 2, &rc, (LwfRefine **)rwork));
        TRUE(rout == rsent);
        memset(rwork, 0, rwork_len); /* zeroed memory is not a refinement */
        BAD(LWF_INVALID_MODEL, lwf_refine_status((const LwfRefine *)rwork, &rstatus));
        BAD(LWF_INVALID_MODEL, lwf_refine_batch_capacity((const LwfRefine *)rwork, &rcap));
        BAD(LWF_NULL_POINTER, lwf_refine_status(NULL, &rstatus));
        OK(lwf_refine_init(rwork, rwork_len, &rs, rlo, rhi, 2, &rc, &rf));
        TRUE((void *)rf == rwork);
        OK(lwf_refine_status(rf, &rstatus));
        TRUE(rstatus == LWF_REFINE_RUNNING);
        OK(lwf_refine_batch_capacity(rf, &rcap));
        TRUE(rcap == 200);
        rtheta = malloc(rcap * 2 * sizeof(double));
        rll = malloc(rcap * sizeof(double));
        if (!rtheta || !rll) return 1;
        LwfRefineRound rround;
        LwfRefineReport rrep;
        Likelihood rlik = {LIK_GOOD, 0, 0, 0};
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_tell(rf, rll, 0, &rround)); /* tell before ask */
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_report(rf, &rrep));         /* still running */
        BAD(LWF_BUFFER_TOO_SMALL, lwf_refine_ask(rf, rtheta, rcap - 1, &rn));
        BAD(LWF_NULL_POINTER, lwf_refine_ask(rf, rtheta, rcap, NULL));
        BAD(LWF_OVERLAPPING_BUFFERS, lwf_refine_ask(rf, (double *)rwork + 32, rcap, &rn));
        OK(lwf_refine_ask(rf, rtheta, rcap, &rn));
        TRUE(rn > 0 && rn <= rcap);
        TRUE(test_likelihood(rtheta, rn, 2, rll, &rlik) == 0);
        BAD(LWF_LENGTH_MISMATCH, lwf_refine_tell(rf, rll, rn - 1, &rround));
        BAD(LWF_NULL_POINTER, lwf_refine_tell(rf, NULL, rn, &rround));
        const double rll0 = rll[0];
        rll[0] = NAN;
        BAD(LWF_NON_FINITE, lwf_refine_tell(rf, rll, rn, &rround));
        rll[0] = rll0;
        OK(lwf_refine_tell(rf, rll, rn, &rround));
        TRUE(rround.round == 0 && rround.calls == rn && rround.beta == 0.0);
        /* the rest through the callback; the progress callback sees every round in order */
        RefineProgress rp = {0, 1, 1};
        rlik.max_batch = 0;
        BAD(LWF_NULL_POINTER, lwf_refine_run(rf, NULL, 100, NULL, NULL, NULL));
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_run(rf, test_likelihood, 0, &rlik, NULL, NULL));
        OK(lwf_refine_run(rf, test_likelihood, 64, &rlik, refine_progress, &rp));
        TRUE(rp.seen >= 1 && rp.in_order && rlik.max_batch <= 64);
        OK(lwf_refine_status(rf, &rstatus));
        TRUE(rstatus == LWF_REFINE_CONVERGED || rstatus == LWF_REFINE_BUDGET_EXHAUSTED ||
             rstatus == LWF_REFINE_MAX_ROUNDS);
        OK(lwf_refine_report(rf, &rrep));
        TRUE(rrep.calls <= 600 && rrep.rounds == rp.seen + 1 && isfinite(rrep.log_z));
        TRUE(rrep.status == rstatus && (rrep.has_k_hat == 0 || rrep.has_k_hat == 1));
        BAD(LWF_INVALID_ARGUMENT, lwf_refine_ask(rf, rtheta, rcap, &rn)); /* finished */
        OK(lwf_refine_run(rf, test_likelihood, 64, &rlik, NULL, NULL));   /* nothing to do */
        OK(lwf_refine_model_size(rf, &rmlen));
        void *rmem = malloc(rmlen);
        if (!rmem) return 1;
        LwfModel *rm = NULL, *rmsent = (LwfModel *)&rsentinel, *rmout = rmsent;
        BAD(LWF_BUFFER_TOO_SMALL, lwf_refine_write_model(rf, rmem, rmlen - 1, &rmout));
        BAD(LWF_OVERLAPPING_BUFFERS, lwf_refine_write_model(rf, rwork, rmlen, &rmout));
        BAD(LWF_NULL_POINTER, lwf_refine_write_model(rf, rmem, rmlen, NULL));
        TRUE(rmout == rmsent);
        OK(lwf_refine_write_model(rf, rmem, rmlen, &rm));
        LwfShape rms;
        OK(lwf_model_shape(rm, &rms));
        TRUE(rms.bounded == 1 && rms.affine == 1 && rms.dim == 2 && rms.hidden == 8);
        const double rpts[4] = {0.0, 0.0, 7.0, 0.0};
        double rlq[2];
        OK(lwf_model_log_prob(rm, rpts, 4, rlq, 2));
        TRUE(isfinite(rlq[0]) && rlq[1] == -INFINITY);
        {
            /* A checkpoint of the finished refinement, restored into other memory: the same
             * report; a truncated one or the wrong dimension is refused. */
            size_t ck_len = 0, written = 0;
            OK(lwf_refine_checkpoint_size(rf, &ck_len));
            TRUE(ck_len == rwork_len + 20);
            unsigned char *ck = malloc(ck_len);
            void *rwork2 = malloc(rwork_len);
            if (!ck || !rwork2) return 1;
            BAD(LWF_BUFFER_TOO_SMALL, lwf_refine_checkpoint(rf, ck, ck_len - 1, &written));
            OK(lwf_refine_checkpoint(rf, ck, ck_len, &written));
            TRUE(written == ck_len);
            LwfRefine *rback = NULL, *rnone = NULL;
            LwfRefineReport rrep2;
            BAD(LWF_BAD_FORMAT, lwf_refine_restore(rwork2, rwork_len, ck, ck_len - 1, 2, &rnone));
            BAD(LWF_BUFFER_TOO_SMALL,
                lwf_refine_restore(rwork2, rwork_len - 1, ck, ck_len, 2, &rnone));
            TRUE(rnone == NULL);
            OK(lwf_refine_restore(rwork2, rwork_len, ck, ck_len, 2, &rback));
            OK(lwf_refine_report(rback, &rrep2));
            TRUE(memcmp(&rrep, &rrep2, sizeof rrep) == 0);
            free(ck);
            free(rwork2);
        }
        /* an overwritten header, then a flipped byte of the state: not a refinement */
        ((unsigned char *)rwork)[8] ^= 1;
        BAD(LWF_INVALID_MODEL, lwf_refine_report(rf, &rrep));
        ((unsigned char *)rwork)[8] ^= 1;
        ((unsigned char *)rwork)[200] ^= 1;
        BAD(LWF_INVALID_MODEL, lwf_refine_model_size(rf, &rmlen));
        ((unsigned char *)rwork)[200] ^= 1;
        OK(lwf_refine_report(rf, &rrep));
        free(rmem);
        free(rwork);
        free(rtheta);
        free(rll);
    }

    /* ---- importance diagnostics of any q: equal weights, a heavy tail, bad inputs ---- */
    {
        enum { NW = 1000 };
        static double lw[NW], scr[NW];
        LwfImportanceSummary is, is_sentinel;
        memset(&is_sentinel, 0x5a, sizeof is_sentinel);
        for (size_t i = 0; i < NW; i++) lw[i] = -3.0;
        OK(lwf_importance_summary(lw, NW, scr, NW, &is));
        /* q equal to the posterior: Z-hat exact, ESS = n, KL 0, no tail to fit */
        TRUE(is.n == NW && is.log_z == -3.0 && is.log_z_se == 0.0 && is.ess == (double)NW);
        TRUE(is.kl == 0.0 && is.has_k_hat == 0 && is.k_hat == 0.0);
        /* weights (1 - u)^(-0.9) on a grid of u: a generalized Pareto tail of shape 0.9, which
           PSIS shrinks towards 0.5 (k-hat = (M k + 5) / (M + 10), M = 95): above 0.7 */
        for (size_t i = 0; i < NW; i++) lw[i] = -0.9 * log(1.0 - (i + 0.5) / NW) - 50.0;
        OK(lwf_importance_summary(lw, NW, scr, NW, &is));
        TRUE(is.has_k_hat == 1 && is.k_hat > 0.7 && is.k_hat < 1.0 && is.ess < 0.9 * NW);
        TRUE(isfinite(is.log_z) && isfinite(is.log_z_se) && is.kl > 0.0);
        /* zero weights are valid, NaN and +inf are not; nothing is written on an error */
        lw[0] = -INFINITY;
        OK(lwf_importance_summary(lw, NW, scr, NW, &is));
        LwfImportanceSummary is_out = is_sentinel;
        lw[1] = NAN;
        BAD(LWF_NON_FINITE, lwf_importance_summary(lw, NW, scr, NW, &is_out));
        lw[1] = INFINITY;
        BAD(LWF_NON_FINITE, lwf_importance_summary(lw, NW, scr, NW, &is_out));
        TRUE(memcmp(&is_out, &is_sentinel, sizeof is_out) == 0);
        for (size_t i = 0; i < NW; i++) lw[i] = -INFINITY;
        BAD(LWF_DEGENERATE_WEIGHTS, lwf_importance_summary(lw, NW, scr, NW, &is_out));
        lw[0] = 0.0;
        BAD(LWF_EMPTY_BATCH, lwf_importance_summary(lw, 0, scr, NW, &is_out));
        BAD(LWF_BUFFER_TOO_SMALL, lwf_importance_summary(lw, NW, scr, NW - 1, &is_out));
        BAD(LWF_NULL_POINTER, lwf_importance_summary(NULL, NW, scr, NW, &is_out));
        BAD(LWF_NULL_POINTER, lwf_importance_summary(lw, NW, NULL, NW, &is_out));
        BAD(LWF_NULL_POINTER, lwf_importance_summary(lw, NW, scr, NW, NULL));
        BAD(LWF_MISALIGNED, lwf_importance_summary(MISALIGNED_DOUBLES, 4, scr, NW, &is_out));
        BAD(LWF_OVERLAPPING_BUFFERS, lwf_importance_summary(lw, NW, lw, NW, &is_out));
        TRUE(memcmp(&is_out, &is_sentinel, sizeof is_out) == 0);
    }

    printf("checks: %d, bad-input calls: %d, failures: %d\n", checks, bad_calls, failures);
    free(mem);
    free(mem_b);
    free(params);
    free(params_b);
    free(grad);
    free(grad_acc);
    free(ws);
    free(bytes);
    return failures == 0 ? 0 : 1;
}
