//! Writes the linker's `memory.x` and links with cortex-m-rt's `link.x`, so the firmware
//! builds from any directory (`--manifest-path`) without a `.cargo/config.toml`.
//!
//! QEMU's mps2-an386 maps 4 MiB at 0x0000_0000 and 4 MiB of RAM at 0x2000_0000. The lengths
//! given to the linker are the budget the firmware claims for a real part, 256 KiB of flash
//! and 256 KiB of RAM unless `LWFLOW_FW_FLASH_K` / `LWFLOW_FW_RAM_K` (KiB) say otherwise: a
//! build that does not fit is refused by the linker. The stack takes what `.data` and `.bss`
//! leave of RAM.

use std::{env, fs, path::PathBuf};

/// A KiB count from the environment, or `default`.
fn kib(var: &str, default: u32) -> u32 {
    println!("cargo:rerun-if-env-changed={var}");
    match env::var(var) {
        Ok(v) => match v.parse() {
            Ok(k) if (1..=4096).contains(&k) => k,
            _ => panic!("{var} must be a KiB count in 1..=4096, got `{v}`"),
        },
        Err(_) => default,
    }
}

fn main() {
    let flash = kib("LWFLOW_FW_FLASH_K", 256);
    let ram = kib("LWFLOW_FW_RAM_K", 256);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = format!(
        "MEMORY\n{{\n  FLASH : ORIGIN = 0x00000000, LENGTH = {flash}K\n  \
         RAM   : ORIGIN = 0x20000000, LENGTH = {ram}K\n}}\n"
    );
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");
}
