/* Adaptive refinement of task 2D2 (two Gaussians N((+-2.5, 0), 0.6^2 I), prior uniform on
 * [-6, 6]^2, log evidence -2 ln 12 = -4.9698) through the C ABI:
 *
 *   1. ask/tell: the library hands out each round's points, we evaluate the likelihood and
 *      tell it the values, until the refinement ends; then the report and the model (on the
 *      prior box: log q finite inside, -inf outside, every sample inside);
 *   2. the callback form (lwf_refine_run) from a fresh start: bit-identical results;
 *   3. a byte copy of the work memory taken after round 1, continued with the callback form:
 *      bit-identical results too.
 *
 * Prints one line per round and a RESULT line (read by ffi/tests/refine.rs). With the
 * argument `quick` it runs a tiny configuration (for valgrind).
 *
 *   cc -std=c11 -O2 -Iinclude examples/c/refine_2d2.c target/release/liblwflow.a \
 *      -lm -lpthread -ldl -o refine_2d2 && ./refine_2d2 */
#include "lwflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOX 6.0
#define LOG_Z_TRUE (-4.969813299576001) /* -2 ln 12 */

static double log_likelihood(const double *x) {
    const double sd = 0.6, pi = 3.14159265358979323846;
    double norm = -2.0 * log(sd) - log(2.0 * pi);
    double a = (x[0] + 2.5) / sd, b = (x[0] - 2.5) / sd, c = x[1] / sd;
    double l = -0.5 * (a * a + c * c) + norm, r = -0.5 * (b * b + c * c) + norm;
    double m = l > r ? l : r;
    return m + log(0.5 * exp(l - m) + 0.5 * exp(r - m));
}

/* The batched callback of lwf_refine_run: n points of dim doubles, one value each. */
static int likelihood_callback(const double *theta, size_t n, size_t dim, double *out,
                               void *user) {
    (void)user;
    for (size_t i = 0; i < n; i++) out[i] = log_likelihood(theta + i * dim);
    return 0;
}

static void check(LwfStatus status, const char *what) {
    if (status != LWF_OK) {
        fprintf(stderr, "%s failed: %s\n", what, lwf_status_message((int)status));
        exit(1);
    }
}

/* The model a finished refinement returned, in fresh memory (free it). */
static LwfModel *model_of(const LwfRefine *r, void **mem) {
    size_t len;
    LwfModel *m = NULL;
    check(lwf_refine_model_size(r, &len), "lwf_refine_model_size");
    *mem = malloc(len);
    if (!*mem) exit(1);
    check(lwf_refine_write_model(r, *mem, len, &m), "lwf_refine_write_model");
    return m;
}

/* Same report and bit-identical model parameters. */
static int same_outcome(const LwfRefine *a, const LwfRefine *b) {
    LwfRefineReport ra, rb;
    check(lwf_refine_report(a, &ra), "lwf_refine_report");
    check(lwf_refine_report(b, &rb), "lwf_refine_report");
    void *mem_a, *mem_b;
    LwfModel *ma = model_of(a, &mem_a), *mb = model_of(b, &mem_b);
    LwfShape sa, sb;
    size_t pa, pb;
    check(lwf_model_shape(ma, &sa), "lwf_model_shape");
    check(lwf_model_shape(mb, &sb), "lwf_model_shape");
    check(lwf_shape_param_count(&sa, &pa), "lwf_shape_param_count");
    check(lwf_shape_param_count(&sb, &pb), "lwf_shape_param_count");
    int same = memcmp(&ra, &rb, sizeof ra) == 0 && memcmp(&sa, &sb, sizeof sa) == 0 && pa == pb;
    if (same) {
        double *qa = malloc(pa * sizeof(double)), *qb = malloc(pb * sizeof(double));
        if (!qa || !qb) exit(1);
        check(lwf_model_get_params(ma, qa, pa), "lwf_model_get_params");
        check(lwf_model_get_params(mb, qb, pb), "lwf_model_get_params");
        same = memcmp(qa, qb, pa * sizeof(double)) == 0;
        free(qa);
        free(qb);
    }
    free(mem_a);
    free(mem_b);
    return same;
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    if (lwf_version() != LWFLOW_VERSION) {
        fprintf(stderr, "header and library versions differ\n");
        return 1;
    }

    /* The flow's widths; the refinement chooses the base and adds the outer maps. */
    LwfShape shape;
    check(lwf_shape_default(2, quick ? 8 : 32, quick ? 2 : 6, &shape), "lwf_shape_default");
    LwfRefineConfig config;
    check(lwf_refine_config_default(2, &config), "lwf_refine_config_default");
    if (quick) {
        config.initial_samples = 200;
        config.samples_per_round = 200;
        config.check_samples = 100;
        config.max_calls = 600;
        config.max_epochs = 2;
        config.max_components = 2;
    }
    size_t work_len, capacity;
    check(lwf_refine_work_size(&shape, &config, &work_len), "lwf_refine_work_size");
    const double lo[2] = {-BOX, -BOX}, hi[2] = {BOX, BOX};
    void *work = malloc(work_len), *work_run = malloc(work_len), *work_copy = malloc(work_len);
    if (!work || !work_run || !work_copy) return 1;
    LwfRefine *r = NULL, *r_run = NULL, *r_copy = NULL;
    check(lwf_refine_init(work, work_len, &shape, lo, hi, 2, &config, &r), "lwf_refine_init");
    check(lwf_refine_batch_capacity(r, &capacity), "lwf_refine_batch_capacity");
    double *theta = malloc(capacity * 2 * sizeof(double));
    double *loglik = malloc(capacity * sizeof(double));
    if (!theta || !loglik) return 1;

    /* 1. ask / tell */
    int32_t status = LWF_REFINE_RUNNING;
    while (check(lwf_refine_status(r, &status), "lwf_refine_status"),
           status == LWF_REFINE_RUNNING) {
        size_t n = 0;
        check(lwf_refine_ask(r, theta, capacity, &n), "lwf_refine_ask");
        for (size_t i = 0; i < n; i++) loglik[i] = log_likelihood(theta + 2 * i);
        LwfRefineRound round;
        check(lwf_refine_tell(r, loglik, n, &round), "lwf_refine_tell");
        printf("round %zu: calls %zu, beta %.3f -> %.3f, K %zu, epochs %zu, ESS %.0f, "
               "ln Z %.4f +- %.4f, k-hat %s%.2f\n",
               round.round, round.calls, round.beta, round.next_beta, round.components,
               round.epochs, round.ess, round.log_z, round.log_z_se,
               round.has_k_hat ? "" : "(none) ", round.k_hat);
        if (round.round == 1) {
            /* The memory holds no pointers: a byte copy is the same refinement. */
            memcpy(work_copy, work, work_len);
            r_copy = (LwfRefine *)work_copy;
        }
    }
    LwfRefineReport report;
    check(lwf_refine_report(r, &report), "lwf_refine_report");
    printf("status %d after %zu rounds, %zu calls: ln Z = %.4f +- %.4f (truth %.4f), ESS %.0f, "
           "K = %zu\n",
           report.status, report.rounds, report.calls, report.log_z, report.log_z_se,
           LOG_Z_TRUE, report.ess, report.components);

    /* The model: log q on a grid inside the box, points outside, samples. */
    void *mem;
    LwfModel *model = model_of(r, &mem);
    enum { G = 25, S = 4000 };
    double grid[G * G * 2], grid_lq[G * G];
    for (int i = 0; i < G * G; i++) {
        grid[2 * i] = -5.95 + 11.9 * (i % G) / (G - 1);
        grid[2 * i + 1] = -5.95 + 11.9 * (i / G) / (G - 1);
    }
    check(lwf_model_log_prob(model, grid, G * G * 2, grid_lq, G * G), "lwf_model_log_prob");
    int inside_finite = 1;
    for (int i = 0; i < G * G; i++) inside_finite &= isfinite(grid_lq[i]) != 0;
    const double outside[8] = {-6.5, 0.0, 6.5, 0.0, 0.0, 7.0, 0.0, -6.0};
    double outside_lq[4];
    check(lwf_model_log_prob(model, outside, 8, outside_lq, 4), "lwf_model_log_prob");
    int outside_neg_inf = 1;
    for (int i = 0; i < 4; i++) outside_neg_inf &= outside_lq[i] == -INFINITY;
    LwfRng rng;
    check(lwf_rng_init(&rng, 5), "lwf_rng_init");
    double *samples = malloc(S * 2 * sizeof(double)), *samples_lq = malloc(S * sizeof(double));
    if (!samples || !samples_lq) return 1;
    check(lwf_model_sample(model, &rng, samples, S * 2, samples_lq, S), "lwf_model_sample");
    int samples_inside = 1;
    for (int i = 0; i < S * 2; i++) samples_inside &= samples[i] >= -BOX && samples[i] <= BOX;

    /* 2. the callback form from a fresh start */
    check(lwf_refine_init(work_run, work_len, &shape, lo, hi, 2, &config, &r_run),
          "lwf_refine_init");
    check(lwf_refine_run(r_run, likelihood_callback, 500, NULL, NULL, NULL), "lwf_refine_run");
    const int run_identical = same_outcome(r, r_run);

    /* 3. the copy taken after round 1 */
    int copy_identical = 0;
    if (r_copy) {
        check(lwf_refine_run(r_copy, likelihood_callback, 4096, NULL, NULL, NULL),
              "lwf_refine_run");
        copy_identical = same_outcome(r, r_copy);
    }

    printf("RESULT status=%d calls=%zu log_z=%.17g log_z_se=%.6g ess=%.1f inside_finite=%d "
           "outside_neg_inf=%d samples_inside=%d run_identical=%d copy_identical=%d\n",
           report.status, report.calls, report.log_z, report.log_z_se, report.ess,
           inside_finite, outside_neg_inf, samples_inside, run_identical, copy_identical);
    free(samples);
    free(samples_lq);
    free(mem);
    free(theta);
    free(loglik);
    free(work);
    free(work_run);
    free(work_copy);
    return 0;
}
