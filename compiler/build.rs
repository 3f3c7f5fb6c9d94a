//! Generates the parser from `src/parser/grammar.lalrpop`, and the table of standard-library
//! sources (every `.snn` file under `../stdlib`, found by walking the directory, so adding a
//! model to the library needs no list to be edited).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=src/parser/grammar.lalrpop");
    lalrpop::Configuration::new()
        .use_cargo_dir_conventions()
        .process()
        .expect("the grammar must be a valid LALRPOP grammar");

    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let stdlib = manifest.join("..").join("stdlib");
    println!("cargo::rerun-if-changed={}", stdlib.display());
    let mut files = Vec::new();
    collect_snn(&stdlib, &mut files);
    files.sort();
    let mut table = String::from("/// (module path, source) for every standard-library file.\npub static FILES: &[(&str, &str)] = &[\n");
    for file in &files {
        println!("cargo::rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&stdlib).expect("under stdlib");
        let module: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        writeln!(
            table,
            "    ({:?}, include_str!({:?})),",
            module.join("."),
            file.canonicalize().expect("readable").display().to_string()
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("stdlib_files.rs"), table).expect("OUT_DIR is writable");
}

fn collect_snn(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo::rerun-if-changed={}", path.display());
            collect_snn(&path, files);
        } else if path.extension().is_some_and(|e| e == "snn") {
            files.push(path);
        }
    }
}
