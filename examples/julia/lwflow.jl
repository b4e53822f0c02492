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
# Batches are D × n matrices (column-major), which is the C ABI's row-major [n][D] layout.
module LwFlow

export LwfShape, LwfAdam, Rng, Model, LwflowError, shape_default, with_mixture, validate,
       param_count, workspace_count, model_size, serialized_size, adam_default, log_prob,
       log_prob!, sample, forward, inverse, loss_grad!, loss_grad_accumulate!, adam_step!,
       adam_reset!, params, set_params!, set_gaussian_base!, set_mixture_base!, save, load,
       inspect, jump!, version, status_message, model_shape, model_align
export LWF_OK, LWF_NULL_POINTER, LWF_BUFFER_TOO_SMALL, LWF_LENGTH_MISMATCH, LWF_MISALIGNED,
       LWF_INVALID_SHAPE, LWF_INVALID_ARGUMENT, LWF_NON_FINITE, LWF_EMPTY_BATCH,
       LWF_CALLBACK_FAILED, LWF_CANCELLED, LWF_DEGENERATE_WEIGHTS, LWF_BAD_FORMAT,
       LWF_NOT_CONVERGED, LWF_PANIC, LWF_INVALID_MODEL, LWF_OVERLAPPING_BUFFERS,
       LWF_BASE_STANDARD_NORMAL, LWF_BASE_GAUSSIAN, LWF_BASE_MIXTURE, LWF_ACTIVATION_RELU,
       LWF_ACTIVATION_TANH

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
# LwfBaseKind, LwfActivation
const LWF_BASE_STANDARD_NORMAL = Int32(0)
const LWF_BASE_GAUSSIAN = Int32(1)
const LWF_BASE_MIXTURE = Int32(2)
const LWF_ACTIVATION_RELU = Int32(0)
const LWF_ACTIVATION_TANH = Int32(1)

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
end

"The LwfAdam struct."
struct LwfAdam
    lr::Cdouble
    beta1::Cdouble
    beta2::Cdouble
    eps::Cdouble
    weight_decay::Cdouble
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

# ---- shapes ----
function shape_default(dim::Integer, hidden::Integer, couplings::Integer)
    s = Ref{LwfShape}()
    check(ccall((:lwf_shape_default, LIB), Cint, (Csize_t, Csize_t, Csize_t, Ref{LwfShape}),
                dim, hidden, couplings, s), :lwf_shape_default)
    s[]
end
with_mixture(s::LwfShape, k::Integer) =
    LwfShape(s.dim, s.hidden, s.hidden_layers, s.couplings, k, s.clamp, LWF_BASE_MIXTURE, s.activation)

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

"Model memory alignment the library requires (Julia arrays satisfy it)."
model_align() = Int(ccall((:lwf_model_align, LIB), Csize_t, ()))

end # module
