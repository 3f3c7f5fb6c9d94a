//! Array file formats: NumPy `.npy` (read and write) and numeric CSV tables.
//!
//! This module owns the byte-level encoding of arrays that the runtime reads (input spike
//! trains, weight tables, connection lists) and writes (recordings). It knows nothing of
//! populations or units; `record.rs` decides what to write and describes it in a manifest.
//!
//! Writing produces format version 1.0, little-endian, C order, 1-D or 2-D. Reading accepts
//! versions 1.0, 2.0 and 3.0 with little-endian (or byte-order-free) f32, f64, i32, i64, u32,
//! u64 and bool, 1-D or 2-D in C order. Everything else (big-endian data, Fortran order, object
//! or other dtypes, truncated or over-long data, a bad magic string) is an error that names the
//! file and says what was expected and what was found.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use crate::error::RuntimeError;

/// Element types the writer supports.
pub trait NpyElement: Copy {
    /// The NumPy dtype string, e.g. `<f8`.
    const DESCR: &'static str;
    /// Appends the little-endian bytes of `self`.
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($t:ty, $descr:expr) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $descr;
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

npy_element!(f32, "<f4");
npy_element!(f64, "<f8");
npy_element!(i32, "<i4");
npy_element!(u32, "<u4");
npy_element!(i64, "<i8");
npy_element!(u64, "<u8");

/// Formats a shape as Python does: `(3,)` and `(3, 4)`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Encodes a 1-D or 2-D array as `.npy` bytes. `name` is used in errors.
pub fn encode_npy<T: NpyElement>(
    name: &str,
    data: &[T],
    shape: &[usize],
) -> Result<Vec<u8>, RuntimeError> {
    if shape.is_empty() || shape.len() > 2 {
        return Err(RuntimeError::invalid(
            name,
            format!(
                "only 1-D and 2-D arrays can be written, not shape {}",
                shape_text(shape)
            ),
        ));
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| RuntimeError::invalid(name, "shape overflows"))?;
    if count != data.len() {
        return Err(RuntimeError::invalid(
            name,
            format!(
                "shape {} needs {count} elements but {} were given",
                shape_text(shape),
                data.len()
            ),
        ));
    }
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        T::DESCR,
        shape_text(shape)
    );
    // Pad with spaces so that magic + version + length + header is a multiple of 64 bytes,
    // ending in a newline, as NumPy does.
    let unpadded = 10 + header.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    header.extend(std::iter::repeat_n(' ', padding));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| RuntimeError::invalid(name, "npy header longer than 65535 bytes"))?;
    let mut out = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &x in data {
        x.put_le(&mut out);
    }
    Ok(out)
}

/// Writes a 1-D or 2-D array to `path` as `.npy`.
pub fn write_npy<T: NpyElement>(
    path: &Path,
    data: &[T],
    shape: &[usize],
) -> Result<(), RuntimeError> {
    let bytes = encode_npy(&path.display().to_string(), data, shape)?;
    let mut file = fs::File::create(path).map_err(|e| RuntimeError::io(path, "create", e))?;
    file.write_all(&bytes)
        .and_then(|()| file.flush())
        .map_err(|e| RuntimeError::io(path, "write", e))
}

/// The data of an array read from `.npy`, by element type.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// An array read from `.npy`: its dtype string as written in the file, shape and data.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    /// Checks that the array is 1-D; `source` and `expected` go into the message, e.g.
    /// "spikes.npy: expected a 1-D array of int32/int64/float64, found shape (3, 4) of dtype '<f8'".
    pub fn expect_1d(&self, source: &str, expected: &str) -> Result<usize, RuntimeError> {
        match self.shape.as_slice() {
            [n] => Ok(*n),
            _ => Err(RuntimeError::format(
                source,
                format!(
                    "expected a 1-D array of {expected}, found shape {} of dtype '{}'",
                    shape_text(&self.shape),
                    self.descr
                ),
            )),
        }
    }

    /// The elements as f64. Integers beyond 2^53 in magnitude cannot be represented exactly
    /// and are an error rather than a silent rounding.
    pub fn to_f64(&self, source: &str) -> Result<Vec<f64>, RuntimeError> {
        const EXACT: u64 = 1 << 53;
        let inexact = |x: String| {
            RuntimeError::format(
                source,
                format!("value {x} cannot be represented exactly as a float64"),
            )
        };
        Ok(match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::U32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
            NpyData::I64(v) => v
                .iter()
                .map(|&x| {
                    if x.unsigned_abs() <= EXACT {
                        Ok(x as f64)
                    } else {
                        Err(inexact(x.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?,
            NpyData::U64(v) => v
                .iter()
                .map(|&x| {
                    if x <= EXACT {
                        Ok(x as f64)
                    } else {
                        Err(inexact(x.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The parsed header dictionary.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A tiny parser for the Python-literal dictionary in a `.npy` header.
struct HeaderParser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> HeaderParser<'a> {
    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with([' ', '\t', '\n', '\r']) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let quote = self.text[self.pos..].chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let start = self.pos + 1;
        let len = self.text[start..].find(quote)?;
        self.pos = start + len + 1;
        Some(&self.text[start..start + len])
    }

    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        let len = self.text[start..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(self.text.len() - start);
        self.pos += len;
        &self.text[start..start + len]
    }

    fn parse(mut self) -> Result<Header, String> {
        let mut descr = None;
        let mut fortran_order = None;
        let mut shape = None;
        if !self.eat('{') {
            return Err("header does not start with '{'".into());
        }
        loop {
            if self.eat('}') {
                break;
            }
            let key = self.string().ok_or("expected a quoted key in the header")?;
            if !self.eat(':') {
                return Err(format!("expected ':' after key '{key}'"));
            }
            match key {
                "descr" => {
                    let d = self
                        .string()
                        .ok_or("'descr' is not a string (structured dtypes are not supported)")?;
                    descr = Some(d.to_string());
                }
                "fortran_order" => match self.word() {
                    "True" => fortran_order = Some(true),
                    "False" => fortran_order = Some(false),
                    other => return Err(format!("'fortran_order' is '{other}', not True/False")),
                },
                "shape" => {
                    if !self.eat('(') {
                        return Err("'shape' is not a tuple".into());
                    }
                    let mut dims = Vec::new();
                    loop {
                        if self.eat(')') {
                            break;
                        }
                        let w = self.word();
                        let n = w
                            .trim_end_matches('L')
                            .parse::<usize>()
                            .map_err(|_| format!("bad dimension '{w}' in 'shape'"))?;
                        dims.push(n);
                        if !self.eat(',') && !self.eat(')') {
                            return Err("expected ',' or ')' in 'shape'".into());
                        } else if self.text[..self.pos].ends_with(')') {
                            break;
                        }
                    }
                    shape = Some(dims);
                }
                other => return Err(format!("unexpected key '{other}' in the header")),
            }
            if !self.eat(',') {
                if self.eat('}') {
                    break;
                }
                return Err("expected ',' or '}' in the header".into());
            }
        }
        Ok(Header {
            descr: descr.ok_or("header has no 'descr'")?,
            fortran_order: fortran_order.ok_or("header has no 'fortran_order'")?,
            shape: shape.ok_or("header has no 'shape'")?,
        })
    }
}

/// Decodes `.npy` bytes; `source` names the file in errors.
pub fn decode_npy(source: &str, bytes: &[u8]) -> Result<NpyArray, RuntimeError> {
    let err = |m: String| RuntimeError::format(source, m);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        let found: Vec<String> = bytes.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return Err(err(format!(
            "not a .npy file: expected the magic string \\x93NUMPY, found bytes [{}]",
            found.join(" ")
        )));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"
            )))
        }
    };
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(err(format!(
            "truncated header: expected {header_len} header bytes, found {}",
            bytes.len() - header_start
        )));
    }
    let text = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| err("header is not valid text".into()))?;
    let header = HeaderParser { text, pos: 0 }
        .parse()
        .map_err(|m| err(format!("malformed header: {m}")))?;
    let descr = header.descr;
    if header.fortran_order {
        return Err(err(format!(
            "expected C order, found Fortran order (shape {}, dtype '{descr}')",
            shape_text(&header.shape)
        )));
    }
    if header.shape.is_empty() || header.shape.len() > 2 {
        return Err(err(format!(
            "expected a 1-D or 2-D array, found shape {} of dtype '{descr}'",
            shape_text(&header.shape)
        )));
    }
    // '=' means native order, which is little-endian on every target we build for; we still
    // refuse it on big-endian hosts rather than guess.
    let little = cfg!(target_endian = "little");
    // Split off the byte-order character without assuming it is ASCII.
    let (order, kind) = if descr.is_char_boundary(1) {
        descr.split_at(1)
    } else {
        ("", descr.as_str())
    };
    let width: usize = match (order, kind) {
        ("<" | "|", "b1") | ("=", "b1") => 1,
        ("<", "f4" | "i4" | "u4") | ("=", "f4" | "i4" | "u4") if order == "<" || little => 4,
        ("<", "f8" | "i8" | "u8") | ("=", "f8" | "i8" | "u8") if order == "<" || little => 8,
        (">", _) => {
            return Err(err(format!(
                "big-endian dtype '{descr}' is not supported (expected little-endian, e.g. '<f8')"
            )))
        }
        _ => {
            return Err(err(format!(
                "unsupported dtype '{descr}' (expected one of <f4, <f8, <i4, <i8, <u4, <u8, |b1)"
            )))
        }
    };
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| err(format!("shape {} overflows", shape_text(&header.shape))))?;
    let payload = &bytes[data_start..];
    let expected = count.saturating_mul(width);
    if payload.len() < expected {
        return Err(err(format!(
            "truncated data: shape {} of dtype '{descr}' needs {expected} bytes, found {}",
            shape_text(&header.shape),
            payload.len()
        )));
    }
    if payload.len() > expected {
        return Err(err(format!(
            "{} unexpected bytes after the data of shape {} of dtype '{descr}'",
            payload.len() - expected,
            shape_text(&header.shape)
        )));
    }
    fn chunks<const W: usize, T>(p: &[u8], f: impl Fn([u8; W]) -> T) -> Vec<T> {
        p.chunks_exact(W)
            .map(|c| {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                f(a)
            })
            .collect()
    }
    let data = match kind {
        "f4" => NpyData::F32(chunks(payload, f32::from_le_bytes)),
        "f8" => NpyData::F64(chunks(payload, f64::from_le_bytes)),
        "i4" => NpyData::I32(chunks(payload, i32::from_le_bytes)),
        "i8" => NpyData::I64(chunks(payload, i64::from_le_bytes)),
        "u4" => NpyData::U32(chunks(payload, u32::from_le_bytes)),
        "u8" => NpyData::U64(chunks(payload, u64::from_le_bytes)),
        _ => {
            if let Some(pos) = payload.iter().position(|&b| b > 1) {
                return Err(err(format!(
                    "bool element {pos} has byte value {}, expected 0 or 1",
                    payload[pos]
                )));
            }
            NpyData::Bool(payload.iter().map(|&b| b == 1).collect())
        }
    };
    Ok(NpyArray {
        descr,
        shape: header.shape,
        data,
    })
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray, RuntimeError> {
    let bytes = fs::read(path).map_err(|e| RuntimeError::io(path, "read", e))?;
    decode_npy(&path.display().to_string(), &bytes)
}

/// A numeric table read from CSV: optional header, rows of equal length, row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvTable {
    pub header: Option<Vec<String>>,
    pub n_columns: usize,
    pub values: Vec<f64>,
}

impl CsvTable {
    pub fn n_rows(&self) -> usize {
        self.values.len().checked_div(self.n_columns).unwrap_or(0)
    }

    /// Row `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        let start = i.checked_mul(self.n_columns)?;
        self.values.get(start..start + self.n_columns)
    }
}

/// Parses a numeric CSV table from text. Fields are separated by commas and trimmed; blank
/// lines and lines starting with `#` are skipped. The first remaining line is a header when
/// any of its fields is not a number. `source` names the file in errors, with line numbers.
pub fn parse_csv(source: &str, text: &str) -> Result<CsvTable, RuntimeError> {
    let mut header = None;
    let mut n_columns = None;
    let mut values = Vec::new();
    let mut first = true;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if first {
            first = false;
            if fields.iter().any(|f| f.parse::<f64>().is_err()) {
                header = Some(fields.iter().map(|f| f.to_string()).collect::<Vec<_>>());
                n_columns = Some(fields.len());
                continue;
            }
        }
        let expected = *n_columns.get_or_insert(fields.len());
        if fields.len() != expected {
            return Err(RuntimeError::format(
                format!("{source}:{line_no}"),
                format!("expected {expected} fields, found {}", fields.len()),
            ));
        }
        for (column, field) in fields.iter().enumerate() {
            let x = field.parse::<f64>().map_err(|_| {
                RuntimeError::format(
                    format!("{source}:{line_no}"),
                    format!("field {} '{field}' is not a number", column + 1),
                )
            })?;
            values.push(x);
        }
    }
    Ok(CsvTable {
        header,
        n_columns: n_columns.unwrap_or(0),
        values,
    })
}

/// Reads a numeric CSV table from a file (see [`parse_csv`]).
pub fn read_csv(path: &Path) -> Result<CsvTable, RuntimeError> {
    let text = fs::read_to_string(path).map_err(|e| RuntimeError::io(path, "read", e))?;
    parse_csv(&path.display().to_string(), &text)
}

/// Formats a 2-D table (row-major `values`, `n_columns` wide) as CSV with an optional header.
/// Floats use Rust's shortest round-trip representation, so reading back is exact.
pub fn format_csv<T: std::fmt::Display>(
    header: Option<&[String]>,
    values: &[T],
    n_columns: usize,
) -> String {
    let mut out = String::new();
    if let Some(h) = header {
        out.push_str(&h.join(","));
        out.push('\n');
    }
    if n_columns == 0 {
        return out;
    }
    for row in values.chunks(n_columns) {
        for (i, x) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{x}");
        }
        out.push('\n');
    }
    out
}

/// Writes a CSV table to `path` (see [`format_csv`]).
pub fn write_csv<T: std::fmt::Display>(
    path: &Path,
    header: Option<&[String]>,
    values: &[T],
    n_columns: usize,
) -> Result<(), RuntimeError> {
    fs::write(path, format_csv(header, values, n_columns))
        .map_err(|e| RuntimeError::io(path, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("snnc-runtime-npy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Hand-builds a v1.0 file from a header dict and payload, as a foreign writer would.
    fn handmade(dict: &str, payload: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn header_is_aligned_and_readable() {
        let bytes = encode_npy("x", &[1.0f64, 2.0, 3.0], &[3]).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(bytes[10 + header_len - 1], b'\n');
        let text = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(text.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"));
        assert_eq!(bytes.len(), 10 + header_len + 24);
    }

    #[test]
    fn round_trips_every_type_through_files() {
        let dir = temp_dir("roundtrip");
        let p = dir.join("a.npy");
        write_npy(&p, &[1.5f32, -2.0, 3.25, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.descr, "<f4");
        assert_eq!(a.data, NpyData::F32(vec![1.5, -2.0, 3.25, 4.0, 5.0, 6.0]));
        write_npy(&p, &[0.1f64, f64::MAX], &[2]).unwrap();
        assert_eq!(
            read_npy(&p).unwrap().data,
            NpyData::F64(vec![0.1, f64::MAX])
        );
        write_npy(&p, &[i32::MIN, 7], &[2, 1]).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, NpyData::I32(vec![i32::MIN, 7]));
        write_npy(&p, &[u32::MAX], &[1]).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, NpyData::U32(vec![u32::MAX]));
        write_npy(&p, &[i64::MIN, 0], &[2]).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, NpyData::I64(vec![i64::MIN, 0]));
        write_npy(&p, &[u64::MAX; 4], &[2, 2]).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, NpyData::U64(vec![u64::MAX; 4]));
        write_npy::<f64>(&p, &[], &[0]).unwrap();
        assert_eq!(read_npy(&p).unwrap().shape, vec![0]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writer_rejects_bad_shapes() {
        assert!(encode_npy("x", &[1.0f64; 6], &[2, 2]).is_err());
        assert!(encode_npy("x", &[1.0f64; 8], &[2, 2, 2]).is_err());
        assert!(encode_npy::<f64>("x", &[], &[]).is_err());
    }

    #[test]
    fn reads_handmade_bool_and_version_2_files() {
        let bytes = handmade(
            "{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}",
            &[1, 0, 1],
        );
        let a = decode_npy("mask.npy", &bytes).unwrap();
        assert_eq!(a.data, NpyData::Bool(vec![true, false, true]));
        assert_eq!(a.to_f64("mask.npy").unwrap(), vec![1.0, 0.0, 1.0]);

        let dict = "{\"descr\":\"<i8\",\"shape\":(2,),\"fortran_order\":False}\n";
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v2.extend_from_slice(dict.as_bytes());
        v2.extend_from_slice(&5i64.to_le_bytes());
        v2.extend_from_slice(&(-6i64).to_le_bytes());
        assert_eq!(
            decode_npy("v2.npy", &v2).unwrap().data,
            NpyData::I64(vec![5, -6])
        );
    }

    #[test]
    fn bad_files_are_named_errors() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"PK\x03\x04 not npy".to_vec(), "expected the magic string"),
            (
                handmade(
                    "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 8],
                ),
                "big-endian dtype '>f8'",
            ),
            (
                handmade(
                    "{'descr': 'é', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 8],
                ),
                "unsupported dtype 'é'",
            ),
            (
                handmade(
                    "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 1), }",
                    &[0; 8],
                ),
                "found Fortran order",
            ),
            (
                handmade(
                    "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 8],
                ),
                "unsupported dtype '|O'",
            ),
            (
                handmade(
                    "{'descr': '<c16', 'fortran_order': False, 'shape': (3, 4), }",
                    &[],
                ),
                "unsupported dtype '<c16'",
            ),
            (
                handmade(
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
                    &[0; 20],
                ),
                "truncated data: shape (4,) of dtype '<f8' needs 32 bytes, found 20",
            ),
            (
                handmade(
                    "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2, 2), }",
                    &[0; 64],
                ),
                "expected a 1-D or 2-D array, found shape (2, 2, 2)",
            ),
            (
                handmade(
                    "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                    &[0; 6],
                ),
                "2 unexpected bytes",
            ),
            (
                handmade("{'descr': '<i4', 'shape': (1,), }", &[0; 4]),
                "no 'fortran_order'",
            ),
            (
                b"\x93NUMPY\x01\x00\xff\x00{'de".to_vec(),
                "truncated header",
            ),
        ];
        for (bytes, expected) in cases {
            let e = decode_npy("in.npy", &bytes).unwrap_err().to_string();
            assert!(e.starts_with("in.npy: "), "{e}");
            assert!(e.contains(expected), "{e} does not contain {expected}");
        }
        let e = read_npy(Path::new("/nonexistent/x.npy")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/x.npy: cannot read"));
    }

    #[test]
    fn expect_1d_names_shape_and_dtype() {
        let a = decode_npy(
            "spikes.npy",
            &encode_npy("spikes.npy", &[0.0f64; 12], &[3, 4]).unwrap(),
        )
        .unwrap();
        let e = a
            .expect_1d("spikes.npy", "int32/int64/float64")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "spikes.npy: expected a 1-D array of int32/int64/float64, found shape (3, 4) of dtype '<f8'"
        );
        let a = decode_npy("t.npy", &encode_npy("t", &[1u64 << 60], &[1]).unwrap()).unwrap();
        assert!(a.to_f64("t.npy").is_err());
    }

    #[test]
    fn csv_tables() {
        let t = parse_csv(
            "w.csv",
            "pre, post, weight\n0,1,0.5\n# comment\n\n2,3,-1e-3\n",
        )
        .unwrap();
        assert_eq!(
            t.header,
            Some(vec!["pre".into(), "post".into(), "weight".into()])
        );
        assert_eq!(t.n_rows(), 2);
        assert_eq!(t.row(1), Some(&[2.0, 3.0, -1e-3][..]));
        assert_eq!(t.row(2), None);
        let t = parse_csv("w.csv", "1,2\n3,4\n").unwrap();
        assert!(t.header.is_none());
        assert_eq!(t.values, vec![1.0, 2.0, 3.0, 4.0]);
        let e = parse_csv("w.csv", "a,b\n1,2\n3\n").unwrap_err();
        assert_eq!(e.to_string(), "w.csv:3: expected 2 fields, found 1");
        let e = parse_csv("w.csv", "1,2\n3,x\n").unwrap_err();
        assert_eq!(e.to_string(), "w.csv:2: field 2 'x' is not a number");
        assert_eq!(parse_csv("e.csv", "").unwrap().n_rows(), 0);
    }

    #[test]
    fn csv_round_trip_is_exact() {
        let dir = temp_dir("csv");
        let p = dir.join("t.csv");
        let values = [0.1f64, 1.0 / 3.0, -2.5e-300, 7.0];
        write_csv(&p, Some(&["a".to_string(), "b".to_string()]), &values, 2).unwrap();
        let t = read_csv(&p).unwrap();
        assert_eq!(t.values, values.to_vec());
        assert_eq!(t.n_columns, 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
