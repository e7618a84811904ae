//! Pure types and rules: no database, no HTTP.

pub mod access_token;
pub mod account;
pub mod checks;
pub mod clock;
pub mod export;
pub mod keys;
pub mod password;
pub mod proxy;
pub mod settings;
pub mod stats;
pub mod usage;

/// A message for one form field: the field's name and a catalogue key (with optional arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub key: &'static str,
    pub args: Vec<(&'static str, String)>,
}

impl FieldError {
    pub fn new(field: &'static str, key: &'static str) -> Self {
        Self { field, key, args: Vec::new() }
    }

    pub fn with(mut self, name: &'static str, value: impl ToString) -> Self {
        self.args.push((name, value.to_string()));
        self
    }
}

/// All the field errors of one form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|e| e.field == field)
    }

    /// `Ok(value)` when nothing was pushed.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }
}
