//! Exporting any filtered, sorted list of records to CSV or XLSX. The columns are `id` and every field
//! by id (so an export can be imported again); lists, money and JSON are written as readable text.

use serde_json::Value;
use trellis_model::FieldKind;

use crate::records::ListRequest;
use crate::{Principal, Runtime, RuntimeError};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

impl ExportFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

fn cell_text(kind: FieldKind, value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if kind != FieldKind::Json => items
            .iter()
            .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Object(money)) if kind == FieldKind::Money => format!(
            "{} {}",
            money
                .get("amount")
                .map(|a| a.as_str().map_or(a.to_string(), str::to_owned))
                .unwrap_or_default(),
            money
                .get("currency")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        Some(other) => other.to_string(),
    }
}

impl Runtime {
    /// Every record matching the request's filter, in its sort order, as a file.
    pub async fn export_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        request: &ListRequest,
        format: ExportFormat,
    ) -> Result<Vec<u8>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(trellis_model::Action::Read)?;
        checked.require(trellis_model::Action::Export)?;
        // Hidden fields are not columns at all.
        let fields: Vec<&trellis_model::FieldDefinition> = entity
            .fields
            .iter()
            .filter(|f| checked.access.is_visible(f.name.as_str()))
            .collect();
        let mut header = vec!["id".to_owned()];
        header.extend(fields.iter().map(|f| f.name.to_string()));
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut page_request = ListRequest {
            limit: Some(1000),
            cursor: None,
            count: false,
            ..request.clone()
        };
        loop {
            let page = self
                .list_records(actor, app, entity_id, &page_request)
                .await?;
            for item in &page.items {
                let mut row = vec![item.id.clone()];
                row.extend(
                    fields
                        .iter()
                        .map(|f| cell_text(f.kind, item.data.get(f.name.as_str()))),
                );
                rows.push(row);
            }
            match page.next_cursor {
                Some(cursor) => page_request.cursor = Some(cursor),
                None => break,
            }
        }
        self.audit(
            Some(actor),
            "records.export",
            Some(&loaded.id),
            Some(entity_id),
            "success",
            serde_json::json!({"rows": rows.len(), "columns": header, "filter": request.filter, "q": request.q}),
        )
        .await?;
        match format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::new());
                writer
                    .write_record(&header)
                    .map_err(|e| RuntimeError::Internal(e.to_string()))?;
                for row in &rows {
                    writer
                        .write_record(row)
                        .map_err(|e| RuntimeError::Internal(e.to_string()))?;
                }
                writer
                    .into_inner()
                    .map_err(|e| RuntimeError::Internal(e.to_string()))
            }
            ExportFormat::Xlsx => {
                let mut workbook = rust_xlsxwriter::Workbook::new();
                let sheet = workbook.add_worksheet();
                let bold = rust_xlsxwriter::Format::new().set_bold();
                let xlsx = |e: rust_xlsxwriter::XlsxError| {
                    RuntimeError::Internal(format!("writing xlsx: {e}"))
                };
                for (column, title) in header.iter().enumerate() {
                    sheet
                        .write_string_with_format(0, column as u16, title, &bold)
                        .map_err(xlsx)?;
                }
                for (index, row) in rows.iter().enumerate() {
                    for (column, cell) in row.iter().enumerate() {
                        let kind = column.checked_sub(1).map(|i| fields[i].kind);
                        let number = matches!(
                            kind,
                            Some(
                                FieldKind::Integer
                                    | FieldKind::Decimal
                                    | FieldKind::Percent
                                    | FieldKind::Rating
                            )
                        )
                        .then(|| cell.parse::<f64>().ok())
                        .flatten();
                        let at = (index as u32 + 1, column as u16);
                        match number {
                            Some(n) => sheet.write_number(at.0, at.1, n).map_err(xlsx)?,
                            None => sheet.write_string(at.0, at.1, cell).map_err(xlsx)?,
                        };
                    }
                }
                workbook.save_to_buffer().map_err(xlsx)
            }
        }
    }
}
