//! The refinement example: the public suite solved in few likelihood calls.
//!
//! Every task of the suite (`docs/TASKS.md`; results in the README): uniform prior on [−6, 6]^D,
//! closed-form likelihood, so the posterior, its samples and the evidence are known exactly.
//! Each run refines from prior draws to a flow (see `lwflow::train::refine`) and is scored
//! against the truth: KL(p‖q), average marginal W1, tail mass, mode shares, ln Ẑ against ln Z.
//!
//! ```sh
//! cargo run --release --example refine                       # whole suite, seeds 0–2
//! cargo run --release --example refine -- --tasks 2D2,5D2 --seeds 0 --json out.json
//! ```

mod run;
#[path = "../paper/suite.rs"]
mod suite;

use lwflow_tasks::Task;
use run::{refine_task, RunOutcome};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

fn main() {
    let mut tasks: Vec<Task> = Task::PUBLIC.to_vec();
    let mut seeds: Vec<u64> = vec![0, 1, 2];
    let mut json: Option<String> = None;
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tasks" => {
                let list = args.next().unwrap_or_default();
                tasks = Task::PUBLIC
                    .iter()
                    .copied()
                    .filter(|t| list.split(',').any(|n| n == t.name()))
                    .collect();
            }
            "--seeds" => {
                seeds = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect();
            }
            "--json" => json = args.next(),
            "-v" | "--verbose" => verbose = true,
            other => {
                eprintln!("unknown argument {other}; see the file's doc comment");
                std::process::exit(2);
            }
        }
    }
    let jobs: Vec<(Task, u64)> = tasks
        .iter()
        .flat_map(|&t| seeds.iter().map(move |&s| (t, s)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    println!(
        "lwflow refinement suite: {} runs on {threads} thread(s)",
        jobs.len()
    );
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunOutcome>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(task, seed)) = jobs.get(i) else {
                    break;
                };
                let r = refine_task(task, seed, verbose);
                match &r {
                    Ok(o) => println!(
                        "{} seed {}: {:?}, {} calls, KL {:.4}, W1 {:.4}, tail {:.2} %, ln Z {:.3} ± {:.3} (true {:.3}), k̂ {:.2}, {} of 10⁶ q draws outside the box, {:.1} s",
                        task.name(), seed, o.status, o.calls, o.kl, o.w1, 100.0 * o.tail_mass,
                        o.log_z, o.log_z_se, o.log_z_true, o.k_hat, o.outside_box, o.seconds
                    ),
                    Err(e) => println!("{} seed {seed}: FAILED: {e}", task.name()),
                }
                results.lock().unwrap()[i] = r.ok();
            });
        }
    });
    let results: Vec<RunOutcome> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    println!();
    print!("{}", run::table(&results));
    println!("total {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = json {
        let mut f = std::fs::File::create(&path).expect("create the JSON file");
        writeln!(f, "[").unwrap();
        for (i, r) in results.iter().enumerate() {
            let sep = if i + 1 < results.len() { "," } else { "" };
            writeln!(f, "  {}{sep}", r.to_json()).unwrap();
        }
        writeln!(f, "]").unwrap();
        println!("wrote {path}");
    }
    if results.len() < jobs.len() {
        std::process::exit(1);
    }
}
