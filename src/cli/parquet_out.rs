//! A study's trials as a Parquet file (`export --format parquet`): the CSV export's columns,
//! typed — `value`/`value_i` and `metric_*` doubles, `param_*` as the parameter's own type
//! (double, int64, boolean, or UTF-8 when its values are of several kinds or strings), times in
//! milliseconds since the Unix epoch. A cell the trial lacks is null. One row group.
use mlt_protocol::records::{ParamValue, TrialRecord};
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical, ZstdLevel};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One column's cells.
enum Cells {
    F64(Vec<Option<f64>>),
    I64(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
}

struct Column {
    name: String,
    cells: Cells,
}

impl Column {
    fn f64(name: impl Into<String>, cells: Vec<Option<f64>>) -> Self {
        Column {
            name: name.into(),
            cells: Cells::F64(cells),
        }
    }
    fn i64(name: impl Into<String>, cells: Vec<Option<i64>>) -> Self {
        Column {
            name: name.into(),
            cells: Cells::I64(cells),
        }
    }
    fn str(name: impl Into<String>, cells: Vec<Option<String>>) -> Self {
        Column {
            name: name.into(),
            cells: Cells::Str(cells),
        }
    }

    fn schema(&self) -> parquet::errors::Result<Type> {
        let (physical, logical) = match self.cells {
            Cells::F64(_) => (Physical::DOUBLE, None),
            Cells::I64(_) => (Physical::INT64, None),
            Cells::Bool(_) => (Physical::BOOLEAN, None),
            Cells::Str(_) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        };
        Type::primitive_type_builder(&self.name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()
    }
}

/// Definition levels (1: present) and the present values.
fn split<T: Clone>(cells: &[Option<T>]) -> (Vec<i16>, Vec<T>) {
    let levels = cells.iter().map(|c| i16::from(c.is_some())).collect();
    (levels, cells.iter().flatten().cloned().collect())
}

/// A parameter's column: typed by the values it holds.
fn param_column(name: &str, ts: &[TrialRecord]) -> Column {
    let vals: Vec<Option<&ParamValue>> = ts.iter().map(|t| t.params.get(name)).collect();
    let all = |f: fn(&ParamValue) -> bool| vals.iter().flatten().all(|v| f(v));
    let col = format!("param_{name}");
    if all(|v| matches!(v, ParamValue::Int(_))) {
        let cells = vals
            .iter()
            .map(|v| match v {
                Some(ParamValue::Int(i)) => Some(*i),
                _ => None,
            })
            .collect();
        Column::i64(col, cells)
    } else if all(|v| matches!(v, ParamValue::Float(_) | ParamValue::Int(_))) {
        Column::f64(
            col,
            vals.iter()
                .map(|v| v.and_then(ParamValue::as_f64))
                .collect(),
        )
    } else if all(|v| matches!(v, ParamValue::Bool(_))) {
        let cells = vals
            .iter()
            .map(|v| match v {
                Some(ParamValue::Bool(b)) => Some(*b),
                _ => None,
            })
            .collect();
        Column {
            name: col,
            cells: Cells::Bool(cells),
        }
    } else {
        Column::str(
            col,
            vals.iter().map(|v| v.map(ToString::to_string)).collect(),
        )
    }
}

fn columns(ts: &[TrialRecord]) -> Vec<Column> {
    let n_values = ts
        .iter()
        .filter_map(|t| t.values.as_ref().map(Vec::len))
        .max()
        .unwrap_or(1);
    let mut cols = vec![
        Column::i64(
            "number",
            ts.iter().map(|t| Some(t.number.0 as i64)).collect(),
        ),
        Column::str(
            "state",
            ts.iter()
                .map(|t| Some(t.state.as_str().to_string()))
                .collect(),
        ),
        Column::i64(
            "attempt",
            ts.iter().map(|t| Some(i64::from(t.attempt))).collect(),
        ),
    ];
    for i in 0..n_values {
        let name = if n_values == 1 {
            "value".to_string()
        } else {
            format!("value_{i}")
        };
        let cells = ts
            .iter()
            .map(|t| t.values.as_ref().and_then(|v| v.get(i)).copied())
            .collect();
        cols.push(Column::f64(name, cells));
    }
    let params: BTreeSet<&String> = ts.iter().flat_map(|t| t.params.keys()).collect();
    cols.extend(params.iter().map(|n| param_column(n, ts)));
    let metrics: BTreeSet<&String> = ts.iter().flat_map(|t| t.metrics.keys()).collect();
    for m in metrics {
        let cells = ts.iter().map(|t| t.metrics.get(m).copied()).collect();
        cols.push(Column::f64(format!("metric_{m}"), cells));
    }
    cols.push(Column {
        name: "feasible".into(),
        cells: Cells::Bool(
            ts.iter()
                .map(|t| t.constraints.as_ref().map(|c| c.iter().all(|x| *x <= 0.0)))
                .collect(),
        ),
    });
    cols.push(Column::str(
        "origin",
        ts.iter()
            .map(|t| Some(super::output::origin_text(&t.origin)))
            .collect(),
    ));
    cols.push(Column::i64(
        "generation",
        ts.iter().map(|t| t.generation.map(i64::from)).collect(),
    ));
    let ms = |f: fn(&TrialRecord) -> Option<u64>| -> Vec<Option<i64>> {
        ts.iter().map(|t| f(t).map(|x| x as i64)).collect()
    };
    cols.push(Column::i64("created_ms", ms(|t| Some(t.created_ms))));
    cols.push(Column::i64("started_ms", ms(|t| t.started_ms)));
    cols.push(Column::i64("finished_ms", ms(|t| t.finished_ms)));
    cols.push(Column::str(
        "message",
        ts.iter().map(|t| t.message.clone()).collect(),
    ));
    cols
}

/// The trials as a Parquet file's bytes.
pub fn trials_parquet(ts: &[TrialRecord]) -> parquet::errors::Result<Vec<u8>> {
    let cols = columns(ts);
    let fields = cols
        .iter()
        .map(|c| c.schema().map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(
        Type::group_type_builder("trials")
            .with_fields(fields)
            .build()?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_created_by(format!("mlt-cluster {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, props)?;
    let mut rg = w.next_row_group()?;
    for c in &cols {
        let Some(mut cw) = rg.next_column()? else {
            break;
        };
        match &c.cells {
            Cells::F64(v) => {
                let (levels, vals) = split(v);
                cw.typed::<DoubleType>()
                    .write_batch(&vals, Some(&levels), None)?;
            }
            Cells::I64(v) => {
                let (levels, vals) = split(v);
                cw.typed::<Int64Type>()
                    .write_batch(&vals, Some(&levels), None)?;
            }
            Cells::Bool(v) => {
                let (levels, vals) = split(v);
                cw.typed::<BoolType>()
                    .write_batch(&vals, Some(&levels), None)?;
            }
            Cells::Str(v) => {
                let (levels, vals) = split(v);
                let vals: Vec<ByteArray> =
                    vals.iter().map(|s| ByteArray::from(s.as_bytes())).collect();
                cw.typed::<ByteArrayType>()
                    .write_batch(&vals, Some(&levels), None)?;
            }
        }
        cw.close()?;
    }
    rg.close()?;
    w.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlt_protocol::ids::{StudyId, TrialId};
    use mlt_protocol::records::{TrialOrigin, TrialState};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn trial(n: u64, value: Option<f64>, kind: &str) -> TrialRecord {
        TrialRecord {
            study: StudyId(1),
            number: TrialId(n),
            state: if value.is_some() {
                TrialState::Complete
            } else {
                TrialState::Failed
            },
            attempt: 1,
            values: value.map(|v| vec![v]),
            params: [
                ("lr".to_string(), ParamValue::Float(0.1 * n as f64)),
                ("depth".to_string(), ParamValue::Int(n as i64)),
                ("kind".to_string(), ParamValue::Str(kind.into())),
            ]
            .into(),
            intermediate: Default::default(),
            node: None,
            slot: None,
            message: value.is_none().then(|| "boom".to_string()),
            created_ms: 1000 + n,
            started_ms: Some(2000 + n),
            finished_ms: None,
            origin: TrialOrigin::Sampler,
            generation: None,
            constraints: None,
            metrics: [("sharpe".to_string(), 1.5 + n as f64)].into(),
        }
    }

    #[test]
    fn reads_back_typed_with_nulls_where_a_trial_has_no_cell() {
        let ts = vec![trial(0, Some(0.5), "a"), trial(1, None, "b")];
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), trials_parquet(&ts).unwrap()).unwrap();
        let r = SerializedFileReader::new(std::fs::File::open(f.path()).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 2);
        let rows: Vec<Vec<(String, Field)>> = r
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .get_column_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        let get = |i: usize, k: &str| rows[i].iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get(0, "value"), Field::Double(0.5));
        assert_eq!(get(1, "value"), Field::Null);
        assert_eq!(get(1, "param_depth"), Field::Long(1));
        assert_eq!(get(1, "param_lr"), Field::Double(0.1));
        assert_eq!(get(1, "param_kind"), Field::Str("b".into()));
        assert_eq!(get(1, "metric_sharpe"), Field::Double(2.5));
        assert_eq!(get(1, "state"), Field::Str("failed".into()));
        assert_eq!(get(1, "message"), Field::Str("boom".into()));
        assert_eq!(get(0, "message"), Field::Null);
        assert_eq!(get(0, "started_ms"), Field::Long(2000));
    }
}
