/* The refinement's ask/tell loop over MPI: every rank evaluates its share of each round's
 * points, on task 2D2 (prior uniform on [-6, 6]^2, likelihood the equal mixture of
 * N((+-2.5, 0), 0.6^2 I), ln Z = -2 ln 12), with an optional busy loop that makes every
 * likelihood call cost a chosen number of milliseconds of CPU.
 *
 * Design: ONE lwflow state, on rank 0. Rank 0 owns the refinement's work memory, asks for a
 * round's points, scatters them (MPI_Scatterv, near-equal contiguous shares in the order
 * lwf_refine_ask gave them), every rank evaluates its share, the values come back in the
 * same order (MPI_Gatherv) and rank 0 tells them. So the refinement sees exactly the values,
 * in exactly the order, of a single-process run: the model is bit for bit the same for any
 * number of ranks. At the end rank 0 writes the model, broadcasts its saved bytes, every
 * rank loads them (ready to sample or evaluate) and rank 0 saves the file.
 *
 * Failures never hang: after each round's evaluation every rank learns, by an
 * MPI_Allreduce of a flag, whether any rank's likelihood failed, and rank 0's lwflow
 * statuses travel in the per-round header it broadcasts. On any failure every rank prints
 * why, calls MPI_Finalize and exits with status 1.
 *
 *   mpirun -np 4 ./refine_mpi [--ms 10] [--out model.lwf] [--fail-at N [--fail-rank R]]
 *   ./refine_mpi --serial [...]     no MPI at all: the same refinement through lwf_refine_run
 *
 * --ms X        CPU milliseconds burnt per likelihood call (default 0)
 * --sleep-ms X  wall-clock milliseconds slept per call instead: a likelihood that waits on
 *               something else (for the scaling notes: the scheme's own overhead, whatever
 *               the number of cores)
 * --out PATH    where rank 0 saves the model (default refine_mpi.lwf)
 * --fail-at N   rank R's N-th likelihood call (counted on that rank, from 1) fails
 * --fail-rank R the failing rank (default: the last one)
 * --fail-nan    ... by returning NaN (refused by rank 0's lwf_refine_tell) instead of
 *               reporting failure itself
 *
 * Rank 0 prints a line per round and a RESULT line (read by ffi/tests/mpi.rs). */
#define _POSIX_C_SOURCE 200809L
#include "common_mpi.h"

#include <errno.h>
#include <limits.h>
#include <mpi.h>

/* The refinement's settings, shared with refine_mpi.f90 (whose models must be the same). */
static LwfStatus settings(LwfShape *shape, LwfRefineConfig *config) {
    LwfStatus s = lwf_shape_default(2, 16, 4, shape);
    if (s == LWF_OK) s = lwf_refine_config_default(2, config);
    config->max_calls = 6000;
    config->target_ess = 2000.0;
    config->max_components = 3;
    config->max_epochs = 10;
    return s;
}

/* The likelihood of one process, with its call count and the injected failure. */
typedef struct {
    double ms, sleep_ms;
    long long calls;
    long long fail_at; /* 0: never */
    int fail_nan;
} Likelihood;

/* 0 and *out = ln L(x), or non-zero: the "simulation" failed. */
static int evaluate(Likelihood *lik, const double *x, double *out) {
    lik->calls++;
    burn_cpu(lik->ms);
    if (lik->sleep_ms > 0.0) {
        struct timespec t = {(time_t)(lik->sleep_ms / 1e3),
                             (long)(fmod(lik->sleep_ms, 1e3) * 1e6)};
        while (nanosleep(&t, &t) != 0 && errno == EINTR) {
        }
    }
    if (lik->fail_at != 0 && lik->calls == lik->fail_at) {
        if (!lik->fail_nan) return 1;
        fprintf(stderr, "(--fail-nan: the likelihood returns NaN at this process's call %lld)\n",
                lik->calls);
        *out = NAN;
        return 0;
    }
    *out = log_likelihood_2d2(x);
    return 0;
}

static int serial_callback(const double *theta, size_t n, size_t dim, double *out, void *user) {
    for (size_t i = 0; i < n; i++)
        if (evaluate((Likelihood *)user, theta + i * dim, out + i) != 0) return 1;
    return 0;
}

static void print_round(const LwfRefineRound *round) {
    printf("round %zu: calls %zu, beta %.3f -> %.3f, K %zu, ESS %.0f, ln Z %.4f +- %.4f\n",
           round->round, round->calls, round->beta, round->next_beta, round->components,
           round->ess, round->log_z, round->log_z_se);
    fflush(stdout);
}

static int serial_progress(const LwfRefineRound *round, void *user) {
    (void)user;
    print_round(round);
    return 0;
}

static void print_result(const char *mode, int ranks, const LwfRefineReport *report,
                         long long evaluated, const uint8_t *bytes, size_t len, double seconds) {
    printf("RESULT mode=%s ranks=%d status=%d rounds=%zu calls=%zu evaluated=%lld "
           "log_z=%.17g bytes=%zu fnv=%016llx seconds=%.3f\n",
           mode, ranks, report->status, report->rounds, report->calls, evaluated, report->log_z,
           len, (unsigned long long)fnv1a64(bytes, len), seconds);
}

/* The model of a finished refinement as saved bytes (malloc'ed), or NULL with *status. */
static uint8_t *saved_model(const LwfRefine *r, size_t *len, LwfStatus *status) {
    size_t mem_len = 0, bytes_len = 0;
    LwfModel *model = NULL;
    LwfShape shape;
    void *mem = NULL;
    uint8_t *bytes = NULL;
    *status = lwf_refine_model_size(r, &mem_len);
    if (*status == LWF_OK) *status = (mem = malloc(mem_len)) ? LWF_OK : LWF_BUFFER_TOO_SMALL;
    if (*status == LWF_OK) *status = lwf_refine_write_model(r, mem, mem_len, &model);
    if (*status == LWF_OK) *status = lwf_model_shape(model, &shape);
    if (*status == LWF_OK) *status = lwf_shape_serialized_size(&shape, &bytes_len);
    if (*status == LWF_OK) *status = (bytes = malloc(bytes_len)) ? LWF_OK : LWF_BUFFER_TOO_SMALL;
    if (*status == LWF_OK) *status = lwf_model_save(model, bytes, bytes_len, len);
    free(mem);
    if (*status != LWF_OK) {
        free(bytes);
        return NULL;
    }
    return bytes;
}

/* No MPI: the plain single-process refinement, through lwf_refine_run. */
static int run_serial(Likelihood *lik, const char *out_path) {
    LwfShape shape;
    LwfRefineConfig config;
    LwfStatus s = settings(&shape, &config);
    const double lo[2] = {-BOX, -BOX}, hi[2] = {BOX, BOX};
    size_t work_len = 0;
    LwfRefine *r = NULL;
    if (s == LWF_OK) s = lwf_refine_work_size(&shape, &config, &work_len);
    void *work = s == LWF_OK ? malloc(work_len) : NULL;
    double t0 = wall_seconds();
    if (s == LWF_OK && !work) s = LWF_BUFFER_TOO_SMALL;
    if (s == LWF_OK) s = lwf_refine_init(work, work_len, &shape, lo, hi, 2, &config, &r);
    if (s == LWF_OK) s = lwf_refine_run(r, serial_callback, 4096, lik, serial_progress, NULL);
    LwfRefineReport report;
    if (s == LWF_OK) s = lwf_refine_report(r, &report);
    size_t len = 0;
    uint8_t *bytes = s == LWF_OK ? saved_model(r, &len, &s) : NULL;
    free(work);
    if (s != LWF_OK) {
        fprintf(stderr, "serial refinement failed: %s (likelihood calls %lld)\n",
                lwf_status_message((int)s), lik->calls);
        return 1;
    }
    int failed = write_file(out_path, bytes, len);
    if (failed) fprintf(stderr, "cannot write %s\n", out_path);
    else print_result("serial", 1, &report, lik->calls, bytes, len, wall_seconds() - t0);
    free(bytes);
    return failed;
}

/* The per-round header rank 0 broadcasts. */
enum { GO = 0, DONE = 1, LWFLOW_ERROR = 2 };

/* Near-equal contiguous shares of n points: rank i gets counts[i] points from displs[i],
 * in units of `unit` doubles. */
static void shares(long long n, int size, int unit, int *counts, int *displs) {
    long long start = 0;
    for (int i = 0; i < size; i++) {
        long long k = n / size + (i < n % size ? 1 : 0);
        counts[i] = (int)(k * unit);
        displs[i] = (int)(start * unit);
        start += k;
    }
}

static int run_mpi(Likelihood *lik, const char *out_path, int fail_rank, MPI_Comm comm) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (fail_rank < 0 || fail_rank >= size) fail_rank = size - 1;
    if (rank != fail_rank) lik->fail_at = 0;
    double t0 = MPI_Wtime();

    /* Rank 0: the refinement. */
    LwfStatus lwf = LWF_OK; /* rank 0's first lwflow failure */
    LwfRefine *r = NULL;
    void *work = NULL;
    double *theta = NULL, *loglik = NULL;
    size_t capacity = 0;
    if (rank == 0) {
        LwfShape shape;
        LwfRefineConfig config;
        const double lo[2] = {-BOX, -BOX}, hi[2] = {BOX, BOX};
        size_t work_len = 0;
        lwf = settings(&shape, &config);
        if (lwf == LWF_OK) lwf = lwf_refine_work_size(&shape, &config, &work_len);
        if (lwf == LWF_OK) lwf = (work = malloc(work_len)) ? LWF_OK : LWF_BUFFER_TOO_SMALL;
        if (lwf == LWF_OK) lwf = lwf_refine_init(work, work_len, &shape, lo, hi, 2, &config, &r);
        if (lwf == LWF_OK) lwf = lwf_refine_batch_capacity(r, &capacity);
        if (lwf == LWF_OK && capacity > (size_t)INT_MAX / 2) lwf = LWF_LENGTH_MISMATCH;
        if (lwf == LWF_OK) {
            theta = malloc(capacity * 2 * sizeof(double));
            loglik = malloc(capacity * sizeof(double));
            if (!theta || !loglik) lwf = LWF_BUFFER_TOO_SMALL;
        }
    }
    /* Every rank: buffers for its share of the largest round, and a common start. */
    long long start[2] = {(long long)capacity, (long long)lwf};
    MPI_Bcast(start, 2, MPI_LONG_LONG, 0, comm);
    const long long share = start[0] / size + 1;
    int *counts = malloc((size_t)size * sizeof(int));
    int *displs = malloc((size_t)size * sizeof(int));
    int *counts2 = malloc((size_t)size * sizeof(int));
    int *displs2 = malloc((size_t)size * sizeof(int));
    double *my_theta = malloc((size_t)share * 2 * sizeof(double));
    double *my_loglik = malloc((size_t)share * sizeof(double));
    long long *per_rank = malloc((size_t)size * sizeof(long long));
    int no_memory =
        !counts || !displs || !counts2 || !displs2 || !my_theta || !my_loglik || !per_rank;
    int any_no_memory = 0;
    MPI_Allreduce(&no_memory, &any_no_memory, 1, MPI_INT, MPI_MAX, comm);
    if (no_memory) fprintf(stderr, "rank %d: out of memory\n", rank);

    int failed_rank = -1; /* a rank whose likelihood failed */
    long long header[2] = {0, GO};
    while (!any_no_memory) {
        /* Rank 0: the next round's points, or why there are none. */
        if (rank == 0) {
            int32_t status = LWF_REFINE_RUNNING;
            size_t n = 0;
            if (lwf == LWF_OK) lwf = lwf_refine_status(r, &status);
            if (lwf == LWF_OK && status == LWF_REFINE_RUNNING)
                lwf = lwf_refine_ask(r, theta, capacity, &n);
            header[0] = (long long)n;
            header[1] = lwf != LWF_OK ? LWFLOW_ERROR : status == LWF_REFINE_RUNNING ? GO : DONE;
            if (header[1] == LWFLOW_ERROR) header[0] = (long long)lwf;
        }
        MPI_Bcast(header, 2, MPI_LONG_LONG, 0, comm);
        if (header[1] != GO) break;

        /* Every rank: its share of the points, evaluated. */
        shares(header[0], size, 2, counts2, displs2);
        shares(header[0], size, 1, counts, displs);
        int mine = counts[rank], failed = 0;
        MPI_Scatterv(theta, counts2, displs2, MPI_DOUBLE, my_theta, 2 * mine, MPI_DOUBLE, 0,
                     comm);
        for (int i = 0; i < mine && !failed; i++) {
            if (evaluate(lik, my_theta + 2 * i, my_loglik + i) != 0) {
                fprintf(stderr,
                        "rank %d: the likelihood failed at this rank's call %lld, theta = "
                        "(%.6g, %.6g)\n",
                        rank, lik->calls, my_theta[2 * i], my_theta[2 * i + 1]);
                failed = 1;
            }
        }
        /* Did any rank fail? Everyone learns the highest failing rank, and stops together. */
        int flag = failed ? rank : -1;
        MPI_Allreduce(&flag, &failed_rank, 1, MPI_INT, MPI_MAX, comm);
        if (failed_rank >= 0) break;
        MPI_Gatherv(my_loglik, mine, MPI_DOUBLE, loglik, counts, displs, MPI_DOUBLE, 0, comm);

        if (rank == 0) {
            LwfRefineRound round;
            lwf = lwf_refine_tell(r, loglik, (size_t)header[0], &round);
            if (lwf == LWF_OK) print_round(&round);
            else
                fprintf(stderr, "rank 0: lwf_refine_tell refused the round's values: %s\n",
                        lwf_status_message((int)lwf));
        }
    }

    /* Every rank's likelihood calls, summed on rank 0. */
    long long evaluated = 0;
    MPI_Reduce(&lik->calls, &evaluated, 1, MPI_LONG_LONG, MPI_SUM, 0, comm);
    int exit_code = 0;
    if (any_no_memory || failed_rank >= 0 || header[1] == LWFLOW_ERROR) {
        if (any_no_memory)
            fprintf(stderr, "rank %d: stopping: a rank is out of memory\n", rank);
        else if (failed_rank >= 0)
            fprintf(stderr, "rank %d: stopping: the likelihood failed on rank %d\n", rank,
                    failed_rank);
        else
            fprintf(stderr, "rank %d: stopping: lwflow failed on rank 0: %s\n", rank,
                    lwf_status_message((int)header[0]));
        exit_code = 1;
    } else {
        /* The model: rank 0 saves it to bytes, broadcasts them; every rank loads them. */
        LwfRefineReport report;
        uint8_t *bytes = NULL;
        size_t len = 0;
        long long meta[2] = {0, LWF_OK};
        if (rank == 0) {
            lwf = lwf_refine_report(r, &report);
            if (lwf == LWF_OK) bytes = saved_model(r, &len, &lwf);
            meta[0] = (long long)len;
            meta[1] = (long long)lwf;
        }
        MPI_Bcast(meta, 2, MPI_LONG_LONG, 0, comm);
        if (meta[1] != LWF_OK) {
            fprintf(stderr, "rank %d: stopping: rank 0 could not save the model: %s\n", rank,
                    lwf_status_message((int)meta[1]));
            exit_code = 1;
        } else {
            len = (size_t)meta[0];
            if (rank != 0) bytes = len <= INT_MAX ? malloc(len) : NULL;
            int bad = bytes == NULL, any_bad = 0;
            MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, comm);
            if (!any_bad) MPI_Bcast(bytes, (int)len, MPI_BYTE, 0, comm);
            LwfShape shape;
            size_t mem_len = 0;
            void *mem = NULL;
            LwfModel *model = NULL;
            LwfStatus s = any_bad ? LWF_BUFFER_TOO_SMALL : lwf_model_inspect(bytes, len, &shape);
            if (s == LWF_OK) s = lwf_shape_model_size(&shape, &mem_len);
            if (s == LWF_OK) s = (mem = malloc(mem_len)) ? LWF_OK : LWF_BUFFER_TOO_SMALL;
            if (s == LWF_OK) s = lwf_model_load(mem, mem_len, bytes, len, &model);
            /* Each rank's log q at the first mode, to check they all hold the same model. */
            const double x[2] = {-2.5, 0.0};
            double lq = NAN, lq_min = NAN, lq_max = NAN;
            if (s == LWF_OK) s = lwf_model_log_prob(model, x, 2, &lq, 1);
            bad = s != LWF_OK;
            if (bad)
                fprintf(stderr, "rank %d: cannot load the broadcast model: %s\n", rank,
                        lwf_status_message((int)s));
            MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, comm);
            MPI_Allreduce(&lq, &lq_min, 1, MPI_DOUBLE, MPI_MIN, comm);
            MPI_Allreduce(&lq, &lq_max, 1, MPI_DOUBLE, MPI_MAX, comm);
            if (any_bad || memcmp(&lq_min, &lq_max, sizeof lq) != 0) {
                if (rank == 0) fprintf(stderr, "the ranks do not hold the same model\n");
                exit_code = 1;
            } else if (rank == 0) {
                if (write_file(out_path, bytes, len) != 0) {
                    fprintf(stderr, "cannot write %s\n", out_path);
                    exit_code = 1;
                } else {
                    printf("all %d ranks loaded the model: log q(-2.5, 0) = %.17g\n", size, lq);
                    print_result("mpi", size, &report, evaluated, bytes, len, MPI_Wtime() - t0);
                }
            }
            free(mem);
            free(bytes);
        }
    }
    /* Each rank's own count, for the scaling notes. */
    if (!any_no_memory)
        MPI_Gather(&lik->calls, 1, MPI_LONG_LONG, per_rank, 1, MPI_LONG_LONG, 0, comm);
    if (rank == 0 && !any_no_memory && exit_code == 0) {
        printf("calls per rank:");
        for (int i = 0; i < size; i++) printf(" %lld", per_rank[i]);
        printf("\n");
    }
    free(per_rank);
    free(counts);
    free(displs);
    free(counts2);
    free(displs2);
    free(my_theta);
    free(my_loglik);
    free(theta);
    free(loglik);
    free(work);
    return exit_code;
}

int main(int argc, char **argv) {
    if (lwf_version() != LWFLOW_VERSION) {
        fprintf(stderr, "header and library versions differ\n");
        return 1;
    }
    Likelihood lik = {
        .ms = arg_number(argc, argv, "--ms", 0.0),
        .sleep_ms = arg_number(argc, argv, "--sleep-ms", 0.0),
        .calls = 0,
        .fail_at = arg_integer(argc, argv, "--fail-at", 0),
        .fail_nan = arg_flag(argc, argv, "--fail-nan"),
    };
    const char *out_path = arg_value(argc, argv, "--out");
    if (!out_path) out_path = "refine_mpi.lwf";
    const long long fail_rank = arg_integer(argc, argv, "--fail-rank", -1);
    if (arg_flag(argc, argv, "--serial")) return run_serial(&lik, out_path);

    MPI_Init(&argc, &argv);
    int code = run_mpi(&lik, out_path, fail_rank > INT_MAX ? -1 : (int)fail_rank, MPI_COMM_WORLD);
    MPI_Finalize();
    return code;
}
