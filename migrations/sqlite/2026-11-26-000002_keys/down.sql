DROP TABLE key_selections;
DROP TABLE keys;
