// Development harness (temporary): one task, one base, metrics.
use lwflow::base::em::{scratch_len, EmConfig};
use lwflow::rand_core::SeedableRng;
use lwflow::rng::Draws;
use lwflow::tasks::Task;
use lwflow::train::*;
use lwflow::{metrics, Flow, Shape};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let task = Task::ALL
        .iter()
        .copied()
        .find(|t| t.name() == args.get(1).map(|s| s.as_str()).unwrap_or("2D2"))
        .unwrap();
    let base = match args.get(2).map(|s| s.as_str()).unwrap_or("auto") {
        "gauss" => BaseChoice::Gaussian,
        "paper" => BaseChoice::PaperMixture(task.modes()),
        _ => BaseChoice::Auto(6),
    };
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let h: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(32);
    let l: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(6);
    let epochs: usize = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(60);
    let lr: f64 = args.get(7).and_then(|s| s.parse().ok()).unwrap_or(1e-3);
    let d = task.dim();
    let t0 = Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut theta = vec![0.0f32; n * d];
    sample_box(&vec![-6.0f32; d], &vec![6.0f32; d], &mut rng, &mut theta).unwrap();
    let logl: Vec<f64> = theta
        .chunks(d)
        .map(|t| task.log_likelihood(&t.iter().map(|&v| v as f64).collect::<Vec<_>>()))
        .collect();
    let mut w = vec![0.0f32; n];
    let ws = normalise_log_weights(&logl, NonFinitePolicy::Error, 100.0, &mut w).unwrap();
    let template = Shape::new(d, h, l);
    let mut cfg = FitConfig {
        base,
        em: EmConfig::default(),
        train: TrainConfig::default(),
        init_seed: 3,
    };
    cfg.train.max_epochs = epochs;
    cfg.train.adam.lr = lr;
    let ms = base.max_shape(&template);
    let p = ms.param_len();
    let kmax = base.max_components();
    let bs = cfg.train.batch_size;
    let mut params = vec![0.0f32; p];
    let (mut g, mut a, mut b, mut wsp) = (
        vec![0.0; p],
        vec![0.0; 2 * p],
        vec![0.0; p],
        vec![0.0; ms.workspace_len()],
    );
    let (mut bt, mut bw, mut bo, mut order) = (
        vec![0.0; bs * d],
        vec![0.0; bs],
        vec![0.0; bs],
        vec![0u32; n],
    );
    let (mut ew, mut em, mut es, mut esc) = (
        vec![0.0; kmax],
        vec![0.0; kmax * d],
        vec![0.0; kmax * d],
        vec![0.0; scratch_len(kmax, d)],
    );
    let buf = FitBuffers {
        train: TrainBuffers {
            grad: &mut g,
            adam_state: &mut a,
            best: &mut b,
            workspace: &mut wsp,
            batch_theta: &mut bt,
            batch_weights: &mut bw,
            batch_out: &mut bo,
            order: &mut order,
        },
        em_weights: &mut ew,
        em_means: &mut em,
        em_sds: &mut es,
        em_scratch: &mut esc,
    };
    let t_fit = Instant::now();
    let rep = fit(&template, &cfg, &mut params, &theta, &w, buf, |e| {
        if e.epoch % 10 == 0 {
            eprintln!(
                "  epoch {} train {:.4} val {:.4} best {:.4} lr {:.2e}",
                e.epoch, e.train_loss, e.val_loss, e.best_val_loss, e.lr
            );
        }
        true
    })
    .unwrap();
    let fit_s = t_fit.elapsed().as_secs_f64();
    let shape = rep.shape;
    let flow = Flow::new(shape, &params[..shape.param_len()]).unwrap();
    // Metrics.
    let m = 20_000;
    let mut r2 = Xoshiro256PlusPlus::seed_from_u64(99);
    let mut dr = Draws::new(&mut r2);
    let mut post = vec![0.0f64; m * d];
    for row in post.chunks_mut(d) {
        task.sample_posterior(&mut dr, row);
    }
    let post32: Vec<f32> = post.iter().map(|&v| v as f32).collect();
    let mut lq = vec![0.0f32; m];
    let mut ew2 = vec![0.0f32; shape.eval_workspace_len()];
    flow.log_prob(&post32, &mut lq, &mut ew2).unwrap();
    let lp: Vec<f64> = post.chunks(d).map(|t| task.log_posterior(t)).collect();
    let lq64: Vec<f64> = lq.iter().map(|&v| v as f64).collect();
    let kl = metrics::kl_from_posterior_samples(&lp, &lq64).unwrap();
    let mut qs = vec![0.0f32; m * d];
    let mut qlq = vec![0.0f32; m];
    flow.sample(
        &mut Xoshiro256PlusPlus::seed_from_u64(7),
        &mut qs,
        &mut qlq,
        &mut ew2,
    )
    .unwrap();
    let qs64: Vec<f64> = qs.iter().map(|&v| v as f64).collect();
    let (mut sa, mut sb) = (vec![(0.0, 0.0); m], vec![(0.0, 0.0); m]);
    let w1 = metrics::average_marginal_w1(&qs64, None, &post, None, d, &mut sa, &mut sb).unwrap();
    dbg_shares(&qs64, &post, d);
    let lpq: Vec<f64> = qs64.chunks(d).map(|t| task.log_posterior(t)).collect();
    let bm = metrics::bridge_mass(&lpq, task.log_peak()).unwrap();
    println!("{} {:?} K={} ess={:.0} KL={:.4} W1={:.4} bridge={:.2}% epochs={} best={} skipped={} fit={:.1}s total={:.1}s em={:?}",
        task.name(), base, shape.components(), ws.ess, kl, w1, bm * 100.0, rep.train.epochs, rep.train.best_epoch, rep.train.skipped_steps, fit_s, t0.elapsed().as_secs_f64(), rep.mixture.map(|m| (m.bic, m.iterations)));
}
#[allow(dead_code)]
fn dbg_shares(qs: &[f64], post: &[f64], d: usize) {
    let share =
        |x: &[f64]| x.chunks(d).filter(|r| r[0] < 0.0).count() as f64 / (x.len() / d) as f64;
    let mean = |x: &[f64], i: usize| x.chunks(d).map(|r| r[i]).sum::<f64>() / (x.len() / d) as f64;
    let var = |x: &[f64], i: usize| {
        let m = mean(x, i);
        x.chunks(d).map(|r| (r[i] - m).powi(2)).sum::<f64>() / (x.len() / d) as f64
    };
    eprintln!("share q {:.4} p {:.4}; mean0 q {:.4} p {:.4}; mean1 q {:.4} p {:.4}; var0 q {:.4} p {:.4} var1 q {:.4} p {:.4}", share(qs), share(post), mean(qs,0), mean(post,0), mean(qs,1), mean(post,1), var(qs,0), var(post,0), var(qs,1), var(post,1));
}
