//! Tokens a request used, read from the answer as it passes (never buffering a stream), and what they
//! cost at the price table's prices.
//!
//! - A JSON answer carries `usage` at its top level.
//! - An SSE stream (OpenAI's and SiliconFlow's chat streams) carries it in its chunks: OpenAI's only in
//!   the last chunk before `[DONE]` when the client asked `stream_options.include_usage`, SiliconFlow's
//!   in every chunk, as running totals. The last chunk that has a `usage` object is the answer's.
//!   Nothing is added to the caller's stream: a stream without usage leaves the tokens empty.

use std::collections::HashMap;

/// Prompt, completion and total tokens of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub prompt_tokens: i64,
    #[serde(default)]
    pub completion_tokens: i64,
    #[serde(default)]
    pub total_tokens: i64,
}

/// The `usage` of a whole JSON answer, if it has one.
pub fn from_json(body: &[u8]) -> Option<TokenUsage> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    last_usage(body)
}

impl TokenUsage {
    /// Fills a missing total (some servers send only the two parts).
    fn completed(self) -> Self {
        let total = if self.total_tokens > 0 { self.total_tokens } else { self.prompt_tokens + self.completion_tokens };
        Self { total_tokens: total, ..self }
    }
}

const USAGE: &[u8] = b"\"usage\"";

/// The last `"usage": {…}` object in `data`, parsed on its own (the rest of the document is not).
/// The bytes `"usage"` occur in JSON only as a key or as the string value `usage`; inside another
/// string the quotes would be escaped. Requiring `:` and `{` after them leaves only the key.
fn last_usage(data: &[u8]) -> Option<TokenUsage> {
    let mut end = data.len();
    while let Some(at) = data[..end].windows(USAGE.len()).rposition(|w| w == USAGE) {
        let after = data[at + USAGE.len()..].trim_ascii_start();
        if let Some(value) = after.strip_prefix(b":").map(<[u8]>::trim_ascii_start)
            && value.starts_with(b"{")
        {
            let mut values = serde_json::Deserializer::from_slice(value).into_iter::<TokenUsage>();
            return values.next()?.ok().map(TokenUsage::completed);
        }
        end = at;
    }
    None
}

/// Watches a JSON body chunk by chunk, keeping only its last few kilobytes: `usage` is the last member
/// of OpenAI-style answers (chat, embeddings), however long the body before it.
#[derive(Debug, Default)]
pub struct JsonUsage {
    tail: Vec<u8>,
    first: Option<u8>,
}

const JSON_TAIL: usize = 4096;

impl JsonUsage {
    pub fn push(&mut self, chunk: &[u8]) {
        if self.first.is_none() {
            self.first = chunk.trim_ascii_start().first().copied();
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 2 * JSON_TAIL {
            self.tail.drain(..self.tail.len() - JSON_TAIL);
        }
    }

    pub fn finish(self) -> Option<TokenUsage> {
        (self.first == Some(b'{')).then(|| last_usage(&self.tail)).flatten()
    }
}

/// Watches an SSE body chunk by chunk for the last `data:` line with a `usage` object. Only the
/// unfinished last line is kept between chunks (at most [`MAX_LINE`] bytes), and only the last
/// candidate line is parsed, once, at the end.
#[derive(Debug, Default)]
pub struct SseUsage {
    partial: Vec<u8>,
    last: Option<Vec<u8>>,
}

/// A line longer than this is not looked into (no chunk of a chat stream comes near it).
const MAX_LINE: usize = 1 << 20;

impl SseUsage {
    pub fn push(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end);
            if self.partial.is_empty() {
                self.consider(line);
            } else if self.partial.len() + line.len() <= MAX_LINE {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.consider(&whole);
            } else {
                self.partial.clear();
            }
            rest = &after[1..];
        }
        if self.partial.len() + rest.len() <= MAX_LINE {
            self.partial.extend_from_slice(rest);
        }
    }

    fn consider(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else { return };
        if last_usage(data).is_some() {
            self.last = Some(data.to_vec());
        }
    }

    /// The usage of the last chunk that had one.
    pub fn finish(mut self) -> Option<TokenUsage> {
        let tail = std::mem::take(&mut self.partial);
        self.consider(&tail);
        last_usage(&self.last?)
    }
}

/// Input and output price per million tokens of one model, in the balance's currency.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Price {
    pub input_per_m: f64,
    pub output_per_m: f64,
}

/// The price table, in memory for the proxy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    by_model: HashMap<String, Price>,
}

impl Prices {
    pub fn new(rows: impl IntoIterator<Item = (String, Price)>) -> Self {
        Self { by_model: rows.into_iter().collect() }
    }

    pub fn get(&self, model: &str) -> Option<Price> {
        self.by_model.get(model).copied()
    }

    /// The estimated cost of `usage` on `model`; `None` for a model without a price.
    pub fn cost(&self, model: &str, usage: &TokenUsage) -> Option<f64> {
        let price = self.get(model)?;
        Some(
            (usage.prompt_tokens as f64 * price.input_per_m + usage.completion_tokens as f64 * price.output_per_m)
                / 1e6,
        )
    }

    pub fn len(&self) -> usize {
        self.by_model.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_model.is_empty()
    }
}

/// A model name as typed by an admin: 1–200 printable characters, trimmed, no spaces.
pub fn parse_model(raw: &str) -> Option<String> {
    let model = raw.trim();
    (!model.is_empty() && model.len() <= 200 && model.chars().all(|c| c.is_ascii_graphic() || !c.is_ascii()))
        .then(|| model.to_owned())
        .filter(|m| !m.chars().any(char::is_whitespace) && !m.chars().any(char::is_control))
}

/// A price as typed by an admin: a finite, non-negative number below a million per million tokens.
pub fn parse_price(raw: &str) -> Option<f64> {
    raw.trim().parse::<f64>().ok().filter(|p| p.is_finite() && (0.0..1e6).contains(p))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn usage(p: i64, c: i64, t: i64) -> TokenUsage {
        TokenUsage { prompt_tokens: p, completion_tokens: c, total_tokens: t }
    }

    #[test]
    fn json_answers() {
        let body = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#;
        assert_eq!(from_json(body), Some(usage(12, 30, 42)));
        assert_eq!(from_json(br#"{"usage":{"prompt_tokens":5,"completion_tokens":7}}"#), Some(usage(5, 7, 12)));
        assert_eq!(from_json(br#"{"usage":null}"#), None);
        assert_eq!(from_json(br#"{"data":[]}"#), None);
        assert_eq!(from_json(b"not json \"usage\""), None);
        assert_eq!(from_json(br#"{"usage":{"prompt_tokens":"#), None);
    }

    #[test]
    fn the_last_usage_of_a_stream_split_anywhere() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
            "data: {\"choices\":[],\"usage\": {\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\r\n\r\n",
            "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n",
            "data: [DONE]\n\n"
        )
        .as_bytes();
        for split in 1..stream.len() {
            let mut scan = SseUsage::default();
            for piece in stream.chunks(split) {
                scan.push(piece);
            }
            assert_eq!(scan.finish(), Some(usage(3, 2, 5)), "chunks of {split}");
        }
        let mut none = SseUsage::default();
        none.push(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert_eq!(none.finish(), None);
        // A last line without its newline still counts.
        let mut unterminated = SseUsage::default();
        unterminated.push(b"data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}");
        assert_eq!(unterminated.finish(), Some(usage(1, 1, 2)));
    }

    #[test]
    fn a_long_json_body_in_pieces() {
        let mut body = br#"{"data":[{"embedding":["#.to_vec();
        for i in 0..5000 {
            body.extend_from_slice(format!("{i}.5,").as_bytes());
        }
        body.extend_from_slice(br#"0]}],"object":"usage","usage":{"prompt_tokens":9,"total_tokens":9}}"#);
        for split in [1, 7, 100, 4096, body.len()] {
            let mut scan = JsonUsage::default();
            for piece in body.chunks(split) {
                scan.push(piece);
            }
            assert_eq!(scan.finish(), Some(usage(9, 0, 9)), "chunks of {split}");
        }
        let mut not_json = JsonUsage::default();
        not_json.push(br#"["usage": {"prompt_tokens":1}]"#);
        assert_eq!(not_json.finish(), None);
        assert_eq!(from_json(br#"{"note":"say \"usage\": {\"prompt_tokens\":5}"}"#), None);
    }

    #[test]
    fn cost_from_the_price_table() {
        let prices = Prices::new([("m".to_owned(), Price { input_per_m: 2.0, output_per_m: 8.0 })]);
        let cost = prices.cost("m", &usage(1_000_000, 500_000, 1_500_000)).unwrap();
        assert!((cost - 6.0).abs() < 1e-9, "{cost}");
        assert_eq!(prices.cost("other", &usage(1, 1, 2)), None);
        assert_eq!(parse_price("1.26"), Some(1.26));
        assert_eq!(parse_price("-1"), None);
        assert_eq!(parse_price("NaN"), None);
        assert_eq!(parse_price("x"), None);
    }
}
