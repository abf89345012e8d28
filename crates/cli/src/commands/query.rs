//! `footfall query`: the stats API's answers, as a table or as the API's exact JSON.

use std::collections::HashMap;

use anyhow::{Result, bail};
use footfall_core::query::Metric;
use footfall_server::control::Request;
use serde_json::Value;

use super::request;
use crate::cli::QueryArgs;
use crate::config::Settings;
use crate::table;

pub async fn run(settings: &Settings, args: QueryArgs) -> Result<()> {
    // Passed on as the HTTP API's parameters, so that they are checked, and answered, alike.
    let params: HashMap<String, String> = [
        ("period", args.period),
        ("date", args.date),
        ("interval", args.interval),
        ("metrics", args.metrics.clone()),
        ("property", args.property),
        ("filters", args.filters),
        ("limit", args.limit),
        ("page", args.page),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?)))
    .collect();
    let req = Request::Query { kind: args.kind.into(), site: args.site, params };
    let answer = request(settings, req).await?;
    if args.json {
        println!("{answer}");
    } else {
        print!("{}", render(&answer, args.metrics.as_deref())?);
    }
    Ok(())
}

/// A table with a column per metric, after the date or property value of each row.
fn render(answer: &Value, metrics: Option<&str>) -> Result<String> {
    let (headers, rows) = match answer.get("results") {
        // Realtime visitors: a bare number.
        None if answer.is_number() => return Ok(format!("{answer}\n")),
        Some(Value::Object(results)) => {
            let headers = columns(results.keys(), metrics);
            let row = headers.iter().map(|m| results[m]["value"].clone()).collect();
            (headers, vec![row])
        }
        Some(Value::Array(results)) => {
            let Some(Value::Object(first)) = results.first() else {
                eprintln!("no results");
                return Ok(String::new());
            };
            let headers = columns(first.keys(), metrics);
            let rows = results
                .iter()
                .map(|row| headers.iter().map(|h| row[h].clone()).collect())
                .collect();
            (headers, rows)
        }
        _ => bail!("the server's answer has an unexpected shape: {answer}"),
    };
    Ok(table::render(&headers, &rows))
}

/// What a row is of (`date`, `page`, …) first, then the metrics in the order they were asked
/// for.
fn columns<'a>(keys: impl Iterator<Item = &'a String>, metrics: Option<&str>) -> Vec<String> {
    let asked: Vec<&str> = metrics.unwrap_or("").split(',').map(str::trim).collect();
    let mut columns: Vec<String> = keys.cloned().collect();
    columns.sort_by_key(|key| match Metric::from_name(key) {
        None => (0, 0),
        Some(_) => (1, asked.iter().position(|&m| m == key).unwrap_or(usize::MAX)),
    });
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregates_are_one_row_in_the_order_asked() {
        let answer = json!({"results": {"pageviews": {"value": 12}, "visitors": {"value": 3}}});
        let table = render(&answer, Some("visitors, pageviews")).unwrap();
        assert_eq!(table, "visitors  pageviews\n       3         12\n");
    }

    #[test]
    fn rows_lead_with_what_they_are_of() {
        let answer = json!({"results": [
            {"visitors": 2, "page": "/", "bounce_rate": 50},
            {"visitors": 1, "page": "/pricing", "bounce_rate": 100},
        ]});
        let table = render(&answer, Some("visitors,bounce_rate")).unwrap();
        assert_eq!(
            table,
            "page      visitors  bounce_rate\n/                2           50\n/pricing         1          100\n"
        );
    }

    #[test]
    fn realtime_is_a_number_and_odd_answers_are_errors() {
        assert_eq!(render(&json!(4), None).unwrap(), "4\n");
        assert!(render(&json!({"results": 1}), None).is_err());
    }
}
