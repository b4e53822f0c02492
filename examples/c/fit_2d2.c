/* Fit task 2D2 (docs/TASKS.md) from C in one call: lwf_model_fit_prior_box draws prior samples
 * on the box, weighs them with the C likelihood below (a batched callback), fits the mixture
 * base by weighted EM (K chosen by BIC) and trains the flow, reporting every epoch to a
 * progress callback; the model lives on the box (the default, LwfFitConfig.bounded = 1). Then:
 * KL(p||q) against the analytic posterior, save, reload (bit-identical log_prob), sample.
 *
 * Build (from the repository root, after `cargo build --release -p lwflow-ffi`):
 *   cc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/c/fit_2d2.c \
 *      target/release/liblwflow.a -lm -lpthread -ldl -o fit_2d2
 *   ./fit_2d2            (prints "RESULT kl=...", exit 0 if KL < 0.05)
 *   ./fit_2d2 quick      few samples, 2 epochs (for valgrind), no accuracy check
 *
 * ffi/tests/c_program.rs runs the same fit through the Rust API (lwflow::train::fit_in_box)
 * and compares the KL and the report with what this program prints. */
#include "common_2d2.h"

#include <string.h>

/* What the likelihood callback sees through its `user` pointer. */
typedef struct {
    size_t calls, points;
} LikelihoodStats;

/* The 2D2 log-likelihood, batched: the callback the fit calls. Also the exact posterior
 * log-density (the box truncates < 1e-8 of the mass). */
static int log_likelihood(const double *theta, size_t n, size_t dim, double *out_loglik,
                          void *user) {
    double mu_left[8] = {0}, mu_right[8] = {0};
    if (dim > 8) return 1; /* non-zero: the fit stops with LWF_CALLBACK_FAILED */
    mu_left[0] = -MODE;
    mu_right[0] = MODE;
    for (size_t i = 0; i < n; i++) {
        double a = log_normal_iso(theta + i * dim, mu_left, dim, SIGMA);
        double b = log_normal_iso(theta + i * dim, mu_right, dim, SIGMA);
        double m = a > b ? a : b;
        out_loglik[i] = m + log(0.5 * exp(a - m) + 0.5 * exp(b - m));
    }
    if (user) {
        LikelihoodStats *stats = user;
        stats->calls++;
        stats->points += n;
    }
    return 0;
}

/* Progress: print every tenth epoch; never cancels (return 0). */
static int progress(const LwfEpochReport *r, void *user) {
    size_t *epochs_seen = user;
    (*epochs_seen)++;
    if (r->epoch % 10 == 0 || r->epoch == 1)
        printf("  epoch %3zu/%zu: train %.4f, validation %.4f (best %.4f), lr %.2e\n", r->epoch,
               r->max_epochs, r->train_loss, r->val_loss, r->best_val_loss, r->lr);
    return 0;
}

/* KL(p||q) = E_p[log p - log q] over exact posterior samples (rejection from the box). */
static double kl_exact(LwfModel *model, size_t m, uint64_t seed) {
    double *theta = malloc(2 * m * sizeof(double));
    double *log_p = malloc(m * sizeof(double));
    double *log_q = malloc(m * sizeof(double));
    uint64_t s = seed;
    double kl = 0.0;
    if (!theta || !log_p || !log_q) exit(1);
    for (size_t i = 0; i < m;) {
        double sign = uniform01(&s) < 0.5 ? -1.0 : 1.0;
        double a = sign * MODE + SIGMA * normal01(&s);
        double b = SIGMA * normal01(&s);
        if (fabs(a) > BOX || fabs(b) > BOX) continue;
        theta[2 * i] = a;
        theta[2 * i + 1] = b;
        i++;
    }
    if (log_likelihood(theta, m, 2, log_p, NULL) != 0) exit(1);
    CHECK(lwf_model_log_prob(model, theta, 2 * m, log_q, m));
    for (size_t i = 0; i < m; i++) kl += log_p[i] - log_q[i];
    free(theta);
    free(log_p);
    free(log_q);
    return kl / (double)m;
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    const size_t n = quick ? 2000 : 20000, dim = 2;

    if (lwf_version() != LWFLOW_VERSION) {
        fprintf(stderr, "header %d does not match library %s\n", LWFLOW_VERSION,
                lwf_version_string());
        return 1;
    }

    /* 1. Shape (dim, width, couplings; the base comes from the config) and configuration. */
    LwfShape shape;
    CHECK(lwf_shape_default(dim, 32, 4, &shape));
    LwfFitConfig config;
    CHECK(lwf_fit_config_default(&config)); /* automatic GMM base, K <= 8 by BIC */
    config.max_epochs = quick ? 2 : 40;
    config.sample_seed = 42;
    config.init_seed = 1;
    config.likelihood_batch = 1000;

    /* 2. Memory: the model (sized for the largest K the config allows) and the fit's work. */
    size_t mem_len, work_len;
    CHECK(lwf_fit_model_size(&shape, &config, &mem_len));
    CHECK(lwf_fit_work_size(&shape, &config, n, &work_len));
    void *mem = malloc(mem_len), *work = malloc(work_len); /* malloc: 8-byte aligned */
    if (!mem || !work) return 1;
    printf("model memory %zu bytes, work memory %zu bytes\n", mem_len, work_len);

    /* 3. The fit. */
    const double lo[2] = {-BOX, -BOX}, hi[2] = {BOX, BOX};
    LikelihoodStats calls = {0, 0};
    size_t epochs_seen = 0;
    LwfFitReport report;
    LwfModel *model = NULL;
    CHECK(lwf_model_fit_prior_box(mem, mem_len, &shape, &config, lo, 2, hi, 2, n,
                                  log_likelihood, &calls, progress, &epochs_seen, work, work_len,
                                  &report, &model));
    free(work); /* scratch: the model lives in mem alone */
    printf("likelihood: %zu calls, %zu points; ESS %.1f, log-evidence %.4f\n", calls.calls,
           calls.points, report.ess, report.log_mean_weight);
    printf("base: K = %zu by BIC (EM %zu iterations, BIC %.1f)\n", report.components,
           report.em_iterations, report.em_bic);
    printf("training: %zu epochs (best %zu, stop reason %d), %llu steps (%llu skipped), "
           "validation loss %.4f -> %.4f\n",
           report.epochs, report.best_epoch, report.stop_reason,
           (unsigned long long)report.steps, (unsigned long long)report.skipped_steps,
           report.initial_val_loss, report.best_val_loss);
    LwfShape fitted;
    CHECK(lwf_model_shape(model, &fitted));
    if (calls.points != n || epochs_seen != report.epochs || fitted.components != report.components)
        return 1;
    if (fitted.bounded != 1) return 1; /* on the prior box */

    const size_t n_exact = quick ? 2000 : 20000;
    double kl = kl_exact(model, n_exact, 7);
    printf("KL(p||q) = %.5f\n", kl);

    /* 4. Save, reload into fresh memory, compare log_prob bit for bit. */
    size_t bytes_len, written, mem2_len;
    CHECK(lwf_shape_serialized_size(&fitted, &bytes_len));
    uint8_t *bytes = malloc(bytes_len);
    if (!bytes) return 1;
    CHECK(lwf_model_save(model, bytes, bytes_len, &written));
    LwfShape loaded_shape;
    CHECK(lwf_model_inspect(bytes, written, &loaded_shape));
    CHECK(lwf_shape_model_size(&loaded_shape, &mem2_len));
    void *mem2 = malloc(mem2_len);
    if (!mem2) return 1;
    LwfModel *reloaded = NULL;
    CHECK(lwf_model_load(mem2, mem2_len, bytes, written, &reloaded));
    enum { N_CHECK = 256, N_SAMPLES = 4000 };
    static double grid[N_CHECK * 2], lq1[N_CHECK], lq2[N_CHECK];
    for (size_t i = 0; i < N_CHECK; i++) {
        grid[2 * i] = -BOX + 2.0 * BOX * (double)(i % 16) / 15.0;
        grid[2 * i + 1] = -BOX + 2.0 * BOX * (double)(i / 16) / 15.0;
    }
    CHECK(lwf_model_log_prob(model, grid, 2 * N_CHECK, lq1, N_CHECK));
    CHECK(lwf_model_log_prob(reloaded, grid, 2 * N_CHECK, lq2, N_CHECK));
    int identical = memcmp(lq1, lq2, sizeof lq1) == 0;
    printf("reloaded model: log_prob %s\n", identical ? "identical" : "DIFFERENT");

    /* 5. Sample from the reloaded model. */
    static double samples[N_SAMPLES * 2], sample_log_q[N_SAMPLES];
    LwfRng sampler;
    CHECK(lwf_rng_init(&sampler, 3));
    CHECK(lwf_model_sample(reloaded, &sampler, samples, N_SAMPLES * 2, sample_log_q, N_SAMPLES));
    size_t left = 0, right = 0;
    for (size_t i = 0; i < N_SAMPLES; i++) {
        double a = samples[2 * i], b = samples[2 * i + 1];
        if (fabs(b) < 2.0 && fabs(a + MODE) < 2.0) left++;
        if (fabs(b) < 2.0 && fabs(a - MODE) < 2.0) right++;
    }
    printf("samples near the left / right mode: %.3f / %.3f\n", (double)left / N_SAMPLES,
           (double)right / N_SAMPLES);
    printf("RESULT kl=%.17g components=%zu epochs=%zu best_epoch=%zu steps=%llu ess=%.17g "
           "best_val_loss=%.17g\n",
           kl, report.components, report.epochs, report.best_epoch,
           (unsigned long long)report.steps, report.ess, report.best_val_loss);

    free(bytes);
    free(mem);
    free(mem2);
    if (!identical) return 1;
    if (!quick && !(kl < 0.05 && report.components == 2)) {
        fprintf(stderr, "FAIL: KL %.4f not below 0.05 or K %zu != 2\n", kl, report.components);
        return 1;
    }
    if (!quick && (left < N_SAMPLES / 3 || right < N_SAMPLES / 3)) {
        fprintf(stderr, "FAIL: samples do not cover both modes\n");
        return 1;
    }
    return 0;
}
