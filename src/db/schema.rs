// @generated from the SQLite migrations by `tests/integration/schema.rs`: do not edit by hand.
// After a migration, `KEYPOOL_BLESS_SCHEMA=1 cargo test schema_rs` rewrites it. Only SQL types that
// `MultiConnection` supports on both backends; times are unix epoch milliseconds.

diesel::table! {
    access_key_quota (access_key_id, period, window_start) {
        access_key_id -> BigInt,
        period -> BigInt,
        window_start -> BigInt,
        requests -> BigInt,
        tokens -> BigInt,
        cost -> Double,
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
        request_count -> BigInt,
        failure_count -> BigInt,
        enabled -> Bool,
        expires_at -> Nullable<BigInt>,
        models -> Nullable<Text>,
        free_only -> Bool,
        rpm -> Nullable<BigInt>,
        tpm -> Nullable<BigInt>,
        rpd -> Nullable<BigInt>,
        tpd -> Nullable<BigInt>,
        spend_day -> Nullable<Double>,
        spend_month -> Nullable<Double>,
        note -> Nullable<Text>,
        shared_token -> Nullable<Text>,
    }
}

diesel::table! {
    admin_sessions (id) {
        id -> Text,
        admin_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
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
    balance_history (id) {
        id -> BigInt,
        key_id -> BigInt,
        total_balance -> Double,
        charge_balance -> Double,
        gift_balance -> Double,
        checked_at -> BigInt,
    }
}

diesel::table! {
    change_seq (id) {
        id -> BigInt,
        n -> BigInt,
    }
}

diesel::table! {
    key_events (id) {
        id -> BigInt,
        key_id -> BigInt,
        at -> BigInt,
        from_status -> Text,
        to_status -> Text,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    key_model_blocks (key_id, model) {
        key_id -> BigInt,
        model -> Text,
        kind -> Text,
        until_at -> BigInt,
        at -> BigInt,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    key_selections (admin_id, key_id) {
        admin_id -> BigInt,
        key_id -> BigInt,
    }
}

diesel::table! {
    key_status_counts (status) {
        status -> Text,
        n -> BigInt,
    }
}

// `key_tombstones` has no primary key: not declared (raw SQL only).

diesel::table! {
    keys (id) {
        id -> BigInt,
        key -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        status_changed_at -> Nullable<BigInt>,
        previous_status -> Nullable<Text>,
        total_balance -> Nullable<Double>,
        charge_balance -> Nullable<Double>,
        gift_balance -> Nullable<Double>,
        added_at -> BigInt,
        checked_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        source -> Nullable<Text>,
        request_count -> BigInt,
        failure_count -> BigInt,
        last_used_at -> Nullable<BigInt>,
        cooling_until -> Nullable<BigInt>,
        changed_seq -> BigInt,
        key_hash -> Nullable<Text>,
        key_hint -> Nullable<Text>,
    }
}

diesel::table! {
    leases (name) {
        name -> Text,
        holder -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    model_prices (model) {
        model -> Text,
        input_per_m -> Double,
        output_per_m -> Double,
        updated_at -> BigInt,
    }
}

diesel::table! {
    pool_snapshots (id) {
        id -> BigInt,
        taken_at -> BigInt,
        active_keys -> BigInt,
        total_balance -> Double,
    }
}

diesel::table! {
    request_log (id) {
        id -> BigInt,
        at -> BigInt,
        access_key_id -> Nullable<BigInt>,
        key_id -> Nullable<BigInt>,
        method -> Text,
        path -> Text,
        model -> Nullable<Text>,
        status -> BigInt,
        latency_ms -> BigInt,
        ttfb_ms -> Nullable<BigInt>,
        attempts -> BigInt,
        error -> Nullable<Text>,
        prompt_tokens -> Nullable<BigInt>,
        completion_tokens -> Nullable<BigInt>,
        total_tokens -> Nullable<BigInt>,
        cost -> Nullable<Double>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    traffic_rollups (period, bucket_at, outcome) {
        period -> BigInt,
        bucket_at -> BigInt,
        outcome -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cost -> Double,
        latency_sum_ms -> BigInt,
        lat_0 -> BigInt,
        lat_1 -> BigInt,
        lat_2 -> BigInt,
        lat_3 -> BigInt,
        lat_4 -> BigInt,
        lat_5 -> BigInt,
        lat_6 -> BigInt,
        lat_7 -> BigInt,
        lat_8 -> BigInt,
        lat_9 -> BigInt,
        lat_10 -> BigInt,
        lat_11 -> BigInt,
    }
}

diesel::table! {
    usage_rollups (period, bucket_at, access_key_id, model, outcome) {
        period -> BigInt,
        bucket_at -> BigInt,
        access_key_id -> BigInt,
        model -> Text,
        outcome -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cost -> Double,
        latency_sum_ms -> BigInt,
        lat_0 -> BigInt,
        lat_1 -> BigInt,
        lat_2 -> BigInt,
        lat_3 -> BigInt,
        lat_4 -> BigInt,
        lat_5 -> BigInt,
        lat_6 -> BigInt,
        lat_7 -> BigInt,
        lat_8 -> BigInt,
        lat_9 -> BigInt,
        lat_10 -> BigInt,
        lat_11 -> BigInt,
    }
}

diesel::joinable!(access_key_quota -> access_keys (access_key_id));
diesel::joinable!(admin_sessions -> admins (admin_id));
diesel::joinable!(balance_history -> keys (key_id));
diesel::joinable!(key_events -> keys (key_id));
diesel::joinable!(key_model_blocks -> keys (key_id));
diesel::joinable!(key_selections -> admins (admin_id));
diesel::joinable!(key_selections -> keys (key_id));

diesel::allow_tables_to_appear_in_same_query!(
    access_key_quota,
    access_keys,
    admin_sessions,
    admins,
    balance_history,
    change_seq,
    key_events,
    key_model_blocks,
    key_selections,
    key_status_counts,
    keys,
    leases,
    model_prices,
    pool_snapshots,
    request_log,
    settings,
    traffic_rollups,
    usage_rollups,
);
