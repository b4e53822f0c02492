//! Reference values from another implementation: normflows 1.7.3 / torch float64 (see
//! tests/data/README.md). Every model's log_prob, forward map, inverse map and both log-dets
//! must match to 1e-9.

use lwflow::{BaseKind, Flow, Shape};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn flat(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
        Value::Number(n) => out.push(n.as_f64().unwrap()),
        _ => panic!("unexpected JSON value"),
    }
}

fn vec_of(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flat(v, &mut out);
    out
}

/// Builds lwflow's flat parameter vector from normflows' state dict.
fn load_model(m: &Value) -> (Shape, Vec<f64>) {
    let cfg = &m["config"];
    let d = cfg["D"].as_u64().unwrap() as usize;
    let l = cfg["L"].as_u64().unwrap() as usize;
    let h = cfg["H"].as_u64().unwrap() as usize;
    let base = match cfg["base"].as_str().unwrap() {
        "DiagGaussian" => BaseKind::Gaussian,
        "GaussianMixture" => BaseKind::Mixture(cfg["n_modes"].as_u64().unwrap() as usize),
        other => panic!("unknown base {other}"),
    };
    let shape = Shape::new(d, h, l).with_base(base).with_clamp(0.0);
    shape.validate().unwrap();
    let p = &m["params"];
    let mut params = Vec::new();
    for block in 0..l {
        for k in [0, 2, 4] {
            let key = |what: &str| format!("flows.{}.flows.1.param_map.net.{k}.{what}", 2 * block);
            // torch's weight is `[out][in]`; lwflow stores it input-major.
            let rows: Vec<Vec<f64>> = p[key("weight").as_str()]
                .as_array()
                .unwrap()
                .iter()
                .map(vec_of)
                .collect();
            let n_in = rows[0].len();
            for i in 0..n_in {
                params.extend(rows.iter().map(|r| r[i]));
            }
            flat(&p[key("bias").as_str()], &mut params);
        }
    }
    match base {
        BaseKind::Gaussian => {
            flat(&p["q0.loc"], &mut params);
            flat(&p["q0.log_scale"], &mut params);
        }
        BaseKind::Mixture(_) => {
            flat(&p["q0.weight_scores"], &mut params);
            flat(&p["q0.loc"], &mut params);
            flat(&p["q0.log_scale"], &mut params);
        }
        BaseKind::StandardNormal => unreachable!(),
    }
    assert_eq!(params.len(), shape.param_len());
    assert_eq!(params.len(), cfg["n_params"].as_u64().unwrap() as usize);
    (shape, params)
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= TOL,
            "{what}[{i}]: lwflow {g} vs normflows {w} (diff {:e})",
            (g - w).abs()
        );
    }
}

#[test]
fn matches_normflows_reference_values() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/normflows-reference.json"
    ))
    .unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let models = json["models"].as_object().unwrap();
    assert_eq!(models.len(), 5);
    for (name, m) in models {
        let (shape, params) = load_model(m);
        let flow = Flow::new(shape, &params).unwrap();
        let mut ws = vec![0.0; shape.eval_workspace_len()];

        let theta = vec_of(&m["log_prob"]["theta"]);
        let n = theta.len() / shape.dim;
        let mut lp = vec![0.0; n];
        flow.log_prob(&theta, &mut lp, &mut ws).unwrap();
        assert_close(
            &format!("{name} log_prob"),
            &lp,
            &vec_of(&m["log_prob"]["log_prob"]),
        );

        let theta = vec_of(&m["inverse"]["theta"]);
        let mut z = vec![0.0; theta.len()];
        let mut ld = vec![0.0; n];
        flow.inverse(&theta, &mut z, &mut ld, &mut ws).unwrap();
        assert_close(
            &format!("{name} inverse z"),
            &z,
            &vec_of(&m["inverse"]["z"]),
        );
        assert_close(
            &format!("{name} inverse log_det"),
            &ld,
            &vec_of(&m["inverse"]["log_det"]),
        );

        let z = vec_of(&m["forward"]["z"]);
        let mut x = vec![0.0; z.len()];
        flow.forward(&z, &mut x, &mut ld, &mut ws).unwrap();
        assert_close(
            &format!("{name} forward x"),
            &x,
            &vec_of(&m["forward"]["x"]),
        );
        assert_close(
            &format!("{name} forward log_det"),
            &ld,
            &vec_of(&m["forward"]["log_det"]),
        );

        // log q of the forward images, as normflows' sample() reports it.
        let mut lq = vec![0.0; n];
        flow.log_prob(&x, &mut lq, &mut ws).unwrap();
        assert_close(
            &format!("{name} log_q(forward)"),
            &lq,
            &vec_of(&m["forward"]["log_q"]),
        );
    }
}
