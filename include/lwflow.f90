! lwflow.f90: Fortran 2008 interface (iso_c_binding) to the C ABI declared in lwflow.h.
! SPDX-License-Identifier: MIT OR Apache-2.0
!
! Every function returns an integer(c_int) status (LWF_OK = 0; lwf_status_string gives its
! message). Arrays are passed as assumed-size dummies, so pass the first element or the whole
! array; their lengths are separate integer(c_size_t) arguments, as in C. A batch of n points
! in D dimensions is a real(c_double) array theta(D, n) (column-major (D, n) is C's row-major
! [n][D]). Model memory is yours: allocate real(c_double), target :: mem((bytes + 7) / 8) and
! pass c_loc(mem); the model handle is a type(c_ptr) that points into it.
!
! Kept in step with lwflow.h by ffi/tests/fortran_program.rs, which checks that every function of
! the header is bound here with the same name.
module lwflow
   use, intrinsic :: iso_c_binding, only: c_int, c_int8_t, c_int32_t, c_int64_t, c_size_t, &
      c_double, c_ptr, c_funptr, c_char, c_null_char, c_f_pointer, c_associated
   implicit none
   private

   ! Version of the header this module mirrors (lwflow.h's LWFLOW_VERSION_*).
   integer(c_int32_t), parameter, public :: LWFLOW_VERSION_MAJOR = 0
   integer(c_int32_t), parameter, public :: LWFLOW_VERSION_MINOR = 1
   integer(c_int32_t), parameter, public :: LWFLOW_VERSION_PATCH = 0
   integer(c_int32_t), parameter, public :: LWFLOW_VERSION = &
      LWFLOW_VERSION_MAJOR*10000 + LWFLOW_VERSION_MINOR*100 + LWFLOW_VERSION_PATCH

   ! LwfStatus
   integer(c_int), parameter, public :: LWF_OK = 0
   integer(c_int), parameter, public :: LWF_NULL_POINTER = 1
   integer(c_int), parameter, public :: LWF_BUFFER_TOO_SMALL = 2
   integer(c_int), parameter, public :: LWF_LENGTH_MISMATCH = 3
   integer(c_int), parameter, public :: LWF_MISALIGNED = 4
   integer(c_int), parameter, public :: LWF_INVALID_SHAPE = 5
   integer(c_int), parameter, public :: LWF_INVALID_ARGUMENT = 6
   integer(c_int), parameter, public :: LWF_NON_FINITE = 7
   integer(c_int), parameter, public :: LWF_EMPTY_BATCH = 8
   integer(c_int), parameter, public :: LWF_CALLBACK_FAILED = 9
   integer(c_int), parameter, public :: LWF_CANCELLED = 10
   integer(c_int), parameter, public :: LWF_DEGENERATE_WEIGHTS = 11
   integer(c_int), parameter, public :: LWF_BAD_FORMAT = 12
   integer(c_int), parameter, public :: LWF_NOT_CONVERGED = 13
   integer(c_int), parameter, public :: LWF_PANIC = 14
   integer(c_int), parameter, public :: LWF_INVALID_MODEL = 15
   integer(c_int), parameter, public :: LWF_OVERLAPPING_BUFFERS = 16
   integer(c_int), parameter, public :: LWF_BUSY = 17

   ! LwfBaseKind and LwfActivation codes (for lwf_shape%base and lwf_shape%activation)
   integer(c_int32_t), parameter, public :: LWF_BASE_STANDARD_NORMAL = 0
   integer(c_int32_t), parameter, public :: LWF_BASE_GAUSSIAN = 1
   integer(c_int32_t), parameter, public :: LWF_BASE_MIXTURE = 2
   integer(c_int32_t), parameter, public :: LWF_ACTIVATION_RELU = 0
   integer(c_int32_t), parameter, public :: LWF_ACTIVATION_TANH = 1

   ! LwfFitBase, LwfSchedule, LwfNonFinitePolicy codes (for lwf_fit_config fields) and
   ! LwfStopReason (lwf_fit_report%stop_reason)
   integer(c_int32_t), parameter, public :: LWF_FIT_BASE_GAUSSIAN = 0
   integer(c_int32_t), parameter, public :: LWF_FIT_BASE_PAPER_MIXTURE = 1
   integer(c_int32_t), parameter, public :: LWF_FIT_BASE_MIXTURE = 2
   integer(c_int32_t), parameter, public :: LWF_FIT_BASE_AUTO = 3
   integer(c_int32_t), parameter, public :: LWF_SCHEDULE_CONSTANT = 0
   integer(c_int32_t), parameter, public :: LWF_SCHEDULE_COSINE = 1
   integer(c_int32_t), parameter, public :: LWF_NON_FINITE_ERROR = 0
   integer(c_int32_t), parameter, public :: LWF_NON_FINITE_SKIP = 1

   ! LwfKernels codes (lwf_kernels, lwf_use_kernels)
   integer(c_int32_t), parameter, public :: LWF_KERNELS_PORTABLE = 0
   integer(c_int32_t), parameter, public :: LWF_KERNELS_AVX2 = 1
   integer(c_int32_t), parameter, public :: LWF_KERNELS_AVX512 = 2
   integer(c_int32_t), parameter, public :: LWF_STOP_MAX_EPOCHS = 0
   integer(c_int32_t), parameter, public :: LWF_STOP_EARLY = 1
   integer(c_int32_t), parameter, public :: LWF_STOP_CANCELLED = 2

   ! LwfRefineStatus (lwf_refine_status, lwf_refine_report_t%status)
   integer(c_int32_t), parameter, public :: LWF_REFINE_RUNNING = 0
   integer(c_int32_t), parameter, public :: LWF_REFINE_CONVERGED = 1
   integer(c_int32_t), parameter, public :: LWF_REFINE_BUDGET_EXHAUSTED = 2
   integer(c_int32_t), parameter, public :: LWF_REFINE_MAX_ROUNDS = 3
   integer(c_int32_t), parameter, public :: LWF_REFINE_FAILED = 4

   !> LwfShape: fill with lwf_shape_default, then change fields.
   type, bind(c), public :: lwf_shape
      integer(c_size_t) :: dim
      integer(c_size_t) :: hidden
      integer(c_size_t) :: hidden_layers
      integer(c_size_t) :: couplings
      integer(c_size_t) :: components
      real(c_double) :: clamp
      integer(c_int32_t) :: base
      integer(c_int32_t) :: activation
      integer(c_int32_t) :: affine
      integer(c_int32_t) :: bounded
   end type lwf_shape

   !> LwfAdam: fill with lwf_adam_default.
   type, bind(c), public :: lwf_adam
      real(c_double) :: lr
      real(c_double) :: beta1
      real(c_double) :: beta2
      real(c_double) :: eps
      real(c_double) :: weight_decay
   end type lwf_adam

   !> LwfRng: caller-held xoshiro256++ state (the words are unsigned in C).
   type, bind(c), public :: lwf_rng
      integer(c_int64_t) :: state(4)
   end type lwf_rng

   !> LwfFitConfig: fill with lwf_fit_config_default, then change fields (same order and types
   !> as lwflow.h; c_sizeof(config) must equal config%struct_size). Seeds are unsigned in C.
   type, bind(c), public :: lwf_fit_config
      integer(c_size_t) :: struct_size
      integer(c_int32_t) :: base
      integer(c_int32_t) :: non_finite
      integer(c_size_t) :: components
      real(c_double) :: min_ess
      integer(c_int64_t) :: sample_seed
      integer(c_size_t) :: likelihood_batch
      integer(c_size_t) :: em_max_iter
      real(c_double) :: em_tol
      real(c_double) :: em_var_floor
      integer(c_size_t) :: em_restarts
      real(c_double) :: em_min_weight
      integer(c_int64_t) :: em_seed
      integer(c_size_t) :: max_epochs
      integer(c_size_t) :: batch_size
      real(c_double) :: lr
      real(c_double) :: beta1
      real(c_double) :: beta2
      real(c_double) :: eps
      real(c_double) :: weight_decay
      integer(c_int32_t) :: schedule
      real(c_double) :: min_lr_factor
      integer(c_size_t) :: patience
      real(c_double) :: validation_fraction
      real(c_double) :: clip_norm
      real(c_double) :: min_weight
      integer(c_int64_t) :: seed
      integer(c_int64_t) :: init_seed
      integer(c_int32_t) :: bounded
   end type lwf_fit_config

   !> LwfEpochReport: what the progress callback receives after every epoch.
   type, bind(c), public :: lwf_epoch_report
      integer(c_size_t) :: epoch
      integer(c_size_t) :: max_epochs
      real(c_double) :: train_loss
      real(c_double) :: val_loss
      real(c_double) :: best_val_loss
      real(c_double) :: lr
      integer(c_int64_t) :: skipped_steps
   end type lwf_epoch_report

   !> LwfFitReport: what a fit did (written on LWF_OK and LWF_CANCELLED).
   type, bind(c), public :: lwf_fit_report
      integer(c_size_t) :: n_samples
      integer(c_size_t) :: skipped_samples
      real(c_double) :: ess
      real(c_double) :: log_mean_weight
      integer(c_size_t) :: components
      integer(c_size_t) :: em_iterations
      real(c_double) :: em_mean_log_likelihood
      real(c_double) :: em_bic
      integer(c_size_t) :: epochs
      integer(c_size_t) :: best_epoch
      integer(c_int64_t) :: steps
      integer(c_int64_t) :: skipped_steps
      real(c_double) :: initial_val_loss
      real(c_double) :: best_val_loss
      integer(c_int32_t) :: stop_reason
   end type lwf_fit_report

   !> LwfRefineConfig: fill with lwf_refine_config_default(dim, config), then change fields
   !> (same order and types as lwflow.h; c_sizeof(config) must equal config%struct_size).
   type, bind(c), public :: lwf_refine_config
      integer(c_size_t) :: struct_size
      integer(c_size_t) :: initial_samples
      integer(c_size_t) :: samples_per_round
      integer(c_size_t) :: check_samples
      integer(c_size_t) :: max_calls
      integer(c_size_t) :: max_rounds
      real(c_double) :: ess_fraction
      real(c_double) :: target_ess
      real(c_double) :: max_k_hat
      real(c_double) :: log_z_tol
      integer(c_int32_t) :: warm_start
      integer(c_int32_t) :: bounded
      integer(c_int32_t) :: affine
      integer(c_int32_t) :: non_finite
      integer(c_size_t) :: max_components
      integer(c_size_t) :: max_epochs
      integer(c_size_t) :: batch_size
      integer(c_size_t) :: patience
      real(c_double) :: learning_rate
      integer(c_int64_t) :: seed
      real(c_double) :: max_kl
   end type lwf_refine_config

   !> LwfRefineRound: what one round of a refinement measured.
   type, bind(c), public :: lwf_refine_round
      integer(c_size_t) :: round
      integer(c_size_t) :: calls
      integer(c_size_t) :: draws
      real(c_double) :: beta
      real(c_double) :: next_beta
      real(c_double) :: log_z
      real(c_double) :: log_z_se
      real(c_double) :: ess
      real(c_double) :: k_hat
      integer(c_int32_t) :: has_k_hat
      integer(c_int32_t) :: still_improving
      integer(c_size_t) :: components
      integer(c_size_t) :: epochs
      integer(c_size_t) :: best_epoch
   end type lwf_refine_round

   !> LwfRefineReport: the end of a refinement (named with _t: lwf_refine_report is the
   !> function that fills it).
   type, bind(c), public :: lwf_refine_report_t
      integer(c_int32_t) :: status
      integer(c_int32_t) :: has_k_hat
      integer(c_size_t) :: rounds
      integer(c_size_t) :: calls
      integer(c_size_t) :: draws
      real(c_double) :: log_z
      real(c_double) :: log_z_se
      real(c_double) :: ess
      real(c_double) :: k_hat
      real(c_double) :: beta
      integer(c_size_t) :: components
      integer(c_size_t) :: epochs
      integer(c_size_t) :: best_epoch
   end type lwf_refine_report_t

   !> LwfImportanceSummary: diagnostics of any density q from importance log-weights (named
   !> with _t: lwf_importance_summary is the function that fills it).
   type, bind(c), public :: lwf_importance_summary_t
      integer(c_size_t) :: n
      real(c_double) :: log_z
      real(c_double) :: log_z_se
      real(c_double) :: ess
      real(c_double) :: kl
      real(c_double) :: k_hat
      integer(c_int32_t) :: has_k_hat
   end type lwf_importance_summary_t

   !> LwfFitCheckpointInfo: what a fit checkpoint holds and the memory its resumption needs
   !> (lwf_fit_checkpoint_inspect). epoch 0: the weighted samples; k >= 1: after epoch k.
   type, bind(c), public :: lwf_fit_checkpoint_info
      integer(c_size_t) :: epoch
      integer(c_size_t) :: n_samples
      integer(c_size_t) :: dim
      integer(c_size_t) :: model_bytes
      integer(c_size_t) :: work_bytes
      integer(c_size_t) :: checkpoint_bytes
   end type lwf_fit_checkpoint_info

   !> The callbacks of the fit, as abstract interfaces: write yours as a bind(c) function of
   !> this form and pass c_funloc(it). theta(dim, n) holds one point per column; fill
   !> out_loglik(1:n) and return 0 (non-zero aborts the fit with LWF_CALLBACK_FAILED). The
   !> progress callback returns 0 to continue, non-zero to stop (LWF_CANCELLED).
   abstract interface
      function lwf_log_likelihood_fn(theta, n, dim, out_loglik, user) result(status) bind(c)
         import :: c_int, c_size_t, c_double, c_ptr
         integer(c_size_t), value :: n, dim
         real(c_double), intent(in) :: theta(dim, n)
         real(c_double), intent(inout) :: out_loglik(n)
         type(c_ptr), value :: user
         integer(c_int) :: status
      end function lwf_log_likelihood_fn

      function lwf_progress_fn(report, user) result(status) bind(c)
         import :: c_int, c_ptr, lwf_epoch_report
         type(lwf_epoch_report), intent(in) :: report
         type(c_ptr), value :: user
         integer(c_int) :: status
      end function lwf_progress_fn

      !> lwf_refine_run's progress callback: after every round; non-zero stops the run
      !> (LWF_CANCELLED; the refinement can be continued).
      function lwf_refine_progress_fn(round, user) result(status) bind(c)
         import :: c_int, c_ptr, lwf_refine_round
         type(lwf_refine_round), intent(in) :: round
         type(c_ptr), value :: user
         integer(c_int) :: status
      end function lwf_refine_progress_fn

      !> The resumable fits' checkpoint callback: `len` bytes at `bytes` (valid during the call
      !> only: save them) hold everything lwf_model_fit_resume needs; epoch 0 after the last
      !> likelihood call, then the epoch after which they were taken. Non-zero stops the fit
      !> (LWF_CANCELLED; at epoch 0 nothing is written).
      function lwf_checkpoint_fn(bytes, len, epoch, user) result(status) bind(c)
         import :: c_int, c_int8_t, c_ptr, c_size_t
         integer(c_size_t), value :: len, epoch
         integer(c_int8_t), intent(in) :: bytes(len)
         type(c_ptr), value :: user
         integer(c_int) :: status
      end function lwf_checkpoint_fn
   end interface
   public :: lwf_log_likelihood_fn, lwf_progress_fn, lwf_refine_progress_fn, lwf_checkpoint_fn

   public :: lwf_status_string
   public :: lwf_fit_config_default, lwf_fit_model_size, lwf_fit_work_size
   public :: lwf_model_fit_prior_box, lwf_model_fit_samples, lwf_model_fit_samples_in_box
   public :: lwf_adam_default, lwf_model_adam_reset, lwf_model_adam_step, lwf_model_align
   public :: lwf_model_forward, lwf_model_get_params, lwf_model_init, lwf_model_inspect
   public :: lwf_model_inverse, lwf_model_load
   public :: lwf_model_log_prob, lwf_model_log_prob_ws, lwf_model_loss_grad
   public :: lwf_model_loss_grad_accumulate, lwf_model_sample, lwf_model_sample_ws
   public :: lwf_model_save, lwf_model_set_gaussian_base, lwf_model_set_mixture_base
   public :: lwf_model_set_affine, lwf_model_set_box
   public :: lwf_model_set_params, lwf_model_shape, lwf_rng_init, lwf_rng_jump
   public :: lwf_shape_default, lwf_shape_model_size, lwf_shape_param_count
   public :: lwf_shape_serialized_size, lwf_shape_validate, lwf_shape_workspace_count
   public :: lwf_status_message, lwf_version, lwf_version_string
   public :: lwf_kernels, lwf_use_kernels
   public :: lwf_refine_config_default, lwf_refine_work_size, lwf_refine_init
   public :: lwf_refine_batch_capacity, lwf_refine_status, lwf_refine_ask, lwf_refine_tell
   public :: lwf_refine_run, lwf_refine_report, lwf_refine_model_size, lwf_refine_write_model
   public :: lwf_importance_summary
   public :: lwf_fit_checkpoint_size, lwf_fit_checkpoint_inspect, lwf_model_fit_resume
   public :: lwf_model_fit_prior_box_resumable, lwf_model_fit_samples_resumable
   public :: lwf_refine_checkpoint_size, lwf_refine_checkpoint, lwf_refine_restore

   interface
      function lwf_adam_default(out_adam) result(status) bind(c, name="lwf_adam_default")
         import :: c_int, lwf_adam
         type(lwf_adam), intent(inout) :: out_adam
         integer(c_int) :: status
      end function lwf_adam_default

      function lwf_model_adam_reset(model) result(status) bind(c, name="lwf_model_adam_reset")
         import :: c_int, c_ptr
         type(c_ptr), value :: model
         integer(c_int) :: status
      end function lwf_model_adam_reset

      function lwf_model_adam_step(model, adam, grad, grad_len) result(status) &
         bind(c, name="lwf_model_adam_step")
         import :: c_int, c_ptr, c_size_t, c_double, lwf_adam
         type(c_ptr), value :: model
         type(lwf_adam), intent(in) :: adam
         real(c_double), intent(in) :: grad(*)
         integer(c_size_t), value :: grad_len
         integer(c_int) :: status
      end function lwf_model_adam_step

      function lwf_model_align() result(bytes) bind(c, name="lwf_model_align")
         import :: c_size_t
         integer(c_size_t) :: bytes
      end function lwf_model_align

      function lwf_fit_config_default(out_config) result(status) &
         bind(c, name="lwf_fit_config_default")
         import :: c_int, lwf_fit_config
         type(lwf_fit_config), intent(inout) :: out_config
         integer(c_int) :: status
      end function lwf_fit_config_default

      function lwf_fit_model_size(shape, config, out_bytes) result(status) &
         bind(c, name="lwf_fit_model_size")
         import :: c_int, c_size_t, lwf_shape, lwf_fit_config
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_fit_model_size

      function lwf_fit_work_size(shape, config, n_samples, out_bytes) result(status) &
         bind(c, name="lwf_fit_work_size")
         import :: c_int, c_size_t, lwf_shape, lwf_fit_config
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         integer(c_size_t), value :: n_samples
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_fit_work_size

      !> Model memory (lwf_fit_model_size bytes) and work memory (lwf_fit_work_size bytes) are
      !> passed as c_loc of real(c_double), target arrays; the callbacks as c_funloc (or
      !> c_null_funptr for no progress callback); user pointers as c_loc or c_null_ptr.
      function lwf_model_fit_prior_box(mem, mem_len, shape, config, lo, lo_len, hi, hi_len, &
         n_samples, log_likelihood, log_likelihood_user, progress, progress_user, work, &
         work_len, out_report, out_model) result(status) bind(c, name="lwf_model_fit_prior_box")
         import :: c_int, c_ptr, c_funptr, c_size_t, c_double, lwf_shape, lwf_fit_config, &
            lwf_fit_report
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         real(c_double), intent(in) :: lo(*)
         integer(c_size_t), value :: lo_len
         real(c_double), intent(in) :: hi(*)
         integer(c_size_t), value :: hi_len
         integer(c_size_t), value :: n_samples
         type(c_funptr), value :: log_likelihood
         type(c_ptr), value :: log_likelihood_user
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_fit_report), intent(inout) :: out_report
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_fit_prior_box

      function lwf_model_fit_samples(mem, mem_len, shape, config, theta, theta_len, &
         log_weights, n, progress, progress_user, work, work_len, out_report, out_model) &
         result(status) bind(c, name="lwf_model_fit_samples")
         import :: c_int, c_ptr, c_funptr, c_size_t, c_double, lwf_shape, lwf_fit_config, &
            lwf_fit_report
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(in) :: log_weights(*)
         integer(c_size_t), value :: n
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_fit_report), intent(inout) :: out_report
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_fit_samples

      function lwf_model_fit_samples_in_box(mem, mem_len, shape, config, lo, lo_len, hi, &
         hi_len, theta, theta_len, log_weights, n, progress, progress_user, work, work_len, &
         out_report, out_model) result(status) bind(c, name="lwf_model_fit_samples_in_box")
         import :: c_int, c_ptr, c_funptr, c_size_t, c_double, lwf_shape, lwf_fit_config, &
            lwf_fit_report
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         real(c_double), intent(in) :: lo(*)
         integer(c_size_t), value :: lo_len
         real(c_double), intent(in) :: hi(*)
         integer(c_size_t), value :: hi_len
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(in) :: log_weights(*)
         integer(c_size_t), value :: n
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_fit_report), intent(inout) :: out_report
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_fit_samples_in_box

      function lwf_model_forward(model, z, z_len, out_theta, theta_len, out_log_det, n) &
         result(status) bind(c, name="lwf_model_forward")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: z(*)
         integer(c_size_t), value :: z_len
         real(c_double), intent(inout) :: out_theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(inout) :: out_log_det(*)
         integer(c_size_t), value :: n
         integer(c_int) :: status
      end function lwf_model_forward

      function lwf_model_get_params(model, out_params, params_len) result(status) &
         bind(c, name="lwf_model_get_params")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(inout) :: out_params(*)
         integer(c_size_t), value :: params_len
         integer(c_int) :: status
      end function lwf_model_get_params

      function lwf_model_init(mem, mem_len, shape, seed, out_model) result(status) &
         bind(c, name="lwf_model_init")
         import :: c_int, c_ptr, c_size_t, c_int64_t, lwf_shape
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(lwf_shape), intent(in) :: shape
         integer(c_int64_t), value :: seed
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_init

      function lwf_model_inspect(bytes, bytes_len, out_shape) result(status) &
         bind(c, name="lwf_model_inspect")
         import :: c_int, c_int8_t, c_size_t, lwf_shape
         integer(c_int8_t), intent(in) :: bytes(*)
         integer(c_size_t), value :: bytes_len
         type(lwf_shape), intent(inout) :: out_shape
         integer(c_int) :: status
      end function lwf_model_inspect

      function lwf_model_inverse(model, theta, theta_len, out_z, z_len, out_log_det, n) &
         result(status) bind(c, name="lwf_model_inverse")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(inout) :: out_z(*)
         integer(c_size_t), value :: z_len
         real(c_double), intent(inout) :: out_log_det(*)
         integer(c_size_t), value :: n
         integer(c_int) :: status
      end function lwf_model_inverse

      function lwf_model_load(mem, mem_len, bytes, bytes_len, out_model) result(status) &
         bind(c, name="lwf_model_load")
         import :: c_int, c_ptr, c_int8_t, c_size_t
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         integer(c_int8_t), intent(in) :: bytes(*)
         integer(c_size_t), value :: bytes_len
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_load

      function lwf_model_log_prob(model, theta, theta_len, out_log_q, n) result(status) &
         bind(c, name="lwf_model_log_prob")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(inout) :: out_log_q(*)
         integer(c_size_t), value :: n
         integer(c_int) :: status
      end function lwf_model_log_prob

      function lwf_model_log_prob_ws(model, theta, theta_len, out_log_q, n, ws, ws_len) &
         result(status) bind(c, name="lwf_model_log_prob_ws")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(inout) :: out_log_q(*)
         integer(c_size_t), value :: n
         real(c_double), intent(inout) :: ws(*)
         integer(c_size_t), value :: ws_len
         integer(c_int) :: status
      end function lwf_model_log_prob_ws

      function lwf_model_loss_grad(model, theta, theta_len, weights, weights_len, out_grad, &
         grad_len, out_loss) result(status) bind(c, name="lwf_model_loss_grad")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(in) :: weights(*)
         integer(c_size_t), value :: weights_len
         real(c_double), intent(inout) :: out_grad(*)
         integer(c_size_t), value :: grad_len
         real(c_double), intent(inout) :: out_loss
         integer(c_int) :: status
      end function lwf_model_loss_grad

      function lwf_model_loss_grad_accumulate(model, theta, theta_len, weights, weights_len, &
         scale, inout_grad, grad_len, inout_loss) result(status) &
         bind(c, name="lwf_model_loss_grad_accumulate")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(in) :: weights(*)
         integer(c_size_t), value :: weights_len
         real(c_double), value :: scale
         real(c_double), intent(inout) :: inout_grad(*)
         integer(c_size_t), value :: grad_len
         real(c_double), intent(inout) :: inout_loss
         integer(c_int) :: status
      end function lwf_model_loss_grad_accumulate

      function lwf_model_sample(model, rng, out_theta, theta_len, out_log_q, n) result(status) &
         bind(c, name="lwf_model_sample")
         import :: c_int, c_ptr, c_size_t, c_double, lwf_rng
         type(c_ptr), value :: model
         type(lwf_rng), intent(inout) :: rng
         real(c_double), intent(inout) :: out_theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(inout) :: out_log_q(*)
         integer(c_size_t), value :: n
         integer(c_int) :: status
      end function lwf_model_sample

      function lwf_model_sample_ws(model, rng, out_theta, theta_len, out_log_q, n, ws, ws_len) &
         result(status) bind(c, name="lwf_model_sample_ws")
         import :: c_int, c_ptr, c_size_t, c_double, lwf_rng
         type(c_ptr), value :: model
         type(lwf_rng), intent(inout) :: rng
         real(c_double), intent(inout) :: out_theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(inout) :: out_log_q(*)
         integer(c_size_t), value :: n
         real(c_double), intent(inout) :: ws(*)
         integer(c_size_t), value :: ws_len
         integer(c_int) :: status
      end function lwf_model_sample_ws

      function lwf_model_save(model, out_bytes, bytes_len, out_written) result(status) &
         bind(c, name="lwf_model_save")
         import :: c_int, c_ptr, c_int8_t, c_size_t
         type(c_ptr), value :: model
         integer(c_int8_t), intent(inout) :: out_bytes(*)
         integer(c_size_t), value :: bytes_len
         integer(c_size_t), intent(inout) :: out_written
         integer(c_int) :: status
      end function lwf_model_save

      function lwf_model_set_affine(model, shift, dim, chol_packed, chol_len) &
         result(status) bind(c, name="lwf_model_set_affine")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: shift(*)
         integer(c_size_t), value :: dim
         real(c_double), intent(in) :: chol_packed(*)
         integer(c_size_t), value :: chol_len
         integer(c_int) :: status
      end function lwf_model_set_affine

      function lwf_model_set_box(model, lo, hi, dim) result(status) &
         bind(c, name="lwf_model_set_box")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: lo(*)
         real(c_double), intent(in) :: hi(*)
         integer(c_size_t), value :: dim
         integer(c_int) :: status
      end function lwf_model_set_box

      function lwf_model_set_gaussian_base(model, loc, loc_len, scale, scale_len) &
         result(status) bind(c, name="lwf_model_set_gaussian_base")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: loc(*)
         integer(c_size_t), value :: loc_len
         real(c_double), intent(in) :: scale(*)
         integer(c_size_t), value :: scale_len
         integer(c_int) :: status
      end function lwf_model_set_gaussian_base

      function lwf_model_set_mixture_base(model, weights, weights_len, means, means_len, &
         scales, scales_len) result(status) bind(c, name="lwf_model_set_mixture_base")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: weights(*)
         integer(c_size_t), value :: weights_len
         real(c_double), intent(in) :: means(*)
         integer(c_size_t), value :: means_len
         real(c_double), intent(in) :: scales(*)
         integer(c_size_t), value :: scales_len
         integer(c_int) :: status
      end function lwf_model_set_mixture_base

      function lwf_model_set_params(model, params, params_len) result(status) &
         bind(c, name="lwf_model_set_params")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: model
         real(c_double), intent(in) :: params(*)
         integer(c_size_t), value :: params_len
         integer(c_int) :: status
      end function lwf_model_set_params

      function lwf_model_shape(model, out_shape) result(status) bind(c, name="lwf_model_shape")
         import :: c_int, c_ptr, lwf_shape
         type(c_ptr), value :: model
         type(lwf_shape), intent(inout) :: out_shape
         integer(c_int) :: status
      end function lwf_model_shape

      function lwf_refine_ask(refine, out_theta, capacity_rows, out_n) result(status) &
         bind(c, name="lwf_refine_ask")
         import :: c_int, c_ptr, c_size_t, c_double
         type(c_ptr), value :: refine
         real(c_double), intent(inout) :: out_theta(*)
         integer(c_size_t), value :: capacity_rows
         integer(c_size_t), intent(inout) :: out_n
         integer(c_int) :: status
      end function lwf_refine_ask

      function lwf_refine_batch_capacity(refine, out_rows) result(status) &
         bind(c, name="lwf_refine_batch_capacity")
         import :: c_int, c_ptr, c_size_t
         type(c_ptr), value :: refine
         integer(c_size_t), intent(inout) :: out_rows
         integer(c_int) :: status
      end function lwf_refine_batch_capacity

      function lwf_refine_config_default(dim, out_config) result(status) &
         bind(c, name="lwf_refine_config_default")
         import :: c_int, c_size_t, lwf_refine_config
         integer(c_size_t), value :: dim
         type(lwf_refine_config), intent(inout) :: out_config
         integer(c_int) :: status
      end function lwf_refine_config_default

      function lwf_refine_init(work, work_len, shape, lo, hi, dim, config, out_refine) &
         result(status) bind(c, name="lwf_refine_init")
         import :: c_int, c_ptr, c_size_t, c_double, lwf_shape, lwf_refine_config
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_shape), intent(in) :: shape
         real(c_double), intent(in) :: lo(*)
         real(c_double), intent(in) :: hi(*)
         integer(c_size_t), value :: dim
         type(lwf_refine_config), intent(in) :: config
         type(c_ptr), intent(inout) :: out_refine
         integer(c_int) :: status
      end function lwf_refine_init

      !> Checkpoint buffers (lwf_fit_checkpoint_size bytes) are passed as c_loc of an
      !> integer(c_int8_t), target array, or c_null_ptr with c_null_funptr as the callback.
      function lwf_fit_checkpoint_size(shape, config, n_samples, out_bytes) result(status) &
         bind(c, name="lwf_fit_checkpoint_size")
         import :: c_int, c_size_t, lwf_shape, lwf_fit_config
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         integer(c_size_t), value :: n_samples
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_fit_checkpoint_size

      function lwf_fit_checkpoint_inspect(bytes, len, out_info) result(status) &
         bind(c, name="lwf_fit_checkpoint_inspect")
         import :: c_int, c_int8_t, c_size_t, lwf_fit_checkpoint_info
         integer(c_int8_t), intent(in) :: bytes(*)
         integer(c_size_t), value :: len
         type(lwf_fit_checkpoint_info), intent(inout) :: out_info
         integer(c_int) :: status
      end function lwf_fit_checkpoint_inspect

      function lwf_model_fit_prior_box_resumable(mem, mem_len, shape, config, lo, lo_len, hi, &
         hi_len, n_samples, log_likelihood, log_likelihood_user, progress, progress_user, &
         checkpoint, checkpoint_user, checkpoint_buf, checkpoint_len, work, work_len, &
         out_report, out_model) result(status) &
         bind(c, name="lwf_model_fit_prior_box_resumable")
         import :: c_int, c_ptr, c_funptr, c_size_t, c_double, lwf_shape, lwf_fit_config, &
            lwf_fit_report
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         real(c_double), intent(in) :: lo(*)
         integer(c_size_t), value :: lo_len
         real(c_double), intent(in) :: hi(*)
         integer(c_size_t), value :: hi_len
         integer(c_size_t), value :: n_samples
         type(c_funptr), value :: log_likelihood
         type(c_ptr), value :: log_likelihood_user
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         type(c_funptr), value :: checkpoint
         type(c_ptr), value :: checkpoint_user
         type(c_ptr), value :: checkpoint_buf
         integer(c_size_t), value :: checkpoint_len
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_fit_report), intent(inout) :: out_report
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_fit_prior_box_resumable

      !> lo_len = hi_len = 0: no box (as lwf_model_fit_samples; pass zero-size arrays).
      function lwf_model_fit_samples_resumable(mem, mem_len, shape, config, lo, lo_len, hi, &
         hi_len, theta, theta_len, log_weights, n, progress, progress_user, checkpoint, &
         checkpoint_user, checkpoint_buf, checkpoint_len, work, work_len, out_report, &
         out_model) result(status) bind(c, name="lwf_model_fit_samples_resumable")
         import :: c_int, c_ptr, c_funptr, c_size_t, c_double, lwf_shape, lwf_fit_config, &
            lwf_fit_report
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(lwf_shape), intent(in) :: shape
         type(lwf_fit_config), intent(in) :: config
         real(c_double), intent(in) :: lo(*)
         integer(c_size_t), value :: lo_len
         real(c_double), intent(in) :: hi(*)
         integer(c_size_t), value :: hi_len
         real(c_double), intent(in) :: theta(*)
         integer(c_size_t), value :: theta_len
         real(c_double), intent(in) :: log_weights(*)
         integer(c_size_t), value :: n
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         type(c_funptr), value :: checkpoint
         type(c_ptr), value :: checkpoint_user
         type(c_ptr), value :: checkpoint_buf
         integer(c_size_t), value :: checkpoint_len
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_fit_report), intent(inout) :: out_report
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_fit_samples_resumable

      function lwf_model_fit_resume(mem, mem_len, bytes, len, progress, progress_user, &
         checkpoint, checkpoint_user, checkpoint_buf, checkpoint_len, work, work_len, &
         out_report, out_model) result(status) bind(c, name="lwf_model_fit_resume")
         import :: c_int, c_int8_t, c_ptr, c_funptr, c_size_t, lwf_fit_report
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         integer(c_int8_t), intent(in) :: bytes(*)
         integer(c_size_t), value :: len
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         type(c_funptr), value :: checkpoint
         type(c_ptr), value :: checkpoint_user
         type(c_ptr), value :: checkpoint_buf
         integer(c_size_t), value :: checkpoint_len
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         type(lwf_fit_report), intent(inout) :: out_report
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_model_fit_resume

      function lwf_refine_checkpoint_size(refine, out_bytes) result(status) &
         bind(c, name="lwf_refine_checkpoint_size")
         import :: c_int, c_ptr, c_size_t
         type(c_ptr), value :: refine
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_refine_checkpoint_size

      function lwf_refine_checkpoint(refine, out, out_len, out_written) result(status) &
         bind(c, name="lwf_refine_checkpoint")
         import :: c_int, c_int8_t, c_ptr, c_size_t
         type(c_ptr), value :: refine
         integer(c_int8_t), intent(inout) :: out(*)
         integer(c_size_t), value :: out_len
         integer(c_size_t), intent(inout) :: out_written
         integer(c_int) :: status
      end function lwf_refine_checkpoint

      function lwf_refine_restore(work, work_len, bytes, len, dim, out_refine) result(status) &
         bind(c, name="lwf_refine_restore")
         import :: c_int, c_int8_t, c_ptr, c_size_t
         type(c_ptr), value :: work
         integer(c_size_t), value :: work_len
         integer(c_int8_t), intent(in) :: bytes(*)
         integer(c_size_t), value :: len
         integer(c_size_t), value :: dim
         type(c_ptr), intent(inout) :: out_refine
         integer(c_int) :: status
      end function lwf_refine_restore

      function lwf_refine_model_size(refine, out_bytes) result(status) &
         bind(c, name="lwf_refine_model_size")
         import :: c_int, c_ptr, c_size_t
         type(c_ptr), value :: refine
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_refine_model_size

      function lwf_importance_summary(log_w, n, scratch, scratch_len, out_summary) &
         result(status) bind(c, name="lwf_importance_summary")
         import :: c_int, c_size_t, c_double, lwf_importance_summary_t
         integer(c_size_t), value :: n, scratch_len
         real(c_double), intent(in) :: log_w(n)
         real(c_double), intent(inout) :: scratch(scratch_len)
         type(lwf_importance_summary_t), intent(inout) :: out_summary
         integer(c_int) :: status
      end function lwf_importance_summary

      function lwf_refine_report(refine, out_report) result(status) &
         bind(c, name="lwf_refine_report")
         import :: c_int, c_ptr, lwf_refine_report_t
         type(c_ptr), value :: refine
         type(lwf_refine_report_t), intent(inout) :: out_report
         integer(c_int) :: status
      end function lwf_refine_report

      function lwf_refine_run(refine, log_likelihood, batch, log_likelihood_user, progress, &
         progress_user) result(status) bind(c, name="lwf_refine_run")
         import :: c_int, c_ptr, c_funptr, c_size_t
         type(c_ptr), value :: refine
         type(c_funptr), value :: log_likelihood
         integer(c_size_t), value :: batch
         type(c_ptr), value :: log_likelihood_user
         type(c_funptr), value :: progress
         type(c_ptr), value :: progress_user
         integer(c_int) :: status
      end function lwf_refine_run

      function lwf_refine_status(refine, out_status) result(status) &
         bind(c, name="lwf_refine_status")
         import :: c_int, c_ptr, c_int32_t
         type(c_ptr), value :: refine
         integer(c_int32_t), intent(inout) :: out_status
         integer(c_int) :: status
      end function lwf_refine_status

      function lwf_refine_tell(refine, loglik, n, out_round) result(status) &
         bind(c, name="lwf_refine_tell")
         import :: c_int, c_ptr, c_size_t, c_double, lwf_refine_round
         type(c_ptr), value :: refine
         real(c_double), intent(in) :: loglik(*)
         integer(c_size_t), value :: n
         type(lwf_refine_round), intent(inout) :: out_round
         integer(c_int) :: status
      end function lwf_refine_tell

      function lwf_refine_work_size(shape, config, out_bytes) result(status) &
         bind(c, name="lwf_refine_work_size")
         import :: c_int, c_size_t, lwf_shape, lwf_refine_config
         type(lwf_shape), intent(in) :: shape
         type(lwf_refine_config), intent(in) :: config
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_refine_work_size

      function lwf_refine_write_model(refine, mem, mem_len, out_model) result(status) &
         bind(c, name="lwf_refine_write_model")
         import :: c_int, c_ptr, c_size_t
         type(c_ptr), value :: refine
         type(c_ptr), value :: mem
         integer(c_size_t), value :: mem_len
         type(c_ptr), intent(inout) :: out_model
         integer(c_int) :: status
      end function lwf_refine_write_model

      function lwf_rng_init(out_rng, seed) result(status) bind(c, name="lwf_rng_init")
         import :: c_int, c_int64_t, lwf_rng
         type(lwf_rng), intent(inout) :: out_rng
         integer(c_int64_t), value :: seed
         integer(c_int) :: status
      end function lwf_rng_init

      function lwf_rng_jump(rng) result(status) bind(c, name="lwf_rng_jump")
         import :: c_int, lwf_rng
         type(lwf_rng), intent(inout) :: rng
         integer(c_int) :: status
      end function lwf_rng_jump

      function lwf_shape_default(dim, hidden, couplings, out_shape) result(status) &
         bind(c, name="lwf_shape_default")
         import :: c_int, c_size_t, lwf_shape
         integer(c_size_t), value :: dim, hidden, couplings
         type(lwf_shape), intent(inout) :: out_shape
         integer(c_int) :: status
      end function lwf_shape_default

      function lwf_shape_model_size(shape, out_bytes) result(status) &
         bind(c, name="lwf_shape_model_size")
         import :: c_int, c_size_t, lwf_shape
         type(lwf_shape), intent(in) :: shape
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_shape_model_size

      function lwf_shape_param_count(shape, out_count) result(status) &
         bind(c, name="lwf_shape_param_count")
         import :: c_int, c_size_t, lwf_shape
         type(lwf_shape), intent(in) :: shape
         integer(c_size_t), intent(inout) :: out_count
         integer(c_int) :: status
      end function lwf_shape_param_count

      function lwf_shape_serialized_size(shape, out_bytes) result(status) &
         bind(c, name="lwf_shape_serialized_size")
         import :: c_int, c_size_t, lwf_shape
         type(lwf_shape), intent(in) :: shape
         integer(c_size_t), intent(inout) :: out_bytes
         integer(c_int) :: status
      end function lwf_shape_serialized_size

      function lwf_shape_validate(shape) result(status) bind(c, name="lwf_shape_validate")
         import :: c_int, lwf_shape
         type(lwf_shape), intent(in) :: shape
         integer(c_int) :: status
      end function lwf_shape_validate

      function lwf_shape_workspace_count(shape, out_count) result(status) &
         bind(c, name="lwf_shape_workspace_count")
         import :: c_int, c_size_t, lwf_shape
         type(lwf_shape), intent(in) :: shape
         integer(c_size_t), intent(inout) :: out_count
         integer(c_int) :: status
      end function lwf_shape_workspace_count

      function lwf_status_message(status) result(message) bind(c, name="lwf_status_message")
         import :: c_int, c_ptr
         integer(c_int), value :: status
         type(c_ptr) :: message
      end function lwf_status_message

      function lwf_version() result(version) bind(c, name="lwf_version")
         import :: c_int32_t
         integer(c_int32_t) :: version
      end function lwf_version

      function lwf_version_string() result(version) bind(c, name="lwf_version_string")
         import :: c_ptr
         type(c_ptr) :: version
      end function lwf_version_string

      function lwf_kernels() result(set) bind(c, name="lwf_kernels")
         import :: c_int
         integer(c_int) :: set
      end function lwf_kernels

      function lwf_use_kernels(set) result(status) bind(c, name="lwf_use_kernels")
         import :: c_int, c_int32_t
         integer(c_int32_t), value :: set
         integer(c_int) :: status
      end function lwf_use_kernels
   end interface

contains

   !> The message of a status code as a Fortran string (lwf_status_message).
   function lwf_status_string(status) result(message)
      integer(c_int), intent(in) :: status
      character(len=:), allocatable :: message
      character(kind=c_char), pointer :: chars(:)
      type(c_ptr) :: p
      integer :: n, i
      integer, parameter :: longest = 512

      p = lwf_status_message(status)
      n = 0
      if (c_associated(p)) then
         call c_f_pointer(p, chars, [longest])
         do while (n < longest)
            if (chars(n + 1) == c_null_char) exit
            n = n + 1
         end do
      end if
      allocate (character(len=n) :: message)
      do i = 1, n
         message(i:i) = chars(i)
      end do
   end function lwf_status_string

end module lwflow
