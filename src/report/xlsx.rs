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

fn io_err(e: XlsxError) -> io::Error {
    match e {
        XlsxError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

pub struct XlsxSheet {
    workbook: Workbook,
    header: Vec<String>,
    text: Format,
    sheet: usize,
    row: u32,
}

/// A value as a cell holds it: cut (and said so) past the cell limit.
fn cell(v: &str) -> std::borrow::Cow<'_, str> {
    if v.chars().count() <= MAX_CELL {
        return v.into();
    }
    let note = format!(" ... (cut: {} characters in all)", v.chars().count());
    let keep: String = v.chars().take(MAX_CELL - note.chars().count()).collect();
    format!("{keep}{note}").into()
}

impl XlsxSheet {
    pub fn new(header: &[&str]) -> io::Result<XlsxSheet> {
        let mut s = XlsxSheet {
            workbook: Workbook::new(),
            header: header.iter().map(|h| h.to_string()).collect(),
            text: Format::new().set_num_format("@"),
            sheet: 0,
            row: 0,
        };
        crate::catching_panics(|| s.add_sheet())?;
        Ok(s)
    }

    fn add_sheet(&mut self) -> io::Result<()> {
        let text = self.text.clone();
        let header = self.header.clone();
        let ws = self
            .workbook
            .add_worksheet_with_constant_memory()
            .map_err(io_err)?;
        for (i, h) in header.iter().enumerate() {
            let col = u16::try_from(i).map_err(io::Error::other)?;
            ws.set_column_format(col, &text).map_err(io_err)?;
            ws.set_column_width(col, 16).map_err(io_err)?;
            ws.write_string_with_format(0, col, h, &text)
                .map_err(io_err)?;
        }
        self.sheet = self.workbook.worksheets().len() - 1;
        self.row = 1;
        Ok(())
    }

    /// One row of text cells. (The writer panics when its temporary file
    /// cannot be written: that becomes an error here.)
    pub fn row(&mut self, cells: &[&str]) -> io::Result<()> {
        crate::catching_panics(|| self.row_unguarded(cells))
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
            ws.write_string_with_format(row, col, cell(v), &text)
                .map_err(io_err)?;
        }
        self.row += 1;
        Ok(())
    }

    /// The workbook written out (it is assembled in a temporary file first:
    /// `out` need not be seekable).
    pub fn finish<W: Write>(mut self, mut out: W) -> io::Result<W> {
        let mut tmp = tempfile::tempfile()?;
        crate::catching_panics(|| self.workbook.save_to_writer(&mut tmp).map_err(io_err))?;
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
    fn an_overlong_value_is_cut_and_says_so() {
        let long = "x".repeat(40_000);
        let c = cell(&long);
        assert_eq!(c.chars().count(), MAX_CELL);
        assert!(c.ends_with("(cut: 40000 characters in all)"));
    }
}
