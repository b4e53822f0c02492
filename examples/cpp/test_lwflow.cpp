// The C++17 wrapper include/lwflow.hpp in use: trains task 2D2 with a C++ likelihood (a lambda),
// checks KL(p||q), save / load, the error mapping (exceptions and std::error_code), moves,
// spans over std::vector / std::array / C arrays, and the thread-safe const members; then fits
// 2D2 in one call (lwflow::fit_prior_box with lambdas as likelihood and progress callbacks,
// lwflow::fit_samples), including an exception thrown by the likelihood and a cancel; then
// refines 2D2 (lwflow::refinement: ask / tell, run with callables from a byte copy, bit for bit
// the same, an exception and a stop from the callables).
//
//   c++ -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror -Iinclude examples/cpp/test_lwflow.cpp
//       target/release/liblwflow.a -lpthread -ldl -lm -o test_lwflow && ./test_lwflow
#include "lwflow.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char *what, int line) {
    if (!ok) {
        ++failures;
        std::printf("FAIL line %d: %s\n", line, what);
    }
}
#define EXPECT(cond) expect((cond), #cond, __LINE__)

// Runs f, which must throw lwflow::error with the given status.
template <class F>
void expect_throws(LwfStatus want, F f, int line) {
    try {
        f();
        expect(false, "no exception", line);
    } catch (const lwflow::error &e) {
        expect(e.code() == want, e.what(), line);
        expect(e.status() == want, "status()", line);
    }
}
#define EXPECT_THROWS(status, ...) expect_throws((status), [&] { __VA_ARGS__; }, __LINE__)

constexpr double kPi = 3.14159265358979323846;

}  // namespace

int main() {
    // The 2D2 likelihood: equal mixture of N((+-2.5, 0), 0.6^2 I); also the exact posterior.
    auto log_likelihood = [](const double *theta) {
        auto comp = [&](double mu) {
            double a = (theta[0] - mu) / 0.6, b = theta[1] / 0.6;
            return -0.5 * (a * a + b * b) - 2.0 * std::log(0.6) - std::log(2.0 * kPi);
        };
        double l = comp(-2.5), r = comp(2.5), m = std::max(l, r);
        return m + std::log(0.5 * std::exp(l - m) + 0.5 * std::exp(r - m));
    };

    std::mt19937_64 gen(2024);
    std::uniform_real_distribution<double> prior(-6.0, 6.0);
    const std::size_t n = 12000, dim = 2;
    std::vector<double> theta(n * dim), log_w(n), w(n);
    for (double &t : theta) t = prior(gen);
    for (std::size_t i = 0; i < n; ++i) log_w[i] = log_likelihood(&theta[i * dim]);
    const double max_l = *std::max_element(log_w.begin(), log_w.end());
    double sum = 0.0;
    for (double l : log_w) sum += std::exp(l - max_l);
    for (std::size_t i = 0; i < n; ++i) w[i] = double(n) * std::exp(log_w[i] - max_l) / sum;

    lwflow::shape shape(2, 32, 4);
    shape.mixture(2);
    shape.validate();
    lwflow::model model(shape, 7);
    EXPECT(model.param_count() == shape.param_count());
    EXPECT(model.shape().components == 2);
    // Base at the modes' rough location (what the library's EM fit will do in phase 2).
    const std::array<double, 2> shares{0.5, 0.5};
    const std::array<double, 4> means{-2.4, 0.1, 2.4, -0.1};
    const double scales[4] = {1.0, 1.0, 1.0, 1.0};
    model.set_mixture_base(shares, means, scales);

    // Exact posterior samples for KL(p||q).
    std::vector<double> exact(2 * 10000), log_p(10000);
    std::normal_distribution<double> normal(0.0, 0.6);
    std::bernoulli_distribution coin(0.5);
    for (std::size_t i = 0; i < log_p.size(); ++i) {
        exact[2 * i] = (coin(gen) ? 2.5 : -2.5) + normal(gen);
        exact[2 * i + 1] = normal(gen);
        log_p[i] = log_likelihood(&exact[2 * i]);
    }
    auto kl = [&](lwflow::model &m) {
        std::vector<double> log_q = m.log_prob(exact);
        double s = 0.0;
        for (std::size_t i = 0; i < log_q.size(); ++i) s += log_p[i] - log_q[i];
        return s / double(log_q.size());
    };
    const double kl_start = kl(model);

    // Minibatch training with the non-throwing overloads: a non-finite step is skipped.
    lwflow::adam adam;
    adam.learning_rate(2e-3);
    const std::size_t batch = 400;
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::vector<double> theta_b(batch * dim), w_b(batch), grad(model.param_count());
    std::size_t steps = 0, skipped = 0;
    for (int epoch = 0; epoch < 30; ++epoch) {
        std::shuffle(order.begin(), order.end(), gen);
        for (std::size_t start = 0; start + batch <= n; start += batch) {
            for (std::size_t b = 0; b < batch; ++b) {
                std::size_t i = order[start + b];
                theta_b[b * dim] = theta[i * dim];
                theta_b[b * dim + 1] = theta[i * dim + 1];
                w_b[b] = w[i];
            }
            std::error_code ec;
            model.loss_grad(theta_b, w_b, grad, ec);
            if (!ec) model.adam_step(adam, grad, ec);
            if (ec == LWF_NON_FINITE) {
                ++skipped;
                continue;
            }
            if (ec) throw lwflow::error(static_cast<LwfStatus>(ec.value()), "training");
            ++steps;
        }
    }
    const double kl_end = kl(model);
    std::printf("C++: %zu steps (%zu skipped), KL(p||q) %.4f -> %.4f\n", steps, skipped,
                kl_start, kl_end);
    EXPECT(kl_end < 0.05 && kl_end < kl_start);

    // Save / load: identical densities; a move leaves the source empty.
    std::vector<std::uint8_t> bytes = model.save();
    lwflow::model loaded = lwflow::model::load(bytes);
    EXPECT(loaded.log_prob(exact) == model.log_prob(exact));
    lwflow::model moved = std::move(loaded);
    EXPECT(loaded.handle() == nullptr && moved.handle() != nullptr);
    EXPECT_THROWS(LWF_NULL_POINTER, loaded.log_prob(exact));
    moved = lwflow::model(shape, 8);  // move assignment frees the old memory
    EXPECT(moved.params() != model.params());

    // Sampling, and the const members from several threads with their own workspaces.
    lwflow::rng r(5);
    std::vector<double> samples(2 * 2000), sample_log_q(2000);
    model.sample(r, samples, sample_log_q);
    const lwflow::model &shared = model;
    std::vector<double> want(log_p.size());
    model.log_prob(exact, want);
    std::vector<std::thread> threads;
    std::vector<int> same(4, 0);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::vector<double> ws(shape.workspace_count()), out(log_p.size());
            shared.log_prob(exact, out, ws);
            same[t] = out == want;
        });
    }
    for (auto &t : threads) t.join();
    EXPECT(std::all_of(same.begin(), same.end(), [](int s) { return s == 1; }));
    std::vector<double> ws(shape.workspace_count()), s2(2 * 2000), lq2(2000);
    lwflow::rng r2(5);
    shared.sample(r2, s2, lq2, ws);
    EXPECT(s2 == samples && lq2 == sample_log_q);
    r2.jump();
    EXPECT(r2.state().state[0] != r.state().state[0]);

    // Errors: exceptions with the status as a std::error_code, and the error_code overloads.
    std::vector<double> odd(3);
    EXPECT_THROWS(LWF_LENGTH_MISMATCH, model.log_prob(odd));
    EXPECT_THROWS(LWF_INVALID_SHAPE, lwflow::shape(1, 8, 2));
    EXPECT_THROWS(LWF_INVALID_ARGUMENT, model.set_gaussian_base(means, scales));
    std::vector<std::uint8_t> corrupt = bytes;
    corrupt[60] ^= 1;
    EXPECT_THROWS(LWF_BAD_FORMAT, lwflow::model::load(corrupt));
    EXPECT_THROWS(LWF_BAD_FORMAT, lwflow::model::load(lwflow::span<const std::uint8_t>()));
    grad[0] = std::nan("");
    std::error_code ec;
    model.adam_step(adam, grad, ec);
    EXPECT(ec == LWF_NON_FINITE);
    EXPECT(ec.category().name() == std::string("lwflow"));
    EXPECT(ec.message() == lwf_status_message(LWF_NON_FINITE));
    std::error_code from_enum = LWF_BAD_FORMAT;
    EXPECT(from_enum.value() == 12);
    double acc_loss = 0.0;
    std::vector<double> acc(model.param_count(), 0.0);
    model.loss_grad_accumulate(theta_b, w_b, 1.0 / double(batch), acc, acc_loss);
    std::vector<double> full(model.param_count());
    const double full_loss = model.loss_grad(theta_b, w_b, full);
    EXPECT(std::abs(acc_loss - full_loss) < 1e-12);
    model.adam_reset();
    std::vector<double> p = model.params();
    model.set_params(p);
    EXPECT(model.params() == p);
    lwflow::model gaussian(lwflow::shape(3, 8, 2).tanh().with_clamp(2.0), 1);
    const std::vector<double> loc{0.0, 1.0, 2.0}, sd{1.0, 1.0, 0.5};
    gaussian.set_gaussian_base(loc, sd);
    EXPECT(gaussian.shape().activation == LWF_ACTIVATION_TANH);

    // ---- The one-call fit, with the likelihood as a callable over spans of a batch ----
    auto batched = [&](lwflow::span<const double> t, lwflow::span<double> out) {
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = log_likelihood(&t[i * dim]);
    };
    const std::array<double, 2> lo{-6.0, -6.0}, hi{6.0, 6.0};
    lwflow::fit_config cfg;
    cfg.automatic(3).epochs(20).seeds(11, 3);
    std::size_t epochs_seen = 0;
    lwflow::fit_result fitted =
        lwflow::fit_prior_box(lwflow::shape(2, 32, 4), cfg, lo, hi, 12000, batched,
                              [&](const LwfEpochReport &r) { return ++epochs_seen == r.epoch; });
    const double kl_fit = kl(fitted.model);
    std::printf("C++ fit: K = %zu, %zu epochs, KL(p||q) %.4f\n", fitted.report.components,
                fitted.report.epochs, kl_fit);
    EXPECT(kl_fit < 0.05 && fitted.report.components == 2 && !fitted.cancelled());
    EXPECT(epochs_seen == fitted.report.epochs && fitted.model.shape().components == 2);
    // An exception in the likelihood stops the fit and comes out of the call unchanged.
    try {
        lwflow::fit_prior_box(shape, cfg, lo, hi, 1000, [](auto, auto) {
            throw std::runtime_error("likelihood exploded");
        });
        EXPECT(false);
    } catch (const std::runtime_error &e) {
        EXPECT(std::string(e.what()) == "likelihood exploded");
    }
    // NaN under the default policy is a failed callback.
    EXPECT_THROWS(LWF_CALLBACK_FAILED,
                  lwflow::fit_prior_box(shape, cfg, lo, hi, 1000, [](auto, auto out) {
                      for (double &o : out) o = std::nan("");
                  }));
    // Cancelling from the progress callable gives the best model so far, not an exception.
    lwflow::fit_result stopped = lwflow::fit_prior_box(
        shape, cfg, lo, hi, 4000, batched, [](const LwfEpochReport &r) { return r.epoch < 2; });
    EXPECT(stopped.cancelled() && stopped.report.epochs == 2);
    EXPECT(std::isfinite(stopped.model.log_prob(exact)[0]));
    // The samples entry point, on the prior samples and log-likelihoods above.
    lwflow::fit_result from_samples = lwflow::fit_samples(shape, cfg, theta, log_w);
    EXPECT(from_samples.model.shape().components == from_samples.report.components);
    EXPECT(from_samples.report.n_samples == n);
    // The box: the prior-box fit lives on it by default; the samples fit on a box given.
    EXPECT(fitted.model.shape().bounded == 1 && from_samples.model.shape().bounded == 0);
    const std::array<double, 2> wide_lo{-6.5, -6.5}, wide_hi{6.5, 6.5};
    lwflow::fit_result in_box =
        lwflow::fit_samples_in_box(shape, cfg, wide_lo, wide_hi, theta, log_w);
    EXPECT(in_box.model.shape().bounded == 1 && in_box.report.n_samples == n);
    const double q_outside = in_box.model.log_prob(std::vector<double>{6.6, 0.0})[0];
    EXPECT(std::isinf(q_outside) && q_outside < 0.0);
    lwflow::fit_config unbounded = cfg;
    unbounded.with_bounded(false);
    EXPECT(lwflow::fit_prior_box(shape, unbounded, lo, hi, 4000, batched).model.shape().bounded ==
           0);
    EXPECT_THROWS(LWF_INVALID_ARGUMENT,
                  lwflow::fit_samples_in_box(shape, cfg, wide_hi, wide_lo, theta, log_w));
    lwflow::fit_config bad = cfg;
    bad.lr = -1.0;
    EXPECT_THROWS(LWF_INVALID_ARGUMENT, lwflow::fit_samples(shape, bad, theta, log_w));

    // ---- Resumable fits: checkpoints after the samples and every epoch; resumed from one ----
    {
        std::vector<std::vector<std::uint8_t>> saved;
        auto save = [&](lwflow::span<const std::uint8_t> b, std::size_t epoch) {
            saved.emplace_back(b.begin(), b.end());
            return epoch + 1 == saved.size();
        };
        lwflow::fit_result whole =
            lwflow::fit_prior_box_resumable(shape, cfg, lo, hi, 2000, batched, save);
        const lwflow::fit_result plain = lwflow::fit_prior_box(shape, cfg, lo, hi, 2000, batched);
        EXPECT(whole.model.params() == plain.model.params());
        EXPECT(saved.size() == whole.report.epochs + 1);
        EXPECT(lwflow::checkpoint_info(saved.back()).epoch == whole.report.epochs);
        std::size_t later = 0;
        const lwflow::fit_result back =
            lwflow::fit_resume(saved[1], [&](lwflow::span<const std::uint8_t>, std::size_t) {
                return ++later > 0;
            });
        EXPECT(back.model.params() == whole.model.params() && later + 1 == whole.report.epochs);
        EXPECT(lwflow::fit_resume(saved[0]).model.params() == whole.model.params());
        std::vector<std::uint8_t> broken = saved[1];
        broken[broken.size() / 2] ^= 1;
        EXPECT_THROWS(LWF_BAD_FORMAT, lwflow::fit_resume(broken));
        broken.resize(saved[1].size() - 1);
        EXPECT_THROWS(LWF_BAD_FORMAT, lwflow::checkpoint_info(broken));
        // Stopped at the samples checkpoint: no model yet, an error.
        EXPECT_THROWS(LWF_CANCELLED,
                      lwflow::fit_samples_resumable(
                          shape, cfg, {}, {}, theta, log_w,
                          [](lwflow::span<const std::uint8_t>, std::size_t) { return false; }));
        saved.clear();
        const lwflow::fit_result samples =
            lwflow::fit_samples_resumable(shape, cfg, {}, {}, theta, log_w, save);
        EXPECT(samples.model.params() == from_samples.model.params());
    }

    // ---- The refinement: ask / tell with the likelihood, run from a byte copy ----
    {
        lwflow::refine_config rcfg(2);
        EXPECT(rcfg.max_kl == 0.005 && lwflow::refine_config(4).max_kl == 0.02);
        EXPECT(lwflow::refine_config(2).kl_target(0.01).max_kl == 0.01);
        rcfg.round_sizes(500, 1000, 500).budget(6000).epochs(10).components(3).target(2000);
        const lwflow::shape rshape(2, 16, 4);
        lwflow::refinement ref(rshape, lo, hi, rcfg);
        EXPECT(ref.running() && ref.batch_capacity() == 1000 && ref.dim() == 2);
        std::optional<lwflow::refinement> copy;
        std::size_t rounds = 0;
        while (ref.running()) {
            const std::vector<double> t = ref.ask();
            std::vector<double> ll(t.size() / 2);
            batched(t, ll);
            const LwfRefineRound r = ref.tell(ll);
            EXPECT(r.round == rounds++ && r.calls <= 6000);
            if (r.round == 0) copy.emplace(ref.copy());
        }
        const LwfRefineReport rep = ref.report();
        const double log_z_true = -2.0 * std::log(12.0);
        std::printf("C++ refinement: status %d, %zu rounds, %zu calls, ln Z %.4f +- %.4f (%.4f)\n",
                    rep.status, rep.rounds, rep.calls, rep.log_z, rep.log_z_se, log_z_true);
        EXPECT(rep.rounds == rounds && rep.calls <= 6000);
        EXPECT(std::abs(rep.log_z - log_z_true) < 0.1);
        lwflow::model rm = ref.model();
        EXPECT(rm.shape().bounded == 1 && rm.shape().affine == 1);
        const std::vector<double> probe{0.0, 0.0, 7.0, 0.0};
        const std::vector<double> lq = rm.log_prob(probe);
        EXPECT(std::isfinite(lq[0]) && lq[1] == -std::numeric_limits<double>::infinity());
        // "Can I trust this q?": fresh draws of the returned model, their likelihoods and the
        // uniform prior give the importance diagnostics (an unbiased ln Z-hat, k-hat, KL).
        {
            const std::size_t m = 4000;
            std::vector<double> qt(2 * m), qlq(m), qll(m), lw(m);
            lwflow::rng qr(99);
            rm.sample(qr, qt, qlq);
            batched(qt, qll);
            for (std::size_t i = 0; i < m; ++i) lw[i] = qll[i] + log_z_true - qlq[i];
            const LwfImportanceSummary is = lwflow::importance_summary(lw);
            std::printf("C++ diagnostics of the refined q: ln Z %.4f +- %.4f, ESS %.0f, KL %.4f, "
                        "k-hat %.2f\n", is.log_z, is.log_z_se, is.ess, is.kl, is.k_hat);
            EXPECT(is.n == m && std::abs(is.log_z - log_z_true) < 4.0 * is.log_z_se + 0.01);
            EXPECT(is.has_k_hat == 1 && is.k_hat < 0.7 && is.kl < 0.05 && is.ess > 0.8 * m);
            lw[0] = std::nan("");
            EXPECT_THROWS(LWF_NON_FINITE, lwflow::importance_summary(lw));
        }
        // The callback form from the copy taken after round 0: the same result, bit for bit.
        std::size_t seen = 0;
        EXPECT(copy->run(batched, 300, [&](const LwfRefineRound &) { return ++seen > 0; }));
        const LwfRefineReport rep2 = copy->report();
        EXPECT(std::memcmp(&rep, &rep2, sizeof rep) == 0 && seen + 1 == rounds);
        EXPECT(copy->model().params() == rm.params());
        // A checkpoint restored in new memory: the same refinement; corrupted: refused.
        const std::vector<std::uint8_t> bytes = ref.checkpoint();
        const lwflow::refinement restored = lwflow::refinement::restore(bytes, 2);
        const LwfRefineReport rep3 = restored.report();
        EXPECT(std::memcmp(&rep, &rep3, sizeof rep) == 0 && restored.dim() == 2);
        EXPECT(restored.model().params() == rm.params());
        std::vector<std::uint8_t> corrupted = bytes;
        corrupted[corrupted.size() / 3] ^= 0x40;
        EXPECT_THROWS(LWF_BAD_FORMAT, lwflow::refinement::restore(corrupted, 2));
        EXPECT_THROWS(LWF_LENGTH_MISMATCH, lwflow::refinement::restore(bytes, 3));
        // An exception in the likelihood comes out unchanged; a stop from progress returns
        // false; both leave the refinement running.
        lwflow::refinement fresh(rshape, lo, hi, rcfg);
        try {
            fresh.run([](auto, auto) { throw std::runtime_error("likelihood exploded"); });
            EXPECT(false);
        } catch (const std::runtime_error &e) {
            EXPECT(std::string(e.what()) == "likelihood exploded");
        }
        EXPECT(fresh.running());
        EXPECT(!fresh.run(batched, 4096, [](const LwfRefineRound &) { return false; }));
        EXPECT(fresh.running());
        EXPECT_THROWS(LWF_INVALID_ARGUMENT, fresh.report());
        const std::vector<double> batch = fresh.ask();
        EXPECT_THROWS(LWF_LENGTH_MISMATCH, fresh.tell(std::vector<double>(batch.size() / 2 + 1)));
        lwflow::refinement moved = std::move(fresh);
        EXPECT(moved.running() && moved.ask() == batch);
        lwflow::refine_config bad_cfg(2);
        bad_cfg.ess_fraction = 1.5;
        EXPECT_THROWS(LWF_INVALID_ARGUMENT, lwflow::refinement(rshape, lo, hi, bad_cfg));
    }

    std::printf("RESULT kl=%.6f fit_kl=%.6f failures=%d\n", kl_end, kl_fit, failures);
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
