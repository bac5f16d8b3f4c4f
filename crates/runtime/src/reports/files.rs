//! Report results as CSV or XLSX files.

use serde_json::Value;
use trellis_report::ReportOutput;

use crate::RuntimeError;
use crate::export::ExportFormat;

fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A report result as a file: a header of column labels, then the rows.
pub fn write_output(output: &ReportOutput, format: ExportFormat) -> Result<Vec<u8>, RuntimeError> {
    let header: Vec<&str> = output.columns.iter().map(|c| c.label.as_str()).collect();
    match format {
        ExportFormat::Csv => {
            let fail = |e: csv::Error| RuntimeError::Internal(e.to_string());
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(&header).map_err(fail)?;
            for row in &output.rows {
                writer
                    .write_record(row.iter().map(cell_text))
                    .map_err(fail)?;
            }
            writer
                .into_inner()
                .map_err(|e| RuntimeError::Internal(e.to_string()))
        }
        ExportFormat::Xlsx => {
            let xlsx = |e: rust_xlsxwriter::XlsxError| {
                RuntimeError::Internal(format!("writing xlsx: {e}"))
            };
            let mut workbook = rust_xlsxwriter::Workbook::new();
            let sheet = workbook.add_worksheet();
            let bold = rust_xlsxwriter::Format::new().set_bold();
            for (column, title) in header.iter().enumerate() {
                sheet
                    .write_string_with_format(0, column as u16, *title, &bold)
                    .map_err(xlsx)?;
            }
            for (index, row) in output.rows.iter().enumerate() {
                for (column, cell) in row.iter().enumerate() {
                    let at = (index as u32 + 1, column as u16);
                    match cell {
                        Value::Number(n) => {
                            sheet
                                .write_number(at.0, at.1, n.as_f64().unwrap_or(0.0))
                                .map_err(xlsx)?;
                        }
                        Value::Bool(b) => {
                            sheet.write_boolean(at.0, at.1, *b).map_err(xlsx)?;
                        }
                        Value::Null => {}
                        other => {
                            sheet
                                .write_string(at.0, at.1, cell_text(other))
                                .map_err(xlsx)?;
                        }
                    }
                }
            }
            workbook.save_to_buffer().map_err(xlsx)
        }
    }
}
