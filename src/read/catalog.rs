//! Catalog files (`inventory load`, `--catalog`: sku, name, unit_price,
//! currency, on_hand) and delivery files (`inventory receive`: sku, quantity),
//! CSV or JSONL. All rows are checked; one bad row rejects the file.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::Value;

use super::{open_source, resolve_format, InputError};
use crate::model::escape::unescape_cell;
use crate::model::money::currency_exponent;
use crate::model::order::Product;
use crate::model::Format;
use crate::validate::{fields, show};

pub const CATALOG_COLUMNS: [&str; 5] = ["sku", "name", "unit_price", "currency", "on_hand"];

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("catalog {path} rejected, nothing was changed: {}", problems.join("; "))]
    Rejected { path: String, problems: Vec<String> },
}

const MAX_LISTED: usize = 20;

/// Read and check a whole catalog file.
pub fn read_catalog(
    path: &str,
    format: Option<Format>,
    delimiter: Option<u8>,
) -> Result<Vec<Product>, CatalogError> {
    let rows = rows_of(path, format, delimiter, &CATALOG_COLUMNS)?;
    let mut problems = Vec::new();
    let mut products = Vec::with_capacity(rows.len());
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let push = |problems: &mut Vec<String>, m: String| {
        if problems.len() < MAX_LISTED {
            problems.push(m);
        } else if problems.len() == MAX_LISTED {
            problems.push("and more".into());
        }
    };
    for row in rows {
        let (line, v) = match row {
            Ok(r) => r,
            Err((line, m)) => {
                push(&mut problems, format!("line {line}: {m}"));
                continue;
            }
        };
        let [sku, name, price, currency, on_hand] = &v;
        let mut bad = |field: &str, value: &str, rule: &str| {
            let what = if value.is_empty() {
                format!("line {line}: {field} is empty")
            } else {
                format!("line {line}: {field} {} {rule}", show(value, false))
            };
            push(&mut problems, what);
        };
        let mut ok = true;
        if let Err(rule) = fields::sku(sku) {
            bad("sku", sku, rule);
            ok = false;
        }
        if name.is_empty() {
            bad("name", name, "");
            ok = false;
        } else if let Err(rule) = fields::text(name) {
            bad("name", name, rule);
            ok = false;
        }
        if let Err(rule) = fields::currency(currency) {
            bad("currency", currency, rule);
            ok = false;
        }
        let price = fields::amount(price, currency_exponent(currency))
            .map_err(|rule| bad("unit_price", price, &rule));
        let stock = fields::on_hand(on_hand).map_err(|rule| bad("on_hand", on_hand, rule));
        if let Some(prev) = first_line.insert(sku.clone(), line) {
            push(
                &mut problems,
                format!(
                    "line {line}: sku {} already appears on line {prev}",
                    show(sku, false)
                ),
            );
            ok = false;
        }
        if let (true, Ok(unit_price), Ok(on_hand)) = (ok, price, stock) {
            products.push(Product {
                sku: sku.clone(),
                name: name.clone(),
                unit_price,
                currency: currency.clone(),
                on_hand,
            });
        }
    }
    if problems.is_empty() {
        Ok(products)
    } else {
        Err(CatalogError::Rejected {
            path: path.to_string(),
            problems,
        })
    }
}

type Row<const N: usize> = Result<(u64, [String; N]), (u64, String)>;

pub const DELIVERY_COLUMNS: [&str; 2] = ["sku", "quantity"];

/// Largest number of units one delivery line may add.
const MAX_DELIVERY: i64 = 1_000_000_000;

/// A delivery line: its line number, sku and units.
pub type Delivery = (u64, String, i64);

/// Read and check a whole delivery file (`inventory receive`).
pub fn read_deliveries(
    path: &str,
    format: Option<Format>,
    delimiter: Option<u8>,
) -> Result<Vec<Delivery>, CatalogError> {
    let rows = rows_of(path, format, delimiter, &DELIVERY_COLUMNS)?;
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Err((line, m)) => problems.push(format!("line {line}: {m}")),
            Ok((line, [sku, quantity])) => {
                let sku_ok = fields::sku(&sku).map_err(|rule| {
                    problems.push(format!("line {line}: sku {} {rule}", show(&sku, false)))
                });
                let n = fields::whole_number(&quantity, 1, MAX_DELIVERY);
                if n.is_none() {
                    problems.push(format!(
                        "line {line}: quantity {} must be a whole number from 1 to {MAX_DELIVERY}",
                        show(&quantity, false)
                    ));
                }
                if let (Ok(()), Some(n)) = (sku_ok, n) {
                    out.push((line, sku, n));
                }
            }
        }
    }
    problems.truncate(MAX_LISTED);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(CatalogError::Rejected {
            path: path.to_string(),
            problems,
        })
    }
}

/// The rows of a catalog or delivery file, each with the named columns.
fn rows_of<const N: usize>(
    path: &str,
    format: Option<Format>,
    delimiter: Option<u8>,
    columns: &[&str; N],
) -> Result<Vec<Row<N>>, CatalogError> {
    let format = resolve_format(path, format)?;
    let source = open_source(path)?;
    let delimiter = delimiter.unwrap_or(format.default_delimiter());
    // A line of a catalog or delivery longer than any record may be: the
    // file is something else (`/dev/zero`), and memory must not follow it.
    let reader: Box<dyn BufRead + Send> = Box::new(super::LineGuard::new(
        source.reader,
        super::DEFAULT_MAX_RECORD_BYTES,
    ));
    match format {
        Format::Csv | Format::Tsv => csv_rows(path, reader, delimiter, columns),
        Format::Jsonl => jsonl_rows(path, reader, columns),
        Format::Xlsx => Err(InputError::UnknownFormat {
            path: path.to_string(),
        }
        .into()),
    }
}

fn csv_rows<const N: usize>(
    path: &str,
    mut reader: Box<dyn BufRead + Send>,
    delimiter: u8,
    columns: &[&str; N],
) -> Result<Vec<Row<N>>, CatalogError> {
    if reader
        .fill_buf()
        .map(|b| b.starts_with(b"\xEF\xBB\xBF"))
        .unwrap_or(false)
    {
        reader.consume(3);
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(reader);
    let mut records = rdr.byte_records();
    let header = loop {
        match records.next() {
            None => return Err(InputError::NoHeader { path: path.into() }.into()),
            Some(Err(e)) => return Err(read_error(path, 1, e).into()),
            Some(Ok(h)) if h.len() == 1 && h[0].trim_ascii().is_empty() => continue,
            Some(Ok(h)) => break h,
        }
    };
    let names: Vec<String> = header
        .iter()
        .map(|n| String::from_utf8_lossy(n).trim().to_ascii_lowercase())
        .collect();
    let mut index = [0usize; N];
    for (i, col) in columns.iter().enumerate() {
        let found: Vec<usize> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| n == col)
            .map(|(p, _)| p)
            .collect();
        match found.as_slice() {
            [p] => index[i] = *p,
            [] => {
                return Err(InputError::MissingColumn {
                    path: path.into(),
                    column: col.to_string(),
                    found: names.join(","),
                }
                .into())
            }
            _ => {
                return Err(InputError::DuplicateColumn {
                    path: path.into(),
                    column: col.to_string(),
                }
                .into())
            }
        }
    }
    let mut rows = Vec::new();
    for rec in records {
        let rec = rec.map_err(|e| read_error(path, 0, e))?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
            continue;
        }
        if rec.len() != header.len() {
            rows.push(Err((
                line,
                format!(
                    "wrong number of fields: {} where the header has {}",
                    rec.len(),
                    header.len()
                ),
            )));
            continue;
        }
        let Ok(rec) = csv::StringRecord::from_byte_record(rec) else {
            rows.push(Err((line, "not valid UTF-8".into())));
            continue;
        };
        rows.push(Ok((
            line,
            index.map(|i| unescape_cell(rec[i].trim()).to_string()),
        )));
    }
    Ok(rows)
}

fn jsonl_rows<const N: usize>(
    path: &str,
    reader: Box<dyn BufRead + Send>,
    columns: &[&str; N],
) -> Result<Vec<Row<N>>, CatalogError> {
    let mut rows = Vec::new();
    for (n, line) in reader.split(b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let bytes = line.map_err(|source| InputError::Read {
            path: path.into(),
            line: line_no,
            source,
        })?;
        let bytes = if n == 0 {
            bytes
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(&bytes)
                .to_vec()
        } else {
            bytes
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => {
                let mut bad = None;
                let values = columns.map(|k| match map.get(k) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.trim().to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(_) => {
                        bad = Some(format!("{k} must be a string or a number"));
                        String::new()
                    }
                });
                rows.push(match bad {
                    Some(m) => Err((line_no, m)),
                    None => Ok((line_no, values)),
                });
            }
            Ok(_) => rows.push(Err((line_no, "not a JSON object".into()))),
            Err(e) => rows.push(Err((line_no, format!("invalid JSON: {e}")))),
        }
    }
    Ok(rows)
}

fn read_error(path: &str, line: u64, e: csv::Error) -> InputError {
    InputError::Read {
        path: path.into(),
        line,
        source: std::io::Error::other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn reads_csv_and_jsonl_catalogs() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(&dir, "c.csv", "\u{feff}SKU , name,unit_price,currency,on_hand,extra\nA-1,Mug,12.50,EUR,10,x\n\nB-2,'=Tea,100,JPY,0,y\n");
        let p = read_catalog(&csv, None, None).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].unit_price, 1250);
        assert_eq!(p[1].unit_price, 100);
        assert_eq!(p[1].name, "=Tea");
        let jsonl = write(&dir, "c.jsonl", "{\"sku\":\"A\",\"name\":\"x\",\"unit_price\":1.005,\"currency\":\"KWD\",\"on_hand\":3}\n");
        let p = read_catalog(&jsonl, None, None).unwrap();
        assert_eq!(p[0].unit_price, 1005);
        assert_eq!(p[0].on_hand, 3);
    }

    #[test]
    fn any_bad_row_rejects_the_file_naming_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let csv = write(
            &dir,
            "c.csv",
            "sku,name,unit_price,currency,on_hand\nA,Mug,12.5,EUR,10\nB,Tea,1.234,EUR,1\nA,Mug,1,EUR,-1\n",
        );
        let err = read_catalog(&csv, None, None).unwrap_err().to_string();
        assert!(err.contains("line 3: unit_price \"1.234\""), "{err}");
        assert!(err.contains("line 4: on_hand"), "{err}");
        assert!(err.contains("already appears on line 2"), "{err}");
        let missing = write(&dir, "m.csv", "sku,name,currency,on_hand\n");
        let err = read_catalog(&missing, None, None).unwrap_err();
        assert!(matches!(
            err,
            CatalogError::Input(InputError::MissingColumn { .. })
        ));
    }
}
