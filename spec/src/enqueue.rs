//! `[[enqueue]]`: parameter sets to evaluate first, checked against the space.
use crate::raw::{RawTable, S};
use crate::space::{fits, value_of};
use crate::validate::Ctx;
use mlt_protocol::records::{ParamValue, Params};
use mlt_protocol::spec::*;
use std::ops::Range;

/// `[[enqueue]]`: each table is a (possibly partial) parameter set checked against the space.
pub(crate) fn enqueue(cx: &mut Ctx, tables: &[S<RawTable>], space: &SearchSpace) -> Vec<Params> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let mut params = Params::new();
        for (name, v) in t.get_ref() {
            let key = format!("enqueue[{i}].{name}");
            let span: Range<usize> = v.span();
            let Some(p) = space.params.iter().find(|p| &p.name == name) else {
                cx.err(span, key, "is not a parameter of the space");
                continue;
            };
            let Some(value) = value_of(v.get_ref()) else {
                cx.err(span, key, "must be a string, number or boolean");
                continue;
            };
            // An integer written for a float parameter is that float.
            let value = match (&p.dist, value) {
                (Distribution::Float { .. }, ParamValue::Int(i)) => ParamValue::Float(i as f64),
                (_, v) => v,
            };
            if let Err(e) = fits(&p.dist, &value) {
                cx.err(span, key, e);
                continue;
            }
            params.insert(name.clone(), value);
        }
        // A value for a parameter that its parents make inactive is a mistake worth naming.
        let mut decided = Params::new();
        for p in &space.params {
            if let Some(v) = params.get(&p.name) {
                if SearchSpace::is_active(p, &decided) || p.when.is_empty() {
                    decided.insert(p.name.clone(), v.clone());
                } else if p.when.iter().all(|(parent, _)| params.contains_key(parent)) {
                    cx.err(
                        t.get_ref()[&p.name].span(),
                        format!("enqueue[{i}].{}", p.name),
                        "is inactive for the parent values given",
                    );
                } else {
                    decided.insert(p.name.clone(), v.clone());
                }
            }
        }
        out.push(params);
    }
    out
}
