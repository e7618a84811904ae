DROP TABLE key_status_counts;
DROP TABLE key_selections;
DROP TABLE keys;
DROP FUNCTION keys_count_insert();
DROP FUNCTION keys_count_delete();
DROP FUNCTION keys_count_update();
DROP FUNCTION keys_write_lock();
