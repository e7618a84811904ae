-- One row per signed-in admin session; the cookie carries a random token whose SHA-256 is `id`.
-- Signing out deletes the row, so a copied cookie stops working on every instance at once.
CREATE TABLE admin_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    admin_id BIGINT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
