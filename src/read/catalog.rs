//! Catalog files (`inventory load`, `--catalog`: sku, name, unit_price,
//! currency, on_hand) and delivery files (`inventory receive`: sku, quantity),
//! CSV or JSONL. Every line is checked and every bad one named at once (up to
//! a limit, then how many more), so one try tells the whole fix; one bad
//! line rejects the file.

use std::collections::HashMap;
use std::fmt;
use std::io::BufRead;

use serde_json::Value;

use super::{header, open_text, resolve_format, HeaderAt, InputError, ReadOptions};
use crate::model::escape::unescape_cell;
use crate::model::fields;
use crate::model::money::currency_exponent;
use crate::model::order::Product;
use crate::model::text::show;
use crate::model::CatalogFormat;

pub const CATALOG_COLUMNS: [&str; 5] = ["sku", "name", "unit_price", "currency", "on_hand"];

/// Which kind of file was rejected, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Catalog,
    Delivery,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Catalog => "catalog",
            FileKind::Delivery => "delivery file",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{kind} {path} rejected, nothing was changed: {problems}; correct the file and run the command again")]
    Rejected {
        kind: FileKind,
        path: String,
        problems: Problems,
    },
}

impl crate::exit::ExitStatus for CatalogError {
    /// A catalog or delivery file that is refused is the caller's to fix.
    fn exit_code(&self) -> Option<u8> {
        Some(crate::exit::USAGE)
    }
}

/// Bad lines listed in a message; past them, only how many more.
const MAX_LISTED: usize = 20;

/// The bad lines of a file, in line order: the first `MAX_LISTED` kept
/// (memory stays bounded whatever the file), the rest counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    listed: Vec<(u64, String)>,
    more: usize,
}

impl Problems {
    pub fn push(&mut self, line: u64, message: String) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push((line, message));
            return;
        }
        self.more += 1;
        // Keep the earliest lines, whatever order they were found in.
        let last = (0..self.listed.len()).max_by_key(|i| self.listed[*i].0);
        if let Some(i) = last.filter(|i| self.listed[*i].0 > line) {
            self.listed[i] = (line, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// How many problems in all.
    pub fn len(&self) -> usize {
        self.listed.len() + self.more
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut listed: Vec<&(u64, String)> = self.listed.iter().collect();
        listed.sort_by_key(|(line, _)| *line);
        for (i, (line, message)) in listed.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "line {line}: {message}")?;
        }
        if self.more > 0 {
            write!(f, "; and {} more", self.more)?;
        }
        Ok(())
    }
}

/// Read and check a whole catalog file.
pub fn read_catalog(
    path: &str,
    format: Option<CatalogFormat>,
    opts: &ReadOptions,
) -> Result<Vec<Product>, CatalogError> {
    let rows = rows_of(path, format, opts, &CATALOG_COLUMNS)?;
    let mut problems = Problems::default();
    let mut products = Vec::with_capacity(rows.len());
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for row in rows {
        let (line, v) = match row {
            Ok(r) => r,
            Err((line, m)) => {
                problems.push(line, m);
                continue;
            }
        };
        if let Some(p) = product(line, &v, &mut first_line, &mut problems) {
            products.push(p);
        }
    }
    if problems.is_empty() {
        Ok(products)
    } else {
        Err(CatalogError::Rejected {
            kind: FileKind::Catalog,
            path: path.to_string(),
            problems,
        })
    }
}

/// One catalog line as a product, or its problems noted.
fn product(
    line: u64,
    v: &[String; 5],
    first_line: &mut HashMap<String, u64>,
    problems: &mut Problems,
) -> Option<Product> {
    let [sku, name, price, currency, on_hand] = v;
    let mut bad = |field: &str, value: &str, rule: &str| {
        let what = if value.is_empty() {
            format!("{field} is empty")
        } else {
            format!("{field} {} {rule}", show(value, false))
        };
        problems.push(line, what);
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
        let m = format!("sku {} already appears on line {prev}", show(sku, false));
        problems.push(line, m);
        ok = false;
    }
    match (ok, price, stock) {
        (true, Ok(unit_price), Ok(on_hand)) => Some(Product {
            sku: sku.clone(),
            name: name.clone(),
            unit_price,
            currency: currency.clone(),
            on_hand,
        }),
        _ => None,
    }
}

type Row<const N: usize> = Result<(u64, [String; N]), (u64, String)>;

pub const DELIVERY_COLUMNS: [&str; 2] = ["sku", "quantity"];

/// Largest number of units one delivery line may add.
const MAX_DELIVERY: i64 = 1_000_000_000;

/// A delivery line: its line number, sku and units.
pub type Delivery = (u64, String, i64);

/// A delivery file read and its lines checked, before the catalog is asked
/// whether it knows their skus.
#[derive(Debug)]
pub struct Deliveries {
    path: String,
    lines: Vec<Delivery>,
    problems: Problems,
}

impl Deliveries {
    /// The lines, when every line is good and `known` holds every sku;
    /// else every problem of the file at once.
    pub fn checked(mut self, known: impl Fn(&str) -> bool) -> Result<Vec<Delivery>, CatalogError> {
        for (line, sku, _) in &self.lines {
            if !known(sku) {
                let m = format!(
                    "sku {} is not in the catalog (load it first with inventory load)",
                    show(sku, false)
                );
                self.problems.push(*line, m);
            }
        }
        if self.problems.is_empty() {
            Ok(self.lines)
        } else {
            Err(CatalogError::Rejected {
                kind: FileKind::Delivery,
                path: self.path,
                problems: self.problems,
            })
        }
    }
}

/// Read and check a whole delivery file (`inventory receive`).
pub fn read_deliveries(
    path: &str,
    format: Option<CatalogFormat>,
    opts: &ReadOptions,
) -> Result<Deliveries, CatalogError> {
    let rows = rows_of(path, format, opts, &DELIVERY_COLUMNS)?;
    let mut problems = Problems::default();
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Err((line, m)) => problems.push(line, m),
            Ok((line, [sku, quantity])) => {
                let sku_ok = fields::sku(&sku).map_err(|rule| {
                    problems.push(line, format!("sku {} {rule}", show(&sku, false)))
                });
                let n = fields::whole_number(&quantity, 1, MAX_DELIVERY);
                if n.is_none() {
                    problems.push(
                        line,
                        format!(
                            "quantity {} must be a whole number from 1 to {MAX_DELIVERY}",
                            show(&quantity, false)
                        ),
                    );
                }
                if let (Ok(()), Some(n)) = (sku_ok, n) {
                    lines.push((line, sku, n));
                }
            }
        }
    }
    Ok(Deliveries {
        path: path.to_string(),
        lines,
        problems,
    })
}

/// The rows of a catalog or delivery file, each with the named columns.
fn rows_of<const N: usize>(
    path: &str,
    format: Option<CatalogFormat>,
    opts: &ReadOptions,
    columns: &[&'static str; N],
) -> Result<Vec<Row<N>>, CatalogError> {
    let format = resolve_format(path, format)?;
    let source = open_text(path, opts)?;
    let delimiter = opts.delimiter.unwrap_or(format.default_delimiter());
    // A line of a catalog or delivery longer than any record may be: the
    // file is something else (`/dev/zero`), and memory must not follow it.
    let reader: Box<dyn BufRead + Send> = Box::new(super::LineGuard::new(
        source.reader,
        super::DEFAULT_MAX_RECORD_BYTES,
    ));
    match format {
        CatalogFormat::Csv | CatalogFormat::Tsv => csv_rows(path, reader, delimiter, columns, opts),
        CatalogFormat::Jsonl => jsonl_rows(path, reader, columns),
    }
}

fn csv_rows<const N: usize>(
    path: &str,
    mut reader: Box<dyn BufRead + Send>,
    delimiter: u8,
    columns: &[&'static str; N],
    opts: &ReadOptions,
) -> Result<Vec<Row<N>>, CatalogError> {
    skip_preamble(&mut reader, path, opts.skip_rows)?;
    // Title lines: the CSV reader's line numbers start after them.
    let skipped = opts.skip_rows;
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
    let line_of = |rec: &csv::ByteRecord| skipped + rec.position().map_or(0, |p| p.line());
    let names: Vec<String> = header
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let cells: Vec<&str> = names.iter().map(String::as_str).collect();
    let index = match header::table_columns(path, &cells, columns, opts) {
        Ok(index) => index,
        Err(e) => {
            let read = line_of(&header);
            let below = records.by_ref().take(super::csv::LOOK_AHEAD).flatten();
            return Err(
                table_header_at(e, read, below.map(|r| (line_of(&r), r)), columns, opts).into(),
            );
        }
    };
    let mut rows = Vec::new();
    for rec in records {
        let rec = rec.map_err(|e| read_error(path, 0, e))?;
        let line = line_of(&rec);
        if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
            continue;
        }
        rows.push(table_row(rec, line, header.len(), &index));
    }
    Ok(rows)
}

/// A byte-order mark and the title lines before the header, passed over.
fn skip_preamble(
    reader: &mut Box<dyn BufRead + Send>,
    path: &str,
    title_lines: u64,
) -> Result<(), CatalogError> {
    if reader
        .fill_buf()
        .map(|b| b.starts_with(b"\xEF\xBB\xBF"))
        .unwrap_or(false)
    {
        reader.consume(3);
    }
    super::csv::skip_title_lines(
        reader,
        path,
        title_lines,
        super::DEFAULT_MAX_RECORD_BYTES as u64,
    )?;
    Ok(())
}

/// One line's values in the order of `index`, or what is wrong with it.
fn table_row<const N: usize>(
    rec: csv::ByteRecord,
    line: u64,
    width: usize,
    index: &[usize; N],
) -> Row<N> {
    if rec.len() != width {
        let reason = format!(
            "wrong number of fields: {} where the header has {width}",
            rec.len()
        );
        return Err((line, reason));
    }
    let Ok(rec) = csv::StringRecord::from_byte_record(rec) else {
        return Err((line, "not valid UTF-8".into()));
    };
    Ok((
        line,
        index.map(|i| unescape_cell(rec[i].trim()).to_string()),
    ))
}

/// A catalog or delivery header that lacks most columns may be a title
/// line: the error says on which line below the header seems to be.
fn table_header_at(
    e: InputError,
    read: u64,
    below: impl Iterator<Item = (u64, csv::ByteRecord)>,
    columns: &[&'static str],
    opts: &ReadOptions,
) -> InputError {
    let InputError::MissingColumns {
        path,
        missing,
        header_at: None,
        found,
    } = e
    else {
        return e;
    };
    let mut header_at = None;
    if missing.len() * 2 >= columns.len() {
        header_at = below
            .filter(|(_, rec)| {
                let cells = rec.iter().map(|c| std::str::from_utf8(c).unwrap_or(""));
                header::looks_like_header(columns, header::covered(columns, cells, opts))
            })
            .map(|(found, _)| HeaderAt { read, found })
            .next();
    }
    InputError::MissingColumns {
        path,
        missing,
        header_at,
        found,
    }
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
        let p = read_catalog(&csv, None, &ReadOptions::default()).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].unit_price, 1250);
        assert_eq!(p[1].unit_price, 100);
        assert_eq!(p[1].name, "=Tea");
        let jsonl = write(&dir, "c.jsonl", "{\"sku\":\"A\",\"name\":\"x\",\"unit_price\":1.005,\"currency\":\"KWD\",\"on_hand\":3}\n");
        let p = read_catalog(&jsonl, None, &ReadOptions::default()).unwrap();
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
        let err = read_catalog(&csv, None, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3: unit_price \"1.234\""), "{err}");
        assert!(err.contains("line 4: on_hand"), "{err}");
        assert!(err.contains("already appears on line 2"), "{err}");
        let missing = write(&dir, "m.csv", "sku,name,currency,on_hand\n");
        assert!(read_catalog(&missing, None, &ReadOptions::default())
            .unwrap_err()
            .to_string()
            .contains("missing required column 'unit_price'"));
        let err = read_catalog(&missing, None, &ReadOptions::default()).unwrap_err();
        assert!(matches!(
            err,
            CatalogError::Input(InputError::MissingColumns { .. })
        ));
        // A catalog is no workbook: refused by its name, before it is opened.
        let err = read_catalog("stock.xlsx", None, &ReadOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("name it .csv, .tsv or .jsonl"),
            "{err}"
        );
        let as_csv = write(&dir, "stock.xlsx", "sku,name,unit_price,currency,on_hand\n");
        let told = read_catalog(&as_csv, Some(CatalogFormat::Csv), &ReadOptions::default());
        assert_eq!(told.unwrap().len(), 0);
    }

    #[test]
    fn every_bad_line_of_a_delivery_file_is_named_at_once_unknown_skus_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut text =
            String::from("Lieferung 27.11.,\nArtikel,Menge\nA-1,5\nB-2,x\nZZZ,1\nA-1,0\n");
        for i in 0..30 {
            text.push_str(&format!("A-1,-{i}\n"));
        }
        let p = write(&dir, "delivery.csv", &text);
        let opts = ReadOptions {
            skip_rows: 1,
            map: super::super::ColumnMap::new(vec![
                super::super::Rename::parse("Artikel=sku", &DELIVERY_COLUMNS).unwrap(),
                super::super::Rename::parse("Menge=quantity", &DELIVERY_COLUMNS).unwrap(),
            ])
            .unwrap(),
            ..ReadOptions::default()
        };
        let e = read_deliveries(&p, None, &opts)
            .unwrap()
            .checked(|sku| sku == "A-1" || sku == "B-2")
            .unwrap_err();
        let CatalogError::Rejected { kind, problems, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!((*kind, problems.len()), (FileKind::Delivery, 33));
        let text = e.to_string();
        assert!(
            text.starts_with("delivery file ")
                && text.contains(
                    "rejected, nothing was changed: line 4: quantity \"x\" must be a whole number from 1 to 1000000000; \
                     line 5: sku \"ZZZ\" is not in the catalog (load it first with inventory load); line 6: quantity \"0\""
                )
                && text.contains("line 23: quantity \"-16\"")
                && !text.contains("line 24:")
                && text.contains("; and 13 more; correct the file"),
            "{text}"
        );
        let good = write(&dir, "good.csv", "sku,quantity\nA-1,5\n");
        let lines = read_deliveries(&good, None, &ReadOptions::default())
            .unwrap()
            .checked(|_| true)
            .unwrap();
        assert_eq!(lines, [(2, "A-1".to_string(), 5)]);
    }
}
