//! Hand-written diesel schema, limited to SQL types that `MultiConnection` supports on both backends.
//! Times are unix epoch milliseconds.

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    admins (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        credentials_version -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    access_keys (id) {
        id -> BigInt,
        name -> Text,
        token_hash -> Text,
        token_hint -> Text,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(settings, admins, access_keys);
