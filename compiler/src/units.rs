//! Physical dimensions and unit names for the `.snn` language.
//!
//! # What this module owns
//!
//! * **SI base dimensions.** A [`Dimension`] is a vector of integer exponents
//!   over the seven SI base dimensions (length, mass, time, current,
//!   temperature, amount of substance, luminous intensity). Dimension
//!   checking in the compiler is nothing but equality of these vectors, and
//!   dimension arithmetic is addition/subtraction of exponents.
//! * **Units and their scale to SI.** A [`Unit`] is a dimension plus the
//!   factor that turns a value written in that unit into SI (`20 ms` is
//!   `20 * 1e-3` seconds). The compiler normalises every literal to SI with
//!   this factor, so generated kernels only ever see plain SI floats.
//! * **Unit names.** [`lookup`] resolves a single name such as `ms`, `nS`,
//!   `MΩ` or `mM`, with an optional SI prefix; [`parse_unit_expr`] resolves a
//!   small product/quotient of names (`nS/mV^2`, `1/ms`); and
//!   [`known_unit_names`] lists the spellings users commonly type, for
//!   "did you mean" suggestions.
//! * **Readable display.** Error messages, IR dumps and recorded traces talk
//!   in the conventional units of computational neuroscience (the ones NEST
//!   uses): ms, mV, pA, nS, pF, Mohm, Hz, um, mM. [`display_unit`] picks such
//!   a unit (or a small product/quotient of them) for any dimension, the
//!   `Display` impl of [`Dimension`] prints it, and [`format_quantity`]
//!   converts an SI value back into it.
//!
//! # What this module must not touch
//!
//! No AST, no source spans, no diagnostics, no global state. Everything here
//! is plain data and pure functions; the front end wraps the `Option`s and
//! `Result`s returned here into proper diagnostics with spans.
//!
//! # Name resolution rules
//!
//! * Names are case sensitive: `ms` is a millisecond, `mS` a millisiemens,
//!   `Ms` a megasecond.
//! * A name that is itself a base unit wins over a prefix + unit reading:
//!   `m` is the metre (not milli-nothing), `mol` is the mole (not milli-`ol`),
//!   `cd` is the candela, `M` is molar.
//! * Otherwise the first character may be a prefix (`f p n u µ μ m c k M G T P`)
//!   and the rest must be a base unit name: `mM` is millimolar, `Mohm` /
//!   `MOhm` / `MΩ` are megaohm, `kg` is the kilogram (`g` has scale 1e-3).
//! * A prefix alone is not a unit (`k` → `None`), double prefixes are not
//!   accepted, and `min`, `h`, `L` are deliberately not supported.
//! * `1` (dimensionless) is not a *name*: [`lookup`] rejects it, the caller
//!   (or [`parse_unit_expr`]) handles it as the literal one.

use std::fmt;

/// Names of the base dimensions, in exponent order.
const BASE_SYMBOLS: [&str; 7] = ["m", "kg", "s", "A", "K", "mol", "cd"];

/// Order in which base units are written in the SI fallback display
/// (`kg*m^2/(s^3*A)` is the conventional spelling of a volt).
const FALLBACK_ORDER: [usize; 7] = [1, 0, 2, 3, 4, 5, 6];

/// Exponents of the seven SI base dimensions: m, kg, s, A, K, mol, cd.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Dimension {
    exps: [i8; 7],
}

impl Dimension {
    /// The dimension of pure numbers.
    pub const DIMENSIONLESS: Dimension = Dimension { exps: [0; 7] };

    /// Builds a dimension from exponents of m, kg, s, A, K, mol, cd.
    pub const fn new(exps: [i8; 7]) -> Self {
        Dimension { exps }
    }

    /// The exponents of m, kg, s, A, K, mol, cd.
    pub fn exponents(self) -> [i8; 7] {
        self.exps
    }

    pub fn is_dimensionless(self) -> bool {
        self.exps == [0; 7]
    }

    /// Product of two dimensions, `None` if an exponent overflows `i8`.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let mut exps = [0i8; 7];
        for (i, e) in exps.iter_mut().enumerate() {
            *e = self.exps[i].checked_add(other.exps[i])?;
        }
        Some(Dimension { exps })
    }

    /// Quotient of two dimensions, `None` if an exponent overflows `i8`.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        let mut exps = [0i8; 7];
        for (i, e) in exps.iter_mut().enumerate() {
            *e = self.exps[i].checked_sub(other.exps[i])?;
        }
        Some(Dimension { exps })
    }

    /// Product of two dimensions. Exponents saturate at the `i8` range
    /// instead of panicking; use [`Dimension::checked_mul`] to detect that
    /// (it takes absurd programs, `x*x*...*x` 128 times, to get there).
    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, other: Self) -> Self {
        let mut exps = [0i8; 7];
        for (i, e) in exps.iter_mut().enumerate() {
            *e = self.exps[i].saturating_add(other.exps[i]);
        }
        Dimension { exps }
    }

    /// Quotient of two dimensions (saturating, see [`Dimension::mul`]).
    #[allow(clippy::should_implement_trait)]
    pub fn div(self, other: Self) -> Self {
        let mut exps = [0i8; 7];
        for (i, e) in exps.iter_mut().enumerate() {
            *e = self.exps[i].saturating_sub(other.exps[i]);
        }
        Dimension { exps }
    }

    /// The reciprocal dimension (`time` → `frequency`).
    pub fn recip(self) -> Self {
        Dimension::DIMENSIONLESS.div(self)
    }

    /// Integer power; `None` when an exponent leaves the `i8` range.
    pub fn powi(self, n: i32) -> Option<Self> {
        let mut exps = [0i8; 7];
        for (i, e) in exps.iter_mut().enumerate() {
            let v = i32::from(self.exps[i]).checked_mul(n)?;
            *e = i8::try_from(v).ok()?;
        }
        Some(Dimension { exps })
    }

    /// `n`-th root; `None` unless `n != 0` and every exponent is divisible
    /// by `n` (`sqrt(mV^2)` is `mV`, `sqrt(mV)` is `None`). A negative `n`
    /// gives the root of the reciprocal.
    pub fn root(self, n: i32) -> Option<Self> {
        if n == 0 {
            return None;
        }
        let mut exps = [0i8; 7];
        for (i, e) in exps.iter_mut().enumerate() {
            let v = i32::from(self.exps[i]);
            if v % n != 0 {
                return None;
            }
            *e = i8::try_from(v / n).ok()?;
        }
        Some(Dimension { exps })
    }

    /// Seconds.
    pub fn time() -> Self {
        Dimension::new([0, 0, 1, 0, 0, 0, 0])
    }
    /// Volts: kg·m²·s⁻³·A⁻¹.
    pub fn voltage() -> Self {
        Dimension::new([2, 1, -3, -1, 0, 0, 0])
    }
    /// Amperes.
    pub fn current() -> Self {
        Dimension::new([0, 0, 0, 1, 0, 0, 0])
    }
    /// Siemens: A/V.
    pub fn conductance() -> Self {
        Dimension::new([-2, -1, 3, 2, 0, 0, 0])
    }
    /// Farads: C/V.
    pub fn capacitance() -> Self {
        Dimension::new([-2, -1, 4, 2, 0, 0, 0])
    }
    /// Ohms: V/A.
    pub fn resistance() -> Self {
        Dimension::new([2, 1, -3, -2, 0, 0, 0])
    }
    /// Hertz: 1/s.
    pub fn frequency() -> Self {
        Dimension::new([0, 0, -1, 0, 0, 0, 0])
    }
    /// Coulombs: A·s.
    pub fn charge() -> Self {
        Dimension::new([0, 0, 1, 1, 0, 0, 0])
    }
    /// Metres.
    pub fn length() -> Self {
        Dimension::new([1, 0, 0, 0, 0, 0, 0])
    }
    /// mol/m³ (1 mM = 1 mol/m³).
    pub fn concentration() -> Self {
        Dimension::new([-3, 0, 0, 0, 0, 1, 0])
    }
    /// Kilograms.
    pub fn mass() -> Self {
        Dimension::new([0, 1, 0, 0, 0, 0, 0])
    }
    /// Kelvin.
    pub fn temperature() -> Self {
        Dimension::new([0, 0, 0, 0, 1, 0, 0])
    }
    /// Moles.
    pub fn amount() -> Self {
        Dimension::new([0, 0, 0, 0, 0, 1, 0])
    }
    /// Joules: kg·m²·s⁻².
    pub fn energy() -> Self {
        Dimension::new([2, 1, -2, 0, 0, 0, 0])
    }
    /// Watts: kg·m²·s⁻³.
    pub fn power() -> Self {
        Dimension::new([2, 1, -3, 0, 0, 0, 0])
    }
}

impl std::ops::Mul for Dimension {
    type Output = Dimension;
    fn mul(self, rhs: Dimension) -> Dimension {
        Dimension::mul(self, rhs)
    }
}

impl std::ops::Div for Dimension {
    type Output = Dimension;
    fn div(self, rhs: Dimension) -> Dimension {
        Dimension::div(self, rhs)
    }
}

impl fmt::Display for Dimension {
    /// Neuroscience-first rendering, see [`display_unit`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_unit(*self).0)
    }
}

/// A unit: a dimension and the factor converting a value in this unit to SI.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Unit {
    pub dimension: Dimension,
    /// Multiply a value in this unit by `scale` to get SI.
    pub scale: f64,
}

impl Unit {
    /// The dimensionless unit `1`.
    pub const ONE: Unit = Unit {
        dimension: Dimension::DIMENSIONLESS,
        scale: 1.0,
    };

    pub const fn new(dimension: Dimension, scale: f64) -> Self {
        Unit { dimension, scale }
    }

    /// The coherent SI unit of a dimension (scale 1).
    pub const fn si(dimension: Dimension) -> Self {
        Unit {
            dimension,
            scale: 1.0,
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, o: Unit) -> Unit {
        Unit {
            dimension: self.dimension.mul(o.dimension),
            scale: self.scale * o.scale,
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn div(self, o: Unit) -> Unit {
        Unit {
            dimension: self.dimension.div(o.dimension),
            scale: self.scale / o.scale,
        }
    }

    /// Integer power; `None` on exponent overflow.
    pub fn powi(self, n: i32) -> Option<Unit> {
        Some(Unit {
            dimension: self.dimension.powi(n)?,
            scale: self.scale.powi(n),
        })
    }

    /// `n`-th root; `None` when the dimension has no such root.
    pub fn root(self, n: i32) -> Option<Unit> {
        let dimension = self.dimension.root(n)?;
        let scale = if n == 2 {
            self.scale.sqrt()
        } else {
            self.scale.powf(1.0 / f64::from(n))
        };
        Some(Unit { dimension, scale })
    }

    /// Converts a value expressed in this unit to SI.
    pub fn to_si(self, value: f64) -> f64 {
        value * self.scale
    }

    /// Converts an SI value into this unit.
    pub fn from_si(self, si_value: f64) -> f64 {
        si_value / self.scale
    }
}

impl std::ops::Mul for Unit {
    type Output = Unit;
    fn mul(self, rhs: Unit) -> Unit {
        Unit::mul(self, rhs)
    }
}

impl std::ops::Div for Unit {
    type Output = Unit;
    fn div(self, rhs: Unit) -> Unit {
        Unit::div(self, rhs)
    }
}

/// `10^e` as a correctly rounded literal for the range units need, so that
/// e.g. `mV` has exactly the scale `1e-3` (no `powi` rounding noise).
fn pow10(e: i32) -> f64 {
    const TABLE: [f64; 61] = [
        1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18,
        1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4,
        1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
        1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28,
        1e29, 1e30,
    ];
    match usize::try_from(e + 30) {
        Ok(i) if i < TABLE.len() => TABLE[i],
        _ => 10f64.powi(e),
    }
}

/// SI prefixes and their decimal exponents. Both the micro sign (U+00B5)
/// and the Greek small mu (U+03BC) are accepted next to ASCII `u`.
const PREFIXES: [(char, i32); 13] = [
    ('f', -15),
    ('p', -12),
    ('n', -9),
    ('u', -6),
    ('\u{b5}', -6),
    ('\u{3bc}', -6),
    ('m', -3),
    ('c', -2),
    ('k', 3),
    ('M', 6),
    ('G', 9),
    ('T', 12),
    ('P', 15),
];

/// Base (unprefixed) unit names: name, dimension, decimal exponent of the
/// scale to SI. Every scale is a power of ten, which keeps prefixed scales
/// exact (`kg` is `10^(3-3)` = exactly 1).
fn base_units() -> [(&'static str, Dimension, i32); 20] {
    [
        ("s", Dimension::time(), 0),
        ("V", Dimension::voltage(), 0),
        ("A", Dimension::current(), 0),
        ("S", Dimension::conductance(), 0),
        ("F", Dimension::capacitance(), 0),
        ("ohm", Dimension::resistance(), 0),
        ("Ohm", Dimension::resistance(), 0),
        ("\u{3a9}", Dimension::resistance(), 0), // Ω Greek capital omega
        ("\u{2126}", Dimension::resistance(), 0), // Ω ohm sign
        ("Hz", Dimension::frequency(), 0),
        ("m", Dimension::length(), 0),
        ("g", Dimension::mass(), -3),
        ("mol", Dimension::amount(), 0),
        // Molar: 1 M = 1 mol/L = 1000 mol/m^3, so 1 mM = 1 mol/m^3.
        ("M", Dimension::concentration(), 3),
        ("K", Dimension::temperature(), 0),
        ("C", Dimension::charge(), 0),
        ("J", Dimension::energy(), 0),
        ("W", Dimension::power(), 0),
        ("N", Dimension::new([1, 1, -2, 0, 0, 0, 0]), 0),
        ("cd", Dimension::new([0, 0, 0, 0, 0, 0, 1]), 0),
    ]
}

fn base_unit(name: &str) -> Option<(Dimension, i32)> {
    base_units()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, e)| (d, e))
}

/// Looks up a single unit name with an optional SI prefix.
///
/// Resolution order (see the module docs): an exact base-unit name first
/// (`m`, `mol`, `M`, `K`, `cd`), then one prefix character followed by a
/// base-unit name (`ms`, `mS`, `mM`, `Mohm`, `MΩ`, `kg`, `uS`, `µS`).
/// Case matters. `"1"` is not a name and returns `None`.
pub fn lookup(name: &str) -> Option<Unit> {
    if let Some((dim, e)) = base_unit(name) {
        return Some(Unit::new(dim, pow10(e)));
    }
    let mut chars = name.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    if rest.is_empty() {
        return None;
    }
    let (_, pe) = PREFIXES.iter().find(|(c, _)| *c == first)?;
    let (dim, e) = base_unit(rest)?;
    Some(Unit::new(dim, pow10(pe + e)))
}

/// Every name [`lookup`] accepts that a user is likely to type, for
/// "did you mean" suggestions. (Exotic combinations such as `Ms` or `cK`
/// are accepted by `lookup` but not listed.)
pub fn known_unit_names() -> Vec<&'static str> {
    KNOWN_UNIT_NAMES.to_vec()
}

#[rustfmt::skip]
const KNOWN_UNIT_NAMES: &[&str] = &[
    // time
    "s", "ms", "us", "µs", "ns",
    // voltage
    "V", "mV", "uV", "µV",
    // current
    "A", "mA", "uA", "µA", "nA", "pA",
    // conductance
    "S", "mS", "uS", "µS", "nS", "pS",
    // capacitance
    "F", "uF", "µF", "nF", "pF",
    // resistance
    "ohm", "kohm", "Mohm", "Gohm", "Ohm", "kOhm", "MOhm", "GOhm", "Ω", "kΩ", "MΩ", "GΩ",
    // frequency
    "Hz", "kHz", "mHz",
    // length
    "m", "cm", "mm", "um", "µm", "nm",
    // amount and concentration
    "mol", "mmol", "umol", "M", "mM", "uM", "µM", "nM",
    // temperature, charge, energy, power, mass
    "K", "C", "nC", "pC", "fC", "J", "W", "g", "kg", "mg",
];

/// Error from [`parse_unit_expr`]: plain data, no spans.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum UnitParseError {
    /// A name that [`lookup`] does not know.
    UnknownUnit(String),
    /// Malformed expression; the message says what was expected.
    Syntax(String),
    /// A dimension exponent left the `i8` range.
    Overflow,
}

impl fmt::Display for UnitParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitParseError::UnknownUnit(n) => write!(f, "unknown unit `{n}`"),
            UnitParseError::Syntax(m) => write!(f, "malformed unit expression: {m}"),
            UnitParseError::Overflow => f.write_str("unit exponent out of range"),
        }
    }
}

impl std::error::Error for UnitParseError {}

/// Parses a unit expression as written in annotations: `ms`, `1/ms`,
/// `nS/mV^2`, `mV*ms`, `(pA/pF)^2`, `1`, `s^-1`. Whitespace is ignored.
///
/// Grammar: `expr := factor (('*' | '/') factor)*`,
/// `factor := atom ('^' '-'? digits)?`, `atom := '1' | name | '(' expr ')'`.
/// `*` and `/` are left associative: `a/b*c` is `(a/b)*c`.
pub fn parse_unit_expr(text: &str) -> Result<Unit, UnitParseError> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut p = UnitParser { chars, pos: 0 };
    let unit = p.expr()?;
    if let Some(c) = p.peek() {
        return Err(UnitParseError::Syntax(format!("unexpected `{c}`")));
    }
    Ok(unit)
}

struct UnitParser {
    chars: Vec<char>,
    pos: usize,
}

impl UnitParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn expr(&mut self) -> Result<Unit, UnitParseError> {
        let mut acc = self.factor()?;
        while let Some(op @ ('*' | '/')) = self.peek() {
            self.pos += 1;
            let rhs = self.factor()?;
            let dim = if op == '*' {
                acc.dimension.checked_mul(rhs.dimension)
            } else {
                acc.dimension.checked_div(rhs.dimension)
            };
            let dim = dim.ok_or(UnitParseError::Overflow)?;
            let scale = if op == '*' {
                acc.scale * rhs.scale
            } else {
                acc.scale / rhs.scale
            };
            acc = Unit::new(dim, scale);
        }
        Ok(acc)
    }

    fn factor(&mut self) -> Result<Unit, UnitParseError> {
        let base = self.atom()?;
        if self.peek() != Some('^') {
            return Ok(base);
        }
        self.pos += 1;
        let neg = self.peek() == Some('-');
        if neg {
            self.pos += 1;
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(UnitParseError::Syntax(
                "expected an exponent after `^`".into(),
            ));
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        let n: i32 = digits.parse().map_err(|_| UnitParseError::Overflow)?;
        let n = if neg { -n } else { n };
        base.powi(n).ok_or(UnitParseError::Overflow)
    }

    fn atom(&mut self) -> Result<Unit, UnitParseError> {
        match self.peek() {
            Some('1') => {
                self.pos += 1;
                Ok(Unit::ONE)
            }
            Some('(') => {
                self.pos += 1;
                let u = self.expr()?;
                if self.peek() != Some(')') {
                    return Err(UnitParseError::Syntax("expected `)`".into()));
                }
                self.pos += 1;
                Ok(u)
            }
            Some(c) if c.is_alphabetic() => {
                let start = self.pos;
                while self.peek().is_some_and(char::is_alphabetic) {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                lookup(&name).ok_or(UnitParseError::UnknownUnit(name))
            }
            Some(c) => Err(UnitParseError::Syntax(format!(
                "expected a unit name, `1` or `(`, found `{c}`"
            ))),
            None => Err(UnitParseError::Syntax(
                "expected a unit name, `1` or `(`".into(),
            )),
        }
    }
}

/// The preferred display units, in priority order: name, dimension, decimal
/// exponent of the scale. The first ten are NEST's conventional units.
///
/// Charge is shown in `pC` (a conventional, readable choice; note that
/// pA·ms would be fC — the scale is computed, so consistency with the other
/// units is not required). `K` and `mol` are appended so that temperature and
/// amount of substance print as themselves instead of e.g. `mM*um^3`.
fn preferred_units() -> [(&'static str, Dimension, i32); 12] {
    [
        ("ms", Dimension::time(), -3),
        ("mV", Dimension::voltage(), -3),
        ("pA", Dimension::current(), -12),
        ("nS", Dimension::conductance(), -9),
        ("pF", Dimension::capacitance(), -12),
        ("Mohm", Dimension::resistance(), 6),
        ("Hz", Dimension::frequency(), 0),
        ("pC", Dimension::charge(), -12),
        ("um", Dimension::length(), -6),
        ("mM", Dimension::concentration(), 0),
        ("K", Dimension::temperature(), 0),
        ("mol", Dimension::amount(), 0),
    ]
}

/// Renders `factors` (name, exponent) as `a^2*b/(c*d^3)`; exponents of 1 are
/// omitted, an empty numerator is written `1`.
fn render_factors(factors: &[(&str, i32)]) -> String {
    fn one(name: &str, e: i32) -> String {
        if e == 1 {
            name.to_string()
        } else {
            format!("{name}^{e}")
        }
    }
    let num: Vec<String> = factors
        .iter()
        .filter(|(_, e)| *e > 0)
        .map(|(n, e)| one(n, *e))
        .collect();
    let den: Vec<String> = factors
        .iter()
        .filter(|(_, e)| *e < 0)
        .map(|(n, e)| one(n, -*e))
        .collect();
    let num_s = if num.is_empty() {
        "1".to_string()
    } else {
        num.join("*")
    };
    match den.len() {
        0 => num_s,
        1 => format!("{num_s}/{}", den[0]),
        _ => format!("{num_s}/({})", den.join("*")),
    }
}

/// The display unit for a dimension and its scale to SI, so callers can
/// convert SI values back (`voltage` → `("mV", 1e-3)`). This is exactly what
/// `Display for Dimension` prints.
///
/// Choice, first match wins:
/// 1. dimensionless → `"1"`;
/// 2. a preferred unit with exactly this dimension (`Hz` for 1/time);
/// 3. one preferred unit to a power `p` in `-6..=6`, smallest `|p|` first,
///    then list order (`mV^2`, `1/ms^2`);
/// 4. two preferred units `a^p * b^q`, `p, q` in `-3..=3` nonzero, with the
///    smallest `|p| + |q|`, ties broken by list order (`mV/ms`, `nS/mV`);
///    so current/capacitance also prints as `mV/ms`;
/// 5. SI base units with scale 1, e.g. `kg*m^2/(s^3*A)`.
pub fn display_unit(dim: Dimension) -> (String, f64) {
    if dim.is_dimensionless() {
        return ("1".to_string(), 1.0);
    }
    let prefs = preferred_units();
    if let Some((name, _, e)) = prefs.iter().find(|(_, d, _)| *d == dim) {
        return (name.to_string(), pow10(*e));
    }
    // Single preferred unit to a power, smallest |p| first, then list order.
    for mag in 1..=6 {
        for &(name, d, e) in &prefs {
            for p in [-mag, mag] {
                if d.powi(p) == Some(dim) {
                    return (render_factors(&[(name, p)]), pow10(e * p));
                }
            }
        }
    }
    // Pairs a^p * b^q.
    let mut best: Option<(i32, String, i32)> = None; // (total, text, exp10)
    for (i, &(na, da, ea)) in prefs.iter().enumerate() {
        for &(nb, db, eb) in &prefs[i + 1..] {
            for p in (-3i32..=3).filter(|p| *p != 0) {
                let Some(ap) = da.powi(p) else { continue };
                for q in (-3i32..=3).filter(|q| *q != 0) {
                    let total = p.abs() + q.abs();
                    if best.as_ref().is_some_and(|(t, _, _)| *t <= total) {
                        continue;
                    }
                    if db.powi(q).and_then(|bq| ap.checked_mul(bq)) == Some(dim) {
                        let text = render_factors(&[(na, p), (nb, q)]);
                        best = Some((total, text, ea * p + eb * q));
                    }
                }
            }
        }
    }
    if let Some((_, text, e)) = best {
        return (text, pow10(e));
    }
    // SI fallback.
    let exps = dim.exponents();
    let factors: Vec<(&str, i32)> = FALLBACK_ORDER
        .iter()
        .map(|&i| (BASE_SYMBOLS[i], i32::from(exps[i])))
        .collect();
    (render_factors(&factors), 1.0)
}

/// Formats a number with at most 12 significant digits (hiding float noise
/// such as `0.30000000000000004`), in the shortest form that round-trips the
/// rounded value; very large or small magnitudes use exponent notation. The runtime
/// formats numbers in its messages the same way, so it owns the function.
pub use snnc_runtime::spec::format_number;

/// Formats a value given in SI in the display unit chosen for its dimension:
/// `0.02 s` → `"20 ms"`, `-0.065 V` → `"-65 mV"`. Dimensionless values are
/// printed as the bare number.
pub fn format_quantity(si_value: f64, dim: Dimension) -> String {
    let (name, scale) = display_unit(dim);
    let num = format_number(si_value / scale);
    if dim.is_dimensionless() {
        num
    } else {
        format!("{num} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
    }

    fn check(name: &str, dim: Dimension, scale: f64) {
        let u = lookup(name).unwrap_or_else(|| panic!("`{name}` not found"));
        assert_eq!(u.dimension, dim, "dimension of `{name}`");
        assert!(close(u.scale, scale), "scale of `{name}`: {}", u.scale);
    }

    #[test]
    fn lookup_common_names() {
        let t = Dimension::time();
        let v = Dimension::voltage();
        let i = Dimension::current();
        let g = Dimension::conductance();
        let c = Dimension::capacitance();
        let r = Dimension::resistance();
        check("s", t, 1.0);
        check("ms", t, 1e-3);
        check("us", t, 1e-6);
        check("ns", t, 1e-9);
        check("V", v, 1.0);
        check("mV", v, 1e-3);
        check("uV", v, 1e-6);
        check("A", i, 1.0);
        check("pA", i, 1e-12);
        check("nA", i, 1e-9);
        check("uA", i, 1e-6);
        check("S", g, 1.0);
        check("nS", g, 1e-9);
        check("uS", g, 1e-6);
        check("µS", g, 1e-6);
        check("μS", g, 1e-6);
        check("mS", g, 1e-3);
        check("F", c, 1.0);
        check("pF", c, 1e-12);
        check("nF", c, 1e-9);
        check("uF", c, 1e-6);
        check("ohm", r, 1.0);
        check("Ω", r, 1.0);
        check("Ω", r, 1.0);
        check("kohm", r, 1e3);
        check("Mohm", r, 1e6);
        check("MOhm", r, 1e6);
        check("MΩ", r, 1e6);
        check("GOhm", r, 1e9);
        check("Hz", Dimension::frequency(), 1.0);
        check("kHz", Dimension::frequency(), 1e3);
        check("m", Dimension::length(), 1.0);
        check("um", Dimension::length(), 1e-6);
        check("µm", Dimension::length(), 1e-6);
        check("mm", Dimension::length(), 1e-3);
        check("cm", Dimension::length(), 1e-2);
        check("mol", Dimension::amount(), 1.0);
        check("mmol", Dimension::amount(), 1e-3);
        check("M", Dimension::concentration(), 1e3);
        check("mM", Dimension::concentration(), 1.0);
        check("uM", Dimension::concentration(), 1e-3);
        check("nM", Dimension::concentration(), 1e-6);
        check("K", Dimension::temperature(), 1.0);
        check("C", Dimension::charge(), 1.0);
        check("pC", Dimension::charge(), 1e-12);
        check("J", Dimension::energy(), 1.0);
        check("W", Dimension::power(), 1.0);
        check("g", Dimension::mass(), 1e-3);
        check("kg", Dimension::mass(), 1.0);
        check("mg", Dimension::mass(), 1e-6);
        check("fC", Dimension::charge(), 1e-15);
        check("TW", Dimension::power(), 1e12);
    }

    #[test]
    fn prefixed_scales_are_exact_literals() {
        assert_eq!(lookup("mV").unwrap().scale, 1e-3);
        assert_eq!(lookup("nS").unwrap().scale, 1e-9);
        assert_eq!(lookup("kg").unwrap().scale, 1.0);
        assert_eq!(lookup("mM").unwrap().scale, 1.0);
        assert_eq!(lookup("uM").unwrap().scale, 1e-3);
    }

    #[test]
    fn ambiguity_rules() {
        // Base names win over prefix readings.
        assert_eq!(lookup("m").unwrap().dimension, Dimension::length());
        assert_eq!(lookup("mol").unwrap().dimension, Dimension::amount());
        assert_eq!(lookup("M").unwrap().dimension, Dimension::concentration());
        assert_eq!(lookup("K").unwrap().dimension, Dimension::temperature());
        assert_eq!(
            lookup("cd").unwrap().dimension,
            Dimension::new([0, 0, 0, 0, 0, 0, 1])
        );
        // Case matters.
        assert_eq!(lookup("ms").unwrap().dimension, Dimension::time());
        assert_eq!(lookup("mS").unwrap().dimension, Dimension::conductance());
        assert_eq!(lookup("Ms").unwrap(), Unit::new(Dimension::time(), 1e6));
        assert_eq!(lookup("mm").unwrap().scale, 1e-3);
        assert_eq!(lookup("Mm").unwrap().scale, 1e6);
        // Megaohm in every spelling, milliohm with lower-case m.
        for n in ["Mohm", "MOhm", "MΩ", "MΩ"] {
            assert_eq!(lookup(n).unwrap(), Unit::new(Dimension::resistance(), 1e6));
        }
        assert_eq!(lookup("mohm").unwrap().scale, 1e-3);
        // Millimolar is 1 mol/m^3.
        assert_eq!(
            lookup("mM").unwrap(),
            Unit::new(Dimension::concentration(), 1.0)
        );
        // Not units.
        // (`K` is kelvin, not a prefix: "KM" is nothing.)
        for n in [
            "", "k", "m ", "1", "min", "h", "L", "kk", "mms", "MS_", "hz", "HZ", "sec", "KM",
        ] {
            assert!(lookup(n).is_none(), "`{n}` should not resolve");
        }
    }

    #[test]
    fn known_names_all_resolve() {
        let names = known_unit_names();
        assert!(names.len() > 50);
        for n in &names {
            assert!(lookup(n).is_some(), "known name `{n}` does not resolve");
        }
        for n in ["ms", "mV", "nS", "pA", "pF", "Mohm", "Hz", "um", "mM", "K"] {
            assert!(names.contains(&n), "`{n}` missing");
        }
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicates in known names");
    }

    #[test]
    fn dimension_arithmetic() {
        let v = Dimension::voltage();
        let i = Dimension::current();
        let r = Dimension::resistance();
        let t = Dimension::time();
        assert_eq!(v / i, r);
        assert_eq!(i * r, v);
        assert_eq!(Dimension::DIMENSIONLESS / r, Dimension::conductance());
        assert_eq!(r.recip(), Dimension::conductance());
        assert_eq!(Dimension::capacitance() * v, Dimension::charge());
        assert_eq!(i * t, Dimension::charge());
        assert_eq!(r * Dimension::capacitance(), t);
        assert_eq!(t.recip(), Dimension::frequency());
        assert_eq!(Dimension::conductance() * v, i);
        assert_eq!(v.mul(i), Dimension::power());
        assert_eq!(v.div(v), Dimension::DIMENSIONLESS);
        assert!((v / v).is_dimensionless());
        assert!(!v.is_dimensionless());
        assert_eq!(Dimension::default(), Dimension::DIMENSIONLESS);
        assert_eq!(v.exponents(), [2, 1, -3, -1, 0, 0, 0]);
        assert_eq!(v.powi(2), Some(v * v));
        assert_eq!(v.powi(0), Some(Dimension::DIMENSIONLESS));
        assert_eq!(t.powi(-2), Some((t * t).recip()));
        assert_eq!(v.powi(100), None);
        assert_eq!(t.powi(127), Some(Dimension::new([0, 0, 127, 0, 0, 0, 0])));
        assert_eq!(t.powi(-128), Some(Dimension::new([0, 0, -128, 0, 0, 0, 0])));
        assert_eq!(t.powi(i32::MAX), None);
        let big = Dimension::new([0, 0, 100, 0, 0, 0, 0]);
        assert_eq!(big.checked_mul(big), None);
        assert_eq!(big.checked_div(big), Some(Dimension::DIMENSIONLESS));
        assert_eq!(big.mul(big).exponents()[2], 127);
        assert_eq!(t.checked_mul(t), t.powi(2));
    }

    #[test]
    fn dimension_root() {
        let v = Dimension::voltage();
        assert_eq!((v * v).root(2), Some(v));
        assert_eq!(v.root(2), None);
        assert_eq!(v.root(1), Some(v));
        assert_eq!(v.root(0), None);
        assert_eq!(v.powi(3).unwrap().root(3), Some(v));
        assert_eq!((v * v).root(-2), Some(v.recip()));
        assert_eq!(
            Dimension::DIMENSIONLESS.root(5),
            Some(Dimension::DIMENSIONLESS)
        );
        let area = Dimension::length().powi(2).unwrap();
        assert_eq!(area.root(2), Some(Dimension::length()));
        assert_eq!(area.root(3), None);
    }

    #[test]
    fn unit_arithmetic() {
        let mv = lookup("mV").unwrap();
        let ms = lookup("ms").unwrap();
        let ns = lookup("nS").unwrap();
        let rate = mv.div(ms);
        assert_eq!(rate.dimension, Dimension::voltage() / Dimension::time());
        assert!(close(rate.scale, 1.0));
        let a = ns / mv.powi(2).unwrap();
        assert_eq!(
            a.dimension,
            Dimension::conductance() / (Dimension::voltage() * Dimension::voltage())
        );
        assert!(close(a.scale, 1e-3));
        assert_eq!(Unit::ONE * mv, mv);
        assert!(close((ns * mv).scale, 1e-12));
        assert_eq!((ns * mv).dimension, Dimension::current());
        assert!(close(ms.powi(-1).unwrap().scale, 1e3));
        assert_eq!(ms.powi(-1).unwrap().dimension, Dimension::frequency());
        assert_eq!(ms.powi(1000), None);
        let sq = mv.powi(2).unwrap().root(2).unwrap();
        assert_eq!(sq.dimension, mv.dimension);
        assert!(close(sq.scale, 1e-3));
        assert_eq!(mv.root(2), None);
        assert!(close(mv.to_si(-65.0), -0.065));
        assert!(close(mv.from_si(-0.065), -65.0));
        assert_eq!(Unit::si(Dimension::time()).scale, 1.0);
    }

    #[test]
    fn parse_expressions() {
        let u = parse_unit_expr("nS/mV^2").unwrap();
        assert_eq!(
            u.dimension,
            Dimension::conductance() / Dimension::voltage().powi(2).unwrap()
        );
        assert!(close(u.scale, 1e-3));
        let k = parse_unit_expr("1/ms").unwrap();
        assert_eq!(k.dimension, Dimension::frequency());
        assert!(close(k.scale, 1e3));
        assert_eq!(parse_unit_expr("1").unwrap(), Unit::ONE);
        assert_eq!(parse_unit_expr(" ms ").unwrap(), lookup("ms").unwrap());
        let s = parse_unit_expr("s^-1").unwrap();
        assert_eq!(s.dimension, Dimension::frequency());
        let p = parse_unit_expr("(pA/pF)^2").unwrap();
        assert_eq!(
            p.dimension,
            (Dimension::voltage() / Dimension::time()).powi(2).unwrap()
        );
        assert!(close(p.scale, 1.0));
        let left = parse_unit_expr("mV/ms*ms").unwrap();
        assert_eq!(left.dimension, Dimension::voltage());
        assert!(close(left.scale, 1e-3));
        assert_eq!(
            parse_unit_expr("µS*MΩ").unwrap().dimension,
            Dimension::DIMENSIONLESS
        );
        assert_eq!(
            parse_unit_expr("foo"),
            Err(UnitParseError::UnknownUnit("foo".into()))
        );
        assert!(matches!(
            parse_unit_expr("mV/"),
            Err(UnitParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_unit_expr("mV^"),
            Err(UnitParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_unit_expr("(mV"),
            Err(UnitParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_unit_expr("mV)"),
            Err(UnitParseError::Syntax(_))
        ));
        assert!(matches!(
            parse_unit_expr(""),
            Err(UnitParseError::Syntax(_))
        ));
        assert_eq!(parse_unit_expr("mV^200"), Err(UnitParseError::Overflow));
        assert_eq!(
            parse_unit_expr("mV^99999999999"),
            Err(UnitParseError::Overflow)
        );
        assert_eq!(
            UnitParseError::UnknownUnit("x".into()).to_string(),
            "unknown unit `x`"
        );
    }

    fn shows(dim: Dimension, text: &str, scale: f64) {
        let (t, s) = display_unit(dim);
        assert_eq!(t, text, "display of {:?}", dim.exponents());
        assert!(close(s, scale), "scale of `{t}`: {s}, expected {scale}");
        assert_eq!(dim.to_string(), text);
        // The display unit must round-trip through the parser.
        let parsed = parse_unit_expr(&t).unwrap();
        assert_eq!(parsed.dimension, dim, "`{t}` parses to another dimension");
        assert!(close(parsed.scale, s), "`{t}` parses to another scale");
    }

    #[test]
    fn display_simple_dimensions() {
        shows(Dimension::DIMENSIONLESS, "1", 1.0);
        shows(Dimension::time(), "ms", 1e-3);
        shows(Dimension::voltage(), "mV", 1e-3);
        shows(Dimension::current(), "pA", 1e-12);
        shows(Dimension::conductance(), "nS", 1e-9);
        shows(Dimension::capacitance(), "pF", 1e-12);
        shows(Dimension::resistance(), "Mohm", 1e6);
        shows(Dimension::frequency(), "Hz", 1.0);
        shows(Dimension::charge(), "pC", 1e-12);
        shows(Dimension::length(), "um", 1e-6);
        shows(Dimension::concentration(), "mM", 1.0);
        shows(Dimension::temperature(), "K", 1.0);
        shows(Dimension::amount(), "mol", 1.0);
    }

    #[test]
    fn display_composite_dimensions() {
        let t = Dimension::time();
        let v = Dimension::voltage();
        let i = Dimension::current();
        let g = Dimension::conductance();
        shows(v / t, "mV/ms", 1.0);
        // current/capacitance is voltage/time: same deterministic rendering.
        shows(i / Dimension::capacitance(), "mV/ms", 1.0);
        shows(i / t, "pA/ms", 1e-9);
        shows(g / v, "nS/mV", 1e-6);
        shows(g / (v * v), "nS/mV^2", 1e-3);
        shows(v * v, "mV^2", 1e-6);
        shows(t * t, "ms^2", 1e-6);
        shows((t * t).recip(), "1/ms^2", 1e6);
        shows(v.recip(), "1/mV", 1e3);
        shows(g / t, "nS/ms", 1e-6);
        shows(v * t, "ms*mV", 1e-6);
        shows(i * i, "pA^2", 1e-24);
        shows(Dimension::length().powi(2).unwrap(), "um^2", 1e-12);
        shows(Dimension::power(), "mV*pA", 1e-15);
        shows(v / (t * t), "mV/ms^2", 1e3);
        shows(Dimension::concentration() / t, "mM/ms", 1e3);
    }

    #[test]
    fn display_fallback() {
        shows(Dimension::mass(), "kg", 1.0);
        let odd = Dimension::new([2, 1, -3, 0, 0, 0, 1]);
        shows(odd, "kg*m^2*cd/s^3", 1.0);
        let volt_per_kelvin_mol = Dimension::new([2, 1, -3, -1, -1, -1, 0]);
        let (t, s) = display_unit(volt_per_kelvin_mol);
        assert_eq!(t, "kg*m^2/(s^3*A*K*mol)");
        assert_eq!(s, 1.0);
        shows(Dimension::new([0, 0, 0, 0, 0, 0, -2]), "1/cd^2", 1.0);
    }

    #[test]
    fn display_is_deterministic() {
        let d = Dimension::current() / Dimension::capacitance();
        let first = display_unit(d);
        for _ in 0..10 {
            assert_eq!(display_unit(d), first);
        }
    }

    #[test]
    fn format_quantities() {
        assert_eq!(format_quantity(0.02, Dimension::time()), "20 ms");
        assert_eq!(format_quantity(-0.065, Dimension::voltage()), "-65 mV");
        assert_eq!(format_quantity(0.1e-3, Dimension::time()), "0.1 ms");
        assert_eq!(format_quantity(1.62e-3, Dimension::voltage()), "1.62 mV");
        assert_eq!(format_quantity(0.5e-9, Dimension::conductance()), "0.5 nS");
        assert_eq!(format_quantity(10e6, Dimension::resistance()), "10 Mohm");
        assert_eq!(format_quantity(200e-12, Dimension::capacitance()), "200 pF");
        assert_eq!(format_quantity(15.0, Dimension::frequency()), "15 Hz");
        assert_eq!(format_quantity(376e-12, Dimension::current()), "376 pA");
        assert_eq!(format_quantity(2.5e-6, Dimension::length()), "2.5 um");
        assert_eq!(format_quantity(0.5, Dimension::DIMENSIONLESS), "0.5");
        assert_eq!(format_quantity(0.0, Dimension::voltage()), "0 mV");
        assert_eq!(format_quantity(-0.0, Dimension::voltage()), "0 mV");
        let v = Dimension::voltage();
        let t = Dimension::time();
        assert_eq!(format_quantity(0.1 + 0.2, v / t), "0.3 mV/ms");
        assert_eq!(format_quantity(1e-3 * 0.1 / 1e-3 * 1e-3, t), "0.1 ms");
        assert_eq!(format_quantity(1e30, Dimension::DIMENSIONLESS), "1e30");
        assert_eq!(format_quantity(1.5e-20, t), "1.5e-17 ms");
        assert_eq!(format_quantity(f64::INFINITY, t), "inf ms");
        assert_eq!(format_quantity(f64::NAN, Dimension::DIMENSIONLESS), "NaN");
        // Round trip: lookup scale in, display scale out.
        let si = lookup("uS").unwrap().to_si(3.0);
        assert_eq!(format_quantity(si, Dimension::conductance()), "3000 nS");
    }

    #[test]
    fn number_formatting() {
        assert_eq!(format_number(20.000000000000004), "20");
        assert_eq!(format_number(0.30000000000000004), "0.3");
        assert_eq!(format_number(-65.0), "-65");
        assert_eq!(format_number(1.0 / 3.0), "0.333333333333");
        assert_eq!(format_number(123456789.0), "123456789");
        assert_eq!(format_number(1e9), "1e9");
        assert_eq!(format_number(1e-7), "1e-7");
        assert_eq!(format_number(1e-6), "0.000001");
    }
}
