! The refinement's ask/tell loop over MPI from Fortran (mpi_f08): the same program as
! refine_mpi.c, with the same settings, likelihood (operation for operation) and partition, so
! it saves the same model bytes as the C program and as a single-process run.
!
! One lwflow state, on rank 0: rank 0 asks for each round's points, MPI_Scatterv hands every
! rank a near-equal contiguous share (one point per column of theta(2, n)), every rank
! evaluates it, MPI_Gatherv brings the values back in order and rank 0 tells them. An
! MPI_Allreduce of a flag after every round's evaluation and the header rank 0 broadcasts
! before every round stop all ranks together, with a message on each, when a likelihood or
! lwflow fails. The model is saved to bytes on rank 0, broadcast, loaded on every rank, and
! written to a file by rank 0.
!
!   mpirun -np 4 ./refine_mpi_f [--ms 10] [--out model.lwf] [--fail-at N [--fail-rank R]]
!   ./refine_mpi_f --serial [...]   no MPI at all: the same refinement through lwf_refine_run

!> The task 2D2 likelihood with its call count, busy loop and injected failure.
module mpi_task_2d2
   use, intrinsic :: iso_c_binding
   use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
   implicit none
   private
   public :: evaluate, likelihood_callback, box, ms, calls, fail_at, fail_nan

   real(c_double), parameter :: sigma = 0.6_c_double, box = 6.0_c_double
   real(c_double), parameter :: pi = 3.14159265358979323846_c_double

   real(c_double) :: ms = 0.0_c_double       !< CPU milliseconds per call
   integer(c_int64_t) :: calls = 0           !< this process's likelihood calls
   integer(c_int64_t) :: fail_at = 0         !< the call that fails (0: none)
   logical :: fail_nan = .false.             !< fail by returning NaN

contains

   !> log p(D | x): the equal mixture of N((+-2.5, 0), 0.6^2 I), by log-sum-exp.
   pure function log_likelihood(x) result(l)
      real(c_double), intent(in) :: x(2)
      real(c_double) :: l, a, b, c, left, right, m, norm
      norm = -2.0_c_double*log(sigma) - log(2.0_c_double*pi)
      a = (x(1) + 2.5_c_double)/sigma
      b = (x(1) - 2.5_c_double)/sigma
      c = x(2)/sigma
      left = -0.5_c_double*(a*a + c*c) + norm
      right = -0.5_c_double*(b*b + c*c) + norm
      m = merge(left, right, left > right)
      l = m + log(0.5_c_double*exp(left - m) + 0.5_c_double*exp(right - m))
   end function log_likelihood

   !> Burns `ms` milliseconds of CPU time (cpu_time: this process's), a stand-in simulation.
   subroutine burn_cpu()
      real :: t0, t
      real(c_double) :: sink
      integer :: i
      if (.not. ms > 0.0_c_double) return
      sink = 0.0_c_double
      call cpu_time(t0)
      do
         do i = 1, 2000
            sink = sink + 1.0e-9_c_double*i
         end do
         call cpu_time(t)
         if (real(t - t0, c_double)*1000.0_c_double >= ms .or. sink < 0.0_c_double) exit
      end do
   end subroutine burn_cpu

   !> .true. and out = ln L(x), or .false.: the "simulation" failed.
   function evaluate(x, out) result(ok)
      real(c_double), intent(in) :: x(2)
      real(c_double), intent(out) :: out
      logical :: ok
      calls = calls + 1
      call burn_cpu()
      ok = .true.
      if (fail_at /= 0 .and. calls == fail_at) then
         if (.not. fail_nan) then
            ok = .false.
            out = 0.0_c_double
            return
         end if
         write (0, '(a, i0, a)') &
            '(--fail-nan: the likelihood returns NaN at this process''s call ', &
            calls, ')'
         out = ieee_value(0.0_c_double, ieee_quiet_nan)
         return
      end if
      out = log_likelihood(x)
   end function evaluate

   !> lwf_log_likelihood_fn for the serial run (lwf_refine_run).
   function likelihood_callback(theta, n, dim, out_loglik, user) result(status) bind(c)
      integer(c_size_t), value :: n, dim
      real(c_double), intent(in) :: theta(dim, n)
      real(c_double), intent(inout) :: out_loglik(n)
      type(c_ptr), value :: user
      integer(c_int) :: status
      integer(c_size_t) :: i
      status = 1
      if (dim /= 2 .or. c_associated(user)) return
      do i = 1, n
         if (.not. evaluate(theta(:, i), out_loglik(i))) return
      end do
      status = 0
   end function likelihood_callback

end module mpi_task_2d2

program refine_mpi_f
   use, intrinsic :: iso_c_binding
   use mpi_f08
   use lwflow
   use mpi_task_2d2
   implicit none

   integer(c_int64_t), parameter :: go = 0, done = 1, lwflow_error = 2
   type(lwf_shape) :: shape, model_shape
   type(lwf_refine_config) :: config
   type(lwf_refine_round) :: round
   type(lwf_refine_report_t) :: report
   type(c_ptr) :: refine, model
   type(MPI_Comm) :: comm
   real(c_double), allocatable, target :: work(:), mem(:)
   real(c_double), allocatable :: theta(:, :), loglik(:), my_theta(:, :), my_loglik(:)
   integer(c_int8_t), allocatable :: bytes(:)
   integer, allocatable :: counts(:), displs(:), counts2(:), displs2(:)
   integer(c_int64_t), allocatable :: per_rank(:)
   integer(c_int64_t) :: header(2), start(2), meta(2), evaluated, fail_rank
   integer(c_size_t) :: work_bytes, mem_bytes, capacity, n, len
   integer(c_int32_t) :: status
   integer(c_int) :: lwf, s
   integer :: rank, nranks, mine, i, flag, failed_rank, bad, any_bad, exit_code
   real(c_double) :: t0, lq(1), lq_min(1), lq_max(1)
   character(len=:), allocatable :: out_path
   logical :: serial, failed

   if (lwf_version() /= LWFLOW_VERSION) error stop 'lwflow.f90 does not match the library version'
   call parse_arguments()
   call check(lwf_shape_default(2_c_size_t, 16_c_size_t, 4_c_size_t, shape), 'lwf_shape_default')
   call check(lwf_refine_config_default(2_c_size_t, config), 'lwf_refine_config_default')
   config%max_calls = 6000
   config%target_ess = 2000.0_c_double
   config%max_components = 3
   config%max_epochs = 10
   call check(lwf_refine_work_size(shape, config, work_bytes), 'lwf_refine_work_size')

   if (serial) then
      call run_serial()
      stop
   end if

   call MPI_Init()
   comm = MPI_COMM_WORLD
   call MPI_Comm_rank(comm, rank)
   call MPI_Comm_size(comm, nranks)
   t0 = MPI_Wtime()
   if (fail_rank < 0 .or. fail_rank >= nranks) fail_rank = nranks - 1
   if (rank /= fail_rank) fail_at = 0

   ! Rank 0: the refinement.
   lwf = LWF_OK
   capacity = 0
   if (rank == 0) then
      allocate (work((work_bytes + 7)/8))
      lwf = lwf_refine_init(c_loc(work), work_bytes, shape, [-box, -box], [box, box], 2_c_size_t, &
                            config, refine)
      if (lwf == LWF_OK) lwf = lwf_refine_batch_capacity(refine, capacity)
      if (lwf /= LWF_OK) capacity = 0
      allocate (theta(2, max(capacity, 1_c_size_t)), loglik(max(capacity, 1_c_size_t)))
   else
      allocate (theta(2, 1), loglik(1))
   end if

   ! Every rank: buffers for its share of the largest round.
   start = [int(capacity, c_int64_t), int(lwf, c_int64_t)]
   call MPI_Bcast(start, 2, MPI_INTEGER8, 0, comm)
   allocate (counts(0:nranks - 1), displs(0:nranks - 1), counts2(0:nranks - 1), &
             displs2(0:nranks - 1), per_rank(0:nranks - 1))
   allocate (my_theta(2, start(1)/nranks + 1), my_loglik(start(1)/nranks + 1))

   failed_rank = -1
   header = [0_c_int64_t, go]
   do
      ! Rank 0: the next round's points, or why there are none.
      if (rank == 0) then
         status = LWF_REFINE_RUNNING
         n = 0
         if (lwf == LWF_OK) lwf = lwf_refine_status(refine, status)
         if (lwf == LWF_OK .and. status == LWF_REFINE_RUNNING) &
            lwf = lwf_refine_ask(refine, theta, capacity, n)
         if (lwf /= LWF_OK) then
            header = [int(lwf, c_int64_t), lwflow_error]
         else if (status == LWF_REFINE_RUNNING) then
            header = [int(n, c_int64_t), go]
         else
            header = [0_c_int64_t, done]
         end if
      end if
      call MPI_Bcast(header, 2, MPI_INTEGER8, 0, comm)
      if (header(2) /= go) exit

      ! Every rank: its share, evaluated.
      call shares(header(1), 2, counts2, displs2)
      call shares(header(1), 1, counts, displs)
      mine = counts(rank)
      call MPI_Scatterv(theta, counts2, displs2, MPI_DOUBLE_PRECISION, my_theta, 2*mine, &
                        MPI_DOUBLE_PRECISION, 0, comm)
      failed = .false.
      do i = 1, mine
         if (.not. evaluate(my_theta(:, i), my_loglik(i))) then
            write (0, '(a, i0, a, i0, a, g0, a, g0, a)') 'rank ', rank, &
               ': the likelihood failed at this rank''s call ', calls, ', theta = (', &
               my_theta(1, i), ', ', my_theta(2, i), ')'
            failed = .true.
            exit
         end if
      end do
      ! Did any rank fail? Everyone learns the highest failing rank, and stops together.
      flag = merge(rank, -1, failed)
      call MPI_Allreduce(flag, failed_rank, 1, MPI_INTEGER, MPI_MAX, comm)
      if (failed_rank >= 0) exit
      call MPI_Gatherv(my_loglik, mine, MPI_DOUBLE_PRECISION, loglik, counts, displs, &
                       MPI_DOUBLE_PRECISION, 0, comm)

      if (rank == 0) then
         lwf = lwf_refine_tell(refine, loglik, int(header(1), c_size_t), round)
         if (lwf == LWF_OK) then
            print '(a, i0, a, i0, a, i0, a, f9.4, a, f7.4)', 'round ', round%round, ': calls ', &
               round%calls, ', K ', round%components, ', ln Z ', round%log_z, ' +- ', round%log_z_se
         else
            write (0, '(a, a)') 'rank 0: lwf_refine_tell refused the round''s values: ', &
               lwf_status_string(lwf)
         end if
      end if
   end do

   ! Every rank's likelihood calls, summed on rank 0.
   evaluated = 0
   call MPI_Reduce(calls, evaluated, 1, MPI_INTEGER8, MPI_SUM, 0, comm)
   exit_code = 0
   if (failed_rank >= 0) then
      write (0, '(a, i0, a, i0)') 'rank ', rank, ': stopping: the likelihood failed on rank ', &
         failed_rank
      exit_code = 1
   else if (header(2) == lwflow_error) then
      write (0, '(a, i0, a, a)') 'rank ', rank, ': stopping: lwflow failed on rank 0: ', &
         lwf_status_string(int(header(1), c_int))
      exit_code = 1
   else
      ! The model: saved to bytes on rank 0, broadcast, loaded on every rank.
      meta = [0_c_int64_t, int(LWF_OK, c_int64_t)]
      if (rank == 0) then
         lwf = lwf_refine_report(refine, report)
         if (lwf == LWF_OK) lwf = lwf_refine_model_size(refine, mem_bytes)
         if (lwf == LWF_OK) then
            allocate (mem((mem_bytes + 7)/8))
            lwf = lwf_refine_write_model(refine, c_loc(mem), mem_bytes, model)
         end if
         if (lwf == LWF_OK) lwf = lwf_model_shape(model, model_shape)
         if (lwf == LWF_OK) lwf = lwf_shape_serialized_size(model_shape, len)
         if (lwf == LWF_OK) then
            allocate (bytes(len))
            lwf = lwf_model_save(model, bytes, len, len)
         end if
         if (allocated(mem)) deallocate (mem)
         meta = [int(len, c_int64_t), int(lwf, c_int64_t)]
      end if
      call MPI_Bcast(meta, 2, MPI_INTEGER8, 0, comm)
      if (meta(2) /= LWF_OK) then
         write (0, '(a, i0, a, a)') 'rank ', rank, &
            ': stopping: rank 0 could not save the model: ', &
            lwf_status_string(int(meta(2), c_int))
         exit_code = 1
      else
         len = int(meta(1), c_size_t)
         if (rank /= 0) allocate (bytes(len))
         call MPI_Bcast(bytes, int(len), MPI_BYTE, 0, comm)
         s = lwf_model_inspect(bytes, len, model_shape)
         if (s == LWF_OK) s = lwf_shape_model_size(model_shape, mem_bytes)
         if (s == LWF_OK) then
            allocate (mem((mem_bytes + 7)/8))
            s = lwf_model_load(c_loc(mem), mem_bytes, bytes, len, model)
         end if
         ! Each rank's log q at the first mode: they all hold the same model.
         lq = 0.0_c_double
         if (s == LWF_OK) s = lwf_model_log_prob(model, [-2.5_c_double, 0.0_c_double], &
                                                 2_c_size_t, lq, 1_c_size_t)
         bad = merge(1, 0, s /= LWF_OK)
         if (bad /= 0) write (0, '(a, i0, a, a)') 'rank ', rank, &
            ': cannot load the broadcast model: ', lwf_status_string(s)
         call MPI_Allreduce(bad, any_bad, 1, MPI_INTEGER, MPI_MAX, comm)
         call MPI_Allreduce(lq, lq_min, 1, MPI_DOUBLE_PRECISION, MPI_MIN, comm)
         call MPI_Allreduce(lq, lq_max, 1, MPI_DOUBLE_PRECISION, MPI_MAX, comm)
         if (any_bad /= 0 .or. &
             transfer(lq_min(1), 0_c_int64_t) /= transfer(lq_max(1), 0_c_int64_t)) then
            if (rank == 0) write (0, '(a)') 'the ranks do not hold the same model'
            exit_code = 1
         else if (rank == 0) then
            if (.not. write_bytes(out_path, bytes)) then
               write (0, '(a, a)') 'cannot write ', out_path
               exit_code = 1
            else
               print '(a, i0, a, g0)', 'all ', nranks, &
                  ' ranks loaded the model: log q(-2.5, 0) = ', lq(1)
               print '(a, i0, a, i0, a, i0, a, i0, a, i0, a, g0, a, i0, a, f0.3)', &
                  'RESULT mode=mpi ranks=', nranks, ' status=', report%status, ' rounds=', &
                  report%rounds, ' calls=', report%calls, ' evaluated=', evaluated, ' log_z=', &
                  report%log_z, ' bytes=', len, ' seconds=', MPI_Wtime() - t0
            end if
         end if
      end if
   end if
   ! Each rank's own count.
   call MPI_Gather(calls, 1, MPI_INTEGER8, per_rank, 1, MPI_INTEGER8, 0, comm)
   if (rank == 0 .and. exit_code == 0) then
      write (*, '(a)', advance='no') 'calls per rank:'
      do i = 0, nranks - 1
         write (*, '(a, i0)', advance='no') ' ', per_rank(i)
      end do
      write (*, '(a)') ''
   end if
   call MPI_Finalize()
   if (exit_code /= 0) stop 1

contains

   !> Near-equal contiguous shares of n points, in units of `unit` doubles.
   subroutine shares(total, unit, cnt, dsp)
      integer(c_int64_t), intent(in) :: total
      integer, intent(in) :: unit
      integer, intent(out) :: cnt(0:), dsp(0:)
      integer(c_int64_t) :: k, first
      integer :: j
      first = 0
      do j = 0, nranks - 1
         k = total/nranks + merge(1_c_int64_t, 0_c_int64_t, j < mod(total, int(nranks, c_int64_t)))
         cnt(j) = int(k*unit)
         dsp(j) = int(first*unit)
         first = first + k
      end do
   end subroutine shares

   !> No MPI: the plain single-process refinement through lwf_refine_run.
   subroutine run_serial()
      real(c_double), allocatable, target :: w(:), m(:)
      integer(c_int8_t), allocatable :: b(:)
      type(c_ptr) :: r, mdl
      type(lwf_shape) :: ms_shape
      integer(c_size_t) :: mb, nb
      integer(c_int) :: st
      allocate (w((work_bytes + 7)/8))
      call check(lwf_refine_init(c_loc(w), work_bytes, shape, [-box, -box], [box, box], &
                                 2_c_size_t, config, r), 'lwf_refine_init')
      st = lwf_refine_run(r, c_funloc(likelihood_callback), 4096_c_size_t, c_null_ptr, &
                          c_null_funptr, c_null_ptr)
      if (st /= LWF_OK) then
         write (0, '(a, a, a, i0, a)') 'serial refinement failed: ', lwf_status_string(st), &
            ' (likelihood calls ', calls, ')'
         stop 1
      end if
      call check(lwf_refine_report(r, report), 'lwf_refine_report')
      call check(lwf_refine_model_size(r, mb), 'lwf_refine_model_size')
      allocate (m((mb + 7)/8))
      call check(lwf_refine_write_model(r, c_loc(m), mb, mdl), 'lwf_refine_write_model')
      call check(lwf_model_shape(mdl, ms_shape), 'lwf_model_shape')
      call check(lwf_shape_serialized_size(ms_shape, nb), 'lwf_shape_serialized_size')
      allocate (b(nb))
      call check(lwf_model_save(mdl, b, nb, nb), 'lwf_model_save')
      if (.not. write_bytes(out_path, b(1:nb))) then
         write (0, '(a, a)') 'cannot write ', out_path
         stop 1
      end if
      print '(a, i0, a, i0, a, i0, a, i0, a, g0, a, i0)', 'RESULT mode=serial ranks=1 status=', &
         report%status, ' rounds=', report%rounds, ' calls=', report%calls, ' evaluated=', calls, &
         ' log_z=', report%log_z, ' bytes=', nb
   end subroutine run_serial

   !> Writes the bytes to a file; .false. on failure.
   function write_bytes(path, b) result(ok)
      character(len=*), intent(in) :: path
      integer(c_int8_t), intent(in) :: b(:)
      logical :: ok
      integer :: u, ios
      open (newunit=u, file=path, access='stream', form='unformatted', status='replace', &
            action='write', iostat=ios)
      ok = ios == 0
      if (.not. ok) return
      write (u, iostat=ios) b
      ok = ios == 0
      close (u, iostat=ios)
      ok = ok .and. ios == 0
   end function write_bytes

   subroutine parse_arguments()
      character(len=4096) :: arg, val
      integer :: k, ios
      serial = .false.
      fail_rank = -1
      out_path = 'refine_mpi.lwf'
      k = 1
      do while (k <= command_argument_count())
         call get_command_argument(k, arg)
         if (trim(arg) == '--serial') then
            serial = .true.
            k = k + 1
            cycle
         else if (trim(arg) == '--fail-nan') then
            fail_nan = .true.
            k = k + 1
            cycle
         end if
         ios = 1
         if (k < command_argument_count()) then
            call get_command_argument(k + 1, val)
            select case (trim(arg))
            case ('--ms')
               read (val, *, iostat=ios) ms
            case ('--out')
               out_path = trim(val)
               ios = 0
            case ('--fail-at')
               read (val, *, iostat=ios) fail_at
            case ('--fail-rank')
               read (val, *, iostat=ios) fail_rank
            end select
         end if
         if (ios /= 0) then
            write (0, '(a, a)') 'bad argument or value: ', trim(arg)
            stop 2
         end if
         k = k + 2
      end do
   end subroutine parse_arguments

   subroutine check(code, what)
      integer(c_int), intent(in) :: code
      character(len=*), intent(in) :: what
      if (code /= LWF_OK) then
         write (0, '(a, a, a)') what, ' failed: ', lwf_status_string(code)
         stop 1
      end if
   end subroutine check

end program refine_mpi_f
