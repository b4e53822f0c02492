//! The embedded proof on a real instruction set and memory map: builds the firmware in
//! `examples/cortex-m` for `thumbv7em-none-eabihf` (Cortex-M4F), runs it in QEMU's
//! `mps2-an386` board, and checks what it prints: KL(p‖q) on task 2D2 below the threshold,
//! both modes found, exit status 0, valid emulated instruction counts, and the same fit,
//! bit for bit, as the x86-64 build of the same pipeline. The ELF is checked for an
//! allocator (there must be none) and measured (flash, RAM). The fast-math build and the
//! smallest shape are run too.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target: without them the tests say
//! so and pass, except under CI (`CI` set), where `.ci/run` installs both and a missing tool
//! fails.

#[path = "../examples/cortex-m/src/pipeline.rs"]
#[allow(dead_code)]
mod pipeline;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const TARGET: &str = "thumbv7em-none-eabihf";
/// Wall-clock limit of one QEMU run (a run takes ≈ 5 s on an idle machine).
const QEMU_TIMEOUT: Duration = Duration::from_secs(300);
/// The budgets of the `memory.x` that `examples/cortex-m/build.rs` writes for the linker.
const FLASH_BUDGET: u64 = 256 * 1024;
const RAM_BUDGET: u64 = 256 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the firmware is built: away from the outer cargo's target directory, whose lock
/// the running `cargo test` holds.
fn firmware_target_dir() -> PathBuf {
    root().join("target").join("cortex-m")
}

/// `true` when QEMU and the target are installed. Otherwise prints why and returns `false`,
/// or panics under CI, where `.ci/run` installs them.
fn tools_present() -> bool {
    static PRESENT: OnceLock<Result<(), String>> = OnceLock::new();
    let present = PRESENT.get_or_init(|| {
        let qemu = Command::new("qemu-system-arm")
            .arg("--version")
            .stdin(Stdio::null())
            .output();
        if !qemu.is_ok_and(|o| o.status.success()) {
            return Err("qemu-system-arm not found (apt-get install qemu-system-arm)".into());
        }
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let sysroot = Command::new(rustc)
            .args(["--print", "sysroot"])
            .output()
            .map_err(|e| format!("rustc --print sysroot: {e}"))?;
        let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
        let lib = Path::new(&sysroot)
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib");
        if !lib.is_dir() {
            return Err(format!(
                "target {TARGET} not installed (rustup target add {TARGET})"
            ));
        }
        Ok(())
    });
    match present {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why}: under CI .ci/run installs it, so this is a failure")
        }
        Err(why) => {
            eprintln!("SKIPPED: Cortex-M firmware test: {why}");
            false
        }
    }
}

/// Builds the firmware (with or without `fast-math`) and returns a copy of its ELF, so the
/// two variants, which cargo links to the same path, can be used side by side.
fn firmware(fast_math: bool) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    static ELVES: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
    ELVES[usize::from(fast_math)]
        .get_or_init(|| {
            let _one_build_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
            let dir = firmware_target_dir();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--release", "--locked", "--target", TARGET])
                .arg("--manifest-path")
                .arg(root().join("examples/cortex-m/Cargo.toml"))
                .env("CARGO_TARGET_DIR", &dir)
                .stdin(Stdio::null());
            if fast_math {
                cmd.args(["--features", "fast-math"]);
            }
            let out = cmd.output().expect("run cargo");
            assert!(
                out.status.success(),
                "firmware build failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let built = dir.join(TARGET).join("release").join("lwflow-cortex-m");
            let name = if fast_math { "fast-math" } else { "libm" };
            let copy = dir.join(format!("lwflow-cortex-m-{name}.elf"));
            fs::copy(&built, &copy).expect("copy the firmware ELF");
            copy
        })
        .clone()
}

/// What one QEMU run printed and how it ended.
struct Run {
    exit_code: Option<i32>,
    output: String,
}

impl Run {
    /// The text after `key: ` on the line starting with it.
    fn line(&self, key: &str) -> &str {
        let prefix = format!("{key}: ");
        self.output
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `{key}:` line in the firmware output:\n{}", self.output))
    }

    /// `name=value` pairs of the line starting with `key: `.
    fn fields(&self, key: &str) -> HashMap<String, String> {
        self.line(key)
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn number(&self, key: &str, field: Option<&str>) -> f64 {
        let text = match field {
            None => self.line(key).to_string(),
            Some(f) => self
                .fields(key)
                .remove(f)
                .unwrap_or_else(|| panic!("no {f}= on the `{key}:` line:\n{}", self.output)),
        };
        text.parse()
            .unwrap_or_else(|_| panic!("`{text}` ({key} {field:?}) is not a number"))
    }
}

/// Runs an ELF in QEMU with emulated-instruction timing; `args` go to the firmware's
/// semihosting command line. Output goes to a file (a reader that stops early would make
/// semihosting retry its write forever) and the run is killed after [`QEMU_TIMEOUT`].
fn run_qemu(elf: &Path, args: &str, label: &str) -> Run {
    let log = firmware_target_dir().join(format!("{label}.out"));
    let file = File::create(&log).expect("create the QEMU log");
    let mut child = Command::new("qemu-system-arm")
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386", "-nographic"])
        .args(["-icount", "shift=0"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf)
        .args(["-append", args])
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone the log handle"))
        .stderr(file)
        .spawn()
        .expect("start qemu-system-arm");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for QEMU") {
            break status;
        }
        if start.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "QEMU ({label}) did not exit within {QEMU_TIMEOUT:?}; output so far:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = fs::read_to_string(&log).expect("read the QEMU log");
    eprintln!(
        "--- firmware {label} ({:.1} s) ---\n{output}",
        start.elapsed().as_secs_f64()
    );
    Run {
        exit_code: status.code(),
        output,
    }
}

/// The checks every passing run must satisfy, with the thresholds of
/// `pipeline::solved` restated here.
fn assert_solved(run: &Run) {
    assert_eq!(run.exit_code, Some(0), "firmware failed:\n{}", run.output);
    assert_eq!(run.line("verdict"), "PASS");
    assert_stack_fits(run);
    assert_eq!(run.line("finite"), "true");
    let kl = run.number("kl", None);
    assert!(
        kl < pipeline::KL_MAX,
        "KL {kl} not below {}",
        pipeline::KL_MAX
    );
    let left = run.number("mode_share", Some("left"));
    let right = run.number("mode_share", Some("right"));
    assert!(
        left >= pipeline::SHARE_MIN && right >= pipeline::SHARE_MIN,
        "a mode is missing: shares {left} / {right}"
    );
    assert!(
        run.line("instructions")
            .contains("(valid: emulated instruction counts)"),
        "the SysTick calibration failed:\n{}",
        run.output
    );
}

/// Section sizes and symbol names of a 32-bit little-endian ELF.
struct Elf {
    /// Bytes in flash: every allocated section with contents (code, read-only data, vector
    /// table, the initial values of `.data`).
    flash: u64,
    /// Bytes of static RAM: writable allocated sections (`.data`, `.bss`, `.uninit`).
    ram: u64,
    symbols: Vec<String>,
}

fn read_elf(path: &Path) -> Elf {
    const SHF_WRITE: u32 = 1;
    const SHF_ALLOC: u32 = 2;
    const SHT_SYMTAB: u32 = 2;
    const SHT_NOBITS: u32 = 8;
    let bytes = fs::read(path).expect("read the ELF");
    assert_eq!(
        &bytes[..6],
        b"\x7fELF\x01\x01",
        "not a 32-bit little-endian ELF"
    );
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let (shoff, shentsize, shnum) = (u32_at(0x20) as usize, u16_at(0x2e), u16_at(0x30));
    let section = |i: usize| {
        let h = shoff + i * shentsize;
        // (type, flags, offset, size, link)
        (
            u32_at(h + 4),
            u32_at(h + 8),
            u32_at(h + 16) as usize,
            u32_at(h + 20) as usize,
            u32_at(h + 24) as usize,
        )
    };
    let (mut flash, mut ram, mut symbols) = (0u64, 0u64, Vec::new());
    for i in 0..shnum {
        let (kind, flags, offset, size, link) = section(i);
        if flags & SHF_ALLOC != 0 {
            if kind != SHT_NOBITS {
                flash += size as u64;
            }
            if flags & SHF_WRITE != 0 {
                ram += size as u64;
            }
        }
        if kind == SHT_SYMTAB {
            let (_, _, str_off, str_size, _) = section(link);
            let strtab = &bytes[str_off..str_off + str_size];
            for sym in bytes[offset..offset + size].chunks_exact(16) {
                let name = u32::from_le_bytes(sym[..4].try_into().unwrap()) as usize;
                let end = strtab[name..].iter().position(|&b| b == 0).unwrap_or(0);
                symbols.push(String::from_utf8_lossy(&strtab[name..name + end]).into_owned());
            }
        }
    }
    Elf {
        flash,
        ram,
        symbols,
    }
}

/// No allocator and nothing from the `alloc` crate is linked.
fn assert_no_heap(elf: &Elf) {
    assert!(!elf.symbols.is_empty(), "the ELF has no symbol table");
    let allocator = [
        "__rust_alloc",
        "__rust_dealloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rust_alloc_error_handler",
        "__rdl_alloc",
        "__rg_alloc",
    ];
    let heap: Vec<&String> = elf
        .symbols
        .iter()
        .filter(|s| {
            allocator.iter().any(|a| s.starts_with(a))
                || s.starts_with("_ZN5alloc")
                || (s.starts_with("_R") && s.contains("_5alloc"))
        })
        .collect();
    assert!(heap.is_empty(), "heap symbols linked: {heap:?}");
}

#[test]
fn firmware_solves_2d2_in_qemu_like_the_host() {
    if !tools_present() {
        return;
    }
    let elf = firmware(false);
    let run = run_qemu(&elf, "", "libm");
    assert_solved(&run);
    assert_eq!(run.line("em").split_whitespace().next(), Some("K=2"));
    assert!(
        run.line("math_error_e6")
            .split_whitespace()
            .all(|w| w.ends_with("=0.000")),
        "the libm build must use libm's functions"
    );

    // The same pipeline compiled for x86-64 fits the same model and draws the same samples,
    // with the portable kernels (the wide x86-64 sets fuse their multiply-adds, which a
    // Cortex-M4F's kernels do not).
    lwflow::kernels::use_kernels(lwflow::kernels::Kernels::Portable).unwrap();
    let mut buffers = Box::new(pipeline::Buffers::ZERO);
    let host = pipeline::run(&mut buffers, &pipeline::RunConfig::default(), &mut || 0)
        .expect("host run of the pipeline");
    let hashes = run.fields("hash");
    assert_eq!(hashes["params"], format!("{:016x}", host.params_hash));
    assert_eq!(hashes["samples"], format!("{:016x}", host.samples_hash));
    assert!((run.number("kl", None) - host.kl).abs() <= 1e-6);

    let elf = read_elf(&elf);
    assert_no_heap(&elf);
    eprintln!("flash {} bytes, static RAM {} bytes", elf.flash, elf.ram);
    assert!(elf.flash <= FLASH_BUDGET && elf.ram < RAM_BUDGET);
}

/// The painted-stack peak stays well inside the stack region (an overflow would run into
/// `.bss` unnoticed).
fn assert_stack_fits(run: &Run) {
    let words: Vec<u64> = run
        .line("stack")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [peak, total] = words[..] else {
        panic!("unexpected stack line: {}", run.line("stack"));
    };
    assert!(
        peak > 0 && 2 * peak < total,
        "stack peak {peak} of {total} bytes"
    );
}

#[test]
fn fast_math_firmware_solves_2d2_in_qemu() {
    if !tools_present() {
        return;
    }
    let elf = firmware(true);
    let run = run_qemu(&elf, "", "fast-math");
    assert_solved(&run);
    let exp_err = run.number("math_error_e6", Some("exp_rel"));
    assert!(exp_err > 0.0, "the fast-math build must use micromath");
    // The accuracy cost on the fitted model: log q against the same model in f64.
    let max_err = run.number("f32_vs_f64", Some("log_q_max_err"));
    let shift = run.number("f32_vs_f64", Some("kl_shift"));
    eprintln!(
        "fast-math: KL {} (f64 kernel would give {:.6}), max |Δ log q| {max_err}",
        run.number("kl", None),
        run.number("kl", None) - shift
    );
    assert!(max_err < 0.05, "fast-math log q error {max_err} too large");
    assert_no_heap(&read_elf(&elf));
}

#[test]
fn smallest_shape_solves_2d2_in_qemu() {
    if !tools_present() {
        return;
    }
    // H = 1, L = 1 is the smallest valid shape: the EM + BIC base carries both modes. With
    // it, N = 2048 prior samples still solve 2D2 (N = 1024 failed 2 seeds of 5).
    let run = run_qemu(&firmware(false), "n=2048 h=1 l=1", "smallest");
    assert_solved(&run);
    assert!(run.line("shape").starts_with("D=2 H=1 L=1 "));
    assert!(run.line("prior").starts_with("N=2048 "));
}
