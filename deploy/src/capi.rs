//! The C API of a deployed model (the header `snnc build --emit lib` writes documents it).
//!
//! Every function taking a model returns a status (0 success, negative failure) or a count
//! (negative on failure); after a failure, [`snnc_last_error`] says why, in a sentence. Names
//! are passed as NUL-terminated UTF-8; values are in each variable's declared unit (the
//! header lists it), never SI. A model is stepped on the caller's thread; handles are not
//! shared between threads. Nothing here panics across the C boundary: a Rust panic would be a
//! bug, and is caught and reported as an error.

use crate::{Model, State};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::Path;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs `f`, turning an error (or a panic) into `failure` with the message kept.
fn guarded<T>(failure: T, f: impl FnOnce() -> Result<T, String>) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(value)) => value,
        Ok(Err(message)) => {
            set_error(&message);
            failure
        }
        Err(_) => {
            set_error("internal error (a bug in snnc): the runtime panicked");
            failure
        }
    }
}

/// # Safety
/// `text` is null or a valid NUL-terminated string.
unsafe fn text<'a>(text: *const c_char, what: &str) -> Result<&'a str, String> {
    if text.is_null() {
        return Err(format!("{what} is a null pointer"));
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| format!("{what} is not UTF-8"))
}

/// The model behind a handle and the index of the population named by a C string.
///
/// # Safety
/// `model` is null or a live handle; `population` is null or a NUL-terminated string.
unsafe fn model_population<'a>(
    model: *const Model,
    population: *const c_char,
) -> Result<(&'a Model, usize), String> {
    // SAFETY: the caller's contract.
    let name = unsafe { text(population, "the population name") }?;
    // SAFETY: the caller's contract.
    let model = unsafe { model.as_ref() }.ok_or("the model handle is null")?;
    let p = model
        .linked
        .spec
        .population(name)
        .ok_or_else(|| format!("there is no population `{name}`"))?;
    Ok((model, p))
}

/// # Safety
/// `model` is null or a live handle from [`snnc_create`].
unsafe fn model<'a>(model: *mut Model) -> Result<&'a mut Model, String> {
    // SAFETY: the caller's contract.
    unsafe { model.as_mut() }.ok_or_else(|| "the model handle is null".to_string())
}

/// Steps a library model may run: spike times of the model's sources must lie before it.
const OPEN_ENDED: u64 = u64::MAX / 2;

fn new_model(seed: u64) -> Result<Model, String> {
    Model::new(seed, OPEN_ENDED, None, true, 1)
}

/// The message of the last failure on this thread ("" if none).
#[no_mangle]
pub extern "C" fn snnc_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Builds the model with random seed `seed` (initial state, connectivity). Null on failure.
#[no_mangle]
pub extern "C" fn snnc_create(seed: u64) -> *mut Model {
    guarded(std::ptr::null_mut(), || {
        Ok(Box::into_raw(Box::new(new_model(seed)?)))
    })
}

/// The seed the file or `snnc build` gave.
#[no_mangle]
pub extern "C" fn snnc_default_seed() -> u64 {
    crate::linked().map_or(0, |l| l.spec.seed)
}

/// Frees a model.
///
/// # Safety
/// `model` is null or a handle from [`snnc_create`] not yet destroyed.
#[no_mangle]
pub unsafe extern "C" fn snnc_destroy(model: *mut Model) {
    if !model.is_null() {
        // SAFETY: the caller's contract: a live handle, given back once.
        drop(unsafe { Box::from_raw(model) });
    }
}

/// Runs `n` steps.
///
/// # Safety
/// `model` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn snnc_step(model: *mut Model, n: u64) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let model = unsafe { self::model(model) }?;
        model.run(n, &mut |_, _| {})?;
        Ok(0)
    })
}

/// Steps run so far.
///
/// # Safety
/// `model` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn snnc_steps_done(model: *const Model) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { model.as_ref() }.map_or(0, |m| m.network.step)
}

/// The time step, in seconds.
#[no_mangle]
pub extern "C" fn snnc_dt() -> f64 {
    crate::linked().map_or(f64::NAN, |l| l.spec.dt)
}

/// The number of neurons of population `population` (negative if there is none).
///
/// # Safety
/// `model` is a live handle, `population` a C string.
#[no_mangle]
pub unsafe extern "C" fn snnc_population_size(
    model: *const Model,
    population: *const c_char,
) -> i64 {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let (model, p) = unsafe { model_population(model, population) }?;
        Ok(i64::from(model.linked.spec.populations[p].size))
    })
}

/// Copies the indices of the neurons of `population` that spiked in the last step into
/// `out` (room for `capacity`); returns how many spiked (which may exceed `capacity`: then
/// only the first `capacity` were copied).
///
/// # Safety
/// `model` is a live handle, `population` a C string, `out` room for `capacity` values.
#[no_mangle]
pub unsafe extern "C" fn snnc_spikes(
    model: *const Model,
    population: *const c_char,
    out: *mut u32,
    capacity: usize,
) -> i64 {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let (model, p) = unsafe { model_population(model, population) }?;
        let spikes = model.last_spikes(p).unwrap_or_default();
        let n = spikes.len().min(capacity);
        if n > 0 {
            if out.is_null() {
                return Err("the spike buffer is a null pointer".to_string());
            }
            // SAFETY: the caller's contract: room for `capacity >= n` values.
            unsafe { std::ptr::copy_nonoverlapping(spikes.as_ptr(), out, n) };
        }
        Ok(spikes.len() as i64)
    })
}

/// Reads `population.variable` (a state variable or per-neuron parameter) of every neuron,
/// in its declared unit, into `out` (room for `n` = the population size).
///
/// # Safety
/// `model` is a live handle, the names C strings, `out` room for `n` values.
#[no_mangle]
pub unsafe extern "C" fn snnc_get(
    model: *const Model,
    population: *const c_char,
    variable: *const c_char,
    out: *mut f64,
    n: usize,
) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let (pop, var) = unsafe {
            (
                text(population, "the population name")?,
                text(variable, "the variable name")?,
            )
        };
        // SAFETY: the caller's contract.
        let model = unsafe { model.as_ref() }.ok_or("the model handle is null")?;
        let (p, v) = model.variable(pop, var)?;
        let array = &model.network.populations[p].arrays[v];
        let scale = model.linked.spec.populations[p].variables[v].scale;
        if n != array.len() || out.is_null() {
            return Err(format!(
                "`{pop}.{var}` has {} values; the buffer must hold exactly that many",
                array.len()
            ));
        }
        // An f32 model's values are widened exactly, then converted to the unit in f64.
        for (i, x) in array.iter().enumerate() {
            // SAFETY: the caller's contract: room for `n` values.
            unsafe { *out.add(i) = x / scale };
        }
        Ok(0)
    })
}

/// Writes `population.variable` of every neuron from `values` (`n` = the population size),
/// in its declared unit. Parameters folded into the code at build time are refused.
///
/// # Safety
/// `model` is a live handle, the names C strings, `values` `n` readable values.
#[no_mangle]
pub unsafe extern "C" fn snnc_set(
    model: *mut Model,
    population: *const c_char,
    variable: *const c_char,
    values: *const f64,
    n: usize,
) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let (pop, var) = unsafe {
            (
                text(population, "the population name")?,
                text(variable, "the variable name")?,
            )
        };
        // SAFETY: the caller's contract.
        let model = unsafe { self::model(model) }?;
        let (p, v) = model.variable(pop, var)?;
        let scale = model.linked.spec.populations[p].variables[v].scale;
        let array = &mut model.network.populations[p].arrays[v];
        if n != array.len() || values.is_null() {
            return Err(format!(
                "`{pop}.{var}` has {} values; give exactly that many",
                array.len()
            ));
        }
        // Converted to SI in f64, then stored in the model's precision (rounded once).
        for i in 0..n {
            // SAFETY: the caller's contract: `n` readable values.
            array.set(i, unsafe { *values.add(i) } * scale);
        }
        Ok(0)
    })
}

/// An external input port: the spike source `source` emits the neurons `indices` (`n` of
/// them) in the next step, delivered through its projections like any spike.
///
/// # Safety
/// `model` is a live handle, `source` a C string, `indices` `n` readable values.
#[no_mangle]
pub unsafe extern "C" fn snnc_inject_spikes(
    model: *mut Model,
    source: *const c_char,
    indices: *const u32,
    n: usize,
) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let name = unsafe { text(source, "the source name") }?;
        // SAFETY: the caller's contract.
        let model = unsafe { self::model(model) }?;
        let indices = if n == 0 {
            &[][..]
        } else if indices.is_null() {
            return Err("the index buffer is a null pointer".to_string());
        } else {
            // SAFETY: the caller's contract.
            unsafe { std::slice::from_raw_parts(indices, n) }
        };
        model.inject_spikes(name, indices)?;
        Ok(0)
    })
}

/// Back to the initial state (same seed): a fresh build.
///
/// # Safety
/// `model` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn snnc_reset(model: *mut Model) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let model = unsafe { self::model(model) }?;
        *model = new_model(model.seed)?;
        Ok(0)
    })
}

/// Saves the full state (every variable, pending synaptic input, injected spikes, the step)
/// to the file `path`.
///
/// # Safety
/// `model` is a live handle, `path` a C string.
#[no_mangle]
pub unsafe extern "C" fn snnc_save_state(model: *const Model, path: *const c_char) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let path = unsafe { text(path, "the path") }?;
        // SAFETY: the caller's contract.
        let model = unsafe { model.as_ref() }.ok_or("the model handle is null")?;
        model.state().write(Path::new(path))?;
        Ok(0)
    })
}

/// Loads a state saved by [`snnc_save_state`] of this same model (a file of another model is
/// refused: it carries the model's fingerprint).
///
/// # Safety
/// `model` is a live handle, `path` a C string.
#[no_mangle]
pub unsafe extern "C" fn snnc_load_state(model: *mut Model, path: *const c_char) -> c_int {
    guarded(-1, || {
        // SAFETY: the caller's contract.
        let path = unsafe { text(path, "the path") }?;
        // SAFETY: the caller's contract.
        let model = unsafe { self::model(model) }?;
        let state = State::read(Path::new(path), model.linked)?;
        let mut fresh = new_model(state.seed)?;
        fresh.restore(&state)?;
        *model = fresh;
        Ok(0)
    })
}
