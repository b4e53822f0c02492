! Fit task 3D2 (BENCHMARKS.md: equal mixture of N((+-2.5, 0, 0), 0.6^2 I), prior uniform on
! [-6, 6]^3) from Fortran with a Fortran likelihood, through the lwflow module: prior samples,
! log-sum-exp weights, a GMM(2) base at the modes, minibatch lwf_model_loss_grad +
! lwf_model_adam_step, then KL(p||q) against exact posterior samples and sampling from the
! trained flow.
!
!   gfortran -std=f2008 -O2 -Wall -Wextra -Werror -J build include/lwflow.f90 \
!      examples/fortran/fit_3d2.f90 target/release/liblwflow.a -lpthread -ldl -lm -o fit_3d2
program fit_3d2
   use, intrinsic :: iso_c_binding
   use lwflow
   implicit none

   integer(c_size_t), parameter :: d = 3, n = 30000, batch = 500, n_exact = 10000, n_draw = 4000
   integer, parameter :: epochs = 30
   real(c_double), parameter :: box = 6.0_c_double, mode = 2.5_c_double, sigma = 0.6_c_double
   real(c_double), parameter :: pi = 3.14159265358979323846_c_double

   real(c_double), allocatable :: theta(:, :), log_lik(:), w(:), grad(:), theta_b(:, :), w_b(:)
   real(c_double), allocatable :: exact(:, :), log_p(:), log_q(:), draws(:, :), draw_log_q(:)
   real(c_double), allocatable, target :: mem(:)
   integer(c_size_t), allocatable :: order(:)
   type(lwf_shape) :: shape
   type(lwf_adam) :: adam
   type(lwf_rng) :: rng
   type(c_ptr) :: model
   integer(c_size_t) :: mem_bytes, n_params, i, j, k, start, tmp
   integer(c_int) :: status
   integer :: epoch, steps, skipped, near
   real(c_double) :: u, loss, kl, kl_start, lmax, total, mean_abs
   real(c_double) :: modes(3, 2)

   if (lwf_version() /= LWFLOW_VERSION) error stop 'lwflow.f90 does not match the library version'

   ! 1. Prior samples, Fortran log-likelihood, self-normalised weights (mean 1).
   call seed_random()
   allocate (theta(d, n), log_lik(n), w(n))
   call random_number(theta)
   theta = -box + 2.0_c_double*box*theta
   do i = 1, n
      log_lik(i) = log_likelihood(theta(:, i))
   end do
   lmax = maxval(log_lik)
   total = sum(exp(log_lik - lmax))
   w = real(n, c_double)*exp(log_lik - lmax)/total
   print '(a, f8.1)', 'prior ESS: ', sum(w)**2/sum(w**2)

   ! 2. The model, in memory this program owns.
   call check(lwf_shape_default(d, 32_c_size_t, 4_c_size_t, shape), 'lwf_shape_default')
   shape%base = LWF_BASE_MIXTURE
   shape%components = 2
   call check(lwf_shape_model_size(shape, mem_bytes), 'lwf_shape_model_size')
   call check(lwf_shape_param_count(shape, n_params), 'lwf_shape_param_count')
   allocate (mem((mem_bytes + 7)/8), grad(n_params))
   call check(lwf_model_init(c_loc(mem), mem_bytes, shape, 11_c_int64_t, model), 'lwf_model_init')
   ! Base components on the modes (column k of modes is component k, in theta coordinates),
   ! unit scales: training learns the widths. (Phase 2 fits this base with weighted EM.)
   modes = reshape([-mode, 0.0_c_double, 0.0_c_double, mode, 0.0_c_double, 0.0_c_double], [3, 2])
   call check(lwf_model_set_mixture_base(model, [0.5_c_double, 0.5_c_double], 2_c_size_t, &
                                         modes, 6_c_size_t, [(1.0_c_double, k=1, 6)], &
                                         6_c_size_t), 'lwf_model_set_mixture_base')

   ! Exact posterior samples (the box cuts off < 1e-8 of the mass).
   allocate (exact(d, n_exact), log_p(n_exact), log_q(n_exact))
   do i = 1, n_exact
      call random_number(u)
      exact(1, i) = merge(-mode, mode, u < 0.5_c_double) + sigma*normal()
      exact(2, i) = sigma*normal()
      exact(3, i) = sigma*normal()
      log_p(i) = log_likelihood(exact(:, i))
   end do
   kl_start = kl_divergence()

   ! 3. Minibatch training.
   call check(lwf_adam_default(adam), 'lwf_adam_default')
   adam%lr = 2.0e-3_c_double
   allocate (order(n), theta_b(d, batch), w_b(batch))
   order = [(i, i=1, n)]
   steps = 0
   skipped = 0
   loss = 0.0_c_double
   do epoch = 1, epochs
      do i = n, 2, -1
         call random_number(u)
         j = 1 + int(u*real(i, c_double), c_size_t)
         tmp = order(i)
         order(i) = order(j)
         order(j) = tmp
      end do
      do start = 0, n - batch, batch
         theta_b = theta(:, order(start + 1:start + batch))
         w_b = w(order(start + 1:start + batch))
         status = lwf_model_loss_grad(model, theta_b, d*batch, w_b, batch, grad, n_params, loss)
         if (status == LWF_OK) status = lwf_model_adam_step(model, adam, grad, n_params)
         if (status == LWF_NON_FINITE) then
            skipped = skipped + 1
            cycle
         end if
         call check(status, 'training step')
         steps = steps + 1
      end do
   end do
   kl = kl_divergence()
   print '(a, i0, a, i0, a)', 'steps: ', steps, ' (', skipped, ' skipped)'
   print '(a, f8.4, a, f8.4)', 'KL(p||q): before ', kl_start, ', after ', kl

   ! 4. Sample from the trained flow.
   allocate (draws(d, n_draw), draw_log_q(n_draw))
   call check(lwf_rng_init(rng, 2_c_int64_t), 'lwf_rng_init')
   call check(lwf_model_sample(model, rng, draws, d*n_draw, draw_log_q, n_draw), 'lwf_model_sample')
   near = count(abs(abs(draws(1, :)) - mode) < 1.5_c_double .and. abs(draws(2, :)) < 1.5_c_double &
                .and. abs(draws(3, :)) < 1.5_c_double)
   mean_abs = sum(abs(draws(1, :)))/real(n_draw, c_double)
   print '(a, f6.3, a, f6.3)', 'samples: mean |theta_1| ', mean_abs, ', share near a mode ', &
      real(near, c_double)/real(n_draw, c_double)
   print '(a, g0, a, g0, a, g0)', 'RESULT kl=', kl, ' kl_start=', kl_start, &
      ' near=', real(near, c_double)/real(n_draw, c_double)

   if (.not. (kl < 0.1_c_double .and. kl < kl_start)) error stop 'KL(p||q) too large'
   if (abs(mean_abs - mode) > 0.2_c_double) error stop 'samples not at the modes'
   if (real(near, c_double) < 0.9_c_double*real(n_draw, c_double)) error stop 'samples not at the modes'

contains

   !> log of the 3D2 likelihood; also the exact posterior log-density.
   pure function log_likelihood(x) result(l)
      real(c_double), intent(in) :: x(3)
      real(c_double) :: l, a, b, m, c
      c = -3.0_c_double*(log(sigma) + 0.5_c_double*log(2.0_c_double*pi))
      a = c - 0.5_c_double*(((x(1) + mode)/sigma)**2 + (x(2)/sigma)**2 + (x(3)/sigma)**2)
      b = c - 0.5_c_double*(((x(1) - mode)/sigma)**2 + (x(2)/sigma)**2 + (x(3)/sigma)**2)
      m = max(a, b)
      l = m + log(0.5_c_double*exp(a - m) + 0.5_c_double*exp(b - m))
   end function log_likelihood

   function kl_divergence() result(kl_value)
      real(c_double) :: kl_value
      call check(lwf_model_log_prob(model, exact, d*n_exact, log_q, n_exact), 'lwf_model_log_prob')
      kl_value = sum(log_p - log_q)/real(n_exact, c_double)
   end function kl_divergence

   function normal() result(z)
      real(c_double) :: z, u1, u2
      call random_number(u1)
      call random_number(u2)
      u1 = 1.0_c_double - u1 ! (0, 1]
      z = sqrt(-2.0_c_double*log(u1))*cos(2.0_c_double*pi*u2)
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

end program fit_3d2
