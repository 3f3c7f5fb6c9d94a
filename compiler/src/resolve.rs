//! Name resolution: which file an import means, which model a name means, and which
//! variable each name inside a model or network refers to.
//!
//! This module owns the module graph (loading imported files through a [`SourceLoader`] the
//! driver provides, so no IO happens here, and embedded standard-library sources) and the
//! symbol tables of every model and network. It reports unknown and duplicate names, import
//! cycles, misplaced declarations, handlers that write what they may not, and initialisers
//! that use a variable declared after them. It does not look at units or types: that is
//! `check`, which runs on what this module produced.

use crate::ast::{self, ImportPath, Item, Member, ModelKind, NetItem, Placement, VarKind};
use crate::diagnostics::{did_you_mean, Diagnostic};
use crate::parser;
use crate::source::{FileId, SourceMap, Span};
use crate::stdlib;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Loads files named by `import "path"`; implemented by the driver (file system) and tests.
pub trait SourceLoader {
    /// Resolves `path` relative to the file named `from`; returns a canonical key (equal keys
    /// mean the same file), the name to show users, and the text.
    fn load(&self, from: &str, path: &str) -> Result<LoadedSource, String>;
}

#[derive(Debug, Clone)]
pub struct LoadedSource {
    pub key: String,
    pub display_name: String,
    pub text: String,
}

/// One parsed file and the modules it imports.
#[derive(Debug, Clone)]
pub struct Module {
    pub file: FileId,
    pub key: String,
    pub ast: ast::File,
    pub imports: Vec<usize>,
}

/// Every module reachable from the root; `modules[0]` is the root.
#[derive(Debug, Clone, Default)]
pub struct ModuleGraph {
    pub modules: Vec<Module>,
}

/// Parses the root file and, recursively, everything it imports.
pub fn load_modules(
    sources: &mut SourceMap,
    root: FileId,
    root_key: &str,
    loader: &dyn SourceLoader,
) -> (ModuleGraph, Vec<Diagnostic>) {
    let mut graph = ModuleGraph::default();
    let mut diagnostics = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let (ast, mut errors) = parser::parse_file(root, sources.text(root));
    diagnostics.append(&mut errors);
    graph.modules.push(Module {
        file: root,
        key: root_key.to_string(),
        ast,
        imports: Vec::new(),
    });
    by_key.insert(root_key.to_string(), 0);

    let mut next = 0;
    while next < graph.modules.len() {
        let imports: Vec<ast::Import> = graph.modules[next]
            .ast
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Import(import) => Some(import.clone()),
                _ => None,
            })
            .collect();
        let from = sources.name(graph.modules[next].file).to_string();
        for import in imports {
            let loaded = match &import.path {
                ImportPath::Module(path) => load_stdlib(path, &import),
                ImportPath::File { path, span } => loader.load(&from, path).map_err(|reason| {
                    Diagnostic::error(format!("cannot import \"{path}\"")).primary(*span, reason)
                }),
            };
            let loaded = match loaded {
                Ok(loaded) => loaded,
                Err(diagnostic) => {
                    diagnostics.push(diagnostic);
                    continue;
                }
            };
            let index = match by_key.get(&loaded.key) {
                Some(&index) => index,
                None => {
                    let file = sources.add(loaded.display_name, loaded.text);
                    let (ast, mut errors) = parser::parse_file(file, sources.text(file));
                    diagnostics.append(&mut errors);
                    graph.modules.push(Module {
                        file,
                        key: loaded.key.clone(),
                        ast,
                        imports: Vec::new(),
                    });
                    by_key.insert(loaded.key, graph.modules.len() - 1);
                    graph.modules.len() - 1
                }
            };
            if graph.modules[next].imports.contains(&index) {
                diagnostics.push(
                    Diagnostic::warning("this file is imported twice")
                        .primary(import.span, "imported again here"),
                );
            } else {
                graph.modules[next].imports.push(index);
            }
        }
        next += 1;
    }
    report_cycles(&graph, sources, &mut diagnostics);
    (graph, diagnostics)
}

fn load_stdlib(path: &[ast::Ident], import: &ast::Import) -> Result<LoadedSource, Diagnostic> {
    let dotted: Vec<&str> = path.iter().map(|p| p.name.as_str()).collect();
    let span = path
        .first()
        .map(|first| first.span.to(path[path.len() - 1].span))
        .unwrap_or(import.span);
    if dotted.first() != Some(&"stdlib") {
        return Err(Diagnostic::error(format!(
            "unknown module `{}`",
            dotted.join(".")
        ))
        .primary(span, "not a standard-library module")
        .help("import the standard library as `stdlib.<group>.<module>`, or a file of your own as `import \"path/to/file.snn\"`"));
    }
    let module = dotted[1..].join(".");
    match stdlib::source(&module) {
        Some(text) => Ok(LoadedSource {
            key: format!("stdlib:{module}"),
            display_name: format!("<stdlib>/{}.snn", module.replace('.', "/")),
            text: text.to_string(),
        }),
        None => {
            let mut diagnostic = Diagnostic::error(format!(
                "the standard library has no module `{}`",
                dotted.join(".")
            ))
            .primary(span, "unknown module");
            let candidates: Vec<String> =
                stdlib::modules().map(|m| format!("stdlib.{m}")).collect();
            let joined = dotted.join(".");
            if let Some(best) = did_you_mean(&joined, candidates.iter().map(String::as_str)) {
                diagnostic = diagnostic.help(format!("did you mean `{best}`?"));
            } else {
                diagnostic =
                    diagnostic.note(format!("available modules: {}", candidates.join(", ")));
            }
            Err(diagnostic)
        }
    }
}

fn report_cycles(graph: &ModuleGraph, sources: &SourceMap, diagnostics: &mut Vec<Diagnostic>) {
    // Depth-first search from the root; an edge back to a module on the stack closes a cycle.
    fn visit(
        index: usize,
        graph: &ModuleGraph,
        stack: &mut Vec<usize>,
        done: &mut HashSet<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        stack.push(index);
        for &next in &graph.modules[index].imports {
            if let Some(position) = stack.iter().position(|&m| m == next) {
                let mut cycle = stack[position..].to_vec();
                cycle.push(next);
                cycles.push(cycle);
            } else if !done.contains(&next) {
                visit(next, graph, stack, done, cycles);
            }
        }
        stack.pop();
        done.insert(index);
    }
    let mut cycles = Vec::new();
    visit(0, graph, &mut Vec::new(), &mut HashSet::new(), &mut cycles);
    for cycle in cycles {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&m| sources.name(graph.modules[m].file))
            .collect();
        let from = cycle[cycle.len() - 2];
        let to = cycle[cycle.len() - 1];
        let span = graph.modules[from]
            .ast
            .items
            .iter()
            .find_map(|item| match item {
                Item::Import(import) if import_targets(graph, from, import) == Some(to) => {
                    Some(import.span)
                }
                _ => None,
            })
            .unwrap_or_default();
        if from == to {
            diagnostics.push(
                Diagnostic::error("a file imports itself")
                    .primary(span, "this import names the file it is in")
                    .help("remove this import: a file always sees its own models"),
            );
            continue;
        }
        diagnostics.push(
            Diagnostic::error("import cycle")
                .primary(span, "this import closes a cycle")
                .note(format!("the cycle: {}", names.join(" → ")))
                .help("move the models both files need into a third file that both import"),
        );
    }
}

fn import_targets(graph: &ModuleGraph, from: usize, import: &ast::Import) -> Option<usize> {
    let position = graph.modules[from]
        .ast
        .items
        .iter()
        .filter(|item| matches!(item, Item::Import(_)))
        .position(|item| matches!(item, Item::Import(i) if i == import))?;
    graph.modules[from].imports.get(position).copied()
}

// ------------------------------------------------------------------ symbol tables

/// What a name inside a model refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum Symbol {
    Var {
        kind: VarKind,
        placement: Placement,
        /// Position among the model's declarations, for "used before declared".
        order: usize,
    },
    Let,
    Target,
}

#[derive(Clone, Debug)]
pub struct SymbolInfo {
    pub symbol: Symbol,
    pub span: Span,
}

/// A model with its declarations indexed by name.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub module: usize,
    pub ast: ast::Model,
    pub symbols: BTreeMap<String, SymbolInfo>,
    pub vars: Vec<ast::VarDecl>,
    pub lets: Vec<(ast::Ident, ast::Expr)>,
    pub target: Option<(ast::Ident, Option<ast::UnitExpr>)>,
    /// The continuous output of a kernel synapse (`target I: pA = expr`): see
    /// `lower/synapse_kernels.rs`.
    pub output: Option<ast::Expr>,
    pub refractory: Option<Span>,
}

impl ModelInfo {
    pub fn name(&self) -> &str {
        &self.ast.name.name
    }

    pub fn var(&self, name: &str) -> Option<&ast::VarDecl> {
        self.vars.iter().find(|v| v.name.name == name)
    }

    pub fn let_value(&self, name: &str) -> Option<&ast::Expr> {
        self.lets
            .iter()
            .find(|(n, _)| n.name == name)
            .map(|(_, e)| e)
    }
}

/// The result of resolution: every model, and for each module which names it sees.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub models: Vec<ModelInfo>,
    /// Per module: model name → index into `models`.
    pub scopes: Vec<BTreeMap<String, usize>>,
    /// Networks of the root module.
    pub networks: Vec<ast::Network>,
}

impl Resolved {
    pub fn lookup_model(&self, module: usize, name: &str) -> Option<&ModelInfo> {
        self.scopes[module].get(name).map(|&i| &self.models[i])
    }
}

/// Names every expression may use besides the model's own variables.
pub const BUILTIN_CONSTANTS: &[&str] = &["t", "dt", "pi"];

/// Functions every expression may call.
pub const FUNCTIONS: &[&str] = &[
    "exp",
    "log",
    "log10",
    "sqrt",
    "abs",
    "sign",
    "min",
    "max",
    "clip",
    "pow",
    "sin",
    "cos",
    "tan",
    "tanh",
    "floor",
    "ceil",
    "rand",
    "randn",
    "uniform",
    "normal",
    "exponential",
    "poisson",
    "pulse",
];

/// Functions that draw random numbers; checked separately because ODEs may not use them.
pub const RANDOM_FUNCTIONS: &[&str] = &[
    "rand",
    "randn",
    "uniform",
    "normal",
    "exponential",
    "poisson",
];

pub const METHODS: &[&str] = &["exact", "exp_euler", "euler", "rk2", "rk4", "rkf45"];

/// Checks `method = name(...)`, in a model or after a population: a known method, with the
/// arguments it takes.
fn check_method(choice: &ast::MethodChoice, diagnostics: &mut Vec<Diagnostic>) {
    let name = &choice.method;
    check_method_args(name, &choice.args, diagnostics);
    if !METHODS.contains(&name.name.as_str()) {
        let mut d = Diagnostic::error(format!("unknown integration method `{}`", name.name))
            .primary(name.span, "not a method");
        d = match did_you_mean(&name.name, METHODS.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.note(format!("the methods are: {}", METHODS.join(", "))),
        };
        diagnostics.push(d);
    }
}

/// Checks the arguments of `method = name(...)`: only `rkf45` takes any, each named once from
/// [`RKF45_ARGS`], each a non-negative number literal, and not all of them zero.
fn check_method_args(name: &ast::Ident, args: &[ast::Arg], diagnostics: &mut Vec<Diagnostic>) {
    if args.is_empty() || !METHODS.contains(&name.name.as_str()) {
        return;
    }
    if name.name != "rkf45" {
        let span = args[0].name.as_ref().map_or(args[0].value.span, |n| n.span);
        diagnostics.push(
            Diagnostic::error(format!("method `{}` takes no arguments", name.name))
                .primary(span, "unexpected argument")
                .note("only `rkf45` takes arguments: its error tolerances"),
        );
        return;
    }
    let mut seen: Vec<(&str, Span)> = Vec::new();
    let mut all_zero = true;
    for arg in args {
        let Some(arg_name) = &arg.name else {
            diagnostics.push(
                Diagnostic::error("the arguments of `rkf45` are named")
                    .primary(arg.value.span, "name this argument")
                    .help(format!(
                        "write one of {}, as in `rkf45(atol = 1e-6)`",
                        RKF45_ARGS.join(", ")
                    )),
            );
            continue;
        };
        if !RKF45_ARGS.contains(&arg_name.name.as_str()) {
            let mut d = Diagnostic::error(format!("`rkf45` has no argument `{}`", arg_name.name))
                .primary(arg_name.span, "unknown argument");
            d = match did_you_mean(&arg_name.name, RKF45_ARGS.iter().copied()) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d,
            };
            diagnostics.push(d.note(
                "its arguments are: atol (absolute error per sub-step, in each state's declared \
                 unit), rtol (relative to the state's value), rtol_dydt (relative to the \
                 state's change over the sub-step, h·|dy/dt|)",
            ));
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == arg_name.name) {
            diagnostics.push(
                Diagnostic::error(format!("`{}` is given twice", arg_name.name))
                    .primary(arg_name.span, "again here")
                    .secondary(*first, "first here"),
            );
            continue;
        }
        seen.push((&arg_name.name, arg_name.span));
        match arg.value.kind {
            ast::ExprKind::Number(v) if v.is_finite() && v >= 0.0 => all_zero &= v == 0.0,
            _ => {
                // Reported here, so not again as a missing tolerance.
                all_zero = false;
                diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` must be a non-negative number without a unit",
                    arg_name.name
                ))
                .primary(arg.value.span, "not a non-negative number")
                .note("tolerances are dimensionless: each applies to a state in its declared unit"),
                );
            }
        }
    }
    // Tolerances not given keep their defaults (atol = 1e-6, the others 0), so only given
    // tolerances that are all zero and include atol leave no tolerance at all.
    if all_zero && seen.iter().any(|(n, _)| *n == "atol") {
        diagnostics.push(
            Diagnostic::error("`rkf45` needs a positive tolerance")
                .primary(name.span, "every tolerance is zero")
                .note("with all tolerances zero no sub-step could ever be accepted"),
        );
    }
}

/// The named arguments of `method = rkf45(...)`: error tolerances, dimensionless numbers
/// applied to each state in its declared unit (see `lower/adaptive.rs`).
pub const RKF45_ARGS: &[&str] = &["atol", "rtol", "rtol_dydt"];

/// Builds symbol tables for every model and checks names everywhere.
pub fn resolve(graph: &ModuleGraph) -> (Resolved, Vec<Diagnostic>) {
    let mut resolved = Resolved::default();
    let mut diagnostics = Vec::new();
    let mut defined_in: Vec<Vec<usize>> = vec![Vec::new(); graph.modules.len()];

    for (module_index, module) in graph.modules.iter().enumerate() {
        for item in &module.ast.items {
            if let Item::Model(model) = item {
                let info = build_model(module_index, model, &mut diagnostics);
                resolved.models.push(info);
                defined_in[module_index].push(resolved.models.len() - 1);
            }
        }
    }

    // A module sees its own models and those of the modules it imports directly.
    for (module_index, module) in graph.modules.iter().enumerate() {
        let mut scope: BTreeMap<String, usize> = BTreeMap::new();
        let mut own_spans: HashMap<String, Span> = HashMap::new();
        for &model in &defined_in[module_index] {
            let name = resolved.models[model].ast.name.clone();
            if let Some(previous) = own_spans.get(&name.name) {
                diagnostics.push(
                    Diagnostic::error(format!("the model `{}` is defined twice", name.name))
                        .primary(name.span, "defined again here")
                        .secondary(*previous, "first defined here"),
                );
                continue;
            }
            own_spans.insert(name.name.clone(), name.span);
            scope.insert(name.name, model);
        }
        for &imported in &module.imports {
            if imported == module_index {
                // A file importing itself; reported as a cycle, and it adds no names.
                continue;
            }
            for &model in &defined_in[imported] {
                let name = &resolved.models[model].ast.name.name;
                match scope.get(name) {
                    Some(&existing) if existing != model => {
                        if let Some(own) = own_spans.get(name) {
                            diagnostics.push(
                                Diagnostic::error(format!(
                                    "the model `{name}` is defined here and also imported"
                                ))
                                .primary(*own, "defined here")
                                .secondary(
                                    resolved.models[model].ast.name.span,
                                    "an imported model of the same name",
                                )
                                .help("rename one of them"),
                            );
                        } else {
                            diagnostics.push(
                                Diagnostic::error(format!(
                                    "two imported files both define a model `{name}`"
                                ))
                                .primary(
                                    import_span(module, imported),
                                    "this import brings in a second one",
                                )
                                .secondary(
                                    resolved.models[existing].ast.name.span,
                                    "one is defined here",
                                )
                                .secondary(resolved.models[model].ast.name.span, "the other here"),
                            );
                        }
                    }
                    _ => {
                        scope.insert(name.clone(), model);
                    }
                }
            }
        }
        resolved.scopes.push(scope);
    }

    for model in &resolved.models {
        check_model_names(model, &mut diagnostics);
    }

    let mut network_names: HashMap<String, Span> = HashMap::new();
    for item in &graph.modules[0].ast.items {
        if let Item::Network(network) = item {
            if let Some(previous) = network_names.get(&network.name.name) {
                diagnostics.push(
                    Diagnostic::error(format!(
                        "the network `{}` is defined twice",
                        network.name.name
                    ))
                    .primary(network.name.span, "defined again here")
                    .secondary(*previous, "first defined here"),
                );
            }
            network_names.insert(network.name.name.clone(), network.name.span);
            resolve_network(&resolved, 0, network, &mut diagnostics);
            resolved.networks.push(network.clone());
        }
    }
    for module in &graph.modules[1..] {
        for item in &module.ast.items {
            if let Item::Network(network) = item {
                diagnostics.push(
                    Diagnostic::warning(format!(
                        "the network `{}` in an imported file is ignored",
                        network.name.name
                    ))
                    .primary(
                        network.name.span,
                        "only networks of the file being run are used",
                    ),
                );
            }
        }
    }
    (resolved, diagnostics)
}

fn import_span(module: &Module, imported: usize) -> Span {
    let position = module
        .imports
        .iter()
        .position(|&m| m == imported)
        .unwrap_or(0);
    module
        .ast
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Import(import) => Some(import.span),
            _ => None,
        })
        .nth(position)
        .unwrap_or_default()
}

fn build_model(module: usize, model: &ast::Model, diagnostics: &mut Vec<Diagnostic>) -> ModelInfo {
    let mut info = ModelInfo {
        module,
        ast: model.clone(),
        symbols: BTreeMap::new(),
        vars: Vec::new(),
        lets: Vec::new(),
        target: None,
        output: None,
        refractory: None,
    };
    let declare = |info: &mut ModelInfo,
                   name: &ast::Ident,
                   symbol: Symbol,
                   diagnostics: &mut Vec<Diagnostic>| {
        if let Some(previous) = info.symbols.get(&name.name) {
            diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` is declared twice in `{}`",
                    name.name, model.name.name
                ))
                .primary(name.span, "declared again here")
                .secondary(previous.span, "first declared here"),
            );
            return false;
        }
        if BUILTIN_CONSTANTS.contains(&name.name.as_str()) {
            diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` is a built-in name and cannot be declared",
                    name.name
                ))
                .primary(name.span, "reserved")
                .note("`t` is the simulation time, `dt` the time step, `pi` the number π"),
            );
            return false;
        }
        info.symbols.insert(
            name.name.clone(),
            SymbolInfo {
                symbol,
                span: name.span,
            },
        );
        true
    };
    for (order, member) in model.members.iter().enumerate() {
        match member {
            Member::Var(var) => {
                if model.kind == ModelKind::Synapse && var.kind == VarKind::Input {
                    diagnostics.push(
                        Diagnostic::error("an `input` belongs in a neuron model")
                            .primary(var.span, "a synapse has no inputs")
                            .help("a kernel synapse drives a neuron's input through its target: `target I: pA = <expression>`"),
                    );
                    continue;
                }
                if model.kind == ModelKind::Neuron && var.placement != Placement::Each {
                    let word = placement_word(var.placement);
                    diagnostics.push(
                        Diagnostic::error(format!("`{word}` variables belong in synapse models"))
                            .primary(var.span, format!("`{word}` is not allowed in a neuron"))
                            .help(match var.placement {
                                Placement::Shared => "a neuron parameter is already constant across a population unless a population sets it per neuron; drop `shared`",
                                _ => "per-presynaptic (`pre`) and per-postsynaptic (`post`) state describe a synapse; declare a plain `state` here",
                            }),
                    );
                }
                let symbol = Symbol::Var {
                    kind: var.kind,
                    placement: var.placement,
                    order,
                };
                if declare(&mut info, &var.name, symbol, diagnostics) {
                    info.vars.push(var.clone());
                }
            }
            Member::Let { name, value, .. }
                if declare(&mut info, name, Symbol::Let, diagnostics) =>
            {
                info.lets.push((name.clone(), value.clone()));
            }
            Member::Target {
                name,
                unit,
                value,
                span,
            } => {
                if model.kind == ModelKind::Neuron {
                    diagnostics.push(
                        Diagnostic::error("a neuron has no target port")
                            .primary(*span, "`target` declares what a synapse writes into")
                            .help("move this into a `synapse` model"),
                    );
                    continue;
                }
                if let Some((previous, _)) = &info.target {
                    diagnostics.push(
                        Diagnostic::error("a synapse may declare only one target port")
                            .primary(name.span, "second target")
                            .secondary(previous.span, "first target"),
                    );
                    continue;
                }
                if let (Some(value), None) = (value, unit) {
                    diagnostics.push(
                        Diagnostic::error("a kernel synapse's output needs a unit")
                            .primary(value.span, "the continuous output of this synapse")
                            .secondary(name.span, "declared without a unit")
                            .help(format!(
                                "declare the unit of the neuron input it drives: `target {}: pA = ...`",
                                name.name
                            )),
                    );
                }
                if declare(&mut info, name, Symbol::Target, diagnostics) {
                    info.target = Some((name.clone(), unit.clone()));
                    info.output = value.clone();
                }
            }
            Member::Refractory { span, .. } => {
                if let Some(previous) = info.refractory {
                    diagnostics.push(
                        Diagnostic::error("the refractory period is given twice")
                            .primary(*span, "again here")
                            .secondary(previous, "first here"),
                    );
                }
                info.refractory = Some(*span);
            }
            _ => {}
        }
    }
    info
}

fn placement_word(placement: Placement) -> &'static str {
    match placement {
        Placement::Each => "",
        Placement::Shared => "shared",
        Placement::Pre => "pre",
        Placement::Post => "post",
    }
}

/// Where a name is used, which decides what it may refer to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Use {
    /// In the default of the declaration at this position.
    Initialiser(usize),
    Anywhere,
}

struct ModelScope<'a> {
    model: &'a ModelInfo,
    /// Names that have an ODE but no declaration: reported once, at the ODE, not at each use.
    undeclared_odes: HashSet<String>,
}

impl ModelScope<'_> {
    fn check_expr(&self, expr: &ast::Expr, use_: Use, diagnostics: &mut Vec<Diagnostic>) {
        walk_names(expr, &mut |name, span, is_call| {
            if is_call {
                check_function(name, span, diagnostics);
                return;
            }
            if BUILTIN_CONSTANTS.contains(&name) {
                return;
            }
            match self.model.symbols.get(name) {
                Some(info) => {
                    if let (Use::Initialiser(at), Symbol::Var { order, .. }) = (use_, &info.symbol)
                    {
                        if *order >= at {
                            diagnostics.push(
                                Diagnostic::error(format!("`{name}` is used before it is declared"))
                                    .primary(span, "used here")
                                    .secondary(info.span, "declared later here")
                                    .help("initial values may only use variables declared above them; move this declaration down"),
                            );
                        }
                    }
                }
                None if crate::units::lookup(name).is_some() => {}
                None if self.undeclared_odes.contains(name) => {}
                None => diagnostics.push(unknown_name(name, span, self.model)),
            }
        });
    }
}

fn unknown_name(name: &str, span: Span, model: &ModelInfo) -> Diagnostic {
    let mut diagnostic = Diagnostic::error(format!("unknown name `{name}`"))
        .primary(span, format!("not declared in `{}`", model.name()));
    let candidates = model
        .symbols
        .keys()
        .map(String::as_str)
        .chain(BUILTIN_CONSTANTS.iter().copied());
    if let Some(best) = did_you_mean(name, candidates) {
        diagnostic = diagnostic.help(format!("did you mean `{best}`?"));
    }
    diagnostic
}

fn check_function(name: &str, span: Span, diagnostics: &mut Vec<Diagnostic>) {
    if FUNCTIONS.contains(&name) {
        return;
    }
    if crate::reductions::is_reduction(name) {
        diagnostics.push(
            Diagnostic::error(format!("`{name}` reduces a population, which a model cannot name"))
                .primary(span, "a population-level value")
                .note("models are reusable: the network decides which population a value comes from")
                .help(format!("declare a parameter here and set it in the network, as in `{{ d = {name}(P, ...) }}` or `input P.x = {name}(...)`")),
        );
        return;
    }
    let mut diagnostic = Diagnostic::error(format!("unknown function `{name}`"))
        .primary(span, "not a built-in function");
    if let Some(best) = did_you_mean(name, FUNCTIONS.iter().copied()) {
        diagnostic = diagnostic.help(format!("did you mean `{best}`?"));
    } else {
        diagnostic = diagnostic.note(format!("the functions are: {}", FUNCTIONS.join(", ")));
    }
    diagnostics.push(diagnostic);
}

/// Calls `f(name, span, is_call)` for every name and called function in an expression.
pub fn walk_names(expr: &ast::Expr, f: &mut dyn FnMut(&str, Span, bool)) {
    match &expr.kind {
        ast::ExprKind::Name(ident) => f(&ident.name, ident.span, false),
        ast::ExprKind::Unary(_, a) => walk_names(a, f),
        ast::ExprKind::Binary(_, a, b) => {
            walk_names(a, f);
            walk_names(b, f);
        }
        ast::ExprKind::Call { function, args } => {
            f(&function.name, function.span, true);
            // A reduction's arguments name a population and its variable, not values in
            // scope (`reductions.rs` checks them).
            if crate::reductions::is_reduction(&function.name) {
                return;
            }
            for arg in args {
                walk_names(&arg.value, f);
            }
        }
        ast::ExprKind::Number(_)
        | ast::ExprKind::Quantity(..)
        | ast::ExprKind::Bool(_)
        | ast::ExprKind::Str(_)
        | ast::ExprKind::Error => {}
    }
}

/// Whether `name` is read or written anywhere in the model, outside ODE left-hand sides.
fn model_uses(model: &ast::Model, name: &str) -> bool {
    fn block_uses(block: &ast::Block, name: &str, found: &mut bool) {
        for stmt in &block.stmts {
            match stmt {
                ast::Stmt::Assign { target, value, .. } => {
                    *found |= target.name == name;
                    expr_uses(value, name, found);
                }
                ast::Stmt::If {
                    condition,
                    then_block,
                    else_block,
                    ..
                } => {
                    expr_uses(condition, name, found);
                    block_uses(then_block, name, found);
                    if let Some(else_block) = else_block {
                        block_uses(else_block, name, found);
                    }
                }
                ast::Stmt::Error(_) => {}
            }
        }
    }
    fn expr_uses(expr: &ast::Expr, name: &str, found: &mut bool) {
        walk_names(expr, &mut |n, _, is_call| *found |= !is_call && n == name);
    }
    let mut found = false;
    for member in &model.members {
        match member {
            Member::Var(ast::VarDecl {
                default: Some(e), ..
            })
            | Member::Let { value: e, .. }
            | Member::Ode(ast::Ode { rhs: e, .. })
            | Member::Spike { condition: e, .. }
            | Member::Refractory { period: e, .. } => expr_uses(e, name, &mut found),
            Member::Reset { body, .. } | Member::On { body, .. } => {
                block_uses(body, name, &mut found)
            }
            _ => {}
        }
    }
    found
}

fn check_model_names(model: &ModelInfo, diagnostics: &mut Vec<Diagnostic>) {
    let undeclared_odes = model
        .ast
        .members
        .iter()
        .filter_map(|m| match m {
            Member::Ode(ode) if !model.symbols.contains_key(&ode.var.name) => {
                Some(ode.var.name.clone())
            }
            _ => None,
        })
        .collect();
    let scope = ModelScope {
        model,
        undeclared_odes,
    };
    let kind = model.ast.kind;
    let mut odes: HashMap<&str, Span> = HashMap::new();
    let mut spike: Option<Span> = None;
    let mut method: Option<Span> = None;
    let mut reset: Option<Span> = None;
    let mut handlers: HashMap<&str, Span> = HashMap::new();

    for (order, member) in model.ast.members.iter().enumerate() {
        match member {
            Member::Var(var) => {
                if let Some(default) = &var.default {
                    scope.check_expr(default, Use::Initialiser(order), diagnostics);
                }
                if let ast::UnitExprKind::UnitOf(port) = &var.unit.kind {
                    check_unit_of(model, port, diagnostics);
                }
            }
            Member::Let { value, .. } => scope.check_expr(value, Use::Anywhere, diagnostics),
            Member::Ode(ode) => {
                match model.symbols.get(&ode.var.name) {
                    Some(SymbolInfo {
                        symbol:
                            Symbol::Var {
                                kind: VarKind::State,
                                ..
                            },
                        ..
                    }) => {}
                    Some(SymbolInfo {
                        symbol:
                            Symbol::Var {
                                kind: VarKind::Param,
                                ..
                            },
                        span,
                    }) => diagnostics.push(
                        Diagnostic::error(format!(
                            "`{}` is a parameter and cannot have an ODE",
                            ode.var.name
                        ))
                        .primary(ode.var.span, "a parameter does not change over time")
                        .secondary(*span, "declared as `param` here")
                        .help(format!(
                            "declare it as `state {}` if it should evolve",
                            ode.var.name
                        )),
                    ),
                    Some(SymbolInfo { span, .. }) => diagnostics.push(
                        Diagnostic::error(format!("`{}` is not a state variable", ode.var.name))
                            .primary(ode.var.span, "only `state` variables have ODEs")
                            .secondary(*span, "declared here"),
                    ),
                    None => {
                        let mut d = Diagnostic::error(format!(
                            "ODE for an undeclared variable `{}`",
                            ode.var.name
                        ))
                        .primary(ode.var.span, "no state of this name");
                        let states = model
                            .vars
                            .iter()
                            .filter(|v| v.kind == VarKind::State)
                            .map(|v| v.name.name.as_str());
                        let best = did_you_mean(&ode.var.name, states);
                        // A name the model also uses elsewhere is meant to be a new state.
                        if let (Some(best), false) = (best, model_uses(&model.ast, &ode.var.name)) {
                            d = d.help(format!("did you mean `{best}`?"));
                        } else {
                            d = d.help(format!(
                                "declare it first: `state {}: <unit> = <initial value>`",
                                ode.var.name
                            ));
                        }
                        diagnostics.push(d);
                    }
                }
                if let Some(previous) = odes.insert(&ode.var.name, ode.span) {
                    diagnostics.push(
                        Diagnostic::error(format!("`{}` has two ODEs", ode.var.name))
                            .primary(ode.span, "second ODE")
                            .secondary(previous, "first ODE"),
                    );
                }
                if ode.unless_refractory && model.refractory.is_none() {
                    diagnostics.push(
                        Diagnostic::error(
                            "`unless refractory` in a model without a refractory period",
                        )
                        .primary(ode.span, "never refractory")
                        .help(
                            "add `refractory <duration>` to the model, or drop `unless refractory`",
                        ),
                    );
                }
                scope.check_expr(&ode.rhs, Use::Anywhere, diagnostics);
            }
            Member::Method(choice) => {
                check_method(choice, diagnostics);
                if let Some(previous) = method.replace(choice.span) {
                    diagnostics.push(
                        Diagnostic::error("the integration method is given twice")
                            .primary(choice.span, "again here")
                            .secondary(previous, "first here"),
                    );
                }
            }
            Member::Spike { condition, span } => {
                if kind == ModelKind::Synapse {
                    diagnostics.push(
                        Diagnostic::error("a synapse cannot spike")
                            .primary(*span, "`spike when` belongs in a neuron model"),
                    );
                }
                if let Some(previous) = spike.replace(*span) {
                    diagnostics.push(
                        Diagnostic::error("the spike condition is given twice")
                            .primary(*span, "again here")
                            .secondary(previous, "first here")
                            .help("combine the conditions with `or`"),
                    );
                }
                scope.check_expr(condition, Use::Anywhere, diagnostics);
            }
            Member::Reset { body, span } => {
                if kind == ModelKind::Synapse {
                    diagnostics.push(
                        Diagnostic::error("a synapse has no reset")
                            .primary(*span, "`reset` belongs in a neuron model")
                            .help("a synapse reacts to spikes with `on pre { ... }` and `on post { ... }`"),
                    );
                }
                if let Some(previous) = reset.replace(*span) {
                    diagnostics.push(
                        Diagnostic::error("the reset is given twice")
                            .primary(*span, "again here")
                            .secondary(previous, "first here"),
                    );
                }
                check_block(&scope, body, Handler::Reset, diagnostics);
            }
            Member::Refractory { period, span } => {
                if kind == ModelKind::Synapse {
                    diagnostics.push(
                        Diagnostic::error("a synapse has no refractory period")
                            .primary(*span, "`refractory` belongs in a neuron model"),
                    );
                }
                scope.check_expr(period, Use::Anywhere, diagnostics);
            }
            Member::On { event, body, span } => {
                let handler = match event.name.as_str() {
                    "pre" => Handler::OnPre,
                    "post" => Handler::OnPost,
                    "step" => Handler::OnStep,
                    other => {
                        diagnostics.push(
                            Diagnostic::error(format!("unknown event `{other}`"))
                                .primary(event.span, "expected `pre`, `post` or `step`")
                                .help("a synapse handles presynaptic spikes with `on pre`, postsynaptic spikes with `on post`, and runs `on step` once every time step"),
                        );
                        continue;
                    }
                };
                if kind == ModelKind::Neuron {
                    diagnostics.push(
                        Diagnostic::error(format!(
                            "`on {}` belongs in a synapse model",
                            event.name
                        ))
                        .primary(
                            *span,
                            "a neuron reacts to its own spikes with `reset { ... }`",
                        ),
                    );
                }
                if let Some(previous) = handlers.insert(event.name.as_str(), *span) {
                    diagnostics.push(
                        Diagnostic::error(format!("two `on {}` handlers", event.name))
                            .primary(*span, "second handler")
                            .secondary(previous, "first handler")
                            .help("merge them into one block"),
                    );
                }
                check_block(&scope, body, handler, diagnostics);
            }
            Member::Target { value, .. } => {
                if let Some(value) = value {
                    scope.check_expr(value, Use::Anywhere, diagnostics);
                }
            }
            Member::Error(_) => {}
        }
    }
    if kind == ModelKind::Neuron {
        if let (Some(reset_span), None) = (reset, spike) {
            diagnostics.push(
                Diagnostic::error("a reset without a spike condition never runs")
                    .primary(reset_span, "this reset")
                    .help("add `spike when <condition>`"),
            );
        }
        if let (Some(refractory), None) = (model.refractory, spike) {
            diagnostics.push(
                Diagnostic::error("a refractory period without a spike condition never starts")
                    .primary(refractory, "this period")
                    .help("add `spike when <condition>`"),
            );
        }
    }
    check_let_cycles(model, diagnostics);
}

fn check_unit_of(model: &ModelInfo, port: &ast::Ident, diagnostics: &mut Vec<Diagnostic>) {
    match model.symbols.get(&port.name) {
        Some(SymbolInfo {
            symbol: Symbol::Target,
            ..
        }) => {}
        _ => diagnostics.push(
            Diagnostic::error(format!(
                "`[{}]` must name the target port of this synapse",
                port.name
            ))
            .primary(port.span, "not a target port")
            .help(match &model.target {
                Some((target, _)) => format!(
                    "the target port is `{}`; write `[{}]`",
                    target.name, target.name
                ),
                None => "declare one with `target <name>: <unit>`".to_string(),
            }),
        ),
    }
}

/// Which handler a block belongs to: it decides what may be written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Handler {
    Reset,
    OnPre,
    OnPost,
    /// `on step`: every synapse, once per time step.
    OnStep,
}

fn check_block(
    scope: &ModelScope<'_>,
    block: &ast::Block,
    handler: Handler,
    diagnostics: &mut Vec<Diagnostic>,
) {
    check_block_within(scope, block, handler, &[], diagnostics);
}

/// As [`check_block`], inside `if`s whose conditions are `conditions`.
fn check_block_within(
    scope: &ModelScope<'_>,
    block: &ast::Block,
    handler: Handler,
    conditions: &[&ast::Expr],
    diagnostics: &mut Vec<Diagnostic>,
) {
    for stmt in &block.stmts {
        match stmt {
            ast::Stmt::Assign { target, value, .. } => {
                scope.check_expr(value, Use::Anywhere, diagnostics);
                check_write(scope.model, target, handler, diagnostics);
                check_trace_inputs(scope.model, target, value, conditions, handler, diagnostics);
            }
            ast::Stmt::If {
                condition,
                then_block,
                else_block,
                ..
            } => {
                scope.check_expr(condition, Use::Anywhere, diagnostics);
                let mut inner = conditions.to_vec();
                inner.push(condition);
                check_block_within(scope, then_block, handler, &inner, diagnostics);
                if let Some(else_block) = else_block {
                    check_block_within(scope, else_block, handler, &inner, diagnostics);
                }
            }
            ast::Stmt::Error(_) => {}
        }
    }
}

/// A `pre` or `post` state is one value per neuron, shared by all the neuron's synapses, so a
/// handler may compute it only from what is the same for all of them: that side's own state,
/// shared parameters, constants and `t`. Per-synapse state, the other side's state and the
/// target port are refused (in the assigned value and in the conditions around it, `let`s
/// followed), with where that state lives.
fn check_trace_inputs(
    model: &ModelInfo,
    target: &ast::Ident,
    value: &ast::Expr,
    conditions: &[&ast::Expr],
    handler: Handler,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Some(SymbolInfo {
        symbol:
            Symbol::Var {
                kind: VarKind::State,
                placement: side @ (Placement::Pre | Placement::Post),
                ..
            },
        span: declared,
    }) = model.symbols.get(&target.name)
    else {
        return;
    };
    // A write the handler may not make at all is reported by `check_write`.
    if (*side == Placement::Pre) != (handler == Handler::OnPre) || handler == Handler::OnStep {
        return;
    }
    let side_name = if *side == Placement::Pre {
        "presynaptic"
    } else {
        "postsynaptic"
    };
    let mut reported: HashSet<String> = HashSet::new();
    let mut check = |expr: &ast::Expr, in_condition: bool| {
        let mut seen: Vec<(String, Span)> = Vec::new();
        collect_model_names(model, expr, &mut seen, &mut Vec::new());
        for (name, span) in seen {
            let Some(info) = model.symbols.get(&name) else {
                continue;
            };
            let lives = match &info.symbol {
                Symbol::Var {
                    placement: Placement::Each,
                    ..
                } => "one value per synapse",
                Symbol::Var {
                    placement: p @ (Placement::Pre | Placement::Post),
                    ..
                } if p != side => {
                    if *p == Placement::Pre {
                        "one value per presynaptic neuron"
                    } else {
                        "one value per postsynaptic neuron"
                    }
                }
                Symbol::Target => "the postsynaptic target variable",
                _ => continue,
            };
            if !reported.insert(name.clone()) {
                continue;
            }
            let how = if in_condition {
                "under a condition on"
            } else {
                "from"
            };
            diagnostics.push(
                Diagnostic::error(format!(
                    "the {side_name} trace `{}` is written {how} `{name}`, which is not the same for all synapses of the neuron",
                    target.name
                ))
                .primary(span, format!("`{name}` lives here: {lives}"))
                .secondary(target.span, format!("`{}` is one value per {side_name} neuron, shared by all its synapses", target.name))
                .secondary(*declared, "declared here")
                .note(format!(
                    "a `{}` state may be computed from `{}` state, shared parameters, constants and `t`; keep per-synapse quantities in a per-synapse `state`",
                    if *side == Placement::Pre { "pre" } else { "post" },
                    if *side == Placement::Pre { "pre" } else { "post" },
                )),
            );
        }
    };
    check(value, false);
    for condition in conditions {
        check(condition, true);
    }
}

/// Every model name an expression reads, following `let`s (each let once), with the span
/// where it is read (for a let, where the let is used).
fn collect_model_names(
    model: &ModelInfo,
    expr: &ast::Expr,
    out: &mut Vec<(String, Span)>,
    lets_seen: &mut Vec<String>,
) {
    walk_names(expr, &mut |name, span, is_call| {
        if is_call {
            return;
        }
        if let Some(let_expr) = model.let_value(name) {
            if lets_seen.iter().any(|l| l == name) {
                return;
            }
            lets_seen.push(name.to_string());
            let mut inner = Vec::new();
            collect_model_names(model, let_expr, &mut inner, lets_seen);
            out.extend(inner.into_iter().map(|(n, _)| (n, span)));
        } else {
            out.push((name.to_string(), span));
        }
    });
}

fn check_write(
    model: &ModelInfo,
    target: &ast::Ident,
    handler: Handler,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let handler_name = match handler {
        Handler::Reset => "`reset`",
        Handler::OnPre => "`on pre`",
        Handler::OnPost => "`on post`",
        Handler::OnStep => "`on step`",
    };
    let Some(info) = model.symbols.get(&target.name) else {
        if BUILTIN_CONSTANTS.contains(&target.name.as_str()) {
            diagnostics.push(
                Diagnostic::error(format!(
                    "`{}` is built in and cannot be assigned",
                    target.name
                ))
                .primary(target.span, "read-only"),
            );
        } else {
            diagnostics.push(unknown_name(&target.name, target.span, model));
        }
        return;
    };
    let what_may_be_written = match handler {
        Handler::Reset => "a reset may write the neuron's `state` variables",
        Handler::OnPre if model.output.is_some() => {
            "the `on pre` of a kernel synapse increments its `post` state"
        }
        Handler::OnPre => "`on pre` may write per-synapse `state`, `pre` state and the target port",
        Handler::OnPost => "`on post` may write per-synapse `state` and `post` state",
        Handler::OnStep => "`on step` may write per-synapse `state` only",
    };
    let refuse = |reason: String, label: &str| {
        Diagnostic::error(reason)
            .primary(target.span, label.to_string())
            .secondary(info.span, "declared here")
            .note(what_may_be_written)
    };
    match &info.symbol {
        Symbol::Var {
            kind: VarKind::Param,
            placement,
            ..
        } => {
            let shared = if *placement == Placement::Shared {
                "shared "
            } else {
                ""
            };
            diagnostics.push(
                refuse(
                    format!(
                        "{handler_name} writes the {shared}parameter `{}`",
                        target.name
                    ),
                    "parameters are constant during a run",
                )
                .help(format!(
                    "declare `{}` as `state` if it should change",
                    target.name
                )),
            );
        }
        Symbol::Let => diagnostics.push(refuse(
            format!(
                "{handler_name} assigns to `{}`, which is a `let` expression",
                target.name
            ),
            "a `let` is computed from other variables and cannot be assigned",
        )),
        Symbol::Target if handler != Handler::OnPre => diagnostics.push(refuse(
            format!("{handler_name} writes the target port `{}`", target.name),
            "only `on pre` delivers into the postsynaptic target",
        )),
        Symbol::Var {
            kind: VarKind::State,
            placement: placement @ (Placement::Pre | Placement::Post | Placement::Shared),
            ..
        } if handler == Handler::OnStep => diagnostics.push(refuse(
            format!(
                "`on step` writes `{}`, which lives {}",
                target.name,
                match placement {
                    Placement::Pre => "on the presynaptic neuron",
                    Placement::Post => "on the postsynaptic neuron",
                    _ => "once for the whole projection",
                }
            ),
            "`on step` runs for every synapse, so it may write only per-synapse state",
        )),
        Symbol::Var {
            kind: VarKind::State,
            placement: Placement::Pre,
            ..
        } if handler == Handler::OnPost => diagnostics.push(refuse(
            format!(
                "`on post` writes `{}`, which lives on the presynaptic neuron",
                target.name
            ),
            "one value per presynaptic neuron, shared by all its synapses",
        )),
        Symbol::Var {
            kind: VarKind::Input,
            ..
        } => diagnostics.push(refuse(
            format!("{handler_name} writes `{}`, which is an input", target.name),
            "an input is the sum of the outputs of the kernel synapses bound to it",
        )),
        Symbol::Var {
            kind: VarKind::State,
            placement: Placement::Post,
            ..
        } if handler == Handler::OnPre && model.output.is_none() => diagnostics.push(refuse(
            format!(
                "`on pre` writes `{}`, which lives on the postsynaptic neuron",
                target.name
            ),
            "one value per postsynaptic neuron, shared by all its synapses",
        )),
        _ => {}
    }
}

fn check_let_cycles(model: &ModelInfo, diagnostics: &mut Vec<Diagnostic>) {
    let lets: HashMap<&str, &ast::Expr> = model
        .lets
        .iter()
        .map(|(n, e)| (n.name.as_str(), e))
        .collect();
    let mut reported = HashSet::new();
    for (name, _) in &model.lets {
        let mut stack = vec![name.name.as_str()];
        if let Some(cycle) = find_let_cycle(&lets, &mut stack) {
            // The cycle ends where it starts; the set of its members identifies it.
            let mut key: Vec<&str> = cycle[..cycle.len() - 1].to_vec();
            key.sort();
            if reported.insert(key) {
                diagnostics.push(
                    Diagnostic::error(format!("`let {}` depends on itself", name.name))
                        .primary(name.span, "defined in terms of itself")
                        .note(format!("the cycle: {}", cycle.join(" → "))),
                );
            }
        }
    }
}

fn find_let_cycle<'a>(
    lets: &HashMap<&'a str, &'a ast::Expr>,
    stack: &mut Vec<&'a str>,
) -> Option<Vec<&'a str>> {
    let current = *stack.last()?;
    let expr = lets.get(current)?;
    let mut names = Vec::new();
    walk_names(expr, &mut |name, _, is_call| {
        if !is_call {
            names.push(name.to_string());
        }
    });
    for name in names {
        let Some((&key, _)) = lets.get_key_value(name.as_str()) else {
            continue;
        };
        if stack[0] == key {
            let mut cycle = stack.clone();
            cycle.push(key);
            return Some(cycle);
        }
        if stack.contains(&key) {
            continue;
        }
        stack.push(key);
        if let Some(cycle) = find_let_cycle(lets, stack) {
            return Some(cycle);
        }
        stack.pop();
    }
    None
}

// ------------------------------------------------------------------ networks

/// Network settings and what they mean.
pub const SETTINGS: &[&str] = &["dt", "seed", "precision"];

/// Connectivity rules with their parameters: (rule, required, optional).
pub const CONNECT_RULES: &[(&str, &[&str], &[&str])] = &[
    ("all_to_all", &[], &["autapses"]),
    ("one_to_one", &[], &[]),
    ("bernoulli", &["p"], &["autapses"]),
    ("fixed_indegree", &["k"], &["autapses", "multapses"]),
    ("fixed_outdegree", &["k"], &["autapses", "multapses"]),
    ("fixed_total", &["n"], &["autapses", "multapses"]),
];

/// The arguments of a connectivity rule, each with the parameter it binds (by name, or by
/// position among the rule's required then optional parameters). Unknown rules and names bind
/// nothing; `check_connect` reports them.
pub fn connect_args<'a>(rule: &str, args: &'a [ast::Arg]) -> Vec<(&'static str, &'a ast::Arg)> {
    let Some((_, required, optional)) = CONNECT_RULES.iter().find(|(n, _, _)| *n == rule) else {
        return Vec::new();
    };
    let names: Vec<&'static str> = required.iter().chain(optional.iter()).copied().collect();
    args.iter()
        .enumerate()
        .filter_map(|(position, arg)| {
            let name = match &arg.name {
                Some(given) => names.iter().copied().find(|n| *n == given.name)?,
                None => *names.get(position)?,
            };
            Some((name, arg))
        })
        .collect()
}

/// What names an expression in a network may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NetContext {
    /// dt, seed, sizes, run length, ranges: plain constants.
    Constant,
    /// Per-neuron initialisers: `i` is the neuron index.
    Neuron,
    /// Per-synapse values and `where` conditions: `i` is the source, `j` the target.
    Synapse,
    /// Input expressions: `t` is the time, `i` the neuron index.
    Input,
}

pub fn context_names(context: NetContext) -> &'static [&'static str] {
    match context {
        NetContext::Constant => &["pi"],
        NetContext::Neuron => &["i", "pi"],
        NetContext::Synapse => &["i", "j", "pi"],
        NetContext::Input => &["t", "dt", "i", "pi"],
    }
}

fn check_net_expr(expr: &ast::Expr, context: NetContext, diagnostics: &mut Vec<Diagnostic>) {
    let allowed = context_names(context);
    // Reductions name populations and their variables; `reductions::resolve_in` checks them
    // where they are allowed, and refuses them in values computed once.
    match context {
        NetContext::Constant => {
            crate::reductions::resolve_in(expr, &BTreeMap::new(), Err("a constant"), diagnostics)
        }
        NetContext::Neuron => crate::reductions::resolve_in(
            expr,
            &BTreeMap::new(),
            Err("an initial value"),
            diagnostics,
        ),
        NetContext::Synapse | NetContext::Input => {}
    }
    let stripped = crate::reductions::strip_calls(expr);
    walk_names(&stripped, &mut |name, span, is_call| {
        if is_call {
            check_function(name, span, diagnostics);
            if context == NetContext::Constant && RANDOM_FUNCTIONS.contains(&name) {
                diagnostics.push(
                    Diagnostic::error(format!(
                        "`{name}` draws a random number where a constant is needed"
                    ))
                    .primary(span, "must be the same for every neuron and every run"),
                );
            }
            return;
        }
        if allowed.contains(&name) || crate::units::lookup(name).is_some() {
            return;
        }
        let mut d =
            Diagnostic::error(format!("unknown name `{name}`")).primary(span, "not known here");
        d = match context {
            NetContext::Constant => {
                d.note("this value must be a constant: numbers, quantities and `pi`")
            }
            NetContext::Neuron => {
                d.note("a per-neuron value may use `i`, the neuron's index in its population")
            }
            NetContext::Synapse => {
                d.note("a per-synapse value may use `i` (source index) and `j` (target index)")
            }
            NetContext::Input => {
                d.note("an input may use `t` (time), `dt` (the time step) and `i` (neuron index)")
            }
        };
        if let Some(best) = did_you_mean(name, allowed.iter().copied()) {
            d = d.help(format!("did you mean `{best}`?"));
        }
        diagnostics.push(d);
    });
}

/// A population as the network declares it.
#[derive(Clone, Debug)]
pub struct PopulationInfo<'a> {
    pub name: &'a ast::Ident,
    /// `None` for spike-source arrays (and for populations of an unknown model, reported
    /// where they are declared).
    pub model: Option<&'a ModelInfo>,
    /// Whether it is a spike-source array.
    pub is_source: bool,
}

/// The populations of a network, by name.
pub fn populations<'a>(
    resolved: &'a Resolved,
    module: usize,
    network: &'a ast::Network,
) -> BTreeMap<&'a str, PopulationInfo<'a>> {
    let mut map = BTreeMap::new();
    for item in &network.items {
        match item {
            NetItem::Population { name, model, .. } => {
                let model = resolved
                    .lookup_model(module, &model.name)
                    .filter(|m| m.ast.kind == ModelKind::Neuron);
                map.entry(name.name.as_str()).or_insert(PopulationInfo {
                    name,
                    model,
                    is_source: false,
                });
            }
            NetItem::SpikeSource { name, .. } => {
                map.entry(name.name.as_str()).or_insert(PopulationInfo {
                    name,
                    model: None,
                    is_source: true,
                });
            }
            _ => {}
        }
    }
    map
}

fn resolve_network(
    resolved: &Resolved,
    module: usize,
    network: &ast::Network,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut declared: HashMap<&str, Span> = HashMap::new();
    let mut settings: HashMap<&str, Span> = HashMap::new();
    let mut run: Option<Span> = None;
    for item in &network.items {
        match item {
            NetItem::Setting { name, value, span } => {
                if !SETTINGS.contains(&name.name.as_str()) {
                    let mut d =
                        Diagnostic::error(format!("unknown network setting `{}`", name.name))
                            .primary(name.span, "not a setting");
                    d = match did_you_mean(&name.name, SETTINGS.iter().copied()) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None => d
                            .note(format!("the settings are: {}", SETTINGS.join(", ")))
                            .help(format!(
                                "to create a population, write `{} = Model[size]`",
                                name.name
                            )),
                    };
                    diagnostics.push(d);
                    continue;
                }
                if let Some(previous) = settings.insert(&name.name, *span) {
                    diagnostics.push(
                        Diagnostic::error(format!("`{}` is set twice", name.name))
                            .primary(*span, "again here")
                            .secondary(previous, "first here"),
                    );
                }
                if name.name != "precision" {
                    check_net_expr(value, NetContext::Constant, diagnostics);
                } else if !matches!(&value.kind, ast::ExprKind::Name(n) if n.name == "f32" || n.name == "f64")
                {
                    diagnostics.push(
                        Diagnostic::error("`precision` must be `f32` or `f64`")
                            .primary(value.span, "not a precision"),
                    );
                }
            }
            NetItem::Population {
                name,
                model,
                size,
                inits,
                method,
                ..
            } => {
                declare_population(&mut declared, name, diagnostics);
                check_net_expr(size, NetContext::Constant, diagnostics);
                if let Some(choice) = method {
                    check_method(choice, diagnostics);
                }
                match resolved.lookup_model(module, &model.name) {
                    Some(info) if info.ast.kind == ModelKind::Neuron => {
                        for init in inits {
                            check_init_name(info, init, diagnostics);
                            check_net_expr(&init.value, NetContext::Neuron, diagnostics);
                        }
                    }
                    Some(info) => diagnostics.push(
                        Diagnostic::error(format!(
                            "`{}` is a synapse model, not a neuron model",
                            model.name
                        ))
                        .primary(model.span, "populations are made of neurons")
                        .secondary(info.ast.name.span, "defined as a synapse here"),
                    ),
                    None => {
                        diagnostics.push(unknown_model(resolved, module, model, ModelKind::Neuron))
                    }
                }
            }
            NetItem::SpikeSource { name, size, .. } => {
                declare_population(&mut declared, name, diagnostics);
                check_net_expr(size, NetContext::Constant, diagnostics);
            }
            _ => {}
        }
    }
    let pops = populations(resolved, module, network);
    for item in &network.items {
        match item {
            NetItem::Projection(projection) => {
                for source in &projection.sources {
                    check_pop_ref(&pops, source, diagnostics);
                }
                for target in &projection.targets {
                    if let Some(info) = check_pop_ref(&pops, target, diagnostics) {
                        if info.model.is_none() {
                            diagnostics.push(
                                Diagnostic::error(format!(
                                    "`{}` is a spike source and cannot receive synapses",
                                    target.name.name
                                ))
                                .primary(target.span, "target has no state to write into"),
                            );
                        }
                    }
                }
                let synapse = match resolved.lookup_model(module, &projection.synapse.name) {
                    Some(info) if info.ast.kind == ModelKind::Synapse => Some(info),
                    Some(info) => {
                        diagnostics.push(
                            Diagnostic::error(format!(
                                "`{}` is a neuron model, not a synapse model",
                                projection.synapse.name
                            ))
                            .primary(
                                projection.synapse.span,
                                "a projection needs a synapse model",
                            )
                            .secondary(info.ast.name.span, "defined as a neuron here"),
                        );
                        None
                    }
                    None => {
                        diagnostics.push(unknown_model(
                            resolved,
                            module,
                            &projection.synapse,
                            ModelKind::Synapse,
                        ));
                        None
                    }
                };
                if let Some(synapse) = synapse {
                    let mut has_target = false;
                    for init in &projection.inits {
                        if init.name.name == "target" {
                            has_target = true;
                            check_target_binding(synapse, &pops, projection, init, diagnostics);
                            continue;
                        }
                        check_init_name(synapse, init, diagnostics);
                        check_net_expr(&init.value, NetContext::Synapse, diagnostics);
                        crate::reductions::resolve_in(&init.value, &pops, Ok(()), diagnostics);
                    }
                    if let (Some((port, _)), false) = (&synapse.target, has_target) {
                        diagnostics.push(
                            Diagnostic::error(format!("the projection does not say which variable `{}` drives", synapse.name()))
                                .primary(projection.synapse.span, format!("`{}` writes its target port `{}`", synapse.name(), port.name))
                                .secondary(port.span, "the port is declared here")
                                .help("bind it to a state of the target population, e.g. `{ target = ge }`"),
                        );
                    }
                }
                if let Some(connect) = &projection.connect {
                    check_connect(connect, diagnostics);
                    if let ast::Connect::Where { condition, .. } = connect {
                        crate::reductions::resolve_in(
                            condition,
                            &pops,
                            Err("a `where` condition"),
                            diagnostics,
                        );
                    }
                }
                if let Some(delay) = &projection.delay {
                    check_net_expr(delay, NetContext::Synapse, diagnostics);
                    crate::reductions::resolve_in(delay, &pops, Err("a delay"), diagnostics);
                }
                if let Some((word, delay)) = &projection.dendritic_delay {
                    if word.name != "dendritic" {
                        diagnostics.push(
                            Diagnostic::error(format!(
                                "expected `delay AXONAL, dendritic DENDRITIC`, found `{}`",
                                word.name
                            ))
                            .primary(word.span, "unknown kind of delay")
                            .note("the first delay is axonal (before the synapse); `, dendritic T` adds the delay after it"),
                        );
                    }
                    check_net_expr(delay, NetContext::Constant, diagnostics);
                }
            }
            NetItem::Input(input) => {
                if let Some(PopulationInfo {
                    model: Some(model), ..
                }) = check_pop_ref(&pops, &input.population, diagnostics)
                {
                    match model.var(&input.variable.name) {
                        Some(var) if var.kind == VarKind::Input => diagnostics.push(
                            Diagnostic::error(format!(
                                "`{}` is an input of `{}`: kernel synapses drive it",
                                input.variable.name,
                                model.name()
                            ))
                            .primary(input.variable.span, "cannot be driven by a network input")
                            .secondary(var.span, "declared as `input` here")
                            .help("drive a parameter such as `I_e` instead, or bind a kernel synapse with `target = ...`"),
                        ),
                        Some(_) => {}
                        None => diagnostics.push(unknown_member(
                            model,
                            &input.variable,
                            "an input must drive a parameter or state of",
                        )),
                    }
                } else if let Some(PopulationInfo {
                    is_source: true, ..
                }) = pops.get(input.population.name.name.as_str())
                {
                    diagnostics.push(
                        Diagnostic::error("a spike source has no variables to drive")
                            .primary(input.population.span, "spike source"),
                    );
                }
                match &input.source {
                    ast::InputSource::Expr(expr) | ast::InputSource::Add(expr) => {
                        check_net_expr(expr, NetContext::Input, diagnostics);
                        crate::reductions::resolve_in(expr, &pops, Ok(()), diagnostics);
                    }
                    ast::InputSource::File { every, .. } => {
                        check_net_expr(every, NetContext::Constant, diagnostics)
                    }
                }
            }
            NetItem::Record {
                what, of, every, ..
            } => {
                for pop in of {
                    let info = check_pop_ref(&pops, pop, diagnostics);
                    if let (RecordWhatRef::Vars(vars), Some(info)) =
                        (RecordWhatRef::from(what), info)
                    {
                        for var in vars {
                            match info.model {
                                Some(model)
                                    if model.var(&var.name).is_some()
                                        || model.let_value(&var.name).is_some() => {}
                                Some(model) => diagnostics.push(unknown_member(
                                    model,
                                    var,
                                    "cannot record: no variable of",
                                )),
                                None => diagnostics.push(
                                    Diagnostic::error(format!(
                                        "a spike source has no variable `{}`",
                                        var.name
                                    ))
                                    .primary(
                                        var.span,
                                        "only `record spikes of` works for spike sources",
                                    ),
                                ),
                            }
                        }
                    }
                }
                if let Some(every) = every {
                    check_net_expr(every, NetContext::Constant, diagnostics);
                }
            }
            NetItem::RecordSynapses {
                what,
                source,
                target,
                every,
                span,
            } => {
                let source_ok = check_pop_ref(&pops, source, diagnostics).is_some();
                let target_ok = check_pop_ref(&pops, target, diagnostics).is_some();
                if let Some(every) = every {
                    check_net_expr(every, NetContext::Constant, diagnostics);
                }
                let vars = match what {
                    ast::RecordWhat::Spikes(spikes) => {
                        diagnostics.push(
                            Diagnostic::error("synapses have no spikes to record")
                                .primary(*spikes, "record spikes of a population instead")
                                .help(format!(
                                    "`record w of {} -> {}` records a synapse variable `w`",
                                    source.name.name, target.name.name
                                )),
                        );
                        continue;
                    }
                    ast::RecordWhat::Vars(vars) => vars,
                };
                if !(source_ok && target_ok) {
                    continue;
                }
                let projection = network.items.iter().find_map(|item| match item {
                    NetItem::Projection(p)
                        if p.sources.iter().any(|s| s.name.name == source.name.name)
                            && p.targets.iter().any(|t| t.name.name == target.name.name) =>
                    {
                        Some(p)
                    }
                    _ => None,
                });
                let Some(projection) = projection else {
                    diagnostics.push(
                        Diagnostic::error(format!(
                            "there is no projection `{} -> {}` to record from",
                            source.name.name, target.name.name
                        ))
                        .primary(source.span.to(target.span), "no such projection"),
                    );
                    continue;
                };
                let Some(synapse) = resolved
                    .lookup_model(module, &projection.synapse.name)
                    .filter(|m| m.ast.kind == ModelKind::Synapse)
                else {
                    continue;
                };
                for var in vars {
                    match synapse.var(&var.name) {
                        Some(decl) if decl.placement == Placement::Each => {}
                        Some(decl) => diagnostics.push(
                            Diagnostic::error(format!(
                                "cannot record `{}` per synapse: it lives {}",
                                var.name,
                                match decl.placement {
                                    Placement::Pre => "on the presynaptic neuron (one value per neuron)",
                                    Placement::Post => "on the postsynaptic neuron (one value per neuron)",
                                    _ => "once for the whole projection",
                                }
                            ))
                            .primary(var.span, "not a per-synapse variable")
                            .secondary(decl.span, "declared here")
                            .note(format!(
                                "`record ... of {} -> {}` records per-synapse `state` and `param`s of `{}`",
                                source.name.name,
                                target.name.name,
                                synapse.name()
                            )),
                        ),
                        None => diagnostics.push(unknown_member(
                            synapse,
                            var,
                            "cannot record: no variable of",
                        )),
                    }
                }
                let _ = span;
            }
            NetItem::Run { duration, span } => {
                if let Some(previous) = run.replace(*span) {
                    diagnostics.push(
                        Diagnostic::error("the run length is given twice")
                            .primary(*span, "again here")
                            .secondary(previous, "first here"),
                    );
                }
                check_net_expr(duration, NetContext::Constant, diagnostics);
            }
            NetItem::Setting { .. }
            | NetItem::Population { .. }
            | NetItem::SpikeSource { .. }
            | NetItem::Error(_) => {}
        }
    }
}

enum RecordWhatRef<'a> {
    Spikes,
    Vars(&'a [ast::Ident]),
}

impl<'a> From<&'a ast::RecordWhat> for RecordWhatRef<'a> {
    fn from(what: &'a ast::RecordWhat) -> Self {
        match what {
            ast::RecordWhat::Spikes(_) => RecordWhatRef::Spikes,
            ast::RecordWhat::Vars(vars) => RecordWhatRef::Vars(vars),
        }
    }
}

fn declare_population<'a>(
    declared: &mut HashMap<&'a str, Span>,
    name: &'a ast::Ident,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if let Some(previous) = declared.insert(&name.name, name.span) {
        diagnostics.push(
            Diagnostic::error(format!("the population `{}` is declared twice", name.name))
                .primary(name.span, "declared again here")
                .secondary(previous, "first declared here"),
        );
    }
}

fn check_pop_ref<'p, 'a>(
    pops: &'p BTreeMap<&'a str, PopulationInfo<'a>>,
    pop: &ast::PopRef,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<&'p PopulationInfo<'a>> {
    if let Some((a, b)) = &pop.range {
        check_net_expr(a, NetContext::Constant, diagnostics);
        check_net_expr(b, NetContext::Constant, diagnostics);
    }
    match pops.get(pop.name.name.as_str()) {
        Some(info) => Some(info),
        None => {
            let mut d = Diagnostic::error(format!("unknown population `{}`", pop.name.name))
                .primary(pop.name.span, "not declared in this network");
            if let Some(best) = did_you_mean(&pop.name.name, pops.keys().copied()) {
                d = d.help(format!("did you mean `{best}`?"));
            }
            diagnostics.push(d);
            None
        }
    }
}

fn unknown_model(
    resolved: &Resolved,
    module: usize,
    name: &ast::Ident,
    kind: ModelKind,
) -> Diagnostic {
    let d = Diagnostic::error(format!("unknown {} model `{}`", kind.word(), name.name))
        .primary(name.span, "not defined or imported");
    let candidates = resolved.scopes[module]
        .iter()
        .filter(|(_, &i)| resolved.models[i].ast.kind == kind)
        .map(|(n, _)| n.as_str());
    if let Some(best) = did_you_mean(&name.name, candidates) {
        return d.help(format!("did you mean `{best}`?"));
    }
    let library = stdlib_models(kind);
    let defined_in = library
        .iter()
        .find(|(_, names)| names.contains(&name.name.as_str()));
    if let Some((module, _)) = defined_in {
        return d.help(format!(
            "`{}` is in the standard library: add `import stdlib.{module}`",
            name.name
        ));
    }
    let all = library.iter().flat_map(|(_, names)| names.iter().copied());
    if let Some(best) = did_you_mean(&name.name, all) {
        let (module, _) = library
            .iter()
            .find(|(_, names)| names.contains(&best))
            .expect("the suggestion is one of the names");
        return d.help(format!(
            "did you mean `{best}`, from the standard library (`import stdlib.{module}`)?"
        ));
    }
    let modules: Vec<String> = library
        .iter()
        .map(|(module, _)| format!("stdlib.{module}"))
        .collect();
    d.help(format!(
        "define it in this file or import the file that defines it{}",
        if modules.is_empty() {
            String::new()
        } else {
            format!(" (standard library: {})", modules.join(", "))
        }
    ))
}

/// The standard-library modules that define models of `kind`, each with those models' names,
/// found by parsing the modules (only on this error path, so only when a name is unknown).
fn stdlib_models(kind: ModelKind) -> Vec<(&'static str, Vec<&'static str>)> {
    stdlib::modules()
        .filter_map(|module| {
            let text = stdlib::source(module)?;
            let (file, _) = parser::parse_file(FileId(u32::MAX), text);
            let names: Vec<&'static str> = file
                .items
                .iter()
                .filter_map(|item| match item {
                    Item::Model(m) if m.kind == kind => {
                        let span = m.name.span;
                        text.get(span.start as usize..span.end as usize)
                    }
                    _ => None,
                })
                .collect();
            (!names.is_empty()).then_some((module, names))
        })
        .collect()
}

/// A parameter listing like `tau_m: ms, v_th: mV`, for errors about unknown names.
pub fn describe_vars(model: &ModelInfo, filter: impl Fn(&ast::VarDecl) -> bool) -> String {
    model
        .vars
        .iter()
        .filter(|v| filter(v))
        .map(|v| format!("{}: {}", v.name.name, unit_text(&v.unit)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unit annotation as the user wrote it.
pub fn unit_text(unit: &ast::UnitExpr) -> String {
    match &unit.kind {
        ast::UnitExprKind::One => "1".to_string(),
        ast::UnitExprKind::Name(n) => n.clone(),
        ast::UnitExprKind::UnitOf(port) => format!("[{}]", port.name),
        ast::UnitExprKind::Mul(a, b) => format!("{}*{}", unit_text(a), unit_text(b)),
        ast::UnitExprKind::Div(a, b) => format!("{}/{}", unit_text(a), unit_text(b)),
        ast::UnitExprKind::Pow(a, n) => format!("{}^{n}", unit_text(a)),
        ast::UnitExprKind::Error => "?".to_string(),
    }
}

fn unknown_member(model: &ModelInfo, name: &ast::Ident, what: &str) -> Diagnostic {
    let mut d = Diagnostic::error(format!(
        "`{}` has no variable `{}`",
        model.name(),
        name.name
    ))
    .primary(name.span, format!("{what} `{}`", model.name()));
    let candidates = model.vars.iter().map(|v| v.name.name.as_str());
    if let Some(best) = did_you_mean(&name.name, candidates) {
        d = d.help(format!("did you mean `{best}`?"));
    }
    d.note(format!(
        "`{}` has: {}",
        model.name(),
        describe_vars(model, |_| true)
    ))
}

fn check_init_name(model: &ModelInfo, init: &ast::Init, diagnostics: &mut Vec<Diagnostic>) {
    match model.symbols.get(&init.name.name) {
        Some(SymbolInfo {
            symbol:
                Symbol::Var {
                    kind: VarKind::Input,
                    ..
                },
            span,
        }) => diagnostics.push(
            Diagnostic::error(format!(
                "`{}` is an input of `{}` and cannot be set",
                init.name.name,
                model.name()
            ))
            .primary(init.name.span, "the sum of the kernel synapses bound to it")
            .secondary(*span, "declared as `input` here"),
        ),
        Some(SymbolInfo {
            symbol: Symbol::Var { .. },
            ..
        }) => {}
        Some(SymbolInfo {
            symbol: Symbol::Let,
            span,
        }) => diagnostics.push(
            Diagnostic::error(format!(
                "`{}` is a `let` expression and cannot be set",
                init.name.name
            ))
            .primary(init.name.span, "computed, not stored")
            .secondary(*span, "defined here"),
        ),
        Some(SymbolInfo {
            symbol: Symbol::Target,
            ..
        }) => diagnostics.push(
            Diagnostic::error(format!("`{}` is the target port", init.name.name)).primary(
                init.name.span,
                "bind it with `target = <variable of the target population>`",
            ),
        ),
        None => {
            let kind = "parameter or state";
            let mut d = Diagnostic::error(format!(
                "unknown {kind} `{}` of `{}`",
                init.name.name,
                model.name()
            ))
            .primary(init.name.span, "not declared in the model");
            if let Some(best) = did_you_mean(
                &init.name.name,
                model.vars.iter().map(|v| v.name.name.as_str()),
            ) {
                d = d.help(format!("did you mean `{best}`?"));
            }
            let params = describe_vars(model, |v| v.kind == VarKind::Param);
            let states = describe_vars(model, |v| v.kind == VarKind::State);
            d = d.note(format!(
                "`{}` has parameters: {}; state: {}",
                model.name(),
                if params.is_empty() {
                    "none".to_string()
                } else {
                    params
                },
                if states.is_empty() {
                    "none".to_string()
                } else {
                    states
                }
            ));
            diagnostics.push(d);
        }
    }
}

fn check_target_binding(
    synapse: &ModelInfo,
    pops: &BTreeMap<&str, PopulationInfo<'_>>,
    projection: &ast::Projection,
    init: &ast::Init,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if synapse.target.is_none() {
        diagnostics.push(
            Diagnostic::error(format!("`{}` has no target port to bind", synapse.name()))
                .primary(init.name.span, "nothing to bind")
                .help("declare one in the synapse with `target <name>: <unit>`"),
        );
        return;
    }
    let ast::ExprKind::Name(variable) = &init.value.kind else {
        diagnostics.push(
            Diagnostic::error("`target` must name a variable of the target population")
                .primary(init.value.span, "not a variable name")
                .help("for example `target = ge`"),
        );
        return;
    };
    for target in &projection.targets {
        if let Some(PopulationInfo {
            model: Some(model), ..
        }) = pops.get(target.name.name.as_str())
        {
            let kernel = synapse.output.is_some();
            match model.var(&variable.name) {
                Some(var) if var.kind == VarKind::State && !kernel => {}
                Some(var) if var.kind == VarKind::Input && kernel => {}
                Some(var) if kernel => diagnostics.push(
                    Diagnostic::error(format!(
                        "the kernel synapse `{}` drives `{}`, which is not an input of `{}`",
                        synapse.name(),
                        variable.name,
                        model.name()
                    ))
                    .primary(variable.span, "a kernel synapse's output goes into an `input`")
                    .secondary(var.span, "declared here")
                    .note(match describe_vars(model, |v| v.kind == VarKind::Input) {
                        inputs if inputs.is_empty() => format!("`{}` declares no `input`; a neuron declares one with `input I_syn: pA`", model.name()),
                        inputs => format!("the inputs of `{}` are: {inputs}", model.name()),
                    }),
                ),
                Some(var) if var.kind == VarKind::Input => diagnostics.push(
                    Diagnostic::error(format!(
                        "`{}` adds into `{}`, which is an input of `{}`",
                        synapse.name(),
                        variable.name,
                        model.name()
                    ))
                    .primary(variable.span, "only kernel synapses drive an `input`")
                    .secondary(var.span, "declared as `input` here")
                    .help("bind a state variable, or use a kernel synapse (a synapse whose target has a value, as in `stdlib.synapses.current`)"),
                ),
                Some(var) => diagnostics.push(
                    Diagnostic::error(format!(
                        "the target `{}` is a parameter of `{}`",
                        variable.name,
                        model.name()
                    ))
                    .primary(variable.span, "synapses must write into a `state` variable")
                    .secondary(var.span, "declared as `param` here"),
                ),
                None => {
                    let mut d =
                        unknown_member(model, variable, "cannot bind the target: no variable of");
                    let states = describe_vars(model, |v| v.kind == VarKind::State);
                    d.notes = vec![format!(
                        "the state variables of `{}` are: {states}",
                        model.name()
                    )];
                    if let Some(best) = did_you_mean(
                        &variable.name,
                        model
                            .vars
                            .iter()
                            .filter(|v| v.kind == VarKind::State)
                            .map(|v| v.name.name.as_str()),
                    ) {
                        d.help = Some(format!("did you mean `{best}`?"));
                    }
                    diagnostics.push(d);
                }
            }
        }
    }
}

fn check_connect(connect: &ast::Connect, diagnostics: &mut Vec<Diagnostic>) {
    match connect {
        ast::Connect::Rule { rule, args, span } => {
            let Some((_, required, optional)) =
                CONNECT_RULES.iter().find(|(name, _, _)| *name == rule.name)
            else {
                let names: Vec<&str> = CONNECT_RULES.iter().map(|(n, _, _)| *n).collect();
                let mut d = Diagnostic::error(format!("unknown connectivity rule `{}`", rule.name))
                    .primary(rule.span, "not a rule");
                d = match did_you_mean(&rule.name, names.iter().copied()) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None => d.note(format!(
                        "the rules are: {}, `where <condition over i and j>`, and `from \"file.npy\"`",
                        names.join(", ")
                    )),
                };
                diagnostics.push(d);
                return;
            };
            let mut given: Vec<&str> = Vec::new();
            let known: Vec<&str> = required.iter().chain(optional.iter()).copied().collect();
            // Required arguments nobody supplied, by name or by position: an unknown name is
            // most likely a misspelling of one of them.
            let missing: Vec<&str> = required
                .iter()
                .enumerate()
                .filter(|(position, r)| {
                    !args.iter().enumerate().any(|(i, a)| match &a.name {
                        Some(n) => n.name == **r,
                        None => i == *position,
                    })
                })
                .map(|(_, r)| *r)
                .collect();
            let mut unknown_names = 0;
            for (position, arg) in args.iter().enumerate() {
                let name = match &arg.name {
                    Some(name) => {
                        if !known.contains(&name.name.as_str()) {
                            unknown_names += 1;
                            let mut d = Diagnostic::error(format!(
                                "`{}` has no argument `{}`",
                                rule.name, name.name
                            ))
                            .primary(name.span, "unknown argument");
                            let guess = did_you_mean(&name.name, known.iter().copied()).or(
                                if missing.len() == 1 {
                                    Some(missing[0])
                                } else {
                                    None
                                },
                            );
                            d = match guess {
                                Some(best) => d.help(format!("did you mean `{best}`?")),
                                None if known.is_empty() => {
                                    d.note(format!("`{}` takes no arguments", rule.name))
                                }
                                None => d.note(format!("its arguments are: {}", known.join(", "))),
                            };
                            diagnostics.push(d);
                            continue;
                        }
                        name.name.as_str()
                    }
                    None => match known.get(position) {
                        Some(name) => name,
                        None => {
                            diagnostics.push(
                                Diagnostic::error(format!(
                                    "too many arguments for `{}`",
                                    rule.name
                                ))
                                .primary(arg.value.span, "extra argument")
                                .note(if known.is_empty() {
                                    format!("`{}` takes no arguments", rule.name)
                                } else {
                                    format!("its arguments are: {}", known.join(", "))
                                }),
                            );
                            continue;
                        }
                    },
                };
                if given.contains(&name) {
                    diagnostics.push(
                        Diagnostic::error(format!("`{name}` is given twice"))
                            .primary(arg.value.span, "again here"),
                    );
                }
                given.push(name);
                check_net_expr(&arg.value, NetContext::Constant, diagnostics);
            }
            for required in required.iter() {
                // A misspelt argument was already reported, with the missing one as its fix.
                let reported_as_misspelling = unknown_names > 0 && missing.len() == 1;
                if !given.contains(required) && !reported_as_misspelling {
                    diagnostics.push(
                        Diagnostic::error(format!(
                            "`{}` needs the argument `{required}`",
                            rule.name
                        ))
                        .primary(*span, format!("missing `{required}`"))
                        .help(format!("for example `{}({required} = ...)`", rule.name)),
                    );
                }
            }
        }
        ast::Connect::Where { condition, .. } => {
            check_net_expr(condition, NetContext::Synapse, diagnostics)
        }
        ast::Connect::File { .. } => {}
    }
}
