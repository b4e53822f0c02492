# lwflow.jl: Julia bindings (ccall) to the lwflow C ABI (include/lwflow.h).
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# UNTESTED: Julia is not installable on the machine this was written on, so this file has never
# been run. It follows lwflow.h line by line (ffi/tests/julia_bindings.rs checks that every
# exported function is bound here), but treat it as a starting point and report what breaks.
#
# Build the library (`cargo build --release -p lwflow-ffi`) and point LWFLOW_LIB at
# target/release/liblwflow.so (or .dylib), then:
#
#     include("examples/julia/lwflow.jl"); using .LwFlow, Random
#     loglik(θ) = (l = -sum(abs2, (θ .- [2.5, 0.0]) ./ 0.6) / 2; r = -sum(abs2, (θ .+ [2.5, 0.0]) ./ 0.6) / 2;
#                  m = max(l, r); m + log(exp(l - m) + exp(r - m)))
#     θ = 12 .* rand(2, 20_000) .- 6                    # prior samples, one column per sample
#     ℓ = [loglik(θ[:, i]) for i in 1:size(θ, 2)]
#     w = exp.(ℓ .- maximum(ℓ)); w .*= length(w) / sum(w) # self-normalised weights, mean 1
#     shape = with_mixture(shape_default(2, 32, 4), 2)
#     model = Model(shape, 1)
#     set_mixture_base!(model, [0.5, 0.5], [-2.5 2.5; 0.0 0.0], ones(2, 2))  # θ coordinates
#     adam = adam_default(lr = 2e-3)
#     g = zeros(param_count(shape))
#     for epoch in 1:40, batch in Iterators.partition(randperm(size(θ, 2)), 500)
#         try
#             loss_grad!(g, model, θ[:, batch], w[batch])
#             adam_step!(model, adam, g)
#         catch e
#             e isa LwflowError && e.status == LWF_NON_FINITE || rethrow()   # skip the step
#         end
#     end
#     logq = log_prob(model, θ[:, 1:10])
#     samples, logq_s = sample(model, Rng(7), 1000)      # 2 × 1000 matrix
#     bytes = save(model); model2 = load(bytes)
#
#     # Or in one call: prior draws, weights, EM/BIC mixture base and training (phase 2).
#     # loglik!(out, θ) fills out[i] with log p(D | θ[:, i]); an exception in it aborts the fit
#     # (LWF_CALLBACK_FAILED) and is rethrown. progress(r) returns false to stop the fit early.
#     loglik!(out, θ) = for i in axes(θ, 2); out[i] = loglik(θ[:, i]); end
#     cfg = fit_config_default(max_epochs = 40, sample_seed = 42)
#     model, report = fit_prior_box(shape_default(2, 32, 4), fill(-6.0, 2), fill(6.0, 2), 20_000,
#                                   loglik!; config = cfg, progress = r -> (println(r.epoch); true))
#     report.components                                 # K chosen by BIC
#
#     # Or the adaptive refinement: few likelihood calls, the evidence, a model on the box.
#     r = Refinement(shape_default(2, 32, 6), fill(-6.0, 2), fill(6.0, 2))
#     while refine_status(r) == LWF_REFINE_RUNNING
#         θb = ask(r)                                    # D × n, inside the box
#         tell!(r, [loglik(θb[:, i]) for i in axes(θb, 2)])
#     end                                               # or: run!(r, loglik!)
#     refine_report(r).log_z; model = refine_model(r)
#
#     # Checkpoints: a fit (or a refinement) saved to bytes, finished after a crash bit-identically
#     # and without a likelihood call.
#     model, report = fit_prior_box_resumable(shape, lo, hi, 20_000, loglik!,
#                                             (bytes, epoch) -> (write("fit.ckpt", bytes); true))
#     model, report = fit_resume(read("fit.ckpt"))
#     bytes = refine_checkpoint(r); r2 = refine_restore(bytes, 2)
#
# Batches are D × n matrices (column-major), which is the C ABI's row-major [n][D] layout.
module LwFlow

export LwfShape, LwfAdam, Rng, Model, LwflowError, shape_default, with_mixture, validate,
       param_count, workspace_count, model_size, serialized_size, adam_default, log_prob,
       log_prob!, sample, forward, inverse, loss_grad!, loss_grad_accumulate!, adam_step!,
       adam_reset!, params, set_params!, set_gaussian_base!, set_mixture_base!, set_box!,
       set_affine!, save, load,
       inspect, jump!, version, status_message, model_shape, model_align, LwfFitConfig,
       LwfEpochReport, LwfFitReport, fit_config_default, fit_model_size, fit_work_size,
       fit_prior_box, fit_samples, fit_samples_in_box, LwfRefineConfig, LwfRefineRound, LwfRefineReport, Refinement,
       refine_config_default, refine_work_size, batch_capacity, refine_status, ask, tell!, run!,
       refine_report, refine_model, LwfImportanceSummary, importance_summary,
       LwfFitCheckpointInfo, fit_checkpoint_size, checkpoint_info, fit_prior_box_resumable,
       fit_samples_resumable, fit_resume, refine_checkpoint, refine_restore, kernels,
       use_kernels!
export LWF_KERNELS_PORTABLE, LWF_KERNELS_AVX2, LWF_KERNELS_AVX512
export LWF_REFINE_RUNNING, LWF_REFINE_CONVERGED, LWF_REFINE_BUDGET_EXHAUSTED,
       LWF_REFINE_MAX_ROUNDS, LWF_REFINE_FAILED
export LWF_OK, LWF_NULL_POINTER, LWF_BUFFER_TOO_SMALL, LWF_LENGTH_MISMATCH, LWF_MISALIGNED,
       LWF_INVALID_SHAPE, LWF_INVALID_ARGUMENT, LWF_NON_FINITE, LWF_EMPTY_BATCH,
       LWF_CALLBACK_FAILED, LWF_CANCELLED, LWF_DEGENERATE_WEIGHTS, LWF_BAD_FORMAT,
       LWF_NOT_CONVERGED, LWF_PANIC, LWF_INVALID_MODEL, LWF_OVERLAPPING_BUFFERS, LWF_BUSY,
       LWF_BASE_STANDARD_NORMAL, LWF_BASE_GAUSSIAN, LWF_BASE_MIXTURE, LWF_ACTIVATION_RELU,
       LWF_ACTIVATION_TANH, LWF_FIT_BASE_GAUSSIAN, LWF_FIT_BASE_PAPER_MIXTURE,
       LWF_FIT_BASE_MIXTURE, LWF_FIT_BASE_AUTO, LWF_SCHEDULE_CONSTANT, LWF_SCHEDULE_COSINE,
       LWF_NON_FINITE_ERROR, LWF_NON_FINITE_SKIP, LWF_STOP_MAX_EPOCHS, LWF_STOP_EARLY,
       LWF_STOP_CANCELLED

const LIB = get(ENV, "LWFLOW_LIB", "liblwflow")

# LwfStatus
const LWF_OK = Cint(0)
const LWF_NULL_POINTER = Cint(1)
const LWF_BUFFER_TOO_SMALL = Cint(2)
const LWF_LENGTH_MISMATCH = Cint(3)
const LWF_MISALIGNED = Cint(4)
const LWF_INVALID_SHAPE = Cint(5)
const LWF_INVALID_ARGUMENT = Cint(6)
const LWF_NON_FINITE = Cint(7)
const LWF_EMPTY_BATCH = Cint(8)
const LWF_CALLBACK_FAILED = Cint(9)
const LWF_CANCELLED = Cint(10)
const LWF_DEGENERATE_WEIGHTS = Cint(11)
const LWF_BAD_FORMAT = Cint(12)
const LWF_NOT_CONVERGED = Cint(13)
const LWF_PANIC = Cint(14)
const LWF_INVALID_MODEL = Cint(15)
const LWF_OVERLAPPING_BUFFERS = Cint(16)
const LWF_BUSY = Cint(17)
# LwfBaseKind, LwfActivation
const LWF_BASE_STANDARD_NORMAL = Int32(0)
const LWF_BASE_GAUSSIAN = Int32(1)
const LWF_BASE_MIXTURE = Int32(2)
const LWF_ACTIVATION_RELU = Int32(0)
const LWF_ACTIVATION_TANH = Int32(1)
# LwfFitBase, LwfSchedule, LwfNonFinitePolicy, LwfStopReason
const LWF_FIT_BASE_GAUSSIAN = Int32(0)
const LWF_FIT_BASE_PAPER_MIXTURE = Int32(1)
const LWF_FIT_BASE_MIXTURE = Int32(2)
const LWF_FIT_BASE_AUTO = Int32(3)
const LWF_SCHEDULE_CONSTANT = Int32(0)
const LWF_SCHEDULE_COSINE = Int32(1)
const LWF_NON_FINITE_ERROR = Int32(0)
const LWF_NON_FINITE_SKIP = Int32(1)
const LWF_STOP_MAX_EPOCHS = Int32(0)
const LWF_STOP_EARLY = Int32(1)
const LWF_STOP_CANCELLED = Int32(2)
# LwfRefineStatus
const LWF_REFINE_RUNNING = Int32(0)
const LWF_REFINE_CONVERGED = Int32(1)
const LWF_REFINE_BUDGET_EXHAUSTED = Int32(2)
const LWF_REFINE_MAX_ROUNDS = Int32(3)
const LWF_REFINE_FAILED = Int32(4)
# LwfKernels
const LWF_KERNELS_PORTABLE = Int32(0)
const LWF_KERNELS_AVX2 = Int32(1)
const LWF_KERNELS_AVX512 = Int32(2)

"The LwfShape struct (same field order and types as lwflow.h)."
struct LwfShape
    dim::Csize_t
    hidden::Csize_t
    hidden_layers::Csize_t
    couplings::Csize_t
    components::Csize_t
    clamp::Cdouble
    base::Int32
    activation::Int32
    affine::Int32
    bounded::Int32
end

"The LwfAdam struct."
struct LwfAdam
    lr::Cdouble
    beta1::Cdouble
    beta2::Cdouble
    eps::Cdouble
    weight_decay::Cdouble
end

"The LwfFitConfig struct (same field order and types as lwflow.h; Julia pads like C)."
struct LwfFitConfig
    struct_size::Csize_t
    base::Int32
    non_finite::Int32
    components::Csize_t
    min_ess::Cdouble
    sample_seed::UInt64
    likelihood_batch::Csize_t
    em_max_iter::Csize_t
    em_tol::Cdouble
    em_var_floor::Cdouble
    em_restarts::Csize_t
    em_min_weight::Cdouble
    em_seed::UInt64
    max_epochs::Csize_t
    batch_size::Csize_t
    lr::Cdouble
    beta1::Cdouble
    beta2::Cdouble
    eps::Cdouble
    weight_decay::Cdouble
    schedule::Int32
    min_lr_factor::Cdouble
    patience::Csize_t
    validation_fraction::Cdouble
    clip_norm::Cdouble
    min_weight::Cdouble
    seed::UInt64
    init_seed::UInt64
    bounded::Int32
end

"The LwfEpochReport struct: what the progress callback sees after every epoch."
struct LwfEpochReport
    epoch::Csize_t
    max_epochs::Csize_t
    train_loss::Cdouble
    val_loss::Cdouble
    best_val_loss::Cdouble
    lr::Cdouble
    skipped_steps::UInt64
end

"The LwfFitReport struct: what a fit did."
struct LwfFitReport
    n_samples::Csize_t
    skipped_samples::Csize_t
    ess::Cdouble
    log_mean_weight::Cdouble
    components::Csize_t
    em_iterations::Csize_t
    em_mean_log_likelihood::Cdouble
    em_bic::Cdouble
    epochs::Csize_t
    best_epoch::Csize_t
    steps::UInt64
    skipped_steps::UInt64
    initial_val_loss::Cdouble
    best_val_loss::Cdouble
    stop_reason::Int32
end

"The LwfRefineConfig struct (same field order and types as lwflow.h)."
struct LwfRefineConfig
    struct_size::Csize_t
    initial_samples::Csize_t
    samples_per_round::Csize_t
    check_samples::Csize_t
    max_calls::Csize_t
    max_rounds::Csize_t
    ess_fraction::Cdouble
    target_ess::Cdouble
    max_k_hat::Cdouble
    log_z_tol::Cdouble
    warm_start::Int32
    bounded::Int32
    affine::Int32
    non_finite::Int32
    max_components::Csize_t
    max_epochs::Csize_t
    batch_size::Csize_t
    patience::Csize_t
    learning_rate::Cdouble
    seed::UInt64
    max_kl::Cdouble
end

"The LwfRefineRound struct: what one round of a refinement measured."
struct LwfRefineRound
    round::Csize_t
    calls::Csize_t
    draws::Csize_t
    beta::Cdouble
    next_beta::Cdouble
    log_z::Cdouble
    log_z_se::Cdouble
    ess::Cdouble
    k_hat::Cdouble
    has_k_hat::Int32
    still_improving::Int32
    components::Csize_t
    epochs::Csize_t
    best_epoch::Csize_t
end

"The LwfRefineReport struct: the end of a refinement."
struct LwfRefineReport
    status::Int32
    has_k_hat::Int32
    rounds::Csize_t
    calls::Csize_t
    draws::Csize_t
    log_z::Cdouble
    log_z_se::Cdouble
    ess::Cdouble
    k_hat::Cdouble
    beta::Cdouble
    components::Csize_t
    epochs::Csize_t
    best_epoch::Csize_t
end

"The LwfImportanceSummary struct: diagnostics of any density q from importance log-weights."
struct LwfImportanceSummary
    n::Csize_t
    log_z::Cdouble
    log_z_se::Cdouble
    ess::Cdouble
    kl::Cdouble
    k_hat::Cdouble
    has_k_hat::Int32
end

"The LwfFitCheckpointInfo struct: what a fit checkpoint holds and the memory its resumption needs."
struct LwfFitCheckpointInfo
    epoch::Csize_t
    n_samples::Csize_t
    dim::Csize_t
    model_bytes::Csize_t
    work_bytes::Csize_t
    checkpoint_bytes::Csize_t
end

"The LwfRng struct: a caller-held xoshiro256++ state."
struct LwfRng
    state::NTuple{4,UInt64}
end

struct LwflowError <: Exception
    status::Cint
    func::Symbol
end

status_message(s::Integer) = unsafe_string(ccall((:lwf_status_message, LIB), Cstring, (Cint,), s))
Base.showerror(io::IO, e::LwflowError) =
    print(io, "lwflow: ", e.func, " returned ", e.status, ": ", status_message(e.status))

check(status::Cint, func::Symbol) = status == LWF_OK || throw(LwflowError(status, func))

version() = (ccall((:lwf_version, LIB), UInt32, ()),
             unsafe_string(ccall((:lwf_version_string, LIB), Cstring, ())))

"The kernel set in use (an LWF_KERNELS_* code)."
kernels() = ccall((:lwf_kernels, LIB), Cint, ())
"Use kernel set `set` from now on in this process (LWF_KERNELS_PORTABLE: the same bits on every machine)."
use_kernels!(set::Integer) = check(ccall((:lwf_use_kernels, LIB), Cint, (Int32,), set), :lwf_use_kernels)

# ---- shapes ----
function shape_default(dim::Integer, hidden::Integer, couplings::Integer)
    s = Ref{LwfShape}()
    check(ccall((:lwf_shape_default, LIB), Cint, (Csize_t, Csize_t, Csize_t, Ref{LwfShape}),
                dim, hidden, couplings, s), :lwf_shape_default)
    s[]
end
with_mixture(s::LwfShape, k::Integer) =
    LwfShape(s.dim, s.hidden, s.hidden_layers, s.couplings, k, s.clamp, LWF_BASE_MIXTURE, s.activation,
             s.affine, s.bounded)

validate(s::LwfShape) =
    check(ccall((:lwf_shape_validate, LIB), Cint, (Ref{LwfShape},), s), :lwf_shape_validate)

for (f, sym) in ((:param_count, :lwf_shape_param_count), (:workspace_count, :lwf_shape_workspace_count),
                 (:model_size, :lwf_shape_model_size), (:serialized_size, :lwf_shape_serialized_size))
    @eval function $f(s::LwfShape)
        out = Ref{Csize_t}(0)
        check(ccall(($(QuoteNode(sym)), LIB), Cint, (Ref{LwfShape}, Ref{Csize_t}), s, out), $(QuoteNode(sym)))
        Int(out[])
    end
end

function adam_default(; kwargs...)
    a = Ref{LwfAdam}()
    check(ccall((:lwf_adam_default, LIB), Cint, (Ref{LwfAdam},), a), :lwf_adam_default)
    d = a[]
    get_(k) = Float64(get(kwargs, k, getfield(d, k)))
    LwfAdam(get_(:lr), get_(:beta1), get_(:beta2), get_(:eps), get_(:weight_decay))
end

# ---- rng ----
mutable struct Rng
    state::LwfRng
end
function Rng(seed::Integer)
    r = Ref{LwfRng}()
    check(ccall((:lwf_rng_init, LIB), Cint, (Ref{LwfRng}, UInt64), r, seed), :lwf_rng_init)
    Rng(r[])
end
function jump!(r::Rng)
    ref = Ref(r.state)
    check(ccall((:lwf_rng_jump, LIB), Cint, (Ref{LwfRng},), ref), :lwf_rng_jump)
    r.state = ref[]
    r
end

# ---- models: the memory is a Vector{Float64} owned by the Model (Julia arrays are 8-byte
# aligned and never moved by the GC); every call preserves it. ----
mutable struct Model
    mem::Vector{Float64}
    handle::Ptr{Cvoid}
    dim::Int
end

function Model(s::LwfShape, seed::Integer)
    bytes = model_size(s)
    mem = Vector{Float64}(undef, cld(bytes, 8))
    h = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:lwf_model_init, LIB), Cint,
                (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, UInt64, Ref{Ptr{Cvoid}}),
                mem, bytes, s, seed, h), :lwf_model_init)
    Model(mem, h[], Int(s.dim))
end

function inspect(bytes::Vector{UInt8})
    s = Ref{LwfShape}()
    check(ccall((:lwf_model_inspect, LIB), Cint, (Ptr{UInt8}, Csize_t, Ref{LwfShape}),
                bytes, length(bytes), s), :lwf_model_inspect)
    s[]
end

function load(bytes::Vector{UInt8})
    s = inspect(bytes)
    size_ = model_size(s)
    mem = Vector{Float64}(undef, cld(size_, 8))
    h = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:lwf_model_load, LIB), Cint,
                (Ptr{Cvoid}, Csize_t, Ptr{UInt8}, Csize_t, Ref{Ptr{Cvoid}}),
                mem, size_, bytes, length(bytes), h), :lwf_model_load)
    Model(mem, h[], Int(s.dim))
end

function model_shape(m::Model)
    s = Ref{LwfShape}()
    GC.@preserve m check(ccall((:lwf_model_shape, LIB), Cint, (Ptr{Cvoid}, Ref{LwfShape}), m.handle, s),
                         :lwf_model_shape)
    s[]
end

function save(m::Model)
    bytes = Vector{UInt8}(undef, serialized_size(model_shape(m)))
    written = Ref{Csize_t}(0)
    GC.@preserve m check(ccall((:lwf_model_save, LIB), Cint, (Ptr{Cvoid}, Ptr{UInt8}, Csize_t, Ref{Csize_t}),
                               m.handle, bytes, length(bytes), written), :lwf_model_save)
    resize!(bytes, written[])
end

function params(m::Model)
    p = Vector{Float64}(undef, param_count(model_shape(m)))
    GC.@preserve m check(ccall((:lwf_model_get_params, LIB), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t),
                               m.handle, p, length(p)), :lwf_model_get_params)
    p
end

function set_params!(m::Model, p::Vector{Float64})
    GC.@preserve m check(ccall((:lwf_model_set_params, LIB), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t),
                               m.handle, p, length(p)), :lwf_model_set_params)
    m
end

function set_gaussian_base!(m::Model, loc::Vector{Float64}, scale::Vector{Float64})
    GC.@preserve m check(ccall((:lwf_model_set_gaussian_base, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                               m.handle, loc, length(loc), scale, length(scale)), :lwf_model_set_gaussian_base)
    m
end

"Box support [lo, hi] of a model whose shape has `bounded = 1`."
function set_box!(m::Model, lo::Vector{Float64}, hi::Vector{Float64})
    length(lo) == length(hi) || throw(DimensionMismatch("lo and hi differ in length"))
    GC.@preserve m check(ccall((:lwf_model_set_box, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t),
                               m.handle, lo, hi, length(lo)), :lwf_model_set_box)
    m
end

"Affine standardisation y = shift + L u of a model whose shape has `affine = 1` (L lower-triangular, packed row by row)."
function set_affine!(m::Model, shift::Vector{Float64}, chol_packed::Vector{Float64})
    GC.@preserve m check(ccall((:lwf_model_set_affine, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                               m.handle, shift, length(shift), chol_packed, length(chol_packed)),
                         :lwf_model_set_affine)
    m
end

"Mixture base: weights (K), means and scales as D × K matrices (column k = component k)."
function set_mixture_base!(m::Model, weights::Vector{Float64}, means::AbstractMatrix{Float64},
                           scales::AbstractMatrix{Float64})
    mu, sd = Matrix{Float64}(means), Matrix{Float64}(scales)
    GC.@preserve m check(ccall((:lwf_model_set_mixture_base, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                               m.handle, weights, length(weights), mu, length(mu), sd, length(sd)),
                         :lwf_model_set_mixture_base)
    m
end

"log q of the columns of theta (D × n) into out (n)."
function log_prob!(out::Vector{Float64}, m::Model, theta::AbstractMatrix{Float64})
    t = Matrix{Float64}(theta)
    GC.@preserve m check(ccall((:lwf_model_log_prob, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                               m.handle, t, length(t), out, length(out)), :lwf_model_log_prob)
    out
end
log_prob(m::Model, theta::AbstractMatrix{Float64}) = log_prob!(Vector{Float64}(undef, size(theta, 2)), m, theta)

"Thread-safe log q: reads the model only; ws = zeros(workspace_count(model_shape(m))) per thread."
function log_prob!(out::Vector{Float64}, m::Model, theta::AbstractMatrix{Float64}, ws::Vector{Float64})
    t = Matrix{Float64}(theta)
    GC.@preserve m check(ccall((:lwf_model_log_prob_ws, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                               m.handle, t, length(t), out, length(out), ws, length(ws)), :lwf_model_log_prob_ws)
    out
end

"n samples (D × n matrix) and their log q, advancing r."
function sample(m::Model, r::Rng, n::Integer)
    theta = Matrix{Float64}(undef, m.dim, n)
    logq = Vector{Float64}(undef, n)
    ref = Ref(r.state)
    GC.@preserve m check(ccall((:lwf_model_sample, LIB), Cint,
                               (Ptr{Cvoid}, Ref{LwfRng}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                               m.handle, ref, theta, length(theta), logq, n), :lwf_model_sample)
    r.state = ref[]
    theta, logq
end

"Thread-safe sampling with a caller workspace (one Rng and workspace per thread)."
function sample(m::Model, r::Rng, n::Integer, ws::Vector{Float64})
    theta = Matrix{Float64}(undef, m.dim, n)
    logq = Vector{Float64}(undef, n)
    ref = Ref(r.state)
    GC.@preserve m check(ccall((:lwf_model_sample_ws, LIB), Cint,
                               (Ptr{Cvoid}, Ref{LwfRng}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t,
                                Ptr{Cdouble}, Csize_t),
                               m.handle, ref, theta, length(theta), logq, n, ws, length(ws)), :lwf_model_sample_ws)
    r.state = ref[]
    theta, logq
end

for (f, sym) in ((:forward, :lwf_model_forward), (:inverse, :lwf_model_inverse))
    @eval function $f(m::Model, x::AbstractMatrix{Float64})
        src = Matrix{Float64}(x)
        dst = similar(src)
        logdet = Vector{Float64}(undef, size(src, 2))
        GC.@preserve m check(ccall(($(QuoteNode(sym)), LIB), Cint,
                                   (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t),
                                   m.handle, src, length(src), dst, length(dst), logdet, length(logdet)),
                             $(QuoteNode(sym)))
        dst, logdet
    end
end

"Loss of the weighted batch (theta D × n, w n); its gradient into g (param_count)."
function loss_grad!(g::Vector{Float64}, m::Model, theta::AbstractMatrix{Float64}, w::Vector{Float64})
    t = Matrix{Float64}(theta)
    loss = Ref{Cdouble}(0)
    GC.@preserve m check(ccall((:lwf_model_loss_grad, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t,
                                Ref{Cdouble}),
                               m.handle, t, length(t), w, length(w), g, length(g), loss), :lwf_model_loss_grad)
    loss[]
end

"Adds scale × the batch's unnormalised gradient to g and returns loss + scale × its loss."
function loss_grad_accumulate!(g::Vector{Float64}, m::Model, theta::AbstractMatrix{Float64},
                               w::Vector{Float64}, scale::Float64, loss::Float64 = 0.0)
    t = Matrix{Float64}(theta)
    l = Ref{Cdouble}(loss)
    GC.@preserve m check(ccall((:lwf_model_loss_grad_accumulate, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Cdouble, Ptr{Cdouble},
                                Csize_t, Ref{Cdouble}),
                               m.handle, t, length(t), w, length(w), scale, g, length(g), l),
                         :lwf_model_loss_grad_accumulate)
    l[]
end

function adam_step!(m::Model, a::LwfAdam, g::Vector{Float64})
    GC.@preserve m check(ccall((:lwf_model_adam_step, LIB), Cint, (Ptr{Cvoid}, Ref{LwfAdam}, Ptr{Cdouble}, Csize_t),
                               m.handle, a, g, length(g)), :lwf_model_adam_step)
    m
end

function adam_reset!(m::Model)
    GC.@preserve m check(ccall((:lwf_model_adam_reset, LIB), Cint, (Ptr{Cvoid},), m.handle),
                         :lwf_model_adam_reset)
    m
end

# ---- fit (phase 2) ----

"The default fit configuration (lwf_fit_config_default), with keyword overrides of any field."
function fit_config_default(; kwargs...)
    c = Ref{LwfFitConfig}()
    check(ccall((:lwf_fit_config_default, LIB), Cint, (Ref{LwfFitConfig},), c), :lwf_fit_config_default)
    d = c[]
    LwfFitConfig((haskey(kwargs, f) ? convert(fieldtype(LwfFitConfig, f), kwargs[f]) : getfield(d, f)
                  for f in fieldnames(LwfFitConfig))...)
end

function fit_model_size(s::LwfShape, c::LwfFitConfig)
    out = Ref{Csize_t}(0)
    check(ccall((:lwf_fit_model_size, LIB), Cint, (Ref{LwfShape}, Ref{LwfFitConfig}, Ref{Csize_t}), s, c, out),
          :lwf_fit_model_size)
    Int(out[])
end

function fit_work_size(s::LwfShape, c::LwfFitConfig, n::Integer)
    out = Ref{Csize_t}(0)
    check(ccall((:lwf_fit_work_size, LIB), Cint, (Ref{LwfShape}, Ref{LwfFitConfig}, Csize_t, Ref{Csize_t}),
                s, c, n, out), :lwf_fit_work_size)
    Int(out[])
end

# The Julia callables travel through the C `user` pointer; an exception inside them is caught
# (it must not unwind through the library), turned into a non-zero return and rethrown after
# the call.
mutable struct FitCallbacks
    loglik!::Any
    progress::Any
    error::Any
    checkpoint::Any
end
FitCallbacks(loglik!, progress, error) = FitCallbacks(loglik!, progress, error, nothing)

function _loglik_trampoline(theta::Ptr{Cdouble}, n::Csize_t, dim::Csize_t, out::Ptr{Cdouble},
                            user::Ptr{Cvoid})::Cint
    cb = unsafe_pointer_to_objref(user)::FitCallbacks
    try
        cb.loglik!(unsafe_wrap(Vector{Float64}, out, Int(n)),
                   unsafe_wrap(Matrix{Float64}, theta, (Int(dim), Int(n))))
        return Cint(0)
    catch e
        cb.error = e
        return Cint(1)
    end
end

function _progress_trampoline(report::Ptr{LwfEpochReport}, user::Ptr{Cvoid})::Cint
    cb = unsafe_pointer_to_objref(user)::FitCallbacks
    try
        return cb.progress(unsafe_load(report)) ? Cint(0) : Cint(1)
    catch e
        cb.error = e
        return Cint(1)
    end
end

function _fit_result(status::Cint, cb::FitCallbacks, mem, h, report, s::LwfShape, func::Symbol)
    _fit_result(status, cb, mem, h, report, Int(s.dim), func)
end
function _fit_result(status::Cint, cb::FitCallbacks, mem, h, report, dim::Int, func::Symbol)
    cb.error === nothing || throw(cb.error)
    status == LWF_CANCELLED || check(status, func)
    # A checkpoint callback that stops a fit at epoch 0 leaves no model.
    h[] == C_NULL && throw(LwflowError(status, func))
    Model(mem, h[], dim), report[]
end

function _checkpoint_trampoline(bytes::Ptr{UInt8}, len::Csize_t, epoch::Csize_t,
                                user::Ptr{Cvoid})::Cint
    cb = unsafe_pointer_to_objref(user)::FitCallbacks
    try
        return cb.checkpoint(unsafe_wrap(Vector{UInt8}, bytes, Int(len)), Int(epoch)) ? Cint(0) : Cint(1)
    catch e
        cb.error = e
        return Cint(1)
    end
end

"Bytes of the checkpoint buffer of the resumable fits (lwf_fit_checkpoint_size)."
function fit_checkpoint_size(s::LwfShape, c::LwfFitConfig, n::Integer)
    out = Ref{Csize_t}(0)
    check(ccall((:lwf_fit_checkpoint_size, LIB), Cint,
                (Ref{LwfShape}, Ref{LwfFitConfig}, Csize_t, Ref{Csize_t}), s, c, n, out),
          :lwf_fit_checkpoint_size)
    Int(out[])
end

"Checks fit checkpoint bytes and returns their LwfFitCheckpointInfo (lwf_fit_checkpoint_inspect)."
function checkpoint_info(bytes::Vector{UInt8})
    out = Ref{LwfFitCheckpointInfo}()
    check(ccall((:lwf_fit_checkpoint_inspect, LIB), Cint,
                (Ptr{UInt8}, Csize_t, Ref{LwfFitCheckpointInfo}), bytes, length(bytes), out),
          :lwf_fit_checkpoint_inspect)
    out[]
end

"""
    fit_prior_box_resumable(shape, lo, hi, n, loglik!, checkpoint; config, progress = nothing)

`fit_prior_box` that calls `checkpoint(bytes, epoch)` after the last likelihood call (epoch 0)
and after every epoch: `bytes` (valid during the call only: copy or write them) is everything
`fit_resume` needs to finish the fit, bit-identically and without a likelihood call. Returning
`false` stops the fit (at epoch 0 with an LwflowError: there is no model yet).
"""
function fit_prior_box_resumable(s::LwfShape, lo::Vector{Float64}, hi::Vector{Float64}, n::Integer,
                                 loglik!, checkpoint; config::LwfFitConfig = fit_config_default(),
                                 progress = nothing)
    mem_bytes, work_bytes = fit_model_size(s, config), fit_work_size(s, config, n)
    ck_bytes = fit_checkpoint_size(s, config, n)
    mem = Vector{Float64}(undef, cld(mem_bytes, 8))
    work = Vector{Float64}(undef, cld(work_bytes, 8))
    ck = Vector{UInt8}(undef, ck_bytes)
    cb = FitCallbacks(loglik!, progress, nothing, checkpoint)
    lik_c = @cfunction(_loglik_trampoline, Cint, (Ptr{Cdouble}, Csize_t, Csize_t, Ptr{Cdouble}, Ptr{Cvoid}))
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_progress_trampoline, Cint, (Ptr{LwfEpochReport}, Ptr{Cvoid}))
    ck_c = @cfunction(_checkpoint_trampoline, Cint, (Ptr{UInt8}, Csize_t, Csize_t, Ptr{Cvoid}))
    report = Ref{LwfFitReport}()
    h = Ref{Ptr{Cvoid}}(C_NULL)
    status = GC.@preserve cb mem work ck begin
        user = pointer_from_objref(cb)
        ccall((:lwf_model_fit_prior_box_resumable, LIB), Cint,
              (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, Ref{LwfFitConfig}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble},
               Csize_t, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid},
               Ptr{Cvoid}, Csize_t, Ptr{Cvoid}, Csize_t, Ref{LwfFitReport}, Ref{Ptr{Cvoid}}),
              mem, mem_bytes, s, config, lo, length(lo), hi, length(hi), n, lik_c, user, prog_c,
              progress === nothing ? C_NULL : user, ck_c, user, ck, ck_bytes, work, work_bytes,
              report, h)
    end
    _fit_result(status, cb, mem, h, report, s, :lwf_model_fit_prior_box_resumable)
end

"""
    fit_samples_resumable(shape, theta, log_weights, checkpoint; lo = Float64[], hi = Float64[],
                          config, progress = nothing)

`fit_samples` (no box: `lo` and `hi` empty) or `fit_samples_in_box` with checkpoints as in
`fit_prior_box_resumable`; the first holds every sample with its log-weight.
"""
function fit_samples_resumable(s::LwfShape, theta::AbstractMatrix{Float64}, log_weights::Vector{Float64},
                               checkpoint; lo::Vector{Float64} = Float64[], hi::Vector{Float64} = Float64[],
                               config::LwfFitConfig = fit_config_default(), progress = nothing)
    t = Matrix{Float64}(theta)
    n = size(t, 2)
    mem_bytes, work_bytes = fit_model_size(s, config), fit_work_size(s, config, n)
    ck_bytes = fit_checkpoint_size(s, config, n)
    mem = Vector{Float64}(undef, cld(mem_bytes, 8))
    work = Vector{Float64}(undef, cld(work_bytes, 8))
    ck = Vector{UInt8}(undef, ck_bytes)
    cb = FitCallbacks(nothing, progress, nothing, checkpoint)
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_progress_trampoline, Cint, (Ptr{LwfEpochReport}, Ptr{Cvoid}))
    ck_c = @cfunction(_checkpoint_trampoline, Cint, (Ptr{UInt8}, Csize_t, Csize_t, Ptr{Cvoid}))
    report = Ref{LwfFitReport}()
    h = Ref{Ptr{Cvoid}}(C_NULL)
    status = GC.@preserve cb mem work ck begin
        user = pointer_from_objref(cb)
        ccall((:lwf_model_fit_samples_resumable, LIB), Cint,
              (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, Ref{LwfFitConfig}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble},
               Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid},
               Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ptr{Cvoid}, Csize_t, Ref{LwfFitReport}, Ref{Ptr{Cvoid}}),
              mem, mem_bytes, s, config, lo, length(lo), hi, length(hi), t, length(t), log_weights,
              length(log_weights), prog_c, progress === nothing ? C_NULL : user, ck_c, user, ck,
              ck_bytes, work, work_bytes, report, h)
    end
    _fit_result(status, cb, mem, h, report, s, :lwf_model_fit_samples_resumable)
end

"""
    fit_resume(bytes; checkpoint = nothing, progress = nothing)

Finishes a fit from its checkpoint `bytes` (lwf_model_fit_resume): the model and report of the
uninterrupted fit, bit for bit, without a likelihood call. `checkpoint(bytes, epoch)` (optional)
receives the later checkpoints. Returns `(model, report)`.
"""
function fit_resume(bytes::Vector{UInt8}; checkpoint = nothing, progress = nothing)
    info = checkpoint_info(bytes)
    mem = Vector{Float64}(undef, cld(Int(info.model_bytes), 8))
    work = Vector{Float64}(undef, cld(Int(info.work_bytes), 8))
    ck = Vector{UInt8}(undef, checkpoint === nothing ? 0 : Int(info.checkpoint_bytes))
    cb = FitCallbacks(nothing, progress, nothing, checkpoint)
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_progress_trampoline, Cint, (Ptr{LwfEpochReport}, Ptr{Cvoid}))
    ck_c = checkpoint === nothing ? C_NULL :
           @cfunction(_checkpoint_trampoline, Cint, (Ptr{UInt8}, Csize_t, Csize_t, Ptr{Cvoid}))
    report = Ref{LwfFitReport}()
    h = Ref{Ptr{Cvoid}}(C_NULL)
    status = GC.@preserve cb mem work ck bytes begin
        user = pointer_from_objref(cb)
        ccall((:lwf_model_fit_resume, LIB), Cint,
              (Ptr{Cvoid}, Csize_t, Ptr{UInt8}, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid},
               Ptr{Cvoid}, Csize_t, Ptr{Cvoid}, Csize_t, Ref{LwfFitReport}, Ref{Ptr{Cvoid}}),
              mem, info.model_bytes, bytes, length(bytes), prog_c,
              progress === nothing ? C_NULL : user, ck_c, checkpoint === nothing ? C_NULL : user,
              ck, length(ck), work, info.work_bytes, report, h)
    end
    _fit_result(status, cb, mem, h, report, Int(info.dim), :lwf_model_fit_resume)
end

"""
    fit_prior_box(shape, lo, hi, n, loglik!; config = fit_config_default(), progress = nothing)

Fits a model to the posterior of a uniform prior on the box [lo, hi] and the likelihood
`loglik!(out, θ)`, which fills `out[i]` with log p(D | θ[:, i]) for a D × m batch θ. `progress(r)`
sees every epoch's `LwfEpochReport` and returns `false` to stop (the fit then returns the best
model so far with `report.stop_reason == LWF_STOP_CANCELLED`). Returns `(model, report)`.
"""
function fit_prior_box(s::LwfShape, lo::Vector{Float64}, hi::Vector{Float64}, n::Integer, loglik!;
                       config::LwfFitConfig = fit_config_default(), progress = nothing)
    mem_bytes, work_bytes = fit_model_size(s, config), fit_work_size(s, config, n)
    mem = Vector{Float64}(undef, cld(mem_bytes, 8))
    work = Vector{Float64}(undef, cld(work_bytes, 8))
    cb = FitCallbacks(loglik!, progress, nothing)
    lik_c = @cfunction(_loglik_trampoline, Cint, (Ptr{Cdouble}, Csize_t, Csize_t, Ptr{Cdouble}, Ptr{Cvoid}))
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_progress_trampoline, Cint, (Ptr{LwfEpochReport}, Ptr{Cvoid}))
    report = Ref{LwfFitReport}()
    h = Ref{Ptr{Cvoid}}(C_NULL)
    status = GC.@preserve cb mem work begin
        user = pointer_from_objref(cb)
        ccall((:lwf_model_fit_prior_box, LIB), Cint,
              (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, Ref{LwfFitConfig}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble},
               Csize_t, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Csize_t,
               Ref{LwfFitReport}, Ref{Ptr{Cvoid}}),
              mem, mem_bytes, s, config, lo, length(lo), hi, length(hi), n, lik_c, user, prog_c,
              progress === nothing ? C_NULL : user, work, work_bytes, report, h)
    end
    _fit_result(status, cb, mem, h, report, s, :lwf_model_fit_prior_box)
end

"""
    fit_samples(shape, theta, log_weights; config = fit_config_default(), progress = nothing)

Fits a model to the weighted samples `theta` (D × n) with log-weights `log_weights` (n: the
log-likelihoods for prior samples). Returns `(model, report)` as `fit_prior_box`.
"""
function fit_samples(s::LwfShape, theta::AbstractMatrix{Float64}, log_weights::Vector{Float64};
                     config::LwfFitConfig = fit_config_default(), progress = nothing)
    t = Matrix{Float64}(theta)
    n = size(t, 2)
    mem_bytes, work_bytes = fit_model_size(s, config), fit_work_size(s, config, n)
    mem = Vector{Float64}(undef, cld(mem_bytes, 8))
    work = Vector{Float64}(undef, cld(work_bytes, 8))
    cb = FitCallbacks(nothing, progress, nothing)
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_progress_trampoline, Cint, (Ptr{LwfEpochReport}, Ptr{Cvoid}))
    report = Ref{LwfFitReport}()
    h = Ref{Ptr{Cvoid}}(C_NULL)
    status = GC.@preserve cb mem work begin
        ccall((:lwf_model_fit_samples, LIB), Cint,
              (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, Ref{LwfFitConfig}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble},
               Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ref{LwfFitReport}, Ref{Ptr{Cvoid}}),
              mem, mem_bytes, s, config, t, length(t), log_weights, length(log_weights), prog_c,
              progress === nothing ? C_NULL : pointer_from_objref(cb), work, work_bytes, report, h)
    end
    _fit_result(status, cb, mem, h, report, s, :lwf_model_fit_samples)
end

"""
    fit_samples_in_box(shape, lo, hi, theta, log_weights; config = fit_config_default(), progress = nothing)

`fit_samples` on the box [lo, hi]: the model lives on the box unless `config.bounded == 0`;
every sample of non-zero weight must lie inside it. Returns `(model, report)`.
"""
function fit_samples_in_box(s::LwfShape, lo::Vector{Float64}, hi::Vector{Float64},
                            theta::AbstractMatrix{Float64}, log_weights::Vector{Float64};
                            config::LwfFitConfig = fit_config_default(), progress = nothing)
    t = Matrix{Float64}(theta)
    n = size(t, 2)
    mem_bytes, work_bytes = fit_model_size(s, config), fit_work_size(s, config, n)
    mem = Vector{Float64}(undef, cld(mem_bytes, 8))
    work = Vector{Float64}(undef, cld(work_bytes, 8))
    cb = FitCallbacks(nothing, progress, nothing)
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_progress_trampoline, Cint, (Ptr{LwfEpochReport}, Ptr{Cvoid}))
    report = Ref{LwfFitReport}()
    h = Ref{Ptr{Cvoid}}(C_NULL)
    status = GC.@preserve cb mem work begin
        ccall((:lwf_model_fit_samples_in_box, LIB), Cint,
              (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, Ref{LwfFitConfig}, Ptr{Cdouble}, Csize_t, Ptr{Cdouble},
               Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid},
               Csize_t, Ref{LwfFitReport}, Ref{Ptr{Cvoid}}),
              mem, mem_bytes, s, config, lo, length(lo), hi, length(hi), t, length(t), log_weights,
              length(log_weights), prog_c, progress === nothing ? C_NULL : pointer_from_objref(cb),
              work, work_bytes, report, h)
    end
    _fit_result(status, cb, mem, h, report, s, :lwf_model_fit_samples_in_box)
end

# ---- refinement: ask / tell, or the likelihood as a callback ----

"The default refinement settings for dimension `dim` (lwf_refine_config_default), with keyword overrides."
function refine_config_default(dim::Integer; kwargs...)
    c = Ref{LwfRefineConfig}()
    check(ccall((:lwf_refine_config_default, LIB), Cint, (Csize_t, Ref{LwfRefineConfig}), dim, c),
          :lwf_refine_config_default)
    d = c[]
    LwfRefineConfig((haskey(kwargs, f) ? convert(fieldtype(LwfRefineConfig, f), kwargs[f]) : getfield(d, f)
                     for f in fieldnames(LwfRefineConfig))...)
end

function refine_work_size(s::LwfShape, c::LwfRefineConfig)
    out = Ref{Csize_t}(0)
    check(ccall((:lwf_refine_work_size, LIB), Cint, (Ref{LwfShape}, Ref{LwfRefineConfig}, Ref{Csize_t}),
                s, c, out), :lwf_refine_work_size)
    Int(out[])
end

"A refinement in work memory this object owns (a Vector{Float64}: 8-byte aligned, never moved)."
mutable struct Refinement
    work::Vector{Float64}
    handle::Ptr{Cvoid}
    dim::Int
end

"""
    Refinement(shape, lo, hi; config = refine_config_default(length(lo)))

Starts a refinement of the posterior ∝ L(θ) × uniform prior on the box [lo, hi]. Drive it with
`ask` / `tell!` or `run!`; `refine_model` gives the fitted model at the end.
"""
function Refinement(s::LwfShape, lo::Vector{Float64}, hi::Vector{Float64};
                    config::LwfRefineConfig = refine_config_default(length(lo)))
    bytes = refine_work_size(s, config)
    work = Vector{Float64}(undef, cld(bytes, 8))
    h = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:lwf_refine_init, LIB), Cint,
                (Ptr{Cvoid}, Csize_t, Ref{LwfShape}, Ptr{Cdouble}, Ptr{Cdouble}, Csize_t,
                 Ref{LwfRefineConfig}, Ref{Ptr{Cvoid}}),
                work, bytes, s, lo, hi, length(lo), config, h), :lwf_refine_init)
    Refinement(work, h[], Int(s.dim))
end

function batch_capacity(r::Refinement)
    out = Ref{Csize_t}(0)
    GC.@preserve r check(ccall((:lwf_refine_batch_capacity, LIB), Cint, (Ptr{Cvoid}, Ref{Csize_t}),
                               r.handle, out), :lwf_refine_batch_capacity)
    Int(out[])
end

"An LWF_REFINE_* code."
function refine_status(r::Refinement)
    out = Ref{Int32}(-1)
    GC.@preserve r check(ccall((:lwf_refine_status, LIB), Cint, (Ptr{Cvoid}, Ref{Int32}), r.handle, out),
                         :lwf_refine_status)
    out[]
end

"The next batch: a D × n matrix of points inside the box (the same batch until `tell!`)."
function ask(r::Refinement)
    cap = batch_capacity(r)
    theta = Matrix{Float64}(undef, r.dim, cap)
    n = Ref{Csize_t}(0)
    GC.@preserve r check(ccall((:lwf_refine_ask, LIB), Cint, (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ref{Csize_t}),
                               r.handle, theta, cap, n), :lwf_refine_ask)
    theta[:, 1:Int(n[])]
end

"The log-likelihoods of the batch `ask` gave (one per column); returns the round's LwfRefineRound."
function tell!(r::Refinement, loglik::Vector{Float64})
    round = Ref{LwfRefineRound}()
    GC.@preserve r check(ccall((:lwf_refine_tell, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cdouble}, Csize_t, Ref{LwfRefineRound}),
                               r.handle, loglik, length(loglik), round), :lwf_refine_tell)
    round[]
end

function _refine_progress_trampoline(round::Ptr{LwfRefineRound}, user::Ptr{Cvoid})::Cint
    cb = unsafe_pointer_to_objref(user)::FitCallbacks
    try
        return cb.progress(unsafe_load(round)) ? Cint(0) : Cint(1)
    catch e
        cb.error = e
        return Cint(1)
    end
end

"""
    run!(r, loglik!; batch = 4096, progress = nothing)

Runs the refinement to its end: `loglik!(out, θ)` fills `out[i]` with log L(θ[:, i]) for
batches of at most `batch` points; `progress(round)` sees every round and returns `false` to
stop (the refinement can be continued). Returns `true` when it ended, `false` when stopped.
"""
function run!(r::Refinement, loglik!; batch::Integer = 4096, progress = nothing)
    cb = FitCallbacks(loglik!, progress, nothing)
    lik_c = @cfunction(_loglik_trampoline, Cint, (Ptr{Cdouble}, Csize_t, Csize_t, Ptr{Cdouble}, Ptr{Cvoid}))
    prog_c = progress === nothing ? C_NULL :
             @cfunction(_refine_progress_trampoline, Cint, (Ptr{LwfRefineRound}, Ptr{Cvoid}))
    status = GC.@preserve r cb begin
        user = pointer_from_objref(cb)
        ccall((:lwf_refine_run, LIB), Cint,
              (Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ptr{Cvoid}, Ptr{Cvoid}, Ptr{Cvoid}),
              r.handle, lik_c, batch, user, prog_c, progress === nothing ? C_NULL : user)
    end
    cb.error === nothing || throw(cb.error)
    status == LWF_CANCELLED && return false
    check(status, :lwf_refine_run)
    true
end

function refine_report(r::Refinement)
    out = Ref{LwfRefineReport}()
    GC.@preserve r check(ccall((:lwf_refine_report, LIB), Cint, (Ptr{Cvoid}, Ref{LwfRefineReport}),
                               r.handle, out), :lwf_refine_report)
    out[]
end

"The model a finished refinement returned (on the prior box with the default config)."
function refine_model(r::Refinement)
    bytes = Ref{Csize_t}(0)
    GC.@preserve r check(ccall((:lwf_refine_model_size, LIB), Cint, (Ptr{Cvoid}, Ref{Csize_t}),
                               r.handle, bytes), :lwf_refine_model_size)
    mem = Vector{Float64}(undef, cld(Int(bytes[]), 8))
    h = Ref{Ptr{Cvoid}}(C_NULL)
    GC.@preserve r check(ccall((:lwf_refine_write_model, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{Cvoid}, Csize_t, Ref{Ptr{Cvoid}}),
                               r.handle, mem, bytes[], h), :lwf_refine_write_model)
    Model(mem, h[], r.dim)
end

"A checkpoint of the refinement (lwf_refine_checkpoint): its whole memory, length and CRC-32 framed."
function refine_checkpoint(r::Refinement)
    len = Ref{Csize_t}(0)
    GC.@preserve r check(ccall((:lwf_refine_checkpoint_size, LIB), Cint, (Ptr{Cvoid}, Ref{Csize_t}),
                               r.handle, len), :lwf_refine_checkpoint_size)
    bytes = Vector{UInt8}(undef, Int(len[]))
    written = Ref{Csize_t}(0)
    GC.@preserve r check(ccall((:lwf_refine_checkpoint, LIB), Cint,
                               (Ptr{Cvoid}, Ptr{UInt8}, Csize_t, Ref{Csize_t}),
                               r.handle, bytes, length(bytes), written), :lwf_refine_checkpoint)
    bytes
end

"The refinement a `refine_checkpoint` holds, in new memory (lwf_refine_restore); `dim` as at the start."
function refine_restore(bytes::Vector{UInt8}, dim::Integer)
    work_bytes = length(bytes) - 20
    work_bytes > 0 || throw(LwflowError(LWF_BAD_FORMAT, :lwf_refine_restore))
    work = Vector{Float64}(undef, cld(work_bytes, 8))
    h = Ref{Ptr{Cvoid}}(C_NULL)
    check(ccall((:lwf_refine_restore, LIB), Cint,
                (Ptr{Cvoid}, Csize_t, Ptr{UInt8}, Csize_t, Csize_t, Ref{Ptr{Cvoid}}),
                work, 8 * length(work), bytes, length(bytes), dim, h), :lwf_refine_restore)
    Refinement(work, h[], Int(dim))
end

"""
    importance_summary(log_w)

Diagnostics of any density q against a posterior from log-weights
ln L(θᵢ) + ln π(θᵢ) − ln q(θᵢ), θᵢ drawn from q: ln Ẑ ± se, ESS, KL(p‖q) estimate, k̂.
"""
function importance_summary(log_w::Vector{Float64})
    scratch = Vector{Float64}(undef, length(log_w))
    out = Ref{LwfImportanceSummary}()
    check(ccall((:lwf_importance_summary, LIB), Cint,
                (Ptr{Cdouble}, Csize_t, Ptr{Cdouble}, Csize_t, Ref{LwfImportanceSummary}),
                log_w, length(log_w), scratch, length(scratch), out), :lwf_importance_summary)
    out[]
end

"Model memory alignment the library requires (Julia arrays satisfy it)."
model_align() = Int(ccall((:lwf_model_align, LIB), Csize_t, ()))

end # module
