/* Regression tests from C for the defects the fuzz targets (fuzz/, and their stable twin
 * ffi/tests/randomized.rs) found. Each section fails on the library before its fix.
 *
 *   f1  a fit whose samples have zero density under every parameters it can reach (samples at
 *       1e244, a base starting at N(0, I): every step skipped) returned LWF_OK with an
 *       infinite validation loss in its report; now LWF_NON_FINITE, nothing written
 *   f2  lwf_model_adam_step moved the outer maps' parameters (box, affine map), which are never
 *       trained: a gradient there made the box lo > hi, a model that lwf_model_save wrote but
 *       lwf_model_load refused; now the outer maps never change
 *   f3  lwf_model_adam_step with lr 1e308 returned LWF_OK and left every parameter NaN; now
 *       LWF_NON_FINITE, nothing changed
 *   f4  lwf_model_fit_prior_box with likelihood_batch 2^63 in 2-D (any value >= n_samples is
 *       documented as one call) panicked: batch * dim overflowed to a chunk size of 0
 *       (LWF_PANIC); now one call
 *   f5  a refinement whose shape asks for more mixture components than the config's
 *       max_components (the shape's base is documented as replaced) broke after its first
 *       ask: every later call returned LWF_INVALID_MODEL; now it runs to its end
 *
 * Run by ffi/tests/fuzz_regressions.rs (natively, one section per test, and all sections under
 * valgrind):
 *
 *   cc -std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/c/fuzz_regressions.c \
 *      target/debug/liblwflow.a -lm -lpthread -ldl -o fuzz_regressions && ./fuzz_regressions all
 */
#include "lwflow.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;

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
    void *p = malloc(bytes ? bytes : 1);
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

/* A Gaussian log-likelihood around the origin, any dimension. */
static int gauss(const double *theta, size_t n, size_t dim, double *out, void *user) {
    size_t *calls = (size_t *)user;
    if (calls) (*calls)++;
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < dim; j++) s += theta[i * dim + j] * theta[i * dim + j];
        out[i] = -0.5 * s;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* F1: a fit that cannot evaluate its samples is LWF_NON_FINITE, never LWF_OK with inf.       */

static void f1_fit_report_never_infinite(void) {
    LwfShape shape;
    OK(lwf_shape_default(2, 3, 1, &shape));
    LwfFitConfig cfg;
    OK(lwf_fit_config_default(&cfg));
    cfg.base = LWF_FIT_BASE_GAUSSIAN; /* starts at N(0, I), far from the samples */
    cfg.max_epochs = 2;
    cfg.batch_size = 4;
    cfg.min_ess = 0.0;
    enum { N = 12 };
    double theta[N * 2], log_w[N];
    for (size_t i = 0; i < N; i++) {
        theta[2 * i] = -1.0 + 0.1 * (double)i;
        theta[2 * i + 1] = -5.0e244 - 1.0e243 * (double)i; /* log q = -inf under N(0, I) */
        log_w[i] = -6.0;
    }
    size_t mem_len = 0, work_len = 0;
    OK(lwf_fit_model_size(&shape, &cfg, &mem_len));
    OK(lwf_fit_work_size(&shape, &cfg, N, &work_len));
    unsigned char *mem = xmalloc(mem_len), *work = xmalloc(work_len);
    memset(mem, 0xA5, mem_len);
    LwfFitReport report;
    memset(&report, 0x5A, sizeof report);
    LwfModel *model = NULL;
    LwfStatus st = lwf_model_fit_samples(mem, mem_len, &shape, &cfg, theta, N * 2, log_w, N, NULL,
                                         NULL, work, work_len, &report, &model);
    /* Before the fix: LWF_OK with report.initial_val_loss = report.best_val_loss = +inf. */
    TRUE(st != LWF_OK || (isfinite(report.initial_val_loss) && isfinite(report.best_val_loss)));
    STATUS(LWF_NON_FINITE, st);
    /* Nothing written: not the memory, not the report, not the handle. */
    int untouched = 1;
    for (size_t i = 0; i < mem_len; i++) untouched &= mem[i] == 0xA5;
    TRUE(untouched);
    TRUE(model == NULL);
    TRUE(report.n_samples != N);
    /* The same samples near the base fit normally. */
    for (size_t i = 0; i < N; i++) theta[2 * i + 1] = 0.5 - 0.1 * (double)i;
    OK(lwf_model_fit_samples(mem, mem_len, &shape, &cfg, theta, N * 2, log_w, N, NULL, NULL,
                             work, work_len, &report, &model));
    TRUE(isfinite(report.initial_val_loss) && isfinite(report.best_val_loss));
    free(mem);
    free(work);
}

/* ------------------------------------------------------------------------------------------ */
/* F2, F3: an Adam step never touches the outer maps and never leaves a non-finite parameter.  */

typedef struct {
    void *mem;
    LwfModel *h;
    size_t params;
} Model;

static Model bounded_affine_model(void) {
    LwfShape shape;
    OK(lwf_shape_default(2, 4, 2, &shape));
    shape.affine = 1;
    shape.bounded = 1;
    Model m;
    size_t mem_len = 0;
    OK(lwf_shape_model_size(&shape, &mem_len));
    OK(lwf_shape_param_count(&shape, &m.params));
    m.mem = xmalloc(mem_len);
    OK(lwf_model_init(m.mem, mem_len, &shape, 7, &m.h));
    const double lo[2] = {-1.0, -2.0}, hi[2] = {3.0, 1.5};
    OK(lwf_model_set_box(m.h, lo, hi, 2));
    return m;
}

static int saves_and_loads(const Model *m) {
    size_t len = 0, written = 0;
    LwfShape shape;
    OK(lwf_model_shape(m->h, &shape));
    OK(lwf_shape_serialized_size(&shape, &len));
    unsigned char *bytes = xmalloc(len);
    OK(lwf_model_save(m->h, bytes, len, &written));
    LwfShape back;
    LwfStatus st = lwf_model_inspect(bytes, written, &back);
    free(bytes);
    return st == LWF_OK;
}

static void f2_adam_step_leaves_the_outer_maps_alone(void) {
    Model m = bounded_affine_model();
    const size_t p = m.params;
    /* The tail: shift (2), packed L (3), lo (2), hi (2). */
    const size_t tail = 2 + 3 + 2 + 2;
    double *before = xmalloc(p * sizeof(double)), *after = xmalloc(p * sizeof(double));
    double *grad = xmalloc(p * sizeof(double));
    OK(lwf_model_get_params(m.h, before, p));
    /* A gradient everywhere: +1 on the couplings and base, and one that would push lo up
     * and hi down, and the affine diagonal below zero. */
    for (size_t i = 0; i < p; i++) grad[i] = 1.0;
    grad[p - 4] = grad[p - 3] = -1.0; /* lo */
    grad[p - 2] = grad[p - 1] = 1.0;  /* hi */
    LwfAdam adam;
    OK(lwf_adam_default(&adam));
    adam.lr = 5.0;
    OK(lwf_model_adam_step(m.h, &adam, grad, p));
    OK(lwf_model_get_params(m.h, after, p));
    TRUE(memcmp(before + (p - tail), after + (p - tail), tail * sizeof(double)) == 0);
    TRUE(before[0] != after[0]); /* the trained parameters did move */
    TRUE(all_finite(after, p));
    /* The model is still one every door accepts. */
    TRUE(saves_and_loads(&m));
    const double theta[2] = {0.5, 0.0};
    double lq = 0.0;
    OK(lwf_model_log_prob(m.h, theta, 2, &lq, 1));
    TRUE(isfinite(lq));
    free(before);
    free(after);
    free(grad);
    free(m.mem);
}

static void f3_adam_step_never_leaves_non_finite_parameters(void) {
    Model m = bounded_affine_model();
    const size_t p = m.params;
    double *before = xmalloc(p * sizeof(double)), *after = xmalloc(p * sizeof(double));
    double *grad = xmalloc(p * sizeof(double));
    OK(lwf_model_get_params(m.h, before, p));
    for (size_t i = 0; i < p; i++) grad[i] = 0.25;
    LwfAdam adam;
    OK(lwf_adam_default(&adam));
    adam.lr = 1e308; /* lr / (1 - beta1) overflows */
    LwfStatus st = lwf_model_adam_step(m.h, &adam, grad, p);
    OK(lwf_model_get_params(m.h, after, p));
    /* Before the fix: LWF_OK and every parameter NaN. */
    TRUE(st != LWF_OK || all_finite(after, p));
    STATUS(LWF_NON_FINITE, st);
    TRUE(memcmp(before, after, p * sizeof(double)) == 0);
    /* A gradient whose square overflows the second moment: refused, or a finite step. */
    for (size_t i = 0; i < p; i++) grad[i] = 1e300;
    adam.lr = 1e-3;
    st = lwf_model_adam_step(m.h, &adam, grad, p);
    OK(lwf_model_get_params(m.h, after, p));
    TRUE(st == LWF_NON_FINITE || (st == LWF_OK && all_finite(after, p)));
    TRUE(saves_and_loads(&m));
    free(before);
    free(after);
    free(grad);
    free(m.mem);
}

/* ------------------------------------------------------------------------------------------ */
/* F4: a likelihood batch of 2^63 in 2-D is one call.                                         */

static void f4_huge_likelihood_batch_is_one_call(void) {
    LwfShape shape;
    OK(lwf_shape_default(2, 3, 1, &shape));
    LwfFitConfig cfg;
    OK(lwf_fit_config_default(&cfg));
    cfg.base = LWF_FIT_BASE_GAUSSIAN;
    cfg.max_epochs = 2;
    cfg.min_ess = 1.0;
    const size_t n = 64;
    const double lo[2] = {-3.0, -3.0}, hi[2] = {3.0, 3.0};
    const size_t batches[3] = {(size_t)1 << (sizeof(size_t) * 8 - 1), SIZE_MAX, n};
    for (int b = 0; b < 3; b++) {
        cfg.likelihood_batch = batches[b];
        size_t mem_len = 0, work_len = 0, calls = 0;
        OK(lwf_fit_model_size(&shape, &cfg, &mem_len));
        OK(lwf_fit_work_size(&shape, &cfg, n, &work_len));
        void *mem = xmalloc(mem_len), *work = xmalloc(work_len);
        LwfModel *model = NULL;
        LwfFitReport report;
        /* Before the fix: LWF_PANIC for 2^63 (2^63 * 2 wrapped to a chunk size of 0). */
        OK(lwf_model_fit_prior_box(mem, mem_len, &shape, &cfg, lo, 2, hi, 2, n, gauss, &calls,
                                   NULL, NULL, work, work_len, &report, &model));
        TRUE(calls == 1);
        TRUE(report.n_samples == n);
        free(mem);
        free(work);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* F5: the shape's base never matters to a refinement.                                        */

static void f5_refinement_ignores_the_shapes_base(void) {
    const size_t ks[2] = {10, 2}; /* more components than max_components, and fewer */
    for (int c = 0; c < 2; c++) {
        LwfShape shape;
        OK(lwf_shape_default(2, 4, 2, &shape));
        shape.base = LWF_BASE_MIXTURE;
        shape.components = ks[c];
        LwfRefineConfig cfg;
        OK(lwf_refine_config_default(2, &cfg));
        cfg.initial_samples = 200;
        cfg.samples_per_round = 200;
        cfg.check_samples = 200;
        cfg.max_calls = 800;
        cfg.max_rounds = 4;
        cfg.max_epochs = 3;
        cfg.max_components = 3;
        size_t work_len = 0;
        OK(lwf_refine_work_size(&shape, &cfg, &work_len));
        void *work = xmalloc(work_len);
        const double lo[2] = {-4.0, -4.0}, hi[2] = {4.0, 4.0};
        LwfRefine *r = NULL;
        OK(lwf_refine_init(work, work_len, &shape, lo, hi, 2, &cfg, &r));
        size_t cap = 0;
        OK(lwf_refine_batch_capacity(r, &cap));
        double *theta = xmalloc(cap * 2 * sizeof(double)), *ll = xmalloc(cap * sizeof(double));
        int32_t status = LWF_REFINE_RUNNING;
        int rounds = 0;
        while (status == LWF_REFINE_RUNNING && rounds < 10) {
            size_t got = 0;
            OK(lwf_refine_ask(r, theta, cap, &got));
            /* Before the fix (K = 10): LWF_INVALID_MODEL here, after the first ask. */
            OK(lwf_refine_status(r, &status));
            gauss(theta, got, 2, ll, NULL);
            OK(lwf_refine_tell(r, ll, got, NULL));
            OK(lwf_refine_status(r, &status));
            rounds++;
        }
        TRUE(status != LWF_REFINE_RUNNING && status != LWF_REFINE_FAILED);
        size_t model_len = 0;
        OK(lwf_refine_model_size(r, &model_len));
        void *mem = xmalloc(model_len);
        LwfModel *model = NULL;
        OK(lwf_refine_write_model(r, mem, model_len, &model));
        const double x[2] = {0.1, -0.2};
        double lq = 0.0;
        OK(lwf_model_log_prob(model, x, 2, &lq, 1));
        TRUE(isfinite(lq));
        free(mem);
        free(theta);
        free(ll);
        free(work);
    }
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    const int all = strcmp(which, "all") == 0;
    int ran = 0;
    if (all || strcmp(which, "f1") == 0) f1_fit_report_never_infinite(), ran++;
    if (all || strcmp(which, "f2") == 0) f2_adam_step_leaves_the_outer_maps_alone(), ran++;
    if (all || strcmp(which, "f3") == 0) f3_adam_step_never_leaves_non_finite_parameters(), ran++;
    if (all || strcmp(which, "f4") == 0) f4_huge_likelihood_batch_is_one_call(), ran++;
    if (all || strcmp(which, "f5") == 0) f5_refinement_ignores_the_shapes_base(), ran++;
    TRUE(ran > 0);
    printf("checks: %d, failures: %d\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
