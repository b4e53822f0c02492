// lwflow.hpp: a header-only C++17 wrapper over the C ABI in lwflow.h.
// SPDX-License-Identifier: MIT OR Apache-2.0
//
// - lwflow::model owns the memory of one model (RAII: freed with the object; movable, not
//   copyable: copy through save() / model::load()).
// - Failures throw lwflow::error, a std::system_error whose code() is in lwflow's error
//   category, so `e.code() == LWF_BAD_FORMAT` works (LwfStatus is a std::error_code enum).
//   The two calls a training loop expects to fail now and then (loss_grad, adam_step with
//   LWF_NON_FINITE) also have std::error_code overloads that do not throw.
// - Buffers are passed as lwflow::span<T> (pointer + length, like C++20 std::span), which
//   converts from std::vector, std::array and C arrays.
// - lwflow::fit_prior_box / lwflow::fit_samples / lwflow::fit_samples_in_box run the one-call
//   fit with C++ callables as the likelihood and progress callbacks; an exception thrown by one of them stops the fit and is
//   rethrown from the call (it never unwinds through the C library). They return the model
//   and the report (fit_result); a fit stopped by the progress callback is not an error.
// - lwflow::fit_prior_box_resumable / lwflow::fit_samples_resumable hand a C++ callable the
//   checkpoint bytes after the samples and after every epoch; lwflow::fit_resume finishes a fit
//   from them bit-identically, without a likelihood call.
// - lwflow::refinement owns the work memory of an adaptive refinement (lwf_refine_*): ask() /
//   tell() rounds, or run() with C++ callables; report() and model() at the end; copy() gives
//   a byte copy that continues identically; checkpoint() / restore() the same as checksummed
//   bytes.
// - Nothing here has global state except the error category object, as in the standard
//   library. One model must not be used by two threads at once, except through the const
//   members taking a workspace; a non-const member called while another runs on the same
//   model throws lwflow::error with code() == LWF_BUSY (the model is unchanged).
// - No call returns normally with a NaN or infinite output (except log q = -inf outside the
//   box of a bounded model): a result that overflowed throws lwflow::error with
//   code() == LWF_NON_FINITE.
#ifndef LWFLOW_HPP
#define LWFLOW_HPP

#include "lwflow.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace lwflow {

/// The error category of LwfStatus codes; messages come from lwf_status_message.
class status_category_t final : public std::error_category {
public:
    const char *name() const noexcept override { return "lwflow"; }
    std::string message(int code) const override { return lwf_status_message(code); }
};

inline const std::error_category &status_category() noexcept {
    static const status_category_t category;
    return category;
}

}  // namespace lwflow

/// Found by argument-dependent lookup for the C enum LwfStatus (global namespace).
inline std::error_code make_error_code(LwfStatus status) noexcept {
    return {static_cast<int>(status), lwflow::status_category()};
}

namespace std {
template <>
struct is_error_code_enum<LwfStatus> : true_type {};
}  // namespace std

namespace lwflow {

/// Thrown for every status other than LWF_OK; what() names the failing C function.
class error : public std::system_error {
public:
    error(LwfStatus status, const char *function)
        : std::system_error(make_error_code(status), function) {}
    LwfStatus status() const noexcept { return static_cast<LwfStatus>(code().value()); }
};

/// Throws lwflow::error unless status is LWF_OK.
inline void check(LwfStatus status, const char *function) {
    if (status != LWF_OK) throw error(status, function);
}

/// A non-owning view of `size()` contiguous elements (C++20 std::span, reduced).
template <class T>
class span {
public:
    constexpr span() noexcept = default;
    constexpr span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <std::size_t N>
    constexpr span(T (&array)[N]) noexcept : data_(array), size_(N) {}
    /// From any contiguous container with data() and size() (std::vector, std::array, ...);
    /// a temporary container only for a view of const elements (valid for the full
    /// expression, as with std::span).
    template <class Container,
              class = std::enable_if_t<
                  std::is_convertible_v<decltype(std::declval<Container &>().data()), T *> &&
                  (std::is_const_v<T> || std::is_lvalue_reference_v<Container>)>>
    constexpr span(Container &&c) noexcept : data_(c.data()), size_(c.size()) {}
    /// A span of T converts to a span of const T.
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T>>>
    constexpr span(span<U> other) noexcept : data_(other.data()), size_(other.size()) {}

    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T *begin() const noexcept { return data_; }
    constexpr T *end() const noexcept { return data_ + size_; }
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }
    constexpr span subspan(std::size_t offset, std::size_t count) const noexcept {
        return span(data_ + offset, count);
    }

private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

/// LwfShape with the defaults of lwf_shape_default and fluent setters.
struct shape : LwfShape {
    shape(std::size_t dim, std::size_t hidden, std::size_t couplings) : LwfShape() {
        check(lwf_shape_default(dim, hidden, couplings, this), "lwf_shape_default");
    }
    explicit shape(const LwfShape &s) : LwfShape(s) {}

    shape &mixture(std::size_t k) { return base = LWF_BASE_MIXTURE, components = k, *this; }
    shape &gaussian() { return base = LWF_BASE_GAUSSIAN, components = 1, *this; }
    shape &standard_normal() { return base = LWF_BASE_STANDARD_NORMAL, components = 1, *this; }
    shape &tanh() { return activation = LWF_ACTIVATION_TANH, *this; }
    shape &relu() { return activation = LWF_ACTIVATION_RELU, *this; }
    shape &with_clamp(double c) { return clamp = c, *this; }
    shape &with_hidden_layers(std::size_t n) { return hidden_layers = n, *this; }
    /// Outer maps (set their values with model::set_affine / model::set_box).
    shape &with_affine(bool on = true) { return affine = on ? 1 : 0, *this; }
    shape &with_bounded(bool on = true) { return bounded = on ? 1 : 0, *this; }

    void validate() const { check(lwf_shape_validate(this), "lwf_shape_validate"); }
    std::size_t param_count() const {
        return query(lwf_shape_param_count, "lwf_shape_param_count");
    }
    std::size_t workspace_count() const {
        return query(lwf_shape_workspace_count, "lwf_shape_workspace_count");
    }
    std::size_t model_size() const { return query(lwf_shape_model_size, "lwf_shape_model_size"); }
    std::size_t serialized_size() const {
        return query(lwf_shape_serialized_size, "lwf_shape_serialized_size");
    }

private:
    std::size_t query(LwfStatus (*f)(const LwfShape *, std::size_t *), const char *name) const {
        std::size_t value = 0;
        check(f(this, &value), name);
        return value;
    }
};

/// Adam hyper-parameters, defaults from lwf_adam_default.
struct adam : LwfAdam {
    adam() : LwfAdam() { check(lwf_adam_default(this), "lwf_adam_default"); }
    adam &learning_rate(double value) { return lr = value, *this; }
    adam &with_weight_decay(double value) { return weight_decay = value, *this; }
};

/// LwfFitConfig with the defaults of lwf_fit_config_default and fluent setters for the usual
/// changes; every other field can be set directly.
struct fit_config : LwfFitConfig {
    fit_config() : LwfFitConfig() { check(lwf_fit_config_default(this), "lwf_fit_config_default"); }

    /// K chosen by BIC among 1..k_max (the default, k_max 8).
    fit_config &automatic(std::size_t k_max) { return set_base(LWF_FIT_BASE_AUTO, k_max); }
    /// k components fitted by weighted EM.
    fit_config &mixture(std::size_t k) { return set_base(LWF_FIT_BASE_MIXTURE, k); }
    /// k components initialised the paper's way (no EM).
    fit_config &paper_mixture(std::size_t k) { return set_base(LWF_FIT_BASE_PAPER_MIXTURE, k); }
    /// The trainable Gaussian base.
    fit_config &gaussian() { return set_base(LWF_FIT_BASE_GAUSSIAN, 1); }
    fit_config &epochs(std::size_t n) { return max_epochs = n, *this; }
    fit_config &learning_rate(double value) { return lr = value, *this; }
    fit_config &skip_non_finite() { return non_finite = LWF_NON_FINITE_SKIP, *this; }
    /// Whether a fit that knows a box (fit_prior_box, fit_samples_in_box) returns a model on
    /// it (the default) or an unbounded one.
    fit_config &with_bounded(bool on) { return bounded = on ? 1 : 0, *this; }
    /// Seeds of the prior draws and of the parameter initialisation.
    fit_config &seeds(std::uint64_t samples, std::uint64_t init) {
        return sample_seed = samples, init_seed = init, *this;
    }

private:
    fit_config &set_base(LwfFitBase b, std::size_t k) {
        return base = static_cast<std::int32_t>(b), components = k, *this;
    }
};

/// LwfRefineConfig with the defaults of lwf_refine_config_default(dim) and fluent setters for
/// the usual changes; every other field can be set directly.
struct refine_config : LwfRefineConfig {
    explicit refine_config(std::size_t dim) : LwfRefineConfig() {
        check(lwf_refine_config_default(dim, this), "lwf_refine_config_default");
    }
    /// The likelihood-call budget, round 0 included.
    refine_config &budget(std::size_t calls) { return max_calls = calls, *this; }
    /// Draws in round 0, in every later round and in a check round.
    refine_config &round_sizes(std::size_t initial, std::size_t per_round, std::size_t check) {
        return initial_samples = initial, samples_per_round = per_round,
               check_samples = check, *this;
    }
    /// K chosen by BIC among 1..k_max in every fit.
    refine_config &components(std::size_t k_max) { return max_components = k_max, *this; }
    refine_config &epochs(std::size_t n) { return max_epochs = n, *this; }
    refine_config &target(double ess) { return target_ess = ess, *this; }
    /// Accept a fit only when the KL(p||q) estimated from its check round is at most kl.
    refine_config &kl_target(double kl) { return max_kl = kl, *this; }
    refine_config &with_seed(std::uint64_t value) { return seed = value, *this; }
    refine_config &skip_non_finite() { return non_finite = LWF_NON_FINITE_SKIP, *this; }
    /// The outer maps of the proposals and the model (both on by default).
    refine_config &with_bounded(bool on) { return bounded = on ? 1 : 0, *this; }
    refine_config &with_affine(bool on) { return affine = on ? 1 : 0, *this; }
};

/// A caller-held xoshiro256++ stream (lwf_rng_init / lwf_rng_jump).
/// Diagnostics of any density q against a posterior from importance log-weights
/// ln L(theta_i) + ln pi(theta_i) - ln q(theta_i), theta_i drawn from q (lwf_importance_summary):
/// ln Z-hat and its standard error, the ESS, a KL(p||q) estimate and the PSIS k-hat
/// (has_k_hat 0 when no tail could be fitted). Throws lwflow::error on bad input.
inline LwfImportanceSummary importance_summary(span<const double> log_w) {
    std::vector<double> scratch(log_w.size());
    LwfImportanceSummary out{};
    check(lwf_importance_summary(log_w.data(), log_w.size(), scratch.data(), scratch.size(), &out),
          "lwf_importance_summary");
    return out;
}

class rng {
public:
    explicit rng(std::uint64_t seed) : state_() { check(lwf_rng_init(&state_, seed), "lwf_rng_init"); }
    void jump() { check(lwf_rng_jump(&state_), "lwf_rng_jump"); }
    LwfRng *get() noexcept { return &state_; }
    const LwfRng &state() const noexcept { return state_; }

private:
    LwfRng state_;
};

namespace detail {
struct fitter;
}
class refinement;

/// One model in memory this object owns.
class model {
public:
    /// A new model of `s`, parameters drawn from `seed` (lwf_model_init).
    model(const LwfShape &s, std::uint64_t seed) {
        allocate(lwflow::shape(s).model_size());
        check(lwf_model_init(memory_.get(), bytes_, &s, seed, &handle_), "lwf_model_init");
    }

    /// A model from bytes written by save() (lwf_model_inspect + lwf_model_load).
    static model load(span<const std::uint8_t> bytes) {
        LwfShape s;
        check(lwf_model_inspect(bytes.data(), bytes.size(), &s), "lwf_model_inspect");
        model m;
        m.allocate(lwflow::shape(s).model_size());
        check(lwf_model_load(m.memory_.get(), m.bytes_, bytes.data(), bytes.size(), &m.handle_),
              "lwf_model_load");
        return m;
    }

    model(model &&other) noexcept { swap(other); }
    model &operator=(model &&other) noexcept {
        model(std::move(other)).swap(*this);
        return *this;
    }
    model(const model &) = delete;
    model &operator=(const model &) = delete;
    ~model() = default;

    /// The C handle (NULL after a move), for calls this wrapper does not cover.
    LwfModel *handle() noexcept { return handle_; }
    const LwfModel *handle() const noexcept { return handle_; }

    lwflow::shape shape() const {
        LwfShape s;
        check(lwf_model_shape(handle_, &s), "lwf_model_shape");
        return lwflow::shape(s);
    }
    std::size_t param_count() const { return shape().param_count(); }
    std::size_t dim() const { return shape().dim; }

    std::vector<double> params() const {
        std::vector<double> p(param_count());
        check(lwf_model_get_params(handle_, p.data(), p.size()), "lwf_model_get_params");
        return p;
    }
    void set_params(span<const double> p) {
        check(lwf_model_set_params(handle_, p.data(), p.size()), "lwf_model_set_params");
    }
    void set_gaussian_base(span<const double> loc, span<const double> scale) {
        check(lwf_model_set_gaussian_base(handle_, loc.data(), loc.size(), scale.data(),
                                          scale.size()),
              "lwf_model_set_gaussian_base");
    }
    void set_mixture_base(span<const double> weights, span<const double> means,
                          span<const double> scales) {
        check(lwf_model_set_mixture_base(handle_, weights.data(), weights.size(), means.data(),
                                         means.size(), scales.data(), scales.size()),
              "lwf_model_set_mixture_base");
    }
    /// The box [lo, hi] of a bounded model (lo and hi of dim values each).
    void set_box(span<const double> lo, span<const double> hi) {
        if (lo.size() != hi.size()) throw error(LWF_LENGTH_MISMATCH, "lwf_model_set_box");
        check(lwf_model_set_box(handle_, lo.data(), hi.data(), lo.size()), "lwf_model_set_box");
    }
    /// The affine map y = shift + L u of a model with `affine` (L packed row by row).
    void set_affine(span<const double> shift, span<const double> chol_packed) {
        check(lwf_model_set_affine(handle_, shift.data(), shift.size(), chol_packed.data(),
                                   chol_packed.size()),
              "lwf_model_set_affine");
    }

    /// log q of the rows of theta (row-major [n][dim]) into out (n).
    void log_prob(span<const double> theta, span<double> out) {
        check(lwf_model_log_prob(handle_, theta.data(), theta.size(), out.data(), out.size()),
              "lwf_model_log_prob");
    }
    std::vector<double> log_prob(span<const double> theta) {
        std::vector<double> out(theta.size() / dim());
        log_prob(theta, out);
        return out;
    }
    /// Thread-safe form: reads the model only, scratch in ws (shape().workspace_count()).
    void log_prob(span<const double> theta, span<double> out, span<double> ws) const {
        check(lwf_model_log_prob_ws(handle_, theta.data(), theta.size(), out.data(), out.size(),
                                    ws.data(), ws.size()),
              "lwf_model_log_prob_ws");
    }

    /// n = log_q.size() samples into theta (n * dim) with their log q.
    void sample(rng &r, span<double> theta, span<double> log_q) {
        check(lwf_model_sample(handle_, r.get(), theta.data(), theta.size(), log_q.data(),
                               log_q.size()),
              "lwf_model_sample");
    }
    void sample(rng &r, span<double> theta, span<double> log_q, span<double> ws) const {
        check(lwf_model_sample_ws(handle_, r.get(), theta.data(), theta.size(), log_q.data(),
                                  log_q.size(), ws.data(), ws.size()),
              "lwf_model_sample_ws");
    }

    /// Loss of the weighted batch; its gradient into grad (param_count()).
    double loss_grad(span<const double> theta, span<const double> weights, span<double> grad) {
        std::error_code ec;
        double loss = loss_grad(theta, weights, grad, ec);
        if (ec) throw error(static_cast<LwfStatus>(ec.value()), "lwf_model_loss_grad");
        return loss;
    }
    /// Non-throwing form: on failure ec is set (e.g. LWF_NON_FINITE: skip the step) and the
    /// result is NaN.
    double loss_grad(span<const double> theta, span<const double> weights, span<double> grad,
                     std::error_code &ec) noexcept {
        double loss = 0.0;
        LwfStatus s = lwf_model_loss_grad(handle_, theta.data(), theta.size(), weights.data(),
                                          weights.size(), grad.data(), grad.size(), &loss);
        ec = make_error_code(s);
        return s == LWF_OK ? loss : std::numeric_limits<double>::quiet_NaN();
    }
    /// Adds scale * the batch's unnormalised gradient and loss (data-parallel training).
    void loss_grad_accumulate(span<const double> theta, span<const double> weights, double scale,
                              span<double> grad, double &loss) {
        check(lwf_model_loss_grad_accumulate(handle_, theta.data(), theta.size(), weights.data(),
                                             weights.size(), scale, grad.data(), grad.size(),
                                             &loss),
              "lwf_model_loss_grad_accumulate");
    }

    void adam_step(const LwfAdam &a, span<const double> grad) {
        check(lwf_model_adam_step(handle_, &a, grad.data(), grad.size()), "lwf_model_adam_step");
    }
    void adam_step(const LwfAdam &a, span<const double> grad, std::error_code &ec) noexcept {
        ec = make_error_code(lwf_model_adam_step(handle_, &a, grad.data(), grad.size()));
    }
    void adam_reset() { check(lwf_model_adam_reset(handle_), "lwf_model_adam_reset"); }

    /// The checksummed model bytes (lwf_model_save).
    std::vector<std::uint8_t> save() const {
        std::vector<std::uint8_t> bytes(shape().serialized_size());
        std::size_t written = 0;
        check(lwf_model_save(handle_, bytes.data(), bytes.size(), &written), "lwf_model_save");
        bytes.resize(written);
        return bytes;
    }

private:
    friend struct detail::fitter;
    friend class refinement;
    model() = default;
    void allocate(std::size_t bytes) {
        // new max_align_t[] is aligned for every scalar type: at least the 8 bytes
        // lwf_model_align() asks for (checked again by lwf_model_init: LWF_MISALIGNED).
        static_assert(alignof(std::max_align_t) >= 8, "model memory needs 8-byte alignment");
        const std::size_t unit = sizeof(std::max_align_t);
        memory_.reset(new std::max_align_t[(bytes + unit - 1) / unit]);
        bytes_ = bytes;
    }
    void swap(model &other) noexcept {
        std::swap(memory_, other.memory_);
        std::swap(bytes_, other.bytes_);
        std::swap(handle_, other.handle_);
    }

    std::unique_ptr<std::max_align_t[]> memory_;
    std::size_t bytes_ = 0;
    LwfModel *handle_ = nullptr;
};

/// A fitted model and what the fit did. report.stop_reason == LWF_STOP_CANCELLED when the
/// progress callback stopped it (the model is then the best one so far).
struct fit_result {
    lwflow::model model;
    LwfFitReport report;
    bool cancelled() const noexcept { return report.stop_reason == LWF_STOP_CANCELLED; }
};

namespace detail {

/// The callbacks' context: the C++ callables, and the exception one of them threw (caught
/// here: it must not unwind through the C library; rethrown after the call). `Report` is what
/// the progress callback sees (`LwfEpochReport` for a fit, `LwfRefineRound` for a refinement).
template <class LogLikelihood, class Progress, class Report = LwfEpochReport>
struct callback_context {
    LogLikelihood *log_likelihood;
    Progress *progress;
    std::exception_ptr error;

    static int call_log_likelihood(const double *theta, std::size_t n, std::size_t dim,
                                   double *out, void *user) noexcept {
        auto *ctx = static_cast<callback_context *>(user);
        try {
            (*ctx->log_likelihood)(span<const double>(theta, n * dim), span<double>(out, n));
            return 0;
        } catch (...) {
            ctx->error = std::current_exception();
            return 1;
        }
    }
    static int call_progress(const Report *report, void *user) noexcept {
        auto *ctx = static_cast<callback_context *>(user);
        try {
            return (*ctx->progress)(*report) ? 0 : 1;
        } catch (...) {
            ctx->error = std::current_exception();
            return 1;
        }
    }
};

/// The progress callable when none is given: never stops (epochs and rounds alike).
struct no_progress {
    template <class Report>
    bool operator()(const Report &) const noexcept { return true; }
};

/// The checkpoint callable when none is given: no checkpoints are written.
struct no_checkpoint {
    bool operator()(span<const std::uint8_t>, std::size_t) const noexcept { return true; }
};

/// Sizes and allocates model and work memory, runs `call` on them, maps the status.
struct fitter {
    template <class Call>
    static fit_result run(const LwfShape &s, const LwfFitConfig &c, std::size_t n,
                          const char *function, Call &&call, const std::exception_ptr &error) {
        std::size_t mem_bytes = 0, work_bytes = 0;
        check(lwf_fit_model_size(&s, &c, &mem_bytes), "lwf_fit_model_size");
        check(lwf_fit_work_size(&s, &c, n, &work_bytes), "lwf_fit_work_size");
        return run_sized(mem_bytes, work_bytes, function, call, error);
    }
    /// `run` with the sizes known.
    template <class Call>
    static fit_result run_sized(std::size_t mem_bytes, std::size_t work_bytes,
                                const char *function, Call &&call,
                                const std::exception_ptr &error) {
        model m;
        m.allocate(mem_bytes);
        std::vector<double> work((work_bytes + sizeof(double) - 1) / sizeof(double));
        LwfFitReport report{};
        const LwfStatus status =
            call(static_cast<void *>(m.memory_.get()), m.bytes_, static_cast<void *>(work.data()),
                 work_bytes, &report, &m.handle_);
        if (error) std::rethrow_exception(error);
        // LWF_CANCELLED without a model: a checkpoint callable stopped the fit at epoch 0.
        if (status != LWF_CANCELLED || !m.handle_) check(status, function);
        return fit_result{std::move(m), report};
    }
};

/// The context of a resumable fit: the fit's callables (`fit`, the `user` of the likelihood
/// and progress trampolines) and the checkpoint callable.
template <class LogLikelihood, class Progress, class Checkpoint>
struct resumable_context {
    callback_context<LogLikelihood, Progress> fit;
    Checkpoint *checkpoint;

    static int call_checkpoint(const std::uint8_t *bytes, std::size_t len, std::size_t epoch,
                               void *user) noexcept {
        auto *ctx = static_cast<resumable_context *>(user);
        try {
            return (*ctx->checkpoint)(span<const std::uint8_t>(bytes, len), epoch) ? 0 : 1;
        } catch (...) {
            ctx->fit.error = std::current_exception();
            return 1;
        }
    }
};

/// The buffer the library writes checkpoints into (one per fit, reused for every checkpoint).
inline std::vector<std::uint8_t> checkpoint_buffer(const LwfShape &s, const LwfFitConfig &c,
                                                   std::size_t n) {
    std::size_t bytes = 0;
    check(lwf_fit_checkpoint_size(&s, &c, n, &bytes), "lwf_fit_checkpoint_size");
    return std::vector<std::uint8_t>(bytes);
}

}  // namespace detail

/// Fits a model to the posterior of a uniform prior on the box [lo, hi] and a likelihood
/// (lwf_model_fit_prior_box), with n_samples prior draws. log_likelihood(theta, out) fills
/// out[i] with log p(D | theta_i) for the points theta[i * dim .. (i + 1) * dim) (spans of
/// const double and double; dim = theta.size() / out.size()). progress(const LwfEpochReport &)
/// returns false to stop the fit. Memory is allocated here and owned by the returned model.
/// Throws lwflow::error for a failed fit, or rethrows what a callable threw.
template <class LogLikelihood, class Progress = detail::no_progress>
fit_result fit_prior_box(const LwfShape &s, const LwfFitConfig &c, span<const double> lo,
                         span<const double> hi, std::size_t n_samples,
                         LogLikelihood &&log_likelihood, Progress &&progress = Progress{}) {
    using context = detail::callback_context<std::remove_reference_t<LogLikelihood>,
                                             std::remove_reference_t<Progress>>;
    context ctx{&log_likelihood, &progress, nullptr};
    return detail::fitter::run(
        s, c, n_samples, "lwf_model_fit_prior_box",
        [&](void *mem, std::size_t mem_len, void *work, std::size_t work_len, LwfFitReport *r,
            LwfModel **handle) {
            return lwf_model_fit_prior_box(mem, mem_len, &s, &c, lo.data(), lo.size(), hi.data(),
                                           hi.size(), n_samples, &context::call_log_likelihood,
                                           &ctx, &context::call_progress, &ctx, work, work_len,
                                           r, handle);
        },
        ctx.error);
}

/// Fits a model to weighted samples (lwf_model_fit_samples): theta row-major [n][dim],
/// log_weights n (log-likelihoods for prior samples). As fit_prior_box otherwise; the model
/// is unbounded (fit_samples_in_box takes a box).
template <class Progress = detail::no_progress>
fit_result fit_samples(const LwfShape &s, const LwfFitConfig &c, span<const double> theta,
                       span<const double> log_weights, Progress &&progress = Progress{}) {
    using context = detail::callback_context<void, std::remove_reference_t<Progress>>;
    context ctx{nullptr, &progress, nullptr};
    return detail::fitter::run(
        s, c, log_weights.size(), "lwf_model_fit_samples",
        [&](void *mem, std::size_t mem_len, void *work, std::size_t work_len, LwfFitReport *r,
            LwfModel **handle) {
            return lwf_model_fit_samples(mem, mem_len, &s, &c, theta.data(), theta.size(),
                                         log_weights.data(), log_weights.size(),
                                         &context::call_progress, &ctx, work, work_len, r,
                                         handle);
        },
        ctx.error);
}

/// fit_samples on the box [lo, hi] (lwf_model_fit_samples_in_box): the model lives on the
/// box unless c.bounded is 0; every sample of non-zero weight must lie inside it.
template <class Progress = detail::no_progress>
fit_result fit_samples_in_box(const LwfShape &s, const LwfFitConfig &c, span<const double> lo,
                              span<const double> hi, span<const double> theta,
                              span<const double> log_weights, Progress &&progress = Progress{}) {
    using context = detail::callback_context<void, std::remove_reference_t<Progress>>;
    context ctx{nullptr, &progress, nullptr};
    return detail::fitter::run(
        s, c, log_weights.size(), "lwf_model_fit_samples_in_box",
        [&](void *mem, std::size_t mem_len, void *work, std::size_t work_len, LwfFitReport *r,
            LwfModel **handle) {
            return lwf_model_fit_samples_in_box(
                mem, mem_len, &s, &c, lo.data(), lo.size(), hi.data(), hi.size(), theta.data(),
                theta.size(), log_weights.data(), log_weights.size(), &context::call_progress,
                &ctx, work, work_len, r, handle);
        },
        ctx.error);
}

/// What fit checkpoint bytes hold and the memory their resumption needs
/// (lwf_fit_checkpoint_inspect); throws lwflow::error (LWF_BAD_FORMAT for truncated or
/// corrupted bytes).
inline LwfFitCheckpointInfo checkpoint_info(span<const std::uint8_t> bytes) {
    LwfFitCheckpointInfo info{};
    check(lwf_fit_checkpoint_inspect(bytes.data(), bytes.size(), &info),
          "lwf_fit_checkpoint_inspect");
    return info;
}

/// fit_prior_box with checkpoints (lwf_model_fit_prior_box_resumable):
/// checkpoint(span<const std::uint8_t> bytes, std::size_t epoch) sees the bytes after the last
/// likelihood call (epoch 0) and after every epoch (valid during the call only: save them) and
/// returns false to stop the fit (at epoch 0 this throws lwflow::error with LWF_CANCELLED: there
/// is no model yet). fit_resume finishes a fit from any of them, bit-identically.
template <class LogLikelihood, class Checkpoint, class Progress = detail::no_progress>
fit_result fit_prior_box_resumable(const LwfShape &s, const LwfFitConfig &c,
                                   span<const double> lo, span<const double> hi,
                                   std::size_t n_samples, LogLikelihood &&log_likelihood,
                                   Checkpoint &&checkpoint, Progress &&progress = Progress{}) {
    using context = detail::resumable_context<std::remove_reference_t<LogLikelihood>,
                                              std::remove_reference_t<Progress>,
                                              std::remove_reference_t<Checkpoint>>;
    using fit_context = decltype(context::fit);
    context ctx{{&log_likelihood, &progress, nullptr}, &checkpoint};
    std::vector<std::uint8_t> ck = detail::checkpoint_buffer(s, c, n_samples);
    return detail::fitter::run(
        s, c, n_samples, "lwf_model_fit_prior_box_resumable",
        [&](void *mem, std::size_t mem_len, void *work, std::size_t work_len, LwfFitReport *r,
            LwfModel **handle) {
            return lwf_model_fit_prior_box_resumable(
                mem, mem_len, &s, &c, lo.data(), lo.size(), hi.data(), hi.size(), n_samples,
                &fit_context::call_log_likelihood, &ctx.fit, &fit_context::call_progress,
                &ctx.fit, &context::call_checkpoint, &ctx, ck.data(), ck.size(), work, work_len,
                r, handle);
        },
        ctx.fit.error);
}

/// fit_samples (lo and hi empty) or fit_samples_in_box with checkpoints
/// (lwf_model_fit_samples_resumable), as fit_prior_box_resumable.
template <class Checkpoint, class Progress = detail::no_progress>
fit_result fit_samples_resumable(const LwfShape &s, const LwfFitConfig &c, span<const double> lo,
                                 span<const double> hi, span<const double> theta,
                                 span<const double> log_weights, Checkpoint &&checkpoint,
                                 Progress &&progress = Progress{}) {
    using context = detail::resumable_context<void, std::remove_reference_t<Progress>,
                                              std::remove_reference_t<Checkpoint>>;
    using fit_context = decltype(context::fit);
    context ctx{{nullptr, &progress, nullptr}, &checkpoint};
    std::vector<std::uint8_t> ck = detail::checkpoint_buffer(s, c, log_weights.size());
    return detail::fitter::run(
        s, c, log_weights.size(), "lwf_model_fit_samples_resumable",
        [&](void *mem, std::size_t mem_len, void *work, std::size_t work_len, LwfFitReport *r,
            LwfModel **handle) {
            return lwf_model_fit_samples_resumable(
                mem, mem_len, &s, &c, lo.data(), lo.size(), hi.data(), hi.size(), theta.data(),
                theta.size(), log_weights.data(), log_weights.size(),
                &fit_context::call_progress, &ctx.fit, &context::call_checkpoint, &ctx,
                ck.data(), ck.size(), work, work_len, r, handle);
        },
        ctx.fit.error);
}

/// Finishes a fit from checkpoint bytes (lwf_model_fit_resume): the model and report of the
/// uninterrupted fit, bit for bit, without a likelihood call. checkpoint(bytes, epoch) sees
/// the later checkpoints, progress the later epochs. Throws lwflow::error (LWF_BAD_FORMAT for
/// truncated or corrupted bytes).
template <class Checkpoint = detail::no_checkpoint, class Progress = detail::no_progress>
fit_result fit_resume(span<const std::uint8_t> bytes, Checkpoint &&checkpoint = Checkpoint{},
                      Progress &&progress = Progress{}) {
    using context = detail::resumable_context<void, std::remove_reference_t<Progress>,
                                              std::remove_reference_t<Checkpoint>>;
    using fit_context = decltype(context::fit);
    context ctx{{nullptr, &progress, nullptr}, &checkpoint};
    constexpr bool none = std::is_same_v<std::decay_t<Checkpoint>, detail::no_checkpoint>;
    const LwfCheckpointFn checkpoint_fn = none ? nullptr : &context::call_checkpoint;
    const LwfFitCheckpointInfo info = checkpoint_info(bytes);
    std::vector<std::uint8_t> ck(none ? 0 : info.checkpoint_bytes);
    return detail::fitter::run_sized(
        info.model_bytes, info.work_bytes, "lwf_model_fit_resume",
        [&](void *mem, std::size_t mem_len, void *work, std::size_t work_len, LwfFitReport *r,
            LwfModel **handle) {
            return lwf_model_fit_resume(mem, mem_len, bytes.data(), bytes.size(),
                                        &fit_context::call_progress, &ctx.fit, checkpoint_fn,
                                        &ctx, ck.data(), ck.size(), work, work_len, r, handle);
        },
        ctx.fit.error);
}

/// An adaptive refinement (lwf_refine_*) in work memory this object owns: RAII, movable, not
/// copyable implicitly (copy() makes a byte copy, which continues identically). Drive it with
/// ask() / tell() or run(); at the end report() and model().
class refinement {
public:
    /// A new refinement of the posterior ∝ L(theta) × the uniform prior on [lo, hi]
    /// (lwf_refine_work_size + lwf_refine_init); `s` gives the flow's widths.
    refinement(const LwfShape &s, span<const double> lo, span<const double> hi,
               const LwfRefineConfig &c) {
        if (lo.size() != hi.size()) throw error(LWF_LENGTH_MISMATCH, "lwf_refine_init");
        std::size_t bytes = 0;
        check(lwf_refine_work_size(&s, &c, &bytes), "lwf_refine_work_size");
        allocate(bytes);
        check(lwf_refine_init(memory_.get(), bytes_, &s, lo.data(), hi.data(), lo.size(), &c,
                              &handle_),
              "lwf_refine_init");
        dim_ = lo.size();
    }

    refinement(refinement &&other) noexcept { swap(other); }
    refinement &operator=(refinement &&other) noexcept {
        refinement(std::move(other)).swap(*this);
        return *this;
    }
    refinement(const refinement &) = delete;
    refinement &operator=(const refinement &) = delete;
    ~refinement() = default;

    /// A byte copy in new memory: the same refinement, continuing identically.
    refinement copy() const {
        refinement r;
        r.allocate(bytes_);
        const auto *from = reinterpret_cast<const std::uint8_t *>(memory_.get());
        std::copy(from, from + bytes_, reinterpret_cast<std::uint8_t *>(r.memory_.get()));
        r.handle_ = reinterpret_cast<LwfRefine *>(r.memory_.get());
        r.dim_ = dim_;
        return r;
    }
    /// A checkpoint (lwf_refine_checkpoint): every byte of the refinement's memory with a
    /// length and a CRC-32; restore() continues from it, bit-identically.
    std::vector<std::uint8_t> checkpoint() const {
        std::size_t len = 0, written = 0;
        check(lwf_refine_checkpoint_size(handle_, &len), "lwf_refine_checkpoint_size");
        std::vector<std::uint8_t> bytes(len);
        check(lwf_refine_checkpoint(handle_, bytes.data(), bytes.size(), &written),
              "lwf_refine_checkpoint");
        return bytes;
    }
    /// The refinement a checkpoint holds, in new memory (lwf_refine_restore); `dim` as given at
    /// the start. Throws lwflow::error (LWF_BAD_FORMAT for truncated or corrupted bytes,
    /// LWF_LENGTH_MISMATCH for another dimension).
    static refinement restore(span<const std::uint8_t> bytes, std::size_t dim) {
        if (bytes.size() <= 20) throw error(LWF_BAD_FORMAT, "lwf_refine_restore");
        refinement r;
        r.allocate(bytes.size() - 20);
        check(lwf_refine_restore(r.memory_.get(), r.bytes_, bytes.data(), bytes.size(), dim,
                                 &r.handle_),
              "lwf_refine_restore");
        r.dim_ = dim;
        return r;
    }
    /// The C handle (NULL after a move), for calls this wrapper does not cover.
    LwfRefine *handle() noexcept { return handle_; }
    const LwfRefine *handle() const noexcept { return handle_; }
    std::size_t dim() const noexcept { return dim_; }

    std::size_t batch_capacity() const {
        std::size_t rows = 0;
        check(lwf_refine_batch_capacity(handle_, &rows), "lwf_refine_batch_capacity");
        return rows;
    }
    /// Where it stands (lwf_refine_status).
    LwfRefineStatus status() const {
        std::int32_t code = -1;
        check(lwf_refine_status(handle_, &code), "lwf_refine_status");
        return static_cast<LwfRefineStatus>(code);
    }
    bool running() const { return status() == LWF_REFINE_RUNNING; }

    /// The next batch: n points, row-major [n][dim], inside the box; the same until tell().
    std::vector<double> ask() {
        std::vector<double> theta(batch_capacity() * dim_);
        theta.resize(ask(theta) * dim_);
        return theta;
    }
    /// The next batch into theta (room for batch_capacity() points); returns n.
    std::size_t ask(span<double> theta) {
        std::size_t n = 0;
        check(lwf_refine_ask(handle_, theta.data(), theta.size() / dim_, &n), "lwf_refine_ask");
        return n;
    }
    /// The log-likelihoods of the batch ask() gave, in its order; the round's figures.
    LwfRefineRound tell(span<const double> loglik) {
        LwfRefineRound round{};
        check(lwf_refine_tell(handle_, loglik.data(), loglik.size(), &round), "lwf_refine_tell");
        return round;
    }

    /// Runs to the end (lwf_refine_run): log_likelihood(theta, out) fills out[i] with
    /// ln L(theta_i) for batches of at most `batch` points; progress(const LwfRefineRound &)
    /// returns false to stop. Returns true when the refinement has ended, false when the
    /// progress callable stopped it (it can be continued). An exception thrown by a callable
    /// stops the run and is rethrown unchanged (the round it happened in stays outstanding).
    template <class LogLikelihood, class Progress = detail::no_progress>
    bool run(LogLikelihood &&log_likelihood, std::size_t batch = 4096,
             Progress &&progress = Progress{}) {
        using context = detail::callback_context<std::remove_reference_t<LogLikelihood>,
                                                 std::remove_reference_t<Progress>,
                                                 LwfRefineRound>;
        context ctx{&log_likelihood, &progress, nullptr};
        const LwfStatus s = lwf_refine_run(handle_, &context::call_log_likelihood, batch, &ctx,
                                           &context::call_progress, &ctx);
        if (ctx.error) std::rethrow_exception(ctx.error);
        if (s == LWF_CANCELLED) return false;
        check(s, "lwf_refine_run");
        return true;
    }

    /// The final report (lwf_refine_report; throws LWF_INVALID_ARGUMENT while running).
    LwfRefineReport report() const {
        LwfRefineReport r{};
        check(lwf_refine_report(handle_, &r), "lwf_refine_report");
        return r;
    }
    /// The fitted model in new memory (lwf_refine_model_size + lwf_refine_write_model).
    lwflow::model model() const {
        std::size_t bytes = 0;
        check(lwf_refine_model_size(handle_, &bytes), "lwf_refine_model_size");
        lwflow::model m;
        m.allocate(bytes);
        check(lwf_refine_write_model(handle_, m.memory_.get(), m.bytes_, &m.handle_),
              "lwf_refine_write_model");
        return m;
    }

private:
    refinement() = default;
    void allocate(std::size_t bytes) {
        static_assert(alignof(std::max_align_t) >= 8, "work memory needs 8-byte alignment");
        const std::size_t unit = sizeof(std::max_align_t);
        memory_.reset(new std::max_align_t[(bytes + unit - 1) / unit]);
        bytes_ = bytes;
    }
    void swap(refinement &other) noexcept {
        std::swap(memory_, other.memory_);
        std::swap(bytes_, other.bytes_);
        std::swap(handle_, other.handle_);
        std::swap(dim_, other.dim_);
    }

    std::unique_ptr<std::max_align_t[]> memory_;
    std::size_t bytes_ = 0;
    LwfRefine *handle_ = nullptr;
    std::size_t dim_ = 0;
};

}  // namespace lwflow

#endif  // LWFLOW_HPP
