//! Timed-array inputs: tables of values written into a population array as time passes.
//!
//! A [`TimedInput`] holds `rows` rows of values, either one value per row applied to every
//! neuron of its range (shape `(T,)`), or one value per neuron of the range (shape
//! `(T, N_range)`). Before the kernels of step `k` run, row `floor(k / every_steps)` is written
//! (assigned, not added) into the target array for the neurons of the range. After the table
//! ends the LAST ROW IS HELD: steps beyond `rows · every_steps` keep receiving the last row
//! (as Brian2's `TimedArray` does), so a table never "runs out" into zeros or garbage.
//!
//! Values are SI; the caller scales them (loading from `.npy` takes the SI value of one file
//! unit as `scale`). This module knows nothing of kernels or the step loop; `schedule.rs` calls
//! [`TimedInput::apply`].

use std::ops::Range;
use std::path::Path;

use crate::error::RuntimeError;
use crate::network::Population;
use crate::npy::{read_npy, shape_text, NpyData};

/// A table of values written into `population.arrays[array][range]` as time passes.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedInput {
    /// A name for messages (the file it came from, or the input's name in the model).
    pub name: String,
    /// An index into `Network::populations`.
    pub population: usize,
    /// An index into that population's arrays.
    pub array: usize,
    /// Row-major SI values: `rows` rows of 1 value (broadcast) or `range.len()` values.
    pub values: Vec<f64>,
    pub rows: usize,
    /// Whether each row has one value per neuron of the range (shape `(T, N_range)`) rather
    /// than one value for all of them (shape `(T,)`).
    pub per_neuron: bool,
    /// Each row is used for this many steps.
    pub every_steps: u64,
    /// The neurons written.
    pub range: Range<usize>,
}

impl TimedInput {
    /// Builds an input from values of `shape` (`[T]` or `[T, range.len()]`). Shapes that do
    /// not match, an empty table and `every_steps == 0` are errors naming `name`.
    pub fn new(
        name: impl Into<String>,
        population: usize,
        array: usize,
        values: Vec<f64>,
        shape: &[usize],
        every_steps: u64,
        range: Range<usize>,
    ) -> Result<Self, RuntimeError> {
        let name = name.into();
        let n_range = range.end.saturating_sub(range.start);
        let expected = || format!("expected shape (T,) or (T, {n_range})");
        let (rows, per_neuron) = match *shape {
            [t] => (t, false),
            [t, n] if n == n_range => (t, true),
            _ => {
                return Err(RuntimeError::format(
                    name,
                    format!("{}, found {}", expected(), shape_text(shape)),
                ))
            }
        };
        if range.start > range.end {
            return Err(RuntimeError::invalid(
                name,
                format!("neuron range {}..{} is reversed", range.start, range.end),
            ));
        }
        if rows == 0 {
            return Err(RuntimeError::format(
                name,
                format!("{} with T >= 1, found {}", expected(), shape_text(shape)),
            ));
        }
        let len = if per_neuron { rows * n_range } else { rows };
        if values.len() != len {
            return Err(RuntimeError::format(
                name,
                format!(
                    "shape {} needs {len} values, found {}",
                    shape_text(shape),
                    values.len()
                ),
            ));
        }
        if every_steps == 0 {
            return Err(RuntimeError::invalid(
                name,
                "each row must last at least one step",
            ));
        }
        Ok(TimedInput {
            name,
            population,
            array,
            values,
            rows,
            per_neuron,
            every_steps,
            range,
        })
    }

    /// Loads values from a `.npy` file of f32 or f64, shape `(T,)` or `(T, range.len())`, and
    /// multiplies them by `scale` (the SI value of one file unit; 1.0 for SI files). A wrong
    /// dtype or shape is an error naming the file with the expected and found shapes.
    pub fn from_npy(
        path: &Path,
        scale: f64,
        population: usize,
        array: usize,
        every_steps: u64,
        range: Range<usize>,
    ) -> Result<Self, RuntimeError> {
        let file = path.display().to_string();
        let npy = read_npy(path)?;
        let values: Vec<f64> = match npy.data {
            NpyData::F64(v) => v,
            NpyData::F32(v) => v.into_iter().map(f64::from).collect(),
            _ => {
                return Err(RuntimeError::format(
                    file,
                    format!(
                        "expected float32 or float64 values, found dtype '{}'",
                        npy.descr
                    ),
                ))
            }
        };
        if !(scale.is_finite() && scale != 0.0) {
            return Err(RuntimeError::invalid(
                file,
                format!("unit scale {scale} must be finite and non-zero"),
            ));
        }
        let values = values.into_iter().map(|x| x * scale).collect();
        TimedInput::new(
            file,
            population,
            array,
            values,
            &npy.shape,
            every_steps,
            range,
        )
    }

    /// Checks that the population, array and range exist.
    pub fn check_against(&self, populations: &[Population]) -> Result<(), RuntimeError> {
        let context = || format!("timed input '{}'", self.name);
        let p = populations.get(self.population).ok_or_else(|| {
            RuntimeError::invalid(
                context(),
                format!("population #{} does not exist", self.population),
            )
        })?;
        if self.array >= p.arrays.len() {
            return Err(RuntimeError::invalid(
                context(),
                format!(
                    "array #{} does not exist; population '{}' has {} arrays",
                    self.array,
                    p.name,
                    p.arrays.len()
                ),
            ));
        }
        if self.range.end > p.size || self.range.start > self.range.end {
            return Err(RuntimeError::invalid(
                context(),
                format!(
                    "neuron range {}..{} is outside population '{}' of {} neurons",
                    self.range.start, self.range.end, p.name, p.size
                ),
            ));
        }
        Ok(())
    }

    /// The row used in step `step`: `floor(step / every_steps)`, held at the last row.
    pub fn row_of_step(&self, step: u64) -> usize {
        let row = step / self.every_steps;
        usize::try_from(row).map_or(self.rows - 1, |r| r.min(self.rows - 1))
    }

    /// Writes the row of `step` into `population` (checked with [`Self::check_against`]).
    pub fn apply(&self, population: &mut Population, step: u64) -> Result<(), RuntimeError> {
        let row = self.row_of_step(step);
        let mut target = population
            .arrays
            .get_mut(self.array)
            .and_then(|a| a.slice_mut(self.range.clone()))
            .ok_or_else(|| {
                RuntimeError::invalid(
                    format!("timed input '{}'", self.name),
                    format!(
                        "array #{} range {}..{} does not exist in population '{}'",
                        self.array, self.range.start, self.range.end, population.name
                    ),
                )
            })?;
        if self.per_neuron {
            let n = target.len();
            target.copy_from_f64(&self.values[row * n..(row + 1) * n]);
        } else {
            target.fill(self.values[row]);
        }
        Ok(())
    }

    /// Bytes held by the table.
    pub fn bytes(&self) -> u64 {
        (self.values.len() * std::mem::size_of::<f64>()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::VariableSpec;
    use crate::npy::write_npy;

    fn population() -> Population {
        Population::new(
            "p",
            5,
            &[
                VariableSpec::new("v", "mV", 1e-3),
                VariableSpec::new("I", "nA", 1e-9),
            ],
        )
        .unwrap()
    }

    #[test]
    fn broadcast_rows_change_every_k_steps_and_hold_the_last() {
        let mut p = population();
        let input = TimedInput::new("I_ext", 0, 1, vec![1.0, 2.0, 3.0], &[3], 2, 1..4).unwrap();
        input.check_against(std::slice::from_ref(&p)).unwrap();
        let mut seen = Vec::new();
        for step in 0..9 {
            input.apply(&mut p, step).unwrap();
            seen.push(p.arrays[1].clone());
        }
        let row = |x: f64| vec![0.0, x, x, x, 0.0];
        assert_eq!(seen[0], row(1.0));
        assert_eq!(seen[1], row(1.0));
        assert_eq!(seen[2], row(2.0));
        assert_eq!(seen[5], row(3.0));
        // Beyond the table the last row is held.
        assert_eq!(seen[8], row(3.0));
        assert_eq!(input.row_of_step(u64::MAX), 2);
        assert_eq!(p.arrays[0], vec![0.0; 5]);
    }

    #[test]
    fn per_neuron_rows() {
        let mut p = population();
        let values = vec![1.0, 2.0, 10.0, 20.0];
        let input = TimedInput::new("x", 0, 0, values, &[2, 2], 1, 3..5).unwrap();
        input.apply(&mut p, 0).unwrap();
        assert_eq!(p.arrays[0], vec![0.0, 0.0, 0.0, 1.0, 2.0]);
        input.apply(&mut p, 1).unwrap();
        assert_eq!(p.arrays[0], vec![0.0, 0.0, 0.0, 10.0, 20.0]);
    }

    #[test]
    fn bad_shapes_and_targets() {
        let e = TimedInput::new("f.npy", 0, 0, vec![0.0; 6], &[2, 3], 1, 0..2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.npy: expected shape (T,) or (T, 2), found (2, 3)"
        );
        assert!(TimedInput::new("f", 0, 0, vec![], &[0], 1, 0..2).is_err());
        assert!(TimedInput::new("f", 0, 0, vec![1.0], &[1], 0, 0..2).is_err());
        assert!(TimedInput::new("f", 0, 0, vec![1.0], &[2], 1, 0..2).is_err());
        let p = [population()];
        let input = TimedInput::new("f", 0, 2, vec![1.0], &[1], 1, 0..2).unwrap();
        assert!(input.check_against(&p).is_err());
        let input = TimedInput::new("f", 0, 0, vec![1.0], &[1], 1, 0..6).unwrap();
        let e = input.check_against(&p).unwrap_err().to_string();
        assert!(e.contains("0..6 is outside population 'p'"), "{e}");
        assert!(TimedInput::new("f", 1, 0, vec![1.0], &[1], 1, 0..1)
            .unwrap()
            .check_against(&p)
            .is_err());
    }

    #[test]
    fn loads_npy_files() {
        let dir = std::env::temp_dir().join(format!("snnc-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f32_path = dir.join("rows.npy");
        write_npy(&f32_path, &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
        let input = TimedInput::from_npy(&f32_path, 1e-9, 0, 1, 1, 0..2).unwrap();
        assert!(input.per_neuron);
        assert_eq!(input.rows, 3);
        assert!((input.values[5] - 6e-9).abs() < 1e-20);

        let f64_path = dir.join("flat.npy");
        write_npy(&f64_path, &[0.5f64, 0.25], &[2]).unwrap();
        let input = TimedInput::from_npy(&f64_path, 1.0, 0, 1, 3, 0..5).unwrap();
        assert_eq!((input.rows, input.per_neuron), (2, false));

        let e = TimedInput::from_npy(&f32_path, 1.0, 0, 1, 1, 0..5).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: expected shape (T,) or (T, 5), found (3, 2)",
                f32_path.display()
            )
        );
        let int_path = dir.join("ints.npy");
        write_npy(&int_path, &[1i32, 2], &[2]).unwrap();
        let e = TimedInput::from_npy(&int_path, 1.0, 0, 1, 1, 0..5).unwrap_err();
        assert!(e.to_string().contains("found dtype '<i4'"), "{e}");
        let e = TimedInput::from_npy(&dir.join("missing.npy"), 1.0, 0, 1, 1, 0..5).unwrap_err();
        assert!(e.to_string().contains("missing.npy"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
