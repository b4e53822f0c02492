! Refine task 2D2 (equal mixture of N((+-2.5, 0), 0.6^2 I), prior uniform on [-6, 6]^2, log
! evidence -2 ln 12) from Fortran: the ask/tell loop with a Fortran likelihood, the report and
! the model on the prior box; then the same refinement through lwf_refine_run with the
! likelihood as a bind(c) callback and a progress callback, which must give the same report
! and the same model parameters bit for bit.
!
!   mkdir -p build && gfortran -std=f2008 -O2 -Wall -Wextra -Werror -J build include/lwflow.f90 \
!      examples/fortran/refine_2d2.f90 target/release/liblwflow.a -lpthread -ldl -lm -o refine_2d2

!> The task's likelihood and the refinement's callbacks (bind(c) module procedures).
module task_2d2
   use, intrinsic :: iso_c_binding
   use lwflow, only: lwf_refine_round
   implicit none
   private
   public :: log_likelihood, log_likelihood_batch, on_round, box

   real(c_double), parameter :: sigma = 0.6_c_double, box = 6.0_c_double
   real(c_double), parameter :: pi = 3.14159265358979323846_c_double

contains

   !> log p(D | x), normalised: the equal mixture of the two Gaussians, by log-sum-exp.
   pure function log_likelihood(x) result(l)
      real(c_double), intent(in) :: x(2)
      real(c_double) :: l, a, b, m, norm
      norm = -2.0_c_double*log(sigma) - log(2.0_c_double*pi)
      a = -0.5_c_double*(((x(1) + 2.5_c_double)/sigma)**2 + (x(2)/sigma)**2) + norm
      b = -0.5_c_double*(((x(1) - 2.5_c_double)/sigma)**2 + (x(2)/sigma)**2) + norm
      m = max(a, b)
      l = m + log(0.5_c_double*exp(a - m) + 0.5_c_double*exp(b - m))
   end function log_likelihood

   !> lwf_log_likelihood_fn: one point per column of theta; `user` is not used.
   function log_likelihood_batch(theta, n, dim, out_loglik, user) result(status) bind(c)
      integer(c_size_t), value :: n, dim
      real(c_double), intent(in) :: theta(dim, n)
      real(c_double), intent(inout) :: out_loglik(n)
      type(c_ptr), value :: user
      integer(c_int) :: status
      integer(c_size_t) :: i
      if (dim /= 2 .or. c_associated(user)) then
         status = 1
         return
      end if
      do i = 1, n
         out_loglik(i) = log_likelihood(theta(:, i))
      end do
      status = 0
   end function log_likelihood_batch

   !> lwf_refine_progress_fn: counts the rounds in the integer `user` points at.
   function on_round(round, user) result(status) bind(c)
      type(lwf_refine_round), intent(in) :: round
      type(c_ptr), value :: user
      integer(c_int) :: status
      integer(c_size_t), pointer :: rounds
      call c_f_pointer(user, rounds)
      if (round%round /= rounds) then
         status = 1 ! out of order: stop
         return
      end if
      rounds = rounds + 1
      status = 0
   end function on_round

end module task_2d2

program refine_2d2
   use, intrinsic :: iso_c_binding
   use, intrinsic :: ieee_arithmetic, only: ieee_is_finite
   use lwflow
   use task_2d2
   implicit none

   integer(c_size_t), parameter :: d = 2, n_draw = 2000
   real(c_double), allocatable, target :: work(:), work_run(:), mem(:), mem_run(:)
   real(c_double), allocatable :: theta(:, :), loglik(:), params(:), params_run(:)
   real(c_double), allocatable :: draws(:, :), draw_log_q(:), log_w(:), scratch(:)
   type(lwf_importance_summary_t) :: summary
   integer(c_size_t), target :: rounds_seen
   type(lwf_shape) :: shape, fitted
   type(lwf_refine_config) :: config
   type(lwf_refine_round) :: round
   type(lwf_refine_report_t) :: report, report_run
   type(lwf_rng) :: rng
   type(c_ptr) :: refine, refine_run, model, model_run
   integer(c_size_t) :: work_bytes, mem_bytes, capacity, n, i, p
   integer(c_int32_t) :: status
   real(c_double) :: lq(2), log_z_true
   logical :: inside, identical

   if (lwf_version() /= LWFLOW_VERSION) error stop 'lwflow.f90 does not match the library version'
   log_z_true = -2.0_c_double*log(12.0_c_double)

   ! 1. Shape (widths only), configuration, work memory, the refinement.
   call check(lwf_shape_default(d, 16_c_size_t, 4_c_size_t, shape), 'lwf_shape_default')
   call check(lwf_refine_config_default(d, config), 'lwf_refine_config_default')
   if (c_sizeof(config) /= config%struct_size) error stop 'lwf_refine_config differs from lwflow.h'
   config%max_calls = 6000
   config%target_ess = 2000.0_c_double
   config%max_components = 3
   config%max_epochs = 10
   call check(lwf_refine_work_size(shape, config, work_bytes), 'lwf_refine_work_size')
   allocate (work((work_bytes + 7)/8), work_run((work_bytes + 7)/8))
   call check(lwf_refine_init(c_loc(work), work_bytes, shape, [-box, -box], [box, box], d, &
                              config, refine), 'lwf_refine_init')
   call check(lwf_refine_batch_capacity(refine, capacity), 'lwf_refine_batch_capacity')
   allocate (theta(d, capacity), loglik(capacity))

   ! 2. Ask / tell: the points of each round, one per column; their log-likelihoods.
   do
      call check(lwf_refine_status(refine, status), 'lwf_refine_status')
      if (status /= LWF_REFINE_RUNNING) exit
      call check(lwf_refine_ask(refine, theta, capacity, n), 'lwf_refine_ask')
      do i = 1, n
         loglik(i) = log_likelihood(theta(:, i))
      end do
      call check(lwf_refine_tell(refine, loglik, n, round), 'lwf_refine_tell')
      print '(a, i0, a, i0, a, f6.3, a, i0, a, f9.4, a, f7.4)', 'round ', round%round, &
         ': calls ', round%calls, ', beta ', round%next_beta, ', K ', round%components, &
         ', ln Z ', round%log_z, ' +- ', round%log_z_se
   end do
   call check(lwf_refine_report(refine, report), 'lwf_refine_report')
   print '(a, i0, a, i0, a, f9.4, a, f9.4)', 'status ', report%status, ', calls ', report%calls, &
      ', ln Z ', report%log_z, ', truth ', log_z_true

   ! 3. The model: on the box, log q finite inside and -inf outside, every sample inside.
   call check(lwf_refine_model_size(refine, mem_bytes), 'lwf_refine_model_size')
   allocate (mem((mem_bytes + 7)/8), mem_run((mem_bytes + 7)/8))
   call check(lwf_refine_write_model(refine, c_loc(mem), mem_bytes, model), 'lwf_refine_write_model')
   call check(lwf_model_shape(model, fitted), 'lwf_model_shape')
   call check(lwf_model_log_prob(model, [0.0_c_double, 0.0_c_double, 7.0_c_double, 0.0_c_double], &
                                 4_c_size_t, lq, 2_c_size_t), 'lwf_model_log_prob')
   allocate (draws(d, n_draw), draw_log_q(n_draw))
   call check(lwf_rng_init(rng, 9_c_int64_t), 'lwf_rng_init')
   call check(lwf_model_sample(model, rng, draws, d*n_draw, draw_log_q, n_draw), 'lwf_model_sample')
   inside = all(abs(draws) <= box)
   ! "Can I trust this q?": its own draws weighted by likelihood x prior / q.
   allocate (log_w(n_draw), scratch(n_draw))
   do i = 1, n_draw
      log_w(i) = log_likelihood(draws(:, i)) + log_z_true - draw_log_q(i)
   end do
   call check(lwf_importance_summary(log_w, n_draw, scratch, n_draw, summary), &
              'lwf_importance_summary')

   ! 4. The callback form from a fresh start: the same report and parameters.
   call check(lwf_refine_init(c_loc(work_run), work_bytes, shape, [-box, -box], [box, box], d, &
                              config, refine_run), 'lwf_refine_init')
   rounds_seen = 0
   call check(lwf_refine_run(refine_run, c_funloc(log_likelihood_batch), 700_c_size_t, &
                             c_null_ptr, c_funloc(on_round), c_loc(rounds_seen)), 'lwf_refine_run')
   call check(lwf_refine_report(refine_run, report_run), 'lwf_refine_report')
   call check(lwf_refine_write_model(refine_run, c_loc(mem_run), mem_bytes, model_run), &
              'lwf_refine_write_model')
   call check(lwf_shape_param_count(fitted, p), 'lwf_shape_param_count')
   allocate (params(p), params_run(p))
   call check(lwf_model_get_params(model, params, p), 'lwf_model_get_params')
   call check(lwf_model_get_params(model_run, params_run, p), 'lwf_model_get_params')
   ! Bit for bit: compare the doubles' bits.
   identical = all(transfer(params, [0_c_int64_t]) == transfer(params_run, [0_c_int64_t])) &
               .and. transfer(report_run%log_z, 0_c_int64_t) == transfer(report%log_z, 0_c_int64_t) &
               .and. report_run%calls == report%calls .and. report_run%rounds == report%rounds &
               .and. rounds_seen == report%rounds

   print '(a, i0, a, i0, a, g0, a, l1, a, l1, a, l1, a, l1, a, l1)', 'RESULT status=', &
      report%status, ' calls=', report%calls, ' log_z=', report%log_z, ' bounded=', &
      fitted%bounded == 1, ' finite_inside=', ieee_is_finite(lq(1)), ' neg_inf_outside=', &
      lq(2) < -huge(lq(2)), ' samples_inside=', inside, ' run_identical=', identical

   if (report%status /= LWF_REFINE_CONVERGED .and. report%status /= LWF_REFINE_BUDGET_EXHAUSTED) &
      error stop 'neither converged nor out of budget'
   if (report%calls > config%max_calls) error stop 'over budget'
   if (.not. abs(report%log_z - log_z_true) < 0.1_c_double) error stop 'ln Z off'
   if (fitted%bounded /= 1 .or. fitted%affine /= 1) error stop 'the model lacks its outer maps'
   if (.not. ieee_is_finite(lq(1)) .or. .not. lq(2) < -huge(lq(2))) error stop 'log q on the box'
   if (.not. inside) error stop 'a sample outside the box'
   if (summary%n /= n_draw .or. summary%has_k_hat /= 1 .or. .not. summary%k_hat < 0.7_c_double &
       .or. .not. abs(summary%log_z - log_z_true) < 0.05_c_double &
       .or. .not. summary%ess > 0.5_c_double*n_draw) error stop 'diagnostics of the refined q'
   if (.not. identical) error stop 'lwf_refine_run differs from ask / tell'

contains

   subroutine check(code, what)
      integer(c_int), intent(in) :: code
      character(len=*), intent(in) :: what
      if (code /= LWF_OK) then
         print '(a, a, i0, a, a)', what, ' failed: ', code, ' ', lwf_status_string(code)
         error stop 1
      end if
   end subroutine check

end program refine_2d2
