/* Regression tests from C for the silent failures of issue 15 that fuzzing found. The rules
 * they check: LWF_OK never comes with a non-finite output (except the documented -inf log
 * density outside a bounded model's box); a value one entry point accepts, every entry point
 * accepts; misuse of a model from two threads is reported, never silently wrong.
 *
 *   d1  a clamp that is -0.0 or a subnormal float: refused at every door (shape, model bytes)
 *       alike, and whatever a door accepts is usable by every later call
 *   d2  mixture weights spanning more than the double range (1e308, 1e-308): finite
 *       parameters, the intended density
 *   o1  finite but extreme parameters (1e300): no evaluation returns LWF_OK with NaN or inf
 *   o2  lwf_model_loss_grad_accumulate with a NaN / inf incoming loss or gradient, or a sum
 *       that overflows: LWF_NON_FINITE, nothing changed
 *   o3  one handle shared by threads calling lwf_model_log_prob: never LWF_OK with a wrong
 *       value, LWF_BUSY seen, a byte copy taken mid-call usable; the _ws forms stay concurrent
 *
 * Run by ffi/tests/defects_program.rs (natively, one section per test, and all sections with
 * "quick" under valgrind):
 *
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror -pthread -Iinclude examples/c/defects_test.c \
 *      target/debug/liblwflow.a -lm -lpthread -ldl -o defects_test && ./defects_test all
 *
 * Against a library without LWF_BUSY (to see these tests fail there), add -DLWF_BUSY=17. */
#define _POSIX_C_SOURCE 200809L
#include "lwflow.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;
static int quick = 0; /* smaller counts (valgrind) */

static void expect_true(int cond, const char *what, int line) {
    checks++;
    if (!cond) {
        failures++;
        printf("FAIL line %d: %s\n", line, what);
    }
}
static void expect_status(LwfStatus got, LwfStatus want, const char *what, int line) {
    checks++;
    if (got != want) {
        failures++;
        printf("FAIL line %d: %s returned %d (%s), expected %d (%s)\n", line, what, (int)got,
               lwf_status_message((int)got), (int)want, lwf_status_message((int)want));
    }
}
#define TRUE(cond) expect_true((cond), #cond, __LINE__)
#define STATUS(want, call) expect_status((call), (want), #call, __LINE__)
#define OK(call) STATUS(LWF_OK, call)

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1); /* malloc memory is aligned for double: 8 bytes */
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

static int all_finite(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}
static int all_nan(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i])) return 0;
    return 1;
}
static int same_doubles(const double *a, const double *b, size_t n) {
    return memcmp(a, b, n * sizeof(double)) == 0;
}

/* A model in malloc'd memory. */
typedef struct {
    void *mem;
    size_t mem_len;
    LwfModel *h;
    LwfShape shape;
    size_t params, ws;
} Model;

static Model make_model(LwfShape shape, uint64_t seed) {
    Model m;
    memset(&m, 0, sizeof m);
    m.shape = shape;
    OK(lwf_shape_model_size(&shape, &m.mem_len));
    OK(lwf_shape_param_count(&shape, &m.params));
    OK(lwf_shape_workspace_count(&shape, &m.ws));
    m.mem = xmalloc(m.mem_len);
    OK(lwf_model_init(m.mem, m.mem_len, &shape, seed, &m.h));
    return m;
}
static void free_model(Model *m) {
    free(m->mem);
    m->mem = NULL;
    m->h = NULL;
}

/* Deterministic points: a small LCG, values in (-range, range). */
static void fill_points(double *x, size_t count, uint64_t seed, double range) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < count; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = range * (2.0 * (double)(s >> 11) / 9007199254740992.0 - 1.0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* D1: the clamp rule at every door.                                                          */

static uint32_t crc32_ieee(const uint8_t *b, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}
static void put_u32_le(uint8_t *at, uint32_t u) {
    at[0] = (uint8_t)u, at[1] = (uint8_t)(u >> 8), at[2] = (uint8_t)(u >> 16);
    at[3] = (uint8_t)(u >> 24);
}
/* Model bytes with another clamp (bytes 32..36, an f32) and a valid CRC-32. */
static void patch_clamp(uint8_t *bytes, size_t len, float clamp) {
    uint32_t bits;
    memcpy(&bits, &clamp, sizeof bits);
    put_u32_le(bytes + 32, bits);
    put_u32_le(bytes + len - 4, crc32_ieee(bytes, len - 4));
}

static void d1_clamp_rule_at_every_door(void) {
    printf("d1: clamp -0.0 / subnormal refused at every door; accepted values usable\n");
    LwfShape shape;
    OK(lwf_shape_default(2, 8, 2, &shape));
    Model m = make_model(shape, 1);
    size_t len = 0, written = 0;
    OK(lwf_shape_serialized_size(&shape, &len));
    uint8_t *saved = xmalloc(len), *bytes = xmalloc(len), *again = xmalloc(len);
    OK(lwf_model_save(m.h, saved, len, &written));
    TRUE(written == len);
    void *mem = xmalloc(m.mem_len);
    double theta[6] = {0.1, -0.2, 0.7, 0.3, -1.5, 2.0}, log_q[3];

    const struct {
        float clamp;
        int valid;
        const char *what;
    } cases[] = {
        {1e-42f, 0, "1e-42 (subnormal)"},
        {-0.0f, 0, "-0.0"},
        {FLT_TRUE_MIN, 0, "FLT_TRUE_MIN (subnormal)"},
        {FLT_MIN / 2.0f, 0, "FLT_MIN / 2 (subnormal)"},
        {-1.0f, 0, "-1"},
        {0.0f, 1, "+0.0 (off)"},
        {FLT_MIN, 1, "FLT_MIN (smallest normal)"},
        {3.0f, 1, "3"},
        {FLT_MAX, 1, "FLT_MAX"},
    };
    TRUE(fpclassify(1e-42f) == FP_SUBNORMAL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const float clamp = cases[c].clamp;
        printf("  clamp %s\n", cases[c].what);
        /* Door 1: the shape. */
        LwfShape s = shape;
        s.clamp = (double)clamp;
        const LwfStatus st_shape = lwf_shape_validate(&s);
        STATUS(cases[c].valid ? LWF_OK : LWF_INVALID_SHAPE, st_shape);
        /* Door 2: model bytes (what a file with this clamp says). */
        memcpy(bytes, saved, len);
        patch_clamp(bytes, len, clamp);
        LwfShape got;
        const LwfStatus st_inspect = lwf_model_inspect(bytes, len, &got);
        STATUS(cases[c].valid ? LWF_OK : LWF_BAD_FORMAT, st_inspect);
        /* One rule: the two doors agree ... */
        TRUE((st_shape == LWF_OK) == (st_inspect == LWF_OK));
        /* ... and whatever a door accepts, every later call accepts. */
        LwfModel *h = NULL;
        const LwfStatus st_load = lwf_model_load(mem, m.mem_len, bytes, len, &h);
        TRUE(st_load == st_inspect);
        if (st_load == LWF_OK) {
            OK(lwf_model_log_prob(h, theta, 6, log_q, 3));
            TRUE(all_finite(log_q, 3));
            LwfShape back;
            OK(lwf_model_shape(h, &back));
            TRUE(memcmp(&back.clamp, &s.clamp, sizeof back.clamp) == 0);
            OK(lwf_model_save(h, again, len, &written));
            TRUE(written == len && memcmp(again, bytes, len) == 0);
        }
        const LwfStatus st_init = lwf_model_init(mem, m.mem_len, &s, 1, &h);
        TRUE(st_init == st_shape);
        if (st_init == LWF_OK) {
            OK(lwf_model_log_prob(h, theta, 6, log_q, 3));
            TRUE(all_finite(log_q, 3));
            OK(lwf_model_save(h, again, len, &written));
            OK(lwf_model_inspect(again, written, &got));
        }
    }
    /* A double that float flushes to +0.0 would silently switch the clamp off: refused. */
    LwfShape s = shape;
    s.clamp = 1e-50;
    STATUS(LWF_INVALID_SHAPE, lwf_shape_validate(&s));
    free(mem);
    free(saved);
    free(bytes);
    free(again);
    free_model(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* D2: mixture weights across the whole double range.                                         */

static void d2_mixture_weights_give_finite_parameters(void) {
    printf("d2: mixture weights {1e308, 1e-308} and friends: finite parameters\n");
    LwfShape shape;
    OK(lwf_shape_default(2, 8, 2, &shape));
    shape.base = LWF_BASE_MIXTURE;
    shape.components = 2;
    Model m = make_model(shape, 2);
    double *params = xmalloc(m.params * sizeof(double));
    const double means[4] = {-1.0, 0.0, 3.0, 0.0}, scales[4] = {1.0, 1.0, 1.0, 1.0};
    const double weights[][2] = {
        {1e308, 1e-308}, {DBL_MAX, DBL_TRUE_MIN}, {DBL_MAX, DBL_MAX}, {1e-308, 1e308}, {1.0, 3.0},
    };
    for (size_t c = 0; c < sizeof weights / sizeof weights[0]; c++) {
        const double *w = weights[c];
        printf("  weights {%g, %g}\n", w[0], w[1]);
        OK(lwf_model_set_mixture_base(m.h, w, 2, means, 4, scales, 4));
        OK(lwf_model_get_params(m.h, params, m.params));
        TRUE(all_finite(params, m.params));
        /* The couplings are the identity after lwf_model_init: log q is the mixture's. */
        const double theta[4] = {-1.0, 0.0, 3.0, 0.0};
        double log_q[2];
        OK(lwf_model_log_prob(m.h, theta, 4, log_q, 2));
        TRUE(all_finite(log_q, 2));
        const double share0 = 1.0 / (1.0 + w[1] / w[0]);
        const double norm = -log(2.0 * acos(-1.0)), far = exp(-8.0); /* points 4 apart */
        const double want0 = norm + log(share0 + (1.0 - share0) * far);
        const double want1 = norm + log(share0 * far + (1.0 - share0));
        TRUE(fabs(log_q[0] - want0) < 1e-9 && fabs(log_q[1] - want1) < 1e-9);
        LwfRng rng;
        double sample[8], sample_lq[4];
        OK(lwf_rng_init(&rng, 5));
        OK(lwf_model_sample(m.h, &rng, sample, 8, sample_lq, 4));
        TRUE(all_finite(sample, 8) && all_finite(sample_lq, 4));
    }
    free(params);
    free_model(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* O1: extreme finite parameters: never LWF_OK with a non-finite output.                      */

enum { O1_N = 40 };

/* Outside the open box of a bounded model (only there may log q be -inf). */
static int outside_box(const LwfShape *s, const double *params, size_t n_params,
                       const double *row) {
    if (!s->bounded) return 0;
    const double *lo = params + n_params - 2 * s->dim, *hi = params + n_params - s->dim;
    for (size_t i = 0; i < s->dim; i++)
        if (!(row[i] > lo[i] && row[i] < hi[i])) return 1;
    return 0;
}

/* Every evaluation entry point on batches of n: LWF_OK only with finite outputs (log q: or
 * -inf outside the box), else LWF_NON_FINITE with NaN outputs (an rng not advanced), or a
 * status the input explains (LWF_INVALID_ARGUMENT: inverse of a point outside the box).
 * Returns how many calls gave LWF_NON_FINITE. */
static int o1_every_entry_point(const Model *m, const double *params, const double *theta,
                                size_t n) {
    const size_t d = m->shape.dim, P = m->params;
    double *out = xmalloc(n * sizeof(double));
    double *x = xmalloc(n * d * sizeof(double)), *ws = xmalloc(m->ws * sizeof(double));
    double *grad = xmalloc(P * sizeof(double)), *w = xmalloc(n * sizeof(double));
    int non_finite = 0;
    LwfStatus st;
    for (size_t i = 0; i < n; i++) w[i] = 1.0;

#define O1_RESULT(st, finite_ok)                                                                \
    do {                                                                                       \
        if ((st) == LWF_NON_FINITE) non_finite++;                                              \
        TRUE((st) == LWF_OK ? (finite_ok) : ((st) == LWF_NON_FINITE));                         \
    } while (0)

    /* log_prob and log_prob_ws */
    for (int with_ws = 0; with_ws < 2; with_ws++) {
        st = with_ws ? lwf_model_log_prob_ws(m->h, theta, n * d, out, n, ws, m->ws)
                     : lwf_model_log_prob(m->h, theta, n * d, out, n);
        int valid = 1;
        for (size_t i = 0; i < n; i++)
            if (!(isfinite(out[i]) ||
                  (out[i] == -INFINITY && outside_box(&m->shape, params, P, theta + i * d))))
                valid = 0;
        O1_RESULT(st, valid);
        if (st == LWF_NON_FINITE) TRUE(all_nan(out, n));
    }
    /* sample and sample_ws: the rng moves only on LWF_OK */
    for (int with_ws = 0; with_ws < 2; with_ws++) {
        LwfRng rng, before;
        OK(lwf_rng_init(&rng, 9));
        before = rng;
        st = with_ws ? lwf_model_sample_ws(m->h, &rng, x, n * d, out, n, ws, m->ws)
                     : lwf_model_sample(m->h, &rng, x, n * d, out, n);
        O1_RESULT(st, all_finite(x, n * d) && all_finite(out, n));
        if (st != LWF_OK) TRUE(memcmp(&rng, &before, sizeof rng) == 0);
        if (st == LWF_NON_FINITE) TRUE(all_nan(x, n * d) && all_nan(out, n));
    }
    /* forward from z = the points, inverse of the points */
    st = lwf_model_forward(m->h, theta, n * d, x, n * d, out, n);
    O1_RESULT(st, all_finite(x, n * d) && all_finite(out, n));
    st = lwf_model_inverse(m->h, theta, n * d, x, n * d, out, n);
    int any_outside = 0;
    for (size_t i = 0; i < n; i++)
        any_outside |= outside_box(&m->shape, params, P, theta + i * d);
    if (any_outside) {
        STATUS(LWF_INVALID_ARGUMENT, st);
    } else {
        O1_RESULT(st, all_finite(x, n * d) && all_finite(out, n));
    }
    /* loss and gradient, plain and accumulating (only inside the box) */
    if (!any_outside) {
        double loss = 0.0;
        st = lwf_model_loss_grad(m->h, theta, n * d, w, n, grad, P, &loss);
        O1_RESULT(st, isfinite(loss) && all_finite(grad, P));
        memset(grad, 0, P * sizeof(double));
        loss = 0.0;
        st = lwf_model_loss_grad_accumulate(m->h, theta, n * d, w, n, 1.0 / (double)n, grad, P,
                                            &loss);
        O1_RESULT(st, isfinite(loss) && all_finite(grad, P));
    }
#undef O1_RESULT
    free(out);
    free(x);
    free(ws);
    free(grad);
    free(w);
    return non_finite;
}

static void o1_extreme_parameters_never_give_ok_with_non_finite_outputs(void) {
    printf("o1: parameters of 1e300: no LWF_OK with NaN / inf outputs\n");
    LwfShape shapes[3];
    OK(lwf_shape_default(2, 8, 2, &shapes[0])); /* Gaussian base, unbounded */
    shapes[1] = shapes[0];
    shapes[1].base = LWF_BASE_MIXTURE, shapes[1].components = 2, shapes[1].bounded = 1;
    shapes[2] = shapes[1];
    shapes[2].affine = 1;
    int non_finite = 0, first_all_big = -1;
    for (int k = 0; k < 3; k++) {
        Model m = make_model(shapes[k], 3);
        const size_t P = m.params, d = m.shape.dim;
        if (m.shape.bounded) {
            const double lo[2] = {-2.0, -2.0}, hi[2] = {2.0, 2.0};
            OK(lwf_model_set_box(m.h, lo, hi, 2));
        }
        double *start = xmalloc(P * sizeof(double)), *p = xmalloc(P * sizeof(double));
        double *theta = xmalloc(O1_N * d * sizeof(double));
        fill_points(theta, O1_N * d, 11, 1.9); /* inside the box */
        if (m.shape.bounded) theta[0] = 3.0;   /* one row outside it: log q = -inf is valid */
        OK(lwf_model_get_params(m.h, start, P));
        /* The tail of a bounded model (the box, and the affine map before it) stays valid. */
        const size_t tail =
            (m.shape.bounded ? 2 * d : 0) + (m.shape.affine ? d + d * (d + 1) / 2 : 0);
        const size_t base_at = P - tail - (m.shape.base == LWF_BASE_MIXTURE ? 2 + 4 * d : 2 * d);
        for (int v = 0; v < 6; v++) {
            memcpy(p, start, P * sizeof(double));
            for (size_t i = 0; i < P - tail; i++) {
                switch (v) {
                case 0: p[i] = 1e300; break;                       /* everything huge */
                case 1: p[i] = -1e300; break;                      /* everything huge, < 0 */
                case 2: p[i] = (i % 2) ? 1e300 : -1e300; break;    /* alternating */
                case 3: if (i >= base_at) p[i] = 1e300; break;     /* the base only */
                case 4: if (i >= base_at) p[i] = -1e300; break;    /* base scales e^-1e300 */
                case 5: if (i < base_at) p[i] = 1e300; break;      /* the couplings only */
                }
            }
            if (m.shape.affine)
                for (size_t i = P - tail; i < P - tail + d; i++) p[i] = 1e300; /* the shift */
            /* Finite doubles are the model's precision: accepted. */
            OK(lwf_model_set_params(m.h, p, P));
            const int nf1 = o1_every_entry_point(&m, p, theta + d, 1);
            const int nf = o1_every_entry_point(&m, p, theta, O1_N);
            non_finite += nf + nf1;
            if (k == 0 && v == 0) first_all_big = nf;
        }
        /* Non-finite values are refused, and nothing changes. */
        double *now = xmalloc(P * sizeof(double));
        OK(lwf_model_get_params(m.h, p, P));
        const double bad[3] = {INFINITY, -INFINITY, NAN};
        for (int b = 0; b < 3; b++) {
            memcpy(now, p, P * sizeof(double));
            now[1] = bad[b];
            STATUS(LWF_NON_FINITE, lwf_model_set_params(m.h, now, P));
        }
        OK(lwf_model_get_params(m.h, now, P));
        TRUE(same_doubles(now, p, P));
        /* The ordinary model keeps its contract: finite inside, -inf outside the box. */
        OK(lwf_model_set_params(m.h, start, P));
        double log_q[O1_N];
        OK(lwf_model_log_prob(m.h, theta, O1_N * d, log_q, O1_N));
        TRUE(m.shape.bounded ? log_q[0] == -INFINITY : isfinite(log_q[0]));
        TRUE(all_finite(log_q + 1, O1_N - 1));
        OK(lwf_model_log_prob(m.h, theta, d, log_q, 1)); /* the single-sample path */
        TRUE(m.shape.bounded ? log_q[0] == -INFINITY : isfinite(log_q[0]));
        free(now);
        free(start);
        free(p);
        free(theta);
        free_model(&m);
    }
    printf("  %d calls returned LWF_NON_FINITE\n", non_finite);
    TRUE(first_all_big > 0); /* all parameters 1e300: the outputs overflow, and it is said */
}

/* ------------------------------------------------------------------------------------------ */
/* O2: accumulating into a non-finite loss or gradient.                                       */

static void o2_accumulate_refuses_non_finite_totals(void) {
    printf("o2: loss_grad_accumulate with NaN / inf incoming, or overflowing sums\n");
    LwfShape shape;
    OK(lwf_shape_default(2, 8, 2, &shape));
    Model m = make_model(shape, 4);
    enum { N = 16 };
    const size_t P = m.params;
    double theta[N * 2], w[N];
    fill_points(theta, N * 2, 3, 2.0);
    for (int i = 0; i < N; i++) w[i] = 1.0;
    double *grad = xmalloc(P * sizeof(double)), *keep = xmalloc(P * sizeof(double));
    double *probe = xmalloc(P * sizeof(double));
    double loss = 0.0, keep_loss;
    memset(grad, 0, P * sizeof(double));
    OK(lwf_model_loss_grad_accumulate(m.h, theta, N * 2, w, N, 1.0 / N, grad, P, &loss));
    TRUE(isfinite(loss) && all_finite(grad, P));

    const double incoming[3] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        loss = incoming[b];
        keep_loss = loss;
        memcpy(keep, grad, P * sizeof(double));
        STATUS(LWF_NON_FINITE,
               lwf_model_loss_grad_accumulate(m.h, theta, N * 2, w, N, 1.0 / N, grad, P, &loss));
        TRUE(memcmp(&loss, &keep_loss, sizeof loss) == 0);
        TRUE(same_doubles(grad, keep, P));
    }
    /* A non-finite entry of the incoming gradient. */
    loss = 0.0;
    grad[3] = NAN;
    memcpy(keep, grad, P * sizeof(double));
    STATUS(LWF_NON_FINITE,
           lwf_model_loss_grad_accumulate(m.h, theta, N * 2, w, N, 1.0 / N, grad, P, &loss));
    TRUE(loss == 0.0 && same_doubles(grad, keep, P));

    /* Finite incoming values whose sums overflow: loss, then gradient. */
    const double scale = 1e300;
    double probe_loss = 0.0;
    memset(probe, 0, P * sizeof(double));
    OK(lwf_model_loss_grad_accumulate(m.h, theta, N * 2, w, N, scale, probe, P, &probe_loss));
    TRUE(isfinite(probe_loss) && probe_loss != 0.0);
    memset(grad, 0, P * sizeof(double));
    loss = copysign(DBL_MAX, probe_loss);
    keep_loss = loss;
    STATUS(LWF_NON_FINITE,
           lwf_model_loss_grad_accumulate(m.h, theta, N * 2, w, N, scale, grad, P, &loss));
    TRUE(loss == keep_loss && all_finite(grad, P));
    size_t big = 0;
    for (size_t i = 0; i < P; i++) {
        grad[i] = probe[i] == 0.0 ? 0.0 : copysign(DBL_MAX, probe[i]);
        big += fabs(probe[i]) > 1e292; /* DBL_MAX + |g| overflows */
    }
    TRUE(big > 0);
    loss = 0.0;
    memcpy(keep, grad, P * sizeof(double));
    STATUS(LWF_NON_FINITE,
           lwf_model_loss_grad_accumulate(m.h, theta, N * 2, w, N, scale, grad, P, &loss));
    TRUE(loss == 0.0 && same_doubles(grad, keep, P));
    free(grad);
    free(keep);
    free(probe);
    free_model(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* O4: an Adam step that would overflow (found after the O1-O3 fixes: a learning rate of 1e308 */
/* gave LWF_OK and NaN parameters, so every later call returned LWF_NON_FINITE).               */

static void o4_adam_step_never_stores_non_finite_parameters(void) {
    printf("o4: adam_step with a learning rate of 1e308\n");
    LwfShape shape;
    OK(lwf_shape_default(2, 8, 2, &shape));
    Model m = make_model(shape, 5);
    enum { N = 16 };
    const size_t P = m.params;
    double theta[N * 2], w[N], loss = 0.0, log_q[N], want[N];
    fill_points(theta, N * 2, 7, 2.0);
    for (int i = 0; i < N; i++) w[i] = 1.0;
    double *grad = xmalloc(P * sizeof(double)), *before = xmalloc(P * sizeof(double));
    double *after = xmalloc(P * sizeof(double));
    OK(lwf_model_loss_grad(m.h, theta, N * 2, w, N, grad, P, &loss));
    /* A modest step first, so the moments are not zero. */
    LwfAdam adam;
    OK(lwf_adam_default(&adam));
    OK(lwf_model_adam_step(m.h, &adam, grad, P));
    OK(lwf_model_get_params(m.h, before, P));
    OK(lwf_model_log_prob(m.h, theta, N * 2, want, N));
    adam.lr = 1e308;
    STATUS(LWF_NON_FINITE, lwf_model_adam_step(m.h, &adam, grad, P));
    OK(lwf_model_get_params(m.h, after, P));
    TRUE(same_doubles(after, before, P)); /* nothing changed */
    OK(lwf_model_log_prob(m.h, theta, N * 2, log_q, N));
    TRUE(same_doubles(log_q, want, N));
    /* The next sensible step still works, from the unchanged moments. */
    adam.lr = 1e-3;
    OK(lwf_model_adam_step(m.h, &adam, grad, P));
    OK(lwf_model_get_params(m.h, after, P));
    TRUE(all_finite(after, P) && !same_doubles(after, before, P));
    free(grad);
    free(before);
    free(after);
    free_model(&m);
}

/* ------------------------------------------------------------------------------------------ */
/* O3: one handle, several threads.                                                           */

typedef struct {
    LwfModel *model;
    const double *theta, *want; /* this thread's batch and its single-threaded log q */
    size_t n, dim, ws_len;
    int calls, use_ws;
    int ok, busy, wrong, other, touched;
} Worker;

static void *worker_main(void *arg) {
    Worker *w = arg;
    double *out = xmalloc(w->n * sizeof(double));
    double *ws = w->use_ws ? xmalloc(w->ws_len * sizeof(double)) : NULL;
    for (int c = 0; c < w->calls; c++) {
        for (size_t i = 0; i < w->n; i++) out[i] = -7.0;
        LwfStatus st = w->use_ws ? lwf_model_log_prob_ws(w->model, w->theta, w->n * w->dim, out,
                                                         w->n, ws, w->ws_len)
                                 : lwf_model_log_prob(w->model, w->theta, w->n * w->dim, out, w->n);
        if (st == LWF_OK) {
            if (same_doubles(out, w->want, w->n))
                w->ok++;
            else
                w->wrong++;
        } else if (st == LWF_BUSY) {
            w->busy++;
            for (size_t i = 0; i < w->n; i++) w->touched += out[i] != -7.0;
        } else {
            w->other++;
        }
    }
    free(out);
    free(ws);
    return NULL;
}

/* One long call on the shared handle, flagged before and after. */
typedef struct {
    LwfModel *model;
    const double *theta;
    double *out;
    size_t n, dim;
    atomic_int started, done;
    LwfStatus status;
} LongCall;

static void *long_call_main(void *arg) {
    LongCall *c = arg;
    atomic_store(&c->started, 1);
    c->status = lwf_model_log_prob(c->model, c->theta, c->n * c->dim, c->out, c->n);
    atomic_store(&c->done, 1);
    return NULL;
}

static void o3_one_handle_many_threads(void) {
    printf("o3: one handle, several threads calling lwf_model_log_prob\n");
    LwfShape shape;
    OK(lwf_shape_default(4, 32, 4, &shape));
    shape.base = LWF_BASE_MIXTURE, shape.components = 3;
    Model m = make_model(shape, 5);
    const size_t d = 4;
    { /* move the zero-initialised last layers off the identity */
        double *p = xmalloc(m.params * sizeof(double));
        OK(lwf_model_get_params(m.h, p, m.params));
        double *noise = xmalloc(m.params * sizeof(double));
        fill_points(noise, m.params, 17, 0.3);
        for (size_t i = 0; i < m.params; i++) p[i] += noise[i];
        OK(lwf_model_set_params(m.h, p, m.params));
        free(p);
        free(noise);
    }

    /* 1. Stress: T threads on one handle, distinct batches (so a shared workspace mixes them
     *    up visibly); half use lwf_model_log_prob, half lwf_model_log_prob_ws. */
    enum { T = 4, N = 64 };
    const int calls = quick ? 40 : 1000;
    double *theta = xmalloc(T * N * d * sizeof(double)), *want = xmalloc(T * N * sizeof(double));
    fill_points(theta, T * N * d, 23, 2.5);
    for (int t = 0; t < T; t++)
        OK(lwf_model_log_prob(m.h, theta + t * N * d, N * d, want + t * N, N));
    Worker workers[T];
    pthread_t threads[T];
    for (int t = 0; t < T; t++) {
        Worker w = {m.h, theta + t * N * d, want + t * N, N, d, m.ws, calls, t % 2, 0, 0, 0, 0, 0};
        workers[t] = w;
    }
    for (int t = 0; t < T; t++)
        TRUE(pthread_create(&threads[t], NULL, worker_main, &workers[t]) == 0);
    int ok = 0, busy = 0, wrong = 0, other = 0, touched = 0, ws_busy = 0, ws_ok = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(threads[t], NULL);
        ok += workers[t].ok, busy += workers[t].busy, wrong += workers[t].wrong;
        other += workers[t].other, touched += workers[t].touched;
        if (workers[t].use_ws) ws_busy += workers[t].busy, ws_ok += workers[t].ok;
    }
    printf("  stress: %d calls: %d LWF_OK (%d of them _ws), %d LWF_BUSY, %d wrong with LWF_OK, "
           "%d other\n", T * calls, ok, ws_ok, busy, wrong, other);
    TRUE(wrong == 0);   /* never LWF_OK with a wrong value */
    TRUE(other == 0);   /* only LWF_OK or LWF_BUSY */
    TRUE(touched == 0); /* LWF_BUSY writes nothing */
    TRUE(ws_busy == 0 && ws_ok == (T / 2) * calls); /* the _ws form is never refused */

    /* 2. Deterministic LWF_BUSY: a long call on one thread, short calls from this one while it
     *    runs; meanwhile a byte copy of the model memory (its busy word set). Retried in the
     *    rare case the short calls won every race. */
    const size_t big = quick ? 20000 : 200000;
    double *big_theta = xmalloc(big * d * sizeof(double)), *big_out = xmalloc(big * sizeof(double));
    double *big_want = xmalloc(big * sizeof(double));
    fill_points(big_theta, big * d, 29, 2.5);
    OK(lwf_model_log_prob(m.h, big_theta, big * d, big_want, big));
    void *copy = xmalloc(m.mem_len);
    int busy_seen = 0, copy_taken = 0, copy_flagged = 0, attempts = 0;
    double out[N];
    while (attempts < 20 && !(busy_seen && copy_flagged)) {
        attempts++;
        LongCall c;
        c.model = m.h, c.theta = big_theta, c.out = big_out, c.n = big, c.dim = d;
        atomic_init(&c.started, 0);
        atomic_init(&c.done, 0);
        c.status = LWF_PANIC;
        pthread_t long_thread;
        TRUE(pthread_create(&long_thread, NULL, long_call_main, &c) == 0);
        while (!atomic_load(&c.started)) sched_yield();
        int seen = 0;
        copy_taken = 0;
        while (!atomic_load(&c.done)) {
            LwfStatus st = lwf_model_log_prob(m.h, theta, N * d, out, N);
            if (st == LWF_BUSY) {
                seen++;
                if (!copy_taken) {
                    /* A copy taken while the other call runs (its workspace is scratch). */
                    memcpy(copy, m.mem, m.mem_len);
                    copy_taken = 1;
                }
            } else {
                STATUS(LWF_OK, st);
                TRUE(same_doubles(out, want, N));
            }
        }
        pthread_join(long_thread, NULL);
        if (c.status == LWF_OK) {
            TRUE(same_doubles(big_out, big_want, big));
        } else {
            STATUS(LWF_BUSY, c.status); /* a short call held the model when it started */
        }
        if (seen && c.status == LWF_OK) busy_seen = 1;
        if (copy_taken) {
            /* White box (ffi/src/model.rs): the busy word is the 8 bytes at offset 96. */
            uint64_t word;
            memcpy(&word, (const char *)copy + 96, sizeof word);
            if (word != 0) copy_flagged = 1;
            /* The copy works at its own address, whatever its busy word says. */
            double copy_out[N];
            OK(lwf_model_log_prob((LwfModel *)copy, theta, N * d, copy_out, N));
            TRUE(same_doubles(copy_out, want, N));
            OK(lwf_model_log_prob((LwfModel *)copy, theta, N * d, copy_out, N));
            TRUE(same_doubles(copy_out, want, N));
        }
    }
    printf("  long call: LWF_BUSY seen %s, copy with a set busy word usable %s (%d attempt%s)\n",
           busy_seen ? "yes" : "no", copy_flagged ? "yes" : "no", attempts,
           attempts == 1 ? "" : "s");
    TRUE(busy_seen);
    TRUE(copy_flagged);
    /* Afterwards the model is idle and usable by every call taking it. */
    OK(lwf_model_log_prob(m.h, theta, N * d, out, N));
    TRUE(same_doubles(out, want, N));
    OK(lwf_model_adam_reset(m.h));
    free(copy);
    free(big_theta);
    free(big_out);
    free(big_want);
    free(theta);
    free(want);
    free_model(&m);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    quick = argc > 2 && strcmp(argv[2], "quick") == 0;
    const int all = strcmp(which, "all") == 0;
    int ran = 0;
    if (all || strcmp(which, "d1") == 0) d1_clamp_rule_at_every_door(), ran++;
    if (all || strcmp(which, "d2") == 0) d2_mixture_weights_give_finite_parameters(), ran++;
    if (all || strcmp(which, "o1") == 0)
        o1_extreme_parameters_never_give_ok_with_non_finite_outputs(), ran++;
    if (all || strcmp(which, "o2") == 0) o2_accumulate_refuses_non_finite_totals(), ran++;
    if (all || strcmp(which, "o4") == 0) o4_adam_step_never_stores_non_finite_parameters(), ran++;
    if (all || strcmp(which, "o3") == 0) o3_one_handle_many_threads(), ran++;
    TRUE(ran > 0);
    printf("checks: %d, failures: %d\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
