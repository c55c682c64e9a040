//! Reports as xlsx workbooks: every cell stored as text (in columns formatted
//! as text, so that a value typed in later stays text too), written in
//! constant memory; past a sheet's last row the report goes on in the next
//! sheet, under the same header.

use std::io::{self, Read, Seek, Write};

use rust_xlsxwriter::{Format, Workbook, XlsxError};

/// Rows per sheet, header included (xlsx's own limit).
const MAX_ROWS: u32 = 1_048_576;
/// Characters per cell (xlsx's own limit).
const MAX_CELL: usize = 32_767;

/// Columns per sheet (xlsx's own limit).
const MAX_COLUMNS: usize = 16_384;

/// What an xlsx workbook cannot hold: a value longer than a cell, more
/// columns than a sheet. Found while the reports are written, before the
/// run commits, so the run is refused (exit 2) rather than cut short.
#[derive(Debug, thiserror::Error)]
#[error("{0}: use --report-format csv or jsonl, which hold any size")]
pub struct TooLarge(pub String);

impl TooLarge {
    /// The one in an error's chain (as such, or inside an I/O error).
    pub fn in_chain(e: &anyhow::Error) -> Option<&TooLarge> {
        e.chain().find_map(|c| {
            c.downcast_ref::<TooLarge>().or_else(|| {
                c.downcast_ref::<io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|inner| inner.downcast_ref::<TooLarge>())
            })
        })
    }

    fn error(what: String) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, TooLarge(what))
    }
}

fn io_err(e: XlsxError) -> io::Error {
    match e {
        XlsxError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// The xlsx writer panics when its temporary file cannot be written (with
/// the I/O error in debug form): that becomes an error that says where and
/// what to do.
fn temp_file_err(e: io::Error) -> io::Error {
    let what = e.to_string();
    let why = what
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(what.as_str(), |(m, _)| m);
    io::Error::new(
        e.kind(),
        format!(
            "the xlsx writer cannot write its temporary file in {} ({why}): make room there or point TMPDIR at a disk with room",
            std::env::temp_dir().display()
        ),
    )
}

pub struct XlsxSheet {
    workbook: Workbook,
    /// Rows above the header on every sheet (a failed report's title lines).
    title: Vec<String>,
    header: Vec<String>,
    text: Format,
    sheet: usize,
    row: u32,
}

/// A value as a cell holds it; one longer than a cell holds is refused
/// (cut, it would not read back as it was).
fn cell(v: &str) -> io::Result<&str> {
    // Bytes bound characters from above: most values need no count.
    if v.len() <= MAX_CELL || v.chars().count() <= MAX_CELL {
        return Ok(v);
    }
    Err(TooLarge::error(format!(
        "a value of {} characters does not fit in an xlsx cell ({MAX_CELL} at most)",
        v.chars().count()
    )))
}

impl XlsxSheet {
    pub fn new(header: &[&str]) -> io::Result<XlsxSheet> {
        XlsxSheet::with_title(&[], header)
    }

    /// A sheet whose header stands below `title`, a row a line.
    pub fn with_title(title: &[&str], header: &[&str]) -> io::Result<XlsxSheet> {
        if header.len() > MAX_COLUMNS {
            return Err(TooLarge::error(format!(
                "the report has {} columns, more than the {MAX_COLUMNS} an xlsx sheet holds",
                header.len()
            )));
        }
        let mut s = XlsxSheet {
            workbook: Workbook::new(),
            title: title.iter().map(|t| t.to_string()).collect(),
            header: header.iter().map(|h| h.to_string()).collect(),
            text: Format::new().set_num_format("@"),
            sheet: 0,
            row: 0,
        };
        crate::exit::catching_panics(|| s.add_sheet()).map_err(temp_file_err)?;
        Ok(s)
    }

    fn add_sheet(&mut self) -> io::Result<()> {
        let text = self.text.clone();
        let header = self.header.clone();
        let ws = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(io_err)?;
        let at = u32::try_from(self.title.len()).map_err(io::Error::other)?;
        for (row, line) in (0..).zip(&self.title) {
            if !line.is_empty() {
                ws.write_string_with_format(row, 0, line, &text)
                    .map_err(io_err)?;
            }
        }
        for (i, h) in header.iter().enumerate() {
            let col = u16::try_from(i).map_err(io::Error::other)?;
            ws.set_column_format(col, &text).map_err(io_err)?;
            ws.set_column_width(col, 16).map_err(io_err)?;
            ws.write_string_with_format(at, col, h, &text)
                .map_err(io_err)?;
        }
        self.sheet = self.workbook.worksheets().len() - 1;
        self.row = at + 1;
        Ok(())
    }

    /// One row of text cells. (The writer panics when its temporary file
    /// cannot be written: that becomes an error here.)
    pub fn row(&mut self, cells: &[&str]) -> io::Result<()> {
        crate::exit::catching_panics(|| self.row_unguarded(cells)).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidInput {
                e
            } else {
                temp_file_err(e)
            }
        })
    }

    fn row_unguarded(&mut self, cells: &[&str]) -> io::Result<()> {
        if self.row == MAX_ROWS {
            self.add_sheet()?;
        }
        let (row, text) = (self.row, self.text.clone());
        let ws = self
            .workbook
            .worksheet_from_index(self.sheet)
            .map_err(io_err)?;
        for (i, v) in cells.iter().enumerate() {
            let col = u16::try_from(i).map_err(io::Error::other)?;
            ws.write_string_with_format(row, col, cell(v)?, &text)
                .map_err(io_err)?;
        }
        self.row += 1;
        Ok(())
    }

    /// The workbook written out (it is assembled in a temporary file first:
    /// `out` need not be seekable).
    pub fn finish<W: Write>(mut self, mut out: W) -> io::Result<W> {
        let mut tmp = tempfile::tempfile()?;
        crate::exit::catching_panics(|| self.workbook.save_to_writer(&mut tmp).map_err(io_err))
            .map_err(temp_file_err)?;
        tmp.seek(io::SeekFrom::Start(0))?;
        let mut buf = io::BufReader::new(tmp);
        io::copy(&mut buf.by_ref(), &mut out)?;
        out.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader};

    #[test]
    fn cells_are_text_and_read_back_exactly() {
        let mut s = XlsxSheet::new(&["order_id", "payment_ref", "note"]).unwrap();
        s.row(&["000777", "1234567890123456789", "=SUM(A1)"])
            .unwrap();
        s.row(&["A-1", "", "x\ny"]).unwrap();
        let bytes = s.finish(Vec::new()).unwrap();
        let mut wb = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
        let range = wb.worksheet_range_at(0).unwrap().unwrap();
        let rows: Vec<Vec<Data>> = range.rows().map(|r| r.to_vec()).collect();
        assert_eq!(rows[1][0], Data::String("000777".into()));
        assert_eq!(rows[1][1], Data::String("1234567890123456789".into()));
        assert_eq!(rows[1][2], Data::String("=SUM(A1)".into()));
        assert_eq!(rows[2][2], Data::String("x\ny".into()));
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn a_value_or_a_header_an_xlsx_sheet_cannot_hold_is_refused() {
        let long = "é".repeat(MAX_CELL + 1);
        let e = cell(&long).unwrap_err();
        let too = e.get_ref().and_then(|i| i.downcast_ref::<TooLarge>());
        assert!(too.unwrap().0.contains("32768 characters"), "{e}");
        assert_eq!(
            cell(&"é".repeat(MAX_CELL)).unwrap().chars().count(),
            MAX_CELL
        );
        let names: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        let header: Vec<&str> = names.iter().map(String::as_str).collect();
        let e = XlsxSheet::new(&header).err().unwrap();
        let e = anyhow::Error::from(e).context("writing");
        assert!(TooLarge::in_chain(&e).unwrap().0.contains("16385 columns"));
        let mut s = XlsxSheet::new(&["a"]).unwrap();
        assert!(s.row(&[long.as_str()]).is_err());
    }
}
