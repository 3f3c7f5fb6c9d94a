//! Per-element storage in the network's precision: [`Array`], [`ArrayMut`] and [`Precision`].
//!
//! A network declares `precision = f64` (the default) or `precision = f32`. Every per-element
//! and per-synapse array (population state, parameters stored per neuron, internal counters,
//! per-synapse weights, plastic arrays) is stored in that precision; arithmetic stays `f64`.
//! Reading widens exactly; writing rounds to the nearest `f32` (ties to even, Rust's `as f32`),
//! once, when the value is stored. This module owns that rule for the runtime and gives the
//! rest of the runtime one type to hold and address such arrays, so that code paths are not
//! duplicated per precision; hot loops (delivery, draining) are generic over [`Element`].
//!
//! It knows nothing of kernels or of what the arrays mean. Compiled kernels receive raw
//! pointers ([`Array::as_mut_ptr`]) and must know the element type themselves (the compiler
//! generates `f32` loads and stores for an `f32` network).

use serde::{Deserialize, Serialize};

/// The storage type of a network's per-element arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    #[default]
    F64,
    F32,
}

impl Precision {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F64 => 8,
            Precision::F32 => 4,
        }
    }

    /// `value` as it is stored in this precision (rounded to `f32` and widened back).
    pub fn round(self, value: f64) -> f64 {
        match self {
            Precision::F64 => value,
            Precision::F32 => value as f32 as f64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

/// An element type arrays can hold: converts to `f64` exactly, and from `f64` by rounding.
pub trait Element: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(value: f64) -> Self;
}

impl Element for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
}

impl Element for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
}

/// An array of SI values stored as `f64` or `f32`.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

impl Default for Array {
    fn default() -> Self {
        Array::F64(Vec::new())
    }
}

impl From<Vec<f64>> for Array {
    fn from(values: Vec<f64>) -> Self {
        Array::F64(values)
    }
}

impl Array {
    /// `len` zeros.
    pub fn zeros(precision: Precision, len: usize) -> Self {
        match precision {
            Precision::F64 => Array::F64(vec![0.0; len]),
            Precision::F32 => Array::F32(vec![0.0; len]),
        }
    }

    /// `values` stored in `precision` (each rounded once when it is `f32`).
    pub fn from_f64(precision: Precision, values: Vec<f64>) -> Self {
        match precision {
            Precision::F64 => Array::F64(values),
            Precision::F32 => Array::F32(values.into_iter().map(|v| v as f32).collect()),
        }
    }

    pub fn precision(&self) -> Precision {
        match self {
            Array::F64(_) => Precision::F64,
            Array::F32(_) => Precision::F32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Array::F64(a) => a.len(),
            Array::F32(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, widened to `f64`. Panics when out of range, like slice indexing.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Array::F64(a) => a[i],
            Array::F32(a) => a[i] as f64,
        }
    }

    /// Element `i`, or `None` when out of range.
    pub fn try_get(&self, i: usize) -> Option<f64> {
        match self {
            Array::F64(a) => a.get(i).copied(),
            Array::F32(a) => a.get(i).map(|&v| v as f64),
        }
    }

    /// Stores `value` at `i`, rounded to the array's precision.
    #[inline]
    pub fn set(&mut self, i: usize, value: f64) {
        match self {
            Array::F64(a) => a[i] = value,
            Array::F32(a) => a[i] = value as f32,
        }
    }

    /// Adds `value` to element `i` in `f64` and stores the sum rounded once.
    #[inline]
    pub fn add(&mut self, i: usize, value: f64) {
        match self {
            Array::F64(a) => a[i] += value,
            Array::F32(a) => a[i] = (a[i] as f64 + value) as f32,
        }
    }

    pub fn fill(&mut self, value: f64) {
        match self {
            Array::F64(a) => a.fill(value),
            Array::F32(a) => a.fill(value as f32),
        }
    }

    /// Copies `values` (rounded to the array's precision) into `range`'s elements.
    pub fn copy_from(&mut self, start: usize, values: &[f64]) {
        match self {
            Array::F64(a) => a[start..start + values.len()].copy_from_slice(values),
            Array::F32(a) => {
                for (d, &v) in a[start..start + values.len()].iter_mut().zip(values) {
                    *d = v as f32;
                }
            }
        }
    }

    /// The elements of an `f64` array (`None` for `f32`).
    pub fn as_f64(&self) -> Option<&[f64]> {
        match self {
            Array::F64(a) => Some(a),
            Array::F32(_) => None,
        }
    }

    /// The elements of an `f64` array, mutably (`None` for `f32`).
    pub fn as_f64_mut(&mut self) -> Option<&mut [f64]> {
        match self {
            Array::F64(a) => Some(a),
            Array::F32(_) => None,
        }
    }

    /// Every element widened to `f64`.
    pub fn to_f64(&self) -> Vec<f64> {
        self.iter().collect()
    }

    /// The elements, widened to `f64`.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (a, b) = match self {
            Array::F64(a) => (Some(a.iter().copied()), None),
            Array::F32(a) => (None, Some(a.iter().map(|&v| v as f64))),
        };
        a.into_iter().flatten().chain(b.into_iter().flatten())
    }

    /// The raw storage, for compiled kernels: it points to `f64` or `f32` values according to
    /// [`Self::precision`], whatever the pointer's type says.
    pub fn as_mut_ptr(&mut self) -> *mut f64 {
        match self {
            Array::F64(a) => a.as_mut_ptr(),
            Array::F32(a) => a.as_mut_ptr().cast(),
        }
    }

    /// [`Self::as_mut_ptr`] advanced by `offset` elements of the array's own type.
    ///
    /// # Safety
    ///
    /// `offset <= len`.
    pub unsafe fn as_mut_ptr_at(&mut self, offset: usize) -> *mut f64 {
        // SAFETY: `offset <= len` (the caller's contract), within or one past the allocation.
        unsafe {
            match self {
                Array::F64(a) => a.as_mut_ptr().add(offset),
                Array::F32(a) => a.as_mut_ptr().add(offset).cast(),
            }
        }
    }

    /// Bytes of storage.
    pub fn bytes(&self) -> u64 {
        self.len() as u64 * self.precision().bytes()
    }

    /// A mutable view of every element.
    pub fn view_mut(&mut self) -> ArrayMut<'_> {
        match self {
            Array::F64(a) => ArrayMut::F64(a),
            Array::F32(a) => ArrayMut::F32(a),
        }
    }

    /// A mutable view of the elements in `range`, or `None` when it is out of bounds.
    pub fn slice_mut(&mut self, range: std::ops::Range<usize>) -> Option<ArrayMut<'_>> {
        match self {
            Array::F64(a) => a.get_mut(range).map(ArrayMut::F64),
            Array::F32(a) => a.get_mut(range).map(ArrayMut::F32),
        }
    }

    /// Removes the last element (for tests of inconsistent networks).
    pub fn pop(&mut self) -> Option<f64> {
        match self {
            Array::F64(a) => a.pop(),
            Array::F32(a) => a.pop().map(f64::from),
        }
    }

    /// The bit patterns of the elements (`f64` bits, or `f32` bits widened), to compare or
    /// save state exactly.
    pub fn bits(&self) -> Vec<u64> {
        match self {
            Array::F64(a) => a.iter().map(|v| v.to_bits()).collect(),
            Array::F32(a) => a.iter().map(|v| u64::from(v.to_bits())).collect(),
        }
    }

    /// The inverse of [`Self::bits`] for this array's precision.
    pub fn set_bits(&mut self, bits: &[u64]) {
        match self {
            Array::F64(a) => {
                for (d, &b) in a.iter_mut().zip(bits) {
                    *d = f64::from_bits(b);
                }
            }
            Array::F32(a) => {
                for (d, &b) in a.iter_mut().zip(bits) {
                    *d = f32::from_bits(b as u32);
                }
            }
        }
    }
}

/// Equal when the lengths match and every element widened equals the `f64` value (so an
/// `f32` array equals the `f64` values it holds).
impl PartialEq<Vec<f64>> for Array {
    fn eq(&self, other: &Vec<f64>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, &b)| a == b)
    }
}

impl PartialEq<Array> for Vec<f64> {
    fn eq(&self, other: &Array) -> bool {
        other == self
    }
}

/// A mutable view of an [`Array`] (or of part of one).
#[derive(Debug)]
pub enum ArrayMut<'a> {
    F64(&'a mut [f64]),
    F32(&'a mut [f32]),
}

impl ArrayMut<'_> {
    pub fn len(&self) -> usize {
        match self {
            ArrayMut::F64(a) => a.len(),
            ArrayMut::F32(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            ArrayMut::F64(a) => a[i],
            ArrayMut::F32(a) => a[i] as f64,
        }
    }

    /// Stores `value` at `i`, rounded to the view's precision.
    #[inline]
    pub fn set(&mut self, i: usize, value: f64) {
        match self {
            ArrayMut::F64(a) => a[i] = value,
            ArrayMut::F32(a) => a[i] = value as f32,
        }
    }

    pub fn precision(&self) -> Precision {
        match self {
            ArrayMut::F64(_) => Precision::F64,
            ArrayMut::F32(_) => Precision::F32,
        }
    }

    pub fn fill(&mut self, value: f64) {
        match self {
            ArrayMut::F64(a) => a.fill(value),
            ArrayMut::F32(a) => a.fill(value as f32),
        }
    }

    /// Copies `values`, rounded to the view's precision (equal lengths).
    pub fn copy_from_f64(&mut self, values: &[f64]) {
        match self {
            ArrayMut::F64(a) => a.copy_from_slice(values),
            ArrayMut::F32(a) => {
                for (d, &v) in a.iter_mut().zip(values) {
                    *d = v as f32;
                }
            }
        }
    }

    /// The raw storage (see [`Array::as_mut_ptr`]).
    pub fn as_mut_ptr(&mut self) -> *mut f64 {
        match self {
            ArrayMut::F64(a) => a.as_mut_ptr(),
            ArrayMut::F32(a) => a.as_mut_ptr().cast(),
        }
    }

    /// [`Self::as_mut_ptr`] moved back by `first` elements of the view's own type: the
    /// address element `first + i` would have if the view's index `i` held it. The pointer may
    /// lie outside the view; code given it may only access `first..first + len`.
    pub fn as_mut_ptr_for_window(&mut self, first: usize) -> *mut f64 {
        match self {
            ArrayMut::F64(a) => a.as_mut_ptr().wrapping_sub(first),
            ArrayMut::F32(a) => a.as_mut_ptr().wrapping_sub(first).cast(),
        }
    }

    /// A shorter view of the same elements.
    pub fn reborrow(&mut self) -> ArrayMut<'_> {
        match self {
            ArrayMut::F64(a) => ArrayMut::F64(a),
            ArrayMut::F32(a) => ArrayMut::F32(a),
        }
    }
}

impl<'a> From<&'a mut [f64]> for ArrayMut<'a> {
    fn from(a: &'a mut [f64]) -> Self {
        ArrayMut::F64(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_arrays_round_on_store_and_widen_on_read() {
        let mut a = Array::zeros(Precision::F32, 3);
        a.set(0, 0.1);
        assert_eq!(a.get(0), 0.1f32 as f64);
        assert_ne!(a.get(0), 0.1);
        // One rounding of the f64 sum, not a sum of f32 values.
        a.set(1, 1.0);
        a.add(1, 1e-8);
        assert_eq!(a.get(1), (1.0f64 + 1e-8) as f32 as f64);
        assert_eq!(a.bytes(), 12);
        let mut b = Array::zeros(Precision::F64, 3);
        b.set(0, 0.1);
        assert_eq!(b.get(0), 0.1);
        assert_eq!(b.bytes(), 24);
        let bits = a.bits();
        let mut c = Array::zeros(Precision::F32, 3);
        c.set_bits(&bits);
        assert_eq!(a, c);
    }
}
