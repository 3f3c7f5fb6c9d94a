//! Recording of spikes and state traces, and writing them out with a manifest.
//!
//! This module owns what is kept in memory during a run (spike times and indices per
//! population; sampled variables of chosen neurons) and how it lands on disk: one `.npy` (or
//! CSV) file per array plus `manifest.json` describing every file (population, variable, unit,
//! dt, shape, dtype, kind). It does not run the simulation or decide what to record; the
//! schedule calls it once per step with what the model asked for.
//!
//! Partial results are never lost silently: [`Recorder::finish`] can be called at any time,
//! for example after an interrupted run, and writes whatever was recorded so far together with
//! a status in the manifest. If a `Recorder` is dropped without `finish`, `Drop` makes one
//! best-effort attempt (marking the run as interrupted) so that an early return or a panic in
//! the caller still leaves the data on disk.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::array::Array;
use crate::error::RuntimeError;
use crate::npy::{write_csv, write_npy, NpyElement};

/// The file format for recorded arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Npy,
    Csv,
}

/// The storage precision of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceDtype {
    F32,
    F64,
}

/// How the run ended, written into the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Complete,
    Interrupted { reason: String },
}

/// Handle to a spike recorder of a [`Recorder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpikeHandle(usize);

/// Handle to a trace recorder of a [`Recorder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHandle(usize);

/// Handle to a table of a [`Recorder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableHandle(usize);

/// A 2-D table written once (a projection's synapses and their values).
#[derive(Debug)]
struct TableRecord {
    owner: String,
    variable: String,
    unit: String,
    stem: String,
    columns: Vec<String>,
    data: Vec<f64>,
}

#[derive(Debug)]
struct SpikeRecord {
    population: String,
    stem: String,
    times: Vec<f64>,
    indices: Vec<u32>,
}

#[derive(Debug)]
enum TraceData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

#[derive(Debug)]
struct TraceRecord {
    population: String,
    variable: String,
    unit: String,
    stem: String,
    neurons: Vec<u32>,
    every: u64,
    first_step: Option<u64>,
    n_samples: usize,
    data: TraceData,
}

/// Collects spikes and traces during a run and writes them to an output directory.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    dt: f64,
    format: OutputFormat,
    spikes: Vec<SpikeRecord>,
    traces: Vec<TraceRecord>,
    tables: Vec<TableRecord>,
    stems: HashSet<String>,
    finished: bool,
}

/// Keeps file names portable: anything but ASCII letters, digits, '-', '_' and '.' becomes '_'.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Recorder {
    /// Creates (if needed) and checks the output directory before the run starts, so that an
    /// unwritable directory is reported up front instead of after hours of simulation.
    pub fn new(
        dir: impl Into<PathBuf>,
        dt: f64,
        format: OutputFormat,
    ) -> Result<Self, RuntimeError> {
        let dir = dir.into();
        if !(dt.is_finite() && dt > 0.0) {
            return Err(RuntimeError::invalid(
                "recorder",
                format!("dt = {dt} must be a positive number of seconds"),
            ));
        }
        fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::io(&dir, "create output directory", e))?;
        let probe = dir.join(".snnc-write-test");
        fs::write(&probe, b"")
            .map_err(|e| RuntimeError::io(&dir, "write to output directory", e))?;
        let _ = fs::remove_file(&probe);
        Ok(Recorder {
            dir,
            dt,
            format,
            spikes: Vec::new(),
            traces: Vec::new(),
            tables: Vec::new(),
            stems: HashSet::new(),
            finished: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn claim_stem(&mut self, stem: String, what: &str) -> Result<String, RuntimeError> {
        if !self.stems.insert(stem.clone()) {
            return Err(RuntimeError::invalid(
                "recorder",
                format!("{what} would reuse the file name '{stem}' of another recording"),
            ));
        }
        Ok(stem)
    }

    /// Records the spikes of `population`.
    pub fn add_spikes(&mut self, population: &str) -> Result<SpikeHandle, RuntimeError> {
        let stem = self.claim_stem(
            format!("{}_spikes", sanitize(population)),
            &format!("spikes of '{population}'"),
        )?;
        self.spikes.push(SpikeRecord {
            population: population.to_string(),
            stem,
            times: Vec::new(),
            indices: Vec::new(),
        });
        Ok(SpikeHandle(self.spikes.len() - 1))
    }

    /// Records `variable` (in `unit`) of the chosen `neurons` of `population` every `every`
    /// steps (at steps that are multiples of `every`).
    pub fn add_trace(
        &mut self,
        population: &str,
        variable: &str,
        unit: &str,
        neurons: &[u32],
        every: u64,
        dtype: TraceDtype,
    ) -> Result<TraceHandle, RuntimeError> {
        if every == 0 {
            return Err(RuntimeError::invalid(
                "recorder",
                format!(
                    "trace of '{population}.{variable}': sampling interval must be at least 1 step"
                ),
            ));
        }
        let stem = self.claim_stem(
            format!("{}_{}", sanitize(population), sanitize(variable)),
            &format!("trace of '{population}.{variable}'"),
        )?;
        self.traces.push(TraceRecord {
            population: population.to_string(),
            variable: variable.to_string(),
            unit: unit.to_string(),
            stem,
            neurons: neurons.to_vec(),
            every,
            first_step: None,
            n_samples: 0,
            data: match dtype {
                TraceDtype::F32 => TraceData::F32(Vec::new()),
                TraceDtype::F64 => TraceData::F64(Vec::new()),
            },
        });
        Ok(TraceHandle(self.traces.len() - 1))
    }

    /// Adds a table called `{owner}_{variable}` with the named columns; its rows are given
    /// (and may be replaced) with [`Self::set_table`] before [`Self::finish`] writes it.
    pub fn add_table(
        &mut self,
        owner: &str,
        variable: &str,
        unit: &str,
        columns: &[&str],
    ) -> Result<TableHandle, RuntimeError> {
        let stem = self.claim_stem(
            format!("{}_{}", sanitize(owner), sanitize(variable)),
            &format!("table '{owner}.{variable}'"),
        )?;
        self.tables.push(TableRecord {
            owner: owner.to_string(),
            variable: variable.to_string(),
            unit: unit.to_string(),
            stem,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            data: Vec::new(),
        });
        Ok(TableHandle(self.tables.len() - 1))
    }

    /// Sets the rows of a table (row-major, `columns` values per row).
    pub fn set_table(&mut self, handle: TableHandle, data: Vec<f64>) -> Result<(), RuntimeError> {
        let table = self
            .tables
            .get_mut(handle.0)
            .ok_or_else(|| RuntimeError::invalid("recorder", "unknown table handle"))?;
        if data.len() % table.columns.len().max(1) != 0 {
            return Err(RuntimeError::invalid(
                "recorder",
                format!(
                    "table '{}.{}': {} values do not fill rows of {}",
                    table.owner,
                    table.variable,
                    data.len(),
                    table.columns.len()
                ),
            ));
        }
        table.data = data;
        self.finished = false;
        Ok(())
    }

    /// Appends the spikes emitted in `step` by the neurons in `spiking`.
    pub fn record_spikes(
        &mut self,
        handle: SpikeHandle,
        step: u64,
        spiking: &[u32],
    ) -> Result<(), RuntimeError> {
        let t = step as f64 * self.dt;
        let record = self
            .spikes
            .get_mut(handle.0)
            .ok_or_else(|| RuntimeError::invalid("recorder", "unknown spike recorder handle"))?;
        record.times.extend(std::iter::repeat_n(t, spiking.len()));
        record.indices.extend_from_slice(spiking);
        self.finished = false;
        Ok(())
    }

    /// Samples a trace at `step` from the population's full variable array `values`; steps
    /// that are not multiples of the interval are ignored.
    pub fn record_trace<T: Copy + Into<f64>>(
        &mut self,
        handle: TraceHandle,
        step: u64,
        values: &[T],
    ) -> Result<(), RuntimeError> {
        self.record_trace_mapped(handle, step, values, |x| x)
    }

    /// As [`Self::record_trace`], writing each sampled value divided by `scale` (an SI
    /// array recorded in the user's unit).
    pub fn record_trace_scaled(
        &mut self,
        handle: TraceHandle,
        step: u64,
        values: &Array,
        scale: f64,
    ) -> Result<(), RuntimeError> {
        match values {
            Array::F64(v) => self.record_trace_mapped(handle, step, v, |x| x / scale),
            Array::F32(v) => self.record_trace_mapped(handle, step, v, |x| x / scale),
        }
    }

    fn record_trace_mapped<T: Copy + Into<f64>>(
        &mut self,
        handle: TraceHandle,
        step: u64,
        values: &[T],
        map: impl Fn(f64) -> f64,
    ) -> Result<(), RuntimeError> {
        let record = self
            .traces
            .get_mut(handle.0)
            .ok_or_else(|| RuntimeError::invalid("recorder", "unknown trace recorder handle"))?;
        if step % record.every != 0 {
            return Ok(());
        }
        // Check every index before appending anything, so a bad call leaves no ragged row.
        if let Some(&bad) = record.neurons.iter().find(|&&n| n as usize >= values.len()) {
            return Err(RuntimeError::invalid(
                "recorder",
                format!(
                    "trace of '{}.{}': neuron {bad} is outside the {} values given",
                    record.population,
                    record.variable,
                    values.len()
                ),
            ));
        }
        record.first_step.get_or_insert(step);
        match &mut record.data {
            TraceData::F32(d) => d.extend(
                record
                    .neurons
                    .iter()
                    .map(|&n| map(values[n as usize].into()) as f32),
            ),
            TraceData::F64(d) => d.extend(
                record
                    .neurons
                    .iter()
                    .map(|&n| map(values[n as usize].into())),
            ),
        }
        record.n_samples += 1;
        self.finished = false;
        Ok(())
    }

    fn write_array<T: NpyElement + std::fmt::Display>(
        &self,
        stem: &str,
        data: &[T],
        shape: &[usize],
        header: Option<&[String]>,
    ) -> Result<String, RuntimeError> {
        match self.format {
            OutputFormat::Npy => {
                let file = format!("{stem}.npy");
                write_npy(&self.dir.join(&file), data, shape)?;
                Ok(file)
            }
            OutputFormat::Csv => {
                let file = format!("{stem}.csv");
                let columns = if shape.len() == 2 { shape[1] } else { 1 };
                write_csv(&self.dir.join(&file), header, data, columns)?;
                Ok(file)
            }
        }
    }

    /// Writes every recording and `manifest.json`. Safe to call more than once and after an
    /// interrupted run; each call rewrites the files with everything recorded so far. All
    /// files are attempted even if one fails, and the first error is returned.
    pub fn finish(&mut self, status: RunStatus) -> Result<PathBuf, RuntimeError> {
        let mut first_error = None;
        let mut entries = Vec::new();
        let dtype_name = |npy: &str| -> String {
            match self.format {
                OutputFormat::Npy => npy.to_string(),
                OutputFormat::Csv => format!("text ({npy})"),
            }
        };
        for s in &self.spikes {
            let n = s.times.len();
            let times = self.write_array(
                &format!("{}_times", s.stem),
                &s.times,
                &[n],
                Some(&["t".to_string()]),
            );
            let indices = self.write_array(
                &format!("{}_indices", s.stem),
                &s.indices,
                &[n],
                Some(&["i".to_string()]),
            );
            for (result, kind, variable, unit, dtype) in [
                (times, "spike_times", "t", "s", "<f8"),
                (indices, "spike_indices", "i", "1", "<u4"),
            ] {
                match result {
                    Ok(file) => entries.push(json!({
                        "file": file,
                        "kind": kind,
                        "population": s.population,
                        "variable": variable,
                        "unit": unit,
                        "dt": self.dt,
                        "shape": [n],
                        "dtype": dtype_name(dtype),
                    })),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        for t in &self.traces {
            let shape = [t.n_samples, t.neurons.len()];
            let header: Vec<String> = t.neurons.iter().map(|n| format!("n{n}")).collect();
            let (result, dtype) = match &t.data {
                TraceData::F32(d) => (self.write_array(&t.stem, d, &shape, Some(&header)), "<f4"),
                TraceData::F64(d) => (self.write_array(&t.stem, d, &shape, Some(&header)), "<f8"),
            };
            match result {
                Ok(file) => entries.push(json!({
                    "file": file,
                    "kind": "trace",
                    "population": t.population,
                    "variable": t.variable,
                    "unit": t.unit,
                    "dt": self.dt,
                    "shape": shape,
                    "dtype": dtype_name(dtype),
                    "neurons": t.neurons,
                    "every_steps": t.every,
                    "first_step": t.first_step,
                })),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for t in &self.tables {
            let shape = [t.data.len() / t.columns.len().max(1), t.columns.len()];
            match self.write_array(&t.stem, &t.data, &shape, Some(&t.columns)) {
                Ok(file) => entries.push(json!({
                    "file": file,
                    "kind": "table",
                    "population": t.owner,
                    "variable": t.variable,
                    "unit": t.unit,
                    "columns": t.columns,
                    "shape": shape,
                    "dtype": dtype_name("<f8"),
                })),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let status_json = match &status {
            RunStatus::Complete => json!({ "state": "complete" }),
            RunStatus::Interrupted { reason } => {
                json!({ "state": "interrupted", "reason": reason })
            }
        };
        let manifest = json!({
            "format": "snnc-recording",
            "version": 1,
            "dt": self.dt,
            "dt_unit": "s",
            "status": status_json,
            "files": entries,
        });
        let path = self.dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| {
            RuntimeError::format(path.display().to_string(), format!("cannot encode: {e}"))
        })?;
        if let Err(e) = fs::write(&path, text) {
            first_error.get_or_insert(RuntimeError::io(&path, "write", e));
        }
        self.finished = true;
        match first_error {
            Some(e) => Err(e),
            None => Ok(path),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.finished {
            // Errors cannot be reported from Drop; the manifest status tells the reader the
            // run did not finish normally.
            let _ = self.finish(RunStatus::Interrupted {
                reason: "recorder dropped before finish()".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::{read_csv, read_npy, NpyData};

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("snnc-runtime-rec-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn manifest(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
    }

    #[test]
    fn spikes_and_traces_to_npy_with_manifest() {
        let dir = temp_dir("npy");
        let mut r = Recorder::new(&dir, 1e-4, OutputFormat::Npy).unwrap();
        let s = r.add_spikes("exc").unwrap();
        let v = r
            .add_trace("exc", "v", "mV", &[0, 2], 2, TraceDtype::F32)
            .unwrap();
        for step in 0..5u64 {
            r.record_spikes(s, step, if step == 3 { &[1, 4] } else { &[] })
                .unwrap();
            let values: Vec<f64> = (0..3).map(|i| (step * 10 + i) as f64).collect();
            r.record_trace(v, step, &values).unwrap();
        }
        r.finish(RunStatus::Complete).unwrap();

        let times = read_npy(&dir.join("exc_spikes_times.npy")).unwrap();
        assert_eq!(times.data, NpyData::F64(vec![3.0 * 1e-4, 3.0 * 1e-4]));
        let idx = read_npy(&dir.join("exc_spikes_indices.npy")).unwrap();
        assert_eq!(idx.data, NpyData::U32(vec![1, 4]));
        let trace = read_npy(&dir.join("exc_v.npy")).unwrap();
        assert_eq!(trace.shape, vec![3, 2]);
        assert_eq!(
            trace.data,
            NpyData::F32(vec![0.0, 2.0, 20.0, 22.0, 40.0, 42.0])
        );

        let m = manifest(&dir);
        assert_eq!(m["status"]["state"], "complete");
        let files = m["files"].as_array().unwrap();
        assert_eq!(files.len(), 3);
        let tr = files.iter().find(|f| f["kind"] == "trace").unwrap();
        assert_eq!(tr["unit"], "mV");
        assert_eq!(tr["shape"], json!([3, 2]));
        assert_eq!(tr["dtype"], "<f4");
        assert_eq!(tr["dt"], 1e-4);
        assert_eq!(tr["first_step"], 0);
        let st = files.iter().find(|f| f["kind"] == "spike_times").unwrap();
        assert_eq!(st["population"], "exc");
        assert_eq!(st["shape"], json!([2]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_output() {
        let dir = temp_dir("csv");
        let mut r = Recorder::new(&dir, 0.5, OutputFormat::Csv).unwrap();
        let v = r
            .add_trace("inh", "g e", "nS", &[1], 1, TraceDtype::F64)
            .unwrap();
        r.record_trace(v, 0, &[1.0f32, 2.5]).unwrap();
        r.record_trace(v, 1, &[1.0f32, -3.0]).unwrap();
        r.finish(RunStatus::Complete).unwrap();
        let t = read_csv(&dir.join("inh_g_e.csv")).unwrap();
        assert_eq!(t.header, Some(vec!["n1".to_string()]));
        assert_eq!(t.values, vec![2.5, -3.0]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_recorder_flushes_partial_results() {
        let dir = temp_dir("drop");
        {
            let mut r = Recorder::new(&dir, 1e-3, OutputFormat::Npy).unwrap();
            let s = r.add_spikes("p").unwrap();
            r.record_spikes(s, 7, &[0]).unwrap();
            // Simulates an early return: no finish().
        }
        let m = manifest(&dir);
        assert_eq!(m["status"]["state"], "interrupted");
        let t = read_npy(&dir.join("p_spikes_times.npy")).unwrap();
        assert_eq!(t.data, NpyData::F64(vec![7.0 * 1e-3]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dir = temp_dir("bad");
        let mut r = Recorder::new(&dir, 1e-3, OutputFormat::Npy).unwrap();
        r.add_spikes("a/b").unwrap();
        // "a_b" sanitizes to the same file name.
        assert!(r.add_spikes("a_b").is_err());
        assert!(r
            .add_trace("p", "v", "mV", &[0], 0, TraceDtype::F64)
            .is_err());
        let v = r
            .add_trace("p", "v", "mV", &[5], 1, TraceDtype::F64)
            .unwrap();
        let e = r.record_trace(v, 0, &[0.0f64; 3]).unwrap_err();
        assert!(e.to_string().contains("neuron 5"), "{e}");
        assert!(Recorder::new(&dir, 0.0, OutputFormat::Npy).is_err());
        r.finish(RunStatus::Interrupted {
            reason: "test".into(),
        })
        .unwrap();
        // The failed sample left no partial row.
        assert_eq!(read_npy(&dir.join("p_v.npy")).unwrap().shape, vec![0, 1]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_directory_is_named() {
        let base = temp_dir("unwritable");
        fs::create_dir_all(&base).unwrap();
        let file = base.join("a-file");
        fs::write(&file, b"x").unwrap();
        // A directory below a regular file cannot be created, even as root.
        let dir = file.join("out");
        let e = Recorder::new(&dir, 1e-3, OutputFormat::Npy).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&dir.display().to_string()), "{msg}");
        assert!(msg.contains("cannot create output directory"), "{msg}");
        fs::remove_dir_all(&base).unwrap();
    }
}
