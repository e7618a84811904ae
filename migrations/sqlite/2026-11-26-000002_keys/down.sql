DROP TABLE key_status_counts;
DROP TABLE key_selections;
DROP TABLE keys;
