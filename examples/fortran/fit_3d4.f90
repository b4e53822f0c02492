! Fit task 3D4 (docs/TASKS.md: equal mixture of four N(sqrt(3) v, 0.5^2 I) at the vertices v of
! a tetrahedron, (1,1,1), (1,-1,-1), (-1,1,-1), (-1,-1,1); prior uniform on [-6, 6]^3) from
! Fortran with a Fortran likelihood, in one call to lwf_model_fit_prior_box: prior draws, the
! likelihood callback below, weighted EM picking the number of mixture components by BIC, and
! training with a progress callback. Then KL(p||q) against exact posterior samples, and
! sampling from the fitted flow.
!
!   mkdir -p build && gfortran -std=f2008 -O2 -Wall -Wextra -Werror -J build include/lwflow.f90 \
!      examples/fortran/fit_3d4.f90 target/release/liblwflow.a -lpthread -ldl -lm -o fit_3d4

!> The task: its likelihood (also the exact posterior density: the box cuts off < 1e-8 of the
!> mass) and the fit's callbacks, which must be bind(c) module procedures.
module task_3d4
   use, intrinsic :: iso_c_binding
   use lwflow, only: lwf_epoch_report
   implicit none
   private
   public :: log_likelihood, log_likelihood_batch, progress, vertex, sigma, box

   real(c_double), parameter :: sigma = 0.5_c_double, box = 6.0_c_double
   real(c_double), parameter :: pi = 3.14159265358979323846_c_double
   !> vertex(:, k): the mean of component k, sqrt(3) times a tetrahedron vertex.
   real(c_double), parameter :: vertex(3, 4) = sqrt(3.0_c_double)*reshape( &
      [1.0_c_double, 1.0_c_double, 1.0_c_double, 1.0_c_double, -1.0_c_double, -1.0_c_double, &
       -1.0_c_double, 1.0_c_double, -1.0_c_double, -1.0_c_double, -1.0_c_double, 1.0_c_double], &
      [3, 4])

contains

   !> log p(D | x): the equal-weight mixture, by log-sum-exp.
   pure function log_likelihood(x) result(l)
      real(c_double), intent(in) :: x(3)
      real(c_double) :: l, c(4), m
      integer :: k
      do k = 1, 4
         c(k) = -0.5_c_double*sum(((x - vertex(:, k))/sigma)**2) &
                - 3.0_c_double*(log(sigma) + 0.5_c_double*log(2.0_c_double*pi))
      end do
      m = maxval(c)
      l = m + log(0.25_c_double*sum(exp(c - m)))
   end function log_likelihood

   !> The batched callback (lwf_log_likelihood_fn): one point per column of theta. `user`
   !> points at a counter of the points evaluated.
   function log_likelihood_batch(theta, n, dim, out_loglik, user) result(status) bind(c)
      integer(c_size_t), value :: n, dim
      real(c_double), intent(in) :: theta(dim, n)
      real(c_double), intent(inout) :: out_loglik(n)
      type(c_ptr), value :: user
      integer(c_int) :: status
      integer(c_size_t), pointer :: points
      integer(c_size_t) :: i
      if (dim /= 3) then
         status = 1 ! refused: the fit stops with LWF_CALLBACK_FAILED
         return
      end if
      do i = 1, n
         out_loglik(i) = log_likelihood(theta(:, i))
      end do
      call c_f_pointer(user, points)
      points = points + n
      status = 0
   end function log_likelihood_batch

   !> The progress callback (lwf_progress_fn): counts the epochs in the integer `user` points
   !> at and prints every tenth; never cancels.
   function progress(report, user) result(status) bind(c)
      type(lwf_epoch_report), intent(in) :: report
      type(c_ptr), value :: user
      integer(c_int) :: status
      integer(c_size_t), pointer :: epochs
      call c_f_pointer(user, epochs)
      epochs = epochs + 1
      if (mod(report%epoch, 10_c_size_t) == 0 .or. report%epoch == 1) then
         print '(a, i3, a, f8.4, a, f8.4)', '  epoch ', report%epoch, ': validation ', &
            report%val_loss, ', best ', report%best_val_loss
      end if
      status = 0
   end function progress

end module task_3d4

program fit_3d4
   use, intrinsic :: iso_c_binding
   use lwflow
   use task_3d4
   implicit none

   integer(c_size_t), parameter :: d = 3, n = 30000, n_exact = 10000, n_draw = 4000
   real(c_double), allocatable, target :: mem(:), work(:)
   real(c_double), allocatable :: exact(:, :), log_p(:), log_q(:), draws(:, :), draw_log_q(:)
   integer(c_size_t), target :: points, epochs
   type(lwf_shape) :: shape, fitted
   type(lwf_fit_config) :: config
   type(lwf_fit_report) :: report
   type(lwf_rng) :: rng
   type(c_ptr) :: model
   integer(c_size_t) :: mem_bytes, work_bytes, i
   integer :: k, near(4), nearest
   real(c_double) :: u, kl

   if (lwf_version() /= LWFLOW_VERSION) error stop 'lwflow.f90 does not match the library version'

   ! 1. Shape (the base comes from the config), configuration, memory sizes.
   call check(lwf_shape_default(d, 32_c_size_t, 4_c_size_t, shape), 'lwf_shape_default')
   call check(lwf_fit_config_default(config), 'lwf_fit_config_default')
   if (c_sizeof(config) /= config%struct_size) error stop 'lwf_fit_config differs from lwflow.h'
   config%base = LWF_FIT_BASE_AUTO
   config%components = 6 ! K chosen by BIC among 1..6
   config%max_epochs = 30
   config%sample_seed = 3
   config%init_seed = 11
   call check(lwf_fit_model_size(shape, config, mem_bytes), 'lwf_fit_model_size')
   call check(lwf_fit_work_size(shape, config, n, work_bytes), 'lwf_fit_work_size')
   allocate (mem((mem_bytes + 7)/8), work((work_bytes + 7)/8))

   ! 2. The fit.
   points = 0
   epochs = 0
   call check(lwf_model_fit_prior_box(c_loc(mem), mem_bytes, shape, config, &
                                      [(-box, k=1, 3)], d, [(box, k=1, 3)], d, n, &
                                      c_funloc(log_likelihood_batch), c_loc(points), &
                                      c_funloc(progress), c_loc(epochs), c_loc(work), work_bytes, &
                                      report, model), 'lwf_model_fit_prior_box')
   deallocate (work) ! scratch: the model lives in mem alone
   call check(lwf_model_shape(model, fitted), 'lwf_model_shape')
   print '(a, i0, a, f8.1)', 'likelihood points: ', points, ', ESS ', report%ess
   print '(a, i0, a, f10.1)', 'base: K = ', report%components, ' by BIC, BIC ', report%em_bic
   print '(a, i0, a, i0, a, i0, a)', 'training: ', report%epochs, ' epochs (best ', &
      report%best_epoch, ', ', report%steps, ' steps)'
   if (points /= n .or. epochs /= report%epochs .or. fitted%components /= report%components) &
      error stop 'inconsistent report'

   ! 3. KL(p||q) on exact posterior samples.
   call seed_random()
   allocate (exact(d, n_exact), log_p(n_exact), log_q(n_exact))
   i = 1
   do while (i <= n_exact)
      call random_number(u)
      k = 1 + min(3, int(4.0_c_double*u))
      exact(:, i) = vertex(:, k) + sigma*[normal(), normal(), normal()]
      if (any(abs(exact(:, i)) > box)) cycle
      log_p(i) = log_likelihood(exact(:, i))
      i = i + 1
   end do
   call check(lwf_model_log_prob(model, exact, d*n_exact, log_q, n_exact), 'lwf_model_log_prob')
   kl = sum(log_p - log_q)/real(n_exact, c_double)
   print '(a, f8.4)', 'KL(p||q): ', kl

   ! 4. Sample from the fitted flow: which vertex is each draw nearest to, and how near?
   allocate (draws(d, n_draw), draw_log_q(n_draw))
   call check(lwf_rng_init(rng, 2_c_int64_t), 'lwf_rng_init')
   call check(lwf_model_sample(model, rng, draws, d*n_draw, draw_log_q, n_draw), &
              'lwf_model_sample')
   near = 0
   do i = 1, n_draw
      nearest = minloc([(sum((draws(:, i) - vertex(:, k))**2), k=1, 4)], dim=1)
      if (sqrt(sum((draws(:, i) - vertex(:, nearest))**2)) < 4.0_c_double*sigma) &
         near(nearest) = near(nearest) + 1
   end do
   print '(a, 4f7.3)', 'share of draws near each vertex: ', real(near, c_double)/real(n_draw, c_double)
   print '(a, g0, a, i0, a, g0)', 'RESULT kl=', kl, ' components=', report%components, &
      ' near=', real(sum(near), c_double)/real(n_draw, c_double)

   if (.not. kl < 0.05_c_double) error stop 'KL(p||q) too large'
   if (report%components /= 4) error stop 'BIC did not pick the four modes'
   if (sum(near) < 9*n_draw/10 .or. minval(near) < n_draw/8) error stop 'draws miss a mode'

contains

   function normal() result(z)
      real(c_double) :: z, u1, u2
      real(c_double), parameter :: two_pi = 6.28318530717958647692_c_double
      call random_number(u1)
      call random_number(u2)
      u1 = 1.0_c_double - u1 ! (0, 1]
      z = sqrt(-2.0_c_double*log(u1))*cos(two_pi*u2)
   end function normal

   subroutine seed_random()
      integer :: size_seed, s
      integer, allocatable :: seed(:)
      call random_seed(size=size_seed)
      allocate (seed(size_seed))
      seed = [(104729*s + 17, s=1, size_seed)]
      call random_seed(put=seed)
   end subroutine seed_random

   subroutine check(code, what)
      integer(c_int), intent(in) :: code
      character(len=*), intent(in) :: what
      if (code /= LWF_OK) then
         print '(a, a, i0, a, a)', what, ' failed: ', code, ' ', lwf_status_string(code)
         error stop 1
      end if
   end subroutine check

end program fit_3d4
