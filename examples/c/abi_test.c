/* The C ABI test: every exported function used as documented, then the bad-input matrix (each
 * bad call must return its documented status and leave its outputs untouched). Run by
 * ffi/tests/c_program.rs, under valgrind when it is installed.
 *
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/c/abi_test.c \
 *      target/debug/liblwflow.a -lm -lpthread -ldl -o abi_test && ./abi_test */
#include "lwflow.h"

#include <math.h>
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
    bytes[4] = 99; /* format version */
    BAD(LWF_BAD_FORMAT, lwf_model_inspect(bytes, written, &got));
    bytes[4] = 1;
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
