//! The paper reproduction (the main job): the posterior suite of docs/TASKS.md with three
//! bases each — standard Gaussian, GMM with the true K initialised the paper's way, and the
//! automatic GMM (weighted EM + BIC, identity start) — then a table and one picture per 2-D
//! task.
//!
//! ```sh
//! cargo run --release --example paper            # full suite (< 3 min on 2 cores)
//! cargo run --release --example paper -- 2D2 3D4 # only some tasks
//! ```
//! Pictures go to `target/paper/<task>.png`.

mod plot;
mod suite;

use lwflow::train::BaseChoice;
use lwflow_tasks::Task;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use suite::{base_label, run, RunConfig, RunResult};

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).collect();
    let tasks: Vec<Task> = Task::ALL
        .iter()
        .copied()
        .filter(|t| filter.is_empty() || filter.iter().any(|f| f == t.name()))
        .collect();
    let mut jobs = Vec::new();
    for &task in &tasks {
        for base in [
            BaseChoice::Gaussian,
            BaseChoice::PaperMixture(task.modes()),
            BaseChoice::Auto(6),
        ] {
            jobs.push((task, base));
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    println!(
        "lwflow paper reproduction: {} runs on {threads} thread(s), seed 0",
        jobs.len()
    );
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(task, base)) = jobs.get(i) else {
                    break;
                };
                let cfg = RunConfig::full(task, base, 0);
                let label = format!("{} / {}", task.name(), base_label(base));
                let t0 = Instant::now();
                let r = run(task, &cfg, |e| {
                    if e.epoch % 10 == 0 {
                        println!(
                            "    {label}: epoch {}/{} val loss {:.4} (best {:.4})",
                            e.epoch, e.max_epochs, e.val_loss, e.best_val_loss
                        );
                    }
                    true
                });
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                match r {
                    Ok(r) => {
                        println!(
                            "[{n:>2}/{}] {label}: KL {:.4}, W1 {:.4}, bridge {:.2}% ({:.1} s)",
                            jobs.len(),
                            r.kl,
                            r.w1,
                            100.0 * r.bridge,
                            t0.elapsed().as_secs_f64()
                        );
                        results.lock().unwrap()[i] = Some(r);
                    }
                    Err(e) => println!("[{n:>2}/{}] {label}: FAILED: {e}", jobs.len()),
                }
            });
        }
    });
    let results = results.into_inner().unwrap();

    println!("\n| task | base | K | KL(p‖q) | avg marginal W1 | bridge mass | ESS | epochs (best) | seconds |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in results.iter().flatten() {
        println!(
            "| {} | {} | {} | {:.4} | {:.4} | {:.2} % | {:.0} | {} ({}) | {:.1} |",
            r.task.name(),
            base_label(r.base),
            r.shape.components(),
            r.kl,
            r.w1,
            100.0 * r.bridge,
            r.ess,
            r.report.train.epochs,
            r.report.train.best_epoch,
            r.seconds
        );
    }
    let labels = plot::register_font();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/paper");
    for &task in tasks.iter().filter(|t| t.dim() == 2) {
        let find = |b: fn(&BaseChoice) -> bool| {
            results
                .iter()
                .flatten()
                .find(|r| r.task == task && b(&r.base))
        };
        if let (Some(g), Some(m)) = (
            find(|b| *b == BaseChoice::Gaussian),
            find(|b| matches!(b, BaseChoice::Auto(_))),
        ) {
            match plot::picture(task, g, m, &dir, labels) {
                Ok(p) => println!("picture: {}", p.display()),
                Err(e) => println!("picture for {} failed: {e}", task.name()),
            }
        }
    }
    println!("total {:.1} s", start.elapsed().as_secs_f64());
    if results.iter().any(|r| r.is_none()) {
        std::process::exit(1);
    }
}
