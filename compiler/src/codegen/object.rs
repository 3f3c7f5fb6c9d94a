//! Ahead-of-time code: kernels and a model's description in a relocatable object file.
//!
//! The same [`super::cranelift::define_kernel`] that fills the JIT fills a
//! `cranelift_object::ObjectModule` here, so a linked kernel is the JIT's kernel, instruction
//! for instruction (the ISA flags differ only in `is_pic`, which changes addressing, not
//! arithmetic). Besides the kernels, a model object holds the symbols a deployed program reads
//! (`snnc-deploy`, `deploy/src/lib.rs`), whose names are this module's contract with it:
//!
//! * `snnc_model_spec` (bytes) and `snnc_model_spec_len` (u64): the serialised
//!   `snnc_runtime::spec::NetworkSpec`;
//! * `snnc_model_kernels` (one function pointer per kernel of the spec, in order) and
//!   `snnc_model_kernel_count` (u64).
//!
//! Kernel `i` is exported as `snnc_kernel_{i}_{name}` (name reduced to `[A-Za-z0-9_]`),
//! stable for a given model. The data part can also be emitted alone, importing kernels
//! another backend compiled under the same names ([`emit_model_data`]).
//! This module knows nothing of models or of how the object is linked.

use super::cranelift::define_kernel;
use crate::ir::Kernel;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_module::{DataDescription, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};

/// The symbol of kernel `index`.
pub fn kernel_symbol(index: usize, kernel: &Kernel) -> String {
    let name: String = kernel
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("snnc_kernel_{index}_{name}")
}

/// The instruction set for `triple` (the host's when `None`), position-independent and
/// optimised like the JIT's.
pub fn target_isa(triple: Option<&str>) -> Result<OwnedTargetIsa, String> {
    let Some(triple) = triple else {
        return super::cranelift::host_isa(true);
    };
    let mut flags = settings::builder();
    for (name, value) in [
        ("opt_level", "speed"),
        ("is_pic", "true"),
        ("use_colocated_libcalls", "false"),
    ] {
        flags
            .set(name, value)
            .map_err(|e| format!("cranelift flag {name}={value}: {e}"))?;
    }
    let unsupported = |e: &dyn std::fmt::Display| {
        format!("cannot generate code for the target `{triple}`: {e} (snnc supports x86_64, aarch64 and riscv64gc)")
    };
    let parsed: target_lexicon::Triple = triple.parse().map_err(|e| unsupported(&e))?;
    let mut isa = cranelift_codegen::isa::lookup(parsed).map_err(|e| unsupported(&e))?;
    // The G extensions every riscv64gc Linux provides; Cranelift does not assume them.
    if triple.starts_with("riscv64") {
        for feature in [
            "has_m",
            "has_a",
            "has_f",
            "has_d",
            "has_zicsr",
            "has_zifencei",
        ] {
            let _ = isa.enable(feature);
        }
    }
    isa.finish(settings::Flags::new(flags))
        .map_err(|e| format!("cranelift: {e}"))
}

fn object_module(isa: OwnedTargetIsa) -> Result<ObjectModule, String> {
    let builder = ObjectBuilder::new(isa, "snnc_model", cranelift_module::default_libcall_names())
        .map_err(|e| format!("cranelift: {e}"))?;
    Ok(ObjectModule::new(builder))
}

/// One relocatable object with every kernel (exported under [`kernel_symbol`]) and the model
/// data symbols, for `triple` (host when `None`).
pub fn emit_model_object(
    kernels: &[&Kernel],
    spec: &[u8],
    triple: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut module = object_module(target_isa(triple)?)?;
    let mut ids = Vec::with_capacity(kernels.len());
    for (index, kernel) in kernels.iter().enumerate() {
        ids.push(define_kernel(
            &mut module,
            kernel,
            &kernel_symbol(index, kernel),
        )?);
    }
    define_model_data(&mut module, &ids, spec)?;
    module
        .finish()
        .emit()
        .map_err(|e| format!("writing the object file: {e}"))
}

/// Only the model data symbols, importing kernels compiled elsewhere under [`kernel_symbol`]
/// (the LLVM backend's object).
pub fn emit_model_data(
    kernels: &[&Kernel],
    spec: &[u8],
    triple: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut module = object_module(target_isa(triple)?)?;
    let mut sig = module.make_signature();
    sig.params.push(cranelift_codegen::ir::AbiParam::new(
        module.target_config().pointer_type(),
    ));
    let mut ids = Vec::with_capacity(kernels.len());
    for (index, kernel) in kernels.iter().enumerate() {
        ids.push(
            module
                .declare_function(&kernel_symbol(index, kernel), Linkage::Import, &sig)
                .map_err(|e| format!("cranelift: {e}"))?,
        );
    }
    define_model_data(&mut module, &ids, spec)?;
    module
        .finish()
        .emit()
        .map_err(|e| format!("writing the object file: {e}"))
}

fn define_model_data(
    module: &mut ObjectModule,
    kernels: &[FuncId],
    spec: &[u8],
) -> Result<(), String> {
    let err = |e: cranelift_module::ModuleError| format!("cranelift: {e}");
    let pointer = module.target_config().pointer_bytes() as usize;
    let define = |module: &mut ObjectModule, name: &str, writable: bool, desc: &DataDescription| {
        let id = module
            .declare_data(name, Linkage::Export, writable, false)
            .map_err(err)?;
        module.define_data(id, desc).map_err(err)
    };

    let mut desc = DataDescription::new();
    desc.define(spec.to_vec().into_boxed_slice());
    desc.set_align(8);
    define(module, "snnc_model_spec", false, &desc)?;

    let mut desc = DataDescription::new();
    desc.define(
        (spec.len() as u64)
            .to_le_bytes()
            .to_vec()
            .into_boxed_slice(),
    );
    desc.set_align(8);
    define(module, "snnc_model_spec_len", false, &desc)?;

    let mut desc = DataDescription::new();
    desc.define(
        (kernels.len() as u64)
            .to_le_bytes()
            .to_vec()
            .into_boxed_slice(),
    );
    desc.set_align(8);
    define(module, "snnc_model_kernel_count", false, &desc)?;

    // A table of addresses needs relocations; in writable data they never need text
    // relocations, whatever the output (executable, PIE or shared library).
    let mut desc = DataDescription::new();
    // Defined as bytes, not zero-initialised: a zero-initialised symbol goes to `.bss`, where
    // the relocations that fill in the addresses would be dropped.
    desc.define(vec![0u8; (pointer * kernels.len()).max(pointer)].into_boxed_slice());
    desc.set_align(pointer as u64);
    for (i, &id) in kernels.iter().enumerate() {
        let function = module.declare_func_in_data(id, &mut desc);
        desc.write_function_addr((i * pointer) as u32, function);
    }
    define(module, "snnc_model_kernels", true, &desc)?;
    Ok(())
}
