/* Train a likelihood-weighted flow on task 2D2 (docs/TASKS.md) from C, with the C ABI's
 * training pieces: prior samples and their log-likelihood in C, self-normalised weights by
 * log-sum-exp, a GMM(2) base placed by weighted k-means, then minibatch
 * lwf_model_loss_grad + lwf_model_adam_step. Checks KL(p||q) against the analytic posterior,
 * saves, reloads and checks the reloaded model gives bit-identical log_prob, and samples.
 *
 * Build (from the repository root, after `cargo build --release -p lwflow-ffi`):
 *   cc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/c/train_2d2.c \
 *      target/release/liblwflow.a -lm -lpthread -ldl -o train_2d2
 *   ./train_2d2            full budget (prints "RESULT kl=...", exit 0 if KL < 0.05)
 *   ./train_2d2 quick      a few steps only (for valgrind), no accuracy check
 *
 * The procedure is mirrored step for step by ffi/tests/c_program.rs through the Rust API, which
 * must reach the same KL. */
#include "common_2d2.h"

#include <string.h>

/* log of the equal mixture of N((+-MODE, 0, ..), SIGMA^2 I): the 2D2 (and 3D2) likelihood,
 * which is also the exact posterior density (the box truncates < 1e-8 of its mass). */
static int log_likelihood(const double *theta, size_t n, size_t dim, double *out_loglik,
                          void *user) {
    (void)user;
    double mu_left[8] = {0}, mu_right[8] = {0};
    if (dim > 8) return 1;
    mu_left[0] = -MODE;
    mu_right[0] = MODE;
    for (size_t i = 0; i < n; i++) {
        double a = log_normal_iso(theta + i * dim, mu_left, dim, SIGMA);
        double b = log_normal_iso(theta + i * dim, mu_right, dim, SIGMA);
        double m = a > b ? a : b;
        out_loglik[i] = m + log(0.5 * exp(a - m) + 0.5 * exp(b - m));
    }
    return 0;
}

/* Self-normalised weights with mean 1: w_i = N exp(l_i - logsumexp(l)). */
static void normalise_weights(const double *log_lik, size_t n, double *w) {
    double m = -INFINITY, s = 0.0;
    for (size_t i = 0; i < n; i++) m = log_lik[i] > m ? log_lik[i] : m;
    for (size_t i = 0; i < n; i++) s += exp(log_lik[i] - m);
    for (size_t i = 0; i < n; i++) w[i] = (double)n * exp(log_lik[i] - m) / s;
}

/* Weighted k-means with K = 2 (farthest-point seeding, then Lloyd): the mixture base's means
 * and weights. A stand-in for the library's EM fit (phase 2). */
static void kmeans2(const double *x, const double *w, size_t n, size_t dim, double *means,
                    double *shares) {
    size_t first = 0, second = 0;
    double best = -1.0;
    for (size_t i = 0; i < n; i++)
        if (w[i] > w[first]) first = i;
    for (size_t i = 0; i < n; i++) {
        double d2 = 0.0;
        for (size_t j = 0; j < dim; j++) {
            double u = x[i * dim + j] - x[first * dim + j];
            d2 += u * u;
        }
        if (w[i] * d2 > best) {
            best = w[i] * d2;
            second = i;
        }
    }
    memcpy(means, x + first * dim, dim * sizeof(double));
    memcpy(means + dim, x + second * dim, dim * sizeof(double));
    for (int iter = 0; iter < 20; iter++) {
        double sum[2][8] = {{0}}, mass[2] = {0, 0};
        for (size_t i = 0; i < n; i++) {
            double d[2] = {0, 0};
            for (size_t k = 0; k < 2; k++)
                for (size_t j = 0; j < dim; j++) {
                    double u = x[i * dim + j] - means[k * dim + j];
                    d[k] += u * u;
                }
            size_t k = d[1] < d[0] ? 1 : 0;
            mass[k] += w[i];
            for (size_t j = 0; j < dim; j++) sum[k][j] += w[i] * x[i * dim + j];
        }
        for (size_t k = 0; k < 2; k++) {
            if (mass[k] > 0.0)
                for (size_t j = 0; j < dim; j++) means[k * dim + j] = sum[k][j] / mass[k];
            shares[k] = mass[k] / (mass[0] + mass[1]);
        }
    }
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
    const size_t n = quick ? 2000 : 20000; /* prior samples */
    const size_t batch = 500;
    const size_t epochs = quick ? 1 : 40;
    const size_t dim = 2;
    uint64_t rng = 42;

    if (lwf_version() != LWFLOW_VERSION) {
        fprintf(stderr, "header %d does not match library %s\n", LWFLOW_VERSION,
                lwf_version_string());
        return 1;
    }

    /* 1. Prior samples, log-likelihoods, weights. */
    double *theta = malloc(n * dim * sizeof(double));
    double *log_lik = malloc(n * sizeof(double));
    double *weights = malloc(n * sizeof(double));
    if (!theta || !log_lik || !weights) return 1;
    for (size_t i = 0; i < n * dim; i++) theta[i] = -BOX + 2.0 * BOX * uniform01(&rng);
    if (log_likelihood(theta, n, dim, log_lik, NULL) != 0) return 1;
    normalise_weights(log_lik, n, weights);
    double sw = 0.0, sw2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        sw += weights[i];
        sw2 += weights[i] * weights[i];
    }
    printf("prior samples %zu, ESS %.0f\n", n, sw * sw / sw2);

    /* 2. A model with a GMM(2) base, in memory we allocate. */
    LwfShape shape;
    CHECK(lwf_shape_default(dim, 32, 4, &shape));
    shape.base = LWF_BASE_MIXTURE;
    shape.components = 2;
    CHECK(lwf_shape_validate(&shape));
    size_t mem_len, n_params;
    CHECK(lwf_shape_model_size(&shape, &mem_len));
    CHECK(lwf_shape_param_count(&shape, &n_params));
    void *mem = malloc(mem_len); /* malloc's alignment suffices: lwf_model_align() == 8 */
    if (!mem || (uintptr_t)mem % lwf_model_align() != 0) return 1;
    LwfModel *model = NULL;
    CHECK(lwf_model_init(mem, mem_len, &shape, 1, &model));
    printf("model: %zu parameters, %zu bytes\n", n_params, mem_len);

    /* 3. Base components on the weighted k-means clusters (in theta coordinates), unit scales:
     * training learns the widths. */
    double means[4], shares[2], scales[4] = {1.0, 1.0, 1.0, 1.0};
    kmeans2(theta, weights, n, dim, means, shares);
    CHECK(lwf_model_set_mixture_base(model, shares, 2, means, 4, scales, 4));
    printf("k-means: (%.3f, %.3f) w %.3f, (%.3f, %.3f) w %.3f\n", means[0], means[1], shares[0],
           means[2], means[3], shares[1]);
    const size_t n_exact = quick ? 2000 : 20000; /* exact posterior samples for KL */
    double kl_start = kl_exact(model, n_exact, 7);

    /* 4. Minibatch training: shuffle, loss + gradient, Adam step. */
    LwfAdam adam;
    CHECK(lwf_adam_default(&adam));
    adam.lr = 2e-3;
    size_t *order = malloc(n * sizeof(size_t));
    double *grad = malloc(n_params * sizeof(double));
    double *theta_b = malloc(batch * dim * sizeof(double));
    double *w_b = malloc(batch * sizeof(double));
    if (!order || !grad || !theta_b || !w_b) return 1;
    for (size_t i = 0; i < n; i++) order[i] = i;
    size_t steps = 0, skipped = 0;
    double loss = 0.0;
    for (size_t epoch = 0; epoch < epochs; epoch++) {
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)(uniform01(&rng) * (double)(i + 1));
            size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t start = 0; start + batch <= n; start += batch) {
            for (size_t b = 0; b < batch; b++) {
                size_t i = order[start + b];
                memcpy(theta_b + b * dim, theta + i * dim, dim * sizeof(double));
                w_b[b] = weights[i];
            }
            LwfStatus s = lwf_model_loss_grad(model, theta_b, batch * dim, w_b, batch, grad,
                                              n_params, &loss);
            if (s == LWF_OK) s = lwf_model_adam_step(model, &adam, grad, n_params);
            if (s == LWF_NON_FINITE) {
                skipped++; /* an overflowing step is skipped, as the library's trainer will */
                continue;
            }
            CHECK(s);
            steps++;
        }
    }
    double kl = kl_exact(model, n_exact, 7);
    printf("steps %zu (skipped %zu), last loss %.4f\n", steps, skipped, loss);
    printf("KL(p||q): %.4f before training, %.4f after\n", kl_start, kl);

    /* 5. Save, reload into fresh memory, compare log_prob bit for bit. */
    size_t bytes_len, written;
    CHECK(lwf_shape_serialized_size(&shape, &bytes_len));
    uint8_t *bytes = malloc(bytes_len);
    if (!bytes) return 1;
    CHECK(lwf_model_save(model, bytes, bytes_len, &written));
    LwfShape loaded_shape;
    CHECK(lwf_model_inspect(bytes, written, &loaded_shape));
    size_t mem2_len;
    CHECK(lwf_shape_model_size(&loaded_shape, &mem2_len));
    void *mem2 = malloc(mem2_len);
    if (!mem2) return 1;
    LwfModel *reloaded = NULL;
    CHECK(lwf_model_load(mem2, mem2_len, bytes, written, &reloaded));
    double lq1[64], lq2[64];
    CHECK(lwf_model_log_prob(model, theta, 64 * dim, lq1, 64));
    CHECK(lwf_model_log_prob(reloaded, theta, 64 * dim, lq2, 64));
    int identical = memcmp(lq1, lq2, sizeof lq1) == 0;
    printf("reloaded model: log_prob %s\n", identical ? "identical" : "DIFFERENT");

    /* 6. Sample from the trained flow. */
    enum { N_SAMPLES = 4000 };
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
    printf("RESULT kl=%.17g kl_start=%.17g steps=%zu skipped=%zu\n", kl, kl_start, steps,
           skipped);

    free(theta);
    free(log_lik);
    free(weights);
    free(order);
    free(grad);
    free(theta_b);
    free(w_b);
    free(bytes);
    free(mem);
    free(mem2);
    if (!identical) return 1;
    if (!quick && !(kl < 0.05 && kl < kl_start)) {
        fprintf(stderr, "FAIL: KL %.4f not below 0.05 (start %.4f)\n", kl, kl_start);
        return 1;
    }
    if (!quick && (left < N_SAMPLES / 3 || right < N_SAMPLES / 3)) {
        fprintf(stderr, "FAIL: samples do not cover both modes\n");
        return 1;
    }
    return 0;
}
