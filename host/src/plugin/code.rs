//! Static bounds on a component's code, checked before anything compiles it: a compile
//! bomb (a huge number of functions, a huge function body, a function with millions of
//! locals) is refused after one linear read of the bytes instead of tying up the
//! compiler's time and memory.

use wasmparser::{Parser, Payload};

use crate::limits::Limits;

/// What a component's code amounts to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CodeStats {
    /// Core modules inside the component.
    pub modules: u32,
    /// Function bodies, over all modules.
    pub functions: u32,
    /// Bytes of all function bodies.
    pub code_bytes: u64,
    /// Bytes of the largest function body.
    pub largest_body: u64,
    /// Most locals any one function declares.
    pub most_locals: u64,
}

/// Read the code of `bytes` (a component or module, nested modules included).
pub fn code_stats(bytes: &[u8]) -> Result<CodeStats, String> {
    let mut s = CodeStats::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ModuleSection { .. } => s.modules += 1,
            Payload::CodeSectionEntry(body) => {
                let len = body.range().len() as u64;
                s.functions += 1;
                s.code_bytes += len;
                s.largest_body = s.largest_body.max(len);
                let mut locals = 0u64;
                for group in body.get_locals_reader().map_err(|e| e.to_string())? {
                    let (n, _) = group.map_err(|e| e.to_string())?;
                    locals += u64::from(n);
                }
                s.most_locals = s.most_locals.max(locals);
            }
            _ => {}
        }
    }
    Ok(s)
}

/// The first of `limits`' code bounds that `s` breaks, described.
pub fn over_limits(s: &CodeStats, limits: &Limits) -> Option<String> {
    if s.functions > limits.code_functions {
        return Some(format!(
            "{} functions, more than the limit of {}",
            s.functions, limits.code_functions
        ));
    }
    if s.largest_body > limits.code_function_bytes {
        return Some(format!(
            "a function body of {} bytes, more than the limit of {}",
            s.largest_body, limits.code_function_bytes
        ));
    }
    if s.most_locals > limits.code_locals {
        return Some(format!(
            "a function with {} locals, more than the limit of {}",
            s.most_locals, limits.code_locals
        ));
    }
    None
}
