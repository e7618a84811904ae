DROP INDEX keys_key_hash;
ALTER TABLE keys DROP COLUMN key_hint;
ALTER TABLE keys DROP COLUMN key_hash;
