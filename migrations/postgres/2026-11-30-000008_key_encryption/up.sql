-- Encryption at rest (KEYPOOL_ENCRYPTION_KEY). An encrypted key is `enc:v1:…` in `key`; `key_hash` is
-- its keyed hash (uniqueness and exact search without decrypting) and `key_hint` its last four
-- characters (search). A key stored in clear has neither: its uniqueness stays on `key`.
ALTER TABLE keys ADD COLUMN key_hash TEXT;
ALTER TABLE keys ADD COLUMN key_hint TEXT;
CREATE UNIQUE INDEX keys_key_hash ON keys (key_hash);
