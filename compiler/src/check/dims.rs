//! The checker's notion of a type: a physical dimension, possibly generic over a synapse's
//! target port, a boolean, or an error that has already been reported.
//!
//! Owns the conversion of unit annotations (`mV/ms`, `[g]`) into dimensions and their display
//! in messages. The SI table itself is `crate::units`; this module adds only what the language
//! needs on top of it: the generic port dimension and a poisoned type that silences follow-on
//! errors.

use crate::ast::{UnitExpr, UnitExprKind};
use crate::diagnostics::{did_you_mean, Diagnostic};
use crate::units::{self, Dimension};
use std::fmt;

/// A dimension, times the generic target-port dimension raised to `port`.
///
/// A synapse declared with `target g` (no unit) can drive a voltage in one projection and a
/// conductance in another; while checking its body, `[g]` is an unknown dimension of its own,
/// and a projection substitutes the bound variable's dimension for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Dim {
    pub si: Dimension,
    pub port: i8,
}

impl Dim {
    pub const ONE: Dim = Dim {
        si: Dimension::DIMENSIONLESS,
        port: 0,
    };

    pub fn si(si: Dimension) -> Dim {
        Dim { si, port: 0 }
    }

    pub fn port() -> Dim {
        Dim {
            si: Dimension::DIMENSIONLESS,
            port: 1,
        }
    }

    pub fn time() -> Dim {
        Dim::si(Dimension::time())
    }

    pub fn is_dimensionless(self) -> bool {
        self.port == 0 && self.si.is_dimensionless()
    }

    pub fn times(self, other: Dim) -> Dim {
        Dim {
            si: self.si * other.si,
            port: self.port.saturating_add(other.port),
        }
    }

    pub fn per(self, other: Dim) -> Dim {
        Dim {
            si: self.si / other.si,
            port: self.port.saturating_sub(other.port),
        }
    }

    pub fn powi(self, n: i32) -> Option<Dim> {
        let port = i8::try_from(i32::from(self.port).checked_mul(n)?).ok()?;
        Some(Dim {
            si: self.si.powi(n)?,
            port,
        })
    }

    pub fn root(self, n: i32) -> Option<Dim> {
        if i32::from(self.port) % n != 0 {
            return None;
        }
        Some(Dim {
            si: self.si.root(n)?,
            port: (i32::from(self.port) / n) as i8,
        })
    }

    /// Replaces the generic port dimension by a concrete one.
    pub fn bind(self, port: Dimension) -> Dimension {
        let bound = port
            .powi(i32::from(self.port))
            .unwrap_or(Dimension::DIMENSIONLESS);
        self.si * bound
    }
}

impl Dim {
    /// "in mV", or "dimensionless": how messages say what unit something has.
    pub fn in_words(self) -> String {
        if self.is_dimensionless() {
            "dimensionless".to_string()
        } else {
            format!("in {self}")
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = match self.port {
            0 if self.si.is_dimensionless() => return f.write_str("dimensionless"),
            0 => return write!(f, "{}", self.si),
            1 => "[target]".to_string(),
            n => format!("[target]^{n}"),
        };
        if self.si.is_dimensionless() {
            f.write_str(&port)
        } else {
            write!(f, "{}*{port}", self.si)
        }
    }
}

/// The type of an expression.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    Quantity(Dim),
    Bool,
    Str,
    /// Already reported; anything goes, so one mistake gives one message.
    Error,
}

impl Ty {
    pub fn one() -> Ty {
        Ty::Quantity(Dim::ONE)
    }

    pub fn describe(self) -> String {
        match self {
            Ty::Quantity(dim) if dim.is_dimensionless() => "a dimensionless number".to_string(),
            Ty::Quantity(dim) => format!("a quantity in {dim}"),
            Ty::Bool => "a boolean".to_string(),
            Ty::Str => "a string".to_string(),
            Ty::Error => "an erroneous value".to_string(),
        }
    }
}

/// The dimension a unit annotation denotes. `port` is the dimension `[name]` refers to in this
/// model (`None` where there is no target port).
pub fn unit_dim(
    unit: &UnitExpr,
    port: Option<(&str, Dim)>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Dim> {
    match &unit.kind {
        UnitExprKind::One => Some(Dim::ONE),
        UnitExprKind::Name(name) => match units::lookup(name) {
            Some(u) => Some(Dim::si(u.dimension)),
            None => {
                diagnostics.push(unknown_unit(name, unit));
                None
            }
        },
        UnitExprKind::UnitOf(ident) => match port {
            Some((port_name, dim)) if port_name == ident.name => Some(dim),
            // Resolution already reported a `[x]` that does not name the port.
            _ => None,
        },
        UnitExprKind::Mul(a, b) => {
            Some(unit_dim(a, port, diagnostics)?.times(unit_dim(b, port, diagnostics)?))
        }
        UnitExprKind::Div(a, b) => {
            let a = unit_dim(a, port, diagnostics);
            let b = unit_dim(b, port, diagnostics);
            Some(a?.per(b?))
        }
        UnitExprKind::Pow(a, n) => {
            let base = unit_dim(a, port, diagnostics)?;
            match base.powi(*n) {
                Some(d) => Some(d),
                None => {
                    diagnostics.push(
                        Diagnostic::error("a unit exponent is out of range")
                            .primary(unit.span, "this power cannot be represented")
                            .note(
                                "the exponent of each SI base unit must lie between -127 and 127",
                            ),
                    );
                    None
                }
            }
        }
        UnitExprKind::Error => None,
    }
}

/// The SI scale of a unit annotation (ignoring generic ports), for lowering constants.
pub fn unit_scale(unit: &UnitExpr) -> f64 {
    match &unit.kind {
        UnitExprKind::One | UnitExprKind::UnitOf(_) | UnitExprKind::Error => 1.0,
        UnitExprKind::Name(name) => units::lookup(name).map_or(1.0, |u| u.scale),
        UnitExprKind::Mul(a, b) => unit_scale(a) * unit_scale(b),
        UnitExprKind::Div(a, b) => unit_scale(a) / unit_scale(b),
        UnitExprKind::Pow(a, n) => unit_scale(a).powi(*n),
    }
}

pub fn unknown_unit(name: &str, unit: &UnitExpr) -> Diagnostic {
    let mut d =
        Diagnostic::error(format!("unknown unit `{name}`")).primary(unit.span, "not a unit");
    let names = units::known_unit_names();
    // Case is the commonest slip (`mv`, `MS`), and edit distance alone would suggest `m`.
    let same_letters = names.iter().find(|n| n.eq_ignore_ascii_case(name));
    if let Some(best) = same_letters {
        d = d.help(format!(
            "did you mean `{best}`? unit names are case sensitive"
        ));
    } else if let Some(best) = did_you_mean(name, names.iter().copied()) {
        d = d.help(format!("did you mean `{best}`?"));
    } else {
        d = d.note("units are SI units with an optional prefix, such as ms, mV, nS, pA, pF, Hz, Mohm, um, mM");
    }
    d
}
