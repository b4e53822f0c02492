//! The MPI examples (`examples/mpi/`), built with CMake's `find_package(MPI)` against the
//! built `liblwflow.a` (C with `-Wall -Wextra -Wpedantic -Werror`, Fortran with `-std=f2008
//! -Wall -Wextra -pedantic -Werror`) and run under `mpirun` with 1, 2 and 4 ranks (4 is
//! oversubscribed on a 2-core machine):
//!
//! - the refinement's ask/tell loop, from C and from Fortran: the saved model is byte for
//!   byte the one a single process without MPI saves (`--serial`: `lwf_refine_run`), for
//!   every number of ranks and for both languages, and the ranks' likelihood calls add up to
//!   the single-process count, each rank evaluating its share;
//! - a likelihood that fails on one rank (reporting failure, or returning NaN that rank 0's
//!   tell refuses) ends the run with a non-zero exit, a message on every rank and no model
//!   file, well within a timeout (no hang);
//! - data-parallel training: every rank's model identical after the steps (the program
//!   gathers and compares the saved bytes), and with the ordered reduction the same bytes
//!   for 1, 2 and 4 ranks and the single process.
//!
//! Skipped, saying so, without `cmake`, `mpicc` or `mpirun` (CI installs Open MPI); the
//! Fortran parts are skipped, saying so, without `gfortran` or `mpifort`.

mod common;

use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The built examples and how to launch them.
struct Mpi {
    mpirun: String,
    /// Open MPI's flags: run as root (CI containers) and more ranks than cores.
    flags: Vec<&'static str>,
    build: PathBuf,
    fortran: bool,
}

/// Configures and builds `examples/mpi` once per test binary; `None` (the test `test` is
/// skipped, said on stderr) without the tools.
fn mpi(test: &str) -> Option<&'static Mpi> {
    static MPI: OnceLock<Option<Mpi>> = OnceLock::new();
    let built = MPI.get_or_init(|| {
        let cmake = tool("CMAKE", "cmake", "MPI examples (cmake)")?;
        tool("MPICC", "mpicc", "MPI examples (MPI C compiler wrapper)")?;
        let mpirun = tool("MPIEXEC", "mpirun", "MPI examples (mpirun)")?;
        let fortran = tool("FC", "gfortran", "MPI Fortran example (gfortran)").is_some()
            && tool("MPIFORT", "mpifort", "MPI Fortran example (mpifort)").is_some();
        let version = run({
            let mut cmd = Command::new(&mpirun);
            cmd.arg("--version");
            cmd
        });
        let flags = if version.contains("Open MPI") || version.contains("OpenRTE") {
            vec!["--allow-run-as-root", "--oversubscribe"]
        } else {
            vec![]
        };
        let dir = scratch("mpi");
        let build = dir.join("build");
        let mut configure = Command::new(&cmake);
        configure
            .arg("-S")
            .arg(repo().join("examples/mpi"))
            .arg("-B")
            .arg(&build)
            .arg(format!(
                "-DLWFLOW_INCLUDE_DIR={}",
                repo().join("include").display()
            ))
            .arg(format!("-DLWFLOW_LIBRARY={}", staticlib().display()))
            .arg(format!(
                "-DLWFLOW_MPI_FORTRAN={}",
                if fortran { "ON" } else { "OFF" }
            ))
            .arg("-DCMAKE_C_FLAGS=-O2 -Wall -Wextra -Wpedantic -Werror")
            .arg("-DCMAKE_Fortran_FLAGS=-O2 -std=f2008 -Wall -Wextra -pedantic -Werror");
        run(configure);
        let mut compile = Command::new(&cmake);
        compile.arg("--build").arg(&build);
        run(compile);
        Some(Mpi {
            mpirun,
            flags,
            build,
            fortran,
        })
    });
    if built.is_none() {
        eprintln!("SKIPPED: {test}: the MPI tools are missing (see above); this test did not run");
    }
    built.as_ref()
}

/// One MPI job at a time: the tests of this binary run on parallel threads, and four
/// oversubscribed ranks are enough for two cores.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a finished run printed.
struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cmd`, killing it and failing the test if it takes longer than `limit` (a hang).
fn run_limited(mut cmd: Command, limit: Duration) -> Finished {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?} (a hang?)\n--- stdout ---\n{}\n--- stderr ---\n{}",
                reader.join().unwrap_or_default(),
                err_reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        success: status.success(),
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// A hang guard well above what any of these runs takes (a few seconds).
const LIMIT: Duration = Duration::from_secs(90);

impl Mpi {
    fn exe(&self, name: &str) -> PathBuf {
        self.build.join(name)
    }

    /// `mpirun -np <np> <program> <args>`, finished (successfully or not) within the limit.
    fn launch(&self, np: usize, program: &str, args: &[&str]) -> Finished {
        let mut cmd = Command::new(&self.mpirun);
        cmd.args(&self.flags)
            .arg("-np")
            .arg(np.to_string())
            .arg(self.exe(program))
            .args(args)
            .current_dir(&self.build);
        let done = run_limited(cmd, LIMIT);
        eprintln!(
            "mpirun -np {np} {program} {}: {} in {:.1} s",
            args.join(" "),
            if done.success { "ok" } else { "failed" },
            done.elapsed.as_secs_f64()
        );
        done
    }

    /// As `launch`, and it must succeed; returns stdout.
    fn mpirun(&self, np: usize, program: &str, args: &[&str]) -> String {
        let done = self.launch(np, program, args);
        assert!(
            done.success,
            "mpirun -np {np} {program} {args:?} failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            done.stdout, done.stderr
        );
        done.stdout
    }

    /// The program alone, without mpirun (its `--serial` mode calls no MPI at all).
    fn alone(&self, program: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(self.exe(program));
        cmd.args(args).current_dir(&self.build);
        let done = run_limited(cmd, LIMIT);
        assert!(
            done.success,
            "{program} {args:?} failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            done.stdout, done.stderr
        );
        done.stdout
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The numbers after "calls per rank:".
fn calls_per_rank(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("calls per rank:"))
        .unwrap_or_else(|| panic!("no 'calls per rank' line in\n{stdout}"))
        .split_whitespace()
        .map(|v| v.parse().expect("a count"))
        .collect()
}

/// The refinement program `program` alone and under 1, 2 and 4 ranks: the same model bytes
/// as `reference` (the C program's single-process model, written on first use) and the same
/// number of likelihood calls.
fn refine_matches_single_process(mpi: &Mpi, program: &str, reference: &Path) {
    let tag = program.replace('_', "-");
    let serial_path = mpi.build.join(format!("{tag}-serial.lwf"));
    let serial = mpi.alone(
        program,
        &["--serial", "--out", serial_path.to_str().unwrap()],
    );
    eprint!("{serial}");
    let calls = result_field(&serial, "calls");
    assert_eq!(result_field(&serial, "evaluated"), calls);
    let status = result_field(&serial, "status");
    assert!(
        status == 1.0 || status == 2.0,
        "converged or budget: {serial}"
    );
    let log_z_true = -2.0 * 12f64.ln();
    assert!((result_field(&serial, "log_z") - log_z_true).abs() < 0.05);
    if !reference.exists() {
        std::fs::copy(&serial_path, reference).unwrap();
    }
    let expected = read(reference);
    assert!(
        read(&serial_path) == expected,
        "{program} --serial saved other bytes than refine_mpi --serial"
    );
    for np in [1usize, 2, 4] {
        let path = mpi.build.join(format!("{tag}-np{np}.lwf"));
        let out = mpi.mpirun(np, program, &["--out", path.to_str().unwrap()]);
        eprint!("{out}");
        assert_eq!(result_field(&out, "ranks"), np as f64);
        assert_eq!(
            result_field(&out, "calls"),
            calls,
            "report's calls, -np {np}"
        );
        assert_eq!(
            result_field(&out, "evaluated"),
            calls,
            "likelihood calls of all ranks, -np {np}"
        );
        assert_eq!(
            result_field(&out, "log_z").to_bits(),
            result_field(&serial, "log_z").to_bits()
        );
        let per_rank = calls_per_rank(&out);
        assert_eq!(per_rank.len(), np);
        assert_eq!(per_rank.iter().sum::<u64>() as f64, calls);
        let (lo, hi) = (
            per_rank.iter().min().unwrap(),
            per_rank.iter().max().unwrap(),
        );
        assert!(
            *lo > 0 && hi - lo <= per_rank.len() as u64 * 8,
            "every rank evaluates a near-equal share: {per_rank:?}"
        );
        assert!(
            read(&path) == expected,
            "{program} under mpirun -np {np} saved other bytes than the single process"
        );
    }
}

/// `program` with a likelihood failing on one rank: non-zero exit, every rank says why, no
/// model file, and no hang.
fn failure_stops_every_rank(mpi: &Mpi, program: &str, np: usize, args: &[&str], cause: &str) {
    let path = mpi.build.join(format!("{program}-failed.lwf"));
    let _ = std::fs::remove_file(&path);
    let mut all = vec!["--out", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let done = mpi.launch(np, program, &all);
    eprint!("{}", done.stderr);
    assert!(
        !done.success,
        "{program} {args:?} succeeded:\n{}",
        done.stdout
    );
    assert!(
        done.elapsed < Duration::from_secs(60),
        "took {:?}",
        done.elapsed
    );
    for rank in 0..np {
        let line = format!("rank {rank}: stopping: ");
        assert!(
            done.stderr.contains(&line),
            "no '{line}' in\n{}",
            done.stderr
        );
    }
    assert!(
        done.stderr.contains(cause),
        "no '{cause}' in\n{}",
        done.stderr
    );
    assert!(!done.stdout.contains("RESULT"), "{}", done.stdout);
    assert!(!path.exists(), "a failed run wrote {}", path.display());
}

#[test]
fn mpi_refinement_from_c_saves_the_single_process_model_on_1_2_4_ranks() {
    let Some(mpi) = mpi("mpi_refinement_from_c_saves_the_single_process_model_on_1_2_4_ranks")
    else {
        return;
    };
    let _one = one_at_a_time();
    let reference = mpi.build.join("reference-c.lwf");
    let _ = std::fs::remove_file(&reference);
    refine_matches_single_process(mpi, "refine_mpi", &reference);
}

#[test]
fn mpi_refinement_from_fortran_saves_the_same_model_as_c() {
    let Some(mpi) = mpi("mpi_refinement_from_fortran_saves_the_same_model_as_c") else {
        return;
    };
    if !mpi.fortran {
        eprintln!("SKIPPED: MPI Fortran example: no gfortran / mpifort; this test did not run");
        return;
    }
    let _one = one_at_a_time();
    // The C program's single-process model, made here so the test stands alone.
    let reference = mpi.build.join("reference-for-fortran.lwf");
    let _ = std::fs::remove_file(&reference);
    mpi.alone(
        "refine_mpi",
        &["--serial", "--out", reference.to_str().unwrap()],
    );
    refine_matches_single_process(mpi, "refine_mpi_f", &reference);
}

#[test]
fn mpi_failing_likelihood_stops_every_rank_with_a_message() {
    let Some(mpi) = mpi("mpi_failing_likelihood_stops_every_rank_with_a_message") else {
        return;
    };
    let _one = one_at_a_time();
    // Rank 2 reports failure at its 700th call (in round 1): rank 2 says where, all stop.
    failure_stops_every_rank(
        mpi,
        "refine_mpi",
        4,
        &["--fail-at", "700", "--fail-rank", "2"],
        "rank 2: the likelihood failed at this rank's call 700",
    );
    // The last rank returns NaN: rank 0's lwf_refine_tell refuses the round, all stop.
    failure_stops_every_rank(
        mpi,
        "refine_mpi",
        2,
        &["--fail-at", "300", "--fail-nan"],
        "lwf_refine_tell refused the round's values",
    );
    // The single process says so too.
    let mut cmd = Command::new(mpi.exe("refine_mpi"));
    cmd.args(["--serial", "--fail-at", "10", "--out", "unused.lwf"])
        .current_dir(&mpi.build);
    let done = run_limited(cmd, LIMIT);
    assert!(!done.success && done.stderr.contains("serial refinement failed"));
    if mpi.fortran {
        failure_stops_every_rank(
            mpi,
            "refine_mpi_f",
            4,
            &["--fail-at", "300", "--fail-rank", "1"],
            "rank 1: the likelihood failed at this rank's call 300",
        );
        failure_stops_every_rank(
            mpi,
            "refine_mpi_f",
            2,
            &["--fail-at", "300", "--fail-nan"],
            "lwf_refine_tell refused the round's values",
        );
    } else {
        eprintln!(
            "SKIPPED: MPI Fortran failure runs: no gfortran / mpifort; this part did not run"
        );
    }
}

#[test]
fn mpi_data_parallel_training_keeps_identical_models() {
    let Some(mpi) = mpi("mpi_data_parallel_training_keeps_identical_models") else {
        return;
    };
    let _one = one_at_a_time();
    let small = [
        "--samples",
        "4096",
        "--chunks",
        "8",
        "--batch",
        "512",
        "--steps",
        "150",
    ];
    let args = |reduce: &str, out: &Path| -> Vec<String> {
        small
            .iter()
            .map(|s| s.to_string())
            .chain([
                "--reduce".into(),
                reduce.into(),
                "--out".into(),
                out.to_str().unwrap().into(),
            ])
            .collect()
    };
    let strs = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");

    // Ordered reduction: the same bytes for the single process and 1, 2, 4 ranks.
    let serial_path = mpi.build.join("train-serial.lwf");
    let mut serial_args = args("ordered", &serial_path);
    serial_args.push("--serial".into());
    let serial = mpi.alone(
        "train_mpi",
        &serial_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eprint!("{serial}");
    let (loss0, loss) = (
        result_field(&serial, "loss0"),
        result_field(&serial, "loss"),
    );
    assert!(loss < loss0 - 0.5, "training lowers the loss: {serial}");
    let expected = read(&serial_path);
    for np in [1usize, 2, 4] {
        let path = mpi.build.join(format!("train-ordered-np{np}.lwf"));
        let a = args("ordered", &path);
        let out = mpi.mpirun(
            np,
            "train_mpi",
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        eprint!("{out}");
        assert_eq!(result_field(&out, "identical"), 1.0, "{}", strs(&a));
        assert_eq!(result_field(&out, "loss").to_bits(), loss.to_bits());
        assert!(
            read(&path) == expected,
            "ordered reduction, -np {np}: other bytes than the single process"
        );
    }

    // MPI_Allreduce: identical on every rank of a run (checked by the program on the gathered
    // bytes), close to the ordered result (the sums are associated differently).
    let path = mpi.build.join("train-allreduce-np4.lwf");
    let a = args("allreduce", &path);
    let out = mpi.mpirun(
        4,
        "train_mpi",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    eprint!("{out}");
    assert_eq!(result_field(&out, "identical"), 1.0);
    assert!((result_field(&out, "loss") - loss).abs() < 1e-6 * loss.abs());
    assert_eq!(read(&path).len(), expected.len());
}
